//! Shared pieces of the integration tests: a scriptable authorization server stand-in, the
//! edge started in-process on `127.0.0.1:0`, the binary as a child process, a small HTTP
//! client and a deadline-bounded poller.
//!
//! Every test file compiles this module on its own and uses a different part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body::Frame;
use http_body_util::{BodyExt, Either, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mcp_auth_edge::app::reload::Reload;
use mcp_auth_edge::app::{RunError, Runtime};
use mcp_auth_edge::config::Config;
use mcp_auth_edge::config::Settings;
use mcp_auth_edge::shutdown::{channel as shutdown_channel, Trigger};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub mod jwt;
pub mod mcp;

/// How long any single wait in a test may take before it fails. Generous: the machine that
/// runs the suite may be busy compiling.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The public URL of the protected resource in most tests.
pub const RESOURCE: &str = "https://mcp.example.com/mcp";

pub const AS_PATH: &str = "/.well-known/oauth-authorization-server";
pub const OIDC_PATH: &str = "/.well-known/openid-configuration";
pub const PRM_PATH: &str = "/.well-known/oauth-protected-resource";

/// Short timings so refreshes and retries happen within a test's patience. The timeouts stay
/// well above a loopback fetch even on a busy machine, so only a test that means to time out
/// (with its own, shorter `--fetch-timeout`) sees one. Given first, so a test's flags win.
/// The loopback address is an alias of every resource: the tests' clients name it in `Host`.
const FAST: &[&str] = &[
    "--refresh",
    "0.2",
    "--fetch-timeout",
    "2",
    "--connect-timeout",
    "2",
    "--drain-timeout",
    "5",
    "--host-alias",
    "127.0.0.1",
];

// ---------------------------------------------------------------------------------------------
// The authorization server stand-in

/// What the stand-in answers on one path.
#[derive(Clone, Debug)]
pub struct Canned {
    pub status: u16,
    pub body: Bytes,
    /// Waited before the status line and headers are sent.
    pub delay: Duration,
    /// Sent with chunked transfer coding (no `Content-Length`), so a size cap has to be
    /// enforced while reading rather than from the header.
    pub chunked: bool,
}

impl Canned {
    pub fn ok(body: impl Into<Bytes>) -> Canned {
        Canned { status: 200, body: body.into(), delay: Duration::ZERO, chunked: false }
    }

    pub fn status(status: u16) -> Canned {
        Canned::ok(Bytes::from_static(br#"{"error":"canned"}"#)).with_status(status)
    }

    pub fn with_status(self, status: u16) -> Canned {
        Canned { status, ..self }
    }

    pub fn delayed(self, delay: Duration) -> Canned {
        Canned { delay, ..self }
    }

    pub fn chunked(self) -> Canned {
        Canned { chunked: true, ..self }
    }
}

#[derive(Default)]
struct Script {
    routes: HashMap<String, Canned>,
    log: Vec<String>,
}

/// A real HTTP/1.1 server on loopback whose answers the test changes while it runs. Paths
/// with no canned answer get 404.
pub struct Upstream {
    pub addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    accept: JoinHandle<()>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the stand-in");
        Upstream::serve(listener)
    }

    /// Starts on a port chosen earlier with [`free_port`], for an upstream that comes up late.
    pub async fn start_on(port: u16) -> Upstream {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind the stand-in on its reserved port");
        Upstream::serve(listener)
    }

    /// A stand-in already serving a valid document (revision 1) at the RFC 8414 path.
    pub async fn serving() -> Upstream {
        let upstream = Upstream::start().await;
        upstream.set(AS_PATH, Canned::ok(upstream.metadata(1)));
        upstream
    }

    fn serve(listener: TcpListener) -> Upstream {
        let addr = listener.local_addr().expect("stand-in address");
        let script = Arc::new(Mutex::new(Script::default()));
        let shared = Arc::clone(&script);
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let script = Arc::clone(&shared);
                let service = service_fn(move |request: Request<Incoming>| answer(Arc::clone(&script), request));
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        Upstream { addr, script, accept }
    }

    /// The issuer identifier the stand-in's documents carry.
    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A valid RFC 8414 document for this issuer. The spacing, key order and trailing newline
    /// are not what a JSON serializer would write, so relaying it byte-for-byte shows.
    pub fn metadata(&self, revision: u32) -> Bytes {
        metadata_for(&self.issuer(), revision, "")
    }

    pub fn set(&self, path: &str, canned: Canned) {
        self.script.lock().expect("script lock").routes.insert(path.to_string(), canned);
    }

    /// Every path asked for so far, in order.
    pub fn log(&self) -> Vec<String> {
        self.script.lock().expect("script lock").log.clone()
    }

    pub fn hits(&self, path: &str) -> usize {
        self.log().iter().filter(|p| *p == path).count()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// A valid RFC 8414 document; `padding` lets a test make it as large as it needs.
pub fn metadata_for(issuer: &str, revision: u32, padding: &str) -> Bytes {
    Bytes::from(format!(
        "{{\n  \"response_types_supported\" : [ \"code\" ],\n  \"issuer\": \"{issuer}\",\n  \
         \"authorization_endpoint\": \"{issuer}/authorize\",\n  \"token_endpoint\": \"{issuer}/token\",\n  \
         \"revision\": {revision},\n  \"padding\": \"{padding}\"\n}}\n"
    ))
}

type StandInBody = Either<Full<Bytes>, Chunked>;

async fn answer(script: Arc<Mutex<Script>>, request: Request<Incoming>) -> Result<Response<StandInBody>, Infallible> {
    let path = request.uri().path().to_string();
    let canned = {
        let mut script = script.lock().expect("script lock");
        script.log.push(path.clone());
        script.routes.get(&path).cloned()
    };
    let canned = canned.unwrap_or_else(|| Canned::status(404));
    tokio::time::sleep(canned.delay).await;
    let body = if canned.chunked { Either::Right(Chunked(canned.body)) } else { Either::Left(Full::new(canned.body)) };
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(canned.status).expect("a valid canned status");
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    Ok(response)
}

/// A body of unknown length, sent in 1 KiB frames.
pub struct Chunked(Bytes);

impl http_body::Body for Chunked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.0.is_empty() {
            return Poll::Ready(None);
        }
        let n = self.0.len().min(1024);
        Poll::Ready(Some(Ok(Frame::data(self.0.split_to(n)))))
    }
}

// ---------------------------------------------------------------------------------------------
// The edge, in-process

/// The edge running on `127.0.0.1:0` (main and admin listeners). Dropping it fires shutdown.
pub struct Edge {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    trigger: Trigger,
    task: Option<JoinHandle<Result<(), RunError>>>,
}

/// The validated configuration for `args`, after the fast timings.
pub fn config(args: &[&str]) -> Config {
    let args: Vec<String> = FAST.iter().chain(args).map(|s| s.to_string()).collect();
    let settings = Settings::load(args, |_| None).expect("test flags parse");
    Config::from_settings(&settings).expect("test flags validate")
}

impl Edge {
    /// Starts the edge with the fast timings and `args`, which must name the resource and the
    /// authorization server.
    pub async fn start(args: &[&str]) -> Edge {
        Edge::start_config(config(args)).await
    }

    /// Starts the edge with a configuration the test has built and the runtime objects made
    /// from it (a test that needs the certificate store keeps a handle to it).
    pub async fn start_built(config: Config, runtime: Runtime) -> Edge {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the edge");
        let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind the admin listener");
        let (addr, admin_addr) = (listener.local_addr().expect("address"), admin.local_addr().expect("address"));
        let (trigger, shutdown) = shutdown_channel();
        let (_keep, reloads) = tokio::sync::watch::channel(None);
        let task = tokio::spawn(async move {
            let result =
                mcp_auth_edge::app::run_with_reloads(&config, runtime, listener, Some(admin), shutdown, reloads).await;
            drop(_keep);
            result
        });
        Edge { addr, admin: admin_addr, trigger, task: Some(task) }
    }

    /// Starts the edge with a configuration the test has built (and perhaps adjusted).
    pub async fn start_config(config: Config) -> Edge {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the edge");
        let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind the admin listener");
        let (addr, admin_addr) = (listener.local_addr().expect("address"), admin.local_addr().expect("address"));
        let (trigger, shutdown) = shutdown_channel();
        let task = tokio::spawn(async move { mcp_auth_edge::app::run(&config, listener, Some(admin), shutdown).await });
        Edge { addr, admin: admin_addr, trigger, task: Some(task) }
    }

    /// Like [`Edge::start_config`], with the sender that hands the edge new configurations,
    /// as SIGHUP does in the binary.
    pub async fn start_reloadable(config: Config) -> (Edge, tokio::sync::watch::Sender<Option<Reload>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the edge");
        let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind the admin listener");
        let (addr, admin_addr) = (listener.local_addr().expect("address"), admin.local_addr().expect("address"));
        let (trigger, shutdown) = shutdown_channel();
        let (reload, reloads) = tokio::sync::watch::channel(None);
        let runtime = Runtime::build(&config).expect("the configuration's files load");
        let task = tokio::spawn(async move {
            mcp_auth_edge::app::run_with_reloads(&config, runtime, listener, Some(admin), shutdown, reloads).await
        });
        (Edge { addr, admin: admin_addr, trigger, task: Some(task) }, reload)
    }

    /// Starts the edge for [`RESOURCE`] in front of `upstream`, with `extra` flags.
    pub async fn for_upstream(upstream: &Upstream, extra: &[&str]) -> Edge {
        let issuer = upstream.issuer();
        let mut args = vec!["--resource", RESOURCE, "--auth-server", &issuer];
        args.extend_from_slice(extra);
        Edge::start(&args).await
    }

    /// Like [`Edge::for_upstream`], then waits until the first document is in service.
    pub async fn ready_for(upstream: &Upstream, extra: &[&str]) -> Edge {
        let edge = Edge::for_upstream(upstream, extra).await;
        edge.wait_ready().await;
        edge
    }

    pub async fn get(&self, path: &str) -> Reply {
        get(self.addr, path).await
    }

    pub async fn admin_get(&self, path: &str) -> Reply {
        get(self.admin, path).await
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        wait_ready(self.admin).await;
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        self.admin_get("/metrics").await.text()
    }

    /// The value of one metric line (name with its labels, exactly as rendered), or 0 when
    /// the line is absent.
    pub async fn metric(&self, series: &str) -> f64 {
        metric(&self.metrics().await, series).unwrap_or(0.0)
    }

    /// Waits until the metric `series` goes above `floor`.
    pub async fn wait_metric_above(&self, series: &str, floor: f64) {
        wait_until(&format!("{series} to go above {floor}"), || async move { self.metric(series).await > floor }).await;
    }

    /// Waits for `run` to return on its own (without firing shutdown).
    pub async fn finished(mut self) -> Result<(), RunError> {
        let task = self.task.take().expect("awaited once");
        tokio::time::timeout(PATIENCE, task).await.expect("run returns on its own").expect("run did not panic")
    }

    /// Fires shutdown and waits for `run` to return.
    pub async fn stop(mut self) -> Result<(), RunError> {
        self.trigger.fire();
        let task = self.task.take().expect("stopped once");
        tokio::time::timeout(PATIENCE, task).await.expect("run returns after shutdown").expect("run did not panic")
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        self.trigger.fire();
    }
}

/// The value of `series` in Prometheus text, if a line for it is there.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.trim().parse().expect("a numeric metric value"))
}

// ---------------------------------------------------------------------------------------------
// The client

/// A response as the test saw it.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// A header's value; panics, naming it, when it is missing or not text.
    pub fn header(&self, name: &str) -> &str {
        let value = self.headers.get(name).unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers));
        value.to_str().expect("a text header value")
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).expect("a UTF-8 body")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }
}

pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, Method::GET, path, &[]).await
}

/// One HTTP/1.1 request on a fresh connection.
pub async fn request(addr: SocketAddr, method: Method, path: &str, headers: &[(&str, &str)]) -> Reply {
    try_request(addr, Version::HTTP_11, method, path, headers).await.unwrap_or_else(|e| panic!("{path} on {addr}: {e}"))
}

/// One request on a fresh connection: HTTP/1.1, or HTTP/2 with prior knowledge (cleartext).
/// `Err` when the edge cannot be reached or the exchange fails.
pub async fn try_request(
    addr: SocketAddr,
    version: Version,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Reply, String> {
    let exchange = async {
        let stream = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
        let mut builder = Request::builder().method(method).uri(format!("http://{addr}{path}"));
        if version == Version::HTTP_11 {
            builder = builder.header("host", addr.to_string());
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
        let io = TokioIo::new(stream);
        let response = if version == Version::HTTP_2 {
            let (mut sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await.map_err(|e| e.to_string())?;
            tokio::spawn(connection);
            sender.send_request(request).await
        } else {
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
            tokio::spawn(connection);
            sender.send_request(request).await
        }
        .map_err(|e| format!("request: {e}"))?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| format!("body: {e}"))?.to_bytes();
        Ok(Reply { status: parts.status, version: parts.version, headers: parts.headers, body })
    };
    tokio::time::timeout(PATIENCE, exchange).await.map_err(|_| format!("no answer within {PATIENCE:?}"))?
}

/// Writes `request` as is and reads until the server closes the connection, so the test sees
/// exactly the bytes that came back. The request should carry `Connection: close`.
pub async fn raw_exchange(addr: SocketAddr, request: &str) -> Vec<u8> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await?;
        Ok::<_, std::io::Error>(out)
    };
    tokio::time::timeout(PATIENCE, exchange).await.expect("the server closes the connection").expect("raw exchange")
}

/// Splits a raw HTTP/1.1 response into its head (status line and headers, as text) and what
/// follows the blank line.
pub fn split_head(raw: &[u8]) -> (String, &[u8]) {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete response head");
    (String::from_utf8(raw[..end].to_vec()).expect("a text head"), &raw[end + 4..])
}

/// A raw HTTP/1.1 response as text with the values that change from run to run replaced:
/// `date` by `<date>`, `x-request-id` by `<id>`, so the rest can be compared byte for byte.
pub fn normalized(raw: &[u8]) -> String {
    let text = String::from_utf8(raw.to_vec()).expect("a text response");
    let text = replace_value(&text, "date", "<date>");
    replace_value(&text, "x-request-id", "<id>")
}

/// `text` with the value of its first `name` header line replaced by `placeholder`.
fn replace_value(text: &str, name: &str, placeholder: &str) -> String {
    let marker = format!("\r\n{name}: ");
    let Some(start) = text.find(&marker) else {
        return text.to_string();
    };
    let value = start + marker.len();
    let end = value + text[value..].find("\r\n").expect("a complete header line");
    format!("{}{placeholder}{}", &text[..value], &text[end..])
}

/// A header's value in a raw response head, matched case-insensitively.
pub fn head_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

// ---------------------------------------------------------------------------------------------
// Waiting

/// Waits until the admin listener at `admin` accepts connections and `/readyz` answers 200.
pub async fn wait_ready(admin: SocketAddr) {
    wait_until("/readyz to answer 200", || async move {
        try_request(admin, Version::HTTP_11, Method::GET, "/readyz", &[])
            .await
            .is_ok_and(|reply| reply.status == StatusCode::OK)
    })
    .await;
}

/// Polls `probe` every 20 ms until it says yes; fails the test after [`PATIENCE`].
pub async fn wait_until<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while !probe().await {
        assert!(Instant::now() < deadline, "timed out after {PATIENCE:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The binary

/// A port that was free a moment ago: bound on loopback, read, released. For the binary,
/// which must be told its address, and for an upstream that starts late.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a probe port");
    listener.local_addr().expect("probe address").port()
}

/// Whether something accepts connections on `addr`.
pub async fn accepts(addr: SocketAddr) -> bool {
    TcpStream::connect(addr).await.is_ok()
}

/// The `mcp-auth-edge` binary as a child process, killed (by its PID) if the test ends
/// before it does.
pub struct Process {
    child: Child,
}

impl Process {
    /// Starts the binary with `args` and `env` (and none of the caller's `MCP_AUTH_EDGE_*`
    /// variables). Standard error is kept for [`Process::stderr`]; standard output is dropped.
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Process {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mcp-auth-edge"));
        command.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("MCP_AUTH_EDGE_")) {
            command.env_remove(name);
        }
        command.envs(env.iter().copied());
        Process { child: command.spawn().expect("start the binary") }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`TERM`, `INT`) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").arg(format!("-{name}")).arg(self.pid().to_string()).status();
        assert!(status.expect("run kill").success(), "kill -{name} {}", self.pid());
    }

    /// Waits for the process to exit, failing the test after `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the child") {
                return status;
            }
            assert!(Instant::now() < deadline, "the binary did not exit within {limit:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whatever the process wrote to standard error; call after it has exited.
    pub fn stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            std::io::Read::read_to_string(&mut pipe, &mut text).expect("read stderr");
        }
        text
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The binary serving in front of an upstream on ports it was given, ready.
pub struct Running {
    pub process: Process,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
}

impl Running {
    /// Starts the binary for [`RESOURCE`] in front of `upstream`, with `extra` flags, and
    /// waits until its first document is in service.
    pub async fn start(upstream: &Upstream, extra: &[&str]) -> Running {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let (listen, admin_listen, issuer) = (addr.to_string(), admin.to_string(), upstream.issuer());
        let mut args = vec!["--listen", &listen, "--admin-listen", &admin_listen];
        args.extend(["--resource", RESOURCE, "--auth-server", &issuer]);
        args.extend_from_slice(extra);
        let process = Process::spawn(&args, &[]);
        wait_ready(admin).await;
        Running { process, addr, admin }
    }
}

/// A file in the temporary directory, removed when dropped.
pub struct TempFile {
    pub path: std::path::PathBuf,
}

impl TempFile {
    pub fn new(name: &str, contents: &str) -> TempFile {
        let path = std::env::temp_dir().join(format!("mcp-auth-edge-test-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).expect("write a temporary file");
        TempFile { path }
    }

    pub fn path(&self) -> &str {
        self.path.to_str().expect("a UTF-8 temporary path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
