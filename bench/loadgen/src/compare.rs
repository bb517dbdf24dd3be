//! `compare`: two result lines side by side, with the ratio of their headline figures.

use std::fmt::Write as _;

use serde_json::Value;

/// Whether more is better for a figure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Better {
    /// Higher is better.
    Higher,
    /// Lower is better.
    Lower,
}

/// The headline figures of a scenario: (label, JSON pointer into `results`, which way is better).
pub fn headlines(scenario: &str) -> Vec<(&'static str, &'static str, Better)> {
    use Better::*;
    match scenario {
        "idle" => vec![
            ("connected", "/connect/connected", Higher),
            ("connects/s", "/connect/rate_per_sec", Higher),
            ("handshake p99 ms", "/connect/handshake/p99_ms", Lower),
            ("RSS per connection KiB", "/rss_per_conn_kib", Lower),
            ("closed during hold", "/closed_during_hold", Lower),
        ],
        "fanout" | "unicast" => vec![
            ("deliveries/s", "/delivered_per_sec", Higher),
            ("pushes/s sent", "/pushes/achieved_rate", Higher),
            ("lost", "/lost", Lower),
            ("latency p50 ms", "/latency/p50_ms", Lower),
            ("latency p99 ms", "/latency/p99_ms", Lower),
            ("latency p999 ms", "/latency/p999_ms", Lower),
            ("latency max ms", "/latency/max_ms", Lower),
            (
                "server CPU µs/delivery",
                "/server_cpu_us_per_delivery",
                Lower,
            ),
            ("server RSS KiB", "/server_rss_kib", Lower),
        ],
        "connect-storm" => vec![
            ("max connects/s without failure", "/max_ok_rate", Higher),
            ("first failures at rate", "/first_failure_rate", Higher),
            ("handshake p99 ms at max", "/at_max/handshake/p99_ms", Lower),
            (
                "server CPU µs/connect at max",
                "/at_max/server_cpu_us_per_connect",
                Lower,
            ),
        ],
        _ => vec![],
    }
}

/// The machine's state during each run (`machine` of the result line: the probe before it and
/// the core's speed during it): two rows that differ much mean the two runs did not meet the
/// same machine, whatever their ratio says.
const MACHINE_ROWS: [(&str, &str); 3] = [
    (
        "machine: round trip µs, 1 CPU",
        "/probe/same_cpu_rtt_cpu_us",
    ),
    (
        "machine: round trip µs, 2 CPUs",
        "/probe/cross_cpu_rtt_cpu_us",
    ),
    (
        "machine: core ns/iter in run",
        "/core_during_run/median_ns_per_iter",
    ),
];

/// The last line of `text` that is a JSON object with a `scenario`.
pub fn result_line(text: &str) -> Option<Value> {
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .find(|v| v.get("scenario").is_some())
}

fn show(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::Number(n)) => {
            let f = n.as_f64().unwrap_or(0.0);
            if f.fract() == 0.0 && f.abs() < 1e15 {
                format!("{}", f as i64)
            } else if f.abs() >= 100.0 {
                format!("{f:.1}")
            } else {
                format!("{f:.3}")
            }
        }
        Some(other) => other.to_string(),
    }
}

/// A table: figure, a, b, a/b, and which is better. `a` is normally pushgate.
pub fn table(a: &Value, b: &Value) -> String {
    let scenario = a["scenario"].as_str().unwrap_or("?");
    let (ta, tb) = (
        a["target"].as_str().unwrap_or("a"),
        b["target"].as_str().unwrap_or("b"),
    );
    let mut out = String::new();
    let _ = writeln!(out, "scenario {scenario}, params {}", a["params"]);
    if b["params"] != a["params"] {
        let _ = writeln!(out, "  (other params: {})", b["params"]);
    }
    let _ = writeln!(
        out,
        "{:<32} {:>14} {:>14} {:>10}  better",
        "figure", ta, tb, "ratio"
    );
    let mut row = |label: &str, va: Option<&Value>, vb: Option<&Value>, better: &str| {
        let ratio = match (va.and_then(Value::as_f64), vb.and_then(Value::as_f64)) {
            (Some(x), Some(y)) if y != 0.0 => format!("{:.2}x", x / y),
            _ => "-".into(),
        };
        let _ = writeln!(
            out,
            "{label:<32} {:>14} {:>14} {ratio:>10}  {better}",
            show(va),
            show(vb)
        );
    };
    for (label, ptr, better) in headlines(scenario) {
        let better = match better {
            Better::Higher => "higher",
            Better::Lower => "lower",
        };
        row(
            label,
            a["results"].pointer(ptr),
            b["results"].pointer(ptr),
            better,
        );
    }
    for (label, ptr) in MACHINE_ROWS {
        row(
            label,
            a["machine"].pointer(ptr),
            b["machine"].pointer(ptr),
            "same?",
        );
    }
    let _ = writeln!(
        out,
        "clean run (no failure, no loss): {} {}, {} {}",
        ta, a["ok"], tb, b["ok"]
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compares_headlines() {
        let a = json!({"scenario": "fanout", "target": "pushgate", "params": {"clients": 10}, "ok": true,
                       "results": {"delivered_per_sec": 2000.0, "lost": 0, "latency": {"p99_ms": 1.5}},
                       "machine": {"core_during_run": {"median_ns_per_iter": 2.6}}});
        let b = json!({"scenario": "fanout", "target": "node", "params": {"clients": 10}, "ok": true,
                       "results": {"delivered_per_sec": 1000.0, "lost": 0, "latency": {"p99_ms": 3.0}},
                       "machine": {"core_during_run": {"median_ns_per_iter": 2.0}}});
        let t = table(&a, &b);
        assert!(t.contains("2.00x"), "{t}");
        assert!(t.contains("0.50x"), "{t}");
        assert!(t.contains("machine: core ns/iter in run"), "{t}");
        assert!(t.contains("1.30x"), "{t}");
        let text = format!("noise\n{}\n", serde_json::to_string(&a).unwrap());
        assert_eq!(result_line(&text), Some(a));
    }
}
