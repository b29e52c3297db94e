//! The common body read without serde: one JSON-RPC message object, with member names and the
//! strings the edge reads free of escapes, nested at most [`MAX_DEPTH`] deep. Such a body is
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

/// Containers skipped inside one another, at most (one bit each in a `u64`).
const MAX_DEPTH: u32 = 64;

/// Member names one read object may have before the body is left to the serde reader.
const MAX_MEMBERS: usize = 8;

/// The bytes that end a run of plain string: `"`, `\` and the control characters.
const STOP: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// The message of a body that is one JSON-RPC object, read as the serde reader would; `None`
/// when this reader gives up. `body` has been checked as UTF-8.
pub(super) fn single(body: &str) -> Option<RawMessage<'_>> {
    let mut reader = Reader { text: body, bytes: body.as_bytes(), at: 0 };
    reader.ws();
    reader.expect(b'{')?;
    let message = reader.message()?;
    reader.ws();
    (reader.at == reader.bytes.len()).then_some(message)
}

/// Where the first byte of [`STOP`] is, eight bytes at a time: strings (a tool's arguments
/// above all) are most of a body.
fn find_stop(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in chunks.by_ref() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let (quote, backslash) = (w ^ (ONES * u64::from(b'"')), w ^ (ONES * u64::from(b'\\')));
        // A byte's high bit is set for a zero byte of `quote` or `backslash` (the byte is `"`
        // or `\`), or for a byte of `w` below 0x20; borrows can only mark bytes above the
        // first such byte, so the lowest mark is exact.
        let marks = (quote.wrapping_sub(ONES) & !quote
            | backslash.wrapping_sub(ONES) & !backslash
            | w.wrapping_sub(ONES * 0x20) & !w)
            & HIGH;
        if marks != 0 {
            return Some(at + (marks.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks.remainder().iter().position(|&b| STOP[usize::from(b)]).map(|p| at + p)
}

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        (self.next()? == b).then_some(())
    }

    /// The members of an object whose `{` was read, each handed to `read` with the reader at
    /// its value (which `read` must consume).
    fn members(&mut self, mut read: impl FnMut(&'a str, &mut Self) -> Option<()>) -> Option<()> {
        let mut seen: [&str; MAX_MEMBERS] = [""; MAX_MEMBERS];
        let mut count = 0;
        self.ws();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            self.expect(b'"')?;
            let key = self.plain_string()?;
            // A repeated name refuses the body; the serde reader says which.
            if count == MAX_MEMBERS || seen[..count].contains(&key) {
                return None;
            }
            seen[count] = key;
            count += 1;
            self.ws();
            self.expect(b':')?;
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
            match key {
                "jsonrpc" => jsonrpc = r.loose()?,
                "id" => id = r.loose()?,
                "method" => method = r.loose()?,
                "params" => params = r.object(Reader::params)?,
                "result" | "error" => {
                    r.skip()?;
                    outcome = match (outcome, key) {
                        (Outcome::Neither, "result") => Outcome::Result,
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
            match key {
                "name" => name = r.loose()?,
                "uri" => uri = r.loose()?,
                "_meta" => meta = r.object(Reader::meta)?,
                _ => r.skip()?,
            }
            Some(())
        })?;
        Some(RawParams { dup: None, name, uri, meta })
    }

    fn meta(&mut self) -> Option<RawMeta<'a>> {
        let mut version = Loose::Absent;
        self.members(|key, r| {
            match key {
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
            b't' => self.literal(b"rue", Loose::Other),
            b'f' => self.literal(b"alse", Loose::Other),
            b'n' => self.literal(b"ull", Loose::Null),
            b'[' | b'{' => {
                self.at -= 1;
                self.skip().map(|()| Loose::Other)
            }
            _ => None,
        }
    }

    fn literal(&mut self, rest: &[u8], value: Loose<'a>) -> Option<Loose<'a>> {
        let end = self.at + rest.len();
        (self.bytes.get(self.at..end)? == rest).then(|| {
            self.at = end;
            value
        })
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
        let len = find_stop(self.bytes.get(start..)?)?;
        self.at = start + len + 1;
        match self.bytes[start + len] {
            b'"' => self.text.get(start..start + len),
            _ => None,
        }
    }

    /// The rest of a string not read (its opening quote read): escapes are checked as
    /// serde_json checks a string it skips, which is without pairing surrogates.
    fn skip_string(&mut self) -> Option<()> {
        loop {
            self.at += find_stop(self.bytes.get(self.at..)?)?;
            match self.next()? {
                b'"' => return Some(()),
                b'\\' => match self.next()? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                    b'u' => {
                        let hex = self.bytes.get(self.at..self.at + 4)?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return None;
                        }
                        self.at += 4;
                    }
                    _ => return None,
                },
                _ => return None,
            }
        }
    }

    /// The grammar of a number not read, its first byte read.
    fn skip_number(&mut self, first: u8) -> Option<()> {
        let lead = if first == b'-' { self.next()? } else { first };
        match lead {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.some_digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            self.some_digits()?;
        }
        Some(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
    }

    fn some_digits(&mut self) -> Option<()> {
        let start = self.at;
        self.digits();
        (self.at > start).then_some(())
    }

    /// One value not read, however nested (to [`MAX_DEPTH`]), checked as strict JSON.
    fn skip(&mut self) -> Option<()> {
        // One bit per open container, set for an array.
        let mut arrays = 0u64;
        let mut depth = 0u32;
        'value: loop {
            self.ws();
            match self.next()? {
                b'"' => self.skip_string()?,
                open @ (b'{' | b'[') => {
                    self.ws();
                    let close = if open == b'{' { b'}' } else { b']' };
                    if self.peek()? == close {
                        self.at += 1;
                    } else {
                        if depth == MAX_DEPTH {
                            return None;
                        }
                        if open == b'[' {
                            arrays |= 1 << depth;
                        } else {
                            arrays &= !(1 << depth);
                            self.skip_key()?;
                        }
                        depth += 1;
                        continue 'value;
                    }
                }
                b't' => self.literal(b"rue", Loose::Other).map(drop)?,
                b'f' => self.literal(b"alse", Loose::Other).map(drop)?,
                b'n' => self.literal(b"ull", Loose::Null).map(drop)?,
                b @ (b'-' | b'0'..=b'9') => self.skip_number(b)?,
                _ => return None,
            }
            // A value ended: what follows it in its container, until one needs another value.
            loop {
                if depth == 0 {
                    return Some(());
                }
                self.ws();
                let array = arrays & (1 << (depth - 1)) != 0;
                match (self.next()?, array) {
                    (b',', true) => continue 'value,
                    (b',', false) => {
                        self.ws();
                        self.skip_key()?;
                        continue 'value;
                    }
                    (b']', true) | (b'}', false) => depth -= 1,
                    _ => return None,
                }
            }
        }
    }

    /// A member name not read and its `:`.
    fn skip_key(&mut self) -> Option<()> {
        self.expect(b'"')?;
        self.skip_string()?;
        self.ws();
        self.expect(b':')
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
    fn the_stop_byte_is_found_wherever_it_is() {
        for len in 0..40 {
            for at in 0..=len {
                for stop in [b'"', b'\\', 0x00, 0x1f] {
                    // Bytes around the stop that must not be taken for it: the bytes next to
                    // each stop value, and non-ASCII.
                    let mut bytes: Vec<u8> =
                        (0..len).map(|i| [b'!', b'#', b'[', b']', b' ', 0xc3, 0xff, b'a'][i % 8]).collect();
                    let expected = (at < len).then(|| {
                        bytes[at] = stop;
                        at
                    });
                    assert_eq!(super::find_stop(&bytes), expected, "{bytes:?}");
                }
            }
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
