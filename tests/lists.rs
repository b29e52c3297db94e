//! Lists filtered by permission (issue 12) over real sockets: the MCP server's answers to
//! `tools/list` and `resources/list`, as JSON and as SSE, lose the entries the caller's token
//! could not use, are marked private, and pass byte for byte when nothing is removed. A list
//! larger than the bound, or compressed, is refused with a JSON-RPC error, never passed.
//!
//! The MCP server stand-in here answers each list with fixed bytes, in the form the request's
//! `x-answer` header asks for, and records what reached it.

mod support;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use support::jwt::{auth_server, claims, Signer};
use support::{Edge, Reply, TempFile, Upstream, PATIENCE};
use tokio::net::{TcpListener, TcpStream};

/// The tools list as the MCP server sends it: odd spacing, an escape and a number written as
/// it is, so that any re-serialisation would show.
const TOOLS: &str = r#"{"tools": [{"name":"read_file","description":"Reads a file \u00e9","inputSchema":{"type":"object"},"n":1.50},
 {"name":"write_file","inputSchema":{"type":"object"}},{"name":"admin_reset","inputSchema":{"type":"object"}}], "ttlMs":60000,"cacheScope":"public"}"#;

const RESOURCES: &str =
    r#"{"resources":[{"uri":"file:///public/a.txt","name":"a"},{"uri":"file:///secret/b.txt","name":"b"}]}"#;

const NOTE: &str = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"listing\"}}\n\n";

fn policy() -> Value {
    json!({"default": "deny",
        "implies": {"mcp:admin": ["mcp:write"]},
        "rules": [
            {"method": "tools/list"},
            {"method": "resources/list"},
            {"method": "tools/call", "name": "read_*", "scopes": ["mcp:read"]},
            {"method": "tools/call", "name": "write_*", "scopes": ["mcp:write"]},
            {"method": "tools/call", "name": "admin_*", "scopes": ["mcp:admin"]},
            {"method": "resources/read", "uri_prefix": "file:///public/", "scopes": ["mcp:read"]}]})
}

/// A request as the stand-in saw it.
#[derive(Clone)]
struct Seen {
    headers: HeaderMap,
}

/// The MCP server stand-in: every answer's exact bytes are what [`answer_bytes`] makes.
struct Server {
    url: String,
    log: Arc<Mutex<Vec<Seen>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Server {
    async fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let serving = Arc::clone(&log);
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let log = Arc::clone(&serving);
                let service = service_fn(move |request| answer(Arc::clone(&log), request));
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        Server { url, log, accept }
    }

    fn seen(&self) -> Vec<Seen> {
        self.log.lock().expect("log").clone()
    }
}

/// The answer's body in pieces, one frame each, so events cross frame boundaries.
struct Chunks(VecDeque<Bytes>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.get_mut().0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

/// One JSON-RPC message's answer: a list's result for a list, an echo otherwise.
fn reply_to(message: &Value, pad: usize) -> String {
    let id = message["id"].to_string();
    let result = match message["method"].as_str() {
        Some("tools/list") if pad > 0 => {
            TOOLS.replacen("\"ttlMs\"", &format!("\"pad\":\"{}\",\"ttlMs\"", "x".repeat(pad)), 1)
        }
        Some("tools/list") => TOOLS.to_string(),
        Some("resources/list") => RESOURCES.to_string(),
        _ => json!({"echo": message}).to_string(),
    };
    format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#)
}

/// What the stand-in sends for a request body, in the form `x-answer` names: `json` (the
/// default), `sse` (a notification, then the answer split across frames), `big` (JSON larger
/// than the tests' bound), `big-sse`, `gzip` (claimed compressed).
fn answer_bytes(form: &str, body: &[u8]) -> (&'static str, Vec<Bytes>) {
    let message: Value = serde_json::from_slice(body).unwrap_or_default();
    let pad = if form.starts_with("big") { 4096 } else { 0 };
    let text = match &message {
        Value::Array(batch) => format!("[{}]", batch.iter().map(|m| reply_to(m, pad)).collect::<Vec<_>>().join(",")),
        one => reply_to(one, pad),
    };
    match form {
        "sse" | "big-sse" => {
            // A line break in the JSON starts another data line.
            let event = format!("id: 7\ndata: {}\n\n", text.replace('\n', "\ndata: "));
            let (a, b) = event.split_at(event.len() / 2);
            let pieces = [NOTE.to_string(), a.to_string(), b.to_string()];
            ("text/event-stream", pieces.into_iter().map(Bytes::from).collect())
        }
        _ => ("application/json", vec![Bytes::from(text)]),
    }
}

async fn answer(log: Arc<Mutex<Vec<Seen>>>, request: Request<Incoming>) -> Result<Response<Chunks>, Infallible> {
    log.lock().expect("log").push(Seen { headers: request.headers().clone() });
    let form = request.headers().get("x-answer").and_then(|v| v.to_str().ok()).unwrap_or("json").to_string();
    // A GET replays the answer to an earlier list request, as a stream.
    let (form, body) = match request.method() {
        &http::Method::GET => ("sse".to_string(), Bytes::from_static(LIST.as_bytes())),
        _ => (form, request.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default()),
    };
    let (content_type, pieces) = answer_bytes(&form, &body);
    let mut response = Response::new(Chunks(pieces.into()));
    response.headers_mut().insert("content-type", HeaderValue::from_static(content_type));
    if form == "gzip" {
        response.headers_mut().insert("content-encoding", HeaderValue::from_static("gzip"));
    }
    Ok(response)
}

struct Setup {
    auth: Upstream,
    key: Signer,
    mcp: Server,
    edge: Edge,
    _file: TempFile,
}

impl Setup {
    async fn new(name: &str, file: Value) -> Setup {
        let key = Signer::ed25519("k1");
        let auth = auth_server(&[&key]).await;
        let mcp = Server::start().await;
        let file = TempFile::new(&format!("lists-{name}.json"), &file.to_string());
        let edge = Edge::ready_for(&auth, &["--upstream", mcp.url.as_str(), "--config", file.path()]).await;
        Setup { auth, key, mcp, edge, _file: file }
    }

    async fn with_policy(name: &str) -> Setup {
        Setup::new(name, json!({"policy": policy(), "max_inspect_bytes": 2048})).await
    }

    fn token(&self, scope: &str) -> String {
        let mut claims = claims(&self.auth.issuer());
        claims["scope"] = Value::from(scope);
        format!("Bearer {}", self.key.sign(&claims))
    }

    /// One POST to `/mcp`, the stand-in answering in `form`.
    async fn post(&self, token: &str, form: &str, body: &str) -> Reply {
        let request = Request::post("/mcp")
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("accept-encoding", "gzip, br")
            .header("x-answer", form)
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        self.send(token, request).await
    }

    async fn send(&self, token: &str, mut request: Request<Full<Bytes>>) -> Reply {
        let h = request.headers_mut();
        h.insert("host", HeaderValue::try_from(self.edge.addr.to_string()).unwrap());
        h.insert("authorization", HeaderValue::try_from(token).unwrap());
        let exchange = async {
            let stream = TcpStream::connect(self.edge.addr).await.expect("connect");
            let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
            tokio::spawn(connection);
            let response = sender.send_request(request).await.unwrap();
            let (parts, body) = response.into_parts();
            let body = body.collect().await.expect("a body").to_bytes();
            Reply { status: parts.status, version: parts.version, headers: parts.headers, body }
        };
        tokio::time::timeout(PATIENCE, exchange).await.expect("an answer")
    }
}

const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#;

fn names(result: &Value) -> Vec<&str> {
    result["tools"].as_array().expect("tools").iter().map(|t| t["name"].as_str().expect("a name")).collect()
}

/// The data of the SSE event answering the list.
fn list_event(text: &str) -> Value {
    let event = text.split("\n\n").find(|e| e.contains("\"id\":")).expect("the answer's event");
    let data: Vec<&str> = event.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    serde_json::from_str(&data.join("\n")).expect("JSON data")
}

#[tokio::test]
async fn a_json_list_loses_what_the_token_cannot_call_and_is_marked_private() {
    let s = Setup::with_policy("json").await;
    let reply = s.post(&s.token("mcp:read"), "json", LIST).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body = reply.json();
    assert_eq!(names(&body["result"]), ["read_file"]);
    assert_eq!(body["result"]["cacheScope"], "private");
    assert_eq!(body["result"]["ttlMs"], 60000);
    assert_eq!(reply.header("content-type"), "application/json");
    assert_eq!(reply.header("content-length"), reply.body.len().to_string());
    assert_eq!(reply.header("cache-control"), "private");
    let vary: Vec<_> = reply.headers.get_all("vary").iter().map(|v| v.to_str().unwrap()).collect();
    assert!(vary.contains(&"Authorization"), "{vary:?}");
    // What stays is the MCP server's text: the escape and the number as they were written.
    assert!(reply.text().contains(r#""description":"Reads a file \u00e9","inputSchema":{"type":"object"},"n":1.50}"#));
    // The answer had to come uncompressed to be read.
    assert_eq!(s.mcp.seen()[0].headers.get("accept-encoding"), None);
    // Calls are decided either way.
    let call = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"admin_reset"}}"#;
    assert_eq!(s.post(&s.token("mcp:read"), "json", call).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_token_that_may_use_everything_gets_the_servers_bytes() {
    let s = Setup::with_policy("admin").await;
    let reply = s.post(&s.token("mcp:read mcp:admin"), "json", LIST).await;
    assert_eq!(reply.status, StatusCode::OK);
    let (_, sent) = answer_bytes("json", LIST.as_bytes());
    assert_eq!(reply.body, sent[0], "byte-identical");
    assert_eq!(names(&reply.json()["result"]), ["read_file", "write_file", "admin_reset"]);
    assert_eq!(reply.header("cache-control"), "private", "the list still depends on the token");
    // mcp:admin implies mcp:write, not mcp:read.
    let reply = s.post(&s.token("mcp:admin"), "json", LIST).await;
    assert_eq!(names(&reply.json()["result"]), ["write_file", "admin_reset"]);
}

#[tokio::test]
async fn an_sse_answer_has_only_the_lists_event_rewritten() {
    let s = Setup::with_policy("sse").await;
    let reply = s.post(&s.token("mcp:read"), "sse", LIST).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), "text/event-stream");
    assert_eq!(reply.header("cache-control"), "private");
    let text = reply.text();
    assert!(text.starts_with(NOTE), "the notification passes as it came: {text:?}");
    assert!(text.contains("\nid: 7\n"), "the event's other fields are kept: {text:?}");
    let answer = list_event(&text);
    assert_eq!(answer["id"], 1);
    assert_eq!(names(&answer["result"]), ["read_file"]);
    assert_eq!(answer["result"]["cacheScope"], "private");
    // Nothing removed: every byte as the MCP server sent it.
    let reply = s.post(&s.token("mcp:read mcp:admin"), "sse", LIST).await;
    let (_, sent) = answer_bytes("sse", LIST.as_bytes());
    assert_eq!(reply.body, sent.concat(), "byte-identical");
}

#[tokio::test]
async fn a_list_asked_for_in_the_headers_of_2026_07_28_is_filtered_too() {
    let s = Setup::with_policy("headers").await;
    let list = r#"{"jsonrpc":"2.0","id":"l","method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
    for form in ["json", "sse"] {
        let request = Request::post("/mcp")
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/list")
            .header("x-answer", form)
            .body(Full::new(Bytes::from(list)))
            .unwrap();
        let reply = s.send(&s.token("mcp:read"), request).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let answer = if form == "json" { reply.json() } else { list_event(&reply.text()) };
        assert_eq!(answer["id"], "l");
        assert_eq!(names(&answer["result"]), ["read_file"], "{form}");
    }
}

#[tokio::test]
async fn a_list_over_the_bound_is_refused_not_passed() {
    let s = Setup::with_policy("bound").await;
    let token = s.token("mcp:read mcp:admin");
    let reply = s.post(&token, "big", LIST).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), "application/json");
    let body = reply.json();
    assert_eq!(body["id"], 1);
    assert_eq!(body["error"]["code"], -32603);
    assert_eq!(
        body["error"]["message"],
        "The edge cannot filter this list by the resource's policy: the answer is larger than 2048 bytes"
    );
    assert!(!reply.text().contains("read_file"));
    // As an event stream: what came before passes, then the error ends the stream.
    let reply = s.post(&token, "big-sse", LIST).await;
    let text = reply.text();
    assert!(text.starts_with(NOTE), "{text:?}");
    assert!(!text.contains("read_file"), "{text:?}");
    assert_eq!(list_event(&text)["error"]["code"], -32603);
    // Compressed, it cannot be read either.
    let reply = s.post(&token, "gzip", LIST).await;
    assert_eq!(reply.json()["error"]["code"], -32603);
    assert!(reply.headers.get("content-encoding").is_none());
}

#[tokio::test]
async fn a_batch_has_its_list_filtered_and_the_rest_kept() {
    let s = Setup::with_policy("batch").await;
    let batch = r#"[{"jsonrpc":"2.0","id":"r","method":"resources/list"},
        {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"read_file"}},
        {"jsonrpc":"2.0","id":3,"method":"tools/list"}]"#;
    let reply = s.post(&s.token("mcp:read"), "json", batch).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body[0]["id"], "r");
    assert_eq!(body[0]["result"]["resources"], json!([{"uri": "file:///public/a.txt", "name": "a"}]));
    assert_eq!(body[1]["result"]["echo"]["params"]["name"], "read_file");
    assert_eq!(names(&body[2]["result"]), ["read_file"]);
}

#[tokio::test]
async fn a_replayed_stream_is_filtered_by_the_shape_of_its_answers() {
    let s = Setup::with_policy("replay").await;
    let resume = Request::get("/mcp")
        .header("accept", "text/event-stream")
        .header("last-event-id", "6")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let reply = s.send(&s.token("mcp:read"), resume).await;
    assert_eq!(reply.status, StatusCode::OK);
    let text = reply.text();
    assert!(text.starts_with(NOTE), "{text:?}");
    assert_eq!(names(&list_event(&text)["result"]), ["read_file"]);
    assert_eq!(reply.header("cache-control"), "private");
}

#[tokio::test]
async fn without_a_policy_lists_pass_unread() {
    let s = Setup::new("none", json!({"max_inspect_bytes": 16})).await;
    let reply = s.post(&s.token("mcp:read"), "json", LIST).await;
    let (_, sent) = answer_bytes("json", LIST.as_bytes());
    assert_eq!(reply.body, sent[0]);
    assert!(reply.headers.get("cache-control").is_none());
    assert_eq!(s.mcp.seen()[0].headers.get("accept-encoding").map(|v| v.to_str().unwrap()), Some("gzip, br"));
}
