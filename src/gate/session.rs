//! `Mcp-Session-Id` bound to the caller (protocol revision 2025-11-25, where the MCP server
//! chooses the id). On the way out the edge wraps the server's id with MACs over the id and
//! the caller; on the way in it unwraps it, and an id that another caller was given, or that
//! no edge made, never reaches the MCP server (the spec's answer for an unknown session is
//! 404). Nothing is stored: replicas sharing the keys accept each other's ids, and keys rotate
//! as [`KeyRing`] describes.
//!
//! Wrapped form, visible ASCII as the transport requires of session ids (0x21 to 0x7E):
//! `s1.` base64url(`id_tag || caller_tag`) `.` base64url(`id`), where `id_tag` is the MAC of
//! the id alone and `caller_tag` the MAC of the id and the caller. Fields are length-prefixed,
//! so no two different (id, caller) tuples are ever MACed as the same bytes.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::gate::keyring::{KeyRing, TAG_LEN};

/// The longest server session id wrapped. The transport allows JWTs as ids; 2 KiB holds one.
pub const MAX_ID_LEN: usize = 2048;
const PREFIX: &[u8] = b"s1.";
/// Two tags, in base64url.
const TAGS_B64_LEN: usize = (2 * TAG_LEN * 4).div_ceil(3);
/// The longest wrapped id: anything longer is refused before decoding.
pub const MAX_WRAPPED_LEN: usize = PREFIX.len() + TAGS_B64_LEN + 1 + (MAX_ID_LEN * 4).div_ceil(3);
/// SECURITY: a label per tag and per use, so neither tag (nor a DPoP nonce under the same key)
/// can stand in for another.
const ID_LABEL: &[u8] = b"mcp-auth-edge/session-id/v1\0";
const CALLER_LABEL: &[u8] = b"mcp-auth-edge/session-caller/v1\0";

/// Who a session belongs to: the token's issuer, subject and client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller<'a> {
    pub issuer: &'a str,
    pub subject: Option<&'a str>,
    pub client_id: Option<&'a str>,
}

/// Why a presented session id was refused. Each answers as an unknown session (404).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionError {
    /// Not an id this edge wraps: no prefix, bad base64url, wrong lengths.
    Malformed,
    /// Well-formed, but no edge with these keys made it.
    Forged,
    /// Made by an edge with these keys, for another caller: a session id that travelled. The
    /// separate id tag is what tells this apart from [`SessionError::Forged`].
    OtherCaller,
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SessionError::Malformed => "session id is not one this edge issued",
            SessionError::Forged => "session id has an invalid signature",
            SessionError::OtherCaller => "session id belongs to another caller",
        })
    }
}

impl std::error::Error for SessionError {}

/// The MCP server's id is empty, longer than [`MAX_ID_LEN`], or not visible ASCII as the
/// transport requires: it is not wrapped (nor passed on unbound).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadServerId;

impl fmt::Display for BadServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the MCP server's session id is empty, over {MAX_ID_LEN} bytes, or not visible ASCII")
    }
}

impl std::error::Error for BadServerId {}

/// The id to send the client in place of the server's `id`.
pub fn wrap(keys: &KeyRing, id: &[u8], caller: &Caller) -> Result<String, BadServerId> {
    if id.is_empty() || id.len() > MAX_ID_LEN || !id.iter().all(|b| (0x21..=0x7E).contains(b)) {
        return Err(BadServerId);
    }
    let mut tags = [0; 2 * TAG_LEN];
    tags[..TAG_LEN].copy_from_slice(&keys.tag(&[ID_LABEL, id]));
    tags[TAG_LEN..].copy_from_slice(&keys.tag(&[CALLER_LABEL, &caller_message(id, caller)]));
    let mut out = String::with_capacity(PREFIX.len() + TAGS_B64_LEN + 1 + (id.len() * 4).div_ceil(3));
    out.push_str("s1.");
    URL_SAFE_NO_PAD.encode_string(tags, &mut out);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(id, &mut out);
    Ok(out)
}

/// The server's id inside a presented `Mcp-Session-Id`, when this caller was given it.
pub fn unwrap(keys: &KeyRing, presented: &[u8], caller: &Caller) -> Result<Vec<u8>, SessionError> {
    if presented.len() > MAX_WRAPPED_LEN {
        return Err(SessionError::Malformed);
    }
    let rest = presented.strip_prefix(PREFIX).ok_or(SessionError::Malformed)?;
    let (tags_b64, id_b64) = rest.split_at_checked(TAGS_B64_LEN).ok_or(SessionError::Malformed)?;
    let id_b64 = id_b64.strip_prefix(b".").ok_or(SessionError::Malformed)?;
    let tags = URL_SAFE_NO_PAD.decode(tags_b64).map_err(|_| SessionError::Malformed)?;
    let id = URL_SAFE_NO_PAD.decode(id_b64).map_err(|_| SessionError::Malformed)?;
    let (id_tag, caller_tag) = tags.split_at_checked(TAG_LEN).ok_or(SessionError::Malformed)?;
    if id.is_empty() {
        return Err(SessionError::Malformed);
    }
    if !keys.verify(&[ID_LABEL, &id], id_tag) {
        return Err(SessionError::Forged);
    }
    // SECURITY: the caller tag is what binds the session; the id tag only names the failure.
    if !keys.verify(&[CALLER_LABEL, &caller_message(&id, caller)], caller_tag) {
        return Err(SessionError::OtherCaller);
    }
    Ok(id)
}

/// A resource's session binding, made once from its configuration: the keys, and the issuer
/// every caller's tokens come from.
#[derive(Debug)]
pub struct Binding {
    keys: KeyRing,
    issuer: Box<str>,
}

/// The field the MCP server names its session in (2025-11-25 Streamable HTTP).
pub const MCP_SESSION_ID: http::HeaderName = http::HeaderName::from_static("mcp-session-id");

/// Why a request's session id did not reach the MCP server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// More than one `Mcp-Session-Id` line: which one would the MCP server read?
    Repeated,
    /// Not one this edge gave this caller: the spec's answer for an unknown session, 404.
    Unknown(SessionError),
}

impl Binding {
    pub fn new(keys: KeyRing, issuer: &str) -> Binding {
        Binding { keys, issuer: issuer.into() }
    }

    fn caller<'a>(&'a self, subject: Option<&'a str>, client_id: Option<&'a str>) -> Caller<'a> {
        Caller { issuer: &self.issuer, subject, client_id }
    }

    /// On the way in: the presented session id (if any; `lines` is how many) replaced by the MCP
    /// server's own, when this caller was given it.
    pub fn admit(
        &self,
        headers: &mut http::HeaderMap,
        lines: usize,
        subject: Option<&str>,
        client_id: Option<&str>,
    ) -> Result<(), Refused> {
        match lines {
            0 => return Ok(()),
            1 => {}
            _ => return Err(Refused::Repeated),
        }
        let presented = headers.get(MCP_SESSION_ID).map(|v| v.as_bytes()).unwrap_or_default();
        let id = unwrap(&self.keys, presented, &self.caller(subject, client_id)).map_err(Refused::Unknown)?;
        // The id was checked as visible ASCII when it was wrapped, and the MAC vouches for it.
        let id = http::HeaderValue::from_bytes(&id).map_err(|_| Refused::Unknown(SessionError::Malformed))?;
        headers.insert(MCP_SESSION_ID, id);
        Ok(())
    }

    /// On the way out: the MCP server's session id (if it sent one) replaced by the id bound to
    /// this caller. An id that cannot be wrapped is not passed on unbound.
    pub fn give(
        &self,
        headers: &mut http::HeaderMap,
        subject: Option<&str>,
        client_id: Option<&str>,
    ) -> Result<(), BadServerId> {
        let mut ids = headers.get_all(MCP_SESSION_ID).iter();
        let Some(id) = ids.next() else { return Ok(()) };
        if ids.next().is_some() {
            return Err(BadServerId);
        }
        let wrapped = wrap(&self.keys, id.as_bytes(), &self.caller(subject, client_id))?;
        let wrapped = http::HeaderValue::try_from(wrapped).map_err(|_| BadServerId)?;
        headers.insert(MCP_SESSION_ID, wrapped);
        Ok(())
    }
}

/// The id and the caller, each field length-prefixed (an absent one as a lone zero byte), so
/// that moving bytes between fields changes the message.
fn caller_message(id: &[u8], caller: &Caller) -> Vec<u8> {
    let fields = [
        Some(id),
        Some(caller.issuer.as_bytes()),
        caller.subject.map(str::as_bytes),
        caller.client_id.map(str::as_bytes),
    ];
    let mut message = Vec::with_capacity(fields.iter().map(|f| 9 + f.map_or(0, <[u8]>::len)).sum());
    for field in fields {
        match field {
            None => message.push(0),
            Some(bytes) => {
                message.push(1);
                message.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
                message.extend_from_slice(bytes);
            }
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: Caller = Caller { issuer: "https://as.example.com", subject: Some("alice"), client_id: Some("app") };
    const ID: &[u8] = b"1868a90c-5f2e-4c1b-9d6a-0e3f7b2c4d51";

    fn keys(secrets: &[[u8; 32]]) -> KeyRing {
        KeyRing::new(secrets).unwrap()
    }

    #[test]
    fn a_wrapped_id_unwraps_for_its_caller() {
        let k = keys(&[[3; 32]]);
        let wrapped = wrap(&k, ID, &ALICE).unwrap();
        assert!(wrapped.starts_with("s1."));
        assert!(wrapped.bytes().all(|b| (0x21..=0x7E).contains(&b)), "{wrapped}");
        assert!(http::HeaderValue::from_str(&wrapped).is_ok());
        assert_eq!(unwrap(&k, wrapped.as_bytes(), &ALICE), Ok(ID.to_vec()));
        // Deterministic: a replica with the same key wraps the same id the same way.
        assert_eq!(wrap(&keys(&[[3; 32]]), ID, &ALICE).unwrap(), wrapped);
    }

    #[test]
    fn another_caller_is_refused() {
        let k = keys(&[[3; 32]]);
        let wrapped = wrap(&k, ID, &ALICE).unwrap();
        let others = [
            Caller { subject: Some("mallory"), ..ALICE },
            Caller { subject: None, ..ALICE },
            Caller { client_id: Some("other-app"), ..ALICE },
            Caller { client_id: None, ..ALICE },
            Caller { issuer: "https://evil.example.com", ..ALICE },
        ];
        for other in others {
            assert_eq!(unwrap(&k, wrapped.as_bytes(), &other), Err(SessionError::OtherCaller), "{other:?}");
        }
    }

    #[test]
    fn fields_cannot_be_shifted() {
        let k = keys(&[[3; 32]]);
        let a = Caller { issuer: "iss", subject: Some("ab"), client_id: Some("c") };
        let b = Caller { issuer: "iss", subject: Some("a"), client_id: Some("bc") };
        let wrapped = wrap(&k, ID, &a).unwrap();
        assert_eq!(unwrap(&k, wrapped.as_bytes(), &b), Err(SessionError::OtherCaller));
        let empty = Caller { issuer: "iss", subject: Some(""), client_id: None };
        let absent = Caller { issuer: "iss", subject: None, client_id: None };
        let wrapped = wrap(&k, ID, &empty).unwrap();
        assert_eq!(unwrap(&k, wrapped.as_bytes(), &absent), Err(SessionError::OtherCaller));
    }

    #[test]
    fn forged_ids_are_refused() {
        let k = keys(&[[3; 32]]);
        let wrapped = wrap(&k, ID, &ALICE).unwrap();
        let (head, _) = wrapped.rsplit_once('.').unwrap();
        // Another server id under the same tags.
        let swapped = format!("{head}.{}", URL_SAFE_NO_PAD.encode(b"another-session"));
        assert_eq!(unwrap(&k, swapped.as_bytes(), &ALICE), Err(SessionError::Forged));
        // Made with another key.
        let theirs = wrap(&keys(&[[4; 32]]), ID, &ALICE).unwrap();
        assert_eq!(unwrap(&k, theirs.as_bytes(), &ALICE), Err(SessionError::Forged));
        // The server's bare id.
        assert_eq!(unwrap(&k, ID, &ALICE), Err(SessionError::Malformed));
    }

    #[test]
    fn rotation_accepts_ids_wrapped_under_the_old_key() {
        let old = keys(&[[3; 32]]);
        let rotated = keys(&[[4; 32], [3; 32]]);
        let wrapped = wrap(&old, ID, &ALICE).unwrap();
        assert_eq!(unwrap(&rotated, wrapped.as_bytes(), &ALICE), Ok(ID.to_vec()));
        let fresh = wrap(&rotated, ID, &ALICE).unwrap();
        assert_ne!(fresh, wrapped);
        assert_eq!(unwrap(&old, fresh.as_bytes(), &ALICE), Err(SessionError::Forged));
    }

    #[test]
    fn malformed_ids_are_refused() {
        let k = keys(&[[3; 32]]);
        let wrapped = wrap(&k, ID, &ALICE).unwrap();
        let tags = &wrapped[3..3 + TAGS_B64_LEN];
        let cases = [
            String::new(),
            "s1.".into(),
            "s2.".to_string() + &wrapped[3..],
            wrapped[..wrapped.len() - 1].to_string() + "=",
            wrapped[..3 + TAGS_B64_LEN].to_string(),
            format!("s1.{tags}."),
            format!("s1.{tags}x{}", &wrapped[3 + TAGS_B64_LEN + 1..]),
            format!("s1.{}.{}", &tags[1..], &wrapped[3 + TAGS_B64_LEN + 1..]),
            "s1.".to_string() + &"A".repeat(MAX_WRAPPED_LEN),
        ];
        for case in cases {
            assert_eq!(unwrap(&k, case.as_bytes(), &ALICE), Err(SessionError::Malformed), "{case:.80}");
        }
        assert_eq!(unwrap(&k, b"s1.\xff\xfe", &ALICE), Err(SessionError::Malformed));
    }

    #[test]
    fn only_visible_ascii_ids_are_wrapped() {
        let k = keys(&[[3; 32]]);
        for bad in [&b""[..], b"has space", b"tab\t", b"caf\xc3\xa9", &[b'a'; MAX_ID_LEN + 1]] {
            assert_eq!(wrap(&k, bad, &ALICE), Err(BadServerId));
        }
        let longest = [b'~'; MAX_ID_LEN];
        let wrapped = wrap(&k, &longest, &ALICE).unwrap();
        assert_eq!(wrapped.len(), MAX_WRAPPED_LEN);
        assert_eq!(unwrap(&k, wrapped.as_bytes(), &ALICE), Ok(longest.to_vec()));
    }
}
