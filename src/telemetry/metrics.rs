//! Counters kept with relaxed atomics on the request path and rendered as Prometheus text
//! only when `/metrics` is scraped.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::StatusCode;

use crate::common::route::{Doc, Route};

const ROUTES: [&str; 4] = ["auth_server_metadata", "resource_metadata", "mcp", "other"];
const STATUSES: [u16; 13] = [200, 204, 304, 400, 401, 403, 404, 405, 413, 502, 503, 504, 0];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// A limit on clients, as `mcp_auth_edge_limit_hits_total` labels it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// An HTTP/1.1 request head over `--max-header-bytes` or `--max-headers`, answered 431 by
    /// hyper (which reports both the same way).
    Headers,
    /// A request head not complete within `--header-read-timeout`: 408, or closed when no
    /// byte of it had come.
    HeaderReadTimeout,
    /// A connection closed after `--idle-timeout` without a request.
    IdleTimeout,
    /// `--max-connections` open: accepting paused until one closed.
    Connections,
    /// A request body over `--max-body-bytes`: 413, or the exchange cut off.
    Body,
}

const LIMITS: [&str; 5] = ["headers", "header_read_timeout", "idle_timeout", "connections", "body"];

impl Limit {
    fn index(self) -> usize {
        match self {
            Limit::Headers => 0,
            Limit::HeaderReadTimeout => 1,
            Limit::IdleTimeout => 2,
            Limit::Connections => 3,
            Limit::Body => 4,
        }
    }
}

/// The MCP methods `mcp_auth_edge_policy_decisions_total` names; any other is counted as
/// `other`, every notification as `notifications`, so a client cannot grow the label set.
const METHODS: [&str; 16] = [
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "resources/subscribe",
    "server/discover",
    "subscriptions/listen",
    "completion/complete",
    "logging/setLevel",
    "notifications",
    "other",
];

/// A method's first and last eight bytes as words (zero-padded when shorter), which with its
/// length tell it from every other text.
const fn ends(text: &[u8]) -> (u64, u64) {
    let (mut first, mut last) = (0u64, 0u64);
    let mut i = 0;
    while i < 8 && i < text.len() {
        first |= (text[i] as u64) << (8 * i);
        if text.len() >= 8 {
            last |= (text[text.len() - 8 + i] as u64) << (8 * i);
        }
        i += 1;
    }
    (first, last)
}

struct Ends {
    len: usize,
    words: (u64, u64),
}

/// `METHODS` but the last two, as [`MethodLabel::of`] compares them.
const METHOD_ENDS: [Ends; METHODS.len() - 2] = {
    let mut out = [const { Ends { len: 0, words: (0, 0) } }; METHODS.len() - 2];
    let mut i = 0;
    while i < out.len() {
        out[i] = Ends { len: METHODS[i].len(), words: ends(METHODS[i].as_bytes()) };
        i += 1;
    }
    out
};

/// What the MCP policy made of an operation, as the metrics and the audit log name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// The policy denied it (a step-up may fix it, or not).
    Deny,
    /// Not decided: the request could not be read (not JSON-RPC, too large, headers that
    /// disagree with the body).
    Refused,
}

const DECISIONS: [&str; 3] = ["allow", "deny", "refused"];

impl Decision {
    pub fn as_str(self) -> &'static str {
        DECISIONS[self as usize]
    }
}

/// The `method` label of `mcp_auth_edge_policy_decisions_total`: one of a fixed set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MethodLabel(u8);

impl MethodLabel {
    /// The label of a JSON-RPC method (`None`: not known, counted as `other`).
    pub fn of(method: Option<&[u8]>) -> MethodLabel {
        let other = METHODS.len() - 1;
        let index = match method {
            None => other,
            Some(method) if method.starts_with(b"notifications/") => METHODS.len() - 2,
            // The last two are not methods a client sends by those names. A name is compared
            // only at its own length, as two words that may overlap (which cover a name of up
            // to 16 bytes, its middle compared too past that): no call per name.
            Some(method) => {
                let ends = match (method.first_chunk::<8>(), method.last_chunk::<8>()) {
                    (Some(first), Some(last)) => (u64::from_le_bytes(*first), u64::from_le_bytes(*last)),
                    _ => ends(method),
                };
                let same = |(i, e): &(usize, &Ends)| {
                    e.len == method.len() && e.words == ends && (e.len <= 16 || METHODS[*i].as_bytes() == method)
                };
                METHOD_ENDS.iter().enumerate().find(same).map_or(other, |(i, _)| i)
            }
        };
        MethodLabel(index as u8)
    }

    pub fn as_str(self) -> &'static str {
        METHODS[usize::from(self.0)]
    }
}

/// Upper bounds of the latency buckets, in seconds: from a discovery answer (microseconds) to
/// a slow tool call (seconds).
const BUCKETS: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// The same bounds in nanoseconds, for comparing without floating point on the request path.
const BUCKET_NANOS: [u64; 16] = {
    let mut nanos = [0u64; 16];
    let mut i = 0;
    while i < 16 {
        nanos[i] = (BUCKETS[i] * 1e9) as u64;
        i += 1;
    }
    nanos
};

/// A Prometheus histogram of durations: one counter per bucket (the last for `+Inf`), kept
/// non-cumulative so that an observation touches one bucket, summed up when rendered.
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BUCKET_NANOS.iter().position(|&bound| nanos <= bound).unwrap_or(BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// Writes the `_bucket`, `_sum` and `_count` lines; `labels` is empty or ends with a comma.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            match BUCKETS.get(i) {
                Some(bound) => {
                    let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{bound}\"}} {cumulative}");
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {cumulative}");
                }
            }
        }
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let labels = match labels.trim_end_matches(',') {
            "" => String::new(),
            labels => format!("{{{labels}}}"),
        };
        let _ = writeln!(out, "{name}_sum{labels} {sum}\n{name}_count{labels} {cumulative}");
    }
}

/// Why the gate refused a bearer token, as `mcp_auth_edge_token_rejections_total` labels it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenRejection {
    /// Bad signature, claims, form or an inactive token: 401.
    Invalid,
    /// A required scope missing: 403.
    InsufficientScope,
    /// No JWKS to check against: 503.
    NoKeys,
    /// The introspection endpoint gave no usable answer: 503.
    IntrospectionFailed,
    /// A DPoP proof missing, bad, replayed, of another key than the token's, or without a
    /// current nonce: 401.
    DpopProof,
    /// The DPoP replay cache had no room: 503.
    DpopReplayFull,
}

const REJECTIONS: [&str; 6] =
    ["invalid", "insufficient_scope", "no_keys", "introspection_failed", "dpop_proof", "dpop_replay_full"];

/// The state of one resource's authorization server snapshot, as the gauges show it.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot<'a> {
    /// The resource URL, the gauges' label.
    pub resource: &'a str,
    /// Time since the last good fetch; `None` before the first.
    pub age: Option<Duration>,
    /// Whether a document is in service.
    pub loaded: bool,
}

/// Request, refresh, limit and connection counters.
#[derive(Default)]
pub struct Metrics {
    requests: [[AtomicU64; STATUSES.len()]; ROUTES.len()],
    /// Time to the response head, by route and status class.
    latency: [[Histogram; CLASSES.len()]; ROUTES.len()],
    /// Time from sending a request to the MCP server to its response head.
    upstream_latency: Histogram,
    token_rejections: [AtomicU64; REJECTIONS.len()],
    jwks_ok: AtomicU64,
    jwks_failed: AtomicU64,
    access_log_dropped: AtomicU64,
    audit_log_dropped: AtomicU64,
    /// MCP policy decisions, by method and decision.
    policy_decisions: [[AtomicU64; DECISIONS.len()]; METHODS.len()],
    refresh_ok: AtomicU64,
    refresh_failed: AtomicU64,
    refresh_changed: AtomicU64,
    upstream_responses: [AtomicU64; CLASSES.len()],
    upstream_errors: AtomicU64,
    upstream_timeouts: AtomicU64,
    limit_hits: [AtomicU64; LIMITS.len()],
    /// Connections open on the main listener (a gauge).
    connections_open: AtomicU64,
    reloads_applied: AtomicU64,
    reloads_refused: AtomicU64,
    /// Streams the edge ended because the token that opened them expired.
    streams_expired: AtomicU64,
    /// Streams the edge ended because the authorization server no longer vouched for their token.
    streams_revoked: AtomicU64,
}

/// The `route` label of a request.
pub fn route_label(route: Route) -> &'static str {
    ROUTES[route_index(route)]
}

fn route_index(route: Route) -> usize {
    match route {
        Route::Document { doc, .. } | Route::Preflight(doc) | Route::MethodNotAllowed(doc) => match doc {
            Doc::AuthServer => 0,
            Doc::Resource => 1,
        },
        Route::Gate => 2,
        Route::NotFound => 3,
    }
}

fn status_index(status: StatusCode) -> usize {
    let code = status.as_u16();
    STATUSES.iter().position(|&s| s == code).unwrap_or(STATUSES.len() - 1)
}

fn class_index(status: StatusCode) -> usize {
    usize::from(status.as_u16() / 100).saturating_sub(1).min(CLASSES.len() - 1)
}

impl Metrics {
    /// A request answered: counted by route and status, its time to the response head
    /// observed by route and status class.
    pub fn request(&self, route: Route, status: StatusCode, elapsed: Duration) {
        let r = route_index(route);
        self.requests[r][status_index(status)].fetch_add(1, Ordering::Relaxed);
        self.latency[r][class_index(status)].observe(elapsed);
    }

    /// Requests of `route` whose time was observed with a status of `status`'s class.
    pub fn latency_count(&self, route: Route, status: StatusCode) -> u64 {
        self.latency[route_index(route)][class_index(status)].count()
    }

    /// A bearer token the gate refused.
    pub fn token_rejected(&self, why: TokenRejection) {
        let i = match why {
            TokenRejection::Invalid => 0,
            TokenRejection::InsufficientScope => 1,
            TokenRejection::NoKeys => 2,
            TokenRejection::IntrospectionFailed => 3,
            TokenRejection::DpopProof => 4,
            TokenRejection::DpopReplayFull => 5,
        };
        self.token_rejections[i].fetch_add(1, Ordering::Relaxed);
    }

    /// A fetch of the authorization server's JWKS (jwt mode), good or not.
    pub fn jwks_fetched(&self, ok: bool) {
        let counter = if ok { &self.jwks_ok } else { &self.jwks_failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// An access log line lost because the writer fell behind.
    pub fn access_log_dropped(&self) {
        self.access_log_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// An audit log line lost because the writer fell behind.
    pub fn audit_log_dropped(&self) {
        self.audit_log_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// An MCP operation the policy decided (or refused to), by its JSON-RPC method.
    pub fn policy_decision(&self, method: MethodLabel, decision: Decision) {
        self.policy_decisions[usize::from(method.0)][decision as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn refresh_succeeded(&self, changed: bool) {
        self.refresh_ok.fetch_add(1, Ordering::Relaxed);
        if changed {
            self.refresh_changed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A response head from the MCP server, by status class, `elapsed` after the request
    /// was sent. (The request itself is counted on the gate route when answered.)
    pub fn upstream(&self, status: StatusCode, elapsed: Duration) {
        self.upstream_responses[class_index(status)].fetch_add(1, Ordering::Relaxed);
        self.upstream_latency.observe(elapsed);
    }

    /// A forwarded request that got no response: unreachable (502) or too slow (504).
    pub fn upstream_failed(&self, timed_out: bool) {
        let counter = if timed_out { &self.upstream_timeouts } else { &self.upstream_errors };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A client ran into a limit.
    pub fn limit_hit(&self, limit: Limit) {
        self.limit_hits[limit.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// How often `limit` was hit so far.
    pub fn limit_hits(&self, limit: Limit) -> u64 {
        self.limit_hits[limit.index()].load(Ordering::Relaxed)
    }

    /// A configuration reload put in service, or refused.
    /// A stream ended because its token expired.
    pub fn stream_expired(&self) {
        self.streams_expired.fetch_add(1, Ordering::Relaxed);
    }

    /// A stream ended because its token was revoked.
    pub fn stream_revoked(&self) {
        self.streams_revoked.fetch_add(1, Ordering::Relaxed);
    }

    pub fn reloaded(&self, applied: bool) {
        let counter = if applied { &self.reloads_applied } else { &self.reloads_refused };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn refresh_failed(&self) {
        self.refresh_failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests counted so far for a route label and status, for tests and the admin page.
    pub fn requests(&self, route: Route, status: StatusCode) -> u64 {
        self.requests[route_index(route)][status_index(status)].load(Ordering::Relaxed)
    }

    /// Renders the Prometheus text exposition format, with the snapshot gauges of each
    /// protected resource.
    pub fn render(&self, resources: &[Snapshot<'_>]) -> String {
        let mut out = String::with_capacity(2048);
        out.push_str("# HELP mcp_auth_edge_requests_total Requests answered, by route and status.\n");
        out.push_str("# TYPE mcp_auth_edge_requests_total counter\n");
        for (r, route) in ROUTES.iter().enumerate() {
            for (s, status) in STATUSES.iter().enumerate() {
                let n = self.requests[r][s].load(Ordering::Relaxed);
                if n > 0 {
                    let status = if *status == 0 { "other".to_string() } else { status.to_string() };
                    let _ = writeln!(out, "mcp_auth_edge_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}");
                }
            }
        }
        out.push_str(
            "# HELP mcp_auth_edge_request_duration_seconds Time from a request's arrival to its response head, by route and status class.\n",
        );
        out.push_str("# TYPE mcp_auth_edge_request_duration_seconds histogram\n");
        for (r, route) in ROUTES.iter().enumerate() {
            for (c, class) in CLASSES.iter().enumerate() {
                let histogram = &self.latency[r][c];
                if histogram.count() > 0 {
                    let labels = format!("route=\"{route}\",class=\"{class}\",");
                    histogram.render(&mut out, "mcp_auth_edge_request_duration_seconds", &labels);
                }
            }
        }
        out.push_str(
            "# HELP mcp_auth_edge_upstream_duration_seconds Time from sending a request to the MCP server to its response head.\n",
        );
        out.push_str("# TYPE mcp_auth_edge_upstream_duration_seconds histogram\n");
        self.upstream_latency.render(&mut out, "mcp_auth_edge_upstream_duration_seconds", "");
        labelled(
            &mut out,
            "token_rejections_total",
            "Tokens (and DPoP proofs) the gate refused, by reason.",
            "reason",
            REJECTIONS.iter().copied().zip(&self.token_rejections),
        );
        let counters = [
            (
                "jwks_refresh_success_total",
                "Good fetches of the authorization server's JWKS (jwt mode).",
                &self.jwks_ok,
            ),
            (
                "jwks_refresh_failure_total",
                "Failed fetches of the authorization server's JWKS (jwt mode).",
                &self.jwks_failed,
            ),
            (
                "access_log_dropped_total",
                "Access log lines lost because the writer fell behind.",
                &self.access_log_dropped,
            ),
            (
                "audit_log_dropped_total",
                "Audit log lines lost because the writer fell behind.",
                &self.audit_log_dropped,
            ),
            ("refresh_success_total", "Good fetches of the authorization server metadata.", &self.refresh_ok),
            ("refresh_failure_total", "Failed fetches of the authorization server metadata.", &self.refresh_failed),
            ("refresh_changed_total", "Good fetches that brought a changed document.", &self.refresh_changed),
            (
                "upstream_errors_total",
                "Forwarded requests answered 502: the MCP server could not be reached.",
                &self.upstream_errors,
            ),
            (
                "upstream_timeouts_total",
                "Forwarded requests answered 504: no response headers in time.",
                &self.upstream_timeouts,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP mcp_auth_edge_{name} {help}\n# TYPE mcp_auth_edge_{name} counter");
            let _ = writeln!(out, "mcp_auth_edge_{name} {}", value.load(Ordering::Relaxed));
        }
        labelled(
            &mut out,
            "upstream_responses_total",
            "Responses from the MCP server, by status class.",
            "class",
            CLASSES.iter().copied().zip(&self.upstream_responses),
        );
        out.push_str(
            "# HELP mcp_auth_edge_policy_decisions_total MCP operations the policy decided, by method and decision.\n",
        );
        out.push_str("# TYPE mcp_auth_edge_policy_decisions_total counter\n");
        for (m, method) in METHODS.iter().enumerate() {
            for (d, decision) in DECISIONS.iter().enumerate() {
                let n = self.policy_decisions[m][d].load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "mcp_auth_edge_policy_decisions_total{{method=\"{method}\",decision=\"{decision}\"}} {n}"
                    );
                }
            }
        }
        labelled(
            &mut out,
            "limit_hits_total",
            "Clients that ran into a limit, by limit.",
            "limit",
            LIMITS.iter().copied().zip(&self.limit_hits),
        );
        labelled(
            &mut out,
            "config_reloads_total",
            "Configuration reloads, by outcome.",
            "outcome",
            [("applied", &self.reloads_applied), ("refused", &self.reloads_refused)],
        );
        labelled(
            &mut out,
            "streams_ended_total",
            "Forwarded streams the edge ended before the MCP server did, by reason.",
            "reason",
            [("expired", &self.streams_expired), ("revoked", &self.streams_revoked)],
        );
        out.push_str("# HELP mcp_auth_edge_connections_open Connections open on the main listener.\n");
        out.push_str("# TYPE mcp_auth_edge_connections_open gauge\n");
        let _ = writeln!(out, "mcp_auth_edge_connections_open {}", self.connections_open.load(Ordering::Relaxed));
        out.push_str(
            "# HELP mcp_auth_edge_snapshot_age_seconds Seconds since the last good fetch, by resource; absent before the first.\n",
        );
        out.push_str("# TYPE mcp_auth_edge_snapshot_age_seconds gauge\n");
        for r in resources {
            if let Some(age) = r.age {
                let _ = writeln!(
                    out,
                    "mcp_auth_edge_snapshot_age_seconds{{resource=\"{}\"}} {:.3}",
                    r.resource,
                    age.as_secs_f64()
                );
            }
        }
        out.push_str(
            "# HELP mcp_auth_edge_snapshot_loaded Whether authorization server metadata is in service, by resource.\n",
        );
        out.push_str("# TYPE mcp_auth_edge_snapshot_loaded gauge\n");
        for r in resources {
            let _ =
                writeln!(out, "mcp_auth_edge_snapshot_loaded{{resource=\"{}\"}} {}", r.resource, u8::from(r.loaded));
        }
        out
    }
}

/// Writes one counter family with a label, every value shown (zeros included).
fn labelled<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    values: impl IntoIterator<Item = (&'a str, &'a AtomicU64)>,
) {
    let _ = writeln!(out, "# HELP mcp_auth_edge_{name} {help}\n# TYPE mcp_auth_edge_{name} counter");
    for (value_label, value) in values {
        let _ = writeln!(out, "mcp_auth_edge_{name}{{{label}=\"{value_label}\"}} {}", value.load(Ordering::Relaxed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_route_and_status() {
        let m = Metrics::default();
        let doc = Route::Document { doc: Doc::AuthServer, head: false };
        m.request(doc, StatusCode::OK, Duration::from_micros(50));
        m.request(doc, StatusCode::OK, Duration::from_millis(3));
        m.request(Route::NotFound, StatusCode::IM_A_TEAPOT, Duration::from_secs(60));
        m.refresh_succeeded(true);
        m.refresh_failed();
        assert_eq!(m.requests(doc, StatusCode::OK), 2);
        let text = m.render(&[]);
        assert!(
            text.contains("mcp_auth_edge_requests_total{route=\"auth_server_metadata\",status=\"200\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("mcp_auth_edge_requests_total{route=\"other\",status=\"other\"} 1\n"));
        assert!(text.contains("mcp_auth_edge_refresh_success_total 1\n"));
        assert!(text.contains("mcp_auth_edge_refresh_failure_total 1\n"));
        assert!(text.contains("mcp_auth_edge_limit_hits_total{limit=\"body\"} 0\n"), "{text}");
        assert!(text.contains("mcp_auth_edge_connections_open 0\n"), "{text}");
        // Cumulative buckets: one answer under 100 µs, the other between 2.5 and 5 ms.
        let series = "mcp_auth_edge_request_duration_seconds";
        for (le, n) in [("0.0001", 1), ("0.0025", 1), ("0.005", 2), ("+Inf", 2)] {
            let line = format!("{series}_bucket{{route=\"auth_server_metadata\",class=\"2xx\",le=\"{le}\"}} {n}\n");
            assert!(text.contains(&line), "{line} in {text}");
        }
        assert!(
            text.contains(&format!("{series}_sum{{route=\"auth_server_metadata\",class=\"2xx\"}} 0.00305\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{series}_count{{route=\"auth_server_metadata\",class=\"2xx\"}} 2\n")),
            "{text}"
        );
        // A minute is past every bound but +Inf.
        assert!(text.contains(&format!("{series}_bucket{{route=\"other\",class=\"4xx\",le=\"10\"}} 0\n")), "{text}");
        assert!(text.contains(&format!("{series}_bucket{{route=\"other\",class=\"4xx\",le=\"+Inf\"}} 1\n")), "{text}");
        assert!(!text.contains("class=\"5xx\",le="), "empty histograms are left out: {text}");
        assert!(text.contains("mcp_auth_edge_upstream_duration_seconds_count 0\n"), "{text}");
    }

    #[test]
    fn counts_limits_and_open_connections() {
        let m = Metrics::default();
        m.limit_hit(Limit::HeaderReadTimeout);
        m.limit_hit(Limit::HeaderReadTimeout);
        m.limit_hit(Limit::Connections);
        m.connection_opened();
        m.connection_opened();
        m.connection_closed();
        assert_eq!(m.limit_hits(Limit::HeaderReadTimeout), 2);
        let text = m.render(&[]);
        assert!(text.contains("mcp_auth_edge_limit_hits_total{limit=\"header_read_timeout\"} 2\n"), "{text}");
        assert!(text.contains("mcp_auth_edge_limit_hits_total{limit=\"connections\"} 1\n"), "{text}");
        assert!(text.contains("mcp_auth_edge_limit_hits_total{limit=\"headers\"} 0\n"), "{text}");
        assert!(text.contains("mcp_auth_edge_connections_open 1\n"), "{text}");
    }

    #[test]
    fn a_hostile_method_cannot_add_a_label() {
        let m = Metrics::default();
        let hostile =
            ["tools/call\"} 9\nfake_metric{a=\"", "x".repeat(10_000).as_str(), "", "Tools/Call"].map(str::to_string);
        let label = |method: &str| MethodLabel::of(Some(method.as_bytes()));
        for method in &hostile {
            m.policy_decision(label(method), Decision::Deny);
        }
        m.policy_decision(label("notifications/initialized"), Decision::Allow);
        m.policy_decision(label("notifications/anything\nelse"), Decision::Allow);
        m.policy_decision(label("tools/call"), Decision::Allow);
        m.policy_decision(MethodLabel::of(None), Decision::Refused);
        assert_eq!(label("notifications/cancelled").as_str(), "notifications");
        assert_eq!(label("notifications").as_str(), "other");
        assert_eq!(label("other").as_str(), "other");
        assert_eq!(label("resources/templates/list").as_str(), "resources/templates/list");
        // Each method is its own label, and nothing else is one of theirs.
        for method in &METHODS[..METHODS.len() - 2] {
            assert_eq!(label(method).as_str(), *method);
            assert_eq!(label(&format!("{method}x")).as_str(), "other");
            // The same length, first and last eight bytes, another middle.
            if method.len() > 16 {
                let mut other = method.as_bytes().to_vec();
                other[8] ^= 0x20;
                assert_eq!(label(std::str::from_utf8(&other).unwrap()).as_str(), "other", "{method}");
            }
        }
        let text = m.render(&[]);
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("mcp_auth_edge_policy_decisions_total")).collect();
        assert_eq!(
            lines,
            [
                "mcp_auth_edge_policy_decisions_total{method=\"tools/call\",decision=\"allow\"} 1",
                "mcp_auth_edge_policy_decisions_total{method=\"notifications\",decision=\"allow\"} 2",
                "mcp_auth_edge_policy_decisions_total{method=\"other\",decision=\"deny\"} 4",
                "mcp_auth_edge_policy_decisions_total{method=\"other\",decision=\"refused\"} 1",
            ]
        );
        assert!(!text.contains("fake_metric"), "{text}");
        // Every label value is one of the bounded sets.
        for method in METHODS {
            assert!(method.bytes().all(|b| b.is_ascii_alphabetic() || b == b'/'), "{method}");
        }
    }
}
