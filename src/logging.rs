//! The log on stderr: `RUST_LOG` filters it (default [`DEFAULT_FILTER`]), `LOG_FORMAT` chooses
//! env_logger's text lines or one JSON object per line for log collectors.

use std::io::Write;

/// The filter when `RUST_LOG` is unset: pushgate's own lines from `info`, the noisy
/// dependencies (the `tracing` spans actix's crates emit, lapin's connection chatter) only
/// from `warn`.
pub const DEFAULT_FILTER: &str = "info,tracing::span=warn,lapin=warn";

/// How each log line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// env_logger's own `[ts LEVEL target] msg` lines.
    Text,
    /// One JSON object per line: `ts` (RFC 3339, UTC, milliseconds), `level`, `target`, `msg`.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("use text or json".into()),
        }
    }
}

/// One record as a JSON line (without its newline).
pub fn json_line(ts: &str, record: &log::Record<'_>) -> String {
    serde_json::json!({
        "ts": ts,
        "level": record.level().as_str(),
        "target": record.target(),
        "msg": record.args().to_string(),
    })
    .to_string()
}

/// Install the logger for the process (once, before anything logs).
pub fn init(format: LogFormat) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(DEFAULT_FILTER));
    if format == LogFormat::Json {
        builder.format(|buf, record| {
            let ts = buf.timestamp_millis().to_string();
            writeln!(buf, "{}", json_line(&ts, record))
        });
    }
    builder.init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_line_is_one_object_with_the_four_fields() {
        let line = json_line(
            "2026-01-02T03:04:05.678Z",
            &log::Record::builder()
                .level(log::Level::Warn)
                .target("pushgate::server")
                .args(format_args!("a \"quoted\"\nmessage"))
                .build(),
        );
        assert!(!line.contains('\n'), "one line: {line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["ts"], "2026-01-02T03:04:05.678Z");
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["target"], "pushgate::server");
        assert_eq!(v["msg"], "a \"quoted\"\nmessage");
        assert_eq!(v.as_object().unwrap().len(), 4);
    }

    #[test]
    fn formats_are_named_in_any_case() {
        assert_eq!("JSON".parse(), Ok(LogFormat::Json));
        assert_eq!("text".parse(), Ok(LogFormat::Text));
        assert!("yaml".parse::<LogFormat>().is_err());
    }
}
