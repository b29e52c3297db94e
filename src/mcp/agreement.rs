//! Whether a body says what its `Mcp-*` headers announced (2026-07-28), checked while the body
//! streams through: the policy decides from the headers before the first body byte moves, and
//! this checker, fed each piece as it passes, says at the end (or as soon as it knows) whether
//! the MCP server is being sent the operation that was decided on.
//!
//! It keeps no copy of the body and allocates nothing (a string request id, kept for the error
//! answer, aside): JSON is read byte by byte, and only the members authorization reads are
//! compared, as they are unescaped, with the header values. Its verdict is the one
//! [`crate::mcp::jsonrpc::extract`] followed by [`crate::mcp::headers::agree`] reaches on the whole
//! body (the fuzz target `mcp_agreement` holds the two to that), with two differences, both
//! explained where they arise: a repeated member name refuses the body only for the members
//! read (`jsonrpc`, `id`, `method`, `params`, `result`, `error`, `params.name`, `params.uri`,
//! `params._meta`, its protocol version), and nesting deeper than [`MAX_DEPTH`] is refused.
//!
//! What is strict JSON (RFC 8259) is enforced in full: UTF-8 everywhere, escapes, numbers,
//! literals, nothing after the value. A body that is not is refused, so the MCP server never
//! gets to read a body this checker read differently.

use std::fmt;

use http::header::HeaderValue;

use crate::config::policy::TargetKind;
use crate::mcp::headers::{jsonrpc_error, Announced, Mismatch, HEADER_MISMATCH};
use crate::mcp::json::utf8_lead;
use crate::mcp::jsonrpc::Id;

mod plain;

/// Containers open at once, at most; deeper bodies are refused (serde_json, which MCP servers
/// in Rust use, stops at 128 for the values it reads).
pub const MAX_DEPTH: usize = 512;

/// Why a body was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disagreement {
    /// Not one strict JSON value, or it ended early.
    NotJson,
    /// JSON, but not a JSON-RPC request or notification MCP allows.
    NotJsonRpc(&'static str),
    /// A member the edge reads is named twice in one object.
    Repeated,
    /// Nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// The body names another operation than the headers.
    Mismatch(Mismatch),
}

impl fmt::Display for Disagreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Disagreement::NotJson => f.write_str("the body is not a JSON value"),
            Disagreement::NotJsonRpc(why) => write!(f, "the body is not JSON-RPC: {why}"),
            Disagreement::Repeated => f.write_str("a member the edge reads appears twice in one object"),
            Disagreement::TooDeep => write!(f, "the body nests deeper than {MAX_DEPTH} levels"),
            Disagreement::Mismatch(m) => write!(f, "{m}"),
        }
    }
}

impl Disagreement {
    /// The JSON-RPC answer: `-32020` for headers that disagree with the body, the Invalid
    /// Request error (`-32600`) for a body that is not a request; `id` when it was read.
    pub fn answer(&self, id: Option<&Id>) -> Vec<u8> {
        match self {
            Disagreement::Mismatch(m) => jsonrpc_error(id, HEADER_MISMATCH, &format!("Header mismatch: {m}")),
            other => jsonrpc_error(id, -32600, &format!("Invalid Request: {other}")),
        }
    }
}

/// A header value the body must repeat: shared with the request's headers, or decoded from
/// their Base64 form.
#[derive(Clone, Debug)]
enum Text {
    Header(HeaderValue),
    Owned(Box<[u8]>),
}

impl Text {
    /// `text` as read from `value`: the value itself unless `text` was decoded from it.
    fn new(value: Option<&HeaderValue>, text: &str, decoded: bool) -> Text {
        match value {
            Some(value) if !decoded => Text::Header(value.clone()),
            _ => Text::Owned(text.as_bytes().into()),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Text::Header(value) => value.as_bytes(),
            Text::Owned(bytes) => bytes,
        }
    }
}

/// What the headers announced, owned so that it can travel with the body.
#[derive(Clone, Debug)]
pub struct Expected {
    method: Text,
    /// With the field it is read from, for a method that has a target.
    target: Option<(TargetKind, Text)>,
    version: [u8; 10],
    /// Whether `method` and `target` compare with a body's strings byte for byte
    /// ([`Announced::direct`]).
    direct: bool,
}

impl Expected {
    /// The header values are shared, not copied (unless decoded from Base64).
    pub fn new(announced: &Announced<'_>) -> Expected {
        let (method_value, name_value) = announced.values();
        // `Mcp-Method` is never encoded: its text is the header's.
        let method = Text::new(Some(method_value), announced.method(), false);
        let target = announced
            .kind()
            .zip(announced.target())
            .map(|(kind, target)| (kind, Text::new(name_value, target, announced.decoded())));
        Expected { method, target, version: announced.version_text(), direct: announced.direct() }
    }
}

// The members read, one bit each in `Agreement::seen`.
const JSONRPC: u16 = 1;
const ID: u16 = 1 << 1;
const METHOD: u16 = 1 << 2;
const PARAMS: u16 = 1 << 3;
const RESULT: u16 = 1 << 4;
const ERROR: u16 = 1 << 5;
const NAME: u16 = 1 << 6;
const URI: u16 = 1 << 7;
const META: u16 = 1 << 8;
const VERSION: u16 = 1 << 9;

const TOP_KEYS: [(&[u8], u16); 6] = [
    (b"jsonrpc", JSONRPC),
    (b"id", ID),
    (b"method", METHOD),
    (b"params", PARAMS),
    (b"result", RESULT),
    (b"error", ERROR),
];
const PARAMS_KEYS: [(&[u8], u16); 3] = [(b"name", NAME), (b"uri", URI), (b"_meta", META)];
const META_KEYS: [(&[u8], u16); 1] = [(b"io.modelcontextprotocol/protocolVersion", VERSION)];

/// What a member's value turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
enum Slot {
    #[default]
    Absent,
    /// A string equal to the header's value.
    Equal,
    /// A string that is not.
    Unequal,
    /// An object.
    Object,
    Null,
    /// Anything else.
    Other,
}

/// The request id as read: kept for the error answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum IdSlot {
    #[default]
    Absent,
    Int(i64),
    Str(Vec<u8>),
    /// A string id too long to echo (over 256 bytes).
    LongStr,
    Null,
    Other,
}

const LONGEST_ID: usize = 256;

/// Bytes a string may hold as they are: printable ASCII but `"` and `\`.
const PLAIN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0x20;
    while b < 0x80 {
        table[b] = b != b'"' as usize && b != b'\\' as usize;
        b += 1;
    }
    table
};

/// The longest member name read (`io.modelcontextprotocol/protocolVersion`).
const LONGEST_KEY: usize = 40;

/// The JSON grammar's position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// A value must start (the top, after `:`, after `,` in an array).
    Value,
    /// After `[`: a value or `]`.
    ArrayFirst,
    /// After `{`: a member name or `}`.
    ObjectFirst,
    /// After `,` in an object: a member name.
    Key,
    /// After a member name: `:`.
    Colon,
    /// After a value: `,`, the container's end or, at the top, nothing but whitespace.
    After,
    /// Inside a string.
    Str,
    /// After `\` in a string.
    Escape,
    /// Inside `\uXXXX`: hex digits read so far.
    Unicode(u8),
    /// A high surrogate was read: `\` must follow.
    LowBackslash,
    /// ... then `u`.
    LowU,
    Number(Num),
    /// Inside `true`, `false` or `null`: which, and how many bytes read.
    Literal(Lit, u8),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Num {
    /// After `-`.
    Minus,
    /// After a leading `0`.
    Zero,
    Int,
    /// After `.`.
    Point,
    Frac,
    /// After `e` or `E`.
    Exp,
    /// After the exponent's sign.
    ExpSign,
    ExpDigits,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lit {
    True,
    False,
    Null,
}

impl Lit {
    fn text(self) -> &'static [u8] {
        match self {
            Lit::True => b"true",
            Lit::False => b"false",
            Lit::Null => b"null",
        }
    }
}

/// Where a string's unescaped bytes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sink {
    /// Nowhere: a string the edge does not read.
    Skip,
    /// A member name at an object the edge reads (the message, `params`, `params._meta`).
    Key,
    /// A value compared with a header's (`jsonrpc` with `2.0`).
    Compare(u16),
    /// The request id.
    Id,
    /// A string where authorization needs none (`params` as a string): only its type counts.
    Read,
}

/// The checker of one body; fed with [`Agreement::feed`], concluded with [`Agreement::finish`].
#[derive(Debug)]
pub struct Agreement {
    expected: Expected,
    state: State,
    failed: Option<Disagreement>,
    /// Open containers.
    depth: usize,
    /// One bit per open container, set for an array.
    arrays: [u64; MAX_DEPTH / 64],
    /// How many of the objects read (message, `params`, `_meta`) are open: the container at
    /// `depth` is one of them exactly when `depth == chain`.
    chain: usize,
    /// The member whose value comes next, when it is one the edge reads.
    member: u16,
    /// Members read, for repeats.
    seen: u16,
    // A string in progress.
    sink: Sink,
    in_key: bool,
    /// The string is one serde_json would read (so check its escapes as it does).
    strict: bool,
    /// A member name being read at an object the edge reads; `key_len` past the buffer means
    /// longer than any name read.
    key: [u8; LONGEST_KEY],
    key_len: usize,
    pos: usize,
    equal: bool,
    utf8_left: u8,
    utf8_low: u8,
    utf8_high: u8,
    unicode: u32,
    high_surrogate: u32,
    // A number in progress (for an id).
    negative: bool,
    magnitude: u64,
    overflow: bool,
    integral: bool,
    // What was found.
    jsonrpc: Slot,
    method: Slot,
    params: Slot,
    meta: Slot,
    name: Slot,
    uri: Slot,
    version: Slot,
    id: IdSlot,
    /// The body came whole and agreed ([`Agreement::whole`]).
    agreed: bool,
}

impl Agreement {
    pub fn new(expected: Expected) -> Agreement {
        Agreement {
            expected,
            state: State::Value,
            failed: None,
            depth: 0,
            arrays: [0; MAX_DEPTH / 64],
            chain: 0,
            member: 0,
            seen: 0,
            sink: Sink::Skip,
            in_key: false,
            strict: false,
            key: [0; LONGEST_KEY],
            key_len: 0,
            pos: 0,
            equal: true,
            utf8_left: 0,
            utf8_low: 0,
            utf8_high: 0,
            unicode: 0,
            high_surrogate: 0,
            negative: false,
            magnitude: 0,
            overflow: false,
            integral: true,
            jsonrpc: Slot::Absent,
            method: Slot::Absent,
            params: Slot::Absent,
            meta: Slot::Absent,
            name: Slot::Absent,
            uri: Slot::Absent,
            version: Slot::Absent,
            id: IdSlot::Absent,
            agreed: false,
        }
    }

    /// The request id, once read (for the error answer).
    pub fn id(&self) -> Option<Id> {
        match &self.id {
            IdSlot::Int(n) => Some(Id::Number(*n)),
            IdSlot::Str(bytes) => std::str::from_utf8(bytes).ok().map(|s| Id::String(s.to_string())),
            _ => None,
        }
    }

    /// Reads the next piece of the body; an error as soon as the body is known to be refused
    /// (it stays refused).
    pub fn feed(&mut self, piece: &[u8]) -> Result<(), Disagreement> {
        if let Some(failed) = self.failed {
            return Err(failed);
        }
        let mut i = 0;
        while i < piece.len() {
            if self.state == State::Str && self.utf8_left == 0 {
                // Most of a body is plain ASCII inside strings: each run of it is taken whole.
                let start = i;
                while i < piece.len() && PLAIN[usize::from(piece[i])] {
                    i += 1;
                }
                if i > start {
                    self.push(&piece[start..i]);
                }
                if i == piece.len() {
                    break;
                }
            }
            match self.step(piece[i]) {
                Ok(true) => i += 1,
                Ok(false) => {}
                Err(e) => {
                    self.failed = Some(e);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// The verdict on a body that came whole, in one piece, before anything else was fed: the
    /// verdict [`Agreement::feed`] and [`Agreement::finish`] reach, at a fraction of their cost
    /// when the body is one plain message that agrees (compared in one pass that builds
    /// nothing). Any other body, and one that disagrees, goes through the checker, which says why.
    pub fn whole(&mut self, body: &[u8]) -> Result<(), Disagreement> {
        let fresh = self.state == State::Value && self.depth == 0 && self.seen == 0 && self.failed.is_none();
        if fresh && plain::agrees(body, &self.expected) {
            self.agreed = true;
            return Ok(());
        }
        self.feed(body)?;
        self.finish()
    }

    /// The verdict on the whole body, once it has ended.
    pub fn finish(&mut self) -> Result<(), Disagreement> {
        if self.agreed {
            return Ok(());
        }
        if let Some(failed) = self.failed {
            return Err(failed);
        }
        let verdict = self.verdict();
        if let Err(e) = verdict {
            self.failed = Some(e);
        }
        verdict
    }

    fn verdict(&self) -> Result<(), Disagreement> {
        let not = |why| Err(Disagreement::NotJsonRpc(why));
        // Only a number can still be open at the end, and the top is an object, never a number.
        if !(self.state == State::After && self.depth == 0) {
            return Err(Disagreement::NotJson);
        }
        if self.seen & (RESULT | ERROR) != 0 && self.method == Slot::Absent {
            return Err(Disagreement::Mismatch(Mismatch::NotARequest));
        }
        match self.jsonrpc {
            Slot::Equal => {}
            _ => return not("jsonrpc must be \"2.0\""),
        }
        match self.method {
            Slot::Equal => {}
            Slot::Unequal => return Err(Disagreement::Mismatch(Mismatch::Method)),
            Slot::Absent => return not("a message has a method, a result or an error"),
            _ => return not("method must be a string"),
        }
        if self.seen & (RESULT | ERROR) != 0 {
            return not("a request or notification has no result or error");
        }
        if !matches!(self.params, Slot::Absent | Slot::Object) {
            return not("params must be an object");
        }
        if !matches!(self.meta, Slot::Absent | Slot::Object) {
            return not("params._meta must be an object");
        }
        if let Some((kind, _)) = &self.expected.target {
            let (slot, why) = match kind {
                TargetKind::Name => (self.name, "tools/call and prompts/get need params.name as a string"),
                TargetKind::Uri => (self.uri, "resources/read needs params.uri as a string"),
            };
            match slot {
                Slot::Equal => {}
                Slot::Unequal => return Err(Disagreement::Mismatch(Mismatch::Name)),
                _ => return not(why),
            }
        }
        match self.version {
            Slot::Absent | Slot::Equal => {}
            Slot::Unequal => return Err(Disagreement::Mismatch(Mismatch::ProtocolVersion)),
            _ => return not("the _meta protocol version must be a string"),
        }
        match self.id {
            IdSlot::Absent | IdSlot::Int(_) | IdSlot::Str(_) | IdSlot::LongStr => Ok(()),
            IdSlot::Null => not("a request id is never null in MCP"),
            IdSlot::Other => not("a request id is a string or an integer"),
        }
    }

    /// One byte; `Ok(false)` when the byte ended a number and is to be read again as what
    /// follows it.
    fn step(&mut self, b: u8) -> Result<bool, Disagreement> {
        match self.state {
            State::Str => self.string(b).map(|()| true),
            State::Escape => self.escape(b).map(|()| true),
            State::Unicode(n) => self.unicode(n, b).map(|()| true),
            State::LowBackslash => match b {
                b'\\' => {
                    self.state = State::LowU;
                    Ok(true)
                }
                _ => Err(Disagreement::NotJson),
            },
            State::LowU => match b {
                b'u' => {
                    self.state = State::Unicode(0);
                    Ok(true)
                }
                _ => Err(Disagreement::NotJson),
            },
            State::Number(num) => self.number(num, b),
            State::Literal(lit, n) => {
                let text = lit.text();
                if text.get(usize::from(n)) != Some(&b) {
                    return Err(Disagreement::NotJson);
                }
                if usize::from(n) + 1 == text.len() {
                    let slot = if lit == Lit::Null { Slot::Null } else { Slot::Other };
                    self.scalar_done(slot, if lit == Lit::Null { IdSlot::Null } else { IdSlot::Other });
                } else {
                    self.state = State::Literal(lit, n + 1);
                }
                Ok(true)
            }
            _ if matches!(b, b' ' | b'\t' | b'\n' | b'\r') => Ok(true),
            State::Value => self.value(b).map(|()| true),
            State::ArrayFirst if b == b']' => self.close(false).map(|()| true),
            State::ArrayFirst => self.value(b).map(|()| true),
            State::ObjectFirst if b == b'}' => self.close(true).map(|()| true),
            State::ObjectFirst | State::Key => match b {
                b'"' => {
                    self.start_key();
                    Ok(true)
                }
                _ => Err(Disagreement::NotJson),
            },
            State::Colon => match b {
                b':' => {
                    self.state = State::Value;
                    Ok(true)
                }
                _ => Err(Disagreement::NotJson),
            },
            State::After => {
                if self.depth == 0 {
                    return Err(Disagreement::NotJson);
                }
                let array = self.in_array();
                match b {
                    b',' => {
                        self.state = if array { State::Value } else { State::Key };
                        Ok(true)
                    }
                    b']' if array => self.close(false).map(|()| true),
                    b'}' if !array => self.close(true).map(|()| true),
                    _ => Err(Disagreement::NotJson),
                }
            }
        }
    }

    fn in_array(&self) -> bool {
        let d = self.depth - 1;
        self.arrays[d / 64] & (1 << (d % 64)) != 0
    }

    /// Whether the value about to be read is a direct member of an object the edge reads.
    fn read_here(&self) -> bool {
        self.depth > 0 && self.depth == self.chain && self.member != 0
    }

    /// The first byte of a value.
    fn value(&mut self, b: u8) -> Result<(), Disagreement> {
        let here = self.read_here();
        match b {
            b'{' | b'[' => {
                let object = b == b'{';
                if self.depth == 0 {
                    if !object {
                        return Err(Disagreement::Mismatch(Mismatch::Batch));
                    }
                    self.chain = 1;
                } else if here {
                    let next = match self.member {
                        PARAMS => Some(&mut self.params),
                        META => Some(&mut self.meta),
                        _ => None,
                    };
                    match next {
                        Some(slot) if object => {
                            *slot = Slot::Object;
                            self.chain += 1;
                        }
                        _ => self.record(Slot::Other, IdSlot::Other),
                    }
                }
                self.open(object)
            }
            _ if self.depth == 0 => Err(Disagreement::NotJsonRpc("a message is an object")),
            b'"' => {
                self.in_key = false;
                let (sink, strict) = match (here, self.member) {
                    (false, _) => (Sink::Skip, false),
                    (true, ID) => (Sink::Id, true),
                    (true, JSONRPC | METHOD | NAME | URI | VERSION) => (Sink::Compare(self.member), true),
                    (true, PARAMS | META) => (Sink::Read, true),
                    (true, _) => (Sink::Skip, false),
                };
                self.start_string(sink, strict);
                if sink == Sink::Id {
                    self.id = IdSlot::Str(Vec::new());
                }
                Ok(())
            }
            b'-' | b'0'..=b'9' => {
                self.negative = b == b'-';
                self.magnitude = 0;
                self.overflow = false;
                self.integral = true;
                self.state = State::Number(match b {
                    b'-' => Num::Minus,
                    b'0' => Num::Zero,
                    _ => {
                        self.magnitude = u64::from(b - b'0');
                        Num::Int
                    }
                });
                Ok(())
            }
            b't' => self.literal(Lit::True),
            b'f' => self.literal(Lit::False),
            b'n' => self.literal(Lit::Null),
            _ => Err(Disagreement::NotJson),
        }
    }

    fn literal(&mut self, lit: Lit) -> Result<(), Disagreement> {
        self.state = State::Literal(lit, 1);
        Ok(())
    }

    fn open(&mut self, object: bool) -> Result<(), Disagreement> {
        if self.depth == MAX_DEPTH {
            return Err(Disagreement::TooDeep);
        }
        let d = self.depth;
        if object {
            self.arrays[d / 64] &= !(1 << (d % 64));
        } else {
            self.arrays[d / 64] |= 1 << (d % 64);
        }
        self.depth += 1;
        self.member = 0;
        self.state = if object { State::ObjectFirst } else { State::ArrayFirst };
        Ok(())
    }

    fn close(&mut self, object: bool) -> Result<(), Disagreement> {
        debug_assert_eq!(object, !self.in_array());
        if self.depth == self.chain {
            self.chain -= 1;
        }
        self.depth -= 1;
        // The container was the value of a member; the next member name resets this.
        self.member = 0;
        self.state = State::After;
        Ok(())
    }

    fn start_key(&mut self) {
        self.in_key = true;
        if self.depth == self.chain {
            self.key_len = 0;
            self.start_string(Sink::Key, true);
        } else {
            self.start_string(Sink::Skip, false);
        }
    }

    fn level_keys(&self) -> &'static [(&'static [u8], u16)] {
        match self.chain {
            1 => &TOP_KEYS,
            2 => &PARAMS_KEYS,
            _ => &META_KEYS,
        }
    }

    fn start_string(&mut self, sink: Sink, strict: bool) {
        self.sink = sink;
        self.strict = strict;
        self.pos = 0;
        self.equal = true;
        self.state = State::Str;
    }

    fn string(&mut self, b: u8) -> Result<(), Disagreement> {
        if self.utf8_left > 0 {
            if !(self.utf8_low..=self.utf8_high).contains(&b) {
                return Err(Disagreement::NotJson);
            }
            self.utf8_left -= 1;
            self.utf8_low = 0x80;
            self.utf8_high = 0xbf;
            self.push(&[b]);
            return Ok(());
        }
        match b {
            b'"' => self.string_done(),
            b'\\' => {
                self.state = State::Escape;
                Ok(())
            }
            0..=0x1f => Err(Disagreement::NotJson),
            0x80..=0xff => {
                let (left, low, high) = utf8_lead(b).ok_or(Disagreement::NotJson)?;
                (self.utf8_left, self.utf8_low, self.utf8_high) = (left, low, high);
                self.push(&[b]);
                Ok(())
            }
            _ => {
                self.push(&[b]);
                Ok(())
            }
        }
    }

    fn escape(&mut self, b: u8) -> Result<(), Disagreement> {
        let byte = match b {
            b'"' | b'\\' | b'/' => b,
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                self.unicode = 0;
                self.state = State::Unicode(0);
                return Ok(());
            }
            _ => return Err(Disagreement::NotJson),
        };
        self.push(&[byte]);
        self.state = State::Str;
        Ok(())
    }

    fn unicode(&mut self, n: u8, b: u8) -> Result<(), Disagreement> {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => return Err(Disagreement::NotJson),
        };
        self.unicode = self.unicode * 16 + u32::from(digit);
        if n < 3 {
            self.state = State::Unicode(n + 1);
            return Ok(());
        }
        let unit = self.unicode;
        self.unicode = 0;
        self.state = State::Str;
        if !self.strict {
            // serde_json skips a string it does not read without judging its escapes.
            return Ok(());
        }
        let high = std::mem::take(&mut self.high_surrogate);
        let code = match (high, unit) {
            (0, 0xd800..=0xdbff) => {
                self.high_surrogate = unit;
                self.state = State::LowBackslash;
                return Ok(());
            }
            (0, 0xdc00..=0xdfff) => return Err(Disagreement::NotJson),
            (0, unit) => unit,
            (high, 0xdc00..=0xdfff) => 0x10000 + ((high - 0xd800) << 10) + (unit - 0xdc00),
            (_, _) => return Err(Disagreement::NotJson),
        };
        let c = char::from_u32(code).ok_or(Disagreement::NotJson)?;
        let mut buf = [0u8; 4];
        self.push(c.encode_utf8(&mut buf).as_bytes());
        Ok(())
    }

    /// Unescaped bytes of the string, in order.
    fn push(&mut self, run: &[u8]) {
        let end = self.pos + run.len();
        match self.sink {
            Sink::Skip | Sink::Read => {}
            Sink::Key => {
                match self.key.get_mut(self.key_len..self.key_len + run.len()) {
                    Some(room) => room.copy_from_slice(run),
                    None => self.key_len = LONGEST_KEY,
                }
                self.key_len = (self.key_len + run.len()).min(LONGEST_KEY + 1);
            }
            Sink::Compare(member) => {
                let expected: &[u8] = match member {
                    JSONRPC => b"2.0",
                    METHOD => self.expected.method.bytes(),
                    VERSION => &self.expected.version,
                    _ => match &self.expected.target {
                        Some((TargetKind::Name, t)) if member == NAME => t.bytes(),
                        Some((TargetKind::Uri, t)) if member == URI => t.bytes(),
                        _ => b"",
                    },
                };
                self.equal &= expected.get(self.pos..end) == Some(run);
            }
            Sink::Id => match &mut self.id {
                IdSlot::Str(bytes) if bytes.len() + run.len() <= LONGEST_ID => bytes.extend_from_slice(run),
                IdSlot::Str(_) => self.id = IdSlot::LongStr,
                _ => {}
            },
        }
        self.pos = end;
    }

    fn string_done(&mut self) -> Result<(), Disagreement> {
        if self.high_surrogate != 0 {
            return Err(Disagreement::NotJson);
        }
        if self.in_key {
            self.state = State::Colon;
            self.member = 0;
            if self.sink == Sink::Key {
                let name = self.key.get(..self.key_len).unwrap_or(&[]);
                if let Some(&(_, bit)) = self.level_keys().iter().find(|(key, _)| *key == name) {
                    if self.seen & bit != 0 {
                        return Err(Disagreement::Repeated);
                    }
                    self.seen |= bit;
                    self.member = bit;
                }
            }
            return Ok(());
        }
        let slot = match self.sink {
            Sink::Compare(member) => {
                let expected_len = match member {
                    JSONRPC => 3,
                    METHOD => self.expected.method.bytes().len(),
                    VERSION => self.expected.version.len(),
                    _ => match &self.expected.target {
                        Some((TargetKind::Name, t)) if member == NAME => t.bytes().len(),
                        Some((TargetKind::Uri, t)) if member == URI => t.bytes().len(),
                        // A target the headers did not announce is read but not compared.
                        _ => usize::MAX,
                    },
                };
                match (self.equal && self.pos == expected_len, expected_len) {
                    (_, usize::MAX) => Slot::Other,
                    (true, _) => Slot::Equal,
                    (false, _) => Slot::Unequal,
                }
            }
            _ => Slot::Other,
        };
        // The id's string was collected as it was read.
        let id = if self.sink == Sink::Id { std::mem::take(&mut self.id) } else { IdSlot::Other };
        self.scalar_done(slot, id);
        Ok(())
    }

    fn number(&mut self, num: Num, b: u8) -> Result<bool, Disagreement> {
        let next = match (num, b) {
            (Num::Minus, b'0') => Num::Zero,
            (Num::Minus, b'1'..=b'9') | (Num::Int, b'0'..=b'9') => {
                let digit = u64::from(b - b'0');
                match self.magnitude.checked_mul(10).and_then(|m| m.checked_add(digit)) {
                    Some(m) => self.magnitude = m,
                    None => self.overflow = true,
                }
                Num::Int
            }
            (Num::Zero | Num::Int, b'.') => {
                self.integral = false;
                Num::Point
            }
            (Num::Zero | Num::Int | Num::Frac, b'e' | b'E') => {
                self.integral = false;
                Num::Exp
            }
            (Num::Point | Num::Frac, b'0'..=b'9') => Num::Frac,
            (Num::Exp, b'+' | b'-') => Num::ExpSign,
            (Num::Exp | Num::ExpSign | Num::ExpDigits, b'0'..=b'9') => Num::ExpDigits,
            (Num::Zero | Num::Int | Num::Frac | Num::ExpDigits, _) => {
                // The number ended; `b` is read again as what follows it.
                let id = self.integer().map_or(IdSlot::Other, IdSlot::Int);
                self.scalar_done(Slot::Other, id);
                return Ok(false);
            }
            _ => return Err(Disagreement::NotJson),
        };
        self.state = State::Number(next);
        Ok(true)
    }

    /// The number just read as serde_json would give it to an id: an `i64`, or nothing (a
    /// fraction, an exponent, `-0`, or out of range, which it reads as a float).
    fn integer(&self) -> Option<i64> {
        if !self.integral || self.overflow {
            return None;
        }
        if !self.negative {
            return i64::try_from(self.magnitude).ok();
        }
        match self.magnitude {
            0 => None,
            m if m <= 1 << 63 => Some((m as i64).wrapping_neg()),
            _ => None,
        }
    }

    /// A string, number or literal ended: recorded when it is a member the edge reads.
    fn scalar_done(&mut self, slot: Slot, id: IdSlot) {
        if self.read_here() {
            self.record(slot, id);
        }
        self.state = State::After;
    }

    fn record(&mut self, slot: Slot, id: IdSlot) {
        match self.member {
            JSONRPC => self.jsonrpc = slot,
            METHOD => {
                self.method = slot;
            }
            PARAMS => self.params = slot,
            META => self.meta = slot,
            NAME => self.name = slot,
            URI => self.uri = slot,
            VERSION => self.version = slot,
            ID => self.id = id,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::headers::{self, Source};
    use http::HeaderMap;

    fn headers(version: &str, method: &str, name: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(headers::MCP_PROTOCOL_VERSION, HeaderValue::from_str(version).unwrap());
        h.insert(headers::MCP_METHOD, HeaderValue::from_str(method).unwrap());
        if let Some(name) = name {
            h.insert(headers::MCP_NAME, HeaderValue::from_str(name).unwrap());
        }
        h
    }

    fn check_in(h: &HeaderMap, body: &[u8], piece: usize) -> Result<(), Disagreement> {
        let Ok(Source::Headers(announced)) = headers::read(h) else { panic!("headers") };
        let mut a = Agreement::new(Expected::new(&announced));
        for chunk in body.chunks(piece.max(1)) {
            a.feed(chunk)?;
        }
        a.finish()
    }

    /// The verdict on a body that came whole, and the request id it would answer with.
    fn check_whole(h: &HeaderMap, body: &[u8]) -> (Result<(), Disagreement>, Option<Id>) {
        let Ok(Source::Headers(announced)) = headers::read(h) else { panic!("headers") };
        let mut a = Agreement::new(Expected::new(&announced));
        (a.whole(body), a.id())
    }

    /// The verdict, the same whatever pieces the body arrives in, and when it comes whole.
    fn check(h: &HeaderMap, body: &str) -> Result<(), Disagreement> {
        let whole = check_in(h, body.as_bytes(), body.len());
        for piece in [1, 2, 3, 7] {
            assert_eq!(check_in(h, body.as_bytes(), piece), whole, "{body} in pieces of {piece}");
        }
        assert_eq!(check_whole(h, body.as_bytes()).0, whole, "{body} checked whole");
        whole
    }

    #[test]
    fn a_plain_body_checked_whole_is_read_in_one_pass_and_a_refused_one_keeps_its_id() {
        let h = headers("2026-07-28", "tools/call", Some("read_file"));
        let Ok(Source::Headers(announced)) = headers::read(&h) else { panic!("headers") };
        assert!(plain::agrees(CALL.as_bytes(), &Expected::new(&announced)));
        assert_eq!(check_whole(&h, CALL.as_bytes()), (Ok(()), None));
        let other = CALL.replace("read_file", "delete_file");
        let (verdict, id) = check_whole(&h, other.as_bytes());
        assert_eq!(verdict, Err(Disagreement::Mismatch(Mismatch::Name)));
        assert_eq!(id, Some(Id::Number(7)));
        // A checker already fed a piece does not take the one-pass reading for the rest.
        let mut a = Agreement::new(Expected::new(&announced));
        a.feed(&CALL.as_bytes()[..10]).unwrap();
        assert_eq!(a.whole(&CALL.as_bytes()[10..]), Ok(()));
        let mut b = Agreement::new(Expected::new(&announced));
        b.feed(&other.as_bytes()[..10]).unwrap();
        assert_eq!(b.whole(&other.as_bytes()[10..]), Err(Disagreement::Mismatch(Mismatch::Name)));
    }

    const CALL: &str = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/x","deep":[1,2.5e3,{"a":null}],"ok":true},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;

    #[test]
    fn a_body_that_says_what_the_headers_said_agrees() {
        let h = headers("2026-07-28", "tools/call", Some("read_file"));
        assert_eq!(check(&h, CALL), Ok(()));
        // Escapes, whitespace and member order do not matter; the values do.
        let body = "\n{ \"params\" : {\"n\\u0061me\": \"read\\u005ffile\"}, \"method\":\"tools\\/call\",\r\n\"jsonrpc\":\"2.0\", \"id\": \"x\\u00e9\" }\t";
        assert_eq!(check(&h, body), Ok(()));
        let n = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        assert_eq!(check(&headers("2026-07-28", "notifications/initialized", None), n), Ok(()));
        // Names of any length, and one a byte short of the header's.
        for len in [29, 30, 31, 64] {
            let name = "n".repeat(len);
            let h = headers("2026-07-28", "tools/call", Some(&name));
            assert_eq!(check(&h, &CALL.replace("read_file", &name)), Ok(()), "{len}");
            let shorter = CALL.replace("read_file", &name[1..]);
            assert_eq!(check(&h, &shorter), Err(Disagreement::Mismatch(Mismatch::Name)), "{len}");
        }
    }

    #[test]
    fn each_disagreement_is_named() {
        let h = headers("2026-07-28", "tools/call", Some("read_file"));
        let m = |m| Err(Disagreement::Mismatch(m));
        assert_eq!(check(&h, &CALL.replace("read_file", "rm_rf")), m(Mismatch::Name));
        assert_eq!(check(&h, &CALL.replace("read_file", "read_files")), m(Mismatch::Name));
        assert_eq!(check(&h, &CALL.replace("read_file", "read_fil")), m(Mismatch::Name));
        assert_eq!(check(&h, &CALL.replace("tools/call", "prompts/get")), m(Mismatch::Method));
        assert_eq!(check(&h, &CALL.replace("2026-07-28", "2025-11-25")), m(Mismatch::ProtocolVersion));
        assert_eq!(check(&h, &format!("[{CALL}]")), m(Mismatch::Batch));
        assert_eq!(check(&h, r#"{"jsonrpc":"2.0","id":7,"result":{}}"#), m(Mismatch::NotARequest));
        // The name compared is the one JSON means, after unescaping.
        assert_eq!(check(&h, &CALL.replace("read_file", "read\\u005Ffile")), Ok(()));
        assert_eq!(check(&h, &CALL.replace("read_file", "read\\u005Ffilf")), m(Mismatch::Name));
    }

    #[test]
    fn what_is_not_a_request_is_refused() {
        let h = headers("2026-07-28", "tools/call", Some("read_file"));
        for (body, expect) in [
            (CALL.replace(r#""name":"read_file","#, ""), Disagreement::NotJsonRpc("")),
            (CALL.replace(r#""name":"read_file""#, r#""name":7"#), Disagreement::NotJsonRpc("")),
            (CALL.replace(r#""jsonrpc":"2.0""#, r#""jsonrpc":"1.0""#), Disagreement::NotJsonRpc("")),
            (CALL.replace(r#""id":7"#, r#""id":null"#), Disagreement::NotJsonRpc("")),
            (CALL.replace(r#""id":7"#, r#""id":7.5"#), Disagreement::NotJsonRpc("")),
            (CALL.replace(r#""id":7"#, r#""id":-0"#), Disagreement::NotJsonRpc("")),
            (CALL.replace(r#""id":7"#, r#""id":9223372036854775808"#), Disagreement::NotJsonRpc("")),
            (CALL.replace(r#""id":7"#, r#""id":7,"result":1"#), Disagreement::NotJsonRpc("")),
            (CALL.replace(r#""params":{"#, r#""params":[{"#).replace("}}}", "}}]}"), Disagreement::NotJsonRpc("")),
            (CALL.replace(r#""id":7"#, r#""id":7,"id":8"#), Disagreement::Repeated),
            (CALL.replace(r#""name":"read_file""#, r#""name":"read_file","n\u0061me":"x""#), Disagreement::Repeated),
            (CALL.replace("}}}", "}}} x"), Disagreement::NotJson),
            (CALL.replace("}}}", "}}"), Disagreement::NotJson),
            (CALL.replace("true", "tru"), Disagreement::NotJson),
            (CALL.replace("2.5e3", "2.e3"), Disagreement::NotJson),
            (CALL.replace("2.5e3", "02"), Disagreement::NotJson),
            (CALL.replace("/x", "/\u{1}"), Disagreement::NotJson),
            (CALL.replace("read_file", "read\\ud800file"), Disagreement::NotJson),
            (CALL.replace(r#"[1,"#, r#"[1,,"#), Disagreement::NotJson),
            (CALL.replace(r#""ok":true}"#, r#""ok":true,}"#), Disagreement::NotJson),
            (r#""tools/call""#.to_string(), Disagreement::NotJsonRpc("")),
        ] {
            let got = check(&h, &body);
            let same = match (&got, &expect) {
                (Err(Disagreement::NotJsonRpc(_)), Disagreement::NotJsonRpc(_)) => true,
                (Err(g), e) => g == e,
                _ => false,
            };
            assert!(same, "{body}: {got:?}, expected {expect:?}");
        }
        // Invalid UTF-8 anywhere in a string, and a lone surrogate in a string that is read.
        let mut bytes = CALL.as_bytes().to_vec();
        let at = CALL.find("/x").unwrap() + 1;
        bytes[at] = 0xc0;
        assert_eq!(check_in(&h, &bytes, 5), Err(Disagreement::NotJson));
        // A string the server reads only as an argument may hold a lone surrogate escape.
        assert_eq!(check(&h, &CALL.replace("/x", "\\udc00")), Ok(()));
    }

    #[test]
    fn repeats_of_members_not_read_are_the_servers_business() {
        let h = headers("2026-07-28", "tools/call", Some("read_file"));
        assert_eq!(check(&h, &CALL.replace(r#""ok":true"#, r#""ok":true,"ok":false"#)), Ok(()));
        assert_eq!(check(&h, &CALL.replace(r#""id":7"#, r#""id":7,"extra":1,"extra":2"#)), Ok(()));
    }

    #[test]
    fn depth_is_bounded_and_a_refusal_sticks() {
        let h = headers("2026-07-28", "tools/call", Some("read_file"));
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        let body = CALL.replace("[1,", &format!("[{deep},"));
        assert_eq!(check_in(&h, body.as_bytes(), 64), Err(Disagreement::TooDeep));
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH - 5), "]".repeat(MAX_DEPTH - 5));
        assert_eq!(check_in(&h, CALL.replace("[1,", &format!("[{ok},")).as_bytes(), 64), Ok(()));
        let Ok(Source::Headers(announced)) = headers::read(&h) else { panic!() };
        let mut a = Agreement::new(Expected::new(&announced));
        assert!(a.feed(CALL.replace("read_file", "x").as_bytes()).is_ok(), "only the end tells a short name");
        assert_eq!(a.finish(), Err(Disagreement::Mismatch(Mismatch::Name)));
        assert!(a.feed(b" ").is_err() && a.finish().is_err());
    }

    #[test]
    fn the_answer_echoes_the_id_read() {
        let h = headers("2026-07-28", "tools/call", Some("read_file"));
        let Ok(Source::Headers(announced)) = headers::read(&h) else { panic!() };
        let mut a = Agreement::new(Expected::new(&announced));
        let e = a.feed(CALL.replace("tools/call", "tools/list").as_bytes()).and_then(|()| a.finish()).unwrap_err();
        let body: serde_json::Value = serde_json::from_slice(&e.answer(a.id().as_ref())).unwrap();
        assert_eq!(
            (body["id"].clone(), body["error"]["code"].clone()),
            (serde_json::json!(7), serde_json::json!(-32020))
        );
        let body: serde_json::Value = serde_json::from_slice(&Disagreement::NotJson.answer(None)).unwrap();
        assert_eq!(body["error"]["code"], -32600);
        assert!(body.get("id").is_none());
    }
}
