//! What the edge tells operators about single requests: request ids, and the opt-in access
//! log. Log lines are formatted and written by a task of their own; the request path only
//! hands over an [`Entry`] and never waits for the writer.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::header::HeaderName;
use http::{HeaderValue, Method, StatusCode, Version};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::route::Route;
use crate::State;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest client-sent request id kept; longer ones are replaced.
const MAX_ID_LEN: usize = 128;
/// Entries waiting for the writer; beyond this they are dropped and counted.
const QUEUE: usize = 8192;

/// A request id the client sent that is worth keeping: 1 to 128 visible ASCII characters,
/// so it can go into a log line and upstream as it is.
pub fn usable_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty() && bytes.len() <= MAX_ID_LEN && bytes.iter().all(u8::is_ascii_graphic)
}

/// The client's `X-Request-Id` (its first) when usable, else a new one.
pub fn request_id(client: Option<&HeaderValue>) -> HeaderValue {
    match client {
        Some(id) if usable_id(id) => id.clone(),
        _ => IDS.next(),
    }
}

/// Request ids: 32 hex digits from a per-process seed mixed with a counter, so replicas
/// started at the same moment do not repeat each other's ids.
struct Ids {
    seed: u64,
    next: AtomicU64,
}

/// Ids made per batch: each thread fills one buffer with this many and hands out slices of
/// it, one allocation per batch rather than per id.
const BATCH: usize = 256;
const ID_LEN: usize = 32;

thread_local! {
    /// This thread's batch of ids and how many of it are handed out.
    static BATCHED: std::cell::RefCell<(bytes::Bytes, usize)> = const { std::cell::RefCell::new((bytes::Bytes::new(), BATCH)) };
}

static IDS: LazyLock<Ids> = LazyLock::new(|| {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let seed = mix(now.as_nanos() as u64 ^ (u64::from(std::process::id()) << 32));
    Ids { seed, next: AtomicU64::new(0) }
});

/// SplitMix64's finaliser: spreads each input bit over the whole output.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Ids {
    /// The next id, sliced from this thread's batch.
    fn next(&self) -> HeaderValue {
        BATCHED.with(|batched| {
            let mut batched = batched.borrow_mut();
            if batched.1 == BATCH {
                *batched = (self.batch(), 0);
            }
            let at = batched.1 * ID_LEN;
            batched.1 += 1;
            HeaderValue::from_maybe_shared(batched.0.slice(at..at + ID_LEN))
                .unwrap_or_else(|_| HeaderValue::from_static("0"))
        })
    }

    /// Makes a batch of ids, back to back.
    fn batch(&self) -> bytes::Bytes {
        let first = self.next.fetch_add(BATCH as u64, Ordering::Relaxed);
        let mut text = Vec::with_capacity(BATCH * ID_LEN);
        for n in first..first + BATCH as u64 {
            let (high, low) =
                (mix(self.seed ^ n), mix(self.seed.rotate_left(17) ^ n.wrapping_add(0x9e37_79b9_7f4a_7c15)));
            for word in [high, low] {
                for shift in (0..16).rev() {
                    text.push(b"0123456789abcdef"[((word >> (shift * 4)) & 0xf) as usize]);
                }
            }
        }
        bytes::Bytes::from(text)
    }
}

/// Where `--access-log` writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Stdout,
    /// Appended to; created when missing.
    File(PathBuf),
}

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
    pub fn of<B>(state: &State, request: &http::Request<B>) -> Option<Seen> {
        state.access.as_ref()?;
        let (method, version) = (request.method().clone(), request.version());
        Some(Seen { method, path: request.uri().path().to_string(), version })
    }
}

/// Counts an answered request, observes its time to the response head and, with an access
/// log, queues its line.
pub fn answered(
    state: &State,
    route: Route,
    status: StatusCode,
    started: Instant,
    seen: Option<Seen>,
    peer: &HeaderValue,
    id: Option<HeaderValue>,
) {
    let elapsed = started.elapsed();
    state.metrics.request(route, status, elapsed);
    if let (Some(log), Some(seen)) = (&state.access, seen) {
        log.record(Entry {
            time: SystemTime::now(),
            id,
            peer: peer.clone(),
            method: seen.method,
            path: seen.path,
            version: seen.version,
            status: status.as_u16(),
            route: crate::metrics::route_label(route),
            elapsed,
        });
    }
}

/// Formats one entry as a JSON line (with its newline) onto `out`.
pub fn line(entry: &Entry, out: &mut Vec<u8>) {
    let since_epoch = entry.time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let text = |v: &HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
    let record = serde_json::json!({
        "time": crate::log::timestamp_millis(since_epoch),
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
pub struct AccessLog {
    queue: mpsc::Sender<Entry>,
    metrics: Arc<Metrics>,
}

impl AccessLog {
    /// Opens `target` and returns the log with the task that writes it, which ends once every
    /// [`AccessLog`] is dropped and what was queued is written.
    pub async fn open(
        target: &Target,
        metrics: Arc<Metrics>,
    ) -> io::Result<(AccessLog, impl std::future::Future<Output = ()> + Send + 'static)> {
        let sink: Box<dyn tokio::io::AsyncWrite + Send + Unpin> = match target {
            Target::Stdout => Box::new(tokio::io::stdout()),
            Target::File(path) => Box::new(tokio::fs::OpenOptions::new().create(true).append(true).open(path).await?),
        };
        let (queue, entries) = mpsc::channel(QUEUE);
        Ok((AccessLog { queue, metrics }, write(entries, sink)))
    }

    /// Queues an entry; when the writer is behind, the entry is dropped and counted.
    pub fn record(&self, entry: Entry) {
        if self.queue.try_send(entry).is_err() {
            self.metrics.access_log_dropped();
        }
    }
}

/// Writes entries as they come, in batches: whatever is queued goes out in one write.
async fn write(mut entries: mpsc::Receiver<Entry>, mut sink: Box<dyn tokio::io::AsyncWrite + Send + Unpin>) {
    let mut buffer = Vec::with_capacity(64 * 1024);
    let mut warned = false;
    while let Some(entry) = entries.recv().await {
        line(&entry, &mut buffer);
        while buffer.len() < 60 * 1024 {
            match entries.try_recv() {
                Ok(entry) => line(&entry, &mut buffer),
                Err(_) => break,
            }
        }
        let written = async {
            sink.write_all(&buffer).await?;
            sink.flush().await
        };
        if let Err(e) = written.await {
            if !warned {
                crate::warn!("cannot write the access log: {e}; lines are being lost");
                warned = true;
            }
        } else if warned {
            crate::info!("the access log is being written again");
            warned = false;
        }
        buffer.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_kept_only_when_printable_and_short() {
        let mut h = http::HeaderMap::new();
        h.insert(X_REQUEST_ID, HeaderValue::from_static("abc-123_XYZ"));
        assert_eq!(request_id(h.get(X_REQUEST_ID)), "abc-123_XYZ");
        for bad in ["", "two words", &"x".repeat(129)] {
            h.insert(X_REQUEST_ID, HeaderValue::from_str(bad).unwrap());
            let id = request_id(h.get(X_REQUEST_ID));
            assert_ne!(id, bad);
            assert_eq!(id.len(), 32, "{id:?}");
        }
    }

    #[test]
    fn generated_ids_are_hex_and_distinct() {
        let ids: std::collections::HashSet<_> = (0..10_000).map(|_| IDS.next()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|id| id.len() == 32 && id.as_bytes().iter().all(u8::is_ascii_hexdigit)));
    }

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
