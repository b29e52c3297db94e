//! Counters kept with relaxed atomics on the request path and rendered as Prometheus text
//! only when `/metrics` is scraped.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use http::StatusCode;

use crate::route::{Doc, Route};
use crate::snapshot::Snapshots;

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

/// Request, refresh, limit and connection counters.
#[derive(Default)]
pub struct Metrics {
    requests: [[AtomicU64; STATUSES.len()]; ROUTES.len()],
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

impl Metrics {
    pub fn request(&self, route: Route, status: StatusCode) {
        self.requests[route_index(route)][status_index(status)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn refresh_succeeded(&self, changed: bool) {
        self.refresh_ok.fetch_add(1, Ordering::Relaxed);
        if changed {
            self.refresh_changed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A response from the MCP server, by status class; and the request counted on the gate.
    pub fn upstream(&self, status: StatusCode) {
        let class = usize::from(status.as_u16() / 100).saturating_sub(1).min(CLASSES.len() - 1);
        self.upstream_responses[class].fetch_add(1, Ordering::Relaxed);
        self.request(Route::Gate, status);
    }

    /// A forwarded request that got no response: unreachable (502) or too slow (504).
    pub fn upstream_failed(&self, timed_out: bool) {
        if timed_out {
            self.upstream_timeouts.fetch_add(1, Ordering::Relaxed);
            self.request(Route::Gate, StatusCode::GATEWAY_TIMEOUT);
        } else {
            self.upstream_errors.fetch_add(1, Ordering::Relaxed);
            self.request(Route::Gate, StatusCode::BAD_GATEWAY);
        }
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

    /// Renders the Prometheus text exposition format.
    pub fn render(&self, snapshots: &Snapshots) -> String {
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
        let counters = [
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
        out.push_str("# HELP mcp_auth_edge_upstream_responses_total Responses from the MCP server, by status class.\n");
        out.push_str("# TYPE mcp_auth_edge_upstream_responses_total counter\n");
        for (class, value) in CLASSES.iter().zip(&self.upstream_responses) {
            let _ = writeln!(
                out,
                "mcp_auth_edge_upstream_responses_total{{class=\"{class}\"}} {}",
                value.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP mcp_auth_edge_limit_hits_total Clients that ran into a limit, by limit.\n");
        out.push_str("# TYPE mcp_auth_edge_limit_hits_total counter\n");
        for (limit, value) in LIMITS.iter().zip(&self.limit_hits) {
            let _ =
                writeln!(out, "mcp_auth_edge_limit_hits_total{{limit=\"{limit}\"}} {}", value.load(Ordering::Relaxed));
        }
        out.push_str("# HELP mcp_auth_edge_config_reloads_total Configuration reloads, by outcome.\n");
        out.push_str("# TYPE mcp_auth_edge_config_reloads_total counter\n");
        for (outcome, value) in [("applied", &self.reloads_applied), ("refused", &self.reloads_refused)] {
            let _ = writeln!(
                out,
                "mcp_auth_edge_config_reloads_total{{outcome=\"{outcome}\"}} {}",
                value.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP mcp_auth_edge_connections_open Connections open on the main listener.\n");
        out.push_str("# TYPE mcp_auth_edge_connections_open gauge\n");
        let _ = writeln!(out, "mcp_auth_edge_connections_open {}", self.connections_open.load(Ordering::Relaxed));
        out.push_str(
            "# HELP mcp_auth_edge_snapshot_age_seconds Seconds since the last good fetch; absent before the first.\n",
        );
        out.push_str("# TYPE mcp_auth_edge_snapshot_age_seconds gauge\n");
        if let Some(age) = snapshots.age() {
            let _ = writeln!(out, "mcp_auth_edge_snapshot_age_seconds {:.3}", age.as_secs_f64());
        }
        out.push_str("# HELP mcp_auth_edge_snapshot_loaded Whether authorization server metadata is in service.\n");
        out.push_str("# TYPE mcp_auth_edge_snapshot_loaded gauge\n");
        let _ = writeln!(out, "mcp_auth_edge_snapshot_loaded {}", u8::from(snapshots.ready()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn counts_by_route_and_status() {
        let m = Metrics::default();
        let doc = Route::Document { doc: Doc::AuthServer, head: false };
        m.request(doc, StatusCode::OK);
        m.request(doc, StatusCode::OK);
        m.request(Route::NotFound, StatusCode::IM_A_TEAPOT);
        m.refresh_succeeded(true);
        m.refresh_failed();
        assert_eq!(m.requests(doc, StatusCode::OK), 2);
        let text = m.render(&Snapshots::new(Bytes::from_static(b"{}")));
        assert!(
            text.contains("mcp_auth_edge_requests_total{route=\"auth_server_metadata\",status=\"200\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("mcp_auth_edge_requests_total{route=\"other\",status=\"other\"} 1\n"));
        assert!(text.contains("mcp_auth_edge_refresh_success_total 1\n"));
        assert!(text.contains("mcp_auth_edge_refresh_failure_total 1\n"));
        assert!(text.contains("mcp_auth_edge_snapshot_loaded 0\n"));
        assert!(!text.contains("\nmcp_auth_edge_snapshot_age_seconds "));
        assert!(text.contains("mcp_auth_edge_limit_hits_total{limit=\"body\"} 0\n"), "{text}");
        assert!(text.contains("mcp_auth_edge_connections_open 0\n"), "{text}");
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
        let text = m.render(&Snapshots::new(Bytes::from_static(b"{}")));
        assert!(text.contains("mcp_auth_edge_limit_hits_total{limit=\"header_read_timeout\"} 2\n"), "{text}");
        assert!(text.contains("mcp_auth_edge_limit_hits_total{limit=\"connections\"} 1\n"), "{text}");
        assert!(text.contains("mcp_auth_edge_limit_hits_total{limit=\"headers\"} 0\n"), "{text}");
        assert!(text.contains("mcp_auth_edge_connections_open 1\n"), "{text}");
    }
}
