//! `docs/openapi.json` is what the server does: the document is OpenAPI 3.1 and
//! self-consistent, every documented route answers every documented status, with the
//! documented body (required members and their types) and headers, on the real server on
//! 127.0.0.1:0; and every route the server has (the API's route table in `src/http/api.rs`,
//! the probes in `src/http/probes.rs`) and every method it serves there is documented.

mod common;
#[path = "openapi/schema_check.rs"]
mod schema_check;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use pushgate::config::{Config, ConsulConfig};
use pushgate_actors::readiness::{AmqpState, ConsumerKind};
use serde_json::Value;

const SPEC: &str = include_str!("../docs/openapi.json");
const API_ROUTES: &str = include_str!("../src/http/api.rs");
const PROBE_ROUTES: &str = include_str!("../src/http/probes.rs");

/// The event stream: its `200` never ends, so only its head and first bytes are read.
const STREAM: &str = "/api/v1/stream";
/// The HTTP methods an OpenAPI path item may hold.
const METHODS: [&str; 7] = ["get", "post", "put", "delete", "patch", "options", "head"];
/// The largest API body of the servers under test.
const MAX_BODY: usize = 256;
/// An origin `CORS_ORIGIN` allows by default.
const ALLOWED_ORIGIN: &str = "http://localhost:5173";

fn spec() -> Value {
    serde_json::from_str(SPEC).expect("docs/openapi.json is JSON")
}

/// One documented operation: a path and a method.
struct Operation {
    path: String,
    method: &'static str,
    has_body: bool,
    statuses: Vec<String>,
}

fn operations(spec: &Value) -> Vec<Operation> {
    let mut out = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            out.push(Operation {
                path: path.clone(),
                method,
                has_body: op.get("requestBody").is_some(),
                statuses: op["responses"]
                    .as_object()
                    .map(|r| r.keys().cloned().collect())
                    .unwrap_or_default(),
            });
        }
    }
    out
}

/// Every `$ref` string anywhere under `value`.
fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(list) => list.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// The `{name}`s of a path template.
fn path_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

#[test]
fn the_document_is_openapi_3_1_and_self_consistent() {
    let spec = spec();
    assert!(
        spec["openapi"].as_str().unwrap_or("").starts_with("3.1."),
        "OpenAPI 3.1: {}",
        spec["openapi"]
    );
    assert!(spec["info"]["title"].is_string() && spec["info"]["version"].is_string());
    let mut all = Vec::new();
    refs(&spec, &mut all);
    assert!(!all.is_empty());
    for r in &all {
        assert!(
            schema_check::resolve(&spec, r).is_some(),
            "$ref {r} does not resolve"
        );
    }
    let schemes = spec["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    let ops = operations(&spec);
    assert!(!ops.is_empty());
    for (path, item) in spec["paths"].as_object().unwrap() {
        let mut declared = Vec::new();
        let op_params = METHODS
            .iter()
            .filter_map(|m| item.get(*m))
            .flat_map(|op| op["parameters"].as_array().cloned().unwrap_or_default());
        for p in item["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .chain(op_params)
        {
            let p = schema_check::deref(&spec, &p).unwrap();
            if p["in"] == "path" {
                assert_eq!(p["required"], true, "{path}: path parameters are required");
                declared.push(p["name"].as_str().unwrap().to_owned());
            }
        }
        for name in path_params(path) {
            assert!(
                declared.iter().any(|d| d == name),
                "{path}: {{{name}}} has no parameter"
            );
        }
    }
    for op in &ops {
        let where_ = format!("{} {}", op.method, op.path);
        assert!(!op.statuses.is_empty(), "{where_}: no responses");
        for status in &op.statuses {
            assert!(
                status == "default" || status.parse::<u16>().is_ok_and(|s| (100..600).contains(&s)),
                "{where_}: response key {status}"
            );
        }
        let security = &spec["paths"][&op.path][op.method]["security"];
        for requirement in security
            .as_array()
            .expect("every operation says its security")
        {
            for name in requirement.as_object().unwrap().keys() {
                assert!(schemes.contains_key(name), "{where_}: scheme {name}");
            }
        }
    }
}

/// The servers a status needs: the API key and Consul configured (`full`, ready), the key
/// without Consul (`no_consul`, never ready), and no key (`no_key`).
struct Servers {
    full: TestServer,
    no_consul: TestServer,
    no_key: TestServer,
}

fn small_limits(mut config: Config) -> Config {
    config.push_max_body_bytes = MAX_BODY;
    config.limits.http_body_timeout = Duration::from_millis(500);
    config
}

fn start_servers() -> Servers {
    // Consul on a port nothing listens on: the watcher retries, the snapshot stays empty.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut full = small_limits(config());
    full.consul = Some(ConsulConfig {
        url: format!("http://127.0.0.1:{closed_port}"),
        token: None,
        debounce: Duration::from_millis(100),
    });
    let full = start_with(full);
    full.state.readiness.set_amqp(AmqpState::Connected);
    for kind in ConsumerKind::ALL {
        full.state.readiness.set_consuming(kind, true);
    }
    let mut no_key = small_limits(config());
    no_key.push_api_key = None;
    Servers {
        full,
        no_consul: start_with(small_limits(config())),
        no_key: start_with(no_key),
    }
}

/// `path` with each `{param}` replaced: `value(name)`.
fn concrete(path: &str, value: impl Fn(&str) -> &'static str) -> String {
    path.split('/')
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => value(name),
                None => s,
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// A valid value for each path parameter.
fn valid_param(name: &str) -> &'static str {
    match name {
        "room" => "admin",
        _ => "42",
    }
}

/// A request to `server`: `method` on `path`, with the API key when `key`, with `body`.
async fn request(
    server: &TestServer,
    method: &str,
    path: &str,
    key: bool,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Answer {
    let method = awc::http::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
    let mut req = http().request(method, server.url(path));
    if key {
        req = req.insert_header(("X-API-Key", API_KEY));
    }
    if body.is_some() {
        req = req.insert_header(("Content-Type", "application/json"));
    }
    for h in headers {
        req = req.insert_header(*h);
    }
    send(req, body).await
}

/// The event stream's answer with a user's token: its head and the body's first bytes (the
/// `retry:` line), then the connection is dropped.
async fn stream_head(server: &TestServer) -> Answer {
    let head = format!(
        "GET {STREAM}?token={} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
        server.token("openapi", false),
        server.addr
    );
    raw_exchange(server, head, Some("retry:")).await
}

/// A POST to `path` that declares a body and never sends it, read to the connection's end.
async fn body_never_sent(server: &TestServer, path: &str) -> Answer {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nX-API-Key: {API_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n",
        server.addr
    );
    raw_exchange(server, head, None).await
}

/// Send `head` on a connection of its own and read the answer until it holds `until` (or, with
/// none, until the server closes the connection).
async fn raw_exchange(server: &TestServer, head: String, until: Option<&'static str>) -> Answer {
    use std::io::{Read, Write};
    let addr = server.addr;
    let raw = actix_rt::task::spawn_blocking(move || {
        let mut tcp = std::net::TcpStream::connect(addr).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        tcp.write_all(head.as_bytes()).expect("send the head");
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        while !until.is_some_and(|u| String::from_utf8_lossy(&raw).contains(u)) {
            match tcp.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
        raw
    })
    .await
    .unwrap();
    Answer::parse(&raw)
}

/// Drive the server into answering `op` with `status`; `Err` when there is no way to.
async fn drive(servers: &Servers, op: &Operation, status: &str) -> Result<Answer, String> {
    let path = concrete(&op.path, valid_param);
    let valid_body = op.has_body.then(|| br#"{"type":"openapi.test"}"#.to_vec());
    let full = &servers.full;
    Ok(match status {
        "200" if op.path == STREAM => stream_head(full).await,
        "200" | "202" => request(full, op.method, &path, true, &[], valid_body).await,
        "204" => {
            let headers = [
                ("Origin", ALLOWED_ORIGIN),
                ("Access-Control-Request-Method", "POST"),
            ];
            request(full, op.method, &path, false, &headers, None).await
        }
        "400" if op.has_body => {
            request(full, op.method, &path, true, &[], Some(b"[1]".to_vec())).await
        }
        "400" if op.path.contains("{room}") => {
            let path = concrete(&op.path, |_| "not%20a%20room");
            request(full, op.method, &path, true, &[], None).await
        }
        "401" => request(full, op.method, &path, false, &[], valid_body).await,
        "403" => request(&servers.no_key, op.method, &path, true, &[], valid_body).await,
        "404" if !path_params(&op.path).is_empty() => {
            let path = concrete(&op.path, |_| "");
            request(full, op.method, &path, true, &[], valid_body).await
        }
        "405" => request(full, "put", &path, true, &[], None).await,
        "408" if op.method == "post" => body_never_sent(full, &path).await,
        "413" if op.has_body => {
            let body = vec![b' '; MAX_BODY + 1];
            request(full, op.method, &path, true, &[], Some(body)).await
        }
        "503" => request(&servers.no_consul, op.method, &path, true, &[], valid_body).await,
        _ => return Err(format!("no way to make the server answer {status}")),
    })
}

/// Whether `answer` is `response` (a response object of the document): its body's media
/// type and schema, and its documented headers.
fn conforms(spec: &Value, response: &Value, answer: &Answer) -> Vec<String> {
    let response = match schema_check::deref(spec, response) {
        Ok(r) => r,
        Err(e) => return vec![e],
    };
    let mut problems = Vec::new();
    let content_type = answer.header("content-type").unwrap_or("");
    match response.get("content").and_then(Value::as_object) {
        None => {
            if !answer.body.is_empty() {
                problems.push(format!("no body documented, got {:?}", answer.body));
            }
        }
        Some(content) => {
            let (media, media_type) = content.iter().next().expect("a media type");
            if !content_type.starts_with(media.as_str()) {
                problems.push(format!("content type {content_type:?}, documented {media}"));
            }
            if media == "application/json" {
                match serde_json::from_str::<Value>(&answer.body) {
                    Ok(body) => problems.extend(schema_check::check(
                        spec,
                        &media_type["schema"],
                        &body,
                        "body",
                    )),
                    Err(e) => problems.push(format!("body is not JSON ({e}): {:?}", answer.body)),
                }
            }
        }
    }
    for (name, header) in response
        .get("headers")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        match (answer.header(name), header["schema"].get("const")) {
            (None, _) => problems.push(format!("header {name} missing")),
            (Some(got), Some(expected))
                if !got.eq_ignore_ascii_case(expected.as_str().unwrap()) =>
            {
                problems.push(format!("header {name}: {got:?}, documented {expected}"))
            }
            _ => {}
        }
    }
    problems
}

#[actix_web::test]
async fn every_documented_route_answers_every_documented_status() {
    let spec = spec();
    let servers = start_servers();
    let mut failures = Vec::new();
    let mut driven = 0;
    for op in operations(&spec) {
        for status in op.statuses.iter().filter(|s| *s != "default") {
            let where_ = format!("{} {} → {status}", op.method.to_uppercase(), op.path);
            let answer = match drive(&servers, &op, status).await {
                Ok(a) => a,
                Err(e) => {
                    failures.push(format!("{where_}: {e}"));
                    continue;
                }
            };
            driven += 1;
            if answer.status.as_str() != status {
                failures.push(format!(
                    "{where_}: answered {}: {}",
                    answer.status, answer.body
                ));
                continue;
            }
            let response = &spec["paths"][&op.path][op.method]["responses"][status];
            for problem in conforms(&spec, response, &answer) {
                failures.push(format!("{where_}: {problem}"));
            }
        }
    }
    assert!(driven > 40, "only {driven} route × status pairs driven");
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// The paths of the server's route tables, `{param}`s written `{}`.
fn served_paths() -> BTreeSet<String> {
    let prefix = API_ROUTES
        .lines()
        .find_map(|l| l.trim().strip_prefix("const PREFIX: &str = \""))
        .and_then(|rest| rest.strip_suffix("\";"))
        .expect("PREFIX in src/http/api.rs");
    let mut paths = BTreeSet::new();
    // RoutedPath::parse's arms: `[Some("rooms"), Some(room), Some("messages"), None] ...`
    for arm in API_ROUTES
        .lines()
        .filter_map(|l| l.trim().strip_prefix("[Some("))
    {
        let segments = format!("Some({}", arm.split(']').next().unwrap());
        let path: Vec<String> = segments
            .split(", ")
            .take_while(|s| *s != "None")
            .map(|s| {
                let inner = s.strip_prefix("Some(").and_then(|s| s.strip_suffix(')'));
                match inner.expect("a Some(...) segment") {
                    quoted if quoted.starts_with('"') => quoted.trim_matches('"').to_owned(),
                    _param => "{}".to_owned(),
                }
            })
            .collect();
        paths.insert(format!("{prefix}/{}", path.join("/")));
    }
    // probes::configure's table: `("/health", web::get().to(health)),`
    for probe in PROBE_ROUTES
        .lines()
        .filter_map(|l| l.trim().strip_prefix("(\"/"))
        .filter(|l| l.contains("web::"))
    {
        paths.insert(format!("/{}", probe.split('"').next().unwrap()));
    }
    paths
}

fn template(path: &str) -> String {
    path.split('/')
        .map(|s| if s.starts_with('{') { "{}" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

#[actix_web::test]
async fn every_route_and_method_the_server_serves_is_documented() {
    let spec = spec();
    let documented: BTreeSet<String> = spec["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(|p| template(p))
        .collect();
    let served = served_paths();
    assert!(served.len() >= 10, "route tables read: {served:?}");
    assert_eq!(served, documented, "served routes vs docs/openapi.json");

    let servers = start_servers();
    let mut failures = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        let concrete_path = concrete(path, valid_param);
        for method in METHODS {
            let body = (method == "post").then(|| b"{}".to_vec());
            let answer = request(&servers.full, method, &concrete_path, true, &[], body).await;
            let served = !matches!(answer.status.as_u16(), 404 | 405);
            if served != item.get(method).is_some() {
                failures.push(format!(
                    "{} {path}: answered {}, documented: {}",
                    method.to_uppercase(),
                    answer.status,
                    item.get(method).is_some()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
