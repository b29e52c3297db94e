//! What the MCP endpoint refuses before a credential is read: methods and request targets it
//! never serves, a `Host` that is missing, repeated, malformed or names another server, and a
//! browser `Origin` it does not allow. Pure: the gate answers the [`Refusal`].

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Uri, Version};

use crate::config::{HostName, Hosts};
use crate::gate::cors::Cors;

/// Why a request was refused at the screen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `TRACE`, `TRACK` or `CONNECT`: a reflection of the request (credentials included) or a
    /// tunnel, never an MCP call (405).
    Method,
    /// An asterisk-form target (`*`, RFC 9112 §3.2.4): no resource to forward to (400).
    Target,
    /// The request's authority cannot be known for sure (400, RFC 9112 §3.2).
    BadHost(BadHost),
    /// A well-formed authority this edge does not answer for (421, RFC 9110 §15.5.20).
    OtherHost,
    /// An `Origin` that is not allowed, or more than one (403).
    Origin,
}

/// What is wrong with the request's authority.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadHost {
    /// An HTTP/1.1 request without `Host`, or any request with no authority at all.
    Missing,
    /// More than one `Host` line.
    Repeated,
    /// A value that is not `host[:port]`.
    Malformed,
    /// `Host` names another authority than the HTTP/2 `:authority` (RFC 9113 §8.3.1).
    Conflict,
}

/// The fields the screen and the gate read, found in one pass over the request's headers
/// (each `HeaderMap` lookup hashes its name; a request has few fields).
#[derive(Default)]
pub struct Fields<'a> {
    pub host: Option<&'a HeaderValue>,
    pub hosts: usize,
    pub origin: Option<&'a HeaderValue>,
    pub origins: usize,
    pub authorization: Option<&'a HeaderValue>,
    pub authorizations: usize,
}

impl<'a> Fields<'a> {
    /// The first of each field, and how many lines of it there are.
    pub fn of(headers: &'a HeaderMap) -> Fields<'a> {
        let mut f = Fields::default();
        let note = |slot: &mut Option<&'a HeaderValue>, count: &mut usize, value: &'a HeaderValue| {
            *count += 1;
            slot.get_or_insert(value);
        };
        for (name, value) in headers {
            if name == header::HOST {
                note(&mut f.host, &mut f.hosts, value);
            } else if name == header::ORIGIN {
                note(&mut f.origin, &mut f.origins, value);
            } else if name == header::AUTHORIZATION {
                note(&mut f.authorization, &mut f.authorizations, value);
            }
        }
        f
    }
}

/// The name a request was sent to, and where the edge found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Named<'a> {
    pub host: &'a [u8],
    pub port: Option<u16>,
}

/// The names the MCP endpoint answers to, made once per configuration.
#[derive(Clone, Debug)]
pub struct Names {
    hosts: Hosts,
    /// The port a `Host` without one implies: the public scheme's (the resource's).
    default_port: u16,
    /// How clients usually spell the resource's own authority in `Host`, matched byte for byte
    /// before anything is parsed: nearly every request names it so.
    usual: Vec<Box<[u8]>>,
}

impl Names {
    /// `origin` is the resource's `scheme://authority`.
    pub fn new(hosts: Hosts, origin: &str) -> Names {
        let default_port = if origin.starts_with("https:") { 443 } else { 80 };
        let authority = origin.split_once("://").map_or(origin, |(_, authority)| authority);
        let mut usual: Vec<Box<[u8]>> = vec![authority.as_bytes().into()];
        let own = match &hosts {
            Hosts::Listed(listed) => listed.first(),
            Hosts::Any => None,
        };
        if let Some(own) = own {
            let port = own.port.unwrap_or(default_port);
            let mut spellings = vec![format!("{}:{port}", own.host)];
            if port == default_port {
                spellings.insert(0, own.host.clone());
            }
            for spelling in spellings {
                let spelling: Box<[u8]> = spelling.into_bytes().into();
                if !usual.contains(&spelling) {
                    usual.push(spelling);
                }
            }
        }
        Names { hosts, default_port, usual }
    }
}

/// Checks a request for the MCP endpoint before any credential is read.
pub fn screen(
    method: &Method,
    uri: &Uri,
    version: Version,
    fields: &Fields<'_>,
    names: &Names,
    cors: &Cors,
) -> Result<(), Refusal> {
    // SECURITY: TRACE would echo the request, its Authorization included, back to the caller;
    // CONNECT would ask the MCP server for a tunnel. Neither is an MCP call.
    if method == Method::TRACE || method == Method::CONNECT || method.as_str() == "TRACK" {
        return Err(Refusal::Method);
    }
    if uri.path() == "*" {
        return Err(Refusal::Target);
    }
    // The usual case, one Host line spelling the resource's authority as expected, needs no parse.
    let usual = match (uri.authority(), fields.hosts, fields.host) {
        (None, 1, Some(host)) => names.usual.iter().any(|u| **u == *host.as_bytes()),
        _ => false,
    };
    if !usual {
        let named = authority(uri, version, fields).map_err(Refusal::BadHost)?;
        if !answers_for(&names.hosts, named, names.default_port) {
            return Err(Refusal::OtherHost);
        }
    }
    match (fields.origins, fields.origin) {
        (0, _) => Ok(()),
        (1, Some(origin)) if cors.allows(origin) => Ok(()),
        _ => Err(Refusal::Origin),
    }
}

/// The authority a request names (RFC 9112 §3.2, §3.2.2; RFC 9113 §8.3.1): the target's, in
/// absolute form or from HTTP/2's `:authority`, before `Host`; `Host` exactly once in
/// HTTP/1.1, and never disagreeing with `:authority`.
pub fn authority<'a>(uri: &'a Uri, version: Version, fields: &Fields<'a>) -> Result<Named<'a>, BadHost> {
    if fields.hosts > 1 {
        return Err(BadHost::Repeated);
    }
    if version == Version::HTTP_11 && fields.hosts == 0 {
        return Err(BadHost::Missing);
    }
    let from_host = fields.host.map(|h| parse_authority(h.as_bytes())).transpose()?;
    match (uri.authority(), from_host) {
        (Some(target), from_host) => {
            let named = parse_authority(target.as_str().as_bytes())?;
            // HTTP/1.1 absolute form: the target wins and Host is ignored (RFC 9112 §3.2.2).
            // HTTP/2: a Host beside :authority must name the same (RFC 9113 §8.3.1).
            match from_host {
                Some(host) if version >= Version::HTTP_2 && !same(host, named) => Err(BadHost::Conflict),
                _ => Ok(named),
            }
        }
        (None, Some(host)) => Ok(host),
        (None, None) => Err(BadHost::Missing),
    }
}

fn same(a: Named<'_>, b: Named<'_>) -> bool {
    a.host.eq_ignore_ascii_case(b.host) && a.port == b.port
}

/// Splits `host[:port]` (RFC 3986 §3.2.2, §3.2.3), refusing anything else: user info, a path,
/// spaces, bytes outside ASCII, a port that is not a number below 65536.
pub fn parse_authority(bytes: &[u8]) -> Result<Named<'_>, BadHost> {
    let (host, port) = if bytes.first() == Some(&b'[') {
        let close = bytes.iter().position(|&b| b == b']').ok_or(BadHost::Malformed)?;
        let (host, rest) = bytes.split_at(close + 1);
        let inner = &host[1..close];
        if inner.is_empty() || !inner.iter().all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
            return Err(BadHost::Malformed);
        }
        match rest {
            [] => (host, None),
            [b':', port @ ..] => (host, Some(port)),
            _ => return Err(BadHost::Malformed),
        }
    } else {
        match bytes.iter().position(|&b| b == b':') {
            Some(colon) => (&bytes[..colon], Some(&bytes[colon + 1..])),
            None => (bytes, None),
        }
    };
    let reg_name = |b: &u8| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(b);
    if host.is_empty() || (host[0] != b'[' && !host.iter().all(reg_name)) {
        return Err(BadHost::Malformed);
    }
    let port = match port {
        // RFC 3986 §3.2.3: an empty port is the scheme's default.
        None | Some([]) => None,
        Some(digits) if digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit) => {
            let n = digits.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
            Some(u16::try_from(n).map_err(|_| BadHost::Malformed)?)
        }
        Some(_) => return Err(BadHost::Malformed),
    };
    Ok(Named { host, port })
}

/// Whether the edge answers for this name: the resource's own host and port or an alias
/// (host names compare without regard to case; an alias without a port takes any).
pub fn answers_for(hosts: &Hosts, named: Named<'_>, default_port: u16) -> bool {
    let listed = match hosts {
        Hosts::Any => return true,
        Hosts::Listed(listed) => listed,
    };
    let port = named.port.unwrap_or(default_port);
    listed.iter().any(|HostName { host, port: want }| {
        host.as_bytes().eq_ignore_ascii_case(named.host) && want.is_none_or(|want| want == port)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts() -> Hosts {
        Hosts::Listed(vec![
            HostName { host: "mcp.example.com".into(), port: Some(443) },
            HostName { host: "localhost".into(), port: None },
            HostName { host: "[::1]".into(), port: Some(8443) },
        ])
    }

    fn named(s: &str) -> Result<Named<'_>, BadHost> {
        parse_authority(s.as_bytes())
    }

    #[test]
    fn authorities_are_split_and_bad_ones_refused() {
        assert_eq!(named("mcp.example.com"), Ok(Named { host: b"mcp.example.com", port: None }));
        assert_eq!(named("mcp.example.com:8443"), Ok(Named { host: b"mcp.example.com", port: Some(8443) }));
        assert_eq!(named("mcp.example.com:"), Ok(Named { host: b"mcp.example.com", port: None }));
        assert_eq!(named("[::1]:8443"), Ok(Named { host: b"[::1]", port: Some(8443) }));
        for bad in
            ["", ":443", "a b", "user@host", "host/path", "host:99999", "host:-1", "[::1", "[zz]", "h\u{ff}", "x:1:2"]
        {
            assert_eq!(named(bad), Err(BadHost::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn the_resource_and_its_aliases_are_answered_for() {
        let h = hosts();
        let ok = |s: &str| answers_for(&h, named(s).unwrap(), 443);
        assert!(ok("mcp.example.com") && ok("MCP.Example.COM:443") && ok("localhost:1234") && ok("[::1]:8443"));
        assert!(!ok("mcp.example.com:8443") && !ok("evil.example") && !ok("[::1]") && !ok("mcp.example.com.evil"));
        assert!(answers_for(&Hosts::Any, named("evil.example").unwrap(), 443));
    }

    #[test]
    fn the_usual_spellings_are_those_of_the_resource() {
        let usual = |origin: &str, own: HostName| {
            let names = Names::new(Hosts::Listed(vec![own]), origin);
            names.usual.iter().map(|u| String::from_utf8(u.to_vec()).unwrap()).collect::<Vec<_>>()
        };
        let own = |host: &str, port| HostName { host: host.into(), port: Some(port) };
        let https = usual("https://mcp.example.com", own("mcp.example.com", 443));
        assert_eq!(https, ["mcp.example.com", "mcp.example.com:443"]);
        assert_eq!(usual("http://127.0.0.1:8080", own("127.0.0.1", 8080)), ["127.0.0.1:8080"]);
        let upper = usual("https://MCP.example.com:8443", own("mcp.example.com", 8443));
        assert_eq!(upper, ["MCP.example.com:8443", "mcp.example.com:8443"]);
    }

    fn check(
        version: Version,
        method: Method,
        target: &str,
        lines: &[(&str, &str)],
        cors: &Cors,
    ) -> Result<(), Refusal> {
        let mut headers = HeaderMap::new();
        for (name, value) in lines {
            headers
                .append(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
        }
        let uri: Uri = target.parse().unwrap();
        screen(&method, &uri, version, &Fields::of(&headers), &Names::new(hosts(), "https://mcp.example.com"), cors)
    }

    #[test]
    fn host_rules_of_http_1_1_and_2() {
        let cors = Cors::listing(&["https://mcp.example.com"]);
        let v11 = Version::HTTP_11;
        let host = ("host", "mcp.example.com");
        assert_eq!(check(v11, Method::POST, "/mcp", &[host], &cors), Ok(()));
        assert_eq!(check(v11, Method::POST, "/mcp", &[], &cors), Err(Refusal::BadHost(BadHost::Missing)));
        assert_eq!(check(v11, Method::POST, "/mcp", &[host, host], &cors), Err(Refusal::BadHost(BadHost::Repeated)));
        assert_eq!(check(v11, Method::POST, "/mcp", &[("host", "evil.example")], &cors), Err(Refusal::OtherHost));
        // Absolute form: the target's authority wins over Host.
        let absolute = "http://evil.example/mcp";
        assert_eq!(check(v11, Method::POST, absolute, &[host], &cors), Err(Refusal::OtherHost));
        let absolute = "https://mcp.example.com/mcp";
        assert_eq!(check(v11, Method::POST, absolute, &[("host", "evil.example")], &cors), Ok(()));
        // HTTP/1.0 may leave Host out, but then names nothing to answer for.
        let v10 = Version::HTTP_10;
        assert_eq!(check(v10, Method::GET, "/mcp", &[], &cors), Err(Refusal::BadHost(BadHost::Missing)));
        // HTTP/2: :authority, and a Host beside it must agree.
        let v2 = Version::HTTP_2;
        assert_eq!(check(v2, Method::POST, absolute, &[], &cors), Ok(()));
        assert_eq!(check(v2, Method::POST, absolute, &[host], &cors), Ok(()));
        let other = ("host", "localhost");
        assert_eq!(check(v2, Method::POST, absolute, &[other], &cors), Err(Refusal::BadHost(BadHost::Conflict)));
    }

    #[test]
    fn methods_targets_and_origins() {
        let cors = Cors::listing(&["https://mcp.example.com", "https://app.example"]);
        let v11 = Version::HTTP_11;
        let host = ("host", "mcp.example.com");
        for method in [Method::TRACE, Method::CONNECT, Method::from_bytes(b"TRACK").unwrap()] {
            assert_eq!(check(v11, method, "/mcp", &[host], &cors), Err(Refusal::Method));
        }
        assert_eq!(check(v11, Method::OPTIONS, "*", &[host], &cors), Err(Refusal::Target));
        let app = ("origin", "https://app.example");
        assert_eq!(check(v11, Method::POST, "/mcp", &[host, app], &cors), Ok(()));
        let evil = ("origin", "http://evil.example");
        assert_eq!(check(v11, Method::OPTIONS, "/mcp", &[host, evil], &cors), Err(Refusal::Origin));
        assert_eq!(check(v11, Method::POST, "/mcp", &[host, app, app], &cors), Err(Refusal::Origin));
        assert_eq!(check(v11, Method::POST, "/mcp", &[host, evil], &Cors::listing(&[])), Err(Refusal::Origin));
        assert_eq!(check(v11, Method::POST, "/mcp", &[host, evil], &Cors::any()), Ok(()));
    }
}
