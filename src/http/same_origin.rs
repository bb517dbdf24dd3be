//! Same-origin WebSocket upgrades: a browser page served from the host pushgate answers on (the
//! console behind the same host) sends an `Origin` naming that host, which need not be listed
//! in `CORS_ORIGIN`.
//!
//! An `Origin` is same-origin when its host and port are the request's `Host` header's, hosts
//! compared without case and ports with the scheme's default filled in (`http`/`ws` → 80,
//! `https`/`wss` → 443). A `Host` without a port matches an `Origin` on its scheme's default
//! port (a TLS-terminating proxy in front passes `Host: example.com` for
//! `https://example.com`).

use actix_web::http::header;
use actix_web::HttpRequest;

/// Whether the request's `Origin` names the host and port of its `Host` header.
pub fn is_same_origin(req: &HttpRequest) -> bool {
    let header_text = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    match (header_text(header::ORIGIN), header_text(header::HOST)) {
        (Some(origin), Some(host)) => same_origin(origin, host),
        _ => false,
    }
}

/// Whether `origin` (`scheme://host[:port]`) names the same host and port as `host`
/// (`host[:port]`, a `Host` header).
pub fn same_origin(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => 80,
        "https" | "wss" => 443,
        _ => return false,
    };
    let (Some((origin_host, origin_port)), Some((host_host, host_port))) =
        (split_authority(authority), split_authority(host))
    else {
        return false;
    };
    let origin_port = origin_port.unwrap_or(default_port);
    origin_host.eq_ignore_ascii_case(host_host) && host_port.unwrap_or(default_port) == origin_port
}

/// `host[:port]` (IPv6 hosts in brackets) as host and port; `None` when the port is not a
/// number or anything follows the authority.
fn split_authority(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')? + 1;
        let rest = &authority[end..];
        let port = match rest {
            "" => None,
            _ => Some(rest.strip_prefix(':')?),
        };
        (&authority[..end], port)
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() || host.contains(['/', '@', '?', '#']) {
        return None;
    }
    let port = match port {
        Some(port) => Some(port.parse().ok()?),
        None => None,
    };
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_must_match() {
        assert!(same_origin("http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(same_origin(
            "http://Console.Example.com:8080",
            "console.example.com:8080"
        ));
        assert!(same_origin("http://[::1]:3000", "[::1]:3000"));
        assert!(!same_origin("http://127.0.0.1:8081", "127.0.0.1:8080"));
        assert!(!same_origin("http://localhost:8080", "127.0.0.1:8080"));
        assert!(!same_origin(
            "http://evil.example:8080",
            "console.example:8080"
        ));
        assert!(!same_origin("http://[::1]:3001", "[::1]:3000"));
    }

    #[test]
    fn default_ports_are_filled_in() {
        assert!(same_origin("http://example.com", "example.com:80"));
        assert!(same_origin("http://example.com:80", "example.com"));
        assert!(same_origin("https://example.com", "example.com:443"));
        assert!(same_origin("https://example.com", "example.com"));
        assert!(same_origin("http://example.com", "example.com"));
        assert!(!same_origin("https://example.com", "example.com:80"));
        assert!(!same_origin("http://example.com", "example.com:443"));
        assert!(!same_origin("http://example.com:8080", "example.com"));
    }

    #[test]
    fn malformed_origins_are_not_same_origin() {
        for origin in [
            "null",
            "example.com",
            "ftp://example.com",
            "http://",
            "http://example.com:port",
            "http://example.com:80/path",
            "http://user@example.com",
            "http://example.com:99999",
        ] {
            assert!(!same_origin(origin, "example.com"), "{origin}");
        }
        assert!(!same_origin("http://example.com", ""));
    }
}
