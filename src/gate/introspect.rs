//! Token introspection (RFC 7662), the pure half: the request body and client authentication
//! the edge sends, and the judgement of the authorization server's answer. The exchange itself
//! lives in [`crate::gate::tokens`].

use serde_json::Value;

use crate::common::json::repeated_key;
use crate::gate::jwt::{self, Claims, Expectations, TokenError};

/// Largest introspection answer read; real ones are a few hundred bytes.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The form body of an introspection request for `token` (RFC 7662 §2.1).
pub fn request_body(token: &str) -> String {
    let mut body = String::with_capacity(token.len() + 40);
    body.push_str("token=");
    form_encode(token, &mut body);
    body.push_str("&token_type_hint=access_token");
    body
}

/// The `Authorization: Basic` value for client credentials: each part form-encoded before
/// joining, as RFC 6749 §2.3.1 asks (a `:` in a client id would otherwise split wrongly).
pub fn basic_authorization(client_id: &str, client_secret: &str) -> String {
    use base64::Engine as _;
    let mut pair = String::with_capacity(client_id.len() + client_secret.len() + 1);
    form_encode(client_id, &mut pair);
    pair.push(':');
    form_encode(client_secret, &mut pair);
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
}

/// `application/x-www-form-urlencoded` encoding of one value (unreserved bytes kept, space
/// as `+`, everything else percent-encoded).
fn form_encode(value: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in value.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'*' => out.push(b as char),
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 15)] as char);
            }
        }
    }
}

/// Judges an introspection answer (RFC 7662 §2.2) the way [`crate::gate::jwt::verify`] judges a
/// token: `active` must be `true`, and the claims that are present must fit (`exp`, `nbf`,
/// `iss`). `aud` must be present and name this resource: an opaque token the authorization
/// server did not bind to an audience could have been issued for any resource.
///
/// Without `exp` the token's lifetime is unknown: `expires_at` is then `u64::MAX`, and only
/// the caller's own bound limits how long it keeps the verdict.
///
/// A `400` with `error: unsupported_token_type` is a verdict too: servers such as
/// `oidc-provider` answer JWTs that way instead of `active: false`. Any other status says
/// nothing about the token.
pub fn judge(status: http::StatusCode, body: &[u8], expect: &Expectations, now: u64) -> Result<Claims, Invalid> {
    if status == http::StatusCode::BAD_REQUEST && error_code(body).as_deref() == Some("unsupported_token_type") {
        return Err(Invalid::Token(TokenError::Inactive));
    }
    if status != http::StatusCode::OK {
        return Err(Invalid::Response("not a 200 answer"));
    }
    let doc: Value = serde_json::from_slice(body).map_err(|_| Invalid::Response("not JSON"))?;
    let doc = doc.as_object().ok_or(Invalid::Response("not a JSON object"))?;
    // SECURITY: as in a JWT, a repeated name could be read otherwise by the MCP server, which
    // gets the subject and scopes from this answer with --strip-authorization.
    if repeated_key(body).is_some() {
        return Err(Invalid::Response("a member name is repeated"));
    }
    match doc.get("active") {
        Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => return Err(Invalid::Token(TokenError::Inactive)),
        _ => return Err(Invalid::Response("active is missing or not a boolean")),
    }
    let time = |name| match doc.get(name) {
        None => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or(Invalid::Response("a time claim is not a whole number")),
    };
    let expires_at = time("exp")?;
    if let Some(exp) = expires_at {
        if now > exp.saturating_add(expect.leeway_secs) {
            return Err(Invalid::Token(TokenError::Expired));
        }
    }
    if let Some(nbf) = time("nbf")? {
        if now.saturating_add(expect.leeway_secs) < nbf {
            return Err(Invalid::Token(TokenError::NotYetValid));
        }
    }
    if let Some(iss) = doc.get("iss") {
        if iss.as_str() != Some(expect.issuer.as_str()) {
            return Err(Invalid::Token(TokenError::WrongIssuer));
        }
    }
    let accepted = |aud: &Value| aud.as_str().is_some_and(|aud| expect.audiences.iter().any(|a| a == aud));
    let audience_ok = match doc.get("aud") {
        Some(Value::Array(list)) => list.iter().any(accepted),
        Some(single) => accepted(single),
        None => false,
    };
    if !audience_ok {
        return Err(Invalid::Token(TokenError::WrongAudience));
    }
    let text = |name| doc.get(name).and_then(Value::as_str).map(str::to_string);
    let scopes = doc
        .get("scope")
        .and_then(Value::as_str)
        .map(|s| s.split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect())
        .unwrap_or_default();
    Ok(Claims {
        subject: text("sub"),
        scopes,
        expires_at: expires_at.unwrap_or(u64::MAX),
        client_id: text("client_id"),
        // RFC 9449 §6.2: the answer carries the binding as the JWT would.
        jkt: jwt::confirmation(doc.get("cnf")).map_err(Invalid::Response)?,
        payload: doc.clone(),
    })
}

/// The OAuth `error` code of an error answer's JSON body, if it has one.
fn error_code(body: &[u8]) -> Option<String> {
    let doc: Value = serde_json::from_slice(body).ok()?;
    doc.get("error")?.as_str().map(str::to_string)
}

/// Why an introspection answer did not accept the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// The token is not good for this resource: 401 `invalid_token`.
    Token(TokenError),
    /// The answer is not a well-formed introspection response: the authorization server is
    /// misbehaving, which says nothing about the token (503, not 401).
    Response(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://as.example";
    const RESOURCE: &str = "https://mcp.example/mcp";
    const NOW: u64 = 1_800_000_000;

    fn expect() -> Expectations {
        Expectations {
            issuer: ISSUER.into(),
            audiences: vec![RESOURCE.into()],
            leeway_secs: 30,
            typ: crate::config::JwtTyp::Lenient,
        }
    }

    fn judge_json(v: serde_json::Value) -> Result<Claims, Invalid> {
        judge(http::StatusCode::OK, v.to_string().as_bytes(), &expect(), NOW)
    }

    #[test]
    fn an_active_token_for_this_resource_is_accepted_with_its_claims() {
        let claims = judge_json(serde_json::json!({
            "active": true, "aud": [RESOURCE, "other"], "iss": ISSUER, "exp": NOW + 60,
            "scope": "mcp:tools  mcp:read", "sub": "alice", "client_id": "app"
        }))
        .unwrap();
        assert_eq!(claims.subject.as_deref(), Some("alice"));
        assert_eq!(claims.client_id.as_deref(), Some("app"));
        assert_eq!(claims.scopes, ["mcp:tools", "mcp:read"]);
        assert_eq!(claims.expires_at, NOW + 60);
        assert_eq!(claims.jkt, None);
        // Every member is kept for a policy's claim conditions.
        assert_eq!(claims.payload.get("sub"), Some(&serde_json::json!("alice")));
    }

    #[test]
    fn the_dpop_binding_is_read_from_cnf() {
        let answer = |cnf| serde_json::json!({"active": true, "aud": RESOURCE, "exp": NOW + 60, "cnf": cnf});
        let bound = judge_json(answer(serde_json::json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"})));
        assert_eq!(bound.unwrap().jkt.as_deref(), Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"));
        assert_eq!(judge_json(answer(serde_json::json!({"x5t#S256": "abc"}))).unwrap().jkt, None);
        // SECURITY: a binding of the wrong shape is no answer, never "unbound".
        for bad in [serde_json::json!({"jkt": 7}), serde_json::json!("jkt")] {
            assert!(matches!(judge_json(answer(bad)), Err(Invalid::Response(_))));
        }
    }

    #[test]
    fn without_exp_the_lifetime_is_unknown() {
        let claims = judge_json(serde_json::json!({"active": true, "aud": RESOURCE})).unwrap();
        assert_eq!(claims.expires_at, u64::MAX);
        assert!(claims.scopes.is_empty());
    }

    #[test]
    fn refusals_name_what_failed() {
        use serde_json::json;
        let cases = [
            (json!({"active": false}), TokenError::Inactive),
            (json!({"active": false, "aud": RESOURCE}), TokenError::Inactive),
            (json!({"active": true, "aud": "https://other.example"}), TokenError::WrongAudience),
            (json!({"active": true}), TokenError::WrongAudience),
            (json!({"active": true, "aud": [1, 2]}), TokenError::WrongAudience),
            (json!({"active": true, "aud": RESOURCE, "iss": "https://evil.example"}), TokenError::WrongIssuer),
            (json!({"active": true, "aud": RESOURCE, "exp": NOW - 31}), TokenError::Expired),
            (json!({"active": true, "aud": RESOURCE, "nbf": NOW + 31}), TokenError::NotYetValid),
        ];
        for (doc, error) in cases {
            assert_eq!(judge_json(doc.clone()), Err(Invalid::Token(error)), "{doc}");
        }
        // Within the leeway.
        assert!(judge_json(json!({"active": true, "aud": RESOURCE, "exp": NOW - 30, "nbf": NOW + 30})).is_ok());
    }

    #[test]
    fn a_malformed_answer_is_the_servers_fault_not_the_tokens() {
        let twice = br#"{"active":true,"aud":"https://mcp.example/mcp","sub":"a","sub":"admin"}"#;
        for body in
            [&b"not json"[..], b"[]", br#"{"active":"true"}"#, br#"{}"#, br#"{"active":true,"exp":"soon"}"#, twice]
        {
            let judged = judge(http::StatusCode::OK, body, &expect(), NOW);
            assert!(matches!(judged, Err(Invalid::Response(_))), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn error_statuses_say_nothing_about_the_token_except_unsupported_token_type() {
        let active = br#"{"active":true,"aud":"https://mcp.example/mcp"}"#;
        let unsupported =
            br#"{"error":"unsupported_token_type","error_description":"Structured JWT Tokens cannot be introspected"}"#;
        let judged =
            |status: u16, body: &[u8]| judge(http::StatusCode::from_u16(status).unwrap(), body, &expect(), NOW);
        assert_eq!(judged(400, unsupported), Err(Invalid::Token(TokenError::Inactive)));
        assert!(matches!(judged(400, br#"{"error":"invalid_request"}"#), Err(Invalid::Response(_))));
        assert!(matches!(judged(401, br#"{"error":"invalid_client"}"#), Err(Invalid::Response(_))));
        assert!(matches!(judged(500, unsupported), Err(Invalid::Response(_))));
        assert!(matches!(judged(201, active), Err(Invalid::Response(_))));
    }

    #[test]
    fn request_encoding() {
        assert_eq!(request_body("a+b/c=="), "token=a%2Bb%2Fc%3D%3D&token_type_hint=access_token");
        // "edge:1" and "p@ss word" form-encoded, then base64 of "edge%3A1:p%40ss+word".
        assert_eq!(basic_authorization("edge:1", "p@ss word"), "Basic ZWRnZSUzQTE6cCU0MHNzK3dvcmQ=");
    }
}
