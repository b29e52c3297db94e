//! The usual body, come whole, compared with the headers in one pass that builds nothing: each
//! member the edge reads is compared with its header's value where it stands, everything else
//! is stepped over as strict JSON. A body of one plain message costs a few instructions a byte
//! this way, against several times that for reading it into a message first.
//!
//! The contract, which the fuzz target `mcp_agreement` holds it to: [`agrees`] says yes only for
//! a body the byte-wise checker fed it whole accepts. It never refuses: anything it does not
//! take as it is (a batch, an escape in a string it compares or in a member name where the edge
//! reads names, a surrogate escape anywhere, a repeated member the edge reads, `result` or
//! `error`, an id that is not a plain string or a small integer, nesting past [`MAX_DEPTH`](crate::mcp::json::MAX_DEPTH),
//! any syntax error, any value that disagrees) is left to the checker, which says why.

use super::Expected;
use crate::config::policy::TargetKind;
use crate::mcp::json::{on_cursor, Cursor};

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
    let mut scan = Scan { cursor: Cursor::new(body, false), seen: 0 };
    scan.message(expected).is_some() && scan.at == body.len()
}

struct Scan<'a> {
    cursor: Cursor<'a>,
    /// The members read so far.
    seen: u16,
}

on_cursor!(Scan);

impl<'a> Scan<'a> {
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
