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

// The members read, one bit each: a second one leaves the body to the checker, which refuses it.
const JSONRPC: u16 = 1;
const ID: u16 = 1 << 1;
const METHOD: u16 = 1 << 2;
const PARAMS: u16 = 1 << 3;
const NAME: u16 = 1 << 4;
const URI: u16 = 1 << 5;
const META: u16 = 1 << 6;
const VERSION: u16 = 1 << 7;
/// `result` or `error`: never in a request, so the body is the checker's.
const ANSWER: u16 = 1 << 8;
/// A member the scan does not read.
const OTHER: u16 = 0;

/// A member name the scan reads, compared in place: the name and its closing `"` as the low
/// bytes of a little-endian word (each is at most seven bytes), under a mask of their length.
/// A name holds no `"` or `\`, so bytes that equal it and then `"` are exactly that string.
struct Name {
    len: usize,
    word: u64,
    mask: u64,
    member: u16,
}

const fn name(text: &'static [u8], member: u16) -> Name {
    assert!(text.len() < 8);
    let mut word = 0u64;
    let mut i = 0;
    while i < text.len() {
        word |= (text[i] as u64) << (8 * i);
        i += 1;
    }
    word |= (b'"' as u64) << (8 * text.len());
    let mask = if text.len() == 7 { u64::MAX } else { (1u64 << (8 * (text.len() + 1))) - 1 };
    Name { len: text.len(), word, mask, member }
}

const TOP: [Name; 6] = [
    name(b"jsonrpc", JSONRPC),
    name(b"id", ID),
    name(b"method", METHOD),
    name(b"params", PARAMS),
    name(b"result", ANSWER),
    name(b"error", ANSWER),
];
const IN_PARAMS: [Name; 3] = [name(b"name", NAME), name(b"uri", URI), name(b"_meta", META)];
/// The version's member name and its closing `"`, compared whole, as five words.
const VERSION_QUOTED: &[u8; 40] = b"io.modelcontextprotocol/protocolVersion\"";
/// `2.0` and its closing `"`, as the low bytes of a word.
const V2_QUOTED: u32 = u32::from_le_bytes(*b"2.0\"");

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
    #[inline(always)]
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
        self.members(&TOP, |scan, member| match member {
            JSONRPC => {
                scan.once(JSONRPC)?;
                scan.two_point_o()
            }
            ID => {
                scan.once(ID)?;
                scan.id()
            }
            METHOD => {
                scan.once(METHOD)?;
                scan.equal(expected.method.bytes(), expected.direct)
            }
            PARAMS => {
                scan.once(PARAMS)?;
                scan.eat(b'{')?;
                scan.params(expected)
            }
            OTHER => scan.skip(),
            _ => None,
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
        self.members(&IN_PARAMS, |scan, member| match member {
            NAME | URI => {
                let kind = if member == NAME { TargetKind::Name } else { TargetKind::Uri };
                scan.once(member)?;
                match &expected.target {
                    Some((announced, text)) if *announced == kind => scan.equal(text.bytes(), expected.direct),
                    _ => scan.skip(),
                }
            }
            META => {
                scan.once(META)?;
                scan.eat(b'{')?;
                scan.members(&[], |scan, member| match member {
                    VERSION => {
                        scan.once(VERSION)?;
                        // Digits and `-`, which compare in place.
                        scan.equal(&expected.version, true)
                    }
                    _ => scan.skip(),
                })
            }
            _ => scan.skip(),
        })
    }

    /// The members of an object whose `{` was read, each handed to `member` as the bit of a
    /// name among `known` (or the version's, where `known` is empty), or [`OTHER`], with the
    /// scan at its value, which `member` must consume. Names among `known` are compared in
    /// place; any other is read as a string free of escapes.
    #[inline(always)]
    fn members(&mut self, known: &[Name], mut member: impl FnMut(&mut Self, u16) -> Option<()>) -> Option<()> {
        self.ws();
        if self.bytes.get(self.at) == Some(&b'}') {
            self.at += 1;
            return Some(());
        }
        loop {
            self.eat(b'"')?;
            let bit = match self.known(known) {
                Some(bit) => bit,
                None => {
                    self.plain()?;
                    OTHER
                }
            };
            self.eat_ws(b':')?;
            self.ws();
            member(self, bit)?;
            // Compact JSON has the `,` or `}` right after the value, and the next name's `"`
            // right after the `,`.
            if self.bytes.get(self.at) == Some(&b',') {
                self.at += 1;
                if self.bytes.get(self.at) != Some(&b'"') {
                    self.ws();
                }
                continue;
            }
            self.ws();
            match self.next()? {
                b',' => self.ws(),
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// The bit of the member name at the scan (its `"` read) when it is one of `known` or,
    /// where `known` is empty, the version's, read past its closing `"`.
    #[inline(always)]
    fn known(&mut self, known: &[Name]) -> Option<u16> {
        let rest = self.bytes.get(self.at..)?;
        let word = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?);
        if let Some(name) = known.iter().find(|name| word & name.mask == name.word) {
            self.at += name.len + 1;
            return Some(name.member);
        }
        if known.is_empty() && same(rest.get(..VERSION_QUOTED.len())?, VERSION_QUOTED) {
            self.at += VERSION_QUOTED.len();
            return Some(VERSION);
        }
        None
    }

    /// The string `"2.0"`, as one word.
    #[inline(always)]
    fn two_point_o(&mut self) -> Option<()> {
        self.eat(b'"')?;
        let text: [u8; 4] = self.bytes.get(self.at..self.at + 4)?.try_into().ok()?;
        self.at += 4;
        (u32::from_le_bytes(text) == V2_QUOTED).then_some(())
    }

    /// A string value free of escapes, equal to `expected`. With `direct` (`expected` holds
    /// no `"`, `\` or control character, and is well-formed UTF-8), its bytes and the closing
    /// `"` are compared in place: the string they start is then exactly `expected`, and any
    /// other is not.
    #[inline(always)]
    fn equal(&mut self, expected: &[u8], direct: bool) -> Option<()> {
        self.eat(b'"')?;
        if direct {
            let end = self.at + expected.len();
            let same = self.bytes.get(self.at..end).is_some_and(|text| same(text, expected))
                && self.bytes.get(end) == Some(&b'"');
            self.at = end + 1;
            return same.then_some(());
        }
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

/// `a == b`, a text of 8 bytes or more (a method, a tool name, a version, the version's member
/// name) compared a word at a time, the last word overlapping the one before it, without a call.
#[inline(always)]
fn same(a: &[u8], b: &[u8]) -> bool {
    let word = |bytes: &[u8], at: usize| bytes.get(at..at + 8).and_then(|w| w.try_into().ok()).map(u64::from_ne_bytes);
    if a.len() != b.len() || a.len() < 8 {
        return a == b;
    }
    let last = a.len() - 8;
    let mut at = 0;
    while at < last {
        if word(a, at) != word(b, at) {
            return false;
        }
        at += 8;
    }
    word(a, last) == word(b, last)
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
        // Names near the ones compared in place are read as strings, and stepped over.
        let near = r#"{"jsonrpc":"2.0","ids":1,"i":2,"methods":"x","method":"tools/call","params":{"names":1,"name":"read_file","_met":{},"_meta":{"io.modelcontextprotocol/protocolVersio":1,"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
        assert!(agrees(near.as_bytes(), &call) && checker(&call, near));
        // The same names at the very end of a body, too short for a word, are read as strings.
        let short = r#"{"method":"ping","jsonrpc":"2.0","id":1}"#;
        assert!(agrees(short.as_bytes(), &expected("ping", None)));
    }

    #[test]
    fn texts_compare_as_slices_do() {
        let text = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN";
        for len in 0..=text.len() {
            for at in 0..len {
                let mut other = text[..len].to_vec();
                other[at] ^= 1;
                assert!(!super::same(&text[..len], &other), "{len} {at}");
            }
            assert!(super::same(&text[..len], &text[..len]));
        }
        assert!(!super::same(b"01234567", b"012345678"));
    }

    #[test]
    fn a_target_a_string_holds_only_escaped_is_never_compared_in_place() {
        // `Mcp-Name` of `a"b` (sent Base64-encoded): only the escaped string says it, and that is
        // the checker's to judge; the bytes `a"b` followed by `"` are not that string.
        let quoted = expected("tools/call", Some("a\"b"));
        let escaped = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a\"b"}}"#;
        assert!(!agrees(escaped.as_bytes(), &quoted));
        assert!(checker(&quoted, escaped));
        let raw = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"b"}}"#;
        assert!(!agrees(raw.as_bytes(), &quoted));
        assert!(!checker(&quoted, raw));
        let slash = expected("tools/call", Some("a\\b"));
        let raw = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a\b"}}"#;
        assert!(!agrees(raw.as_bytes(), &slash));
        // A longer string that starts with the expected text is another string.
        let call = expected("tools/call", Some("read_file"));
        assert!(!agrees(CALL.replace("read_file", "read_files").as_bytes(), &call));
        assert!(!agrees(CALL.replace("tools/call", "tools/calls").as_bytes(), &call));
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
