//! What the edge tells operators: log lines, Prometheus metrics, request ids, the access log
//! and the audit log.

use std::sync::Arc;

pub mod access;
pub mod audit;
pub mod lines;
pub mod log;
pub mod metrics;
pub mod request_id;

/// Where the request path counts and logs; made once and kept across configuration reloads.
pub struct Telemetry {
    pub metrics: Arc<metrics::Metrics>,
    /// The access log, when `--access-log` is set.
    pub access: Option<access::AccessLog>,
    /// The audit log of MCP policy decisions, when `--audit-log` is set.
    pub audit: Option<audit::AuditLog>,
}

impl Telemetry {
    /// Counters of their own and no access log (tests, benchmarks).
    pub fn counting() -> Telemetry {
        Telemetry { metrics: Arc::default(), access: None, audit: None }
    }
}
