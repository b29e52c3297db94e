//! The usual body, come whole, compared with the headers in one pass that builds nothing: each
//! member the edge reads is compared with its header's value where it stands, everything else
//! is stepped over as strict JSON. A body of one plain message costs a few instructions a byte
//! this way, against several times that for reading it into a message first.
//!
//! The contract, which the fuzz target `mcp_agreement` holds it to: [`agrees`] says yes only for
//! a body the byte-wise checker fed it whole accepts. It never refuses: anything it does not
//! take as it is (a batch, an escape in a string it compares or in a member name where the edge
//! reads names, a surrogate escape anywhere, a repeated member the edge reads, `result` or
//! `error`, an id that is not a plain string or a small integer, nesting past [`MAX_DEPTH`],
//! any syntax error, any value that disagrees) is left to the checker, which says why.

use super::Expected;
use crate::config::policy::TargetKind;

/// Containers skipped inside one another, at most (one bit each in a `u64`).
const MAX_DEPTH: u32 = 64;

/// The protocol version's member of `params._meta`.
const VERSION_KEY: &[u8] = b"io.modelcontextprotocol/protocolVersion";

// The members read, one bit each: a second one leaves the body to the checker, which refuses it.
const JSONRPC: u16 = 1;
const ID: u16 = 1 << 1;
const METHOD: u16 = 1 << 2;
const PARAMS: u16 = 1 << 3;
const NAME: u16 = 1 << 4;
const URI: u16 = 1 << 5;
const META: u16 = 1 << 6;
const VERSION: u16 = 1 << 7;

/// Whether `body`, the whole of it, is one JSON-RPC request or notification that says what
/// `expected` says, as the byte-wise checker would find; `false` says nothing either way.
pub(super) fn agrees(body: &[u8], expected: &Expected) -> bool {
    let mut scan = Scan { bytes: body, at: 0, seen: 0 };
    scan.message(expected).is_some() && scan.at == body.len()
}

/// Where the first byte from `at` on that ends a run of plain string is (`"`, `\`, a control
/// character or a byte of a UTF-8 sequence), eight bytes at a time: a word is read past the
/// string's end when the body goes on, so a short string (most member names and values) costs
/// one word.
#[inline(always)]
fn find_stop(bytes: &[u8], mut at: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let (quote, backslash) = (w ^ (ONES * u64::from(b'"')), w ^ (ONES * u64::from(b'\\')));
        // A byte's high bit is set for a zero byte of `quote` or `backslash`, a byte of `w`
        // below 0x20, or one at 0x80 and above; borrows only mark bytes above the first zero or
        // control byte, so the lowest mark is exact.
        let marks = (quote.wrapping_sub(ONES) & !quote
            | backslash.wrapping_sub(ONES) & !backslash
            | w.wrapping_sub(ONES * 0x20) & !w
            | w)
            & HIGH;
        if marks != 0 {
            return Some(at + (marks.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let rest = bytes.get(at..)?;
    rest.iter().position(|&b| b < 0x20 || b == b'"' || b == b'\\' || b >= 0x80).map(|p| at + p)
}

struct Scan<'a> {
    bytes: &'a [u8],
    at: usize,
    /// The members read so far.
    seen: u16,
}

impl<'a> Scan<'a> {
    #[inline(always)]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    #[inline(always)]
    fn next(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    #[inline(always)]
    fn eat(&mut self, b: u8) -> Option<()> {
        (self.next()? == b).then_some(())
    }

    /// Notes a member read; `None` when it was read before.
    fn once(&mut self, member: u16) -> Option<()> {
        let fresh = self.seen & member == 0;
        self.seen |= member;
        fresh.then_some(())
    }

    /// The message: `jsonrpc` and `method` equal to what is expected, the target and version too
    /// when `params` has them, and no `result` or `error`.
    fn message(&mut self, expected: &Expected) -> Option<()> {
        self.ws();
        self.eat(b'{')?;
        self.members(|scan, key| match key {
            b"jsonrpc" => {
                scan.once(JSONRPC)?;
                scan.equal(b"2.0")
            }
            b"id" => {
                scan.once(ID)?;
                scan.id()
            }
            b"method" => {
                scan.once(METHOD)?;
                scan.equal(expected.method.bytes())
            }
            b"params" => {
                scan.once(PARAMS)?;
                scan.eat(b'{')?;
                scan.params(expected)
            }
            b"result" | b"error" => None,
            _ => scan.skip(),
        })?;
        self.ws();
        let target = match &expected.target {
            None => 0,
            Some((TargetKind::Name, _)) => NAME,
            Some((TargetKind::Uri, _)) => URI,
        };
        let needed = JSONRPC | METHOD | target;
        (self.seen & needed == needed).then_some(())
    }

    /// The members of `params` (its `{` read): the announced target compared, the other one
    /// stepped over as the checker does.
    fn params(&mut self, expected: &Expected) -> Option<()> {
        self.members(|scan, key| match key {
            b"name" | b"uri" => {
                let (member, kind) = if key == b"name" { (NAME, TargetKind::Name) } else { (URI, TargetKind::Uri) };
                scan.once(member)?;
                match &expected.target {
                    Some((announced, text)) if *announced == kind => scan.equal(text.bytes()),
                    _ => scan.skip(),
                }
            }
            b"_meta" => {
                scan.once(META)?;
                scan.eat(b'{')?;
                scan.members(|scan, key| match key {
                    VERSION_KEY => {
                        scan.once(VERSION)?;
                        scan.equal(&expected.version)
                    }
                    _ => scan.skip(),
                })
            }
            _ => scan.skip(),
        })
    }

    /// The members of an object whose `{` was read, each name (free of escapes) handed to
    /// `member` with the scan at its value, which `member` must consume.
    fn members(&mut self, mut member: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
        self.ws();
        if self.bytes.get(self.at) == Some(&b'}') {
            self.at += 1;
            return Some(());
        }
        loop {
            self.eat(b'"')?;
            let key = self.plain()?;
            // Compact JSON has the `:` right after the name.
            if self.bytes.get(self.at) != Some(&b':') {
                self.ws();
            }
            self.eat(b':')?;
            self.ws();
            member(self, key)?;
            self.ws();
            match self.next()? {
                b',' => self.ws(),
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// A string value free of escapes, equal to `expected`.
    #[inline(always)]
    fn equal(&mut self, expected: &[u8]) -> Option<()> {
        self.eat(b'"')?;
        (self.plain()? == expected).then_some(())
    }

    /// The request id: a string free of escapes, or an integer of at most 18 digits (within
    /// `i64` whatever its sign), not `-0`. Anything else is the checker's to judge.
    fn id(&mut self) -> Option<()> {
        match self.next()? {
            b'"' => self.plain().map(drop),
            first @ (b'-' | b'0'..=b'9') => {
                let lead = if first == b'-' { self.next()? } else { first };
                let start = self.at;
                while let Some(b'0'..=b'9') = self.bytes.get(self.at) {
                    self.at += 1;
                }
                let more = self.at - start;
                let fine = match lead {
                    b'0' => more == 0 && first != b'-',
                    b'1'..=b'9' => more < 18,
                    _ => false,
                };
                let ends = !matches!(self.bytes.get(self.at), Some(b'.' | b'e' | b'E'));
                (fine && ends).then_some(())
            }
            _ => None,
        }
    }

    /// The rest of a string free of escapes (its opening quote read), its bytes well-formed
    /// UTF-8.
    #[inline(always)]
    fn plain(&mut self) -> Option<&'a [u8]> {
        let start = self.at;
        loop {
            self.at = find_stop(self.bytes, self.at)?;
            match self.bytes[self.at] {
                b'"' => {
                    self.at += 1;
                    return self.bytes.get(start..self.at - 1);
                }
                0x80.. => self.utf8()?,
                _ => return None,
            }
        }
    }

    /// The rest of a string not compared (its opening quote read).
    fn skip_string(&mut self) -> Option<()> {
        loop {
            self.at = find_stop(self.bytes, self.at)?;
            match self.bytes[self.at] {
                b'"' => {
                    self.at += 1;
                    return Some(());
                }
                b'\\' => self.escape()?,
                0x80.. => self.utf8()?,
                _ => return None,
            }
        }
    }

    /// An escape, at its `\`. A `\u` of a surrogate is left to the checker: whether it must be
    /// paired depends on whether serde_json reads the string or skips it.
    fn escape(&mut self) -> Option<()> {
        match *self.bytes.get(self.at + 1)? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 2,
            b'u' => {
                let hex = self.bytes.get(self.at + 2..self.at + 6)?;
                let unit = hex.iter().try_fold(0u32, |unit, &h| Some(unit * 16 + char::from(h).to_digit(16)?))?;
                if (0xd800..=0xdfff).contains(&unit) {
                    return None;
                }
                self.at += 6;
            }
            _ => return None,
        }
        Some(())
    }

    /// A UTF-8 sequence at its lead byte (0x80 or above), well-formed as RFC 3629's table has it.
    fn utf8(&mut self) -> Option<()> {
        let (more, low, high) = match self.bytes[self.at] {
            0xc2..=0xdf => (1, 0x80, 0xbf),
            0xe0 => (2, 0xa0, 0xbf),
            0xe1..=0xec | 0xee..=0xef => (2, 0x80, 0xbf),
            0xed => (2, 0x80, 0x9f),
            0xf0 => (3, 0x90, 0xbf),
            0xf1..=0xf3 => (3, 0x80, 0xbf),
            0xf4 => (3, 0x80, 0x8f),
            _ => return None,
        };
        let rest = self.bytes.get(self.at + 1..self.at + 1 + more)?;
        let well_formed = (low..=high).contains(&rest[0]) && rest[1..].iter().all(|&b| (0x80..=0xbf).contains(&b));
        self.at += 1 + more;
        well_formed.then_some(())
    }

    /// The grammar of a number not read, at its first byte.
    fn skip_number(&mut self) -> Option<()> {
        if self.bytes.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            self.some_digits()?;
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.at) {
            self.at += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.at) {
                self.at += 1;
            }
            self.some_digits()?;
        }
        Some(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    fn some_digits(&mut self) -> Option<()> {
        let start = self.at;
        self.digits();
        (self.at > start).then_some(())
    }

    fn literal(&mut self, text: &[u8]) -> Option<()> {
        let end = self.at + text.len();
        (self.bytes.get(self.at..end)? == text).then(|| self.at = end)
    }

    /// One value not read, however nested (to [`MAX_DEPTH`]), checked as strict JSON.
    fn skip(&mut self) -> Option<()> {
        // One bit per open container, set for an array.
        let mut arrays = 0u64;
        let mut depth = 0u32;
        'value: loop {
            self.ws();
            match *self.bytes.get(self.at)? {
                b'"' => {
                    self.at += 1;
                    self.skip_string()?;
                }
                open @ (b'{' | b'[') => {
                    self.at += 1;
                    self.ws();
                    let close = if open == b'{' { b'}' } else { b']' };
                    if *self.bytes.get(self.at)? == close {
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
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'-' | b'0'..=b'9' => self.skip_number()?,
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
        self.eat(b'"')?;
        self.skip_string()?;
        self.ws();
        self.eat(b':')
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue};

    use super::agrees;
    use crate::mcp::agreement::{Agreement, Expected};
    use crate::mcp::headers::{self, Source};

    const CALL: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/srv/notes.txt"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;

    fn expected(method: &str, name: Option<&str>) -> Expected {
        let mut h = HeaderMap::new();
        h.insert(headers::MCP_PROTOCOL_VERSION, HeaderValue::from_static("2026-07-28"));
        h.insert(headers::MCP_METHOD, HeaderValue::from_str(method).unwrap());
        if let Some(name) = name {
            h.insert(headers::MCP_NAME, HeaderValue::from_str(&headers::encode_value(name)).unwrap());
        }
        let Ok(Source::Headers(announced)) = headers::read(&h) else { panic!("headers") };
        Expected::new(&announced)
    }

    /// What the byte-wise checker says of the body fed whole.
    fn checker(expected: &Expected, body: &str) -> bool {
        let mut a = Agreement::new(expected.clone());
        a.feed(body.as_bytes()).and_then(|()| a.finish()).is_ok()
    }

    #[test]
    fn bodies_as_clients_send_them_agree_in_one_pass() {
        let call = expected("tools/call", Some("read_file"));
        for body in [
            CALL,
            r#" { "jsonrpc" : "2.0" , "id" : "a-1" , "method" : "tools/call" , "params" : { "name" : "read_file" } } "#,
            r#"{"jsonrpc":"2.0","id":-9,"method":"tools/call","params":{"arguments":{"q":"is:open \"bug\" \u00e9 ünï","n":[1,-2.5e+3,true,false,null,{}]},"name":"read_file","uri":7}}"#,
            r#"{"method":"tools/call","params":{"name":"read_file","_meta":{}},"jsonrpc":"2.0","x":1,"x":2}"#,
        ] {
            assert!(agrees(body.as_bytes(), &call), "{body}");
            assert!(checker(&call, body), "{body}");
        }
        let n = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        assert!(agrees(n.as_bytes(), &expected("notifications/initialized", None)));
        // A target sent Base64-encoded is compared decoded.
        let r = r#"{"jsonrpc":"2.0","id":0,"method":"resources/read","params":{"uri":"file:///a b/é"}}"#;
        assert!(agrees(r.as_bytes(), &expected("resources/read", Some("file:///a b/é"))));
        assert!(!agrees(r.as_bytes(), &expected("resources/read", Some("file:///a b/e"))));
    }

    #[test]
    fn the_stop_byte_is_found_wherever_it_is() {
        for len in 0..40 {
            for at in 0..=len {
                for stop in [b'"', b'\\', 0x00, 0x1f, 0x80, 0xff] {
                    // Bytes around the stop values that must not be taken for one.
                    let mut bytes: Vec<u8> =
                        (0..len).map(|i| [b'!', b'#', b'[', b']', b' ', 0x7f, b'a'][i % 7]).collect();
                    let expected = (at < len).then(|| {
                        bytes[at] = stop;
                        at
                    });
                    for from in 0..=at.min(len) {
                        assert_eq!(super::find_stop(&bytes, from), expected, "{bytes:?} from {from}");
                    }
                }
            }
        }
        assert_eq!(super::find_stop(b"ab", 3), None);
    }

    #[test]
    fn what_it_does_not_take_is_left_to_the_checker() {
        let call = expected("tools/call", Some("read_file"));
        for body in [
            CALL.replace("read_file", "read_fil"),
            CALL.replace("read_file", "read\\u005ffile"),
            CALL.replace("tools/call", "tools\\/call"),
            CALL.replace("2026-07-28\"}", "2025-11-25\"}"),
            CALL.replace(r#""id":2"#, r#""id":2,"id":3"#),
            CALL.replace(r#""id":2"#, r#""id":-0"#),
            CALL.replace(r#""id":2"#, r#""id":2.0"#),
            CALL.replace(r#""id":2"#, r#""id":1234567890123456789"#),
            CALL.replace(r#""id":2"#, r#""id":null"#),
            CALL.replace(r#""id":2"#, r#""result":{}"#),
            CALL.replace(r#""name":"read_file","#, ""),
            CALL.replace("/srv/notes.txt", "\\ud800"),
            CALL.replace("/srv/notes.txt", "\\x"),
            CALL.replace("/srv/notes.txt", "\t"),
            format!("{CALL} x"),
            format!("[{CALL}]"),
            CALL.replace("}}}", "}}"),
            CALL.replace("}}}", "},}}"),
            CALL.replace(r#""jsonrpc":"2.0","#, ""),
            format!("{CALL}{{}}"),
        ] {
            assert!(!agrees(body.as_bytes(), &call), "{body}");
        }
        // Ill-formed UTF-8 in a string never agrees here.
        for bad in [&[0xc0, 0x80][..], &[0xed, 0xa0, 0x80], &[0xe2, 0x82], &[0xf5, 0x80, 0x80, 0x80], &[0x80]] {
            let mut body = CALL.as_bytes().to_vec();
            let at = CALL.find("notes").unwrap();
            body.splice(at..at + 1, bad.iter().copied());
            assert!(!agrees(&body, &call), "{bad:?}");
        }
        let deep = |n: usize| CALL.replace("\"/srv/notes.txt\"", &format!("{}{}", "[".repeat(n), "]".repeat(n)));
        // `arguments` and the arrays in it, the innermost (empty) one taking no depth.
        assert!(agrees(deep(64).as_bytes(), &call));
        assert!(!agrees(deep(65).as_bytes(), &call));
        assert!(checker(&call, &deep(65)));
    }
}
