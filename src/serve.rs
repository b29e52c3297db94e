//! Listeners, connections, their limits, and graceful shutdown.
//!
//! Each accepted connection is served by hyper-util's auto builder (HTTP/1.1, or HTTP/2 when
//! the client opens with the prior-knowledge preface). With TLS, the handshake runs on the
//! connection's own task and ALPN picks the protocol. On shutdown the listener closes at once
//! and open connections finish their in-flight requests, for at most the drain timeout.
//!
//! The limits ([`Limits`]) are enforced here, the same on cleartext and TLS: hyper bounds the
//! request head (431) and HTTP/2's streams and header lists; a semaphore bounds the open
//! connections by pausing `accept`; and a per-connection watchdog closes connections whose
//! request head is too slow (408) or that sit idle too long.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, SystemTime};

use http::HeaderValue;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_rustls::TlsAcceptor;

use crate::metrics::Limit;
use crate::metrics::Metrics;
use crate::observe;
use crate::respond::{self, Decision, Reply};
use crate::Live;

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
const HYPER_MAX_HEADERS: usize = 100;

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

/// What a connection's watchdog reads. Times are the watchdog's ticks (it advances `tick`
/// once a period), so marking an event costs a relaxed load and store, no clock read.
#[derive(Default)]
pub struct Activity {
    /// The current tick; 1 from the connection's start.
    tick: AtomicU32,
    /// The tick in which a request head last completed or a forwarded exchange last ended;
    /// 0 before the first request.
    active: AtomicU32,
    /// The tick in which bytes last arrived from the client; 0 before any.
    read: AtomicU32,
    /// Forwarded exchanges in progress (an SSE stream may stay quiet far longer than any
    /// timeout, and an upload is no idle connection).
    streaming: AtomicU32,
    /// HTTP/2 (by ALPN or the prior-knowledge preface): bytes arriving are frames of any
    /// kind, not a request head on its way.
    h2: AtomicBool,
    /// The watchdog gave up on a request head: the connection's last word is a 408.
    timed_out: AtomicBool,
}

impl Activity {
    fn mark(&self, stamp: &AtomicU32) {
        stamp.store(self.tick.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// Marks one forwarded exchange as in progress for as long as it lives.
pub struct Streaming(Arc<Activity>);

impl Streaming {
    pub fn new(activity: Arc<Activity>) -> Streaming {
        activity.streaming.fetch_add(1, Ordering::Relaxed);
        Streaming(activity)
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        // The exchange's end is activity: bytes of it read until now are not a new head.
        self.0.mark(&self.0.active);
        self.0.streaming.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The connection a request arrived on.
pub struct Connection {
    pub peer: SocketAddr,
    /// The peer's IP as a header value, made once per connection for `X-Forwarded-For`.
    pub peer_ip: HeaderValue,
    pub activity: Arc<Activity>,
}

/// Fires shutdown for every [`Shutdown`] made from it.
pub struct Trigger(watch::Sender<bool>);

/// Resolves when shutdown has been asked for (or its trigger was dropped).
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A connected trigger and shutdown signal.
pub fn shutdown_channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(rx))
}

impl Trigger {
    pub fn fire(&self) {
        self.0.send_replace(true);
    }
}

impl Shutdown {
    pub async fn wait(&mut self) {
        // An error means the trigger is gone, which also means stop.
        let _ = self.0.wait_for(|fired| *fired).await;
    }
}

/// Serves the edge on `listener` until `shutdown`, then drains. Each request is answered by
/// the state in service when it arrives; the listener's limits are those at start.
pub async fn run(listener: TcpListener, live: Arc<Live>, shutdown: Shutdown, drain: Duration) -> io::Result<()> {
    let (limits, counters) = {
        let state = live.load();
        (state.limits.clone(), Counters(Some(Arc::clone(&state.metrics))))
    };
    accept(listener, shutdown, drain, None, &limits, counters, edge(live)).await
}

/// Like [`run`], with TLS on every connection.
pub async fn run_tls(
    listener: TcpListener,
    live: Arc<Live>,
    shutdown: Shutdown,
    drain: Duration,
    tls: &crate::tls::Tls,
) -> io::Result<()> {
    let acceptor = TlsAcceptor::from(tls.server_config());
    let (limits, counters) = {
        let state = live.load();
        (state.limits.clone(), Counters(Some(Arc::clone(&state.metrics))))
    };
    accept(listener, shutdown, drain, Some((acceptor, tls.handshake_timeout)), &limits, counters, edge(live)).await
}

/// The main listener's handler: answered here, or forwarded past the gate. A forwarded
/// request keeps the state it started with until it ends, whatever reloads happen meanwhile.
fn edge(live: Arc<Live>) -> impl Fn(Request<Incoming>, &Connection) -> Reply + Send + Sync + 'static {
    move |request, connection| {
        // A guard, not a counted reference: nothing is allocated or contended for answers
        // the edge makes itself.
        let started = std::time::Instant::now();
        let state = live.load();
        match respond::handle(&state, &request) {
            Decision::Answer(response, route) => {
                // Answered before any token check (documents, challenges, preflights): nothing
                // here reaches the MCP server, so no request id is made or echoed and these
                // answers cost what they did. Requests that reach the token check get one in
                // `forward`.
                let seen = observe::Seen::of(&state, &request);
                observe::answered(&state, route, response.status(), started, seen, &connection.peer_ip, None);
                Reply::Ready(Some(response))
            }
            Decision::Forward(pass) => Reply::Forward(Box::pin(crate::proxy::forward(
                arc_swap::Guard::into_inner(state),
                pass,
                request,
                connection.peer_ip.clone(),
                Arc::clone(&connection.activity),
                started,
            ))),
        }
    }
}

/// Accepts connections and answers each request with `handler`, whose [`Reply`] is ready at
/// once for answers the edge makes itself, so nothing is boxed per discovery request. For the
/// admin listener and the demo's servers: the default limits without a connection bound, and
/// nothing counted.
pub async fn serve<F>(listener: TcpListener, shutdown: Shutdown, drain: Duration, handler: F) -> io::Result<()>
where
    F: Fn(Request<Incoming>, &Connection) -> Reply + Send + Sync + 'static,
{
    let limits = Limits { max_connections: None, ..Limits::default() };
    accept(listener, shutdown, drain, None, &limits, Counters(None), handler).await
}

/// Where a listener counts what its limits did: the main listener's metrics, or nowhere.
#[derive(Clone)]
struct Counters(Option<Arc<Metrics>>);

impl Counters {
    fn hit(&self, limit: Limit) {
        if let Some(metrics) = &self.0 {
            metrics.limit_hit(limit);
        }
    }

    /// Counts what ended a connection, when a limit did.
    fn ended(&self, outcome: &Result<Result<(), ConnectionError>, Closed>) {
        match outcome {
            // hyper answered 431 itself: the head was over the buffer or the header count.
            Ok(Err(e)) if e.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_parse_too_large) => {
                self.hit(Limit::Headers)
            }
            Ok(_) => {}
            Err(Closed::HeaderRead) => self.hit(Limit::HeaderReadTimeout),
            Err(Closed::Idle) => self.hit(Limit::IdleTimeout),
        }
    }
}

/// How hyper-util reports a connection that ended in error.
type ConnectionError = Box<dyn std::error::Error + Send + Sync>;

/// One open connection, for as long as its task lives: its place under `--max-connections`,
/// what graceful shutdown waits for, and the gauge counting it.
struct Slot {
    _permit: Option<OwnedSemaphorePermit>,
    _draining: Watcher,
    counters: Counters,
}

impl Slot {
    fn new(permit: Option<OwnedSemaphorePermit>, draining: Watcher, counters: Counters) -> Slot {
        if let Some(metrics) = &counters.0 {
            metrics.connection_opened();
        }
        Slot { _permit: permit, _draining: draining, counters }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(metrics) = &self.counters.0 {
            metrics.connection_closed();
        }
    }
}

/// The connection builders TLS chooses among by the protocol ALPN settled on.
struct Protocols {
    /// `h2` negotiated: HTTP/2 without reading the preface to decide.
    h2: auto::Builder<TokioExecutor>,
    /// `http/1.1` negotiated.
    h1: auto::Builder<TokioExecutor>,
    /// A client that sent no ALPN: detected from its first bytes, as on cleartext.
    detect: auto::Builder<TokioExecutor>,
}

/// How long to wait between warnings that the connection limit was reached.
const LIMIT_WARNING_EVERY: Duration = Duration::from_secs(60);

async fn accept<F>(
    listener: TcpListener,
    mut shutdown: Shutdown,
    drain: Duration,
    tls: Option<(TlsAcceptor, Duration)>,
    limits: &Limits,
    counters: Counters,
    handler: F,
) -> io::Result<()>
where
    F: Fn(Request<Incoming>, &Connection) -> Reply + Send + Sync + 'static,
{
    let handler = Arc::new(handler);
    let clock = Clock::new(limits);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // No HTTP/1 timer: with one, hyper 1.12 boxes and registers a new header-read timer for
    // every request (an allocation and ~15% of the discovery path's instructions). The
    // per-connection watchdog below bounds slow and idle clients instead.
    let mut h1 = builder.http1();
    // hyper answers 431 to a head that fills this buffer while still incomplete.
    h1.max_buf_size(limits.max_header_bytes);
    if limits.max_headers != HYPER_MAX_HEADERS {
        h1.max_headers(limits.max_headers);
    }
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    let protocols = tls.as_ref().map(|_| {
        Arc::new(Protocols {
            h2: builder.clone().http2_only(),
            h1: builder.clone().http1_only(),
            detect: builder.clone(),
        })
    });
    let slots = limits.max_connections.map(|n| Arc::new(Semaphore::new(n)));
    let mut warned: Option<Instant> = None;
    let graceful = GracefulShutdown::new();
    loop {
        // SECURITY: at the limit, accepting pauses: new connections wait in the listen backlog
        // (and beyond it, in the clients' SYN retries) until one closes, costing the process
        // nothing.
        let permit = match &slots {
            None => None,
            Some(slots) => match Arc::clone(slots).try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    counters.hit(Limit::Connections);
                    if warned.is_none_or(|at| at.elapsed() >= LIMIT_WARNING_EVERY) {
                        warned = Some(Instant::now());
                        crate::warn!(
                            "connection limit reached ({} open); new connections wait until one closes",
                            limits.max_connections.unwrap_or_default()
                        );
                    }
                    tokio::select! {
                        // The semaphore is never closed; were it, serving without a bound
                        // would beat stopping.
                        permit = Arc::clone(slots).acquire_owned() => permit.ok(),
                        _ = shutdown.wait() => break,
                    }
                }
            },
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors or a connection reset before accept: keep serving the
                // connections we have and try again shortly rather than exit.
                crate::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Taken now, so that shutdown waits for this connection (its handshake included).
        let slot = Slot::new(permit, graceful.watcher(), counters.clone());
        let _ = stream.set_nodelay(true);
        let handler = Arc::clone(&handler);
        let activity = Arc::new(Activity::default());
        let peer_ip = HeaderValue::try_from(peer.ip().to_string()).unwrap_or(HeaderValue::from_static("unknown"));
        let info = Connection { peer, peer_ip, activity: Arc::clone(&activity) };
        let service = service_fn(move |request: Request<Incoming>| {
            // Called on the connection's own task only, so a plain load and store is enough.
            info.activity.mark(&info.activity.active);
            handler(request, &info)
        });
        if let (Some((acceptor, handshake_timeout)), Some(protocols)) = (&tls, &protocols) {
            let handshake = tokio::time::timeout(*handshake_timeout, acceptor.accept(stream));
            let protocols = Arc::clone(protocols);
            let mut stop = shutdown.clone();
            tokio::spawn(async move {
                let stream = tokio::select! {
                    biased;
                    done = handshake => match done {
                        Ok(Ok(stream)) => stream,
                        // A failed handshake has had its alert sent; a slow one is dropped.
                        Ok(Err(_)) | Err(_) => return,
                    },
                    // Nothing is in flight yet: shutdown drops the handshake.
                    _ = stop.wait() => return,
                };
                let builder = match stream.get_ref().1.alpn_protocol() {
                    Some(b"h2") => {
                        activity.h2.store(true, Ordering::Relaxed);
                        &protocols.h2
                    }
                    Some(_) => &protocols.h1,
                    None => &protocols.detect,
                };
                let io = TokioIo::new(Watched::new(stream, Arc::clone(&activity)));
                let connection = builder.serve_connection(io, service);
                let outcome = watchdog(connection, |c| c.graceful_shutdown(), &activity, clock, stop).await;
                slot.counters.ended(&outcome);
            });
            continue;
        }
        let io = TokioIo::new(Watched::new(stream, Arc::clone(&activity)));
        let connection = builder.serve_connection(io, service).into_owned();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            // Errors are the client's doing (reset, bad request line); hyper has already
            // answered what could be answered. Those that hit a limit are counted.
            let outcome = watchdog(connection, |c| c.graceful_shutdown(), &activity, clock, stop).await;
            slot.counters.ended(&outcome);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(drain) => crate::warn!("drain timeout reached; closing remaining connections"),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The watchdog: slow request heads and idle connections

/// Why the watchdog closed a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Closed {
    /// A request head did not complete within `--header-read-timeout` (or the connection sent
    /// no complete head that long after it opened).
    HeaderRead,
    /// No request for `--idle-timeout`.
    Idle,
}

/// The watchdog's timings, from the limits.
#[derive(Clone, Copy, Debug)]
struct Clock {
    /// How often it looks: a quarter of the shorter timeout, so a timeout takes effect within
    /// half a timeout after it has passed.
    period: Duration,
    header_read: Duration,
    idle: Duration,
}

impl Clock {
    fn new(limits: &Limits) -> Clock {
        let shorter = limits.header_read_timeout.min(limits.idle_timeout);
        Clock {
            period: (shorter / 4).max(Duration::from_millis(10)),
            header_read: limits.header_read_timeout,
            idle: limits.idle_timeout,
        }
    }
}

/// SECURITY: runs `connection` until it ends, or until it has been too slow with a request
/// head (slowloris: bytes trickled, or none at all on a new connection) or idle too long.
/// One timer per connection, checked a few times per timeout, rather than hyper's header
/// timer, which costs an allocation and ~15% of the discovery path on every request.
///
/// A head is "on its way" when bytes arrived in a tick after the last request (or after the
/// last forwarded exchange ended) on an HTTP/1 connection; the watchdog then marks the
/// connection timed out and drops it, and [`Watched`] answers 408 as it goes. Bytes read in
/// the same tick as a request (the rest of its body) do not start a head. An HTTP/2
/// connection is closed with `graceful` (GOAWAY, RFC 9113 §9.1), given a tick to say it.
///
/// On `stop`, the connection is asked to finish gracefully: in-flight requests complete, and
/// the accept loop's drain timeout bounds the wait.
async fn watchdog<C, G>(
    connection: C,
    graceful: G,
    activity: &Activity,
    clock: Clock,
    mut stop: Shutdown,
) -> Result<C::Output, Closed>
where
    C: Future,
    G: Fn(Pin<&mut C>),
{
    tokio::pin!(connection);
    let opened = Instant::now();
    let mut tick: u32 = 1;
    activity.tick.store(tick, Ordering::Relaxed);
    let mut interval = tokio::time::interval_at(opened + clock.period, clock.period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut quiet_since = opened;
    let mut head_since: Option<Instant> = None;
    let mut stopping = false;
    let mut closing: Option<Closed> = None;
    let nudge = Arc::new(Nudge::default());
    let own = Waker::from(Arc::clone(&nudge));
    loop {
        // The two futures below are new: each is polled once, to register its waker.
        nudge.woken.store(true, Ordering::Relaxed);
        let woke = {
            // `changed` rather than `wait`: a trigger that fired (or is gone) before this
            // receiver was made counts too.
            let mut changed = std::pin::pin!(stop.0.changed());
            std::future::poll_fn(|cx| {
                if let Poll::Ready(done) = connection.as_mut().poll(cx) {
                    return Poll::Ready(Woke::Done(done));
                }
                // Most wake-ups are the connection's (a request, a response); the timer and
                // the shutdown signal are polled only when they woke the task.
                nudge.remember(cx.waker());
                if !nudge.woken.swap(false, Ordering::AcqRel) {
                    return Poll::Pending;
                }
                let mut own = Context::from_waker(&own);
                if !stopping && changed.as_mut().poll(&mut own).is_ready() {
                    return Poll::Ready(Woke::Stop);
                }
                match interval.poll_tick(&mut own) {
                    Poll::Ready(_) => Poll::Ready(Woke::Tick),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await
        };
        match woke {
            Woke::Done(done) => return closing.map_or(Ok(done), Err),
            Woke::Stop => {
                stopping = true;
                graceful(connection.as_mut());
                continue;
            }
            Woke::Tick => {}
        }
        if let Some(closed) = closing {
            // The GOAWAY had a tick to go out; the connection goes now.
            return Err(closed);
        }
        let now = Instant::now();
        let (active, read) = (activity.active.load(Ordering::Relaxed), activity.read.load(Ordering::Relaxed));
        let ended = tick;
        tick = tick.wrapping_add(1);
        activity.tick.store(tick, Ordering::Relaxed);
        let h2 = activity.h2.load(Ordering::Relaxed);
        let verdict = if active == 0 {
            // The first request must come within the header read timeout of the connection's
            // start, whether or not bytes came.
            (now.duration_since(opened) >= clock.header_read).then_some((Closed::HeaderRead, read != 0))
        } else if active == ended || activity.streaming.load(Ordering::Relaxed) > 0 {
            quiet_since = now;
            head_since = None;
            None
        } else if read > active && !h2 {
            let since = *head_since.get_or_insert(now);
            (now.duration_since(since) >= clock.header_read).then_some((Closed::HeaderRead, true))
        } else {
            head_since = None;
            (now.duration_since(quiet_since) >= clock.idle).then_some((Closed::Idle, false))
        };
        match verdict {
            None => {}
            Some((closed, _)) if h2 => {
                if !stopping {
                    graceful(connection.as_mut());
                }
                closing = Some(closed);
            }
            Some((closed, started)) => {
                activity.timed_out.store(started, Ordering::Relaxed);
                return Err(closed);
            }
        }
    }
}

/// What woke the watchdog.
enum Woke<T> {
    Done(T),
    Stop,
    Tick,
}

/// The waker the watchdog's own timer and shutdown signal are polled with: it notes that one
/// of them woke the connection's task, and wakes that task.
#[derive(Default)]
struct Nudge {
    woken: AtomicBool,
    task: std::sync::Mutex<Option<Waker>>,
}

impl Nudge {
    /// Keeps the task's current waker, for [`Wake::wake_by_ref`] to pass the wake-up on.
    fn remember(&self, waker: &Waker) {
        let mut task = self.task.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !task.as_ref().is_some_and(|known| known.will_wake(waker)) {
            *task = Some(waker.clone());
        }
    }
}

impl Wake for Nudge {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        let task = self.task.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(task) = task.as_ref() {
            task.wake_by_ref();
        }
    }
}

/// The client's socket (plain or TLS) as hyper sees it: it stamps the ticks in which bytes
/// arrive, tells HTTP/2's preface from an HTTP/1 request by the first bytes, and, when the
/// watchdog gave up on a request head, says `408` as it is dropped.
struct Watched<I: Farewell> {
    io: I,
    activity: Arc<Activity>,
    /// The last write waited for the client to read: a response is still on its way, and
    /// nothing may be written after it.
    blocked: bool,
    /// No bytes have arrived yet.
    first: bool,
}

impl<I: Farewell> Watched<I> {
    fn new(io: I, activity: Arc<Activity>) -> Watched<I> {
        Watched { io, activity, blocked: false, first: true }
    }

    fn wrote<T>(&mut self, polled: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        self.blocked = polled.is_pending();
        polled
    }
}

impl<I: Farewell> AsyncRead for Watched<I> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if polled.is_ready() && buf.filled().len() > before {
            if this.first {
                this.first = false;
                if buf.filled()[before..].starts_with(b"PRI ") {
                    this.activity.h2.store(true, Ordering::Relaxed);
                }
            }
            this.activity.mark(&this.activity.read);
        }
        polled
    }
}

impl<I: Farewell> AsyncWrite for Watched<I> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        this.wrote(polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.wrote(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_flush(cx);
        this.wrote(polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl<I: Farewell> Drop for Watched<I> {
    fn drop(&mut self) {
        // RFC 9110 §15.5.9: the client that was sending a request learns why the connection
        // closes. Only on HTTP/1, only between responses, and never on an idle connection, where
        // it could pass for the answer to a request the client sends at that moment.
        if self.activity.timed_out.load(Ordering::Relaxed) && !self.blocked && !self.activity.h2.load(Ordering::Relaxed)
        {
            self.io.farewell(&request_timeout(SystemTime::now()));
        }
    }
}

/// A socket that can take a few last bytes without waiting, as it is dropped.
pub trait Farewell: AsyncRead + AsyncWrite + Unpin {
    /// Writes `bytes` if the socket takes them at once; best effort, errors ignored.
    fn farewell(&mut self, bytes: &[u8]);
}

impl Farewell for TcpStream {
    fn farewell(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while let Ok(n @ 1..) = self.try_write(rest) {
            rest = &rest[n..];
        }
    }
}

impl Farewell for tokio_rustls::server::TlsStream<TcpStream> {
    fn farewell(&mut self, bytes: &[u8]) {
        let (tcp, tls) = self.get_mut();
        if io::Write::write_all(&mut tls.writer(), bytes).is_err() {
            return;
        }
        tls.send_close_notify();
        let mut out = TryWrite(tcp);
        while tls.wants_write() {
            if !matches!(tls.write_tls(&mut out), Ok(1..)) {
                break;
            }
        }
    }
}

/// A TCP socket as a `std::io::Write` that never waits: rustls writes its records through it.
struct TryWrite<'a>(&'a TcpStream);

impl io::Write for TryWrite<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

const BODY_408: &[u8] =
    br#"{"error":"request_timeout","error_description":"The request headers did not arrive in time"}"#;

/// The 408 the watchdog leaves on a connection whose request head was too slow, with the
/// `Date` an origin server must send (RFC 9110 §6.6.1) and `Connection: close`.
fn request_timeout(now: SystemTime) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"HTTP/1.1 408 Request Timeout\r\ndate: ");
    out.extend_from_slice(&http_date(now));
    out.extend_from_slice(b"\r\ncontent-type: application/json\r\ncache-control: no-store\r\nconnection: close\r\n");
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", BODY_408.len()).as_bytes());
    out.extend_from_slice(BODY_408);
    out
}

/// `now` as an IMF-fixdate (RFC 9110 §5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(now: SystemTime) -> [u8; 29] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] =
        [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];
    let secs = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Days to a civil date (Howard Hinnant's algorithm), for dates from 1970 on.
    let z = days + 719_468;
    let (era, doe) = (z / 146_097, z % 146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let digits = |n: u64| [b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8];
    let mut out = [0u8; 29];
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    out[3..5].copy_from_slice(b", ");
    out[5..7].copy_from_slice(&digits(day));
    out[7] = b' ';
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    out[11] = b' ';
    out[12..14].copy_from_slice(&digits(year / 100));
    out[14..16].copy_from_slice(&digits(year % 100));
    out[16] = b' ';
    out[17..19].copy_from_slice(&digits(rest / 3600));
    out[19] = b':';
    out[20..22].copy_from_slice(&digits(rest / 60 % 60));
    out[22] = b':';
    out[23..25].copy_from_slice(&digits(rest % 60));
    out[25..].copy_from_slice(b" GMT");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        let at = |secs| {
            std::str::from_utf8(&http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))).map(String::from)
        };
        // RFC 9110 §5.6.7's example.
        assert_eq!(at(784_111_777).unwrap(), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(at(0).unwrap(), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(at(951_782_400).unwrap(), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(at(4_102_444_799).unwrap(), "Thu, 31 Dec 2099 23:59:59 GMT");
    }

    #[test]
    fn the_408_is_complete() {
        let response = String::from_utf8(request_timeout(SystemTime::UNIX_EPOCH)).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 408 Request Timeout\r\ndate: Thu, 01 Jan 1970 00:00:00 GMT\r\n"));
        assert!(head.contains("\r\nconnection: close"));
        assert!(head.ends_with(&format!("content-length: {}", body.len())));
        assert_eq!(body.as_bytes(), BODY_408);
    }

    #[test]
    fn the_watchdog_looks_four_times_per_shorter_timeout() {
        let limits = Limits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            ..Limits::default()
        };
        assert_eq!(Clock::new(&limits).period, Duration::from_millis(2500));
        let tiny = Limits { idle_timeout: Duration::from_millis(1), ..limits };
        assert_eq!(Clock::new(&tiny).period, Duration::from_millis(10));
    }
}
