//! `LOG_FORMAT`, on the real binary as a child process: `json` writes one JSON object per line
//! on stderr (`ts`, `level`, `target`, `msg`), `text` (the default) env_logger's own lines.

mod common;

use common::ServerProcess;

#[test]
fn json_writes_one_object_per_line() {
    let server = ServerProcess::start(&[("LOG_FORMAT", "json")]);
    let lines = server.startup_log.clone();
    assert!(lines.len() >= 2, "the start is logged: {lines:?}");
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: not JSON: {line}"));
        let fields = v.as_object().expect("an object");
        assert_eq!(fields.len(), 4, "{line}");
        for field in ["ts", "level", "target", "msg"] {
            assert!(fields[field].is_string(), "{field} in {line}");
        }
        assert!(v["ts"].as_str().unwrap().ends_with('Z'), "{line}");
    }
    let listening = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| {
            v["msg"]
                .as_str()
                .unwrap()
                .starts_with("pushgate listening on ")
        })
        .expect("the listening line");
    assert_eq!(listening["level"], "INFO");
    assert_eq!(listening["target"], "pushgate");
}

#[test]
fn text_is_the_default() {
    let server = ServerProcess::start(&[]);
    let lines = &server.startup_log;
    assert!(lines.iter().all(|l| !l.starts_with('{')), "text: {lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" INFO ") && l.contains("open file limit")),
        "env_logger's `[ts LEVEL target] msg`: {lines:?}"
    );
}
