//! Forwarding headers: hop-by-hop fields removed (RFC 9110 §7.6.1) and the `X-Forwarded-*`
//! fields set, as pure functions over a header map; and the names of the identity fields the
//! edge sets for the MCP server.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
pub const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
/// With `--strip-authorization`: who the verified token names, and its scopes.
pub const X_AUTH_SUBJECT: HeaderName = HeaderName::from_static("x-auth-subject");
pub const X_AUTH_SCOPES: HeaderName = HeaderName::from_static("x-auth-scopes");
/// The client the token was issued to: tokens from a client-credentials grant may have no subject.
pub const X_AUTH_CLIENT_ID: HeaderName = HeaderName::from_static("x-auth-client-id");
/// The RFC 7638 thumbprint of the key a DPoP request proved possession of (RFC 9449), in
/// base64url: the token's `cnf.jkt`, which the edge checked against the proof.
pub const X_AUTH_DPOP_JKT: HeaderName = HeaderName::from_static("x-auth-dpop-jkt");

/// Fields that are hop-by-hop whether or not `Connection` names them.
pub const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The fields the edge sets or vouches for, whose underscore spellings a client could use to
/// smuggle its own value past the edge to a server that reads `_` as `-` (CGI-style servers
/// turn both into `HTTP_X_FORWARDED_FOR`).
const EDGE_SET: [&[u8]; 4] = [b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-request-id"];

/// Whether a client's field claims something only the edge may say, and is removed before
/// forwarding: any `X-Auth-*` (the identity fields of `--strip-authorization`, and every other
/// name an MCP server trusting the edge might read as one), `Forwarded` and `X-Real-IP` (client
/// addresses the edge does not vouch for), and underscore spellings of the fields the edge sets.
/// Names are compared with `_` and `-` as one.
pub fn is_edge_asserted(name: &HeaderName) -> bool {
    let n = name.as_str().as_bytes();
    match n.first() {
        Some(b'x') => {
            (n.len() > 7 && dashed_eq(&n[..7], b"x-auth-"))
                || dashed_eq(n, b"x-real-ip")
                || (n.contains(&b'_') && EDGE_SET.iter().any(|field| dashed_eq(n, field)))
        }
        Some(b'f') => n == b"forwarded",
        _ => false,
    }
}

/// Equal, reading `_` in `name` as `-` (both are lower case: `HeaderName` is).
fn dashed_eq(name: &[u8], field: &[u8]) -> bool {
    name.len() == field.len() && name.iter().zip(field).all(|(&a, &b)| a == b || (a == b'_' && b == b'-'))
}

/// Whether a field is hop-by-hop, or claims what only the edge may say: either way, present,
/// the request's fields need [`rewrite`]'s slow path.
pub fn needs_stripping(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name) || is_edge_asserted(name)
}

/// The field names a `Connection` value lists (RFC 9110 §7.6.1), read from its bytes: a value
/// with bytes outside visible ASCII elsewhere still names the fields it names.
pub fn connection_tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(|token| token.trim_ascii()).filter(|token| !token.is_empty())
}

/// Removes hop-by-hop fields (RFC 9110 §7.6.1): `Connection` and every field it names, and
/// the fields defined as hop-by-hop whether or not `Connection` names them.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Usually none is there: a look over the few names present is cheaper than nine removals,
    // each of which hashes its name.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    // A token that is no field name (HeaderName refuses it) names no field that could be here.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| connection_tokens(v.as_bytes()))
        .filter_map(|name| HeaderName::from_bytes(name).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Removes every field [`is_edge_asserted`] names.
pub fn strip_edge_asserted(headers: &mut HeaderMap) {
    let asserted: Vec<HeaderName> = headers.keys().filter(|name| is_edge_asserted(name)).cloned().collect();
    for name in asserted {
        headers.remove(name);
    }
}

/// The `X-Forwarded-For` to send: the client's chain, every line in order, with the peer's
/// address appended, so that the address the edge saw is always the last one. A chain with a
/// line that is not visible ASCII is dropped and the peer's address sent alone: the edge cannot
/// read such a line, so it cannot vouch for where the chain ends.
pub fn forwarded_for<'a>(lines: impl Iterator<Item = &'a HeaderValue>, peer_ip: &HeaderValue) -> HeaderValue {
    let mut chain: Vec<u8> = Vec::new();
    for line in lines {
        let bytes = line.as_bytes();
        if !bytes.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b)) {
            return peer_ip.clone();
        }
        let entries = bytes.trim_ascii();
        if entries.is_empty() {
            continue;
        }
        if !chain.is_empty() {
            chain.extend_from_slice(b", ");
        }
        chain.extend_from_slice(entries);
    }
    if chain.is_empty() {
        return peer_ip.clone();
    }
    chain.extend_from_slice(b", ");
    chain.extend_from_slice(peer_ip.as_bytes());
    // Visible ASCII, spaces and tabs only, so this holds; the peer alone if it did not.
    HeaderValue::from_maybe_shared(bytes::Bytes::from(chain)).unwrap_or_else(|_| peer_ip.clone())
}

/// What [`rewrite`] needs to know of a request's fields, noted in the caller's own pass over
/// them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Present {
    /// A hop-by-hop field, or one that claims what only the edge may say.
    pub to_strip: bool,
    /// How many `X-Forwarded-For` lines the client sent.
    pub forwarded_for: usize,
}

impl Present {
    /// Notes one field.
    pub fn note(&mut self, name: &HeaderName) {
        if name == X_FORWARDED_FOR {
            self.forwarded_for += 1;
        } else if needs_stripping(name) {
            self.to_strip = true;
        }
    }

    /// Notes every field of `headers`.
    pub fn of(headers: &HeaderMap) -> Present {
        let mut present = Present::default();
        headers.keys().for_each(|name| present.note(name));
        present
    }
}

/// Everything forwarding does to a request's fields: hop-by-hop fields and those claiming what
/// only the edge may say removed, and the `X-Forwarded-*` fields set, replacing whatever the
/// client sent for them (`X-Forwarded-For` keeps the client's readable chain before the peer).
/// `present` must describe `headers` as they are.
pub fn rewrite(
    headers: &mut HeaderMap,
    present: Present,
    peer_ip: &HeaderValue,
    proto: &HeaderValue,
    host: Option<HeaderValue>,
) {
    if present.to_strip {
        strip_hop_by_hop(headers);
        // SECURITY: these say who the edge verified or where the request came from; a client
        // must never supply them.
        strip_edge_asserted(headers);
    }
    // Formatted only when the client brought a chain; otherwise the connection's value is shared.
    let chain = match present.forwarded_for {
        0 => peer_ip.clone(),
        _ => forwarded_for(headers.get_all(X_FORWARDED_FOR).iter(), peer_ip),
    };
    headers.insert(X_FORWARDED_FOR, chain);
    headers.insert(X_FORWARDED_PROTO, proto.clone());
    match host {
        Some(host) => headers.insert(X_FORWARDED_HOST, host),
        None => headers.remove(X_FORWARDED_HOST),
    };
}

/// An identity value for the MCP server (`X-Auth-Subject`, `X-Auth-Client-Id`, one scope):
/// the value itself when it is visible ASCII without `%`, otherwise percent-encoded (RFC 3986
/// §2.1) byte by byte, so that a subject with spaces or non-ASCII letters still reaches the MCP
/// server, and no two subjects are sent alike.
pub fn identity_value(value: &str) -> HeaderValue {
    if value.bytes().all(plain) {
        if let Ok(value) = HeaderValue::from_str(value) {
            return value;
        }
    }
    let mut out = String::with_capacity(value.len() * 3);
    encode_into(&mut out, value);
    HeaderValue::try_from(out).expect("percent-encoded text is visible ASCII")
}

/// Several identity values (the scopes), each as [`identity_value`] sends it, space-separated.
pub fn identity_list(values: &[String]) -> HeaderValue {
    let mut out = String::new();
    for value in values {
        if !out.is_empty() {
            out.push(' ');
        }
        encode_into(&mut out, value);
    }
    HeaderValue::try_from(out).expect("percent-encoded text is visible ASCII and spaces")
}

/// Visible ASCII other than `%` kept as it is.
fn plain(b: u8) -> bool {
    (0x21..0x7f).contains(&b) && b != b'%'
}

fn encode_into(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in value.bytes() {
        if plain(b) {
            out.push(char::from(b));
        } else {
            out.extend(['%', char::from(HEX[usize::from(b >> 4)]), char::from(HEX[usize::from(b & 15)])]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_fields_and_those_connection_names_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, X-Secret-Hop"));
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert(KEEP_ALIVE, HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::PROXY_AUTHORIZATION, HeaderValue::from_static("Basic x"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        h.insert("mcp-session-id", HeaderValue::from_static("s1"));
        strip_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["authorization", "mcp-session-id"]);
    }

    fn rewritten(h: &mut HeaderMap, peer: &'static str, host: Option<HeaderValue>) {
        let present = Present::of(h);
        rewrite(h, present, &HeaderValue::from_static(peer), &HeaderValue::from_static("https"), host);
    }

    #[test]
    fn forwarded_chain_is_appended() {
        let mut h = HeaderMap::new();
        rewritten(&mut h, "10.0.0.7", Some(HeaderValue::from_static("mcp.example")));
        assert_eq!(h[X_FORWARDED_FOR], "10.0.0.7");
        assert_eq!(h[X_FORWARDED_HOST], "mcp.example");
        rewritten(&mut h, "::1", None);
        assert_eq!(h[X_FORWARDED_FOR], "10.0.0.7, ::1");
        assert_eq!(h[X_FORWARDED_PROTO], "https");
        assert!(h.get(X_FORWARDED_HOST).is_none());
    }

    #[test]
    fn every_chain_line_is_kept_and_the_peer_is_last() {
        let mut h = HeaderMap::new();
        h.append(X_FORWARDED_FOR, HeaderValue::from_static("1.1.1.1"));
        h.append(X_FORWARDED_FOR, HeaderValue::from_static(" 2.2.2.2, 3.3.3.3 "));
        h.append(X_FORWARDED_FOR, HeaderValue::from_static(""));
        rewritten(&mut h, "10.0.0.7", None);
        let lines: Vec<_> = h.get_all(X_FORWARDED_FOR).iter().collect();
        assert_eq!(lines, ["1.1.1.1, 2.2.2.2, 3.3.3.3, 10.0.0.7"]);
    }

    #[test]
    fn an_unreadable_chain_is_replaced_by_the_peer() {
        let mut h = HeaderMap::new();
        h.append(X_FORWARDED_FOR, HeaderValue::from_bytes(b"1.1.1.1\xff").unwrap());
        h.append(X_FORWARDED_FOR, HeaderValue::from_static("6.6.6.6"));
        h.append(X_FORWARDED_PROTO, HeaderValue::from_bytes(b"gopher\xff").unwrap());
        h.append(X_FORWARDED_HOST, HeaderValue::from_static("evil.example"));
        rewritten(&mut h, "10.0.0.7", Some(HeaderValue::from_static("mcp.example")));
        assert_eq!(h.get_all(X_FORWARDED_FOR).iter().collect::<Vec<_>>(), ["10.0.0.7"]);
        assert_eq!(h.get_all(X_FORWARDED_PROTO).iter().collect::<Vec<_>>(), ["https"]);
        assert_eq!(h.get_all(X_FORWARDED_HOST).iter().collect::<Vec<_>>(), ["mcp.example"]);
    }

    #[test]
    fn connection_names_are_read_from_bytes() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_bytes(b"x-secret-hop, \xffjunk,,\tX-Other ").unwrap());
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("x-other", HeaderValue::from_static("1"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["x-kept"]);
    }

    #[test]
    fn fields_only_the_edge_may_say_are_removed() {
        let mut h = HeaderMap::new();
        for name in ["x-auth-user", "x-auth-role", "x_auth_subject", "x-auth_groups", "x_forwarded_for", "x_real_ip"] {
            h.insert(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_static("admin"));
        }
        for name in ["x-real-ip", "forwarded", "x_request_id", "x-forwarded_host"] {
            h.insert(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_static("1.2.3.4"));
        }
        for name in ["x-authz", "x-auth", "x-request-id", "authorization", "x-forwarded-port"] {
            h.insert(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_static("kept"));
        }
        rewritten(&mut h, "10.0.0.7", None);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        let want = ["authorization", "x-auth", "x-authz", "x-forwarded-for", "x-forwarded-port", "x-forwarded-proto"];
        assert_eq!(left, [&want[..], &["x-request-id"]].concat());
    }

    #[test]
    fn identity_values_are_sent_as_they_are_or_percent_encoded() {
        assert_eq!(identity_value("user-1"), "user-1");
        assert_eq!(identity_value("jos\u{e9} 100%"), "jos%C3%A9%20100%25");
        assert_eq!(identity_value("a\r\nX-Auth-Role: admin"), "a%0D%0AX-Auth-Role:%20admin");
        assert_eq!(identity_list(&["mcp:tools".into(), "caf\u{e9}".into()]), "mcp:tools caf%C3%A9");
        assert_eq!(identity_list(&[]), "");
    }
}
