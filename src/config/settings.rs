//! Where settings come from: the table of every setting, the command line, the
//! `MCP_AUTH_EDGE_*` environment and the `--config` file, gathered into raw [`Settings`] that
//! remember where each value came from; and [`ConfigError`], which names that place.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

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
    Key::value(
        "token_leeway",
        "SECS",
        "clock skew allowed on a token's exp, nbf and iat; a stream ends at exp plus this (default 60)",
    ),
    Key::value(
        "stream_recheck",
        "SECS",
        "introspect mode: how often a stream's token is asked about again; 0: never (default 60)",
    ),
    Key::list("audience", "AUD", "an accepted token audience besides --resource (repeatable)"),
    Key::list("required_scope", "SCOPE", "a scope every token must carry (repeatable)"),
    Key::list(
        "cors_origin",
        "ORIGIN",
        "a browser origin allowed to call the MCP endpoint (repeatable; default the resource's own; * for any)",
    ),
    Key::list(
        "host_alias",
        "HOST",
        "another Host the MCP endpoint answers to besides the resource's (repeatable; HOST or HOST:PORT; * for any)",
    ),
    Key::list(
        "session_key",
        "SECRET",
        "binds 2025-11-25 session ids to their caller (repeatable: the first signs; 32+ bytes; prefer the env)",
    ),
    Key::flag("require_at_jwt", "refuse JWT access tokens whose typ is not at+jwt (RFC 9068 section 2.1)"),
    Key::flag(
        "strip_authorization",
        "forward X-Auth-Subject and X-Auth-Scopes instead of the token (jwt and introspect modes)",
    ),
    Key::value("dpop", "MODE", "DPoP-bound tokens (RFC 9449): off, allow or require (default off)"),
    Key::value("dpop_iat_window", "SECS", "how far a DPoP proof's iat may be from now, either way (default 300)"),
    Key::list(
        "dpop_nonce_key",
        "SECRET",
        "key of stateless DPoP nonces, 32+ bytes; nonces are then required; repeatable, the first issues \
         (prefer MCP_AUTH_EDGE_DPOP_NONCE_KEY, keys separated by spaces)",
    ),
    Key::value("max_header_bytes", "BYTES", "largest request head, HTTP/1.1 or HTTP/2 (default 32768)"),
    Key::value("max_headers", "N", "most header fields in an HTTP/1.1 request (default 100)"),
    Key::value("header_read_timeout", "SECS", "time allowed for a request head (default 10)"),
    Key::value("idle_timeout", "SECS", "how long a connection may stay without a request (default 75)"),
    Key::value("max_connections", "N", "connections served at once; more wait to be accepted (default 4096)"),
    Key::value("h2_max_concurrent_streams", "N", "streams open at once on one HTTP/2 connection (default 128)"),
    Key::value("max_body_bytes", "BYTES", "largest request body forwarded to --upstream (default 16777216)"),
    Key::value(
        "max_inspect_bytes",
        "BYTES",
        "largest POST body read for a \"policy\" decision; a larger one is refused (default 1048576)",
    ),
    Key::object("policy", "MCP authorization policy per resource: a JSON object, in --config only (see README)"),
    Key::value("policy_denial", "MODE", "forbidden (403) or tool_error (JSON-RPC answer) for a policy denial"),
    Key::value("access_log", "FILE", "JSON line per request, appended to FILE (- for stdout); off by default"),
    Key::value(
        "audit_log",
        "FILE",
        "JSON line per MCP policy decision, appended to FILE (- for stdout); off by default",
    ),
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
    "stream_recheck",
    "audience",
    "required_scope",
    "cors_origin",
    "session_key",
    "require_at_jwt",
    "strip_authorization",
    "dpop",
    "dpop_iat_window",
    "dpop_nonce_key",
    "policy",
    "policy_denial",
];

/// The settings an entry may give and otherwise takes from the top level.
/// (`host_alias`: the other names an edge answers to are usually the edge's, whichever resource.)
pub(super) const INHERITED: &[&str] = &[
    "refresh",
    "connect_timeout",
    "fetch_timeout",
    "max_metadata_bytes",
    "upstream_timeout",
    "max_body_bytes",
    "max_inspect_bytes",
    "host_alias",
    "token_leeway",
];

const ENV_PREFIX: &str = "MCP_AUTH_EDGE_";

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
    /// A `policy` that cannot work; `file` is where it is (`FILE` or `FILE, resources[N]`).
    /// `path` is the key path of the offending value (`policy.rules[2].name`).
    Policy {
        file: String,
        path: String,
        reason: String,
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
            ConfigError::Policy { file, path, reason } => write!(f, "\"{path}\" in {file}: {reason}"),
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
    /// A JSON object, which only the `--config` file can hold; a flag or variable of this name
    /// is kept as text and refused when validated, with a message saying so.
    Object,
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
    const fn object(name: &'static str, help: &'static str) -> Key {
        Key { name, kind: Kind::Object, help }
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
            Kind::Object => format!("\"{}\" (file)", key.name),
        };
        out.push_str(&format!("  {left:<30} {}\n", key.help));
    }
    out.push_str("  --help, --version\n");
    out
}

pub(super) type Values = BTreeMap<&'static str, (Origin, Raw)>;

/// Raw values gathered from the three sources, before validation.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    pub(super) values: Values,
    /// The file's `resources` entries, each with where it is (`FILE, resources[N]`).
    pub(super) resources: Vec<(String, Values)>,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Raw {
    One(String),
    Many(Vec<String>),
    /// A JSON object from the file (`policy`).
    Json(serde_json::Value),
}

impl Raw {
    /// The value as an error message quotes it.
    pub(super) fn text(&self) -> String {
        match self {
            Raw::One(v) => v.clone(),
            Raw::Many(v) => v.join(" "),
            Raw::Json(v) => v.to_string(),
        }
    }
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
            Raw::Many(_) | Raw::Json(_) => None,
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

    /// Sets an object-valued setting (the demo's `policy`) as if a file called `from` gave it.
    pub fn set_object(&mut self, name: &'static str, value: serde_json::Value, from: &str) {
        self.values.insert(name, (Origin::File { path: from.to_string(), key: name }, Raw::Json(value)));
    }

    /// The single value a setting was given, from any source; `None` for none, a list or an object.
    pub fn given(&self, name: &str) -> Option<&str> {
        match self.values.get(name) {
            Some((_, Raw::One(v))) => Some(v),
            _ => None,
        }
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
            Some((origin, Raw::Many(_) | Raw::Json(_))) => Err(invalid(origin, "list", "must be true or false")),
        }
    }

    pub(super) fn one(&self, name: &'static str) -> Option<(&Origin, &str)> {
        match self.values.get(name) {
            Some((origin, Raw::One(v))) => Some((origin, v.as_str())),
            Some((origin, Raw::Many(v))) => v.last().map(|v| (origin, v.as_str())),
            Some((_, Raw::Json(_))) | None => None,
        }
    }

    pub(super) fn many(&self, name: &'static str) -> Vec<(&Origin, &str)> {
        match self.values.get(name) {
            Some((origin, Raw::One(v))) => {
                // From the environment or a file a list may come as one space-separated string,
                // the way OAuth writes scopes.
                v.split_ascii_whitespace().map(|s| (origin, s)).collect()
            }
            Some((origin, Raw::Many(v))) => v.iter().map(|s| (origin, s.as_str())).collect(),
            Some((_, Raw::Json(_))) | None => Vec::new(),
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
            Kind::Value(_) | Kind::List(_) | Kind::Object => {
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
pub(super) fn parse_file(path: &str, text: &str) -> Result<(Values, Vec<(String, Values)>), ConfigError> {
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
            (Kind::Object, v @ serde_json::Value::Object(_)) => Raw::Json(v),
            (Kind::Object, _) => return Err(wrong("a JSON object")),
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

pub(super) fn invalid(origin: &Origin, value: &str, reason: &'static str) -> ConfigError {
    ConfigError::Invalid { source: origin.clone(), value: value.to_string(), reason }
}

pub(super) fn parse_bool(origin: &Origin, v: &str) -> Result<bool, ConfigError> {
    match v {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(invalid(origin, v, "must be true or false")),
    }
}

pub(super) fn parse_addr(origin: &Origin, v: &str) -> Result<SocketAddr, ConfigError> {
    v.parse().map_err(|_| invalid(origin, v, "must be an IP address and port, like 127.0.0.1:8080"))
}
