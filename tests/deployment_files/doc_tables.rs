//! The names a reference page's tables document: the backticked names in the first cell of
//! every table row of `docs/configuration.md` (variables) or `docs/metrics.md` (metrics).

use std::collections::BTreeSet;

/// Every `` `NAME` `` in the first cell of a table row of `markdown`.
pub fn first_column_names(markdown: &str) -> BTreeSet<String> {
    markdown
        .lines()
        .filter_map(|l| l.strip_prefix('|'))
        .filter_map(|l| l.split('|').next())
        .flat_map(|cell| cell.split('`').skip(1).step_by(2).map(str::to_owned))
        .collect()
}

/// The variables `docs/configuration.md` documents.
pub fn documented_variables() -> BTreeSet<String> {
    first_column_names(include_str!("../../docs/configuration.md"))
}

/// The metrics `docs/metrics.md` documents.
pub fn documented_metrics() -> BTreeSet<String> {
    first_column_names(include_str!("../../docs/metrics.md"))
        .into_iter()
        .filter(|n| n.starts_with("pushgate_") || n.starts_with("process_"))
        .collect()
}

/// The default `docs/configuration.md` gives `variable`, when it gives a plain one.
pub fn documented_default(variable: &str) -> Option<String> {
    let row = include_str!("../../docs/configuration.md")
        .lines()
        .find(|l| l.starts_with(&format!("| `{variable}` |")))?;
    let cell = row.split('|').nth(2)?.trim();
    cell.strip_prefix('`')?.strip_suffix('`').map(str::to_owned)
}
