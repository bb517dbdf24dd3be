//! The reference in `docs/` says what the code does, where a machine can tell: every variable
//! `src/config.rs` reads and `config/default.toml` sets is in `docs/configuration.md`; the
//! metrics of `docs/metrics.md` are exactly those `/metrics` renders, with their types; the
//! close-code table of `docs/limits.md` is `src/disconnect.rs`'s; and no page links outside
//! the repository.

#[allow(dead_code)] // the deployment test's helper; this test reads only some of it
#[path = "deployment_files/doc_tables.rs"]
mod doc_tables;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use pushgate::disconnect::{CloseReason, PollingAnswer, Reconnect};
use pushgate_actors::metrics::{AmqpOutcome, Metrics};

/// `"NAME"` string literals of `source` that look like variable names.
fn quoted_variables(source: &str) -> BTreeSet<String> {
    source
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| s.len() >= 4)
        .filter(|s| s.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_variable_the_code_reads_is_documented() {
    let config = include_str!("../src/config.rs");
    let code = config.split("#[cfg(test)]").next().unwrap();
    let mut read = quoted_variables(code);
    // The host name NODE_ID defaults to, read where /proc does not give it: not a setting.
    assert!(read.remove("HOSTNAME"));
    assert!(
        read.len() >= 30,
        "variables found in src/config.rs: {read:?}"
    );
    let in_toml: BTreeSet<String> =
        pushgate::config::parse_toml(include_str!("../config/default.toml"))
            .expect("config/default.toml")
            .into_keys()
            .collect();
    read.extend(in_toml);
    read.insert("RUST_LOG".into());
    let documented = doc_tables::documented_variables();
    let missing: Vec<_> = read.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "not in docs/configuration.md: {missing:?}"
    );
}

#[test]
fn the_metrics_page_lists_exactly_the_rendered_metrics() {
    let metrics = Metrics::new();
    // The two families without a label value until their first observation.
    metrics.amqp_message("quota.updated", AmqpOutcome::Routed);
    metrics
        .disconnects
        .with_label_values(&["client_close"])
        .inc();
    let rendered: BTreeMap<String, String> = metrics
        .render()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let (name, kind) = l.split_once(' ').unwrap();
            (name.to_owned(), kind.to_owned())
        })
        .collect();
    let page = include_str!("../docs/metrics.md");
    let documented: BTreeMap<String, String> = page
        .lines()
        .filter(|l| l.starts_with("| `pushgate_") || l.starts_with("| `process_"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells[1].trim_matches('`').to_owned();
            (name, cells[2].to_owned())
        })
        .collect();
    assert_eq!(
        documented.keys().collect::<BTreeSet<_>>(),
        doc_tables::documented_metrics().iter().collect(),
        "every documented metric is a table row"
    );
    assert_eq!(documented, rendered, "docs/metrics.md vs /metrics");
}

#[test]
fn the_close_code_table_is_the_disconnect_table() {
    let page = include_str!("../docs/limits.md");
    let rows: Vec<Vec<&str>> = page
        .lines()
        .skip_while(|l| !l.starts_with("## Close codes and disconnect reasons"))
        .filter(|l| l.starts_with("| `"))
        .map(|l| l.split('|').map(str::trim).collect())
        .collect();
    assert_eq!(rows.len(), CloseReason::ALL.len(), "one row per reason");
    for (reason, row) in CloseReason::ALL.iter().zip(&rows) {
        let d = reason.row();
        assert_eq!(row[1], format!("`{}`", d.label));
        assert_eq!(row[3], d.websocket_code.to_string(), "{}", d.label);
        let polling = match d.polling {
            PollingAnswer::Noop => "`6` (noop)",
            PollingAnswer::Close => "`1` (close)",
        };
        assert_eq!(row[4], polling, "{}", d.label);
        let reconnects = match d.reconnect {
            Reconnect::Yes => row[5].starts_with("yes"),
            Reconnect::UnlessClientDisconnected => row[5].starts_with("no after its own"),
            Reconnect::No => row[5].starts_with("no:"),
        };
        assert!(reconnects, "{}: {}", d.label, row[5]);
    }
}

#[test]
fn pages_link_only_inside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages: Vec<_> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    pages.push(root.join("README.md"));
    assert!(pages.len() >= 10);
    for page in pages {
        let text = std::fs::read_to_string(&page).unwrap();
        for target in text
            .split("](")
            .skip(1)
            .map(|t| t.split(')').next().unwrap())
        {
            let file = target.split('#').next().unwrap();
            let at = page.display();
            assert!(!target.contains("://"), "{at}: links outside: {target}");
            assert!(!target.contains("shared"), "{at}: {target}");
            if !file.is_empty() {
                let resolved = page.parent().unwrap().join(file);
                assert!(resolved.exists(), "{at}: {target} does not exist");
                let canonical = resolved.canonicalize().unwrap();
                assert!(
                    canonical.starts_with(root),
                    "{at}: {target} leaves the repository"
                );
            }
        }
    }
}
