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

/// The fields the edge sets with `--strip-authorization`.
pub const AUTH_HEADERS: [HeaderName; 3] = [X_AUTH_SUBJECT, X_AUTH_SCOPES, X_AUTH_CLIENT_ID];

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

/// Removes hop-by-hop fields (RFC 9110 §7.6.1): `Connection` and every field it names, and
/// the fields defined as hop-by-hop whether or not `Connection` names them.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Usually none is there: a look over the few names present is cheaper than nine removals,
    // each of which hashes its name.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Sets the `X-Forwarded-*` fields: the client's address appended to the chain it brought
/// (`previous`, its first `X-Forwarded-For`), the public scheme of the resource, and the host
/// the client asked for.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    previous: Option<&HeaderValue>,
    peer_ip: &HeaderValue,
    proto: &HeaderValue,
    host: Option<HeaderValue>,
) {
    // Formatted only when the client brought a chain; otherwise the connection's value is shared.
    let chain = match previous.map(|v| (v.to_str(), peer_ip.to_str())) {
        Some((Ok(previous), Ok(ip))) => HeaderValue::try_from(format!("{previous}, {ip}")).ok(),
        Some(_) => None,
        None => Some(peer_ip.clone()),
    };
    if let Some(chain) = chain {
        headers.insert(X_FORWARDED_FOR, chain);
    }
    headers.insert(X_FORWARDED_PROTO, proto.clone());
    match host {
        Some(host) => headers.insert(X_FORWARDED_HOST, host),
        None => headers.remove(X_FORWARDED_HOST),
    };
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

    #[test]
    fn forwarded_chain_is_appended() {
        let mut h = HeaderMap::new();
        let proto = HeaderValue::from_static("https");
        set_forwarded(
            &mut h,
            None,
            &HeaderValue::from_static("10.0.0.7"),
            &proto,
            Some(HeaderValue::from_static("mcp.example")),
        );
        assert_eq!(h[X_FORWARDED_FOR], "10.0.0.7");
        let previous = h.get(X_FORWARDED_FOR).cloned();
        set_forwarded(&mut h, previous.as_ref(), &HeaderValue::from_static("::1"), &proto, None);
        assert_eq!(h[X_FORWARDED_FOR], "10.0.0.7, ::1");
        assert_eq!(h[X_FORWARDED_PROTO], "https");
        assert!(h.get(X_FORWARDED_HOST).is_none());
    }
}
