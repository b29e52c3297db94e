//! The common body read without serde: one JSON-RPC message object, with member names and the
//! strings the edge reads free of escapes, nested at most [`MAX_DEPTH`](crate::mcp::json::MAX_DEPTH) deep. Such a body is
//! most of what an MCP client sends, and a slice read in one pass with its state in locals costs
//! a fraction of the visitor machinery.
//!
//! The contract, which the fuzz target `mcp_operation` holds it to: what this returns is exactly
//! what the serde reader of the parent module reads from the same body, or `None`, and then the
//! serde reader reads it. It never decides that a body is refused; anything unusual (a batch,
//! an escape where a string is read, a repeated member name, a number that is not a plain
//! integer where one is read, any syntax error) is given up on, and the serde reader says why.

use std::borrow::Cow;

use super::{Loose, Obj, Outcome, RawMessage, RawMeta, RawParams};
use crate::mcp::json::{on_cursor, Cursor};

/// Member names one read object may have before the body is left to the serde reader.
const MAX_MEMBERS: usize = 8;

/// The message of a body that is one JSON-RPC object, read as the serde reader would; `None`
/// when this reader gives up. `body` has been checked as UTF-8.
pub(super) fn single(body: &str) -> Option<RawMessage<'_>> {
    let mut reader = Reader { text: body, cursor: Cursor::new(body.as_bytes(), true) };
    reader.ws();
    reader.eat(b'{')?;
    let message = reader.message()?;
    reader.ws();
    (reader.at == reader.bytes.len()).then_some(message)
}

/// A member name, with its bytes packed into a word when it is short (every name the edge
/// reads but one is), so that telling names apart is a comparison of words, not of strings.
#[derive(Clone, Copy)]
struct Name<'a> {
    text: &'a str,
    word: u64,
}

/// The word of every name longer than seven bytes.
const LONG: u64 = u64::MAX;

/// Up to seven bytes, and the length in the eighth: distinct names, distinct words.
const fn pack(bytes: &[u8]) -> u64 {
    if bytes.len() > 7 {
        return LONG;
    }
    let mut word = (bytes.len() as u64) << 56;
    let mut i = 0;
    while i < bytes.len() {
        word |= (bytes[i] as u64) << (8 * i);
        i += 1;
    }
    word
}

const JSONRPC: u64 = pack(b"jsonrpc");
const ID: u64 = pack(b"id");
const METHOD: u64 = pack(b"method");
const PARAMS: u64 = pack(b"params");
const RESULT: u64 = pack(b"result");
const ERROR: u64 = pack(b"error");
const NAME: u64 = pack(b"name");
const URI: u64 = pack(b"uri");
const META: u64 = pack(b"_meta");

impl<'a> Name<'a> {
    #[cfg(test)]
    fn new(text: &'a str) -> Name<'a> {
        Name { text, word: pack(text.as_bytes()) }
    }

    /// The name `text`, which starts at `start` in `body`: [`pack`]'s word, taken in one load
    /// from the body when eight bytes follow the name's start (all but at a body's very end)
    /// rather than a byte at a time.
    fn in_body(text: &'a str, body: &[u8], start: usize) -> Name<'a> {
        let len = text.len();
        let word = match body.get(start..start + 8) {
            Some(chunk) if len <= 7 => {
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(chunk);
                let kept = (1u64 << (8 * len)) - 1;
                (u64::from_le_bytes(bytes) & kept) | ((len as u64) << 56)
            }
            _ => pack(text.as_bytes()),
        };
        Name { text, word }
    }

    fn same(self, other: Name<'_>) -> bool {
        self.word == other.word && (self.word != LONG || self.text == other.text)
    }
}

struct Reader<'a> {
    text: &'a str,
    cursor: Cursor<'a>,
}

on_cursor!(Reader);

impl<'a> Reader<'a> {
    /// The members of an object whose `{` was read, each handed to `read` with the reader at
    /// its value (which `read` must consume).
    fn members(&mut self, mut read: impl FnMut(Name<'a>, &mut Self) -> Option<()>) -> Option<()> {
        let mut seen = [Name { text: "", word: 0 }; MAX_MEMBERS];
        let mut count = 0;
        self.ws();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            self.eat(b'"')?;
            let start = self.at;
            let key = Name::in_body(self.plain_string()?, self.bytes, start);
            // A repeated name refuses the body; the serde reader says which.
            if count == MAX_MEMBERS || seen[..count].iter().any(|s| s.same(key)) {
                return None;
            }
            seen[count] = key;
            count += 1;
            self.ws();
            self.eat(b':')?;
            self.ws();
            read(key, self)?;
            self.ws();
            match self.next()? {
                b',' => self.ws(),
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    fn message(&mut self) -> Option<RawMessage<'a>> {
        let (mut jsonrpc, mut id, mut method, mut params) = (Loose::Absent, Loose::Absent, Loose::Absent, Obj::Absent);
        let mut outcome = Outcome::Neither;
        self.members(|key, r| {
            match key.word {
                JSONRPC => jsonrpc = r.loose()?,
                ID => id = r.loose()?,
                METHOD => method = r.loose()?,
                PARAMS => params = r.object(Reader::params)?,
                RESULT | ERROR => {
                    r.skip()?;
                    outcome = match (outcome, key.word) {
                        (Outcome::Neither, RESULT) => Outcome::Result,
                        (Outcome::Neither, _) => Outcome::Error,
                        _ => Outcome::Both,
                    };
                }
                _ => r.skip()?,
            }
            Some(())
        })?;
        Some(RawMessage { dup: None, jsonrpc, id, method, params, outcome })
    }

    fn params(&mut self) -> Option<RawParams<'a>> {
        let (mut name, mut uri, mut meta) = (Loose::Absent, Loose::Absent, Obj::Absent);
        self.members(|key, r| {
            match key.word {
                NAME => name = r.loose()?,
                URI => uri = r.loose()?,
                META => meta = r.object(Reader::meta)?,
                _ => r.skip()?,
            }
            Some(())
        })?;
        Some(RawParams { dup: None, name, uri, meta })
    }

    fn meta(&mut self) -> Option<RawMeta<'a>> {
        let mut version = Loose::Absent;
        self.members(|key, r| {
            match key.text {
                "io.modelcontextprotocol/protocolVersion" => version = r.loose()?,
                _ => r.skip()?,
            }
            Some(())
        })?;
        Some(RawMeta { dup: None, version })
    }

    /// A member read as an object (`params`, `_meta`): any other value is noted as such.
    fn object<T>(&mut self, read: fn(&mut Self) -> Option<T>) -> Option<Obj<T>> {
        if self.peek()? == b'{' {
            self.at += 1;
            return read(self).map(Obj::Object);
        }
        self.loose().map(|_| Obj::Other)
    }

    /// A scalar member (`jsonrpc`, `id`, `method`, `name`, …) as the serde reader types it.
    fn loose(&mut self) -> Option<Loose<'a>> {
        match self.next()? {
            b'"' => self.plain_string().map(|s| Loose::Str(Cow::Borrowed(s))),
            b @ (b'-' | b'0'..=b'9') => self.integer(b),
            b't' => self.literal(b"rue").map(|()| Loose::Other),
            b'f' => self.literal(b"alse").map(|()| Loose::Other),
            b'n' => self.literal(b"ull").map(|()| Loose::Null),
            b'[' | b'{' => {
                self.at -= 1;
                self.skip().map(|()| Loose::Other)
            }
            _ => None,
        }
    }

    /// An integer, typed as serde_json types it: an `i64` when it is one, `Other` for a `u64`
    /// beyond it or `-0` (which it reads as a float). A fraction, an exponent or a magnitude
    /// beyond `u64` is given up on: serde_json reads those as floats and may refuse their range.
    fn integer(&mut self, first: u8) -> Option<Loose<'a>> {
        let negative = first == b'-';
        let lead = if negative { self.next()? } else { first };
        let mut magnitude = match lead {
            b'0' => 0u64,
            b'1'..=b'9' => u64::from(lead - b'0'),
            _ => return None,
        };
        while let Some(b @ b'0'..=b'9') = self.peek() {
            if lead == b'0' {
                return None;
            }
            magnitude = magnitude.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
            self.at += 1;
        }
        if let Some(b'.' | b'e' | b'E') = self.peek() {
            return None;
        }
        if !negative {
            return Some(i64::try_from(magnitude).map_or(Loose::Other, Loose::Int));
        }
        let value = (magnitude as i64).wrapping_neg();
        Some(if value >= 0 { Loose::Other } else { Loose::Int(value) })
    }

    /// The rest of a string with no escapes (its opening quote read), borrowed from the body.
    fn plain_string(&mut self) -> Option<&'a str> {
        let start = self.at;
        let bytes = self.plain()?;
        self.text.get(start..start + bytes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{extract, extract_by_serde};
    use super::single;

    /// Bodies the fast reader must read itself (each one as an SDK sends it, or close).
    const READ: &[&str] = &[
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/srv/notes.txt"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
        r#"{"jsonrpc":"2.0","id":"a-1","method":"resources/read","params":{"uri":"file:///public/a.txt"}}"#,
        r#" { "jsonrpc" : "2.0" , "method" : "notifications/initialized" } "#,
        r#"{"jsonrpc":"2.0","id":-9223372036854775808,"method":"ping"}"#,
        r#"{"jsonrpc":"2.0","id":9223372036854775808,"method":"ping"}"#,
        r#"{"jsonrpc":"2.0","id":-0,"method":"ping"}"#,
        r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
        r#"{"jsonrpc":"2.0","id":[1,{"a":[true,false,null,-1.5e+3]}],"method":"ping"}"#,
        r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"a \"quoted\" \u00e9 \ud800 line\n"}]}}"#,
        r#"{"jsonrpc":"2.0","id":7,"result":{},"error":{}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"x"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":3}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","_meta":[]}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ünï","arguments":{"k":[[],{},"",0]}}}"#,
        r#"{}"#,
    ];

    /// Bodies it must leave to serde (which refuses most of them).
    const LEFT: &[&str] = &[
        r#"[{"jsonrpc":"2.0","method":"ping","id":1}]"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"t"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call"}"#,
        r#"{"jsonrpc":"2.0","id":1.0,"method":"ping"}"#,
        r#"{"jsonrpc":"2.0","id":1e400,"method":"ping"}"#,
        r#"{"jsonrpc":"2.0","id":18446744073709551616,"method":"ping"}"#,
        r#"{"jsonrpc":"2.0","id":01,"method":"ping"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"ping",}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"ping","x":[1,]}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"ping","x":"\x"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"ping","x":"\u12"}"#,
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"x\":\"\t\"}",
        r#"{"jsonrpc":"2.0","id":1,"method":"ping","x":[}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"ping"} x"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"ping","x":tru}"#,
        r#"{"n\u0061me":1}"#,
        "",
        "\"str\"",
    ];

    #[test]
    fn plain_messages_are_read_without_serde_and_as_serde_reads_them() {
        for body in READ {
            assert!(single(body).is_some(), "left to serde: {body}");
            assert_eq!(extract(body.as_bytes()), extract_by_serde(body.as_bytes()), "{body}");
        }
    }

    #[test]
    fn anything_unusual_is_left_to_serde() {
        for body in LEFT {
            assert!(single(body).is_none(), "read: {body}");
            assert_eq!(extract(body.as_bytes()), extract_by_serde(body.as_bytes()), "{body}");
        }
    }

    #[test]
    fn names_are_told_apart_by_their_words_and_long_ones_by_their_text() {
        use super::{pack, Name, LONG};
        assert_ne!(pack(b"id"), pack(b"id\0"));
        assert_ne!(pack(b"method"), pack(b"metho"));
        assert_eq!(pack(b"protocol"), LONG);
        assert!(Name::new("jsonrpc").same(Name::new("jsonrpc")));
        assert!(!Name::new("jsonrpc").same(Name::new("jsonrpd")));
        assert!(Name::new("arguments").same(Name::new("arguments")));
        assert!(!Name::new("arguments").same(Name::new("argumentz")));
        // Read from a body, a name has the word packing gives it, whatever follows it, and at
        // the body's end too.
        let body = r#"{"":0,"a":1,"id":2,"method":"x","jsonrpc":"2.0","arguments":{}}"#;
        for name in ["", "a", "id", "method", "jsonrpc", "arguments"] {
            let start = body.find(&format!("\"{name}\"")).unwrap() + 1;
            assert_eq!(Name::in_body(name, body.as_bytes(), start).word, pack(name.as_bytes()), "{name}");
            let end = &body.as_bytes()[start..start + name.len()];
            assert_eq!(Name::in_body(name, end, 0).word, pack(name.as_bytes()), "{name} at the end");
        }
        // A name repeated, long or short, leaves the body to serde, which refuses it.
        for body in [r#"{"arguments":1,"arguments":2}"#, r#"{"params":{"name":"a","name":"b"}}"#] {
            assert!(single(body).is_none(), "{body}");
        }
    }

    #[test]
    fn nesting_past_the_bound_is_left_to_serde() {
        let deep = |n: usize| format!(r#"{{"jsonrpc":"2.0","method":"ping","x":{}{}}}"#, "[".repeat(n), "]".repeat(n));
        // The innermost `[]` is closed at once and takes no depth.
        assert!(single(&deep(65)).is_some());
        assert!(single(&deep(66)).is_none());
        assert_eq!(extract(deep(100_000).as_bytes()), extract_by_serde(deep(100_000).as_bytes()));
    }
}
