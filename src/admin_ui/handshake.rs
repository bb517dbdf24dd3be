//! A socket's handshake as the admin UI shows it, without its secrets.
//!
//! The UI's socket page shows the handshake request: the client's address, the request's
//! headers, its query, its URL and when it was made. pushgate's clients authenticate with a JWT
//! in the query (`token`) or the `Authorization` header, and a browser sends its cookies:
//! those values are replaced by [`REDACTED`] before anything leaves the request.

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::HttpRequest;
use serde_json::{json, Map, Value};

/// What a secret is shown as.
pub const REDACTED: &str = "[redacted]";

/// Headers whose value is never shown.
const SECRET_HEADERS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];
/// Query parameters whose value is never shown.
const SECRET_QUERY: [&str; 1] = ["token"];

/// The handshake of `req` as the UI reads it: `address` (the proxy's `cf-connecting-ip` or
/// `x-forwarded-for` first, as the official server does, else the peer), `headers`, `query`,
/// `url`, `issued` (ms since the epoch), `time`, `secure`, `xdomain`.
pub fn describe(req: &HttpRequest) -> Value {
    let mut headers = Map::new();
    for (name, value) in req.headers() {
        let name = name.as_str();
        let shown = if SECRET_HEADERS.contains(&name) {
            REDACTED.to_owned()
        } else {
            String::from_utf8_lossy(value.as_bytes()).into_owned()
        };
        headers.insert(name.to_owned(), Value::from(shown));
    }
    let header = |name: &str| headers.get(name).and_then(Value::as_str).map(str::to_owned);
    let address = header("cf-connecting-ip")
        .or_else(|| header("x-forwarded-for"))
        .or_else(|| req.peer_addr().map(|a| a.ip().to_string()))
        .unwrap_or_default();
    let xdomain = headers.contains_key("origin");
    let mut query = Map::new();
    let mut shown_query = Vec::new();
    for (key, value) in url_pairs(req.query_string()) {
        let value = if SECRET_QUERY.contains(&key.as_str()) {
            REDACTED.to_owned()
        } else {
            value
        };
        shown_query.push(format!("{}={}", encode(&key), encode(&value)));
        query.insert(key, Value::from(value));
    }
    let url = if shown_query.is_empty() {
        req.path().to_owned()
    } else {
        format!("{}?{}", req.path(), shown_query.join("&"))
    };
    let now = SystemTime::now();
    let issued = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    json!({
        "address": address,
        "headers": headers,
        "query": query,
        "url": url,
        "issued": issued,
        "time": humantime::format_rfc3339_millis(now).to_string(),
        "secure": req.connection_info().scheme() == "https",
        "xdomain": xdomain,
    })
}

/// The decoded `key=value` pairs of a query string.
fn url_pairs(query: &str) -> Vec<(String, String)> {
    actix_web::web::Query::<Vec<(String, String)>>::from_query(query)
        .map(|q| q.into_inner())
        .unwrap_or_default()
}

/// Percent-encode what a query value may not hold as is.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~[]".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn secrets_are_redacted_and_the_rest_is_shown() {
        let req = TestRequest::get()
            .uri("/socket.io/?EIO=4&transport=polling&token=eyJ.secret.jwt")
            .insert_header(("Authorization", "Bearer eyJ.other"))
            .insert_header(("Cookie", "sid=1"))
            .insert_header(("Origin", "http://localhost:5173"))
            .insert_header(("X-Forwarded-For", "10.1.2.3"))
            .peer_addr("127.0.0.1:4000".parse().unwrap())
            .to_http_request();
        let shown = describe(&req);
        let text = shown.to_string();
        assert!(!text.contains("secret") && !text.contains("eyJ"), "{text}");
        assert!(!text.contains("sid=1"), "{text}");
        assert_eq!(shown["headers"]["authorization"], REDACTED);
        assert_eq!(shown["query"]["token"], REDACTED);
        assert_eq!(shown["query"]["transport"], "polling");
        assert_eq!(shown["address"], "10.1.2.3");
        assert_eq!(shown["xdomain"], true);
        assert_eq!(
            shown["url"],
            "/socket.io/?EIO=4&transport=polling&token=[redacted]"
        );
        assert!(shown["issued"].as_u64().unwrap() > 0);
    }

    #[test]
    fn the_peer_is_the_address_without_a_proxy_header() {
        let req = TestRequest::get()
            .uri("/socket.io/?EIO=4&transport=websocket")
            .peer_addr("127.0.0.9:4000".parse().unwrap())
            .to_http_request();
        let shown = describe(&req);
        assert_eq!(shown["address"], "127.0.0.9");
        assert_eq!(shown["xdomain"], false);
        assert_eq!(shown["url"], "/socket.io/?EIO=4&transport=websocket");
    }
}
