//! Lists filtered by permission (issue 12): the answers to `tools/list`, `prompts/list` and
//! `resources/list` lose the entries the caller could not use, each entry decided as if the
//! caller had called it (a tool by name for `tools/call`, a prompt for `prompts/get`, a
//! resource URI for `resources/read`).
//!
//! The MCP server's bytes are kept wherever nothing is removed: a body or an event with nothing
//! to remove is passed exactly as it came, and a filtered one is the original text with the
//! entries array and `cacheScope` spliced, everything else (member order, numbers, escapes)
//! untouched. A filtered result says `"cacheScope": "private"` (2026-07-28
//! server/utilities/caching: a result that depends on the authorization context must not be
//! shared across callers).
//!
//! `resources/templates/list` is not filtered: a template names a family of URIs of which a
//! policy's prefix or glob may allow some and deny others, so hiding it could hide what the
//! caller may read; every `resources/read` is decided anyway.
//!
//! SECURITY: nothing here fails open. An answer the edge cannot read (not JSON, a member name
//! repeated where the edge reads, a list result not shaped as MCP says) is replaced by a JSON-RPC
//! error for the pending lists; an entry without a readable name is removed. Pure: no I/O.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::mcp::jsonrpc::{Body, Id, Message};
use crate::mcp::Call;

/// The JSON-RPC error code of a list the edge cannot filter (JSON-RPC 2.0 §5.1, Internal error:
/// the client's request was fine, the answer could not be made safe).
pub const UNFILTERABLE: i64 = -32603;

/// A list whose entries the policy decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListKind {
    Tools,
    Prompts,
    Resources,
}

impl ListKind {
    /// The list a method asks for, if the edge filters it.
    pub fn of(method: &str) -> Option<ListKind> {
        match method {
            "tools/list" => Some(ListKind::Tools),
            "prompts/list" => Some(ListKind::Prompts),
            "resources/list" => Some(ListKind::Resources),
            _ => None,
        }
    }

    /// The result's member holding the entries.
    fn member(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources => "resources",
        }
    }

    /// The entry's member a call names it by.
    fn key(self) -> &'static str {
        match self {
            ListKind::Tools | ListKind::Prompts => "name",
            ListKind::Resources => "uri",
        }
    }

    /// The call an entry is decided as.
    fn method(self) -> &'static str {
        match self {
            ListKind::Tools => "tools/call",
            ListKind::Prompts => "prompts/get",
            ListKind::Resources => "resources/read",
        }
    }
}

/// The list requests of one request body, whose answers are filtered. An answer keeps being
/// matched after it came: a second answer with the same id is filtered like the first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lists {
    /// `None`: the id is not known (a body decided from its 2026-07-28 headers carries one
    /// request), and every response matches.
    pending: Vec<(Option<Id>, ListKind)>,
    /// Any answer shaped as a list is one: a replayed stream's requests are not known.
    by_shape: bool,
}

impl Lists {
    /// The list requests among a request body's messages.
    pub fn of(body: &Body<'_>) -> Lists {
        let pending = body
            .messages()
            .iter()
            .filter_map(|m| match m {
                Message::Request { id, operation } => ListKind::of(operation.method()).map(|k| (Some(id.clone()), k)),
                _ => None,
            })
            .collect();
        Lists { pending, by_shape: false }
    }

    /// One list request whose id is not known: every answer in the response is its.
    pub fn single(kind: ListKind) -> Lists {
        Lists { pending: vec![(None, kind)], by_shape: false }
    }

    /// A stream the MCP server replays (a `GET` with `Last-Event-ID`, 2025-11-25 "Resumability
    /// and Redelivery"): it may carry answers to requests of an earlier response, which the edge
    /// no longer knows, so any answer whose result holds `tools`, `prompts` or `resources` as an
    /// array is taken for that list's.
    pub fn by_shape() -> Lists {
        Lists { pending: Vec::new(), by_shape: true }
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty() && !self.by_shape
    }

    fn kind_of(&self, id: Option<&Id>, result: &RawValue) -> Option<ListKind> {
        let known = self.pending.iter().find(|(want, _)| want.is_none() || want.as_ref() == id);
        match known {
            Some((_, kind)) => Some(*kind),
            None if self.by_shape => {
                let is_array = |member: Option<&RawValue>| member.is_some_and(|m| m.get().starts_with('['));
                let Ok(members) = pick(result, &["tools", "prompts", "resources"]) else {
                    // A member given twice: taken for a list, which filtering then refuses.
                    return Some(ListKind::Tools);
                };
                let [tools, prompts, resources] = members?;
                [(tools, ListKind::Tools), (prompts, ListKind::Prompts), (resources, ListKind::Resources)]
                    .into_iter()
                    .find(|(member, _)| is_array(*member))
                    .map(|(_, kind)| kind)
            }
            None => None,
        }
    }

    /// The JSON-RPC errors that stand for every list's answer: one object, or a batch of them.
    pub fn errors(&self, reason: &Unfilterable) -> Vec<u8> {
        let mut out = Vec::new();
        if self.pending.is_empty() {
            // A replayed stream's: the id is not known.
            error_message(None, reason, &mut out);
            return out;
        }
        let many = self.pending.len() > 1;
        if many {
            out.push(b'[');
        }
        for (i, (id, _)) in self.pending.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            error_message(id.as_ref(), reason, &mut out);
        }
        if many {
            out.push(b']');
        }
        out
    }
}

/// Whether the caller may use what an entry names: the policy's decision on the call.
pub trait Permits {
    fn permits(&self, call: Call<'_>) -> bool;
}

impl<F: Fn(Call<'_>) -> bool> Permits for F {
    fn permits(&self, call: Call<'_>) -> bool {
        self(call)
    }
}

/// What filtering did to a body or an event's data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filtered {
    /// Nothing removed: the original bytes go as they are.
    Unchanged,
    /// Entries removed (or an unreadable list answer replaced by its error): these bytes instead.
    Rewritten(Vec<u8>),
}

/// Why a list answer cannot be filtered; what its JSON-RPC error says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unfilterable {
    /// Not one JSON value, or a member name repeated where the edge reads.
    Unreadable,
    /// A list result that is not an object with an array of entries.
    NotAList,
    /// The answer (or one event of it) is larger than `--max-inspect-bytes`.
    TooLarge { bound: u64 },
    /// Compressed (`Content-Encoding`), or of a media type that is neither JSON nor SSE.
    Opaque,
}

impl fmt::Display for Unfilterable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("The edge cannot filter this list by the resource's policy: ")?;
        match self {
            Unfilterable::Unreadable => f.write_str("the MCP server's answer is not readable JSON-RPC"),
            Unfilterable::NotAList => f.write_str("the MCP server's result is not a list"),
            Unfilterable::TooLarge { bound } => write!(f, "the answer is larger than {bound} bytes"),
            Unfilterable::Opaque => f.write_str("the MCP server's answer is encoded or of an unknown type"),
        }
    }
}

/// Filters a JSON body (or an SSE event's data): each response answering a list request loses
/// the entries `permits` refuses. `Err` when the body cannot be read at all: the caller answers
/// [`Lists::errors`] instead.
pub fn filter(text: &str, lists: &Lists, permits: &dyn Permits) -> Result<Filtered, Unfilterable> {
    let top: &RawValue = serde_json::from_str(text).map_err(|_| Unfilterable::Unreadable)?;
    let messages: Vec<&RawValue> = if top.get().starts_with('[') {
        serde_json::from_str(top.get()).map_err(|_| Unfilterable::Unreadable)?
    } else {
        vec![top]
    };
    let mut edits = Vec::new();
    for message in messages {
        if let Some(edit) = filter_message(message, lists, permits)? {
            edits.push((span(text, edit.0), edit.1));
        }
    }
    if edits.is_empty() {
        return Ok(Filtered::Unchanged);
    }
    Ok(Filtered::Rewritten(splice(text, edits).into_bytes()))
}

/// One message: `Some((what to replace, by what))` when it answers a list and changes.
fn filter_message<'a>(
    message: &'a RawValue,
    lists: &Lists,
    permits: &dyn Permits,
) -> Result<Option<(&'a str, String)>, Unfilterable> {
    let Some([id, method, result, error]) =
        pick(message, &["id", "method", "result", "error"]).map_err(|_| Unfilterable::Unreadable)?
    else {
        // Not an object: no client reads it as an answer.
        return Ok(None);
    };
    if method.is_some() || (result.is_none() && error.is_none()) {
        return Ok(None);
    }
    let id = id.and_then(read_id);
    let Some((kind, result)) = result.and_then(|r| Some((lists.kind_of(id.as_ref(), r)?, r))) else {
        // Not a list's answer, or an error answering one.
        return Ok(None);
    };
    match filter_result(result.get(), kind, permits) {
        Ok(None) => Ok(None),
        Ok(Some(filtered)) => Ok(Some((result.get(), filtered))),
        Err(reason) => {
            let mut out = Vec::new();
            error_message(id.as_ref(), &reason, &mut out);
            Ok(Some((message.get(), String::from_utf8(out).unwrap_or_default())))
        }
    }
}

/// A list result without the refused entries and marked private; `None` when nothing is refused.
fn filter_result(result: &str, kind: ListKind, permits: &dyn Permits) -> Result<Option<String>, Unfilterable> {
    let raw: &RawValue = serde_json::from_str(result).map_err(|_| Unfilterable::Unreadable)?;
    let [entries, scope] = pick(raw, &[kind.member(), "cacheScope"])
        .map_err(|_| Unfilterable::Unreadable)?
        .ok_or(Unfilterable::NotAList)?;
    let entries = entries.filter(|e| e.get().starts_with('[')).ok_or(Unfilterable::NotAList)?;
    let all: Vec<&RawValue> = serde_json::from_str(entries.get()).map_err(|_| Unfilterable::Unreadable)?;
    let kept: Vec<&str> = all.iter().filter(|e| allowed(e, kind, permits)).map(|e| e.get()).collect();
    if kept.len() == all.len() {
        return Ok(None);
    }
    let mut edits = vec![(span(result, entries.get()), format!("[{}]", kept.join(",")))];
    match scope {
        Some(scope) => edits.push((span(result, scope.get()), "\"private\"".to_string())),
        // After the opening brace: the object has at least its entries member.
        None => edits.push((1..1, "\"cacheScope\":\"private\",".to_string())),
    }
    edits.sort_by_key(|(range, _)| range.start);
    Ok(Some(splice(result, edits)))
}

/// Whether an entry stays. SECURITY: an entry the edge cannot name (not an object, its name
/// missing, not a string, or given twice) is removed: nothing decides it.
fn allowed(entry: &RawValue, kind: ListKind, permits: &dyn Permits) -> bool {
    let Ok(Some([Some(name)])) = pick(entry, &[kind.key()]) else { return false };
    let name: Cow<'_, str> = match serde_json::from_str::<&str>(name.get()) {
        Ok(borrowed) => Cow::Borrowed(borrowed),
        Err(_) => match serde_json::from_str::<String>(name.get()) {
            Ok(owned) => Cow::Owned(owned),
            Err(_) => return false,
        },
    };
    permits.permits(Call { method: kind.method(), target: Some(&name) })
}

/// A response id as a client would match it: an integral number however written (`1`, `1.0`,
/// `1e0`), or a string.
fn read_id(raw: &RawValue) -> Option<Id> {
    match serde_json::from_str::<serde_json::Value>(raw.get()).ok()? {
        serde_json::Value::String(s) => Some(Id::String(s)),
        serde_json::Value::Number(n) => n.as_i64().map(Id::Number).or_else(|| {
            let f = n.as_f64()?;
            (f.fract() == 0.0 && f.abs() < 9.2e18).then_some(Id::Number(f as i64))
        }),
        _ => None,
    }
}

/// Appends `{"jsonrpc":"2.0","id":…,"error":{"code":-32603,"message":…}}`.
fn error_message(id: Option<&Id>, reason: &Unfilterable, out: &mut Vec<u8>) {
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    match id {
        Some(id) => id.write_json(out),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(br#","error":{"code":"#);
    out.extend_from_slice(UNFILTERABLE.to_string().as_bytes());
    out.extend_from_slice(br#","message":"#);
    let _ = serde_json::to_writer(&mut *out, &reason.to_string());
    out.extend_from_slice(b"}}");
}

/// Where `inner`, a slice of `outer`, lies in it.
fn span(outer: &str, inner: &str) -> Range<usize> {
    let start = (inner.as_ptr() as usize).wrapping_sub(outer.as_ptr() as usize);
    debug_assert!(start + inner.len() <= outer.len(), "a raw value borrowed from the text it was read from");
    start..start + inner.len()
}

/// `text` with each range (in order, not overlapping) replaced.
fn splice(text: &str, edits: Vec<(Range<usize>, String)>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (range, with) in edits {
        out.push_str(text.get(at..range.start).unwrap_or_default());
        out.push_str(&with);
        at = range.end;
    }
    out.push_str(text.get(at..).unwrap_or_default());
    out
}

/// The members named `keys` of a JSON object, borrowed raw; `Ok(None)` when the value is not an
/// object, an error when one of `keys` appears twice (JSON parsers disagree on which wins).
/// Other members are skipped unread, iteratively however deep.
fn pick<'a, const N: usize>(
    raw: &'a RawValue,
    keys: &[&str; N],
) -> Result<Option<[Option<&'a RawValue>; N]>, serde_json::Error> {
    if !raw.get().starts_with('{') {
        return Ok(None);
    }
    let mut de = serde_json::Deserializer::from_str(raw.get());
    de.deserialize_map(Pick(keys)).map(Some)
}

struct Pick<'k, const N: usize>(&'k [&'k str; N]);

impl<'de, const N: usize> Visitor<'de> for Pick<'_, N> {
    type Value = [Option<&'de RawValue>; N];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = [None; N];
        while let Some(Key(key)) = map.next_key()? {
            match self.0.iter().position(|k| *k == key) {
                Some(i) if found[i].is_some() => return Err(de::Error::custom("a member name appears twice")),
                Some(i) => found[i] = Some(map.next_value()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }
}

/// A member name, unescaped (`"n\u0061me"` is `name`), borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key<'de>, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_string())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// An event stream's list answers filtered as its bytes arrive (`text/event-stream`, the HTML
/// standard's grammar: lines end at CRLF, LF or CR, an event at an empty line, its `data` lines
/// joined by LF). While the stream may still carry a list's answer, each event is held until it
/// is complete and then passed as it came, or rewritten when it answers a list and loses
/// entries. Every event of the stream is read: a second answer with a list's id is filtered too.
///
/// SECURITY: an event larger than the bound, or one whose data cannot be read, ends the stream
/// after the JSON-RPC errors for the lists (one event): never passed unread.
pub struct EventFilter {
    lists: Lists,
    bound: usize,
    /// The current event's bytes as they came.
    event: Vec<u8>,
    /// Where the current line starts in `event`.
    line_start: usize,
    /// The current event's non-empty lines, without their ends.
    lines: Vec<Range<usize>>,
    /// The last byte was CR: an LF now is the same line end.
    after_cr: bool,
    /// No line of the stream has ended yet: the first may start with a byte order mark.
    first_line: bool,
    /// The current event's first line is the stream's first.
    bom: bool,
    ended: bool,
}

impl EventFilter {
    pub fn new(lists: Lists, bound: u64) -> EventFilter {
        EventFilter {
            lists,
            bound: usize::try_from(bound).unwrap_or(usize::MAX),
            event: Vec::new(),
            line_start: 0,
            lines: Vec::new(),
            after_cr: false,
            first_line: true,
            bom: false,
            ended: false,
        }
    }

    /// Whether the stream must end here (after what was last given out).
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Takes the stream's next bytes; appends to `out` what may go to the client.
    pub fn push(&mut self, bytes: &[u8], permits: &dyn Permits, out: &mut Vec<u8>) {
        for &b in bytes {
            if self.ended {
                return;
            }
            self.event.push(b);
            match b {
                b'\n' if self.after_cr => {
                    self.after_cr = false;
                    self.line_start = self.event.len();
                }
                b'\r' | b'\n' => {
                    let line = self.line_start..self.event.len() - 1;
                    self.after_cr = b == b'\r';
                    self.line_start = self.event.len();
                    if line.is_empty() {
                        self.first_line = false;
                        self.dispatch(permits, out);
                    } else {
                        self.bom |= std::mem::take(&mut self.first_line);
                        self.lines.push(line);
                    }
                }
                _ => self.after_cr = false,
            }
            if self.event.len() > self.bound {
                self.fail(&Unfilterable::TooLarge { bound: self.bound as u64 }, out);
            }
        }
    }

    /// The stream ended: an unfinished event is decided as if it were complete (a lenient
    /// client might read it), then given out.
    pub fn finish(&mut self, permits: &dyn Permits, out: &mut Vec<u8>) {
        if self.ended || self.event.is_empty() {
            return;
        }
        if self.line_start < self.event.len() {
            self.bom |= std::mem::take(&mut self.first_line);
            self.lines.push(self.line_start..self.event.len());
        }
        self.dispatch(permits, out);
    }

    /// The current event is complete: out as it came, or rewritten.
    fn dispatch(&mut self, permits: &dyn Permits, out: &mut Vec<u8>) {
        let mut data: Option<Vec<u8>> = None;
        for (i, line) in self.lines.iter().enumerate() {
            let (field, value) = self.field(i, line.clone());
            if field == b"data" {
                match &mut data {
                    Some(d) => {
                        d.push(b'\n');
                        d.extend_from_slice(value);
                    }
                    None => data = Some(value.to_vec()),
                }
            }
        }
        let outcome = match data.as_deref() {
            // No data, or only blanks (a priming event): no message, for any client.
            None => Ok(Filtered::Unchanged),
            Some(d) if d.iter().all(u8::is_ascii_whitespace) => Ok(Filtered::Unchanged),
            // As a client decodes it: invalid UTF-8 becomes U+FFFD, not a reason to look away.
            Some(d) => filter(&String::from_utf8_lossy(d), &self.lists, permits),
        };
        match outcome {
            Ok(Filtered::Unchanged) => out.extend_from_slice(&self.event),
            Ok(Filtered::Rewritten(data)) => self.rewrite(&data, out),
            Err(reason) => return self.fail(&reason, out),
        }
        self.event.clear();
        self.lines.clear();
        self.line_start = 0;
        self.bom = false;
    }

    /// A line's field name and value (one space after the colon dropped).
    fn field(&self, index: usize, line: Range<usize>) -> (&[u8], &[u8]) {
        let mut text = &self.event[line];
        if self.bom && index == 0 {
            text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
        }
        match text.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &text[colon + 1..];
                (&text[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (text, &[]),
        }
    }

    /// The current event with its data lines replaced by `data`, at the first one's place.
    fn rewrite(&self, data: &[u8], out: &mut Vec<u8>) {
        let mut written = false;
        for (i, line) in self.lines.iter().enumerate() {
            let text = &self.event[line.clone()];
            let is_data = self.field(i, line.clone()).0 == b"data";
            if !is_data {
                out.extend_from_slice(text);
                out.push(b'\n');
            } else if !written {
                written = true;
                for piece in data.split(|&b| b == b'\n') {
                    out.extend_from_slice(b"data: ");
                    out.extend_from_slice(piece);
                    out.push(b'\n');
                }
            }
        }
        out.push(b'\n');
    }

    /// Gives out the lists' errors as one event, and ends the stream.
    fn fail(&mut self, reason: &Unfilterable, out: &mut Vec<u8>) {
        // An event the client holds unfinished is ended first, so the error is one of its own.
        out.extend_from_slice(b"\n\ndata: ");
        out.extend_from_slice(&self.lists.errors(reason));
        out.extend_from_slice(b"\n\n");
        self.event = Vec::new();
        self.lines = Vec::new();
        self.ended = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// Allows tools and prompts whose names start with `read_`, and `file:///public/` URIs.
    fn permits(call: Call<'_>) -> bool {
        let target = call.target.unwrap_or_default();
        target.starts_with("read_") || target.starts_with("file:///public/")
    }

    fn tools(id: u32) -> Lists {
        let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list"}}"#);
        Lists::of(&crate::mcp::jsonrpc::extract(body.as_bytes()).expect("a request"))
    }

    fn run(text: &str, lists: &Lists) -> Result<Filtered, Unfilterable> {
        filter(text, lists, &permits)
    }

    fn rewritten(text: &str, lists: &Lists) -> Value {
        match run(text, lists) {
            Ok(Filtered::Rewritten(bytes)) => serde_json::from_slice(&bytes).expect("JSON out"),
            other => panic!("not rewritten: {other:?}"),
        }
    }

    const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[
        {"name":"read_file","inputSchema":{"type":"object"},"n":1.50},
        {"name":"delete_all","description":"d\u00e9"},
        {"name":"read_dir"}],"ttlMs":60000,"cacheScope":"public","nextCursor":"c"}}"#;

    #[test]
    fn refused_entries_go_and_the_rest_stays_byte_for_byte() {
        let Ok(Filtered::Rewritten(out)) = run(LIST, &tools(1)) else { panic!("rewritten") };
        let out = String::from_utf8(out).unwrap();
        assert_eq!(
            out,
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"read_file","inputSchema":{"type":"object"},"n":1.50},{"name":"read_dir"}],"ttlMs":60000,"cacheScope":"private","nextCursor":"c"}}"#
        );
        // Without a cacheScope, one is added.
        let bare = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"x"}]}}"#;
        assert_eq!(rewritten(bare, &tools(1))["result"], json!({"cacheScope": "private", "tools": []}));
    }

    #[test]
    fn nothing_removed_is_unchanged_and_other_answers_pass() {
        let all_allowed = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"read_a"}],"cacheScope":"public"}}"#;
        assert_eq!(run(all_allowed, &tools(1)), Ok(Filtered::Unchanged));
        assert_eq!(run(LIST, &tools(2)), Ok(Filtered::Unchanged), "another request's answer");
        assert_eq!(run(LIST, &Lists::default()), Ok(Filtered::Unchanged));
        let error = r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"no"}}"#;
        assert_eq!(run(error, &tools(1)), Ok(Filtered::Unchanged));
        let note =
            r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed","id":1,"result":{"tools":[{"name":"x"}]}}"#;
        assert_eq!(run(note, &tools(1)), Ok(Filtered::Unchanged), "a message with a method answers nothing");
        assert_eq!(run("[1,2]", &tools(1)), Ok(Filtered::Unchanged));
    }

    #[test]
    fn ids_match_as_a_client_would() {
        for id in ["1", "1.0", "1e0", "10E-1"] {
            let text = format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{"tools":[{{"name":"x"}}]}}}}"#);
            assert!(matches!(run(&text, &tools(1)), Ok(Filtered::Rewritten(_))), "{id}");
        }
        let string = r#"{"jsonrpc":"2.0","id":"1","result":{"tools":[{"name":"x"}]}}"#;
        assert_eq!(run(string, &tools(1)), Ok(Filtered::Unchanged), "\"1\" is not 1");
        let unknown = Lists::single(ListKind::Tools);
        assert!(matches!(run(string, &unknown), Ok(Filtered::Rewritten(_))), "an unknown id matches any answer");
    }

    #[test]
    fn a_replayed_stream_is_filtered_by_the_shape_of_its_answers() {
        let lists = Lists::by_shape();
        let answer = |result: &str| format!(r#"{{"jsonrpc":"2.0","id":"any","result":{result}}}"#);
        let tools = rewritten(&answer(r#"{"tools":[{"name":"read_a"},{"name":"b"}]}"#), &lists);
        assert_eq!(tools["result"]["tools"], json!([{"name": "read_a"}]));
        let resources = rewritten(&answer(r#"{"resources":[{"uri":"file:///public/a"},{"uri":"file:///x"}]}"#), &lists);
        assert_eq!(resources["result"]["resources"], json!([{"uri": "file:///public/a"}]));
        for other in [r#"{"content":[]}"#, r#"{"tools":{}}"#, "[]", r#"{"resourceTemplates":[{"uriTemplate":"x"}]}"#] {
            assert_eq!(run(&answer(other), &lists), Ok(Filtered::Unchanged), "{other}");
        }
        let twice = rewritten(&answer(r#"{"tools":[],"tools":[{"name":"b"}]}"#), &lists);
        assert_eq!(twice["error"]["code"], -32603);
        let error: Value = serde_json::from_slice(&lists.errors(&Unfilterable::Unreadable)).unwrap();
        assert_eq!((error["id"].clone(), error["error"]["code"].clone()), (Value::Null, json!(-32603)));
        assert!(!lists.is_empty());
    }

    #[test]
    fn each_kind_is_decided_as_its_call() {
        let asked: std::cell::RefCell<Vec<(String, String)>> = Default::default();
        let record = |call: Call<'_>| {
            asked.borrow_mut().push((call.method.into(), call.target.unwrap_or_default().into()));
            true
        };
        let body = r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"prompts/list"},
            {"jsonrpc":"2.0","id":3,"method":"resources/list"},{"jsonrpc":"2.0","id":4,"method":"resources/templates/list"}]"#;
        let lists = Lists::of(&crate::mcp::jsonrpc::extract(body.as_bytes()).unwrap());
        assert_eq!(lists.pending.len(), 3, "templates are not filtered");
        let answer = r#"[{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"t"}]}},
            {"jsonrpc":"2.0","id":2,"result":{"prompts":[{"name":"p"}]}},
            {"jsonrpc":"2.0","id":3,"result":{"resources":[{"uri":"u","name":"n"}]}},
            {"jsonrpc":"2.0","id":4,"result":{"resourceTemplates":[{"uriTemplate":"x{y}"}]}}]"#;
        assert_eq!(filter(answer, &lists, &record), Ok(Filtered::Unchanged));
        let want = [("tools/call", "t"), ("prompts/get", "p"), ("resources/read", "u")];
        assert_eq!(*asked.borrow(), want.map(|(m, t)| (m.to_string(), t.to_string())));
    }

    #[test]
    fn a_batch_answer_is_filtered_element_by_element() {
        let text = r#"[{"jsonrpc":"2.0","id":5,"result":{"content":[]}} , {"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"read_a"},{"name":"b"}]}}]"#;
        let Ok(Filtered::Rewritten(out)) = run(text, &tools(1)) else { panic!("rewritten") };
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"[{"jsonrpc":"2.0","id":5,"result":{"content":[]}} , {"jsonrpc":"2.0","id":1,"result":{"cacheScope":"private","tools":[{"name":"read_a"}]}}]"#
        );
    }

    #[test]
    fn entries_without_a_readable_name_are_removed() {
        let text = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[7,"read_x",{"title":"read_y"},{"name":3},
            {"name":"read_a","name":"delete"},{"n\u0061me":"read_\u0062"},[{"name":"read_c"}]]}}"#;
        assert_eq!(rewritten(text, &tools(1))["result"]["tools"], json!([{"name": "read_b"}]));
    }

    #[test]
    fn an_answer_that_cannot_be_read_is_replaced_by_an_error() {
        let error = |id: Value| {
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32603,
                "message": "The edge cannot filter this list by the resource's policy: the MCP server's result is not a list"}})
        };
        for result in [r#""tools""#, "[]", "{}", r#"{"tools":{}}"#, r#"{"tools":null}"#] {
            let text = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{result}}}"#);
            assert_eq!(rewritten(&text, &tools(1)), error(json!(1)), "{result}");
        }
        let twice = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[],"tools":[{"name":"x"}]}}"#;
        assert_eq!(rewritten(twice, &tools(1))["error"]["code"], -32603);
        for body in ["", "{", "nope", r#"{"jsonrpc":"2.0","id":1,"id":2,"result":{"tools":[]}}"#, "[1,]"] {
            assert_eq!(run(body, &tools(1)), Err(Unfilterable::Unreadable), "{body}");
        }
        let two =
            Lists { pending: vec![(Some(Id::Number(1)), ListKind::Tools), (None, ListKind::Prompts)], by_shape: false };
        let errors: Value = serde_json::from_slice(&two.errors(&Unfilterable::TooLarge { bound: 9 })).unwrap();
        assert_eq!(errors[0]["id"], 1);
        assert_eq!(errors[1]["id"], Value::Null);
        assert_eq!(
            errors[1]["error"]["message"],
            "The edge cannot filter this list by the resource's policy: the answer is larger than 9 bytes"
        );
    }

    #[test]
    fn hostile_sizes_and_nesting() {
        let deep = format!(
            r#"{{"jsonrpc":"2.0","id":1,"result":{{"tools":[{{"name":"read_a","x":{}{}}},{{"name":"b"}}]}}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let Ok(Filtered::Rewritten(out)) = run(&deep, &tools(1)) else { panic!("rewritten") };
        assert_eq!(out.len(), deep.len() - r#",{"name":"b"}"#.len() + r#""cacheScope":"private","#.len());
        assert!(out.ends_with(br#"]]}]}}"#));
        let many: Vec<String> = (0..100_000).map(|i| format!(r#"{{"name":"t{i}"}}"#)).collect();
        let text = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{{"tools":[{}]}}}}"#, many.join(","));
        assert_eq!(rewritten(&text, &tools(1))["result"]["tools"], json!([]));
        let deep_result = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{}"#, "{\"a\":".repeat(50_000));
        assert_eq!(run(&deep_result, &tools(1)), Err(Unfilterable::Unreadable));
    }

    fn sse(chunks: &[&str], lists: Lists, bound: u64) -> (String, bool) {
        let mut f = EventFilter::new(lists, bound);
        let mut out = Vec::new();
        for chunk in chunks {
            f.push(chunk.as_bytes(), &permits, &mut out);
        }
        f.finish(&permits, &mut out);
        (String::from_utf8(out).unwrap(), f.ended())
    }

    #[test]
    fn only_the_event_answering_the_list_is_rewritten() {
        let note = "event: message\nid: 1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n";
        let list = "id: 2\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\r\ndata: \"result\":{\"tools\":[{\"name\":\"read_a\"},{\"name\":\"b\"}]}}\r\n\r\n";
        let stream = format!(": comment\n\n{note}{list}");
        let (out, ended) = sse(&[&stream], tools(1), 4096);
        assert!(!ended);
        assert_eq!(
            out,
            format!(
                ": comment\n\n{note}id: 2\ndata: {{\"jsonrpc\":\"2.0\",\"id\":1,\ndata: \"result\":{{\"cacheScope\":\"private\",\"tools\":[{{\"name\":\"read_a\"}}]}}}}\n\n\n"
            ),
            "the rewritten event ends in LF; the LF of its last CRLF follows as it came"
        );
        // Byte by byte, the same.
        let bytes: Vec<String> = stream.chars().map(String::from).collect();
        let pieces: Vec<&str> = bytes.iter().map(String::as_str).collect();
        assert_eq!(sse(&pieces, tools(1), 4096).0, out);
    }

    #[test]
    fn a_stream_with_nothing_removed_is_byte_identical() {
        let stream = "\u{FEFF}retry: 10\r\rdata:{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"read_a\"}]}}\r\n\r\ndata: \n\ndata:  \ndata:\n\nx";
        for split in 0..stream.len() {
            if !stream.is_char_boundary(split) {
                continue;
            }
            let (a, b) = stream.split_at(split);
            assert_eq!(sse(&[a, b], tools(1), 4096), (stream.to_string(), false), "split at {split}");
        }
    }

    #[test]
    fn a_byte_order_mark_does_not_hide_the_data() {
        let stream = "\u{FEFF}data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"b\"}]}}\n\n";
        let (out, _) = sse(&[stream], tools(1), 4096);
        assert!(!out.contains("\"b\""), "{out}");
    }

    #[test]
    fn an_unfinished_last_event_is_filtered_too() {
        let stream = "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"b\"}]}}";
        let (out, _) = sse(&[stream], tools(1), 4096);
        assert_eq!(
            out,
            "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"cacheScope\":\"private\",\"tools\":[]}}\n\n"
        );
    }

    #[test]
    fn a_second_answer_with_the_lists_id_is_filtered_too() {
        let event = "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"b\"}]}}\n\n";
        let (out, _) = sse(&[event, event], tools(1), 4096);
        assert_eq!(out.matches("\"tools\":[]").count(), 2, "{out}");
    }

    #[test]
    fn an_event_over_the_bound_or_unreadable_ends_the_stream_with_the_error() {
        let small = "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n";
        let big = format!(
            "data: {{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{{\"tools\":[{{\"name\":\"{}\"}}]}}}}\n\n",
            "x".repeat(200)
        );
        let (out, ended) = sse(&[small, &big, small], tools(1), 100);
        assert!(ended);
        let (head, error) = out.split_once("\n\ndata: ").expect("an error event");
        assert_eq!(head, small, "what came before passed");
        let error: Value = serde_json::from_str(error.trim_end()).unwrap();
        assert_eq!(error["id"], 1);
        assert_eq!(error["error"]["code"], -32603);
        let (out, ended) = sse(&["data: not json\n\n", small], tools(1), 4096);
        assert!(ended && out.starts_with("\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"error\""), "{out}");
        // Invalid UTF-8 is read as a client reads it, not passed.
        let mut f = EventFilter::new(tools(1), 4096);
        let mut out = Vec::new();
        f.push(
            b"data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"\xff\"}]}}\n\n",
            &permits,
            &mut out,
        );
        assert!(String::from_utf8_lossy(&out).contains("\"tools\":[]"));
    }
}
