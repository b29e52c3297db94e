//! What the edge tells operators: log lines, Prometheus metrics, request ids and the access
//! log.

use std::sync::Arc;

pub mod access;
pub mod log;
pub mod metrics;
pub mod request_id;

/// Where the request path counts and logs; made once and kept across configuration reloads.
pub struct Telemetry {
    pub metrics: Arc<metrics::Metrics>,
    /// The access log, when `--access-log` is set.
    pub access: Option<access::AccessLog>,
}

impl Telemetry {
    /// Counters of their own and no access log (tests, benchmarks).
    pub fn counting() -> Telemetry {
        Telemetry { metrics: Arc::default(), access: None }
    }
}
