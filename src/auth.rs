//! JWT authentication of Socket.IO clients (HS256, shared secret with user-service), and the
//! admin rule.
//!
//! Tokens are verified against `JWT_SECRET`, then `JWT_OLD_SECRET` during a rotation. `exp` is
//! required and enforced with no leeway, and so is `nbf` when present; `iss` / `aud` are checked
//! when configured; only HS256 is accepted (`alg: none` and every other algorithm are refused);
//! a token whose header has `crit` is refused, since pushgate understands no JWS extension
//! (RFC 7515 §4.1.11). A verified [`Identity`] carries its `exp`, so that a session can end when
//! its token does.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::JwtConfig;

/// Longest accepted `sub`.
pub const MAX_SUBJECT_LEN: usize = 128;

/// Role names that make a client admin.
pub const ADMIN_ROLES: [&str; 3] = ["admin", "super_admin", "superadmin"];

/// Why a token was refused. Clients only ever see `unauthorized`; the reason goes to the log.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AuthError {
    /// No source held a token.
    #[error("no token")]
    Missing,
    /// `auth.token` was present but not a string.
    #[error("auth.token is not a string")]
    NotAString,
    /// Signature, algorithm, format, issuer or audience check failed.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// `exp` is in the past.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token not valid yet (nbf)")]
    NotYetValid,
    /// The header names critical extensions (`crit`), none of which pushgate understands.
    #[error("token header has crit: {0}")]
    CriticalExtension(String),
    /// `sub` is missing, empty, too long or not a string/integer.
    #[error("invalid sub claim")]
    BadSubject,
}

/// Who a verified token speaks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// `sub`: the user id; the client is joined to `user:<user_id>`.
    pub user_id: String,
    /// `username`, when present.
    pub username: Option<String>,
    /// `isSuperAdmin` or an admin role.
    pub is_admin: bool,
    /// `tenantId`, as given.
    pub tenant_id: Option<Value>,
    /// `exp`: the session ends (reason `token_expired`) when it passes. `None` only for an
    /// `exp` too far ahead for the clock to represent (never in practice).
    pub expires_at: Option<SystemTime>,
}

#[derive(Deserialize)]
struct Claims {
    /// Required and checked by the validation; a number of seconds (possibly with a fraction).
    exp: f64,
    sub: Option<Value>,
    username: Option<Value>,
    roles: Option<Value>,
    #[serde(rename = "isSuperAdmin")]
    is_super_admin: Option<Value>,
    #[serde(rename = "tenantId")]
    tenant_id: Option<Value>,
}

/// Verifies tokens; built once at start, shared by every session.
pub struct JwtVerifier {
    keys: Vec<DecodingKey>,
    validation: Validation,
}

impl JwtVerifier {
    /// A verifier for the configured secrets and claim checks.
    pub fn new(cfg: &JwtConfig) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_nbf = true;
        // A configured issuer or audience must be present, not merely match when present.
        let mut required = vec!["exp"];
        match &cfg.issuer {
            Some(iss) => {
                validation.set_issuer(&[iss]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &cfg.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        let keys = std::iter::once(&cfg.secret)
            .chain(cfg.old_secret.as_ref())
            .map(|s| DecodingKey::from_secret(s.as_bytes()))
            .collect();
        JwtVerifier { keys, validation }
    }

    /// Verify a token and read its identity.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        if let Some(crit) = critical_extensions(token)? {
            return Err(AuthError::CriticalExtension(crit));
        }
        let mut last = AuthError::Missing;
        for key in &self.keys {
            match decode::<Claims>(token, key, &self.validation) {
                Ok(data) => return identity(data.claims),
                Err(e) => {
                    use jsonwebtoken::errors::ErrorKind;
                    last = match e.kind() {
                        ErrorKind::ExpiredSignature => AuthError::Expired,
                        ErrorKind::ImmatureSignature => return Err(AuthError::NotYetValid),
                        // Only a bad signature is worth retrying with the old secret.
                        ErrorKind::InvalidSignature => AuthError::Invalid(e.to_string()),
                        _ => return Err(AuthError::Invalid(e.to_string())),
                    };
                    if last == AuthError::Expired {
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }
}

/// The `crit` header parameter's extensions, if the token has one. jsonwebtoken ignores `crit`;
/// RFC 7515 §4.1.11 says a recipient that does not understand the listed extensions must refuse
/// the token, and pushgate understands none. The header is parsed only when its text can hold
/// the parameter (`crit`, or a `\u` escape that could spell it): most tokens are decoded once,
/// by jsonwebtoken, as before.
fn critical_extensions(token: &str) -> Result<Option<String>, AuthError> {
    use base64::Engine;
    let encoded = token.split('.').next().unwrap_or_default();
    let Ok(text) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded) else {
        return Ok(None); // jsonwebtoken refuses it with its own message
    };
    let mentions = |needle: &[u8]| text.windows(needle.len()).any(|w| w == needle);
    if !mentions(b"crit") && !mentions(b"\\u") {
        return Ok(None);
    }
    match jsonwebtoken::decode_header(token) {
        Ok(header) => Ok(header.crit.map(|crit| crit.join(","))),
        Err(e) => Err(AuthError::Invalid(e.to_string())),
    }
}

fn identity(claims: Claims) -> Result<Identity, AuthError> {
    let user_id = match claims.sub {
        Some(Value::String(s)) => s,
        Some(Value::Number(n)) if n.is_u64() => n.to_string(),
        _ => return Err(AuthError::BadSubject),
    };
    if user_id.is_empty() || user_id.chars().count() > MAX_SUBJECT_LEN {
        return Err(AuthError::BadSubject);
    }
    let role_admin = match &claims.roles {
        Some(Value::Array(roles)) => roles
            .iter()
            .any(|r| r.as_str().is_some_and(|r| ADMIN_ROLES.contains(&r))),
        _ => false,
    };
    let is_admin = claims.is_super_admin == Some(Value::Bool(true)) || role_admin;
    Ok(Identity {
        user_id,
        username: match claims.username {
            Some(Value::String(s)) => Some(s),
            _ => None,
        },
        is_admin,
        tenant_id: claims.tenant_id.filter(|v| !v.is_null()),
        expires_at: Duration::try_from_secs_f64(claims.exp)
            .ok()
            .and_then(|after_epoch| UNIX_EPOCH.checked_add(after_epoch)),
    })
}

/// The credentials of an `Authorization: Bearer <credentials>` header, the scheme matched in
/// any case (`bearer`, `BEARER`: HTTP auth schemes are case-insensitive); `None` for another
/// scheme or empty credentials.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, credentials) = authorization.trim_start().split_once([' ', '\t'])?;
    let credentials = credentials.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !credentials.is_empty()).then_some(credentials)
}

/// The handshake's token sources, in the order they are tried.
#[derive(Debug, Clone, Default)]
pub struct HandshakeTokens {
    /// The handshake query's `token`.
    pub query: Option<String>,
    /// The `Authorization: Bearer` header's token.
    pub bearer: Option<String>,
}

impl HandshakeTokens {
    /// Read the sources from a request's query value and `Authorization` header.
    pub fn new(query: Option<&str>, authorization: Option<&str>) -> Self {
        let bearer = authorization.and_then(bearer_token);
        HandshakeTokens {
            query: query.filter(|t| !t.is_empty()).map(str::to_owned),
            bearer: bearer.map(str::to_owned),
        }
    }

    /// The token to verify: the CONNECT auth object's `token`, else the query's, else the
    /// header's. An empty `auth.token` counts as absent; one that is not a string (`null`
    /// included: what `auth: {token: localStorage.getItem(..)}` sends with nothing stored) is
    /// an invalid token, and the other sources are not tried (docs/socketio.md).
    pub fn pick<'a>(&'a self, auth: Option<&'a Value>) -> Result<&'a str, AuthError> {
        match auth.and_then(|a| a.get("token")) {
            Some(Value::String(s)) if !s.is_empty() => return Ok(s),
            Some(Value::String(_)) | None => {}
            Some(_) => return Err(AuthError::NotAString),
        }
        self.query
            .as_deref()
            .or(self.bearer.as_deref())
            .ok_or(AuthError::Missing)
    }
}

/// What a minted token says (for `--dev`, tests and the load generator).
#[derive(Debug, Clone, Serialize)]
pub struct TokenClaims {
    /// User id.
    pub sub: String,
    /// Display name.
    pub username: String,
    /// Role names.
    pub roles: Vec<String>,
    /// Super-admin flag.
    #[serde(rename = "isSuperAdmin")]
    pub is_super_admin: bool,
    /// Issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at.
    pub iat: u64,
}

impl TokenClaims {
    /// Claims for `sub`, valid for `ttl`, with the issuer and audience `cfg` expects.
    pub fn new(cfg: &JwtConfig, sub: &str, admin: bool, ttl: Duration) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        TokenClaims {
            sub: sub.to_owned(),
            username: sub.to_owned(),
            roles: if admin {
                vec!["admin".into()]
            } else {
                vec!["user".into()]
            },
            is_super_admin: false,
            iss: cfg.issuer.clone(),
            aud: cfg.audience.clone(),
            exp: now + ttl.as_secs(),
            iat: now,
        }
    }
}

/// Sign claims with HS256.
pub fn mint(secret: &str, claims: &TokenClaims) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signing of serializable claims cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use serde_json::json;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn cfg() -> JwtConfig {
        JwtConfig {
            secret: SECRET.into(),
            old_secret: Some("old-secret-old-secret-old-secret".into()),
            issuer: Some("cloudphone-platform".into()),
            audience: Some("cloudphone-users".into()),
        }
    }

    fn raw(secret: &str, claims: Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn exp(offset: i64) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            + offset
    }

    fn claims(extra: Value) -> Value {
        let mut base = json!({"sub": "42", "exp": exp(3600), "iss": "cloudphone-platform", "aud": "cloudphone-users"});
        base.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        base
    }

    #[test]
    fn minted_tokens_verify_with_roles() {
        let v = JwtVerifier::new(&cfg());
        let t = mint(
            SECRET,
            &TokenClaims::new(&cfg(), "7", true, Duration::from_secs(60)),
        );
        let id = v.verify(&t).unwrap();
        assert_eq!(id.user_id, "7");
        assert!(id.is_admin);
        let t = mint(
            SECRET,
            &TokenClaims::new(&cfg(), "8", false, Duration::from_secs(60)),
        );
        assert!(!v.verify(&t).unwrap().is_admin);
    }

    #[test]
    fn admin_rule() {
        let v = JwtVerifier::new(&cfg());
        for (extra, admin) in [
            (json!({"isSuperAdmin": true}), true),
            (json!({"isSuperAdmin": "true"}), false),
            (json!({"roles": ["user", "super_admin"]}), true),
            (json!({"roles": ["superadmin"]}), true),
            (json!({"roles": ["Admin"]}), false),
            (json!({"roles": "admin"}), false),
            (json!({"roles": [1, null, "admin"]}), true),
        ] {
            let id = v.verify(&raw(SECRET, claims(extra.clone()))).unwrap();
            assert_eq!(id.is_admin, admin, "{extra}");
        }
    }

    #[test]
    fn refusals() {
        let v = JwtVerifier::new(&cfg());
        assert_eq!(
            v.verify(&raw(SECRET, claims(json!({"exp": exp(-10)})))),
            Err(AuthError::Expired)
        );
        assert!(matches!(
            v.verify(&raw("wrong-secret-wrong-secret-wrong!", claims(json!({})))),
            Err(AuthError::Invalid(_))
        ));
        assert!(v.verify("garbage").is_err());
        assert!(v.verify("").is_err());
        for bad_sub in [json!(""), json!("x".repeat(129)), json!(-1), json!(true)] {
            assert_eq!(
                v.verify(&raw(SECRET, claims(json!({ "sub": bad_sub })))),
                Err(AuthError::BadSubject)
            );
        }
        // 128 characters of anything is a valid subject.
        let long = "é".repeat(128);
        assert_eq!(
            v.verify(&raw(SECRET, claims(json!({ "sub": long.clone() }))))
                .unwrap()
                .user_id,
            long
        );
        // Missing exp, wrong issuer, wrong audience.
        let mut no_exp = claims(json!({}));
        no_exp.as_object_mut().unwrap().remove("exp");
        assert!(v.verify(&raw(SECRET, no_exp)).is_err());
        assert!(v
            .verify(&raw(SECRET, claims(json!({"iss": "someone-else"}))))
            .is_err());
        assert!(v
            .verify(&raw(SECRET, claims(json!({"aud": "someone-else"}))))
            .is_err());
        // A configured issuer or audience must be present.
        for claim in ["iss", "aud"] {
            let mut c = claims(json!({}));
            c.as_object_mut().unwrap().remove(claim);
            assert!(v.verify(&raw(SECRET, c)).is_err(), "token without {claim}");
        }
    }

    #[test]
    fn nbf_is_enforced_with_no_leeway() {
        let v = JwtVerifier::new(&cfg());
        assert_eq!(
            v.verify(&raw(SECRET, claims(json!({"nbf": exp(3600)})))),
            Err(AuthError::NotYetValid)
        );
        assert_eq!(
            v.verify(&raw(SECRET, claims(json!({"nbf": exp(5)})))),
            Err(AuthError::NotYetValid),
            "5 s ahead is not yet valid either"
        );
        assert!(v
            .verify(&raw(SECRET, claims(json!({"nbf": exp(-5)}))))
            .is_ok());
        // nbf is optional: the tokens of the other tests carry none.
        assert!(v.verify(&raw(SECRET, claims(json!({})))).is_ok());
        // A future nbf is not retried with the old secret: the signature was good.
        assert_eq!(
            v.verify(&raw(
                "old-secret-old-secret-old-secret",
                claims(json!({"nbf": exp(3600)}))
            )),
            Err(AuthError::NotYetValid)
        );
    }

    #[test]
    fn a_crit_header_is_refused_even_with_a_good_signature() {
        let v = JwtVerifier::new(&cfg());
        let mut header = Header::new(Algorithm::HS256);
        header.crit = Some(vec!["x".into()]);
        let token = encode(
            &header,
            &claims(json!({})),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert_eq!(
            v.verify(&token),
            Err(AuthError::CriticalExtension("x".into()))
        );
        // An empty crit list is still a crit header (RFC 7515 forbids it outright).
        header.crit = Some(vec![]);
        let token = encode(
            &header,
            &claims(json!({})),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert!(matches!(
            v.verify(&token),
            Err(AuthError::CriticalExtension(_))
        ));
        // `crit` spelled with a JSON escape is still `crit`.
        use base64::Engine;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let message = format!(
            "{}.{}",
            b64(br#"{"alg":"HS256","\u0063rit":["y"]}"#),
            b64(claims(json!({})).to_string().as_bytes())
        );
        let signature = jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &EncodingKey::from_secret(SECRET.as_bytes()),
            Algorithm::HS256,
        )
        .unwrap();
        assert_eq!(
            v.verify(&format!("{message}.{signature}")),
            Err(AuthError::CriticalExtension("y".into()))
        );
        // A header that is not JSON at all is an invalid token, not a panic.
        assert!(matches!(
            v.verify("bm90IGpzb24.e30.sig"),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn the_identity_carries_the_tokens_expiry() {
        let v = JwtVerifier::new(&cfg());
        let at = exp(600);
        let id = v
            .verify(&raw(SECRET, claims(json!({ "exp": at }))))
            .unwrap();
        assert_eq!(
            id.expires_at,
            Some(UNIX_EPOCH + Duration::from_secs(at as u64))
        );
        // A fractional exp keeps its fraction.
        let id = v
            .verify(&raw(SECRET, claims(json!({ "exp": at as f64 + 0.5 }))))
            .unwrap();
        assert_eq!(
            id.expires_at,
            Some(UNIX_EPOCH + Duration::from_millis(at as u64 * 1000 + 500))
        );
        // An exp past what the clock can hold never expires, and does not panic.
        let id = v
            .verify(&raw(SECRET, claims(json!({ "exp": u64::MAX }))))
            .unwrap();
        assert_eq!(id.expires_at, None);
        // One past what jsonwebtoken reads is no exp at all: refused.
        assert!(v
            .verify(&raw(SECRET, claims(json!({ "exp": 1e300 }))))
            .is_err());
    }

    #[test]
    fn alg_none_and_other_algorithms_are_refused() {
        let v = JwtVerifier::new(&cfg());
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let body = b64.encode(claims(json!({})).to_string());
        for header in [
            r#"{"alg":"none","typ":"JWT"}"#,
            r#"{"alg":"HS512","typ":"JWT"}"#,
        ] {
            let token = format!("{}.{}.", b64.encode(header), body);
            assert!(v.verify(&token).is_err(), "{header}");
        }
        let hs512 = encode(
            &Header::new(Algorithm::HS512),
            &claims(json!({})),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert!(v.verify(&hs512).is_err());
    }

    #[test]
    fn old_secret_still_accepted_during_rotation() {
        let v = JwtVerifier::new(&cfg());
        let t = raw("old-secret-old-secret-old-secret", claims(json!({})));
        assert_eq!(v.verify(&t).unwrap().user_id, "42");
    }

    #[test]
    fn checks_skipped_when_unset() {
        let mut c = cfg();
        c.issuer = None;
        c.audience = None;
        let v = JwtVerifier::new(&c);
        let t = raw(
            SECRET,
            json!({"sub": 5, "exp": exp(60), "aud": "x", "iss": "y"}),
        );
        assert_eq!(v.verify(&t).unwrap().user_id, "5");
    }

    #[test]
    fn token_source_order() {
        let h = HandshakeTokens::new(Some("q"), Some("Bearer h"));
        assert_eq!(h.pick(Some(&json!({"token": "a"}))), Ok("a"));
        assert_eq!(h.pick(Some(&json!({"token": ""}))), Ok("q"));
        assert_eq!(h.pick(Some(&json!({}))), Ok("q"));
        assert_eq!(
            h.pick(Some(&json!({"token": 5}))),
            Err(AuthError::NotAString)
        );
        assert_eq!(
            h.pick(Some(&json!({"token": null}))),
            Err(AuthError::NotAString)
        );
        let h = HandshakeTokens::new(Some(""), Some("Bearer h"));
        assert_eq!(h.pick(None), Ok("h"));
        let h = HandshakeTokens::new(None, Some("Bearer "));
        assert_eq!(h.pick(None), Err(AuthError::Missing));
        let h = HandshakeTokens::new(None, Some("Basic abc"));
        assert_eq!(h.pick(None), Err(AuthError::Missing));
    }

    #[test]
    fn the_bearer_scheme_is_matched_in_any_case() {
        for header in [
            "Bearer t",
            "bearer t",
            "BEARER t",
            "BeArEr   t ",
            "Bearer\tt",
        ] {
            assert_eq!(bearer_token(header), Some("t"), "{header:?}");
            let h = HandshakeTokens::new(None, Some(header));
            assert_eq!(h.bearer.as_deref(), Some("t"), "{header:?}");
        }
        for header in [
            "Basic dXNlcg==",
            "Bearer",
            "Bearer ",
            "Bearert",
            "Token t",
            "",
        ] {
            assert_eq!(bearer_token(header), None, "{header:?}");
        }
    }
}
