//! A minimal reader for the YAML the deployment files are written in, into `serde_json`
//! values: block mappings and sequences by indentation, `---` between documents, comments,
//! plain keys, quoted and plain scalars (all read as strings), flow sequences of scalars and
//! `{}`. No anchors, tags or block scalars: the deployment files use none, and a file that did would
//! fail to read here rather than be misread.

use serde_json::{Map, Value};

/// One meaningful line: its indentation and its text without a trailing comment.
#[derive(Debug, Clone)]
struct Line {
    indent: usize,
    text: String,
    number: usize,
}

/// Every document of `source`.
pub fn parse_documents(source: &str) -> Result<Vec<Value>, String> {
    let mut documents = Vec::new();
    let mut lines = Vec::new();
    for (number, raw) in source.lines().enumerate() {
        if raw.trim_end() == "---" {
            documents.push(std::mem::take(&mut lines));
            continue;
        }
        let text = strip_comment(raw).trim_end().to_owned();
        if text.trim().is_empty() {
            continue;
        }
        if text.contains('\t') || text.trim_start().starts_with(['&', '*', '!', '|', '>']) {
            return Err(format!("line {}: outside the supported subset", number + 1));
        }
        let indent = text.len() - text.trim_start().len();
        lines.push(Line {
            indent,
            text: text.trim_start().to_owned(),
            number: number + 1,
        });
    }
    documents.push(lines);
    documents
        .into_iter()
        .filter(|d| !d.is_empty())
        .map(|mut lines| {
            let mut i = 0;
            let indent = lines[0].indent;
            let value = block(&mut lines, &mut i, indent)?;
            match lines.get(i) {
                Some(l) => Err(format!("line {}: unexpected indentation", l.number)),
                None => Ok(value),
            }
        })
        .collect()
}

/// `raw` without a ` #` comment (one outside quotes).
fn strip_comment(raw: &str) -> &str {
    let mut quote = None;
    let mut previous = ' ';
    for (at, c) in raw.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if previous == ' ' => return &raw[..at],
            _ => {}
        }
        previous = c;
    }
    raw
}

/// Where a `key: value` line splits (the first `: ` or a final `:` outside quotes).
fn key_split(text: &str) -> Option<usize> {
    if text.starts_with(['"', '\'', '[', '{']) {
        return None; // a quoted or flow scalar (keys are plain in the deployment files)
    }
    text.find(": ")
        .or_else(|| text.ends_with(':').then(|| text.len() - 1))
}

fn is_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

/// The block (mapping or sequence) starting at line `i`, whose lines are at `indent`.
fn block(lines: &mut [Line], i: &mut usize, indent: usize) -> Result<Value, String> {
    if is_item(&lines[*i].text) {
        let mut items = Vec::new();
        while *i < lines.len() && lines[*i].indent == indent && is_item(&lines[*i].text) {
            let rest = lines[*i].text[1..].trim_start().to_owned();
            if rest.is_empty() {
                *i += 1;
                let inner = lines.get(*i).map(|l| l.indent).filter(|&n| n > indent);
                items.push(match inner {
                    Some(n) => block(lines, i, n)?,
                    None => Value::Null,
                });
            } else if key_split(&rest).is_some() {
                let offset = lines[*i].text.len() - rest.len();
                lines[*i].indent = indent + offset;
                lines[*i].text = rest;
                let item_indent = lines[*i].indent;
                items.push(block(lines, i, item_indent)?);
            } else {
                items.push(scalar(&rest)?);
                *i += 1;
            }
        }
        return Ok(Value::Array(items));
    }
    let mut map = Map::new();
    while *i < lines.len() && lines[*i].indent == indent && !is_item(&lines[*i].text) {
        let line = lines[*i].clone();
        let at = key_split(&line.text)
            .ok_or_else(|| format!("line {}: expected `key: value`", line.number))?;
        let key = unquote(line.text[..at].trim());
        let rest = line.text[at + 1..].trim();
        *i += 1;
        let value = if !rest.is_empty() {
            scalar(rest)?
        } else {
            match lines.get(*i) {
                Some(next) if next.indent > indent => {
                    let n = next.indent;
                    block(lines, i, n)?
                }
                Some(next) if next.indent == indent && is_item(&next.text) => {
                    block(lines, i, indent)?
                }
                _ => Value::Null,
            }
        };
        if map.insert(key.clone(), value).is_some() {
            return Err(format!("line {}: duplicate key {key}", line.number));
        }
    }
    Ok(Value::Object(map))
}

fn unquote(text: &str) -> String {
    let quoted = text.len() >= 2
        && ((text.starts_with('"') && text.ends_with('"'))
            || (text.starts_with('\'') && text.ends_with('\'')));
    if quoted {
        text[1..text.len() - 1].to_owned()
    } else {
        text.to_owned()
    }
}

/// A scalar, a flow sequence of scalars, or `{}`.
fn scalar(text: &str) -> Result<Value, String> {
    if text == "{}" {
        return Ok(Value::Object(Map::new()));
    }
    if text.starts_with(['&', '*', '!', '|', '>']) {
        return Err(format!("unsupported value {text}"));
    }
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        return Ok(Value::Array(
            inner
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(unquote(s)))
                .collect(),
        ));
    }
    if text.starts_with(['{', '[']) {
        return Err(format!("unsupported flow value {text}"));
    }
    Ok(Value::String(unquote(text)))
}

#[test]
fn reads_the_subset() {
    let docs = parse_documents(
        "# c\na: 1\nb:\n  c: \"x: y\" # note\n  d:\n    - e\n    - f: g\n      h: '30006'\n\
         i: [\"CMD\", curl]\nj:\n- k\n---\nl: {}\n",
    )
    .unwrap();
    assert_eq!(
        docs,
        vec![
            serde_json::json!({"a": "1", "b": {"c": "x: y", "d": ["e", {"f": "g", "h": "30006"}]},
                               "i": ["CMD", "curl"], "j": ["k"]}),
            serde_json::json!({"l": {}}),
        ]
    );
    assert!(parse_documents("a: &anchor 1\n").is_err());
    assert!(parse_documents("a:\n  b: 1\n c: 2\n").is_err());
}
