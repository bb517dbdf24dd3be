//! A small structural checker for the JSON Schema subset `docs/openapi.json` uses: `$ref` to
//! `#/components/...`, `type` (one or a list), `required`, `properties`, `additionalProperties`
//! (a schema), `items`, `enum` and `const`. Enough to say whether a body has every required
//! member with its documented type; keywords outside the subset are ignored.

use serde_json::Value;

/// Resolve a local `$ref` (`#/components/schemas/Error`) in `doc`.
pub fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    doc.pointer(pointer)
}

/// `schema` itself, or what its `$ref` points to (followed until a schema without one).
pub fn deref<'a>(doc: &'a Value, mut schema: &'a Value) -> Result<&'a Value, String> {
    for _ in 0..16 {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => schema = resolve(doc, r).ok_or_else(|| format!("unresolved $ref {r}"))?,
            None => return Ok(schema),
        }
    }
    Err("a $ref cycle".into())
}

/// Whether `value` is of the JSON Schema type `name`.
fn has_type(value: &Value, name: &str) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => false,
    }
}

/// Every way `value` (at `path`) departs from `schema`; empty when it conforms.
pub fn check(doc: &Value, schema: &Value, value: &Value, path: &str) -> Vec<String> {
    let schema = match deref(doc, schema) {
        Ok(s) => s,
        Err(e) => return vec![format!("{path}: {e}")],
    };
    let mut problems = Vec::new();
    if let Some(t) = schema.get("type") {
        let names: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if !names.iter().any(|n| has_type(value, n)) {
            problems.push(format!("{path}: {value} is not of type {t}"));
            return problems;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            problems.push(format!("{path}: {value} is not one of {allowed:?}"));
        }
    }
    if let Some(expected) = schema.get("const") {
        if expected != value {
            problems.push(format!("{path}: {value} is not {expected}"));
        }
    }
    if let Some(object) = value.as_object() {
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !object.contains_key(name) {
                problems.push(format!("{path}: required member `{name}` is missing"));
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        for (name, member) in object {
            let member_path = format!("{path}.{name}");
            match properties.and_then(|p| p.get(name)) {
                Some(s) => problems.extend(check(doc, s, member, &member_path)),
                None => {
                    if let Some(s) = schema.get("additionalProperties").filter(|s| s.is_object()) {
                        problems.extend(check(doc, s, member, &member_path));
                    }
                }
            }
        }
    }
    if let (Some(items), Some(list)) = (schema.get("items"), value.as_array()) {
        for (i, item) in list.iter().enumerate() {
            problems.extend(check(doc, items, item, &format!("{path}[{i}]")));
        }
    }
    problems
}

#[test]
fn the_checker_finds_what_it_should() {
    let doc = serde_json::json!({"components": {"schemas": {
        "E": {"type": "object", "required": ["error"], "properties": {
            "error": {"type": "string", "enum": ["a", "b"]},
            "n": {"type": "integer"},
            "list": {"type": "array", "items": {"type": "string"}},
            "map": {"type": "object", "additionalProperties": {"type": "integer"}}}}}}});
    let schema = serde_json::json!({"$ref": "#/components/schemas/E"});
    let ok = serde_json::json!({"error": "a", "n": 1, "list": ["x"], "map": {"k": 2}});
    assert!(check(&doc, &schema, &ok, "$").is_empty());
    for bad in [
        serde_json::json!({}),
        serde_json::json!({"error": "c"}),
        serde_json::json!({"error": "a", "n": "1"}),
        serde_json::json!({"error": "a", "list": [1]}),
        serde_json::json!({"error": "a", "map": {"k": "v"}}),
        serde_json::json!([]),
    ] {
        assert!(!check(&doc, &schema, &bad, "$").is_empty(), "{bad}");
    }
}
