//! Configuration: command-line flags, `MCP_AUTH_EDGE_*` environment variables and a JSON file,
//! merged into one validated [`Config`] before any port is bound.
//!
//! Precedence is flag over environment over file. Each raw value remembers where it came from,
//! so an error names the exact flag, variable or file key the operator has to fix.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::Uri;

/// Every setting the edge understands. `kind` says how the command line spells it.
const KEYS: &[Key] = &[
    Key::value("listen", "ADDR", "address of the main listener (default 127.0.0.1:8080)"),
    Key::value("tls_cert", "FILE", "PEM certificate chain: the main listener speaks TLS (with --tls-key)"),
    Key::value("tls_key", "FILE", "PEM private key of --tls-cert; both reloaded on change or SIGHUP"),
    Key::value("resource", "URL", "public URL of the protected MCP resource (required)"),
    Key::value("auth_server", "URL", "issuer URL of the authorization server (required)"),
    Key::value("auth_server_metadata", "URL", "explicit metadata URL; skips discovery"),
    Key::list("scope", "SCOPE", "scope the resource supports (repeatable)"),
    Key::value("resource_name", "TEXT", "human-readable resource name"),
    Key::value("resource_documentation", "URL", "URL of the resource's documentation"),
    Key::value("refresh", "SECS", "metadata refresh period (default 300)"),
    Key::value("admin_listen", "ADDR", "listener for /healthz, /readyz and /metrics"),
    Key::value("cache_max_age", "SECS", "Cache-Control max-age of discovery documents (default 300)"),
    Key::value("connect_timeout", "SECS", "upstream connect timeout (default 5)"),
    Key::value("fetch_timeout", "SECS", "upstream metadata fetch timeout, in total (default 10)"),
    Key::value("max_metadata_bytes", "BYTES", "largest metadata document accepted (default 262144)"),
    Key::value("drain_timeout", "SECS", "how long shutdown waits for in-flight requests (default 10)"),
    Key::value("upstream", "URL", "MCP server to forward authenticated requests to (origin only)"),
    Key::value("upstream_timeout", "SECS", "how long to wait for the MCP server's response headers (default 30)"),
    Key::value("token_check", "MODE", "jwt, introspect or presence (default jwt)"),
    Key::value("introspection_client_id", "ID", "client id the edge introspects tokens with (introspect mode)"),
    Key::value(
        "introspection_client_secret",
        "SECRET",
        "its client secret; prefer MCP_AUTH_EDGE_INTROSPECTION_CLIENT_SECRET to a flag",
    ),
    Key::value(
        "introspection_cache",
        "SECS",
        "how long an active introspection answer is trusted (default 60; 0: never)",
    ),
    Key::list("audience", "AUD", "an accepted token audience besides --resource (repeatable)"),
    Key::list("required_scope", "SCOPE", "a scope every token must carry (repeatable)"),
    Key::list("cors_origin", "ORIGIN", "a browser origin allowed on the MCP endpoint (repeatable; default *)"),
    Key::flag(
        "strip_authorization",
        "forward X-Auth-Subject and X-Auth-Scopes instead of the token (jwt and introspect modes)",
    ),
    Key::value("max_header_bytes", "BYTES", "largest request head, HTTP/1.1 or HTTP/2 (default 32768)"),
    Key::value("max_headers", "N", "most header fields in an HTTP/1.1 request (default 100)"),
    Key::value("header_read_timeout", "SECS", "time allowed for a request head (default 10)"),
    Key::value("idle_timeout", "SECS", "how long a connection may stay without a request (default 75)"),
    Key::value("max_connections", "N", "connections served at once; more wait to be accepted (default 4096)"),
    Key::value("h2_max_concurrent_streams", "N", "streams open at once on one HTTP/2 connection (default 128)"),
    Key::value("max_body_bytes", "BYTES", "largest request body forwarded to --upstream (default 16777216)"),
    Key::value("access_log", "FILE", "JSON line per request, appended to FILE (- for stdout); off by default"),
    Key::value("threads", "N", "worker threads (default: the CPUs this process may use)"),
    Key::flag("demo", "run a built-in authorization server and the edge in front of it"),
    Key::value(
        "config",
        "FILE",
        "JSON file with any of these settings, snake_case; its \"resources\" array adds protected resources",
    ),
];

/// The settings an entry of the file's `resources` array gives for its own resource.
const PER_RESOURCE: &[&str] = &[
    "resource",
    "auth_server",
    "auth_server_metadata",
    "scope",
    "resource_name",
    "resource_documentation",
    "upstream",
    "token_check",
    "introspection_client_id",
    "introspection_client_secret",
    "introspection_cache",
    "audience",
    "required_scope",
    "cors_origin",
    "strip_authorization",
];

/// The settings an entry may give and otherwise takes from the top level.
const INHERITED: &[&str] =
    &["refresh", "connect_timeout", "fetch_timeout", "max_metadata_bytes", "upstream_timeout", "max_body_bytes"];

const ENV_PREFIX: &str = "MCP_AUTH_EDGE_";

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
    /// Origins allowed on the MCP endpoint; empty means any (`*`).
    pub cors_origins: Vec<String>,
    pub strip_authorization: bool,
    /// TLS on the main listener: where its certificate and key are; `None` serves cleartext.
    /// The application loads them, before any port is bound.
    pub tls: Option<TlsFiles>,
    /// What clients of the main listener may send and hold.
    pub limits: Limits,
    /// Where the access log goes; `None` writes none. The application opens it.
    pub access_log: Option<AccessLogTarget>,
    /// Further protected resources, from the file's `resources` array. Each is validated as a
    /// configuration of its own (inheriting the top level's timings); only its per-resource
    /// settings are used. The top level's resource is the first, the default.
    pub resources: Vec<Config>,
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

/// Where `--access-log` writes, and where that was said.
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

/// What is wrong with the configuration, naming where the bad value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    UnknownFlag(String),
    MissingValue(String),
    Missing(&'static str),
    /// Required because of another setting's value, named in `by`.
    MissingFor {
        name: &'static str,
        by: &'static str,
    },
    Invalid {
        source: Origin,
        value: String,
        reason: &'static str,
    },
    File {
        path: String,
        reason: String,
    },
    UnknownFileKey {
        path: String,
        key: String,
    },
    FileType {
        path: String,
        key: String,
        expected: &'static str,
    },
    HelpRequested,
    VersionRequested,
}

/// Where a raw value came from, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Flag(&'static str),
    Env(&'static str),
    File { path: String, key: &'static str },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(name) => write!(f, "--{}", name.replace('_', "-")),
            Origin::Env(name) => write!(f, "{ENV_PREFIX}{}", name.to_ascii_uppercase()),
            Origin::File { path, key } => write!(f, "\"{key}\" in {path}"),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::UnknownFlag(flag) => write!(f, "unknown flag {flag} (see --help)"),
            ConfigError::MissingValue(flag) => write!(f, "{flag} needs a value"),
            ConfigError::Missing(name) => write!(
                f,
                "--{} is required (or {ENV_PREFIX}{}, or \"{name}\" in --config)",
                name.replace('_', "-"),
                name.to_ascii_uppercase()
            ),
            ConfigError::MissingFor { name, by } => write!(
                f,
                "--{} is required by {by} (or {ENV_PREFIX}{}, or \"{name}\" in --config)",
                name.replace('_', "-"),
                name.to_ascii_uppercase()
            ),
            ConfigError::Invalid { source, value, reason } => {
                write!(f, "invalid {source} {value:?}: {reason}")
            }
            ConfigError::File { path, reason } => write!(f, "cannot use --config {path}: {reason}"),
            ConfigError::UnknownFileKey { path, key } => {
                write!(f, "unknown setting \"{key}\" in {path} (see --help)")
            }
            ConfigError::FileType { path, key, expected } => {
                write!(f, "\"{key}\" in {path} must be {expected}")
            }
            ConfigError::HelpRequested => f.write_str(&usage()),
            ConfigError::VersionRequested => {
                write!(f, "mcp-auth-edge {}", env!("CARGO_PKG_VERSION"))
            }
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Clone, Copy)]
enum Kind {
    Value(&'static str),
    List(&'static str),
    Flag,
}

struct Key {
    name: &'static str,
    kind: Kind,
    help: &'static str,
}

impl Key {
    const fn value(name: &'static str, meta: &'static str, help: &'static str) -> Key {
        Key { name, kind: Kind::Value(meta), help }
    }
    const fn list(name: &'static str, meta: &'static str, help: &'static str) -> Key {
        Key { name, kind: Kind::List(meta), help }
    }
    const fn flag(name: &'static str, help: &'static str) -> Key {
        Key { name, kind: Kind::Flag, help }
    }
}

fn key_by_flag(flag: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name.len() == flag.len() && k.name.replace('_', "-") == flag)
}

fn key_by_name(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// The `--help` text.
pub fn usage() -> String {
    let mut out = String::from(
        "mcp-auth-edge: OAuth discovery edge for MCP servers\n\n\
         usage: mcp-auth-edge --resource URL --auth-server URL [options]\n       \
         mcp-auth-edge --demo\n\noptions (each also MCP_AUTH_EDGE_<NAME> or \"<name>\" in --config):\n",
    );
    for key in KEYS {
        let flag = format!("--{}", key.name.replace('_', "-"));
        let left = match key.kind {
            Kind::Value(meta) | Kind::List(meta) => format!("{flag} {meta}"),
            Kind::Flag => flag,
        };
        out.push_str(&format!("  {left:<30} {}\n", key.help));
    }
    out.push_str("  --help, --version\n");
    out
}

type Values = BTreeMap<&'static str, (Origin, Raw)>;

/// Raw values gathered from the three sources, before validation.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    values: Values,
    /// The file's `resources` entries, each with where it is (`FILE, resources[N]`).
    resources: Vec<(String, Values)>,
}

#[derive(Clone, Debug, PartialEq)]
enum Raw {
    One(String),
    Many(Vec<String>),
}

impl Settings {
    /// Reads the command line (without the program name) and the environment, then the file
    /// that `--config` or `MCP_AUTH_EDGE_CONFIG` names, if any.
    pub fn load(
        args: impl IntoIterator<Item = String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let flags = parse_args(args)?;
        let env = parse_env(env);
        let file_path = flags.get("config").or_else(|| env.get("config")).and_then(|(_, raw)| match raw {
            Raw::One(path) => Some(path.clone()),
            Raw::Many(_) => None,
        });
        let (file, resources) = match file_path {
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| ConfigError::File { path: path.clone(), reason: e.to_string() })?;
                parse_file(&path, &text)?
            }
            None => (BTreeMap::new(), Vec::new()),
        };
        let mut values = file;
        values.extend(env);
        values.extend(flags);
        Ok(Settings { values, resources })
    }

    /// Sets a value as if it had been given on the command line; the demo fills in its own
    /// resource and issuer this way so they pass through the same validation.
    pub fn set(&mut self, name: &'static str, value: String) {
        self.values.insert(name, (Origin::Flag(name), Raw::One(value)));
    }

    /// Whether a value was given by any source.
    pub fn has(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// The main listener's address: given, or the default `127.0.0.1:8080`.
    pub fn listen(&self) -> Result<SocketAddr, ConfigError> {
        match self.one("listen") {
            Some((o, v)) => parse_addr(o, v),
            None => Ok(SocketAddr::from(([127, 0, 0, 1], 8080))),
        }
    }

    /// Whether `--demo` (or its environment or file form) is on.
    pub fn demo(&self) -> Result<bool, ConfigError> {
        match self.values.get("demo") {
            None => Ok(false),
            Some((origin, Raw::One(v))) => parse_bool(origin, v),
            Some((origin, Raw::Many(_))) => Err(invalid(origin, "list", "must be true or false")),
        }
    }

    fn one(&self, name: &'static str) -> Option<(&Origin, &str)> {
        match self.values.get(name) {
            Some((origin, Raw::One(v))) => Some((origin, v.as_str())),
            Some((origin, Raw::Many(v))) => v.last().map(|v| (origin, v.as_str())),
            None => None,
        }
    }

    fn many(&self, name: &'static str) -> Vec<(&Origin, &str)> {
        match self.values.get(name) {
            Some((origin, Raw::One(v))) => {
                // From the environment or a file a list may come as one space-separated string,
                // the way OAuth writes scopes.
                v.split_ascii_whitespace().map(|s| (origin, s)).collect()
            }
            Some((origin, Raw::Many(v))) => v.iter().map(|s| (origin, s.as_str())).collect(),
            None => Vec::new(),
        }
    }
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<BTreeMap<&'static str, (Origin, Raw)>, ConfigError> {
    let mut out: BTreeMap<&'static str, (Origin, Raw)> = BTreeMap::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--help" || arg == "-h" {
            return Err(ConfigError::HelpRequested);
        }
        if arg == "--version" || arg == "-V" {
            return Err(ConfigError::VersionRequested);
        }
        let Some(body) = arg.strip_prefix("--") else {
            return Err(ConfigError::UnknownFlag(arg));
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let key = key_by_flag(name).ok_or_else(|| ConfigError::UnknownFlag(format!("--{name}")))?;
        let origin = Origin::Flag(key.name);
        match key.kind {
            Kind::Flag => {
                let value = inline.unwrap_or_else(|| "true".to_string());
                out.insert(key.name, (origin, Raw::One(value)));
            }
            Kind::Value(_) | Kind::List(_) => {
                let value = match inline {
                    Some(v) => v,
                    None => args.next().ok_or_else(|| ConfigError::MissingValue(format!("--{name}")))?,
                };
                if let Kind::List(_) = key.kind {
                    match out.get_mut(key.name) {
                        Some((_, Raw::Many(list))) => list.push(value),
                        _ => {
                            out.insert(key.name, (origin, Raw::Many(vec![value])));
                        }
                    }
                } else {
                    out.insert(key.name, (origin, Raw::One(value)));
                }
            }
        }
    }
    Ok(out)
}

fn parse_env(env: impl Fn(&str) -> Option<String>) -> BTreeMap<&'static str, (Origin, Raw)> {
    KEYS.iter()
        .filter_map(|key| {
            let var = format!("{ENV_PREFIX}{}", key.name.to_ascii_uppercase());
            env(&var).map(|v| (key.name, (Origin::Env(key.name), Raw::One(v))))
        })
        .collect()
}

/// Parses the `--config` file: a JSON object whose keys are the settings' snake_case names,
/// and optionally `resources`, an array of objects each describing one more protected resource.
fn parse_file(path: &str, text: &str) -> Result<(Values, Vec<(String, Values)>), ConfigError> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| ConfigError::File { path: path.to_string(), reason: format!("not valid JSON: {e}") })?;
    let serde_json::Value::Object(mut map) = value else {
        return Err(ConfigError::File { path: path.to_string(), reason: "must hold a JSON object".into() });
    };
    let mut resources = Vec::new();
    if let Some(list) = map.remove("resources") {
        let wrong = || ConfigError::FileType {
            path: path.to_string(),
            key: "resources".into(),
            expected: "an array of objects",
        };
        let serde_json::Value::Array(items) = list else { return Err(wrong()) };
        for (i, item) in items.into_iter().enumerate() {
            let serde_json::Value::Object(entry) = item else { return Err(wrong()) };
            let at = format!("{path}, resources[{i}]");
            if let Some(name) =
                entry.keys().find(|k| !PER_RESOURCE.contains(&k.as_str()) && !INHERITED.contains(&k.as_str()))
            {
                return Err(ConfigError::File {
                    path: at,
                    reason: format!("\"{name}\" is not a per-resource setting; set it at the top level"),
                });
            }
            for required in ["resource", "auth_server"] {
                if !entry.contains_key(required) {
                    return Err(ConfigError::File { path: at, reason: format!("a resource needs \"{required}\"") });
                }
            }
            let values = parse_object(&at, entry)?;
            resources.push((at, values));
        }
    }
    Ok((parse_object(path, map)?, resources))
}

/// Parses the settings of one JSON object of the file; `path` says where it is.
fn parse_object(path: &str, map: serde_json::Map<String, serde_json::Value>) -> Result<Values, ConfigError> {
    let mut out = BTreeMap::new();
    for (name, value) in map {
        let key = key_by_name(&name)
            .filter(|k| k.name != "config")
            .ok_or_else(|| ConfigError::UnknownFileKey { path: path.to_string(), key: name.clone() })?;
        let wrong = |expected| ConfigError::FileType { path: path.to_string(), key: name.clone(), expected };
        let raw = match (key.kind, value) {
            (Kind::List(_), serde_json::Value::Array(items)) => Raw::Many(
                items
                    .into_iter()
                    .map(|item| match item {
                        serde_json::Value::String(s) => Ok(s),
                        _ => Err(wrong("an array of strings")),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            (_, serde_json::Value::String(s)) => Raw::One(s),
            (Kind::Value(_), serde_json::Value::Number(n)) => Raw::One(n.to_string()),
            (Kind::Flag, serde_json::Value::Bool(b)) => Raw::One(b.to_string()),
            (Kind::List(_), _) => return Err(wrong("an array of strings")),
            (Kind::Flag, _) => return Err(wrong("true or false")),
            (Kind::Value(_), _) => return Err(wrong("a string or a number")),
        };
        out.insert(key.name, (Origin::File { path: path.to_string(), key: key.name }, raw));
    }
    Ok(out)
}

fn invalid(origin: &Origin, value: &str, reason: &'static str) -> ConfigError {
    ConfigError::Invalid { source: origin.clone(), value: value.to_string(), reason }
}

fn parse_bool(origin: &Origin, v: &str) -> Result<bool, ConfigError> {
    match v {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(invalid(origin, v, "must be true or false")),
    }
}

fn parse_addr(origin: &Origin, v: &str) -> Result<SocketAddr, ConfigError> {
    v.parse().map_err(|_| invalid(origin, v, "must be an IP address and port, like 127.0.0.1:8080"))
}

/// A number of seconds, fractions allowed, within `range`.
fn seconds(
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
fn parse_secs(origin: &Origin, v: &str) -> Result<Duration, ConfigError> {
    seconds(origin, v, f64::MIN_POSITIVE..=31_536_000.0, "must be a number of seconds above 0 and at most a year")
}

/// A whole number within `range`.
fn whole(
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
struct HttpUrl {
    origin: String,
    path: String,
    has_query: bool,
}

fn parse_http_url(v: &str) -> Option<HttpUrl> {
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
    })
}

/// RFC 6749 §3.3: a scope token is printable ASCII without space, quote or backslash.
fn valid_scope(scope: &str) -> bool {
    !scope.is_empty() && scope.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

fn parse_upstream(origin: &Origin, v: &str) -> Result<Upstream, ConfigError> {
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

fn parse_resource(origin: &Origin, v: &str) -> Result<Resource, ConfigError> {
    let url = parse_http_url(v)
        .ok_or_else(|| invalid(origin, v, "must be an absolute http or https URL with no fragment"))?;
    Ok(Resource { url: v.to_string(), origin: url.origin, path: url.path })
}

fn parse_issuer(origin: &Origin, v: &str) -> Result<Issuer, ConfigError> {
    // RFC 8414 §2: the issuer is an https URL with no query or fragment. Plain http is
    // accepted for loopback and test deployments.
    match parse_http_url(v) {
        Some(url) if !url.has_query => Ok(Issuer { url: v.to_string(), origin: url.origin, path: url.path }),
        _ => Err(invalid(origin, v, "must be an absolute http or https URL with no query or fragment")),
    }
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
            let value = match value {
                Raw::One(v) => v.clone(),
                Raw::Many(v) => v.join(" "),
            };
            return Err(invalid(
                origin,
                &value,
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
                TokenCheck::Introspect { client, cache_for: introspection_cache }
            }
            Some((_, "presence")) => TokenCheck::Presence,
            Some((o, v)) => return Err(invalid(o, v, "must be jwt, introspect or presence")),
        };
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
        let mut cors_origins = Vec::new();
        for (o, origin) in s.many("cors_origin") {
            if origin == "*" {
                cors_origins.clear();
                break;
            }
            // A browser origin: scheme and host (and port), nothing after (RFC 6454 §6.2).
            match parse_http_url(origin) {
                Some(url) if url.path.is_empty() && !url.has_query && !origin.ends_with('/') => {
                    cors_origins.push(origin.to_string())
                }
                _ => return Err(invalid(o, origin, "must be * or an origin like https://app.example (no path)")),
            }
        }
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
        Ok(Config {
            resources,
            access_log,
            limits,
            tls,
            cors_origins,
            strip_authorization,
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
        assert_eq!(c.cors_origins, ["https://app.example"]);
        assert!(c.strip_authorization);
        let any = load(&[BASE, &up, &["--cors-origin", "https://a.example", "--cors-origin", "*"]].concat(), &[]);
        assert!(any.unwrap().cors_origins.is_empty());
        let e = load(&[BASE, &up, &["--cors-origin", "https://app.example/path"]].concat(), &[]).unwrap_err();
        assert!(matches!(e, ConfigError::Invalid { source: Origin::Flag("cors_origin"), .. }));
        let e = load(&[BASE, &up, &["--token-check", "presence", "--strip-authorization"]].concat(), &[]).unwrap_err();
        assert!(e.to_string().contains("needs --token-check jwt or introspect"), "{e}");
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
        let TokenCheck::Introspect { client: credentials, cache_for } = c.token_check.clone() else {
            panic!("introspect mode")
        };
        assert_eq!((credentials.id.as_str(), credentials.secret.as_str()), ("edge", "s3cret"));
        assert!(!format!("{c:?}").contains("s3cret"));
        assert_eq!(cache_for, Duration::from_secs(60));
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

    #[test]
    fn demo_flag_needs_no_value() {
        let s = Settings::load(args(&["--demo"]), |_| None).unwrap();
        assert!(s.demo().unwrap());
        let s = Settings::load(args(&[]), |n| (n == "MCP_AUTH_EDGE_DEMO").then(|| "maybe".into())).unwrap();
        assert!(s.demo().is_err());
    }
}
