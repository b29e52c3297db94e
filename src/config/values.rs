//! Parsers for single values (seconds, counts, URLs, scopes), each naming the setting a bad
//! value came from.

use std::time::Duration;

use http::Uri;

use crate::config::settings::{invalid, ConfigError, Origin};
use crate::config::{HostName, Issuer, Resource, Upstream};

/// A number of seconds, fractions allowed, within `range`.
pub(super) fn seconds(
    origin: &Origin,
    v: &str,
    range: std::ops::RangeInclusive<f64>,
    reason: &'static str,
) -> Result<Duration, ConfigError> {
    match v.trim().parse::<f64>() {
        Ok(secs) if secs.is_finite() && range.contains(&secs) => Ok(Duration::from_secs_f64(secs)),
        _ => Err(invalid(origin, v, reason)),
    }
}

/// A timing flag: seconds above 0 and at most a year.
pub(super) fn parse_secs(origin: &Origin, v: &str) -> Result<Duration, ConfigError> {
    seconds(origin, v, f64::MIN_POSITIVE..=31_536_000.0, "must be a number of seconds above 0 and at most a year")
}

/// A whole number within `range`.
pub(super) fn whole(
    origin: &Origin,
    v: &str,
    range: std::ops::RangeInclusive<u64>,
    reason: &'static str,
) -> Result<u64, ConfigError> {
    match v.trim().parse::<u64>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(invalid(origin, v, reason)),
    }
}

/// An absolute `http` or `https` URL with a host and no fragment, split into origin and path.
pub(super) struct HttpUrl {
    pub(super) origin: String,
    pub(super) path: String,
    pub(super) has_query: bool,
}

pub(super) fn parse_http_url(v: &str) -> Option<HttpUrl> {
    if v.contains('#') || v.chars().any(|c| c.is_ascii_whitespace()) {
        return None;
    }
    let uri: Uri = v.parse().ok()?;
    let scheme = uri.scheme_str()?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = uri.authority()?;
    if authority.host().is_empty() || authority.as_str().contains('@') {
        return None;
    }
    let path = uri.path().trim_end_matches('/').to_string();
    Some(HttpUrl { origin: format!("{scheme}://{authority}"), path, has_query: uri.query().is_some() })
}

/// RFC 6749 §3.3: a scope token is printable ASCII without space, quote or backslash.
pub(super) fn valid_scope(scope: &str) -> bool {
    !scope.is_empty() && scope.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

pub(super) fn parse_upstream(origin: &Origin, v: &str) -> Result<Upstream, ConfigError> {
    let reason = "must be an http or https origin, like http://127.0.0.1:3000 (requests keep their own paths)";
    let url = parse_http_url(v).ok_or_else(|| invalid(origin, v, reason))?;
    if !url.path.is_empty() || url.has_query {
        return Err(invalid(origin, v, reason));
    }
    let uri: Uri = v.parse().map_err(|_| invalid(origin, v, reason))?;
    match (uri.scheme(), uri.authority()) {
        (Some(scheme), Some(authority)) => Ok(Upstream { scheme: scheme.clone(), authority: authority.clone() }),
        _ => Err(invalid(origin, v, reason)),
    }
}

pub(super) fn parse_resource(origin: &Origin, v: &str) -> Result<Resource, ConfigError> {
    let url = parse_http_url(v)
        .ok_or_else(|| invalid(origin, v, "must be an absolute http or https URL with no fragment"))?;
    Ok(Resource { url: v.to_string(), origin: url.origin, path: url.path })
}

pub(super) fn parse_issuer(origin: &Origin, v: &str) -> Result<Issuer, ConfigError> {
    // RFC 8414 §2: the issuer is an https URL with no query or fragment. Plain http is
    // accepted for loopback and test deployments.
    match parse_http_url(v) {
        Some(url) if !url.has_query => Ok(Issuer { url: v.to_string(), origin: url.origin, path: url.path }),
        _ => Err(invalid(origin, v, "must be an absolute http or https URL with no query or fragment")),
    }
}

/// A browser origin as browsers serialise it (RFC 6454 §6.2): the scheme and host in lower
/// case, the port only when it is not the scheme's default. `Origin` is compared byte for byte
/// against this form.
pub(super) fn serialized_origin(scheme: &str, authority: &http::uri::Authority) -> String {
    let scheme = scheme.to_ascii_lowercase();
    let host = authority.host().to_ascii_lowercase();
    match authority.port_u16() {
        Some(port) if Some(port) != default_port(&scheme) => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    }
}

/// The port a scheme implies when an authority names none.
pub(super) fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    }
}

/// One `--cors-origin` value that is not `*`: an origin with no path, query or user info.
pub(super) fn parse_origin(origin: &Origin, v: &str) -> Result<String, ConfigError> {
    let reason = "must be * or an origin like https://app.example (no path)";
    match (parse_http_url(v), v.parse::<Uri>()) {
        (Some(url), Ok(uri)) if url.path.is_empty() && !url.has_query && !v.ends_with('/') => {
            match (uri.scheme_str(), uri.authority()) {
                (Some(scheme), Some(authority)) => Ok(serialized_origin(scheme, authority)),
                _ => Err(invalid(origin, v, reason)),
            }
        }
        _ => Err(invalid(origin, v, reason)),
    }
}

/// One `--host-alias` value that is not `*`: a host, with a port or without (any port).
pub(super) fn parse_host_alias(origin: &Origin, v: &str) -> Result<HostName, ConfigError> {
    let reason = "must be * or a host name or address, optionally with :PORT (no scheme or path)";
    // RFC 3986 §3.2: host characters, brackets and a colon; no scheme, path or user info.
    let authority_bytes = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:[]%".contains(&b);
    match v.parse::<http::uri::Authority>() {
        // A port, when there is a colon after the host, must be a number (Authority allows text).
        Ok(authority)
            if v.bytes().all(authority_bytes)
                && !authority.host().is_empty()
                && (v.len() == authority.host().len() || authority.port_u16().is_some()) =>
        {
            Ok(HostName { host: authority.host().to_ascii_lowercase(), port: authority.port_u16() })
        }
        _ => Err(invalid(origin, v, reason)),
    }
}

/// The resource's own host and port, as the `Host` of a request for it must name them.
pub(super) fn resource_host(resource: &Resource) -> Option<HostName> {
    let uri: Uri = resource.origin.parse().ok()?;
    let (scheme, authority) = (uri.scheme_str()?, uri.authority()?);
    let port = authority.port_u16().or_else(|| default_port(scheme))?;
    Some(HostName { host: authority.host().to_ascii_lowercase(), port: Some(port) })
}
