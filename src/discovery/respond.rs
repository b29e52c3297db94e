//! The discovery answers: the documents from their snapshots, their preflight and the 405,
//! built from header values made at start-up.
//!
//! Nothing here formats or allocates per request beyond the response's own header map: bodies
//! are `Bytes` (static or reference-counted) and header values are static or cloned handles.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::StatusCode;

use crate::common::answer::{self, json_error, with_headers, Answer, ANY_ORIGIN, JSON, PREFLIGHT_MAX_AGE};
use crate::common::conditional::if_none_match;
use crate::discovery::snapshot::Document;

const DOC_METHODS: HeaderValue = HeaderValue::from_static("GET, HEAD, OPTIONS");
/// Asked for when a preflight names no headers; covers what MCP clients send on discovery.
const DEFAULT_ALLOW_HEADERS: HeaderValue = HeaderValue::from_static("Accept, Content-Type, MCP-Protocol-Version");
const VARY_PREFLIGHT: HeaderValue = HeaderValue::from_static("Access-Control-Request-Headers");

pub const BODY_405: &[u8] =
    br#"{"error":"method_not_allowed","error_description":"This endpoint allows only GET, HEAD and OPTIONS"}"#;
pub const BODY_503: &[u8] = br#"{"error":"temporarily_unavailable","error_description":"The authorization server metadata has not been fetched yet"}"#;

/// Header values derived from the configuration, made once.
pub struct Headers {
    cache_control: HeaderValue,
}

impl Headers {
    pub fn new(cache_max_age: u32) -> Headers {
        let cache_control = HeaderValue::try_from(format!("public, max-age={cache_max_age}"))
            .expect("digits and ASCII text make a valid header value");
        Headers { cache_control }
    }
}

/// A document, or `304` when the client's `If-None-Match` names its entity tag; `HEAD` leaves
/// the body out.
pub fn document(headers: &Headers, doc: &Document, head: bool, request: &HeaderMap) -> Answer {
    let not_modified =
        request.get(header::IF_NONE_MATCH).is_some_and(|v| if_none_match(v.as_bytes(), doc.etag.as_bytes()));
    let (status, body) = if not_modified {
        (StatusCode::NOT_MODIFIED, Bytes::new())
    } else if head {
        (StatusCode::OK, Bytes::new())
    } else {
        (StatusCode::OK, doc.body.clone())
    };
    let mut response = with_headers(status, body, 5);
    let h = response.headers_mut();
    h.insert(header::ETAG, doc.etag.clone());
    h.insert(header::CACHE_CONTROL, headers.cache_control.clone());
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, ANY_ORIGIN);
    if status == StatusCode::OK {
        h.insert(header::CONTENT_TYPE, JSON);
    }
    if head && !not_modified {
        // HEAD reports the length of the body it leaves out (RFC 9110 §9.3.2); for GET hyper
        // derives it from the body, more cheaply than it re-reads a header set here.
        h.insert(header::CONTENT_LENGTH, doc.content_length.clone());
    }
    response
}

/// The answer to a preflight on a document: they are public, so anything may be asked.
pub fn preflight(request: &HeaderMap) -> Answer {
    let mut response = with_headers(StatusCode::NO_CONTENT, Bytes::new(), 6);
    let h = response.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, ANY_ORIGIN);
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, DOC_METHODS);
    // The documents are public and carry no credentials, so any header the client wants to
    // send may be sent: echo the request's list (MCP clients add MCP-Protocol-Version).
    match request.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        Some(asked) => {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
            h.insert(header::VARY, VARY_PREFLIGHT);
        }
        None => {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, DEFAULT_ALLOW_HEADERS);
        }
    }
    h.insert(header::ACCESS_CONTROL_MAX_AGE, PREFLIGHT_MAX_AGE);
    h.insert(header::ALLOW, DOC_METHODS);
    response
}

/// A method other than `GET`, `HEAD` and `OPTIONS` on a document.
pub fn method_not_allowed() -> Answer {
    let mut response = json_error(StatusCode::METHOD_NOT_ALLOWED, BODY_405, 4);
    response.headers_mut().insert(header::ALLOW, DOC_METHODS);
    response
}

/// The relayed document before the first good fetch.
pub fn unavailable() -> Answer {
    answer::unavailable(BODY_503)
}
