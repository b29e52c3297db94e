//! The edge's own answers: JSON error responses and the header values they share, made from
//! static bytes. Nothing here formats or allocates per request beyond the response's own header
//! map.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;

/// A response the edge makes itself: its whole body in hand.
pub type Answer = Response<Full<Bytes>>;

pub const JSON: HeaderValue = HeaderValue::from_static("application/json");
pub const ANY_ORIGIN: HeaderValue = HeaderValue::from_static("*");
pub const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
pub const RETRY_AFTER: HeaderValue = HeaderValue::from_static("5");
/// How long a browser may reuse a preflight's answer.
pub const PREFLIGHT_MAX_AGE: HeaderValue = HeaderValue::from_static("86400");

const BODY_404: &[u8] = br#"{"error":"not_found","error_description":"No resource is served at this path"}"#;
const BODY_502: &[u8] = br#"{"error":"bad_gateway","error_description":"The MCP server could not be reached"}"#;
const BODY_413: &[u8] =
    br#"{"error":"content_too_large","error_description":"The request body is larger than this server accepts"}"#;
const BODY_504: &[u8] = br#"{"error":"gateway_timeout","error_description":"The MCP server did not answer in time"}"#;

/// A response with `body` and an empty header map of `capacity`, sized so that inserting the
/// answer's fields never grows it (one allocation for the map).
pub fn with_headers(status: StatusCode, body: Bytes, capacity: usize) -> Answer {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    *response.headers_mut() = HeaderMap::with_capacity(capacity);
    response
}

/// A JSON error body with `Content-Type`, `Access-Control-Allow-Origin: *` and `no-store`;
/// `capacity` leaves room for the caller's own fields.
pub fn json_error(status: StatusCode, body: &'static [u8], capacity: usize) -> Answer {
    let mut response = with_headers(status, Bytes::from_static(body), capacity);
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, JSON);
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, ANY_ORIGIN);
    h.insert(header::CACHE_CONTROL, NO_STORE);
    response
}

pub fn not_found() -> Answer {
    json_error(StatusCode::NOT_FOUND, BODY_404, 3)
}

pub fn bad_gateway() -> Answer {
    json_error(StatusCode::BAD_GATEWAY, BODY_502, 3)
}

/// A request body over `--max-body-bytes` (RFC 9110 §15.5.14).
pub fn content_too_large() -> Answer {
    json_error(StatusCode::PAYLOAD_TOO_LARGE, BODY_413, 3)
}

pub fn gateway_timeout() -> Answer {
    json_error(StatusCode::GATEWAY_TIMEOUT, BODY_504, 3)
}

/// A 503 that tells the client to try again shortly.
pub fn unavailable(body: &'static [u8]) -> Answer {
    let mut response = json_error(StatusCode::SERVICE_UNAVAILABLE, body, 4);
    response.headers_mut().insert(header::RETRY_AFTER, RETRY_AFTER);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_are_json_and_not_stored() {
        for (response, status) in [
            (not_found(), 404),
            (bad_gateway(), 502),
            (content_too_large(), 413),
            (gateway_timeout(), 504),
            (unavailable(b"{}"), 503),
        ] {
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
            assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        }
        assert_eq!(unavailable(b"{}").headers()[header::RETRY_AFTER], "5");
    }
}
