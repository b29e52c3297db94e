//! The two halves of the held-streams benchmark (`benches/streams.sh`), run as `hyper-floor`
//! modes:
//!
//! - `sse ADDR`: the MCP stand-in. Every `GET` is answered with an event stream that sends one
//!   event (`open`) at once and another (`late`) at the next `POST /release`, then ends.
//! - `hold key=value...`: opens `streams` event streams through a proxy, over HTTP/1.1 (one per
//!   connection) or HTTP/2 (`per-conn` on each connection), cleartext or TLS, waits until each
//!   has its `open` event, stays quiet `quiet` seconds, reads the proxy's memory, releases the
//!   late event and checks that every stream delivers it. It prints one line of `key=value`
//!   figures for the script.
//!
//! Loopback only, bounded in count and time: every wait has a timeout.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

const OPEN: &[u8] = b"event: open\ndata: {\"held\":true}\n\n";
const LATE: &[u8] = b"event: late\ndata: {\"after\":\"quiet\"}\n\n";

/// The stand-in's event stream: `open` at once, `late` on release, then the end.
struct Events {
    opened: bool,
    late: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl http_body::Body for Events {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if !self.opened {
            self.opened = true;
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(OPEN)))));
        }
        match self.late.as_mut() {
            Some(late) => {
                std::task::ready!(late.as_mut().poll(cx));
                self.late = None;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(LATE)))))
            }
            None => Poll::Ready(None),
        }
    }
}

/// Serves the stand-in until the process is killed.
pub async fn serve_events(listener: TcpListener) {
    // Each release counts one up; a stream waits for a count past the one it opened at.
    let (release, released) = watch::channel(0u64);
    let release = Arc::new(release);
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let (release, released) = (Arc::clone(&release), released.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let answer = if request.method() == Method::POST && request.uri().path() == "/release" {
                    release.send_modify(|count| *count += 1);
                    let mut done = Response::new(Events { opened: true, late: None });
                    *done.status_mut() = StatusCode::NO_CONTENT;
                    done
                } else {
                    let mut released = released.clone();
                    let at = *released.borrow_and_update();
                    let late = Box::pin(async move {
                        let _ = released.wait_for(|count| *count > at).await;
                    });
                    let mut stream = Response::new(Events { opened: false, late: Some(late) });
                    let h = stream.headers_mut();
                    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
                    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                    stream
                };
                async move { Ok::<_, Infallible>(answer) }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

/// What `hold` is asked to do.
struct Plan {
    url: http::Uri,
    streams: usize,
    /// 1: HTTP/1.1, one stream per connection; more: HTTP/2 with that many on each.
    per_conn: usize,
    token: String,
    /// The CA to trust for TLS to the proxy; `None` is cleartext.
    ca: Option<String>,
    quiet: Duration,
    pids: Vec<u32>,
    release: String,
}

fn plan(args: &[&str]) -> Result<Plan, String> {
    let get = |key: &str| -> Result<String, String> {
        args.iter()
            .find_map(|a| a.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
            .map(str::to_string)
            .ok_or(format!("missing {key}="))
    };
    let num = |v: String| v.parse::<usize>().map_err(|e| format!("{v}: {e}"));
    Ok(Plan {
        url: get("url")?.parse().map_err(|e| format!("url: {e}"))?,
        streams: num(get("streams")?)?,
        per_conn: num(get("per-conn")?)?.max(1),
        token: get("token")?,
        ca: get("ca").ok().filter(|c| c != "-"),
        quiet: Duration::from_secs(num(get("quiet")?)? as u64),
        pids: get("pids")?.split(',').filter_map(|p| p.parse().ok()).collect(),
        release: get("release")?,
    })
}

/// Resident and proportional memory of the processes, in KiB (VmRSS, and Pss from smaps_rollup).
fn memory(pids: &[u32]) -> (u64, u64) {
    let field = |file: String, name: &str| -> u64 {
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    pids.iter().fold((0, 0), |(rss, pss), pid| {
        (rss + field(format!("/proc/{pid}/status"), "VmRSS:"), pss + field(format!("/proc/{pid}/smaps_rollup"), "Pss:"))
    })
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// A connection to the proxy, TLS when the plan says so, offering `alpn`.
async fn connect(plan: &Plan, tls: &Option<tokio_rustls::TlsConnector>) -> Result<Box<dyn Io>, String> {
    let authority = plan.url.authority().ok_or("url has no authority")?.as_str();
    let tcp = TcpStream::connect(authority).await.map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    match tls {
        None => Ok(Box::new(tcp)),
        Some(connector) => {
            let host = plan.url.host().unwrap_or("127.0.0.1").to_string();
            let name = rustls::pki_types::ServerName::try_from(host).map_err(|e| e.to_string())?;
            let tls = connector.connect(name, tcp).await.map_err(|e| format!("tls: {e}"))?;
            Ok(Box::new(tls))
        }
    }
}

fn tls_connector(ca: &str, h2: bool) -> Result<tokio_rustls::TlsConnector, String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).map_err(|e| e.to_string())? {
        roots.add(cert.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![if h2 { b"h2".to_vec() } else { b"http/1.1".to_vec() }];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Sends an MCP client's stream-opening GET and reads until its first event.
async fn open_stream<F>(send: F) -> Result<Incoming, String>
where
    F: Future<Output = hyper::Result<Response<Incoming>>>,
{
    let response = send.await.map_err(|e| format!("request: {e}"))?;
    if response.status() != StatusCode::OK {
        return Err(format!("status {}", response.status()));
    }
    let mut body = response.into_body();
    until(&mut body, b"event: open").await?;
    Ok(body)
}

/// Reads `body` until `marker` has arrived (whole events: up to an empty line after it).
async fn until(body: &mut Incoming, marker: &[u8]) -> Result<(), String> {
    let mut seen = Vec::new();
    loop {
        let frame = body.frame().await.ok_or("the stream ended")?.map_err(|e| format!("stream: {e}"))?;
        if let Some(data) = frame.data_ref() {
            seen.extend_from_slice(data);
            if let Some(at) = seen.windows(marker.len()).position(|w| w == marker) {
                if seen[at..].windows(2).any(|w| w == b"\n\n") {
                    return Ok(());
                }
            }
        }
    }
}

fn request(plan: &Plan, h2: bool) -> Request<Empty<Bytes>> {
    let path = plan.url.path_and_query().map_or("/", |p| p.as_str());
    let mut builder = Request::get(if h2 { plan.url.to_string() } else { path.to_string() });
    if !h2 {
        builder = builder.header(header::HOST, plan.url.authority().map_or("127.0.0.1", |a| a.as_str()));
    }
    builder
        .header(header::ACCEPT, "text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .header(header::AUTHORIZATION, format!("Bearer {}", plan.token))
        .body(Empty::new())
        .expect("a valid request")
}

/// One held connection: its streams' bodies, and what keeps the connection up.
struct Held {
    bodies: Vec<Incoming>,
    _sender: Box<dyn std::any::Any + Send>,
}

async fn hold_h1(plan: Arc<Plan>, tls: Option<tokio_rustls::TlsConnector>) -> Result<Held, String> {
    let io = connect(&plan, &tls).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(connection);
    let body = open_stream(sender.send_request(request(&plan, false))).await?;
    Ok(Held { bodies: vec![body], _sender: Box::new(sender) })
}

async fn hold_h2(plan: Arc<Plan>, tls: Option<tokio_rustls::TlsConnector>, count: usize) -> Result<Held, String> {
    let io = connect(&plan, &tls).await?;
    let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .max_concurrent_reset_streams(0)
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("h2 handshake: {e}"))?;
    tokio::spawn(connection);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..count {
        let (plan, mut sender) = (Arc::clone(&plan), sender.clone());
        tasks.spawn(async move {
            sender.ready().await.map_err(|e| format!("h2 ready: {e}"))?;
            let send = sender.send_request(request(&plan, true));
            open_stream(send).await
        });
    }
    let mut bodies = Vec::with_capacity(count);
    while let Some(done) = tasks.join_next().await {
        bodies.push(done.map_err(|e| e.to_string())??);
    }
    Ok(Held { bodies, _sender: Box::new(sender) })
}

async fn release(url: &str) -> Result<(), String> {
    let url: http::Uri = url.parse().map_err(|e| format!("release: {e}"))?;
    let authority = url.authority().ok_or("release url has no authority")?.as_str();
    let mut tcp = TcpStream::connect(authority).await.map_err(|e| format!("release: {e}"))?;
    let asked =
        format!("POST {} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", url.path());
    tcp.write_all(asked.as_bytes()).await.map_err(|e| format!("release: {e}"))?;
    let mut answer = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut tcp, &mut answer).await.map_err(|e| format!("release: {e}"))?;
    if !answer.starts_with(b"HTTP/1.1 204") {
        return Err(format!("release answered {}", String::from_utf8_lossy(&answer)));
    }
    Ok(())
}

/// Runs `hold`; the figures line, or why not.
pub async fn hold(args: &[&str]) -> Result<String, String> {
    let plan = Arc::new(plan(args)?);
    let h2 = plan.per_conn > 1;
    let tls = plan.ca.as_deref().map(|ca| tls_connector(ca, h2)).transpose()?;
    let (rss_before, pss_before) = memory(&plan.pids);
    let started = Instant::now();
    // A few hundred connections open at once, so the listen backlog never overflows.
    let opening = Arc::new(Semaphore::new(if h2 { 8 } else { 200 }));
    let mut tasks = tokio::task::JoinSet::new();
    let mut left = plan.streams;
    while left > 0 {
        let n = left.min(plan.per_conn);
        left -= n;
        let (plan, tls, opening) = (Arc::clone(&plan), tls.clone(), Arc::clone(&opening));
        tasks.spawn(async move {
            let _permit = opening.acquire_owned().await.map_err(|e| e.to_string())?;
            if h2 {
                hold_h2(plan, tls, n).await
            } else {
                hold_h1(plan, tls).await
            }
        });
    }
    let mut held = Vec::new();
    let opened = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(done) = tasks.join_next().await {
            held.push(done.map_err(|e| e.to_string())??);
        }
        Ok::<_, String>(())
    })
    .await;
    match opened {
        Ok(result) => result?,
        Err(_) => return Err("opening the streams took over 120 s".into()),
    }
    let open_secs = started.elapsed().as_secs_f64();
    let count: usize = held.iter().map(|h| h.bodies.len()).sum();
    if count != plan.streams {
        return Err(format!("{count} streams open of {}", plan.streams));
    }
    tokio::time::sleep(plan.quiet).await;
    let (rss_held, pss_held) = memory(&plan.pids);
    release(&plan.release).await?;
    let mut late = tokio::task::JoinSet::new();
    for mut h in held {
        for mut body in h.bodies.drain(..) {
            late.spawn(async move {
                let got = tokio::time::timeout(Duration::from_secs(60), until(&mut body, b"event: late")).await;
                matches!(got, Ok(Ok(())))
            });
        }
    }
    let mut delivered = 0;
    while let Some(done) = late.join_next().await {
        delivered += usize::from(done.unwrap_or(false));
    }
    Ok(format!(
        "streams={count} delivered={delivered} rss_before_kib={rss_before} rss_held_kib={rss_held} \
         pss_before_kib={pss_before} pss_held_kib={pss_held} open_secs={open_secs:.1}"
    ))
}
