//! The wire form of a node's [`NodeFigures`] on the presence exchange: one JSON object per
//! heartbeat, versioned by its `v` field, read tolerantly and checked before it is believed.
//!
//! - **Versions.** Version 1 (no `v`) had `node_id`, `origin`, `connections`, `rooms`;
//!   version 2 ([`FIGURES_VERSION`]) adds `v` and, from a node running the Admin UI,
//!   `server` ([`ServerFigures`](super::presence::ServerFigures)). Changes are additive: a
//!   reader takes what it knows of a newer version and ignores the rest, and reads an older
//!   one with what it lacks absent, so nodes of different versions run side by side (a
//!   rolling upgrade). A change that is not additive needs another exchange.
//! - **Checks.** Any node (or anything else) able to publish to the exchange is heard by
//!   every node, so a body is refused unread when it is larger than [`MAX_FIGURES_BYTES`],
//!   and refused when it is not such an object, has `v` 0, an empty or overlong node id, an
//!   origin that is not the node id's (`<NODE_ID>/<run>`), or an overlong host name.

use super::presence::NodeFigures;

/// The version this build writes.
pub const FIGURES_VERSION: u32 = 2;

/// A larger body is refused without being parsed: RabbitMQ 4's default largest message
/// (`max_message_size`), about half a million rooms' figures.
pub const MAX_FIGURES_BYTES: usize = 16 * 1024 * 1024;

/// A longer node id or origin is refused.
pub const MAX_ID_BYTES: usize = 256;

/// A longer host name is refused (a DNS name has at most 253 characters).
pub const MAX_HOSTNAME_BYTES: usize = 255;

/// Why a body is not a node's figures.
#[derive(Debug, thiserror::Error)]
pub enum FiguresError {
    /// Larger than [`MAX_FIGURES_BYTES`].
    #[error("node figures of {0} bytes, more than the {MAX_FIGURES_BYTES} allowed")]
    Oversized(usize),
    /// Not JSON, or not the figures' shape.
    #[error("unreadable node figures: {0}")]
    Malformed(#[from] serde_json::Error),
    /// Read, but not believable.
    #[error("invalid node figures: {0}")]
    Invalid(&'static str),
}

/// The body for `figures`, written as [`FIGURES_VERSION`].
pub fn encode(figures: &NodeFigures) -> Vec<u8> {
    let mut written = figures.clone();
    written.version = FIGURES_VERSION;
    serde_json::to_vec(&written).expect("node figures serialize")
}

/// Read a body from the presence exchange (see the module documentation).
pub fn decode(body: &[u8]) -> Result<NodeFigures, FiguresError> {
    if body.len() > MAX_FIGURES_BYTES {
        return Err(FiguresError::Oversized(body.len()));
    }
    let figures: NodeFigures = serde_json::from_slice(body)?;
    if figures.version == 0 {
        return Err(FiguresError::Invalid("version 0"));
    }
    if figures.node_id.is_empty() || figures.node_id.len() > MAX_ID_BYTES {
        return Err(FiguresError::Invalid("empty or overlong node id"));
    }
    let run = figures
        .origin
        .strip_prefix(figures.node_id.as_str())
        .and_then(|rest| rest.strip_prefix('/'));
    if run.is_none_or(str::is_empty) || figures.origin.len() > MAX_ID_BYTES {
        return Err(FiguresError::Invalid("origin is not <node id>/<run>"));
    }
    if figures
        .server
        .as_ref()
        .is_some_and(|s| s.hostname.len() > MAX_HOSTNAME_BYTES)
    {
        return Err(FiguresError::Invalid("overlong host name"));
    }
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::presence::ServerFigures;
    use serde_json::json;

    fn sample() -> NodeFigures {
        NodeFigures {
            version: FIGURES_VERSION,
            node_id: "n1".into(),
            origin: "n1/0a0b0c0d".into(),
            connections: 3,
            rooms: [("user:u1".to_owned(), 1), ("ops".to_owned(), 2)].into(),
            server: Some(ServerFigures {
                hostname: "host-1".into(),
                pid: 4242,
                uptime_ms: 61_500,
                polling_connections: 1,
            }),
        }
    }

    #[test]
    fn figures_round_trip_as_the_current_version() {
        let mut unversioned = sample();
        unversioned.version = 0;
        let body = encode(&unversioned);
        let text = String::from_utf8(body.clone()).unwrap();
        assert!(text.contains(r#""v":2"#), "{text}");
        assert_eq!(decode(&body).unwrap(), sample());
        let mut without_ui = sample();
        without_ui.server = None;
        let body = encode(&without_ui);
        assert!(!String::from_utf8_lossy(&body).contains("server"));
        assert_eq!(decode(&body).unwrap(), without_ui);
    }

    #[test]
    fn version_1_figures_are_read_without_the_server_part() {
        let v1 = json!({"node_id": "n1", "origin": "n1/ff", "connections": 2, "rooms": {"r": 2}});
        let figures = decode(v1.to_string().as_bytes()).unwrap();
        assert_eq!(figures.version, 1);
        assert_eq!((figures.connections, figures.rooms["r"]), (2, 2));
        assert_eq!(figures.server, None);
    }

    #[test]
    fn a_newer_version_is_read_for_what_this_one_knows() {
        let v9 = json!({
            "v": 9, "node_id": "n1", "origin": "n1/ff", "connections": 1, "rooms": {},
            "server": {"hostname": "h", "pid": 1, "uptime_ms": 5, "polling_connections": 0,
                       "cpu": 0.5},
            "zones": ["a"],
        });
        let figures = decode(v9.to_string().as_bytes()).unwrap();
        assert_eq!(figures.version, 9);
        assert_eq!(figures.server.unwrap().hostname, "h");
    }

    #[test]
    fn malformed_figures_are_refused() {
        let refused = [
            "".to_owned(),
            "not json".to_owned(),
            "[1,2,3]".to_owned(),
            "null".to_owned(),
            r#"{"node_id":"n1","origin":"n1/ff","connections":1"#.to_owned(),
            json!({"origin": "n1/ff", "connections": 1, "rooms": {}}).to_string(),
            json!({"node_id": "n1", "origin": "n1/ff", "connections": -1, "rooms": {}}).to_string(),
            json!({"node_id": "n1", "origin": "n1/ff", "connections": 1.5, "rooms": {}})
                .to_string(),
            json!({"node_id": "n1", "origin": "n1/ff", "connections": 1, "rooms": {"r": "x"}})
                .to_string(),
            json!({"node_id": "n1", "origin": "n1/ff", "connections": 1, "rooms": [],}).to_string(),
            json!({"v": "2", "node_id": "n1", "origin": "n1/ff", "connections": 1, "rooms": {}})
                .to_string(),
            json!({"v": 2, "node_id": "n1", "origin": "n1/ff", "connections": 1, "rooms": {},
                   "server": {"hostname": "h"}})
            .to_string(),
            format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000)),
            "\u{0}\u{1}\u{2}".to_owned(),
        ];
        for body in refused {
            let answer = decode(body.as_bytes());
            assert!(
                matches!(answer, Err(FiguresError::Malformed(_))),
                "{body:.80}: {answer:?}"
            );
        }
        assert!(decode(&[0xff, 0xfe, b'{']).is_err(), "not UTF-8");
    }

    /// A change made to a sample's JSON.
    type Change = &'static dyn Fn(&mut serde_json::Value);

    #[test]
    fn unbelievable_figures_are_refused() {
        let base = |change: &dyn Fn(&mut serde_json::Value)| {
            let mut value = serde_json::to_value(sample()).unwrap();
            change(&mut value);
            decode(value.to_string().as_bytes())
        };
        let cases: [(&str, Change); 7] = [
            ("version 0", &|v| v["v"] = json!(0)),
            ("empty node id", &|v| v["node_id"] = json!("")),
            ("long node id", &|v| {
                let id = "n".repeat(MAX_ID_BYTES + 1);
                v["origin"] = json!(format!("{id}/ff"));
                v["node_id"] = json!(id);
            }),
            ("another node's origin", &|v| v["origin"] = json!("n2/ff")),
            ("a prefix's origin", &|v| v["origin"] = json!("n10/ff")),
            ("no run", &|v| v["origin"] = json!("n1/")),
            ("long host name", &|v| {
                v["server"]["hostname"] = json!("h".repeat(MAX_HOSTNAME_BYTES + 1))
            }),
        ];
        for (what, change) in cases {
            assert!(
                matches!(base(change), Err(FiguresError::Invalid(_))),
                "{what} is refused"
            );
        }
    }

    #[test]
    fn an_oversized_body_is_refused_unread() {
        let mut body = encode(&sample());
        body.resize(MAX_FIGURES_BYTES + 1, b' ');
        assert!(matches!(
            decode(&body),
            Err(FiguresError::Oversized(n)) if n == MAX_FIGURES_BYTES + 1
        ));
        // Just within the bound, trailing whitespace and all, it is read.
        body.truncate(MAX_FIGURES_BYTES);
        assert_eq!(decode(&body).unwrap(), sample());
    }
}
