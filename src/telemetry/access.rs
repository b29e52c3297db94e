//! The opt-in access log, and the counting and timing of every answered request. Log lines are
//! formatted and written by a task of their own ([`crate::telemetry::lines`]); the request path
//! only hands over an [`Entry`] and never waits for the writer.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::{HeaderValue, Method, StatusCode, Version};

use crate::common::route::Route;
pub use crate::telemetry::lines::Sink;
use crate::telemetry::lines::{Line, Lines, Named};
use crate::telemetry::metrics::{self, Metrics};
use crate::telemetry::Telemetry;

/// One answered request, as the access log records it.
#[derive(Debug)]
pub struct Entry {
    pub time: SystemTime,
    pub id: Option<HeaderValue>,
    pub peer: HeaderValue,
    pub method: Method,
    /// The path only: a query may carry secrets.
    pub path: String,
    pub version: Version,
    pub status: u16,
    pub route: &'static str,
    /// Time to the response head.
    pub elapsed: Duration,
}

/// What the access log keeps of a request, taken before the request is forwarded.
pub struct Seen {
    method: Method,
    path: String,
    version: Version,
}

impl Seen {
    /// Taken only when there is an access log: the path is copied.
    pub fn of<B>(telemetry: &Telemetry, request: &http::Request<B>) -> Option<Seen> {
        telemetry.access.as_ref()?;
        let (method, version) = (request.method().clone(), request.version());
        Some(Seen { method, path: request.uri().path().to_string(), version })
    }
}

/// Counts an answered request, observes its time to the response head and, with an access
/// log, queues its line.
pub fn answered(
    telemetry: &Telemetry,
    route: Route,
    status: StatusCode,
    started: Instant,
    seen: Option<Seen>,
    peer: &HeaderValue,
    id: Option<HeaderValue>,
) {
    answered_after(telemetry, route, status, started.elapsed(), seen, peer, id);
}

/// [`answered`], `elapsed` after the request came (the caller read the clock already).
pub fn answered_after(
    telemetry: &Telemetry,
    route: Route,
    status: StatusCode,
    elapsed: std::time::Duration,
    seen: Option<Seen>,
    peer: &HeaderValue,
    id: Option<HeaderValue>,
) {
    telemetry.metrics.request(route, status, elapsed);
    if let (Some(log), Some(seen)) = (&telemetry.access, seen) {
        log.record(Entry {
            time: SystemTime::now(),
            id,
            peer: peer.clone(),
            method: seen.method,
            path: seen.path,
            version: seen.version,
            status: status.as_u16(),
            route: metrics::route_label(route),
            elapsed,
        });
    }
}

/// Formats one entry as a JSON line (with its newline) onto `out`.
pub fn line(entry: &Entry, out: &mut Vec<u8>) {
    let since_epoch = entry.time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let text = |v: &HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
    let record = serde_json::json!({
        "time": crate::common::date::timestamp_millis(since_epoch),
        "request_id": entry.id.as_ref().map(text),
        "client": text(&entry.peer),
        "method": entry.method.as_str(),
        "path": entry.path,
        "version": format!("{:?}", entry.version),
        "status": entry.status,
        "route": entry.route,
        "duration_ms": (entry.elapsed.as_secs_f64() * 1e6).round() / 1e3,
    });
    // Writing a `Value` into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &record);
    out.push(b'\n');
}

/// The request path's end of the access log.
pub type AccessLog = Lines<Entry>;

/// How the access log is named and counted.
pub const ACCESS_LOG: Named = Named { name: "the access log", dropped: Metrics::access_log_dropped };

impl Line for Entry {
    fn line(&self, out: &mut Vec<u8>) {
        line(self, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_one_json_object() {
        let entry = Entry {
            time: UNIX_EPOCH + Duration::from_millis(1_795_435_200_042),
            id: Some(HeaderValue::from_static("req-1")),
            peer: HeaderValue::from_static("10.0.0.7"),
            method: Method::POST,
            path: "/mcp\"quoted".into(),
            version: Version::HTTP_2,
            status: 401,
            route: "mcp",
            elapsed: Duration::from_micros(1234),
        };
        let mut out = Vec::new();
        line(&entry, &mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["time"], "2026-11-23T12:00:00.042Z");
        assert_eq!(v["request_id"], "req-1");
        assert_eq!(v["client"], "10.0.0.7");
        assert_eq!(v["method"], "POST");
        assert_eq!(v["path"], "/mcp\"quoted");
        assert_eq!(v["version"], "HTTP/2.0");
        assert_eq!(v["status"], 401);
        assert_eq!(v["route"], "mcp");
        assert_eq!(v["duration_ms"], 1.234);
    }
}
