//! The operation a request announces in its headers (MCP revision 2026-07-28), and whether
//! its body agrees.
//!
//! From the specification, `docs/specification/2026-07-28/basic/transports/streamable-http.mdx`
//! in modelcontextprotocol/modelcontextprotocol, section "Request Metadata":
//! - every POST carries `MCP-Protocol-Version`, equal to the body's
//!   `params._meta["io.modelcontextprotocol/protocolVersion"]` ("Protocol Version Header");
//! - `Mcp-Method` mirrors `method`, and `Mcp-Name` mirrors `params.name` (`tools/call`,
//!   `prompts/get`) or `params.uri` (`resources/read`) ("Standard Request Headers");
//! - a value that is not plain header-safe ASCII (non-ASCII, control characters, leading or
//!   trailing whitespace), or that itself looks like `=?base64?…?=`, travels as
//!   `=?base64?{Base64 of its UTF-8}?=`; the markers are lowercase and case-sensitive, and a
//!   value is decoded before it is compared ("Value Encoding"). `Mcp-Method` has no encoding;
//! - header names are case-insensitive, header values (method names, tool names) are
//!   case-sensitive ("Case Sensitivity");
//! - a request whose header values do not match the body, or that lacks a required header, or
//!   whose header has invalid characters, gets `400` and JSON-RPC error `-32020`
//!   `HeaderMismatch` ("Server Validation");
//! - intermediaries that enforce policy on these headers should not trust them when
//!   `MCP-Protocol-Version` is older than the revision that requires validation, or absent.
//!
//! 2025-11-25 (`docs/specification/2025-11-25/basic/transports.mdx`) has only
//! `MCP-Protocol-Version`; a client of it is authorized from its body.
//!
//! `Mcp-Param-{Name}` headers are not checked here. Which argument one mirrors is declared by
//! `x-mcp-header` in the tool's `inputSchema`, which the edge does not hold; an intermediary that
//! does not recognize such a header must forward it and otherwise ignore it ("Server Behavior
//! for Custom Headers"), and the MCP server validates it against the body. The policy does not
//! read these headers, so nothing at the edge trusts them. [`decode_value`] decodes them for a
//! later use.

use std::borrow::Cow;
use std::fmt;

use base64::engine::general_purpose::{STANDARD, STANDARD_PAD_INDIFFERENT};
use base64::Engine as _;
use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::config::policy::TargetKind;
use crate::mcp::jsonrpc::{Body, Id, Message, Operation};
use crate::mcp::Call;

pub const MCP_PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
pub const MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
pub const MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");

/// The JSON-RPC error code for headers that disagree with the body, or are missing or malformed.
pub const HEADER_MISMATCH: i64 = -32020;

const SENTINEL_START: &[u8] = b"=?base64?";
const SENTINEL_END: &[u8] = b"?=";

/// An MCP protocol revision, a `YYYY-MM-DD` date; later revisions compare greater.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProtocolVersion {
    year: u16,
    month: u8,
    day: u8,
}

impl ProtocolVersion {
    /// The first revision whose servers must check the `Mcp-*` headers against the body.
    pub const HEADER_VALIDATION: ProtocolVersion = ProtocolVersion { year: 2026, month: 7, day: 28 };

    /// Parses exactly `YYYY-MM-DD` (ASCII digits, month 01-12, day 01-31); nothing else.
    pub fn parse(text: &[u8]) -> Option<ProtocolVersion> {
        let [y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1] = *text else { return None };
        let digits = [y0, y1, y2, y3, m0, m1, d0, d1];
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = |d: &[u8]| d.iter().fold(0u16, |acc, &b| acc * 10 + u16::from(b - b'0'));
        let (year, month, day) = (n(&digits[..4]), n(&digits[4..6]), n(&digits[6..]));
        let (month, day) = (u8::try_from(month).ok()?, u8::try_from(day).ok()?);
        ((1..=12).contains(&month) && (1..=31).contains(&day)).then_some(ProtocolVersion { year, month, day })
    }

    /// Whether a client of this revision announces its operation in headers that the server
    /// checks, so the edge may decide from them before reading the body.
    pub fn validates_headers(self) -> bool {
        self >= ProtocolVersion::HEADER_VALIDATION
    }

    /// Whether a result answered at this revision must carry `resultType`: required from
    /// 2026-07-28 (the same revision as header validation); earlier ones do not know the field.
    pub fn tags_results(self) -> bool {
        self >= ProtocolVersion::HEADER_VALIDATION
    }

    /// The `YYYY-MM-DD` text, without allocating (a year past 9999 is not a version `parse` makes).
    pub fn to_bytes(self) -> [u8; 10] {
        let digit = |n: u16| b'0' + (n % 10) as u8;
        let (y, m, d) = (self.year, u16::from(self.month), u16::from(self.day));
        [
            digit(y / 1000),
            digit(y / 100),
            digit(y / 10),
            digit(y),
            b'-',
            digit(m / 10),
            digit(m),
            b'-',
            digit(d / 10),
            digit(d),
        ]
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// Where the operation of a request is to be read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source<'h> {
    /// From the headers, decided before any body byte is forwarded; the body must then agree.
    Headers(Announced<'h>),
    /// From the body: the client's revision predates header validation (`version`; absent
    /// means 2025-03-26 or earlier), or it sent no `Mcp-Method` (2026-07-28 defines no header
    /// requirement for a notification).
    Body { version: Option<ProtocolVersion> },
}

impl Source<'_> {
    /// The revision the request named in `MCP-Protocol-Version`, if any.
    pub fn version(&self) -> Option<ProtocolVersion> {
        match self {
            Source::Headers(announced) => Some(announced.version),
            Source::Body { version } => *version,
        }
    }
}

/// The operation announced in the headers of a 2026-07-28 (or later) request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announced<'h> {
    version: ProtocolVersion,
    /// `MCP-Protocol-Version` as sent, which is `version` as `YYYY-MM-DD`.
    version_text: [u8; 10],
    method: &'h str,
    /// `Mcp-Name` decoded, for a method with a target; ignored for any other.
    target: Option<Cow<'h, str>>,
    /// What kind of target the method has, if any.
    kind: Option<TargetKind>,
    /// The header values themselves, for a check that outlives the borrow.
    values: (&'h HeaderValue, Option<&'h HeaderValue>),
    /// Whether the method and target hold no byte a JSON string holds only escaped (`"`, `\`,
    /// a control character): a body's string equals such a text exactly when its bytes do,
    /// followed by the closing `"`, which the agreement scan compares in place.
    direct: bool,
}

impl Announced<'_> {
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// The revision as `YYYY-MM-DD`, as the body's `_meta` must state it.
    pub fn version_text(&self) -> [u8; 10] {
        self.version_text
    }

    pub fn method(&self) -> &str {
        self.method
    }

    pub fn target(&self) -> Option<&str> {
        self.target.as_deref()
    }

    /// What the policy is asked about.
    pub fn call(&self) -> Call<'_> {
        Call { method: self.method, target: self.target.as_deref() }
    }

    /// The `Mcp-Method` header value, and the `Mcp-Name` one when read.
    pub fn values(&self) -> (&HeaderValue, Option<&HeaderValue>) {
        self.values
    }

    /// The field of the body the target is read from, for a method that has one.
    pub fn kind(&self) -> Option<TargetKind> {
        self.kind
    }

    /// Whether the target was decoded from `=?base64?…?=` (otherwise it is `Mcp-Name` as sent).
    pub fn decoded(&self) -> bool {
        matches!(self.target, Some(Cow::Owned(_)))
    }

    /// Whether the method and target can be compared with a body's strings byte for byte.
    pub fn direct(&self) -> bool {
        self.direct
    }
}

/// A header the edge cannot read the operation from. Each is a `400` with `-32020` (the
/// specification lists missing and malformed standard headers among its causes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Sent more than once: which value would the server read?
    Repeated(&'static str),
    Missing(&'static str),
    Malformed {
        header: &'static str,
        why: ValueError,
    },
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::Repeated(header) => write!(f, "the {header} header is sent more than once"),
            HeaderError::Missing(header) => write!(f, "the {header} header is missing"),
            HeaderError::Malformed { header, why } => write!(f, "the {header} header {why}"),
        }
    }
}

impl std::error::Error for HeaderError {}

impl HeaderError {
    /// The `-32020` answer; the body has not been read, so it carries no id.
    pub fn answer(&self) -> Vec<u8> {
        error_body(None, &format!("Header mismatch: {self}"))
    }
}

/// Why a header value cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueError {
    /// A byte outside printable ASCII, or leading or trailing whitespace, in a plain value.
    Unsafe,
    /// Marked `=?base64?…?=` but not Base64.
    Base64,
    /// Base64 of bytes that are not UTF-8.
    NotUtf8,
    /// Not a `YYYY-MM-DD` revision date.
    NotADate,
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValueError::Unsafe => "has characters that must be sent Base64-encoded",
            ValueError::Base64 => "is marked as Base64 but does not decode",
            ValueError::NotUtf8 => "decodes to bytes that are not UTF-8",
            ValueError::NotADate => "is not a YYYY-MM-DD protocol revision",
        })
    }
}

/// [`ProtocolVersion::HEADER_VALIDATION`] as a client sends it.
const CURRENT: [u8; 10] = *b"2026-07-28";

/// Reads where the operation is to be taken from, and when from the headers, what it is.
pub fn read(headers: &HeaderMap) -> Result<Source<'_>, HeaderError> {
    let mut fields = headers.iter().peekable();
    let mut found = Found::default();
    // The version first: `Mcp-Method` and `Mcp-Name` count only from 2026-07-28, so an earlier
    // revision's request is settled where its version stands, without a look at the rest.
    let version = found.scan_to_version(&mut fields)?;
    let Some(version) = version else {
        return Ok(Source::Body { version: None });
    };
    let malformed = HeaderError::Malformed { header: "MCP-Protocol-Version", why: ValueError::NotADate };
    // Exactly `YYYY-MM-DD`, which is what `parse` takes.
    let version_text: [u8; 10] = version.as_bytes().try_into().map_err(|_| malformed)?;
    // The revision current clients send is known without parsing it.
    let version = match version_text {
        CURRENT => ProtocolVersion::HEADER_VALIDATION,
        text => ProtocolVersion::parse(&text).ok_or(malformed)?,
    };
    // SECURITY: before 2026-07-28 nothing checks these headers against the body; a client
    // could announce one tool and call another. Such requests are decided from the body.
    if !version.validates_headers() {
        return Ok(Source::Body { version: Some(version) });
    }
    found.scan_rest(fields);
    let Some(method_value) = found.method.get("Mcp-Method")? else {
        return Ok(Source::Body { version: Some(version) });
    };
    let unsafe_method = HeaderError::Malformed { header: "Mcp-Method", why: ValueError::Unsafe };
    // One pass: every byte printable ASCII but the space, and whether one is `"` or `\`.
    let classes = classes(method_value.as_bytes());
    let method = match method_value.to_str() {
        Ok(method) if classes & NOT_GRAPHIC == 0 && !method.is_empty() => method,
        _ => return Err(unsafe_method),
    };
    let quoted = classes & QUOTED != 0;
    let kind = TargetKind::of(method);
    let (target, name, quoted) = match kind {
        None => (None, None, quoted),
        Some(_) => {
            let name = found.name.get("Mcp-Name")?.ok_or(HeaderError::Missing("Mcp-Name"))?;
            let (target, in_target) =
                decode_header(name).map_err(|why| HeaderError::Malformed { header: "Mcp-Name", why })?;
            (Some(target), Some(name), quoted | in_target)
        }
    };
    let values = (method_value, name);
    Ok(Source::Headers(Announced { version, version_text, method, target, kind, values, direct: !quoted }))
}

// What a header value's bytes are, one bit each in `CLASSES`.
/// Outside printable ASCII without the space (0x21..=0x7E).
const NOT_GRAPHIC: u8 = 1;
/// Outside printable ASCII (0x20..=0x7E).
const NOT_PRINTABLE: u8 = 2;
/// A byte a JSON string holds only escaped: `"`, `\`, a control character.
const QUOTED: u8 = 4;

const CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        let mut class = 0;
        if !(byte >= 0x21 && byte <= 0x7e) {
            class |= NOT_GRAPHIC;
        }
        if !(byte >= 0x20 && byte <= 0x7e) {
            class |= NOT_PRINTABLE;
        }
        if byte == b'"' || byte == b'\\' || byte < 0x20 {
            class |= QUOTED;
        }
        table[b] = class;
        b += 1;
    }
    table
};

/// The classes of all of `bytes` together, a table lookup a byte.
#[inline(always)]
fn classes(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |classes, &b| classes | CLASSES[usize::from(b)])
}

/// The `Mcp-*` headers a request sent, found in one pass over its headers (three lookups by
/// name cost several times as much on the policy's path).
#[derive(Default)]
struct Found<'h> {
    version: One<'h>,
    method: One<'h>,
    name: One<'h>,
}

/// A header that may be sent once.
#[derive(Default)]
enum One<'h> {
    #[default]
    Absent,
    Once(&'h HeaderValue),
    Repeated,
}

impl<'h> One<'h> {
    fn add(&mut self, value: &'h HeaderValue) {
        *self = match self {
            One::Absent => One::Once(value),
            _ => One::Repeated,
        };
    }

    /// The one value, if sent; `spelt` names the header in the error for a repeated one.
    fn get(&self, spelt: &'static str) -> Result<Option<&'h HeaderValue>, HeaderError> {
        match self {
            One::Absent => Ok(None),
            One::Once(value) => Ok(Some(value)),
            One::Repeated => Err(HeaderError::Repeated(spelt)),
        }
    }
}

/// A map's fields in order: each name's values come one after another, so a name that
/// follows itself was sent again.
type Fields<'h> = std::iter::Peekable<http::header::Iter<'h, HeaderValue>>;

impl<'h> Found<'h> {
    /// Reads `fields` up to `MCP-Protocol-Version`'s value and past any repeat of it (which
    /// comes right after it), noting the `Mcp-*` fields before it; the version's one value,
    /// or none when the map has none.
    fn scan_to_version(&mut self, fields: &mut Fields<'h>) -> Result<Option<&'h HeaderValue>, HeaderError> {
        while let Some((name, value)) = fields.next() {
            // `HeaderName`'s equality tells a standard name from these custom ones by its kind
            // before any byte, and compares bytes only at equal lengths: cheaper than spelling
            // each standard name out to look at its length.
            if name == MCP_PROTOCOL_VERSION {
                self.version.add(value);
                // A map yields a name's values together: a second one is next, or none is.
                if let Some(&(next, repeat)) = fields.peek() {
                    if next == MCP_PROTOCOL_VERSION {
                        self.version.add(repeat);
                    }
                }
                return self.version.get("MCP-Protocol-Version");
            }
            self.note(name, value);
        }
        Ok(None)
    }

    /// Notes the `Mcp-Method` and `Mcp-Name` fields among `fields`.
    fn scan_rest(&mut self, fields: Fields<'h>) {
        for (name, value) in fields {
            self.note(name, value);
        }
    }

    #[inline(always)]
    fn note(&mut self, name: &HeaderName, value: &'h HeaderValue) {
        let one = if name == MCP_NAME {
            &mut self.name
        } else if name == MCP_METHOD {
            &mut self.method
        } else {
            return;
        };
        one.add(value);
    }
}

/// Decodes an `Mcp-Name` or `Mcp-Param-*` value: `=?base64?…?=` is Base64 (RFC 4648 §4, the
/// standard alphabet; padding optional) of UTF-8, anything else must be plain printable ASCII
/// without leading or trailing space. Borrowed unless encoded.
pub fn decode_value(raw: &[u8]) -> Result<Cow<'_, str>, ValueError> {
    if raw.starts_with(SENTINEL_START) && raw.ends_with(SENTINEL_END) {
        let inner = raw.get(SENTINEL_START.len()..raw.len() - SENTINEL_END.len()).ok_or(ValueError::Base64)?;
        let bytes = STANDARD_PAD_INDIFFERENT.decode(inner).map_err(|_| ValueError::Base64)?;
        return String::from_utf8(bytes).map(Cow::Owned).map_err(|_| ValueError::NotUtf8);
    }
    match std::str::from_utf8(raw) {
        Ok(text) if plain_safe(text) => Ok(Cow::Borrowed(text)),
        _ => Err(ValueError::Unsafe),
    }
}

/// [`decode_value`] of a header value, and whether the text holds a byte a JSON string holds
/// only escaped: a plain value is checked in one pass over its bytes.
fn decode_header(value: &HeaderValue) -> Result<(Cow<'_, str>, bool), ValueError> {
    let raw = value.as_bytes();
    let classes = classes(raw);
    let spaced = raw.first() == Some(&b' ') || raw.last() == Some(&b' ');
    if classes & NOT_PRINTABLE == 0 && !spaced && !raw.starts_with(SENTINEL_START) {
        // `HeaderValue` finds ASCII more cheaply than a check of UTF-8 does.
        if let Ok(text) = value.to_str() {
            return Ok((Cow::Borrowed(text), classes & QUOTED != 0));
        }
    }
    let text = decode_value(raw)?;
    let quoted = text.bytes().any(|b| CLASSES[usize::from(b)] & QUOTED != 0);
    Ok((text, quoted))
}

/// Encodes a value as a client must for `Mcp-Name` or `Mcp-Param-*`: plain when it can be,
/// otherwise the Base64 sentinel form.
pub fn encode_value(text: &str) -> Cow<'_, str> {
    let looks_encoded = text.as_bytes().starts_with(SENTINEL_START) && text.as_bytes().ends_with(SENTINEL_END);
    if plain_safe(text) && !looks_encoded {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(format!("=?base64?{}?=", STANDARD.encode(text)))
    }
}

/// The headers a conforming client of 2026-07-28 (or the later revision the body states) sends
/// with this operation, for tests and the fuzz target. `None` when the method cannot be a header
/// value or the body states a revision that predates header validation.
pub fn mirror(operation: &Operation<'_>) -> Option<HeaderMap> {
    let version = match operation.protocol_version() {
        None => ProtocolVersion::HEADER_VALIDATION,
        Some(v) => ProtocolVersion::parse(v.as_bytes()).filter(|v| v.validates_headers())?,
    };
    if !operation.method().bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let mut map = HeaderMap::new();
    map.insert(MCP_PROTOCOL_VERSION, HeaderValue::try_from(version.to_string()).ok()?);
    map.insert(MCP_METHOD, HeaderValue::from_str(operation.method()).ok()?);
    if let Some(target) = operation.target() {
        map.insert(MCP_NAME, HeaderValue::from_str(&encode_value(target)).ok()?);
    }
    Some(map)
}

/// Printable ASCII (space included, tab not) with no space at either end.
fn plain_safe(text: &str) -> bool {
    text.bytes().all(|b| (0x20..=0x7e).contains(&b)) && !text.starts_with(' ') && !text.ends_with(' ')
}

/// How the headers disagree with the body. No values are echoed: they are the client's, of
/// any length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// 2026-07-28 allows one message per POST.
    Batch,
    /// The body is a response, which names no method (and which 2026-07-28 clients never send).
    NotARequest,
    Method,
    /// `Mcp-Name` against `params.name` or `params.uri`.
    Name,
    /// `MCP-Protocol-Version` against `params._meta["io.modelcontextprotocol/protocolVersion"]`.
    ProtocolVersion,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mismatch::Batch => "the body is a batch; Mcp-Method names one message",
            Mismatch::NotARequest => "the body is a response, which has no method for Mcp-Method",
            Mismatch::Method => "the Mcp-Method header does not match the body's method",
            Mismatch::Name => "the Mcp-Name header does not match the body's params.name or params.uri",
            Mismatch::ProtocolVersion => {
                "the MCP-Protocol-Version header does not match the body's _meta protocolVersion"
            }
        })
    }
}

impl Mismatch {
    /// The `-32020` answer, echoing the id of a single request.
    pub fn answer(&self, body: &Body<'_>) -> Vec<u8> {
        let id = match body {
            Body::Single(message) => message.id(),
            Body::Batch(_) => None,
        };
        error_body(id, &format!("Header mismatch: {self}"))
    }
}

/// Whether the body is the operation the headers announced. Exact, case-sensitive equality of
/// the method and of the decoded `Mcp-Name` with the target; the body's protocol version, when
/// it states one, must be the header's (a request without one the server refuses itself, with
/// `-32602`).
pub fn agree(announced: &Announced<'_>, body: &Body<'_>) -> Result<(), Mismatch> {
    let message = match body {
        Body::Single(message) => message,
        Body::Batch(_) => return Err(Mismatch::Batch),
    };
    let operation = match message {
        Message::Request { operation, .. } | Message::Notification(operation) => operation,
        Message::Response { .. } => return Err(Mismatch::NotARequest),
    };
    if operation.method() != announced.method {
        return Err(Mismatch::Method);
    }
    if operation.target() != announced.target() {
        return Err(Mismatch::Name);
    }
    match operation.protocol_version() {
        Some(v) if ProtocolVersion::parse(v.as_bytes()) != Some(announced.version) => Err(Mismatch::ProtocolVersion),
        _ => Ok(()),
    }
}

/// A JSON-RPC error response with code `-32020`; `id` omitted when unknown (MCP's error
/// responses may leave it out when the request's id could not be read).
pub fn error_body(id: Option<&Id>, message: &str) -> Vec<u8> {
    jsonrpc_error(id, HEADER_MISMATCH, message)
}

/// A JSON-RPC error response with `code`; `id` omitted when unknown.
pub fn jsonrpc_error(id: Option<&Id>, code: i64, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(96 + message.len());
    out.extend_from_slice(br#"{"jsonrpc":"2.0","#);
    if let Some(id) = id {
        out.extend_from_slice(br#""id":"#);
        id.write_json(&mut out);
        out.push(b',');
    }
    out.extend_from_slice(br#""error":{"code":"#);
    out.extend_from_slice(code.to_string().as_bytes());
    out.extend_from_slice(br#","message":"#);
    serde_json::to_writer(&mut out, message).expect("writing a string into a Vec cannot fail");
    out.extend_from_slice(b"}}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::jsonrpc::extract;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(HeaderName::try_from(*name).expect("name"), HeaderValue::try_from(*value).expect("value"));
        }
        map
    }

    fn announced(map: &HeaderMap) -> Announced<'_> {
        match read(map) {
            Ok(Source::Headers(a)) => a,
            other => panic!("not decided from headers: {other:?}"),
        }
    }

    fn call_body(name: &str, version: &str) -> String {
        serde_json::json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": name,
            "arguments": {}, "_meta": {"io.modelcontextprotocol/protocolVersion": version}}})
        .to_string()
    }

    #[test]
    fn a_header_value_decodes_as_its_bytes_do() {
        let values: [&[u8]; 9] = [
            b"read_file",
            b"a b",
            b" lead",
            b"trail ",
            b"tab\there",
            b"=?base64?w7xuw68=?=",
            b"=?base64?not base64?=",
            b"=?base64?",
            "caf\u{e9}".as_bytes(),
        ];
        for raw in values {
            let value = HeaderValue::from_bytes(raw).expect("a header value");
            assert_eq!(decode_header(&value).map(|(text, _)| text), decode_value(raw), "{raw:?}");
        }
        let map = headers(&[("mcp-protocol-version", "2026-07-28"), ("mcp-method", "ping")]);
        assert_eq!(&announced(&map).version_text(), b"2026-07-28");
    }

    #[test]
    fn protocol_versions_parse_and_order() {
        let v = |s: &str| ProtocolVersion::parse(s.as_bytes());
        assert_eq!(v("2026-07-28"), Some(ProtocolVersion::HEADER_VALIDATION));
        assert_eq!(ProtocolVersion::parse(&CURRENT), Some(ProtocolVersion::HEADER_VALIDATION), "the shortcut");
        assert_eq!(v("2026-07-28").map(|v| v.to_string()).as_deref(), Some("2026-07-28"));
        assert!(v("2025-11-25") < v("2026-07-28") && v("2026-07-28") < v("2027-01-01"));
        assert!(!v("2025-11-25").expect("valid").validates_headers());
        assert!(!v("2026-07-27").expect("valid").validates_headers());
        assert!(v("2026-07-28").expect("valid").validates_headers());
        assert!(v("2026-12-01").expect("valid").validates_headers());
        for bad in
            ["", "2026-7-28", "2026-07-28 ", "2026/07/28", "2026-13-01", "2026-00-10", "2026-01-32", "+026-01-01"]
        {
            assert_eq!(v(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn old_or_absent_versions_are_decided_from_the_body() {
        assert_eq!(
            read(&headers(&[("mcp-method", "tools/call"), ("mcp-name", "a")])),
            Ok(Source::Body { version: None })
        );
        let old = ProtocolVersion::parse(b"2025-11-25");
        let h = headers(&[("mcp-protocol-version", "2025-11-25"), ("mcp-method", "tools/call"), ("mcp-name", "x")]);
        assert_eq!(read(&h), Ok(Source::Body { version: old }), "headers before 2026-07-28 are not trusted");
        let new = ProtocolVersion::parse(b"2026-07-28");
        assert_eq!(read(&headers(&[("MCP-Protocol-Version", "2026-07-28")])), Ok(Source::Body { version: new }));
    }

    #[test]
    fn current_requests_announce_their_operation() {
        let h = headers(&[
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "tools/call"),
            ("MCP-NAME", "get_weather"),
        ]);
        let a = announced(&h);
        assert_eq!(a.call(), Call { method: "tools/call", target: Some("get_weather") });
        assert_eq!(a.version(), ProtocolVersion::HEADER_VALIDATION);
        let h = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "resources/read"),
            ("mcp-name", "=?base64?ZmlsZTovLy/kuJbnlYw=?="),
        ]);
        assert_eq!(announced(&h).target(), Some("file:///世界"));
        // A name on a method without a target is not read.
        let h = headers(&[("mcp-protocol-version", "2026-07-28"), ("mcp-method", "tools/list"), ("mcp-name", "x")]);
        assert_eq!(announced(&h).call(), Call { method: "tools/list", target: None });
    }

    #[test]
    fn missing_repeated_and_malformed_headers_are_errors() {
        let v = ("mcp-protocol-version", "2026-07-28");
        let cases = [
            (
                headers(&[("mcp-protocol-version", "latest")]),
                HeaderError::Malformed { header: "MCP-Protocol-Version", why: ValueError::NotADate },
            ),
            (headers(&[v, v]), HeaderError::Repeated("MCP-Protocol-Version")),
            // Sent apart, the version's values are found together all the same, whatever the
            // revision, and whatever came before them.
            (
                headers(&[("mcp-name", "a"), v, ("accept", "*/*"), ("mcp-protocol-version", "2025-11-25")]),
                HeaderError::Repeated("MCP-Protocol-Version"),
            ),
            (
                headers(&[
                    ("mcp-protocol-version", "2025-11-25"),
                    ("x-a", "1"),
                    ("mcp-protocol-version", "2025-11-25"),
                ]),
                HeaderError::Repeated("MCP-Protocol-Version"),
            ),
            // The method and name are read wherever they stand, before the version or after it.
            (
                headers(&[("mcp-method", "tools/call"), ("mcp-method", "tools/list"), ("x-a", "1"), v]),
                HeaderError::Repeated("Mcp-Method"),
            ),
            (
                headers(&[("mcp-name", "a"), ("mcp-method", "tools/call"), v, ("mcp-name", "b")]),
                HeaderError::Repeated("Mcp-Name"),
            ),
            (headers(&[v, ("mcp-method", "tools/call")]), HeaderError::Missing("Mcp-Name")),
            (
                headers(&[v, ("mcp-method", "tools/call"), ("mcp-method", "tools/list")]),
                HeaderError::Repeated("Mcp-Method"),
            ),
            (
                headers(&[v, ("mcp-method", "tools/call"), ("mcp-name", "a"), ("mcp-name", "b")]),
                HeaderError::Repeated("Mcp-Name"),
            ),
            (
                headers(&[v, ("mcp-method", "tools call")]),
                HeaderError::Malformed { header: "Mcp-Method", why: ValueError::Unsafe },
            ),
            (
                headers(&[v, ("mcp-method", "")]),
                HeaderError::Malformed { header: "Mcp-Method", why: ValueError::Unsafe },
            ),
            (
                headers(&[v, ("mcp-method", "tools/call"), ("mcp-name", "=?base64?***?=")]),
                HeaderError::Malformed { header: "Mcp-Name", why: ValueError::Base64 },
            ),
            (
                headers(&[v, ("mcp-method", "tools/call"), ("mcp-name", "=?base64?/w==?=")]),
                HeaderError::Malformed { header: "Mcp-Name", why: ValueError::NotUtf8 },
            ),
        ];
        for (map, want) in cases {
            assert_eq!(read(&map), Err(want), "{map:?}");
        }
        let mut map = headers(&[v, ("mcp-method", "tools/call")]);
        map.append(MCP_NAME, HeaderValue::from_bytes(b"caf\xc3\xa9").expect("obs-text is a valid field value"));
        assert_eq!(read(&map), Err(HeaderError::Malformed { header: "Mcp-Name", why: ValueError::Unsafe }));
        assert_eq!(
            String::from_utf8(HeaderError::Missing("Mcp-Name").answer()).expect("UTF-8"),
            r#"{"jsonrpc":"2.0","error":{"code":-32020,"message":"Header mismatch: the Mcp-Name header is missing"}}"#
        );
    }

    #[test]
    fn values_decode_as_the_specification_encodes_them() {
        // The specification's own examples ("Value Encoding").
        let examples = [
            ("us-west1", "us-west1"),
            ("Hello, 世界", "=?base64?SGVsbG8sIOS4lueVjA==?="),
            (" padded ", "=?base64?IHBhZGRlZCA=?="),
            ("line1\nline2", "=?base64?bGluZTEKbGluZTI=?="),
            ("=?base64?literal?=", "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="),
        ];
        for (original, encoded) in examples {
            assert_eq!(encode_value(original), encoded);
            assert_eq!(decode_value(encoded.as_bytes()).as_deref(), Ok(original));
        }
        assert_eq!(
            decode_value(b"=?base64?SGVsbG8sIOS4lueVjA?="),
            Ok(Cow::Owned("Hello, 世界".into())),
            "padding optional"
        );
        assert_eq!(
            decode_value(b"=?BASE64?aGk=?="),
            Ok(Cow::Borrowed("=?BASE64?aGk=?=")),
            "markers are case-sensitive"
        );
        assert_eq!(decode_value(b"=?base64?="), Err(ValueError::Base64), "the markers overlap");
        assert_eq!(decode_value(b"=?base64??="), Ok(Cow::Owned(String::new())));
        assert_eq!(decode_value(b"a\tb"), Err(ValueError::Unsafe));
        assert_eq!(decode_value(b" a"), Err(ValueError::Unsafe));
        assert_eq!(decode_value(b"a b"), Ok(Cow::Borrowed("a b")));
        assert_eq!(encode_value("tab\there"), "=?base64?dGFiCWhlcmU=?=");
        assert_eq!(encode_value(""), "");
    }

    #[test]
    fn the_body_must_agree_with_the_headers() {
        let v = ("mcp-protocol-version", "2026-07-28");
        let h = headers(&[v, ("mcp-method", "tools/call"), ("mcp-name", "get_weather")]);
        let a = announced(&h);
        let body = call_body("get_weather", "2026-07-28");
        assert_eq!(agree(&a, &extract(body.as_bytes()).expect("extracts")), Ok(()));
        let other_tool = call_body("delete_all", "2026-07-28");
        assert_eq!(agree(&a, &extract(other_tool.as_bytes()).expect("extracts")), Err(Mismatch::Name));
        let case = call_body("Get_Weather", "2026-07-28");
        assert_eq!(agree(&a, &extract(case.as_bytes()).expect("extracts")), Err(Mismatch::Name), "case-sensitive");
        let old = call_body("get_weather", "2025-11-25");
        assert_eq!(agree(&a, &extract(old.as_bytes()).expect("extracts")), Err(Mismatch::ProtocolVersion));
        let list = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        assert_eq!(agree(&a, &extract(list).expect("extracts")), Err(Mismatch::Method));
        let batch = format!("[{body}]");
        assert_eq!(agree(&a, &extract(batch.as_bytes()).expect("extracts")), Err(Mismatch::Batch));
        let response = br#"{"jsonrpc":"2.0","id":1,"result":{}}"#;
        assert_eq!(agree(&a, &extract(response).expect("extracts")), Err(Mismatch::NotARequest));
        let no_version = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_weather"}}"#;
        assert_eq!(agree(&a, &extract(no_version).expect("extracts")), Ok(()), "left to the server's -32602");

        // The other way round: the headers lie about a body.
        let body = extract(body.as_bytes()).expect("extracts");
        for lie in [
            headers(&[v, ("mcp-method", "tools/call"), ("mcp-name", "read_only")]),
            headers(&[v, ("mcp-method", "tools/call"), ("mcp-name", "=?base64?cmVhZF9vbmx5?=")]),
        ] {
            assert_eq!(agree(&announced(&lie), &body), Err(Mismatch::Name));
        }
        let lie = headers(&[v, ("mcp-method", "prompts/get"), ("mcp-name", "get_weather")]);
        assert_eq!(agree(&announced(&lie), &body), Err(Mismatch::Method));
        let later = headers(&[
            ("mcp-protocol-version", "2027-01-01"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "get_weather"),
        ]);
        assert_eq!(agree(&announced(&later), &body), Err(Mismatch::ProtocolVersion));
        let encoded = headers(&[v, ("mcp-method", "tools/call"), ("mcp-name", "=?base64?Z2V0X3dlYXRoZXI=?=")]);
        assert_eq!(agree(&announced(&encoded), &body), Ok(()), "decoded before comparing");
    }

    #[test]
    fn a_resource_uri_and_a_notification_agree_too() {
        let v = ("mcp-protocol-version", "2026-07-28");
        let h = headers(&[v, ("mcp-method", "resources/read"), ("mcp-name", "file:///projects/myapp/config.json")]);
        let body = br#"{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///projects/myapp/config.json"}}"#;
        assert_eq!(agree(&announced(&h), &extract(body).expect("extracts")), Ok(()));
        let h = headers(&[v, ("mcp-method", "notifications/cancelled")]);
        let body = br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#;
        assert_eq!(agree(&announced(&h), &extract(body).expect("extracts")), Ok(()));
    }

    #[test]
    fn mirrored_headers_agree_with_their_body() {
        for body in [
            call_body("Hello, 世界", "2026-07-28"),
            call_body("=?base64?x?=", "2027-03-01"),
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":" file:///a b "}}"#.to_string(),
            r#"{"jsonrpc":"2.0","method":"notifications/cancelled"}"#.to_string(),
        ] {
            let parsed = extract(body.as_bytes()).expect("extracts");
            let operation = parsed.messages()[0].operation().expect("an operation");
            let map = mirror(operation).expect("mirrorable");
            assert_eq!(agree(&announced(&map), &parsed), Ok(()), "{body}");
        }
        let old = call_body("a", "2025-11-25");
        let parsed = extract(old.as_bytes()).expect("extracts");
        assert_eq!(mirror(parsed.messages()[0].operation().expect("an operation")), None);
    }

    #[test]
    fn the_mismatch_answer_is_the_specifications_error() {
        let body = extract(br#"{"jsonrpc":"2.0","id":"r-1","method":"tools/list"}"#).expect("extracts");
        let answer = Mismatch::Method.answer(&body);
        assert_eq!(
            String::from_utf8(answer.clone()).expect("UTF-8"),
            r#"{"jsonrpc":"2.0","id":"r-1","error":{"code":-32020,"message":"Header mismatch: the Mcp-Method header does not match the body's method"}}"#
        );
        let parsed: serde_json::Value = serde_json::from_slice(&answer).expect("JSON");
        assert_eq!(parsed["error"]["code"], HEADER_MISMATCH);
        let body = extract(br#"{"jsonrpc":"2.0","id":12,"method":"a"}"#).expect("extracts");
        assert!(Mismatch::Name.answer(&body).starts_with(br#"{"jsonrpc":"2.0","id":12,"error":{"code":-32020,"#));
        let batch = extract(br#"[{"jsonrpc":"2.0","id":12,"method":"a"}]"#).expect("extracts");
        assert!(Mismatch::Batch.answer(&batch).starts_with(br#"{"jsonrpc":"2.0","error":"#));
        let note = extract(br#"{"jsonrpc":"2.0","method":"a"}"#).expect("extracts");
        assert!(Mismatch::Method.answer(&note).starts_with(br#"{"jsonrpc":"2.0","error":"#));
    }
}
