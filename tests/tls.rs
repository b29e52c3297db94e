//! TLS on the main listener: handshakes and ALPN for HTTP/2 and HTTP/1.1, TLS 1.2 and 1.3
//! only, start-up refusing a bad pair, and certificate reloads (on file change and on SIGHUP)
//! in the middle of traffic with no failed request. The certificates are made here: one test
//! CA, and server certificates for `localhost` that it signs.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mcp_auth_edge::app::Runtime;
use mcp_auth_edge::config::TlsFiles;
use mcp_auth_edge::serve::tls::{Tls, TlsError};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ProtocolVersion, RootCertStore, SupportedProtocolVersion};
use support::{Edge, Process, Running, TempFile, Upstream, AS_PATH, PATIENCE, PRM_PATH, RESOURCE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

const BOTH: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

// ---------------------------------------------------------------------------------------------
// Certificates

/// A test CA, which the clients trust.
struct Pki {
    ca: CertificateDer<'static>,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

/// A server certificate for `localhost` and its key, as PEM, and the certificate as DER to
/// compare with what a handshake presents.
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

impl Pki {
    fn new() -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "mcp-auth-edge test CA");
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
        let key = rcgen::KeyPair::generate().expect("a CA key");
        let cert = params.self_signed(&key).expect("the CA certificate");
        Pki { ca: cert.der().clone(), issuer: rcgen::Issuer::new(params, key) }
    }

    /// A new key and a certificate for it with this serial number.
    fn leaf(&self, serial: u64) -> Leaf {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("leaf parameters");
        params.serial_number = Some(serial.into());
        params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
        let key = rcgen::KeyPair::generate().expect("a server key");
        let cert = params.signed_by(&key, &self.issuer).expect("a server certificate");
        Leaf { cert_pem: cert.pem(), key_pem: key.serialize_pem(), der: cert.der().clone() }
    }
}

// ---------------------------------------------------------------------------------------------
// The edge and the client

/// The edge serving TLS from `leaf`, written to two files named by `--tls-cert` and
/// `--tls-key`; `tune` may shorten its timings.
struct TlsEdge {
    upstream: Upstream,
    edge: Edge,
    tls: Tls,
    cert: TempFile,
    key: TempFile,
}

impl TlsEdge {
    async fn start(name: &str, leaf: &Leaf, tune: impl FnOnce(&mut TlsFiles)) -> TlsEdge {
        let cert = TempFile::new(&format!("{name}-cert.pem"), &leaf.cert_pem);
        let key = TempFile::new(&format!("{name}-key.pem"), &leaf.key_pem);
        let upstream = Upstream::serving().await;
        let issuer = upstream.issuer();
        let args =
            ["--resource", RESOURCE, "--auth-server", &issuer, "--tls-cert", cert.path(), "--tls-key", key.path()];
        let mut config = support::config(&args);
        tune(config.tls.as_mut().expect("TLS is configured"));
        let runtime = Runtime::build(&config).expect("the pair loads");
        let tls = runtime.tls().expect("TLS is configured").clone();
        let edge = Edge::start_built(config, runtime).await;
        edge.wait_ready().await;
        TlsEdge { upstream, edge, tls, cert, key }
    }

    fn addr(&self) -> SocketAddr {
        self.edge.addr
    }
}

/// A client trusting the test CA, offering `alpn` and speaking only `versions`. Sessions are
/// never resumed, so every handshake shows the certificate in service.
fn client(pki: &Pki, alpn: &[&[u8]], versions: &[&'static SupportedProtocolVersion]) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca.clone()).expect("the test CA is a valid trust anchor");
    let mut config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions)
        .expect("ring speaks TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.resumption = rustls::client::Resumption::disabled();
    TlsConnector::from(Arc::new(config))
}

async fn handshake(connector: &TlsConnector, addr: SocketAddr) -> Result<TlsStream<TcpStream>, String> {
    let exchange = async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
        let name = ServerName::try_from("localhost").expect("a DNS name");
        connector.connect(name, tcp).await.map_err(|e| format!("handshake: {e}"))
    };
    tokio::time::timeout(PATIENCE, exchange).await.map_err(|_| "no handshake in time".to_string())?
}

/// The server certificate a handshake presented.
fn presented(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    let certificates = stream.get_ref().1.peer_certificates().expect("the server presented a certificate");
    certificates[0].clone()
}

fn alpn(stream: &TlsStream<TcpStream>) -> Option<&[u8]> {
    stream.get_ref().1.alpn_protocol()
}

/// An HTTP connection over an established TLS stream, kept open for several requests.
enum Connection {
    H1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
}

/// What a request over TLS got back.
struct Answer {
    status: StatusCode,
    version: Version,
    body: Bytes,
}

impl Connection {
    /// HTTP/2 when ALPN settled on `h2`, else HTTP/1.1.
    async fn open(stream: TlsStream<TcpStream>) -> Connection {
        let h2 = alpn(&stream) == Some(b"h2");
        Connection::open_as(stream, if h2 { Version::HTTP_2 } else { Version::HTTP_11 }).await
    }

    async fn open_as(stream: TlsStream<TcpStream>, version: Version) -> Connection {
        let io = TokioIo::new(stream);
        if version == Version::HTTP_2 {
            let (sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await.expect("HTTP/2 handshake");
            tokio::spawn(connection);
            Connection::H2(sender)
        } else {
            let (sender, connection) = hyper::client::conn::http1::handshake(io).await.expect("HTTP/1.1 handshake");
            tokio::spawn(connection);
            Connection::H1(sender)
        }
    }

    async fn get(&mut self, path: &str) -> Result<Answer, String> {
        let exchange = async {
            let request = Request::get(format!("https://localhost{path}"));
            let response = match self {
                Connection::H1(sender) => {
                    sender.ready().await.map_err(|e| format!("connection: {e}"))?;
                    let request = request.header("host", "localhost").body(Empty::new()).expect("a request");
                    sender.send_request(request).await
                }
                Connection::H2(sender) => sender.send_request(request.body(Empty::new()).expect("a request")).await,
            }
            .map_err(|e| format!("request: {e}"))?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await.map_err(|e| format!("body: {e}"))?.to_bytes();
            Ok(Answer { status: parts.status, version: parts.version, body })
        };
        tokio::time::timeout(PATIENCE, exchange).await.map_err(|_| format!("no answer to {path} in time"))?
    }
}

/// One request on a new connection; the certificate its handshake presented, and the answer.
async fn fresh_get(
    connector: &TlsConnector,
    addr: SocketAddr,
    path: &str,
) -> Result<(CertificateDer<'static>, Answer), String> {
    let stream = handshake(connector, addr).await?;
    let certificate = presented(&stream);
    let answer = Connection::open(stream).await.get(path).await?;
    Ok((certificate, answer))
}

// ---------------------------------------------------------------------------------------------
// Handshakes, ALPN and versions

#[tokio::test]
async fn alpn_picks_http2_or_http11() {
    let pki = Pki::new();
    let leaf = pki.leaf(1);
    let edge = TlsEdge::start("alpn", &leaf, |_| {}).await;
    let document = edge.upstream.metadata(1);

    // Each offer, the protocol ALPN settles on, and the HTTP version the request goes over.
    type Offer = (&'static [&'static [u8]], Option<&'static [u8]>, Version);
    let offers: [Offer; 4] = [
        (&[b"h2"], Some(b"h2"), Version::HTTP_2),
        (&[b"http/1.1"], Some(b"http/1.1"), Version::HTTP_11),
        // Both offered, the client preferring HTTP/1.1: the server's order wins.
        (&[b"http/1.1", b"h2"], Some(b"h2"), Version::HTTP_2),
        // No ALPN at all: HTTP/1.1, told from the first bytes as on cleartext.
        (&[], None, Version::HTTP_11),
    ];
    for (offer, settled, version) in offers {
        let stream = handshake(&client(&pki, offer, BOTH), edge.addr()).await.unwrap();
        assert_eq!(alpn(&stream), settled, "offer {offer:?}");
        assert_eq!(presented(&stream), leaf.der);
        let mut connection = Connection::open(stream).await;
        for path in [AS_PATH, AS_PATH, PRM_PATH] {
            let answer = connection.get(path).await.unwrap();
            assert_eq!((answer.status, answer.version), (StatusCode::OK, version), "offer {offer:?} {path}");
        }
        assert_eq!(connection.get(AS_PATH).await.unwrap().body, document);
    }

    // No ALPN and the HTTP/2 preface: prior knowledge over TLS works too.
    let stream = handshake(&client(&pki, &[], BOTH), edge.addr()).await.unwrap();
    let answer = Connection::open_as(stream, Version::HTTP_2).await.get(AS_PATH).await.unwrap();
    assert_eq!((answer.status, answer.version), (StatusCode::OK, Version::HTTP_2));
    assert_eq!(answer.body, document);

    // Only protocols the edge does not speak: refused in the handshake (RFC 7301 §3.2).
    let refused = handshake(&client(&pki, &[b"h3", b"spdy/3"], BOTH), edge.addr()).await;
    assert!(refused.unwrap_err().contains("NoApplicationProtocol"));
}

#[tokio::test]
async fn tls_12_and_13_are_spoken_and_older_versions_refused() {
    let pki = Pki::new();
    let edge = TlsEdge::start("versions", &pki.leaf(1), |_| {}).await;
    for (version, negotiated) in
        [(&rustls::version::TLS12, ProtocolVersion::TLSv1_2), (&rustls::version::TLS13, ProtocolVersion::TLSv1_3)]
    {
        let stream = handshake(&client(&pki, &[b"h2", b"http/1.1"], &[version]), edge.addr()).await.unwrap();
        assert_eq!(stream.get_ref().1.protocol_version(), Some(negotiated));
        assert_eq!(Connection::open(stream).await.get(PRM_PATH).await.unwrap().status, StatusCode::OK);
    }

    // rustls cannot speak TLS 1.0 or 1.1, so these are hand-made ClientHellos from clients
    // that know nothing newer. One as such clients send it is refused with a fatal alert
    // (handshake_failure: it lacks the signature_algorithms extension TLS 1.2 brought); one
    // with that extension gets as far as the version check, and protocol_version.
    for legacy in [[3, 1], [3, 2]] {
        let alert = legacy_hello(edge.addr(), legacy, false).await;
        assert_eq!(alert[0], 0x15, "an alert record, not {alert:?}");
        assert_eq!(alert[5], 2, "a fatal alert for version {legacy:?}");
        let alert = legacy_hello(edge.addr(), legacy, true).await;
        assert_eq!((alert[0], alert[5], alert[6]), (0x15, 2, 70), "protocol_version for {legacy:?}");
    }
}

/// Sends a ClientHello for `version` (TLS 1.0 is `[3, 1]`) without the supported_versions
/// extension, offering two CBC suites of that era and, if asked, the signature_algorithms
/// extension; returns the first seven bytes back, an alert record.
async fn legacy_hello(addr: SocketAddr, version: [u8; 2], signature_algorithms: bool) -> [u8; 7] {
    let mut body = Vec::new();
    body.extend_from_slice(&version);
    body.extend_from_slice(&[0x2a; 32]); // random
    body.push(0); // no session id
    body.extend_from_slice(&[0, 4, 0xc0, 0x13, 0x00, 0x2f]); // ECDHE-RSA- and RSA-AES128-SHA
    body.extend_from_slice(&[1, 0]); // null compression only
    if signature_algorithms {
        // Extensions (10 bytes): signature_algorithms, rsa_pkcs1_sha256 and ecdsa_secp256r1_sha256.
        body.extend_from_slice(&[0, 10, 0, 0x0d, 0, 6, 0, 4, 4, 1, 4, 3]);
    }
    let mut handshake = vec![1, 0, 0, body.len() as u8]; // client_hello, 24-bit length
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, version[0], version[1], 0, handshake.len() as u8];
    record.extend_from_slice(&handshake);

    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(&record).await.expect("send the ClientHello");
    let mut alert = [0u8; 7];
    tokio::time::timeout(PATIENCE, stream.read_exact(&mut alert)).await.expect("an answer in time").expect("an alert");
    alert
}

/// Connections that say nothing, or half a ClientHello, and wait.
async fn stalled(addr: SocketAddr) -> Vec<TcpStream> {
    let mut stalled = Vec::new();
    for _ in 0..3 {
        stalled.push(TcpStream::connect(addr).await.expect("connect"));
        let mut half = TcpStream::connect(addr).await.expect("connect");
        half.write_all(&[0x16, 3, 1, 0, 200, 1, 0]).await.expect("write");
        stalled.push(half);
    }
    stalled
}

#[tokio::test]
async fn stalled_handshakes_hold_up_no_one() {
    let pki = Pki::new();
    let edge = TlsEdge::start("stalled", &pki.leaf(1), |_| {}).await;
    let _stalled = stalled(edge.addr()).await;
    // Meanwhile others are served at once: handshakes run on the connections' own tasks.
    let connector = client(&pki, &[b"h2"], BOTH);
    for _ in 0..3 {
        let (_, answer) = fresh_get(&connector, edge.addr(), AS_PATH).await.unwrap();
        assert_eq!(answer.status, StatusCode::OK);
    }
    // Shutdown drops them rather than wait out the handshake timeout.
    let started = std::time::Instant::now();
    edge.edge.stop().await.expect("run returns Ok");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn a_handshake_that_does_not_finish_in_time_is_dropped() {
    let pki = Pki::new();
    let timeout = Duration::from_millis(500);
    let edge = TlsEdge::start("handshake-timeout", &pki.leaf(1), |tls| tls.handshake_timeout = timeout).await;
    let started = tokio::time::Instant::now();
    let stalled = stalled(edge.addr()).await;
    // A connection that finished its handshake is not bound by the timeout.
    let stream = handshake(&client(&pki, &[b"http/1.1"], BOTH), edge.addr()).await.unwrap();
    let mut served = Connection::open(stream).await;

    for mut connection in stalled {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(PATIENCE, connection.read(&mut buf)).await.expect("closed in time");
        // Closed: an end of file, or a reset for the one with unread bytes.
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    assert!(started.elapsed() >= timeout, "closed after {:?}", started.elapsed());
    assert_eq!(served.get(AS_PATH).await.unwrap().status, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// Reloading

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_reload_mid_traffic_fails_no_request() {
    let pki = Pki::new();
    let (old, new) = (pki.leaf(1), pki.leaf(2));
    let edge = TlsEdge::start("reload", &old, |tls| tls.poll = Duration::from_millis(50)).await;
    let addr = edge.addr();
    let stop = Arc::new(AtomicBool::new(false));

    // One kept-alive connection per protocol, opened on the old certificate, asking in a loop.
    let mut kept = Vec::new();
    for protocol in [&b"h2"[..], b"http/1.1"] {
        let stream = handshake(&client(&pki, &[protocol], BOTH), addr).await.unwrap();
        assert_eq!(presented(&stream), old.der);
        let mut connection = Connection::open(stream).await;
        let stop = Arc::clone(&stop);
        kept.push(tokio::spawn(async move {
            let mut answered = 0;
            while !stop.load(Ordering::Relaxed) {
                let answer = connection.get(AS_PATH).await.expect("a request on the kept-alive connection");
                assert_eq!(answer.status, StatusCode::OK);
                answered += 1;
            }
            (connection, answered)
        }));
    }
    // And a loop of new connections, one request each, noting which certificate each got.
    let fresh = {
        let (stop, connector, new) = (Arc::clone(&stop), client(&pki, &[b"h2", b"http/1.1"], BOTH), new.der.clone());
        tokio::spawn(async move {
            let mut got_new = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let (certificate, answer) = fresh_get(&connector, addr, PRM_PATH).await.expect("a new connection");
                assert_eq!(answer.status, StatusCode::OK);
                got_new.push(certificate == new);
            }
            got_new
        })
    };

    tokio::time::sleep(Duration::from_millis(200)).await;
    // Replaced in place the way a careless script does it: the certificate first, so for a
    // while the pair on disk does not match (several polls see it), then the key.
    std::fs::write(&edge.cert.path, &new.cert_pem).expect("write the new certificate");
    tokio::time::sleep(Duration::from_millis(200)).await;
    std::fs::write(&edge.key.path, &new.key_pem).expect("write the new key");
    let connector = client(&pki, &[b"http/1.1"], BOTH);
    support::wait_until("new handshakes to present the new certificate", || async {
        fresh_get(&connector, addr, AS_PATH).await.expect("a request while reloading").0 == new.der
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);

    let got_new = fresh.await.expect("the new-connection loop did not fail");
    let switched = got_new.iter().position(|&is_new| is_new).expect("some handshakes got the new certificate");
    assert!(switched > 0, "some handshakes got the old certificate first");
    assert!(got_new[switched..].iter().all(|&is_new| is_new), "never back to the old one: {got_new:?}");
    for task in kept {
        let (mut connection, answered) = task.await.expect("the kept-alive loop did not fail");
        assert!(answered > 10, "only {answered} requests");
        // Still the connection of the old certificate, still serving.
        assert_eq!(connection.get(PRM_PATH).await.unwrap().status, StatusCode::OK);
    }
}

#[tokio::test]
async fn a_bad_replacement_keeps_the_certificate_in_service() {
    let pki = Pki::new();
    let (old, new) = (pki.leaf(1), pki.leaf(2));
    let edge = TlsEdge::start("bad-reload", &old, |tls| tls.poll = Duration::from_millis(50)).await;
    let connector = client(&pki, &[b"h2"], BOTH);

    // A key that is not the certificate's, then a certificate file that is not PEM: each
    // refused, on request and by the polls that follow, and the old pair stays in service.
    std::fs::write(&edge.key.path, &new.key_pem).expect("write a key");
    assert_eq!(edge.tls.reload().await, Err(TlsError::KeyMismatch));
    std::fs::write(&edge.cert.path, "-----BEGIN CERTIFICATE-----\nMIIB").expect("write half a certificate");
    assert!(matches!(edge.tls.reload().await, Err(TlsError::NotPem { .. })));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(edge.tls.current().cert[0], old.der);
    let (certificate, answer) = fresh_get(&connector, edge.addr(), AS_PATH).await.unwrap();
    assert_eq!((certificate, answer.status), (old.der.clone(), StatusCode::OK));

    // The certificate completed: the next poll finds a good pair and puts it in service.
    std::fs::write(&edge.cert.path, &new.cert_pem).expect("write the certificate");
    support::wait_until("the completed pair to be in service", || async {
        fresh_get(&connector, edge.addr(), AS_PATH).await.unwrap().0 == new.der
    })
    .await;
}

#[tokio::test]
async fn sighup_reloads_the_certificate_of_the_binary() {
    let pki = Pki::new();
    let (old, new) = (pki.leaf(1), pki.leaf(2));
    // Both pairs padded to the same lengths (PEM ignores text outside its sections), and the
    // new files given the old modification times below: to the poll they look unchanged, so
    // only SIGHUP can bring the new pair in.
    let pad = |pem: &str| format!("{pem:<4096}");
    let cert = TempFile::new("sighup-cert.pem", &pad(&old.cert_pem));
    let key = TempFile::new("sighup-key.pem", &pad(&old.key_pem));
    let upstream = Upstream::serving().await;
    let mut running = Running::start(&upstream, &["--tls-cert", cert.path(), "--tls-key", key.path()]).await;
    let connector = client(&pki, &[b"h2", b"http/1.1"], BOTH);
    let stream = handshake(&connector, running.addr).await.unwrap();
    assert_eq!(presented(&stream), old.der);
    let mut kept = Connection::open(stream).await;
    assert_eq!(kept.get(AS_PATH).await.unwrap().body, upstream.metadata(1));

    for (file, pem) in [(&cert, &new.cert_pem), (&key, &new.key_pem)] {
        let before = std::fs::metadata(&file.path).expect("stat");
        std::fs::write(&file.path, pad(pem)).expect("rewrite in place");
        let handle = std::fs::File::options().write(true).open(&file.path).expect("open");
        handle.set_modified(before.modified().expect("a modification time")).expect("set the time back");
        let after = std::fs::metadata(&file.path).expect("stat");
        assert_eq!((after.len(), after.modified().ok()), (before.len(), before.modified().ok()));
    }
    assert_eq!(fresh_get(&connector, running.addr, AS_PATH).await.unwrap().0, old.der, "no reload yet");

    running.process.signal("HUP");
    support::wait_until("SIGHUP to bring in the new certificate", || async {
        fresh_get(&connector, running.addr, AS_PATH).await.unwrap().0 == new.der
    })
    .await;
    // The connection from before the reload was not dropped.
    assert_eq!(kept.get(PRM_PATH).await.unwrap().status, StatusCode::OK);

    // SIGTERM still drains and exits 0 after a SIGHUP.
    running.process.signal("TERM");
    let status = running.process.wait_exit(Duration::from_secs(10)).await;
    let stderr = running.process.stderr();
    assert!(status.success(), "{status:?}: {stderr}");
    assert!(stderr.contains("SIGHUP: reloading the TLS certificate"), "{stderr}");
    assert!(stderr.contains("TLS certificate reloaded from"), "{stderr}");
}

// ---------------------------------------------------------------------------------------------
// Start-up

/// Runs the binary, which must stop at once with exit code 2 and one line naming `names`.
async fn refuses(args: &[&str], names: &[&str]) {
    let base = ["--resource", RESOURCE, "--auth-server", "https://auth.example.com"];
    let args: Vec<&str> = base.iter().chain(args).copied().collect();
    let mut process = Process::spawn(&args, &[]);
    let status = process.wait_exit(Duration::from_secs(10)).await;
    let stderr = process.stderr();
    assert_eq!(status.code(), Some(2), "{args:?}: {stderr:?}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    for name in names {
        assert!(stderr.contains(name), "{stderr:?} should name {name}");
    }
}

#[tokio::test]
async fn start_up_refuses_a_bad_pair_naming_the_flag() {
    let pki = Pki::new();
    let (one, two) = (pki.leaf(1), pki.leaf(2));
    let cert = TempFile::new("startup-cert.pem", &one.cert_pem);
    let key = TempFile::new("startup-key.pem", &one.key_pem);
    let other_key = TempFile::new("startup-other-key.pem", &two.key_pem);
    let not_pem = TempFile::new("startup-not-pem.pem", "hello\n");

    let mismatch = ["--tls-cert", cert.path(), "--tls-key", other_key.path()];
    refuses(&mismatch, &["--tls-key", other_key.path(), "not the private key of the certificate"]).await;
    refuses(&["--tls-cert", not_pem.path(), "--tls-key", key.path()], &["--tls-cert", "no PEM certificate"]).await;
    refuses(&["--tls-cert", cert.path(), "--tls-key", cert.path()], &["--tls-key", "no PEM private key"]).await;
    refuses(&["--tls-cert", "/nonexistent/cert.pem", "--tls-key", key.path()], &["--tls-cert", "cannot be read"]).await;
    refuses(&["--tls-cert", cert.path()], &["--tls-key is required by --tls-cert"]).await;
}
