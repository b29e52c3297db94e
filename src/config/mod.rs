//! Configuration: command-line flags, `MCP_AUTH_EDGE_*` environment variables and a JSON file,
//! merged into one validated [`Config`] before any port is bound.
//!
//! Precedence is flag over environment over file. Each raw value remembers where it came from,
//! so an error names the exact flag, variable or file key the operator has to fix.
//!
//! [`policy`] holds the MCP authorization policy's values, read from a resource's `policy` key.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::Uri;

pub mod policy;
mod settings;
mod values;

use policy::Policy;
use settings::{invalid, parse_addr, parse_bool, Raw, INHERITED};
pub use settings::{usage, ConfigError, Origin, Settings};
use values::{
    parse_host_alias, parse_http_url, parse_issuer, parse_origin, parse_resource, parse_secs, parse_upstream,
    resource_host, seconds, serialized_origin, valid_scope, whole,
};

/// The validated configuration the service runs on.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    pub admin_listen: Option<SocketAddr>,
    pub resource: Resource,
    pub issuer: Issuer,
    /// Set when the operator names the metadata URL; otherwise the discovery order is used.
    pub metadata_url: Option<Uri>,
    pub scopes: Vec<String>,
    pub resource_name: Option<String>,
    pub resource_documentation: Option<String>,
    pub refresh: Duration,
    pub cache_max_age: u32,
    pub connect_timeout: Duration,
    pub fetch_timeout: Duration,
    pub max_metadata_bytes: usize,
    pub drain_timeout: Duration,
    pub threads: Option<usize>,
    /// The MCP server behind the gate; without it, non-discovery paths answer 404.
    pub upstream: Option<Upstream>,
    pub upstream_timeout: Duration,
    pub token_check: TokenCheck,
    /// Token audiences accepted besides the resource URL.
    pub audiences: Vec<String>,
    pub required_scopes: Vec<String>,
    /// Browser origins allowed to call the MCP endpoint and read its answers.
    pub cors_origins: Origins,
    /// The names the MCP endpoint answers to in `Host` (or `:authority`).
    pub hosts: Hosts,
    /// What a JWT access token's `typ` header must say.
    pub jwt_typ: JwtTyp,
    /// Clock skew allowed on a token's `exp`, `nbf` and `iat`; a stream its token opened ends at
    /// `exp` plus this.
    pub token_leeway: Duration,
    /// Whether 2025-11-25 session ids are bound to the caller that was given them.
    pub sessions: SessionBinding,
    pub strip_authorization: bool,
    /// DPoP (RFC 9449): whether proof-of-possession tokens are accepted or required.
    pub dpop: Dpop,
    /// The MCP authorization policy (issue 12): which operations need which scopes and claims.
    /// `None` forwards every request the token check passes, unread.
    pub policy: Option<Policy>,
    /// How a request the policy denies is answered.
    pub policy_denial: PolicyDenial,
    /// TLS on the main listener: where its certificate and key are; `None` serves cleartext.
    /// The application loads them, before any port is bound.
    pub tls: Option<TlsFiles>,
    /// What clients of the main listener may send and hold.
    pub limits: Limits,
    /// Where the access log goes; `None` writes none. The application opens it.
    pub access_log: Option<AccessLogTarget>,
    /// Where the audit log of MCP policy decisions goes; `None` writes none.
    pub audit_log: Option<AccessLogTarget>,
    /// Further protected resources, from the file's `resources` array. Each is validated as a
    /// configuration of its own (inheriting the top level's timings); only its per-resource
    /// settings are used. The top level's resource is the first, the default.
    pub resources: Vec<Config>,
}

/// Browser origins allowed on the MCP endpoint: a request whose `Origin` is not allowed is
/// refused (the MCP transport's DNS-rebinding defence), and an allowed one may read the answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origins {
    /// Every origin (`--cors-origin '*'`), for public browser clients.
    Any,
    /// The resource's own origin, then those of `--cors-origin`, serialised as browsers send
    /// them (lower case, no default port).
    Listed(Vec<String>),
}

/// The `Host` (or HTTP/2 `:authority`) values the MCP endpoint answers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hosts {
    /// Any name (`--host-alias '*'`): the Host check is off.
    Any,
    /// The resource's own host and port first, then the aliases.
    Listed(Vec<HostName>),
}

/// A host a request may name, with its port or, for an alias given without one, any port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostName {
    /// In lower case; an IPv6 address keeps its brackets.
    pub host: String,
    pub port: Option<u16>,
}

/// Whether the `Mcp-Session-Id` an MCP server gives (protocol revision 2025-11-25) is bound to
/// the caller it was given to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionBinding {
    /// Passed as it is, both ways.
    Off,
    /// Wrapped with a MAC over the id and the caller under the first key; any key unwraps.
    Keyed(Secrets),
}

/// Secret keys, at least [`MIN_SECRET_LEN`] bytes each. `Debug` shows how many, never the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Secrets(pub Vec<String>);

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets(<{} hidden>)", self.0.len())
    }
}

/// The shortest secret key accepted: 256 bits, the strength of the MAC's hash.
pub const MIN_SECRET_LEN: usize = 32;

/// How a request the policy denies is answered (`policy_denial`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyDenial {
    /// HTTP 403: the step-up challenge for a scope shortfall, a plain `forbidden` otherwise.
    Forbidden,
    /// HTTP 200 with a JSON-RPC answer: a tool result with `isError` for a denied `tools/call`,
    /// an error for another request. For clients that treat a 403 as fatal.
    ToolError,
}

/// How strictly a JWT access token's `typ` header is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JwtTyp {
    /// `typ` absent, `JWT` or `at+jwt` (any case, `application/` allowed): what most
    /// authorization servers issue. A `typ` naming another kind of JWT is refused.
    Lenient,
    /// `typ` must be `at+jwt` (RFC 9068 §4, `--require-at-jwt`).
    AtJwt,
}

/// How the gate checks bearer tokens. Each mode carries what it needs, so a mode without
/// its settings cannot be represented.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenCheck {
    /// Signature and claims checked at the edge against the authorization server's JWKS.
    Jwt,
    /// Asked of the authorization server's introspection endpoint (RFC 7662).
    Introspect {
        /// The edge's own client credentials at the introspection endpoint.
        client: ClientCredentials,
        /// Longest time an active answer is reused (never past the token's `exp`).
        cache_for: Duration,
        /// How often a stream's token is asked about again (`--stream-recheck`); `None`: never,
        /// and only `exp` ends the stream.
        recheck_every: Option<Duration>,
    },
    /// Only the form of the header; the MCP server validates tokens itself.
    Presence,
}

impl TokenCheck {
    /// The mode's name, as `--token-check` spells it.
    pub fn name(&self) -> &'static str {
        match self {
            TokenCheck::Jwt => "jwt",
            TokenCheck::Introspect { .. } => "introspect",
            TokenCheck::Presence => "presence",
        }
    }
}

/// Whether the gate takes DPoP-bound tokens (RFC 9449), `--dpop`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DpopMode {
    /// Bearer tokens only; `Authorization: DPoP` is no credential (as for any other scheme).
    Off,
    /// Bearer tokens, and DPoP-bound tokens with a valid proof.
    Allow,
    /// DPoP-bound tokens with a valid proof only.
    Require,
}

impl DpopMode {
    /// The mode's name, as `--dpop` spells it.
    pub fn name(self) -> &'static str {
        match self {
            DpopMode::Off => "off",
            DpopMode::Allow => "allow",
            DpopMode::Require => "require",
        }
    }
}

/// The DPoP policy of a resource. With the mode `Off`, the other fields are their defaults:
/// setting them then is refused, so that nothing configured goes unenforced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dpop {
    pub mode: DpopMode,
    /// How far a proof's `iat` may be from the edge's clock, either way, in seconds.
    pub iat_window_secs: u64,
    /// Keys of the stateless server nonces; with any, every proof must carry a current nonce.
    pub nonce_keys: NonceKeys,
}

/// The default `--dpop-iat-window`.
pub const DPOP_IAT_WINDOW_SECS: u64 = 300;
/// The shortest `--dpop-nonce-key`: 256 bits, the strength of HMAC-SHA-256.
pub const DPOP_NONCE_KEY_MIN_BYTES: usize = 32;

impl Default for Dpop {
    fn default() -> Dpop {
        Dpop { mode: DpopMode::Off, iat_window_secs: DPOP_IAT_WINDOW_SECS, nonce_keys: NonceKeys::default() }
    }
}

/// `--dpop-nonce-key` secrets, the issuing one first. `Debug` hides them, as it hides the
/// introspection secret.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct NonceKeys(pub Vec<Vec<u8>>);

impl fmt::Debug for NonceKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SECURITY: never the key bytes.
        write!(f, "NonceKeys({} hidden)", self.0.len())
    }
}

/// `--dpop`, `--dpop-iat-window` and `--dpop-nonce-key`, checked against the token check:
/// only a checked token shows the edge its `cnf.jkt`.
fn dpop(s: &Settings, token_check: &TokenCheck) -> Result<Dpop, ConfigError> {
    let defaults = Dpop::default();
    let mode = match s.one("dpop") {
        None | Some((_, "off")) => DpopMode::Off,
        Some((_, "allow")) => DpopMode::Allow,
        Some((_, "require")) => DpopMode::Require,
        Some((o, v)) => return Err(invalid(o, v, "must be off, allow or require")),
    };
    if mode == DpopMode::Off {
        if let Some((o, v)) = s.one("dpop_iat_window") {
            return Err(invalid(o, v, "is used only with --dpop allow or require"));
        }
        if let Some((o, _)) = s.many("dpop_nonce_key").first() {
            return Err(invalid(o, "<hidden>", "is used only with --dpop allow or require"));
        }
        return Ok(defaults);
    }
    if *token_check == TokenCheck::Presence {
        let (o, v) = s.one("dpop").ok_or(ConfigError::Missing("dpop"))?;
        return Err(invalid(o, v, "needs --token-check jwt or introspect: the edge must read the token's cnf.jkt"));
    }
    let iat_window_secs = match s.one("dpop_iat_window") {
        Some((o, v)) => whole(o, v, 1..=3600, "must be a whole number of seconds from 1 to 3600")?,
        None => defaults.iat_window_secs,
    };
    let mut keys = Vec::new();
    for (o, key) in s.many("dpop_nonce_key") {
        if key.len() < DPOP_NONCE_KEY_MIN_BYTES {
            // SECURITY: the value is a secret; the message names where it came from, not what it is.
            return Err(invalid(o, "<hidden>", "must be at least 32 bytes"));
        }
        keys.push(key.as_bytes().to_vec());
    }
    Ok(Dpop { mode, iat_window_secs, nonce_keys: NonceKeys(keys) })
}

/// Where authenticated requests go: an `http` or `https` origin, parsed once.
#[derive(Clone, Debug, PartialEq)]
pub struct Upstream {
    pub scheme: http::uri::Scheme,
    pub authority: http::uri::Authority,
}

/// The files of the main listener's TLS certificate and key, with where each was named (for
/// error messages) and the timings of their reloading.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub cert_from: Origin,
    pub key_from: Origin,
    /// How often the files are checked for a change: [`TLS_POLL_INTERVAL`], shorter in tests.
    pub poll: Duration,
    /// SECURITY: how long a handshake may take; a client that stalls one is dropped.
    pub handshake_timeout: Duration,
}

/// How often the TLS files are checked for a change (modification time, length, inode).
pub const TLS_POLL_INTERVAL: Duration = Duration::from_secs(5);
/// How long a TLS handshake may take.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where `--access-log` (or `--audit-log`) writes, and where that was said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessLogTarget {
    pub sink: LogSink,
    pub from: Origin,
}

/// An access log's destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogSink {
    Stdout,
    /// Appended to; created when missing.
    File(PathBuf),
}

/// The limits a listener enforces on its clients. The defaults are the flags' defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// The largest request head: an HTTP/1.1 request line and headers (hyper's read buffer,
    /// which is at least 8 KiB), or an HTTP/2 header list as RFC 9113 §6.5.2 counts it.
    pub max_header_bytes: usize,
    /// The most header fields in an HTTP/1.1 request.
    pub max_headers: usize,
    /// How long a request head may take, from its first byte (or from the connection's
    /// start, for the first request).
    pub header_read_timeout: Duration,
    /// How long a connection may stay open with no request.
    pub idle_timeout: Duration,
    /// Connections served at once; `None` for no bound (the admin listener).
    pub max_connections: Option<usize>,
    /// Streams an HTTP/2 client may have open at once on one connection.
    pub h2_max_concurrent_streams: u32,
    /// The largest request body forwarded to the MCP server.
    pub max_body_bytes: u64,
    /// The largest POST body read whole for a policy decision; a larger one is refused.
    pub max_inspect_bytes: u64,
}

/// hyper's own default header count. Left unset, hyper parses into a fixed stack array of
/// this size; set, it builds the array from the value on every request (on the heap above 100).
pub const HYPER_MAX_HEADERS: usize = 100;

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_header_bytes: 32 * 1024,
            max_headers: HYPER_MAX_HEADERS,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            max_connections: Some(4096),
            h2_max_concurrent_streams: 128,
            max_body_bytes: 16 * 1024 * 1024,
            max_inspect_bytes: 1024 * 1024,
        }
    }
}

/// Client credentials for `client_secret_basic` authentication. `Debug` hides the secret so
/// that a printed configuration does not leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    pub id: String,
    pub secret: String,
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials").field("id", &self.id).field("secret", &"<hidden>").finish()
    }
}

/// The protected resource, as its public URL and the path RFC 9728 §3.1 inserts after the
/// well-known prefix.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    /// The URL exactly as configured; it is the `resource` value clients compare against.
    pub url: String,
    /// `scheme://authority`, with no trailing slash.
    pub origin: String,
    /// The URL's path without its trailing slash; empty for a resource at the origin's root.
    pub path: String,
}

/// The authorization server's issuer identifier (RFC 8414 §2).
#[derive(Clone, Debug, PartialEq)]
pub struct Issuer {
    /// The identifier exactly as configured; the upstream document's `issuer` must equal it.
    pub url: String,
    pub origin: String,
    /// The issuer's path without its trailing slash; empty when it has none.
    pub path: String,
}

/// The client limits, each its flag's value or default.
fn limits(s: &Settings) -> Result<Limits, ConfigError> {
    let defaults = Limits::default();
    let count = |name, default: u64, min: u64, max: u64, reason| match s.one(name) {
        Some((o, v)) => whole(o, v, min..=max, reason),
        None => Ok(default),
    };
    let secs = |name, default| s.one(name).map(|(o, v)| parse_secs(o, v)).unwrap_or(Ok(default));
    let max_connections = defaults.max_connections.unwrap_or(4096) as u64;
    Ok(Limits {
        // hyper's HTTP/1 read buffer cannot be smaller than 8 KiB.
        max_header_bytes: count(
            "max_header_bytes",
            defaults.max_header_bytes as u64,
            8192,
            16 << 20,
            "must be a whole number of bytes from 8192 to 16777216",
        )? as usize,
        max_headers: count(
            "max_headers",
            defaults.max_headers as u64,
            1,
            1000,
            "must be a whole number from 1 to 1000",
        )? as usize,
        header_read_timeout: secs("header_read_timeout", defaults.header_read_timeout)?,
        idle_timeout: secs("idle_timeout", defaults.idle_timeout)?,
        max_connections: Some(count(
            "max_connections",
            max_connections,
            1,
            1 << 20,
            "must be a whole number from 1 to 1048576",
        )? as usize),
        h2_max_concurrent_streams: count(
            "h2_max_concurrent_streams",
            u64::from(defaults.h2_max_concurrent_streams),
            1,
            65_536,
            "must be a whole number from 1 to 65536",
        )? as u32,
        max_body_bytes: count(
            "max_body_bytes",
            defaults.max_body_bytes,
            1,
            1 << 50,
            "must be a whole number of bytes from 1 (no larger than 2^50)",
        )?,
        // Held in memory while the policy reads it: bounded well below --max-body-bytes' range.
        max_inspect_bytes: count(
            "max_inspect_bytes",
            defaults.max_inspect_bytes,
            1,
            1 << 30,
            "must be a whole number of bytes from 1 to 1073741824",
        )?,
    })
}

/// `--cors-origin`: `*` anywhere allows every origin; otherwise the resource's own origin (a
/// page of the resource's own site is no cross-site caller) and the listed ones.
fn origins(s: &Settings, resource: &Resource) -> Result<Origins, ConfigError> {
    let uri: Uri = resource.origin.parse().map_err(|_| ConfigError::Missing("resource"))?;
    let own = match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) => serialized_origin(scheme, authority),
        _ => resource.origin.clone(),
    };
    Ok(own_then_listed(s, "cors_origin", own, parse_origin)?.map_or(Origins::Any, Origins::Listed))
}

/// A list setting that names what the resource's `own` value is joined by: `own` first, then
/// each given value parsed, without repeats; `None` when any value is `*` (anything goes).
fn own_then_listed<T: PartialEq>(
    s: &Settings,
    name: &'static str,
    own: T,
    parse: impl Fn(&Origin, &str) -> Result<T, ConfigError>,
) -> Result<Option<Vec<T>>, ConfigError> {
    let mut listed = vec![own];
    for (o, value) in s.many(name) {
        if value == "*" {
            return Ok(None);
        }
        let value = parse(o, value)?;
        if !listed.contains(&value) {
            listed.push(value);
        }
    }
    Ok(Some(listed))
}

/// `--session-key`: each at least [`MIN_SECRET_LEN`] bytes (never repeated in an error), and only
/// where the edge checks tokens: a session is bound to the caller a checked token names.
fn session_binding(s: &Settings, token_check: &TokenCheck) -> Result<SessionBinding, ConfigError> {
    let keys = s.many("session_key");
    let Some((origin, _)) = keys.first() else {
        return Ok(SessionBinding::Off);
    };
    if *token_check == TokenCheck::Presence {
        return Err(invalid(
            origin,
            "<hidden>",
            "needs --token-check jwt or introspect: a session is bound to the caller a checked token names",
        ));
    }
    if keys.iter().any(|(_, key)| key.len() < MIN_SECRET_LEN) {
        return Err(invalid(origin, "<hidden>", "each key must be at least 32 bytes (e.g. openssl rand -base64 48)"));
    }
    Ok(SessionBinding::Keyed(Secrets(keys.iter().map(|(_, key)| key.to_string()).collect())))
}

/// `--host-alias`: the resource's own host and port, then each alias; `*` turns the check off.
fn hosts(s: &Settings, resource: &Resource) -> Result<Hosts, ConfigError> {
    let own = resource_host(resource).ok_or(ConfigError::Missing("resource"))?;
    Ok(own_then_listed(s, "host_alias", own, parse_host_alias)?.map_or(Hosts::Any, Hosts::Listed))
}

/// `policy`: a JSON object of the `--config` file (top level or a `resources` entry), parsed
/// once; its errors name the key path and the file.
fn policy_of(s: &Settings, token_check: &TokenCheck) -> Result<Option<Policy>, ConfigError> {
    let policy = match s.values.get("policy") {
        None => return Ok(None),
        Some((Origin::File { path, .. }, Raw::Json(value))) => Policy::parse(value, "policy").map_err(|e| {
            ConfigError::Policy { file: path.clone(), path: e.path().to_string(), reason: e.reason().to_string() }
        })?,
        Some((origin, raw)) => {
            return Err(invalid(
                origin,
                &raw.text(),
                "is a JSON object, given only in the --config file (there is no flag or environment form)",
            ));
        }
    };
    // SECURITY: presence reads no scopes or claims, so every rule would deny, or a default of
    // allow would pass everything: neither is what a policy means.
    if *token_check == TokenCheck::Presence {
        let origin = s.values.get("policy").map(|(o, _)| o.clone()).unwrap_or(Origin::Flag("policy"));
        return Err(ConfigError::Invalid {
            source: origin,
            value: "{…}".into(),
            reason: "needs --token-check jwt or introspect: a policy decides on the token's scopes and claims",
        });
    }
    Ok(Some(policy))
}

/// Validates the file's `resources` entries, each with the top level's timings where it gives
/// none, and checks that every resource has a path of its own.
fn more_resources(s: &Settings, first: &Resource) -> Result<Vec<Config>, ConfigError> {
    let mut paths = vec![first.path.clone()];
    let mut out = Vec::new();
    for (_, entry) in &s.resources {
        let mut values = entry.clone();
        for key in INHERITED {
            if let (false, Some(value)) = (values.contains_key(key), s.values.get(key)) {
                values.insert(key, value.clone());
            }
        }
        let config = Config::from_settings(&Settings { values, resources: Vec::new() })?;
        if paths.contains(&config.resource.path) {
            let (origin, value) = entry.get("resource").map(|(o, v)| (o, v)).ok_or(ConfigError::Missing("resource"))?;
            return Err(invalid(
                origin,
                &value.text(),
                "has the same path as another resource; each needs a path of its own for its metadata and gate",
            ));
        }
        paths.push(config.resource.path.clone());
        out.push(config);
    }
    Ok(out)
}

impl Config {
    /// Every protected resource: the top level's first, then the file's `resources`.
    pub fn protected(&self) -> impl Iterator<Item = &Config> + Clone {
        std::iter::once(self).chain(&self.resources)
    }

    /// Validates the gathered settings into a `Config`, naming the first bad value.
    pub fn from_settings(s: &Settings) -> Result<Config, ConfigError> {
        let listen = s.listen()?;
        let admin_listen = s.one("admin_listen").map(|(o, v)| parse_addr(o, v)).transpose()?;
        let (o, v) = s.one("resource").ok_or(ConfigError::Missing("resource"))?;
        let resource = parse_resource(o, v)?;
        let (o, v) = s.one("auth_server").ok_or(ConfigError::Missing("auth_server"))?;
        let issuer = parse_issuer(o, v)?;
        let metadata_url = match s.one("auth_server_metadata") {
            Some((o, v)) => {
                parse_http_url(v).ok_or_else(|| invalid(o, v, "must be an absolute http or https URL"))?;
                Some(v.parse::<Uri>().map_err(|_| invalid(o, v, "must be an absolute http or https URL"))?)
            }
            None => None,
        };
        let scope_list = |name| -> Result<Vec<String>, ConfigError> {
            let mut out: Vec<String> = Vec::new();
            for (o, scope) in s.many(name) {
                if !valid_scope(scope) {
                    return Err(invalid(o, scope, "a scope is printable ASCII without spaces, quotes or backslashes"));
                }
                if !out.iter().any(|s| s == scope) {
                    out.push(scope.to_string());
                }
            }
            Ok(out)
        };
        let scopes = scope_list("scope")?;
        let resource_name = match s.one("resource_name") {
            Some((o, v)) if v.trim().is_empty() || v.chars().any(char::is_control) => {
                return Err(invalid(o, v, "must be non-empty text without control characters"));
            }
            Some((_, v)) => Some(v.to_string()),
            None => None,
        };
        let resource_documentation = match s.one("resource_documentation") {
            Some((o, v)) => {
                parse_http_url(v).ok_or_else(|| invalid(o, v, "must be an absolute http or https URL"))?;
                Some(v.to_string())
            }
            None => None,
        };
        let secs = |name, default: u64| -> Result<Duration, ConfigError> {
            s.one(name).map(|(o, v)| parse_secs(o, v)).unwrap_or(Ok(Duration::from_secs(default)))
        };
        let cache_max_age = match s.one("cache_max_age") {
            Some((o, v)) => whole(o, v, 0..=u64::from(u32::MAX), "must be a whole number of seconds")? as u32,
            None => 300,
        };
        let max_metadata_bytes = match s.one("max_metadata_bytes") {
            Some((o, v)) => whole(o, v, 1..=64 << 20, "must be a whole number of bytes from 1 to 67108864")? as usize,
            None => 256 * 1024,
        };
        let threads = match s.one("threads") {
            Some((o, v)) => Some(whole(o, v, 1..=1024, "must be a whole number from 1 to 1024")? as usize),
            None => None,
        };
        let upstream = match s.one("upstream") {
            Some((o, v)) => Some(parse_upstream(o, v)?),
            None => None,
        };
        let introspection_cache = match s.one("introspection_cache") {
            Some((o, v)) => seconds(o, v, 0.0..=86_400.0, "must be a number of seconds from 0 to 86400")?,
            None => Duration::from_secs(60),
        };
        let token_check = match s.one("token_check") {
            None | Some((_, "jwt")) => TokenCheck::Jwt,
            Some((_, "introspect")) => {
                let client = match (s.one("introspection_client_id"), s.one("introspection_client_secret")) {
                    (Some((_, id)), Some((_, secret))) => {
                        ClientCredentials { id: id.to_string(), secret: secret.to_string() }
                    }
                    (None, _) => {
                        return Err(ConfigError::MissingFor {
                            name: "introspection_client_id",
                            by: "--token-check introspect",
                        })
                    }
                    (_, None) => {
                        return Err(ConfigError::MissingFor {
                            name: "introspection_client_secret",
                            by: "--token-check introspect",
                        })
                    }
                };
                let recheck_every = match s.one("stream_recheck") {
                    Some((o, v)) => seconds(o, v, 0.0..=86_400.0, "must be a number of seconds from 0 to 86400")?,
                    None => Duration::from_secs(60),
                };
                let recheck_every = (!recheck_every.is_zero()).then_some(recheck_every);
                TokenCheck::Introspect { client, cache_for: introspection_cache, recheck_every }
            }
            Some((_, "presence")) => TokenCheck::Presence,
            Some((o, v)) => return Err(invalid(o, v, "must be jwt, introspect or presence")),
        };
        if let (false, Some((o, v))) = (matches!(token_check, TokenCheck::Introspect { .. }), s.one("stream_recheck")) {
            return Err(invalid(o, v, "is used only with --token-check introspect: a JWT's exp ends its streams"));
        }
        if !matches!(token_check, TokenCheck::Introspect { .. }) {
            // Credentials in another mode are a mistake worth stopping for, with the secret hidden.
            match (s.one("introspection_client_id"), s.one("introspection_client_secret")) {
                (Some((o, v)), _) => return Err(invalid(o, v, "is used only with --token-check introspect")),
                (None, Some((o, _))) => {
                    return Err(invalid(o, "<hidden>", "is used only with --token-check introspect"))
                }
                (None, None) => {}
            }
        }
        let required_scopes = scope_list("required_scope")?;
        let audiences = s.many("audience").into_iter().map(|(_, a)| a.to_string()).collect();
        let cors_origins = origins(s, &resource)?;
        let hosts = hosts(s, &resource)?;
        let sessions = session_binding(s, &token_check)?;
        let token_leeway = match s.one("token_leeway") {
            Some((o, v)) => seconds(o, v, 0.0..=3600.0, "must be a number of seconds from 0 to 3600")?,
            None => Duration::from_secs(60),
        };
        let jwt_typ = match s.values.get("require_at_jwt") {
            Some((o, Raw::One(v))) if parse_bool(o, v)? => JwtTyp::AtJwt,
            _ => JwtTyp::Lenient,
        };
        let strip_authorization = match s.values.get("strip_authorization") {
            Some((o, Raw::One(v))) => parse_bool(o, v)?,
            _ => false,
        };
        if strip_authorization && token_check == TokenCheck::Presence {
            return Err(ConfigError::Invalid {
                source: Origin::Flag("strip_authorization"),
                value: "true".into(),
                reason:
                    "needs --token-check jwt or introspect: only checked tokens have a subject and scopes to pass on",
            });
        }
        let dpop = dpop(s, &token_check)?;
        let policy = policy_of(s, &token_check)?;
        let policy_denial = match s.one("policy_denial") {
            None | Some((_, "forbidden")) => PolicyDenial::Forbidden,
            Some((_, "tool_error")) => PolicyDenial::ToolError,
            Some((o, v)) => return Err(invalid(o, v, "must be forbidden or tool_error")),
        };
        let tls = match (s.one("tls_cert"), s.one("tls_key")) {
            (None, None) => None,
            (Some(_), None) => return Err(ConfigError::MissingFor { name: "tls_key", by: "--tls-cert" }),
            (None, Some(_)) => return Err(ConfigError::MissingFor { name: "tls_cert", by: "--tls-key" }),
            (Some((cert_from, cert)), Some((key_from, key))) => Some(TlsFiles {
                cert: cert.into(),
                key: key.into(),
                cert_from: cert_from.clone(),
                key_from: key_from.clone(),
                poll: TLS_POLL_INTERVAL,
                handshake_timeout: TLS_HANDSHAKE_TIMEOUT,
            }),
        };
        let limits = limits(s)?;
        let resources = more_resources(s, &resource)?;
        let access_log = s.one("access_log").map(|(from, v)| AccessLogTarget {
            sink: if v == "-" { LogSink::Stdout } else { LogSink::File(v.into()) },
            from: from.clone(),
        });
        let audit_log = s.one("audit_log").map(|(from, v)| AccessLogTarget {
            sink: if v == "-" { LogSink::Stdout } else { LogSink::File(v.into()) },
            from: from.clone(),
        });
        Ok(Config {
            audit_log,
            policy,
            policy_denial,
            resources,
            access_log,
            limits,
            tls,
            cors_origins,
            hosts,
            jwt_typ,
            sessions,
            token_leeway,
            strip_authorization,
            dpop,
            token_check,
            audiences,
            required_scopes,
            upstream,
            upstream_timeout: secs("upstream_timeout", 30)?,
            listen,
            admin_listen,
            resource,
            issuer,
            metadata_url,
            scopes,
            resource_name,
            resource_documentation,
            refresh: secs("refresh", 300)?,
            cache_max_age,
            connect_timeout: secs("connect_timeout", 5)?,
            fetch_timeout: secs("fetch_timeout", 10)?,
            max_metadata_bytes,
            drain_timeout: secs("drain_timeout", 10)?,
            threads,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::settings::parse_file;
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn load(list: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let settings = Settings::load(args(list), |name| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))?;
        Config::from_settings(&settings)
    }

    const BASE: &[&str] = &["--resource", "https://mcp.example.com/mcp", "--auth-server", "https://auth.example.com"];

    #[test]
    fn minimal_flags_take_defaults() {
        let c = load(BASE, &[]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.resource.origin, "https://mcp.example.com");
        assert_eq!(c.resource.path, "/mcp");
        assert_eq!(c.issuer.path, "");
        assert_eq!(c.refresh, Duration::from_secs(300));
        assert_eq!(c.max_metadata_bytes, 262_144);
        assert!(c.scopes.is_empty());
    }

    #[test]
    fn flag_beats_env_beats_file() {
        let dir = std::env::temp_dir().join(format!("mae-config-{}", std::process::id()));
        std::fs::write(&dir, r#"{"listen":"127.0.0.1:1","refresh":7,"scope":["a","b"]}"#).unwrap();
        let path = dir.to_str().unwrap();
        let mut list = BASE.to_vec();
        list.extend(["--config", path, "--listen", "127.0.0.1:3"]);
        let c = load(&list, &[("MCP_AUTH_EDGE_LISTEN", "127.0.0.1:2"), ("MCP_AUTH_EDGE_REFRESH", "0.5")]).unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(c.listen.port(), 3);
        assert_eq!(c.refresh, Duration::from_millis(500));
        assert_eq!(c.scopes, vec!["a", "b"]);
    }

    #[test]
    fn repeated_scope_flags_and_env_list() {
        let mut list = BASE.to_vec();
        list.extend(["--scope", "mcp:read", "--scope=mcp:write", "--scope", "mcp:read"]);
        assert_eq!(load(&list, &[]).unwrap().scopes, vec!["mcp:read", "mcp:write"]);
        let c = load(BASE, &[("MCP_AUTH_EDGE_SCOPE", "a  b")]).unwrap();
        assert_eq!(c.scopes, vec!["a", "b"]);
    }

    #[test]
    fn missing_required_value_is_named() {
        let e = load(&["--resource", "https://x.example/mcp"], &[]).unwrap_err();
        assert_eq!(e, ConfigError::Missing("auth_server"));
        assert!(e.to_string().contains("--auth-server is required"));
    }

    #[test]
    fn bad_values_name_their_source() {
        let mut list = BASE.to_vec();
        list.extend(["--refresh", "soon"]);
        let e = load(&list, &[]).unwrap_err().to_string();
        assert!(e.starts_with("invalid --refresh \"soon\""), "{e}");

        let e = load(BASE, &[("MCP_AUTH_EDGE_LISTEN", "localhost")]).unwrap_err().to_string();
        assert!(e.starts_with("invalid MCP_AUTH_EDGE_LISTEN \"localhost\""), "{e}");

        let e = load(&["--resource", "ftp://x/y", "--auth-server", "https://a"], &[]).unwrap_err();
        assert!(matches!(e, ConfigError::Invalid { source: Origin::Flag("resource"), .. }));
    }

    #[test]
    fn issuer_with_query_or_fragment_is_refused() {
        for bad in ["https://a.example?x=1", "https://a.example#f", "a.example", "https://user@a.example"] {
            let e = load(&["--resource", "https://r.example/", "--auth-server", bad], &[]).unwrap_err();
            assert!(matches!(e, ConfigError::Invalid { source: Origin::Flag("auth_server"), .. }), "{bad}");
        }
    }

    #[test]
    fn issuer_path_loses_trailing_slash_but_keeps_identity() {
        let c = load(&["--resource", "https://r.example/", "--auth-server", "https://a.example/tenant/"], &[]).unwrap();
        assert_eq!(c.issuer.url, "https://a.example/tenant/");
        assert_eq!(c.issuer.path, "/tenant");
        assert_eq!(c.resource.path, "");
    }

    #[test]
    fn unknown_flag_and_file_key_are_refused() {
        assert_eq!(load(&["--bogus"], &[]).unwrap_err(), ConfigError::UnknownFlag("--bogus".into()));
        assert_eq!(load(&["--listen"], &[]).unwrap_err(), ConfigError::MissingValue("--listen".into()));
        let e = parse_file("f.json", r#"{"lisen":"x"}"#).unwrap_err();
        assert_eq!(e, ConfigError::UnknownFileKey { path: "f.json".into(), key: "lisen".into() });
        let e = parse_file("f.json", r#"{"scope":"a","refresh":[1]}"#).unwrap_err();
        assert_eq!(
            e,
            ConfigError::FileType { path: "f.json".into(), key: "refresh".into(), expected: "a string or a number" }
        );
        assert!(matches!(parse_file("f.json", "{"), Err(ConfigError::File { .. })));
    }

    #[test]
    fn bad_scope_is_refused() {
        let mut list = BASE.to_vec();
        list.extend(["--scope", "has\"quote"]);
        assert!(matches!(load(&list, &[]), Err(ConfigError::Invalid { source: Origin::Flag("scope"), .. })));
    }

    #[test]
    fn upstream_needs_an_origin_and_token_check_defaults_to_jwt() {
        let mut list = BASE.to_vec();
        list.extend([
            "--upstream",
            "http://127.0.0.1:3000",
            "--audience",
            "api://mcp",
            "--required-scope",
            "mcp:tools",
        ]);
        let c = load(&list, &[]).unwrap();
        assert_eq!(c.token_check, TokenCheck::Jwt);
        assert_eq!(c.audiences, ["api://mcp"]);
        assert_eq!(c.required_scopes, ["mcp:tools"]);
        assert_eq!(c.upstream.unwrap().authority, "127.0.0.1:3000");
        list.extend(["--token-check", "none"]);
        assert!(matches!(load(&list, &[]), Err(ConfigError::Invalid { source: Origin::Flag("token_check"), .. })));
        let e = load(&[BASE, &["--upstream", "http://h/mcp", "--token-check", "presence"]].concat(), &[]).unwrap_err();
        assert!(matches!(e, ConfigError::Invalid { source: Origin::Flag("upstream"), .. }));
    }

    #[test]
    fn cors_origins_and_strip_authorization_are_checked() {
        let up = ["--upstream", "http://127.0.0.1:3000"];
        let c = load(&[BASE, &up, &["--cors-origin", "https://app.example", "--strip-authorization"]].concat(), &[]);
        let c = c.unwrap();
        let own = || "https://mcp.example.com".to_string();
        assert_eq!(c.cors_origins, Origins::Listed(vec![own(), "https://app.example".into()]));
        assert!(c.strip_authorization);
        let any = load(&[BASE, &up, &["--cors-origin", "https://a.example", "--cors-origin", "*"]].concat(), &[]);
        assert_eq!(any.unwrap().cors_origins, Origins::Any);
        // Without the flag, the resource's own origin; listed ones are kept as browsers send them.
        assert_eq!(load(BASE, &[]).unwrap().cors_origins, Origins::Listed(vec![own()]));
        let c = load(&[BASE, &up, &["--cors-origin", "HTTPS://App.Example:443"]].concat(), &[]).unwrap();
        assert_eq!(c.cors_origins, Origins::Listed(vec![own(), "https://app.example".into()]));
        let e = load(&[BASE, &up, &["--cors-origin", "https://app.example/path"]].concat(), &[]).unwrap_err();
        assert!(matches!(e, ConfigError::Invalid { source: Origin::Flag("cors_origin"), .. }));
        let e = load(&[BASE, &up, &["--token-check", "presence", "--strip-authorization"]].concat(), &[]).unwrap_err();
        assert!(e.to_string().contains("needs --token-check jwt or introspect"), "{e}");
    }

    #[test]
    fn hosts_are_the_resource_and_its_aliases() {
        let own = HostName { host: "mcp.example.com".into(), port: Some(443) };
        assert_eq!(load(BASE, &[]).unwrap().hosts, Hosts::Listed(vec![own.clone()]));
        let list = [BASE, &["--host-alias", "LocalHost", "--host-alias", "[::1]:8443", "--host-alias", "localhost"]];
        let c = load(&list.concat(), &[]).unwrap();
        let alias = |host: &str, port| HostName { host: host.into(), port };
        assert_eq!(c.hosts, Hosts::Listed(vec![own, alias("localhost", None), alias("[::1]", Some(8443))]));
        assert_eq!(load(&[BASE, &["--host-alias", "*"]].concat(), &[]).unwrap().hosts, Hosts::Any);
        for bad in ["https://x.example", "x.example/mcp", "user@x.example", "x.example:port", ""] {
            let e = load(&[BASE, &["--host-alias", bad]].concat(), &[]).unwrap_err();
            assert!(matches!(e, ConfigError::Invalid { source: Origin::Flag("host_alias"), .. }), "{bad}: {e}");
        }
        let c = load(&["--resource", "http://127.0.0.1:8080/mcp", "--auth-server", "https://a.example"], &[]);
        assert_eq!(c.unwrap().hosts, Hosts::Listed(vec![alias("127.0.0.1", Some(8080))]));
    }

    #[test]
    fn session_keys_are_long_hidden_and_need_checked_tokens() {
        assert_eq!(load(BASE, &[]).unwrap().sessions, SessionBinding::Off);
        let key = "k".repeat(32);
        let c = load(&[BASE, &["--session-key", &key]].concat(), &[]).unwrap();
        assert_eq!(c.sessions, SessionBinding::Keyed(Secrets(vec![key.clone()])));
        assert!(!format!("{c:?}").contains(&key), "the key is not printed");
        let c = load(BASE, &[("MCP_AUTH_EDGE_SESSION_KEY", &format!("{key} {}", "n".repeat(40)))]).unwrap();
        assert!(matches!(c.sessions, SessionBinding::Keyed(Secrets(keys)) if keys.len() == 2));
        let e = load(&[BASE, &["--session-key", "short"]].concat(), &[]).unwrap_err();
        assert!(e.to_string().contains("at least 32 bytes") && !e.to_string().contains("short\""), "{e}");
        let e = load(&[BASE, &["--session-key", &key, "--token-check", "presence"]].concat(), &[]).unwrap_err();
        assert!(matches!(e, ConfigError::Invalid { source: Origin::Flag("session_key"), .. }), "{e}");
    }

    #[test]
    fn require_at_jwt_is_a_flag() {
        assert_eq!(load(BASE, &[]).unwrap().jwt_typ, JwtTyp::Lenient);
        assert_eq!(load(&[BASE, &["--require-at-jwt"]].concat(), &[]).unwrap().jwt_typ, JwtTyp::AtJwt);
    }

    #[test]
    fn introspect_mode_needs_client_credentials_and_hides_the_secret() {
        let mode = [BASE, &["--upstream", "http://127.0.0.1:3000", "--token-check", "introspect"]].concat();
        let e = load(&mode, &[]).unwrap_err();
        assert_eq!(e, ConfigError::MissingFor { name: "introspection_client_id", by: "--token-check introspect" });
        assert!(e.to_string().starts_with("--introspection-client-id is required by --token-check introspect"), "{e}");
        let with_id = [&mode[..], &["--introspection-client-id", "edge"]].concat();
        let e = load(&with_id, &[]).unwrap_err();
        assert!(e.to_string().contains("MCP_AUTH_EDGE_INTROSPECTION_CLIENT_SECRET"), "{e}");
        let c = load(&with_id, &[("MCP_AUTH_EDGE_INTROSPECTION_CLIENT_SECRET", "s3cret")]).unwrap();
        let TokenCheck::Introspect { client: credentials, cache_for, recheck_every } = c.token_check.clone() else {
            panic!("introspect mode")
        };
        assert_eq!((credentials.id.as_str(), credentials.secret.as_str()), ("edge", "s3cret"));
        assert!(!format!("{c:?}").contains("s3cret"));
        assert_eq!(cache_for, Duration::from_secs(60));
        assert_eq!(recheck_every, Some(Duration::from_secs(60)));
        let c = load(&[&with_id[..], &["--introspection-client-secret", "x", "--stream-recheck", "0"]].concat(), &[]);
        assert!(matches!(c.unwrap().token_check, TokenCheck::Introspect { recheck_every: None, .. }));
        let e = load(&[BASE, &["--stream-recheck", "5"]].concat(), &[]).unwrap_err();
        assert!(matches!(e, ConfigError::Invalid { source: Origin::Flag("stream_recheck"), .. }), "{e}");
        let c =
            load(&[&with_id[..], &["--introspection-client-secret", "x", "--introspection-cache", "0"]].concat(), &[]);
        assert!(matches!(c.unwrap().token_check, TokenCheck::Introspect { cache_for: Duration::ZERO, .. }));
        let e =
            load(&[&with_id[..], &["--introspection-client-secret", "x", "--introspection-cache", "-1"]].concat(), &[]);
        assert!(matches!(e, Err(ConfigError::Invalid { source: Origin::Flag("introspection_cache"), .. })));
        // Credentials in another mode are a mistake worth stopping for, with the secret hidden.
        let e = load(&[BASE, &["--introspection-client-secret", "s3cret"]].concat(), &[]).unwrap_err();
        assert!(
            e.to_string().contains("only with --token-check introspect") && !e.to_string().contains("s3cret"),
            "{e}"
        );
    }

    #[test]
    fn tls_needs_both_files() {
        let e = load(&[BASE, &["--tls-cert", "/x/cert.pem"]].concat(), &[]).unwrap_err();
        assert_eq!(e, ConfigError::MissingFor { name: "tls_key", by: "--tls-cert" });
        let e = load(BASE, &[("MCP_AUTH_EDGE_TLS_KEY", "/x/key.pem")]).unwrap_err();
        assert_eq!(e, ConfigError::MissingFor { name: "tls_cert", by: "--tls-key" });
        // The files are only named here; the application loads them (and says which is wrong).
        let c = load(&[BASE, &["--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem"]].concat(), &[]);
        let tls = c.unwrap().tls.expect("TLS is configured");
        assert_eq!((tls.cert_from, tls.key_from), (Origin::Flag("tls_cert"), Origin::Flag("tls_key")));
    }

    #[test]
    fn limits_have_defaults_and_name_their_flag_when_wrong() {
        let c = load(BASE, &[]).unwrap();
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.limits.max_connections, Some(4096));
        let list = [
            BASE,
            &[
                "--max-header-bytes=8192",
                "--max-headers=20",
                "--header-read-timeout=0.5",
                "--idle-timeout=2",
                "--max-connections=3",
                "--h2-max-concurrent-streams=7",
                "--max-body-bytes=1000",
            ],
        ]
        .concat();
        let l = load(&list, &[]).unwrap().limits;
        assert_eq!((l.max_header_bytes, l.max_headers, l.max_connections), (8192, 20, Some(3)));
        assert_eq!((l.header_read_timeout, l.idle_timeout), (Duration::from_millis(500), Duration::from_secs(2)));
        assert_eq!((l.h2_max_concurrent_streams, l.max_body_bytes), (7, 1000));
        for (flag, bad) in [
            ("max_header_bytes", "8191"),
            ("max_headers", "0"),
            ("header_read_timeout", "0"),
            ("idle_timeout", "soon"),
            ("max_connections", "-1"),
            ("h2_max_concurrent_streams", "0"),
            ("max_body_bytes", "1MB"),
        ] {
            let e = load(BASE, &[(&format!("MCP_AUTH_EDGE_{}", flag.to_ascii_uppercase()), bad)]).unwrap_err();
            assert!(matches!(&e, ConfigError::Invalid { source: Origin::Env(name), .. } if *name == flag), "{e}");
        }
        let e = load(&[BASE, &["--max-header-bytes", "4096"]].concat(), &[]).unwrap_err().to_string();
        assert!(e.starts_with("invalid --max-header-bytes \"4096\": must be a whole number of bytes from 8192"), "{e}");
    }

    /// Loads BASE with a `--config` file holding `json`.
    fn with_file(json: &str, extra: &[&str]) -> Result<Config, ConfigError> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let file = std::env::temp_dir().join(format!("mae-policy-{}-{n}.json", std::process::id()));
        std::fs::write(&file, json).unwrap();
        let path = file.to_str().unwrap().to_string();
        let c = load(&[BASE, &["--config", &path], extra].concat(), &[]);
        std::fs::remove_file(&file).unwrap();
        c.map_err(|e| match e {
            ConfigError::Policy { path, reason, .. } => ConfigError::Policy { file: "FILE".into(), path, reason },
            other => other,
        })
    }

    #[test]
    fn a_policy_comes_from_the_file_per_resource() {
        let c = with_file(
            r#"{"policy": {"default": "deny", "rules": [{"method": "tools/call", "scopes": ["mcp:tools"]}]},
                "policy_denial": "tool_error",
                "max_inspect_bytes": 4096,
                "resources": [{"resource": "https://mcp.example.com/other", "auth_server": "https://auth.example.com"}]}"#,
            &[],
        )
        .unwrap();
        let policy = c.policy.as_ref().expect("a policy");
        assert_eq!(policy.scopes(), ["mcp:tools"]);
        assert_eq!(c.policy_denial, PolicyDenial::ToolError);
        assert_eq!(c.limits.max_inspect_bytes, 4096);
        // A policy is the resource's own; the inspection bound is inherited.
        assert_eq!(c.resources[0].policy, None);
        assert_eq!(c.resources[0].policy_denial, PolicyDenial::Forbidden);
        assert_eq!(c.resources[0].limits.max_inspect_bytes, 4096);
        assert_eq!(load(BASE, &[]).unwrap().limits.max_inspect_bytes, 1 << 20);
        let c = with_file(
            r#"{"resources": [{"resource": "https://mcp.example.com/other", "auth_server": "https://auth.example.com",
                "policy": {"default": "allow"}}]}"#,
            &[],
        )
        .unwrap();
        assert!(c.policy.is_none() && c.resources[0].policy.is_some());
    }

    #[test]
    fn a_bad_policy_is_named_by_its_key_path() {
        let e = with_file(
            r#"{"policy": {"default": "deny", "rules": [{"method": "tools/call"}, {"method": "a"},
                {"method": "x/y", "name": "t"}]}}"#,
            &[],
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with("\"policy.rules[2].name\" in FILE: only a rule whose method is exactly"),
            "{e}"
        );
        let e = with_file(r#"{"policy": "deny"}"#, &[]).unwrap_err();
        assert!(matches!(e, ConfigError::FileType { expected: "a JSON object", .. }), "{e}");
        let e = with_file(
            r#"{"resources": [{"resource": "https://mcp.example.com/o", "auth_server": "https://auth.example.com",
                "policy": {"default": "maybe"}}]}"#,
            &[],
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("\"policy.default\" in FILE: must be"), "{e}");
    }

    #[test]
    fn a_policy_is_file_only_and_needs_checked_tokens() {
        let e = load(&[BASE, &["--policy", "{}"]].concat(), &[]).unwrap_err().to_string();
        assert!(e.starts_with("invalid --policy \"{}\": is a JSON object, given only in the --config file"), "{e}");
        let e = load(BASE, &[("MCP_AUTH_EDGE_POLICY", "{}")]).unwrap_err().to_string();
        assert!(e.contains("MCP_AUTH_EDGE_POLICY") && e.contains("only in the --config file"), "{e}");
        let policy = r#"{"policy": {"default": "allow"}}"#;
        let e = with_file(policy, &["--token-check", "presence"]).unwrap_err().to_string();
        assert!(e.contains("needs --token-check jwt or introspect"), "{e}");
        let e = load(&[BASE, &["--policy-denial", "silent"]].concat(), &[]).unwrap_err().to_string();
        assert!(e.starts_with("invalid --policy-denial \"silent\""), "{e}");
        let e = load(&[BASE, &["--max-inspect-bytes", "0"]].concat(), &[]).unwrap_err().to_string();
        assert!(e.starts_with("invalid --max-inspect-bytes"), "{e}");
    }

    #[test]
    fn dpop_modes_and_their_settings() {
        let up = ["--upstream", "http://127.0.0.1:3000"];
        assert_eq!(load(BASE, &[]).unwrap().dpop, Dpop::default());
        let c = load(&[BASE, &up, &["--dpop", "require", "--dpop-iat-window", "60"]].concat(), &[]).unwrap();
        assert_eq!((c.dpop.mode, c.dpop.iat_window_secs, c.dpop.nonce_keys.0.len()), (DpopMode::Require, 60, 0));
        let key = "k".repeat(32);
        let old = "o".repeat(40);
        let env = [("MCP_AUTH_EDGE_DPOP_NONCE_KEY", format!("{key} {old}"))];
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let c = load(&[BASE, &up, &["--dpop", "allow"]].concat(), &env).unwrap();
        assert_eq!(c.dpop.mode, DpopMode::Allow);
        assert_eq!(c.dpop.nonce_keys.0, [key.as_bytes(), old.as_bytes()], "the first issues");
        assert!(!format!("{c:?}").contains(&key), "keys are hidden in Debug");
        for (list, flag, says) in [
            (vec!["--dpop", "maybe"], "dpop", "must be off, allow or require"),
            (vec!["--dpop", "allow", "--dpop-iat-window", "0"], "dpop_iat_window", "from 1 to 3600"),
            (vec!["--dpop", "allow", "--dpop-iat-window", "soon"], "dpop_iat_window", "from 1 to 3600"),
            (vec!["--dpop-iat-window", "60"], "dpop_iat_window", "only with --dpop allow or require"),
            (vec!["--dpop-nonce-key", &key], "dpop_nonce_key", "only with --dpop allow or require"),
            (vec!["--dpop", "off", "--dpop-nonce-key", &key], "dpop_nonce_key", "only with --dpop allow or require"),
            (vec!["--dpop", "allow", "--dpop-nonce-key", &key, "--dpop-nonce-key", "short"], "dpop_nonce_key", "32"),
            (vec!["--dpop", "require", "--token-check", "presence"], "dpop", "cnf.jkt"),
        ] {
            let e = load(&[BASE, &up, &list].concat(), &[]).unwrap_err();
            assert!(matches!(&e, ConfigError::Invalid { source: Origin::Flag(name), .. } if *name == flag), "{e}");
            let text = e.to_string();
            assert!(text.contains(&format!("--{}", flag.replace('_', "-"))) && text.contains(says), "{text}");
            assert!(!text.contains(&key) && !text.contains("short"), "a key never shows: {text}");
        }
        let e = load(&[BASE, &["--dpop", "allow"]].concat(), &[("MCP_AUTH_EDGE_DPOP_NONCE_KEY", "tiny")]);
        let e = e.unwrap_err().to_string();
        assert!(e.starts_with("invalid MCP_AUTH_EDGE_DPOP_NONCE_KEY \"<hidden>\""), "{e}");
    }

    #[test]
    fn dpop_is_a_per_resource_setting() {
        let dir = std::env::temp_dir().join(format!("mae-config-dpop-{}", std::process::id()));
        let file = r#"{"resources":[{"resource":"https://mcp.example.com/b","auth_server":"https://a.example",
            "dpop":"require","dpop_nonce_key":["0123456789abcdef0123456789abcdef"]}]}"#;
        std::fs::write(&dir, file).unwrap();
        let c = load(&[BASE, &["--config", dir.to_str().unwrap()]].concat(), &[]);
        std::fs::remove_file(&dir).unwrap();
        let c = c.unwrap();
        assert_eq!(c.dpop.mode, DpopMode::Off);
        assert_eq!((c.resources[0].dpop.mode, c.resources[0].dpop.nonce_keys.0.len()), (DpopMode::Require, 1));
    }

    #[test]
    fn demo_flag_needs_no_value() {
        let s = Settings::load(args(&["--demo"]), |_| None).unwrap();
        assert!(s.demo().unwrap());
        let s = Settings::load(args(&[]), |n| (n == "MCP_AUTH_EDGE_DEMO").then(|| "maybe".into())).unwrap();
        assert!(s.demo().is_err());
    }
}
