//! The operations of a JSON-RPC request body: what the edge authorizes when it reads the body
//! (clients before 2026-07-28) and what it checks the `Mcp-*` headers against (from 2026-07-28).
//!
//! Only what authorization needs is read: `jsonrpc`, `id`, `method`, `params.name`, `params.uri`
//! and `params._meta["io.modelcontextprotocol/protocolVersion"]`; everything else, `arguments`
//! included, is skipped unread. A JSON-RPC message is an object; a body may be one message or,
//! before 2025-06-18, a batch array of them (2025-11-25 and 2026-07-28 allow one message only:
//! their Streamable HTTP pages, "Sending Messages"; the edge reads batches all the same and
//! authorizes every element).
//!
//! SECURITY: a member name that appears twice in an object the edge reads (the message,
//! `params`, `params._meta`) refuses the body. JSON parsers disagree on which of two equal
//! names wins, so the edge could authorize one tool while the MCP server calls another.
//! Names are compared after unescaping (`"n\u0061me"` is `name`).
//!
//! Hostile input: the objects read are at most four deep (batch, message, `params`, `_meta`),
//! each within serde_json's recursion limit of 128; everything deeper is skipped by serde_json's
//! iterative skipper, which needs no stack per level. No input panics (see the fuzz target
//! `mcp_operation`). Strings are borrowed from the body unless they contain escapes.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::config::policy::TargetKind;
use crate::mcp::Call;

mod fast;

/// A request body's messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body<'a> {
    Single(Message<'a>),
    /// A JSON-RPC batch; never empty.
    Batch(Vec<Message<'a>>),
}

impl<'a> Body<'a> {
    pub fn messages(&self) -> &[Message<'a>] {
        match self {
            Body::Single(message) => std::slice::from_ref(message),
            Body::Batch(messages) => messages,
        }
    }
}

/// One JSON-RPC message from the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    Request {
        id: Id,
        operation: Operation<'a>,
    },
    Notification(Operation<'a>),
    /// A result or error answering a server's request (an elicitation, a sampling): it names no
    /// method and so no operation. `id` is `None` only for an error whose id was `null`.
    Response {
        id: Option<Id>,
    },
}

impl<'a> Message<'a> {
    /// The operation a request or notification asks for; a response asks for none.
    pub fn operation(&self) -> Option<&Operation<'a>> {
        match self {
            Message::Request { operation, .. } | Message::Notification(operation) => Some(operation),
            Message::Response { .. } => None,
        }
    }

    /// The id an answer to this message echoes.
    pub fn id(&self) -> Option<&Id> {
        match self {
            Message::Request { id, .. } => Some(id),
            Message::Response { id } => id.as_ref(),
            Message::Notification(_) => None,
        }
    }
}

/// A JSON-RPC request id. MCP allows a string or an integer, never `null` (2026-07-28
/// basic/index.mdx, "Requests"); an integer beyond `i64` or a fraction is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Id {
    Number(i64),
    String(String),
}

impl Id {
    /// Appends the id as JSON, for an error answer that must echo it.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Id::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
            Id::String(s) => serde_json::to_writer(out, s).expect("writing a string into a Vec cannot fail"),
        }
    }
}

/// What a request or notification asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation<'a> {
    method: Cow<'a, str>,
    /// `params.name` or `params.uri`, present exactly when [`TargetKind::of`] the method is.
    target: Option<Cow<'a, str>>,
    protocol_version: Option<Cow<'a, str>>,
}

impl Operation<'_> {
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The tool or prompt name (`tools/call`, `prompts/get`) or resource URI (`resources/read`).
    pub fn target(&self) -> Option<&str> {
        self.target.as_deref()
    }

    /// `params._meta["io.modelcontextprotocol/protocolVersion"]`, which from 2026-07-28 every
    /// request carries and the `MCP-Protocol-Version` header must equal.
    pub fn protocol_version(&self) -> Option<&str> {
        self.protocol_version.as_deref()
    }

    /// What the policy is asked about.
    pub fn call(&self) -> Call<'_> {
        Call { method: &self.method, target: self.target.as_deref() }
    }
}

/// Why a body yields no operations. Every one of them is refused with 400, never forwarded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExtractError {
    /// Not one JSON value (syntax, truncation, trailing bytes, invalid UTF-8 or escapes).
    NotJson,
    /// JSON, but not a JSON-RPC message MCP allows.
    NotJsonRpc {
        why: &'static str,
    },
    /// A member name repeated within an object the edge reads (shortened to 64 characters).
    DuplicateKey {
        key: String,
    },
    EmptyBatch,
    /// A `tools/call`, `prompts/get` or `resources/read` without its string target.
    MissingName {
        method: String,
        field: &'static str,
    },
}

impl fmt::Display for ExtractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtractError::NotJson => f.write_str("the body is not a JSON value"),
            ExtractError::NotJsonRpc { why } => write!(f, "the body is not JSON-RPC: {why}"),
            ExtractError::DuplicateKey { key } => write!(f, "the member name {key:?} appears twice in one object"),
            ExtractError::EmptyBatch => f.write_str("the body is an empty JSON-RPC batch"),
            ExtractError::MissingName { method, field } => write!(f, "{method} needs {field} as a string"),
        }
    }
}

impl std::error::Error for ExtractError {}

/// Reads a request body's messages. Allocates the batch vector and strings with escapes.
pub fn extract(body: &[u8]) -> Result<Body<'_>, ExtractError> {
    // JSON-RPC messages in MCP are UTF-8 (transports.mdx). serde_json checks the strings it
    // reads but not those it skips; checking the whole body first leaves no byte unchecked.
    let body = std::str::from_utf8(body).map_err(|_| ExtractError::NotJson)?;
    // The usual body, one plain message, is read in one pass; the rest by serde, which also
    // says why a body is refused.
    match fast::single(body) {
        Some(raw) => Ok(Body::Single(finish(raw)?)),
        None => by_serde(body),
    }
}

/// [`extract`] with every body read by serde: the reference the fast reader is held to (the
/// fuzz target `mcp_operation` compares the two).
#[doc(hidden)]
pub fn extract_by_serde(body: &[u8]) -> Result<Body<'_>, ExtractError> {
    by_serde(std::str::from_utf8(body).map_err(|_| ExtractError::NotJson)?)
}

fn by_serde(body: &str) -> Result<Body<'_>, ExtractError> {
    let mut de = serde_json::Deserializer::from_str(body);
    let top = Top::deserialize(&mut de).map_err(from_json)?;
    de.end().map_err(|_| ExtractError::NotJson)?;
    match top {
        Top::Single(raw) => Ok(Body::Single(finish(raw)?)),
        Top::Batch(items) if items.is_empty() => Err(ExtractError::EmptyBatch),
        Top::Batch(items) => items
            .into_iter()
            .map(|item| match item {
                Obj::Object(raw) => finish(raw),
                Obj::Absent | Obj::Other => Err(ExtractError::NotJsonRpc { why: "a batch element is not an object" }),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Body::Batch),
        Top::Other => Err(ExtractError::NotJsonRpc { why: "a message is an object, a batch an array" }),
    }
}

fn from_json(e: serde_json::Error) -> ExtractError {
    match e.classify() {
        // The visitors below accept every JSON type, so a data error is not expected; refuse.
        serde_json::error::Category::Data => ExtractError::NotJsonRpc { why: "unexpected value" },
        _ => ExtractError::NotJson,
    }
}

/// Turns what was read into a message, or says what MCP forbids in it.
fn finish(raw: RawMessage<'_>) -> Result<Message<'_>, ExtractError> {
    let not = |why| Err(ExtractError::NotJsonRpc { why });
    let params = match raw.params {
        Obj::Absent => None,
        Obj::Object(params) => Some(params),
        Obj::Other => return not("params must be an object"),
    };
    let meta = match params.as_ref().map(|p| &p.meta) {
        None | Some(Obj::Absent) => None,
        Some(Obj::Object(meta)) => Some(meta),
        Some(Obj::Other) => return not("params._meta must be an object"),
    };
    let dup =
        raw.dup.or_else(|| params.as_ref().and_then(|p| p.dup.clone())).or_else(|| meta.and_then(|m| m.dup.clone()));
    if let Some(key) = dup {
        return Err(ExtractError::DuplicateKey { key });
    }
    match raw.jsonrpc {
        Loose::Str(v) if v == "2.0" => {}
        _ => return not("jsonrpc must be \"2.0\""),
    }
    let method = match raw.method {
        Loose::Str(method) if method.is_empty() => return not("method is empty"),
        Loose::Str(method) => method,
        Loose::Absent => return response(raw.id, raw.outcome),
        _ => return not("method must be a string"),
    };
    if raw.outcome != Outcome::Neither {
        return not("a request or notification has no result or error");
    }
    let target = match TargetKind::of(&method) {
        None => None,
        Some(kind) => {
            let value = params.as_ref().map(|p| match kind {
                TargetKind::Name => &p.name,
                TargetKind::Uri => &p.uri,
            });
            match value {
                Some(Loose::Str(target)) => Some(target.clone()),
                _ => return Err(ExtractError::MissingName { method: method.into_owned(), field: kind.field() }),
            }
        }
    };
    let protocol_version = match meta.map(|m| &m.version) {
        None | Some(Loose::Absent) => None,
        Some(Loose::Str(v)) => Some(v.clone()),
        Some(_) => return not("the _meta protocol version must be a string"),
    };
    let operation = Operation { method, target, protocol_version };
    match raw.id {
        Loose::Absent => Ok(Message::Notification(operation)),
        Loose::Str(id) => Ok(Message::Request { id: Id::String(id.into_owned()), operation }),
        Loose::Int(id) => Ok(Message::Request { id: Id::Number(id), operation }),
        Loose::Null => not("a request id is never null in MCP"),
        Loose::Other => not("a request id is a string or an integer"),
    }
}

fn response(id: Loose<'_>, outcome: Outcome) -> Result<Message<'static>, ExtractError> {
    let not = |why| Err(ExtractError::NotJsonRpc { why });
    let id = match (id, outcome) {
        (_, Outcome::Neither) => return not("a message has a method, a result or an error"),
        (_, Outcome::Both) => return not("a response has a result or an error, not both"),
        (Loose::Str(id), _) => Some(Id::String(id.into_owned())),
        (Loose::Int(id), _) => Some(Id::Number(id)),
        (Loose::Null, Outcome::Error) => None,
        (Loose::Absent | Loose::Null, _) => return not("a response has an id"),
        (Loose::Other, _) => return not("a response id is a string or an integer"),
    };
    Ok(Message::Response { id })
}

// What is read from the JSON, loosely typed so that every shape is accepted by the visitors
// and judged afterwards in `finish`.

/// The top-level value.
enum Top<'de> {
    Single(RawMessage<'de>),
    Batch(Vec<Obj<RawMessage<'de>>>),
    Other,
}

/// An object member read as an object, or noted as absent or as some other JSON type.
enum Obj<T> {
    Absent,
    Other,
    Object(T),
}

/// A scalar member: what authorization needs to tell apart.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Loose<'de> {
    Absent,
    Null,
    Str(Cow<'de, str>),
    Int(i64),
    /// A fraction, an integer beyond `i64`, a boolean, an array or an object.
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Neither,
    Result,
    Error,
    Both,
}

struct RawMessage<'de> {
    dup: Option<String>,
    jsonrpc: Loose<'de>,
    id: Loose<'de>,
    method: Loose<'de>,
    params: Obj<RawParams<'de>>,
    outcome: Outcome,
}

struct RawParams<'de> {
    dup: Option<String>,
    name: Loose<'de>,
    uri: Loose<'de>,
    meta: Obj<RawMeta<'de>>,
}

struct RawMeta<'de> {
    dup: Option<String>,
    version: Loose<'de>,
}

/// The member names of one object so far, to find a repeated one. A short array on the stack
/// serves the usual handful of members without allocating; a hash set takes over so that many
/// members stay linear.
struct Seen<'de> {
    few: [Option<Cow<'de, str>>; Seen::FEW],
    len: usize,
    many: Option<HashSet<Cow<'de, str>>>,
    dup: Option<String>,
}

impl Default for Seen<'_> {
    fn default() -> Self {
        Seen { few: [const { None }; Seen::FEW], len: 0, many: None, dup: None }
    }
}

impl<'de> Seen<'de> {
    const FEW: usize = 16;

    /// Records `key`; false when it was seen before (the first repeat is kept for the error).
    fn first_time(&mut self, key: Cow<'de, str>) -> bool {
        let seen_few = || self.few[..self.len].iter().flatten().any(|k| *k == key);
        let repeat = match &mut self.many {
            Some(set) if set.contains(&key) => key,
            Some(set) => return set.insert(key),
            None if seen_few() => key,
            None if self.len < Self::FEW => {
                self.few[self.len] = Some(key);
                self.len += 1;
                return true;
            }
            None => {
                let mut set: HashSet<Cow<'de, str>> = self.few.iter_mut().filter_map(Option::take).collect();
                set.insert(key);
                self.many = Some(set);
                return true;
            }
        };
        if self.dup.is_none() {
            self.dup = Some(repeat.chars().take(64).collect());
        }
        false
    }
}

/// Reads the members of one object; `read` stores a known member's value or skips it.
fn members<'de, A, F>(mut map: A, mut read: F) -> Result<Option<String>, A::Error>
where
    A: MapAccess<'de>,
    F: FnMut(&str, &mut A) -> Result<(), A::Error>,
{
    let mut seen = Seen::default();
    while let Some(Key(key)) = map.next_key()? {
        // Borrowed keys clone as a pointer; only keys with escapes are copied.
        if seen.first_time(key.clone()) {
            read(key.as_ref(), &mut map)?;
        } else {
            map.next_value::<IgnoredAny>()?;
        }
    }
    Ok(seen.dup)
}

trait FromMap<'de>: Sized {
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error>;
}

impl<'de> FromMap<'de> for RawMessage<'de> {
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        let (mut jsonrpc, mut id, mut method, mut params) = (Loose::Absent, Loose::Absent, Loose::Absent, Obj::Absent);
        let mut outcome = Outcome::Neither;
        let dup = members(map, |key, map| {
            match key {
                "jsonrpc" => jsonrpc = map.next_value()?,
                "id" => id = map.next_value()?,
                "method" => method = map.next_value()?,
                "params" => params = map.next_value()?,
                "result" | "error" => {
                    map.next_value::<IgnoredAny>()?;
                    outcome = match (outcome, key) {
                        (Outcome::Neither, "result") => Outcome::Result,
                        (Outcome::Neither, _) => Outcome::Error,
                        _ => Outcome::Both,
                    };
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(())
        })?;
        Ok(RawMessage { dup, jsonrpc, id, method, params, outcome })
    }
}

impl<'de> FromMap<'de> for RawParams<'de> {
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        let (mut name, mut uri, mut meta) = (Loose::Absent, Loose::Absent, Obj::Absent);
        let dup = members(map, |key, map| {
            match key {
                "name" => name = map.next_value()?,
                "uri" => uri = map.next_value()?,
                "_meta" => meta = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(())
        })?;
        Ok(RawParams { dup, name, uri, meta })
    }
}

impl<'de> FromMap<'de> for RawMeta<'de> {
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        let mut version = Loose::Absent;
        let dup = members(map, |key, map| {
            match key {
                "io.modelcontextprotocol/protocolVersion" => version = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(())
        })?;
        Ok(RawMeta { dup, version })
    }
}

/// A member name, unescaped; borrowed from the body when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// Skips the rest of an array without reading it.
fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

impl<'de> Deserialize<'de> for Loose<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct LooseVisitor;
        impl<'de> Visitor<'de> for LooseVisitor {
            type Value = Loose<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Loose<'de>, E> {
                Ok(Loose::Other)
            }
            fn visit_i64<E>(self, v: i64) -> Result<Loose<'de>, E> {
                Ok(Loose::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Loose<'de>, E> {
                Ok(i64::try_from(v).map_or(Loose::Other, Loose::Int))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Loose<'de>, E> {
                Ok(Loose::Other)
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Loose<'de>, E> {
                Ok(Loose::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Loose<'de>, E> {
                Ok(Loose::Str(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Loose<'de>, E> {
                Ok(Loose::Str(Cow::Owned(v)))
            }
            fn visit_unit<E>(self) -> Result<Loose<'de>, E> {
                Ok(Loose::Null)
            }
            fn visit_none<E>(self) -> Result<Loose<'de>, E> {
                Ok(Loose::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Loose<'de>, A::Error> {
                drain_seq(seq).map(|()| Loose::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Loose<'de>, A::Error> {
                drain_map(map).map(|()| Loose::Other)
            }
        }
        d.deserialize_any(LooseVisitor)
    }
}

/// Accepts any JSON value: an object is read as `T`, anything else noted as [`Obj::Other`].
struct ObjVisitor<T>(PhantomData<T>);

impl<'de, T: FromMap<'de>> Visitor<'de> for ObjVisitor<T> {
    type Value = Obj<T>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Obj<T>, E> {
        Ok(Obj::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Obj<T>, E> {
        Ok(Obj::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Obj<T>, E> {
        Ok(Obj::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Obj<T>, E> {
        Ok(Obj::Other)
    }
    fn visit_str<E>(self, _: &str) -> Result<Obj<T>, E> {
        Ok(Obj::Other)
    }
    fn visit_unit<E>(self) -> Result<Obj<T>, E> {
        Ok(Obj::Other)
    }
    fn visit_none<E>(self) -> Result<Obj<T>, E> {
        Ok(Obj::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Obj<T>, A::Error> {
        drain_seq(seq).map(|()| Obj::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Obj<T>, A::Error> {
        T::from_map(map).map(Obj::Object)
    }
}

impl<'de, T: FromMap<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ObjVisitor(PhantomData))
    }
}

impl<'de> Deserialize<'de> for Top<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TopVisitor;
        impl<'de> Visitor<'de> for TopVisitor {
            type Value = Top<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Top<'de>, E> {
                Ok(Top::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Top<'de>, E> {
                Ok(Top::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Top<'de>, E> {
                Ok(Top::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Top<'de>, E> {
                Ok(Top::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<Top<'de>, E> {
                Ok(Top::Other)
            }
            fn visit_unit<E>(self) -> Result<Top<'de>, E> {
                Ok(Top::Other)
            }
            fn visit_none<E>(self) -> Result<Top<'de>, E> {
                Ok(Top::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Top<'de>, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Top::Batch(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Top<'de>, A::Error> {
                RawMessage::from_map(map).map(Top::Single)
            }
        }
        d.deserialize_any(TopVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(body: &str) -> Vec<(String, Option<String>)> {
        let body = extract(body.as_bytes()).expect("extracts");
        body.messages()
            .iter()
            .filter_map(Message::operation)
            .map(|o| (o.method().to_string(), o.target().map(String::from)))
            .collect()
    }

    fn refused(body: &[u8]) -> ExtractError {
        extract(body).expect_err("refused")
    }

    fn not(why: &'static str) -> ExtractError {
        ExtractError::NotJsonRpc { why }
    }

    const CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_weather",
        "arguments":{"location":"Seattle, WA"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",
        "io.modelcontextprotocol/clientCapabilities":{}}}}"#;

    #[test]
    fn a_tools_call_yields_its_method_name_id_and_version() {
        let body = extract(CALL.as_bytes()).expect("extracts");
        let Body::Single(Message::Request { id, operation }) = &body else { panic!("one request: {body:?}") };
        assert_eq!(*id, Id::Number(1));
        assert_eq!(operation.method(), "tools/call");
        assert_eq!(operation.target(), Some("get_weather"));
        assert_eq!(operation.protocol_version(), Some("2026-07-28"));
        assert_eq!(operation.call(), Call { method: "tools/call", target: Some("get_weather") });
        assert!(matches!(operation.target, Some(Cow::Borrowed(_))), "no copy without escapes");
    }

    #[test]
    fn each_method_reads_its_own_target() {
        assert_eq!(
            ops(r#"{"jsonrpc":"2.0","id":"a","method":"resources/read","params":{"uri":"file:///x","name":"n"}}"#),
            [("resources/read".to_string(), Some("file:///x".to_string()))]
        );
        assert_eq!(
            ops(r#"{"jsonrpc":"2.0","id":2,"method":"prompts/get","params":{"uri":"u","name":"greet"}}"#),
            [("prompts/get".to_string(), Some("greet".to_string()))]
        );
        // Other methods are matched by method alone, whatever their params hold.
        assert_eq!(
            ops(r#"{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{"name":7}}"#),
            [("tools/list".to_string(), None)]
        );
        assert_eq!(ops(r#"{"method":"ping","jsonrpc":"2.0","id":-4}"#), [("ping".to_string(), None)]);
    }

    #[test]
    fn escapes_are_read_as_the_server_reads_them() {
        let body = r#"{"jsonrpc":"2.0","id":"\u0031","m\u0065thod":"tools/call","params":{"n\u0061me":"del\u0065te"}}"#;
        let parsed = extract(body.as_bytes()).expect("extracts");
        assert_eq!(parsed.messages()[0].id(), Some(&Id::String("1".into())));
        assert_eq!(ops(body), [("tools/call".to_string(), Some("delete".to_string()))]);
    }

    #[test]
    fn notifications_and_responses() {
        let note = extract(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).expect("extracts");
        assert!(matches!(&note, Body::Single(Message::Notification(o)) if o.method() == "notifications/initialized"));
        assert_eq!(note.messages()[0].id(), None);
        let result = extract(br#"{"jsonrpc":"2.0","id":"e1","result":{"action":"accept"}}"#).expect("extracts");
        assert_eq!(result, Body::Single(Message::Response { id: Some(Id::String("e1".into())) }));
        assert_eq!(result.messages()[0].operation(), None);
        let error = extract(br#"{"jsonrpc":"2.0","id":null,"error":{"code":-1,"message":"m"}}"#).expect("extracts");
        assert_eq!(error, Body::Single(Message::Response { id: None }));
    }

    #[test]
    fn a_batch_yields_every_message_in_order() {
        let body = r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}},
            {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":2}},
            {"jsonrpc":"2.0","id":9,"result":{}},
            {"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///b"}}]"#;
        assert_eq!(
            ops(body),
            [
                ("tools/call".to_string(), Some("a".to_string())),
                ("notifications/progress".to_string(), None),
                ("resources/read".to_string(), Some("file:///b".to_string())),
            ]
        );
        assert_eq!(extract(body.as_bytes()).expect("extracts").messages().len(), 4);
        assert_eq!(refused(b"[]"), ExtractError::EmptyBatch);
        assert_eq!(refused(b" [ ] "), ExtractError::EmptyBatch);
        assert_eq!(refused(br#"[{"jsonrpc":"2.0","method":"a"}, 1]"#), not("a batch element is not an object"));
        assert_eq!(refused(br#"[[{"jsonrpc":"2.0","method":"a"}]]"#), not("a batch element is not an object"));
        // One bad element refuses the whole batch.
        assert_eq!(
            refused(br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}},{"jsonrpc":"2.0","id":2,"method":"tools/call"}]"#),
            ExtractError::MissingName { method: "tools/call".into(), field: "params.name" }
        );
    }

    #[test]
    fn truncated_and_malformed_bodies_are_not_json() {
        for cut in 0..CALL.len() {
            let body = &CALL.as_bytes()[..cut];
            assert!(extract(body).is_err(), "truncated at {cut}: {:?}", String::from_utf8_lossy(body));
        }
        for body in [&b""[..], b"{", b"{}}", b"{} {}", b"\xef\xbb\xbf{}", b"{'a':1}", b"{\"a\":1,}", b"\"\\ud800\""] {
            assert_eq!(refused(body), ExtractError::NotJson, "{:?}", String::from_utf8_lossy(body));
        }
        assert_eq!(refused(b"{\"jsonrpc\":\"2.0\",\"method\":\"\xff\"}"), ExtractError::NotJson, "invalid UTF-8");
        let skipped = b"{\"jsonrpc\":\"2.0\",\"method\":\"ping\",\"params\":{\"arguments\":[\"\xc3\"]}}";
        assert_eq!(refused(skipped), ExtractError::NotJson, "invalid UTF-8 where nothing is read");
    }

    #[test]
    fn what_mcp_forbids_is_not_json_rpc() {
        let cases: [(&str, &str); 17] = [
            ("1", "a message is an object, a batch an array"),
            ("null", "a message is an object, a batch an array"),
            (r#""tools/call""#, "a message is an object, a batch an array"),
            (r#"{"method":"ping","id":1}"#, "jsonrpc must be \"2.0\""),
            (r#"{"jsonrpc":2.0,"method":"ping","id":1}"#, "jsonrpc must be \"2.0\""),
            (r#"{"jsonrpc":"1.0","method":"ping","id":1}"#, "jsonrpc must be \"2.0\""),
            (r#"{"jsonrpc":"2.0","method":1,"id":1}"#, "method must be a string"),
            (r#"{"jsonrpc":"2.0","method":"","id":1}"#, "method is empty"),
            (r#"{"jsonrpc":"2.0","method":"ping","id":null}"#, "a request id is never null in MCP"),
            (r#"{"jsonrpc":"2.0","method":"ping","id":1.5}"#, "a request id is a string or an integer"),
            (
                r#"{"jsonrpc":"2.0","method":"ping","id":18446744073709551615}"#,
                "a request id is a string or an integer",
            ),
            (r#"{"jsonrpc":"2.0","method":"ping","id":{"a":1}}"#, "a request id is a string or an integer"),
            (r#"{"jsonrpc":"2.0","method":"ping","id":1,"params":[1]}"#, "params must be an object"),
            (
                r#"{"jsonrpc":"2.0","method":"ping","id":1,"result":{}}"#,
                "a request or notification has no result or error",
            ),
            (r#"{"jsonrpc":"2.0","id":1}"#, "a message has a method, a result or an error"),
            (r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{}}"#, "a response has a result or an error, not both"),
            (r#"{"jsonrpc":"2.0","result":{}}"#, "a response has an id"),
        ];
        for (body, why) in cases {
            assert_eq!(refused(body.as_bytes()), not(why), "{body}");
        }
        assert_eq!(
            refused(br#"{"jsonrpc":"2.0","method":"ping","id":1,"params":{"_meta":[]}}"#),
            not("params._meta must be an object")
        );
        assert_eq!(
            refused(br#"{"jsonrpc":"2.0","method":"ping","id":1,"params":{"_meta":{"io.modelcontextprotocol/protocolVersion":20260728}}}"#),
            not("the _meta protocol version must be a string")
        );
    }

    #[test]
    fn a_target_method_without_its_string_target_is_refused() {
        for (body, method, field) in [
            (r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#, "tools/call", "params.name"),
            (r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#, "tools/call", "params.name"),
            (r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":["a"]}}"#, "tools/call", "params.name"),
            (r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":null}}"#, "prompts/get", "params.name"),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"name":"x"}}"#,
                "resources/read",
                "params.uri",
            ),
        ] {
            assert_eq!(refused(body.as_bytes()), ExtractError::MissingName { method: method.into(), field }, "{body}");
        }
    }

    #[test]
    fn a_repeated_member_name_is_refused_at_every_level_read() {
        let cases = [
            (r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"tools/list","params":{"name":"a"}}"#, "method"),
            (r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"safe","name":"delete"}}"#, "name"),
            (r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"safe","n\u0061me":"delete"}}"#, "name"),
            (r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"},"params":{"name":"b"}}"#, "params"),
            (r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#, "id"),
            (r#"{"jsonrpc":"2.0","x":1,"x":2,"method":"ping"}"#, "x"),
            (r#"{"jsonrpc":"2.0","method":"ping","params":{"_meta":{"a":1,"a":2}}}"#, "a"),
            (r#"{"jsonrpc":"2.0","method":"ping","params":{"cursor":"1","cursor":"2"}}"#, "cursor"),
            (r#"[{"jsonrpc":"2.0","method":"ping"},{"jsonrpc":"2.0","method":"ping","jsonrpc":"2.0"}]"#, "jsonrpc"),
        ];
        for (body, key) in cases {
            assert_eq!(refused(body.as_bytes()), ExtractError::DuplicateKey { key: key.into() }, "{body}");
        }
        // Past the short list, the hash set still finds the repeat.
        let mut many: String = (0..100).map(|i| format!("\"k{i}\":{i},")).collect();
        many.push_str("\"k7\":0");
        let body = format!(r#"{{"jsonrpc":"2.0","method":"ping","params":{{{many}}}}}"#);
        assert_eq!(refused(body.as_bytes()), ExtractError::DuplicateKey { key: "k7".into() });
        let distinct: String = (0..100).map(|i| format!("\"k{i}\":{i}")).collect::<Vec<_>>().join(",");
        let body = format!(r#"{{"jsonrpc":"2.0","method":"ping","params":{{{distinct}}}}}"#);
        assert_eq!(ops(&body), [("ping".to_string(), None)]);
        // Members the edge does not read are the server's business.
        assert_eq!(
            ops(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"x":1,"x":2}}}"#),
            [("tools/call".to_string(), Some("a".to_string()))]
        );
        let long = "k".repeat(1000);
        let body = format!(r#"{{"jsonrpc":"2.0","method":"ping","{long}":1,"{long}":2}}"#);
        assert_eq!(refused(body.as_bytes()), ExtractError::DuplicateKey { key: "k".repeat(64) });
    }

    #[test]
    fn hostile_nesting_and_sizes_neither_panic_nor_overflow() {
        let depth = 1_000_000;
        let deep_args = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"a","arguments":{}{}}}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        assert_eq!(ops(&deep_args), [("tools/call".to_string(), Some("a".to_string()))]);
        let deep_id = format!(r#"{{"jsonrpc":"2.0","method":"ping","id":{}{}}}"#, "[".repeat(depth), "]".repeat(depth));
        assert_eq!(refused(deep_id.as_bytes()), not("a request id is a string or an integer"));
        let deep_top = "[".repeat(depth);
        assert_eq!(refused(deep_top.as_bytes()), ExtractError::NotJson);
        let deep_objects = r#"{"a":"#.repeat(100_000);
        assert_eq!(refused(deep_objects.as_bytes()), ExtractError::NotJson);
        let huge = "x".repeat(8 << 20);
        let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{huge}"}}}}"#);
        assert_eq!(ops(&body)[0].1.as_deref().map(str::len), Some(huge.len()));
        let batch = format!("[{}]", vec![r#"{"jsonrpc":"2.0","method":"ping"}"#; 50_000].join(","));
        assert_eq!(extract(batch.as_bytes()).expect("extracts").messages().len(), 50_000);
    }

    #[test]
    fn ids_echo_as_json() {
        let mut out = Vec::new();
        Id::Number(-42).write_json(&mut out);
        out.push(b' ');
        Id::String("a\"b\u{1}".into()).write_json(&mut out);
        assert_eq!(out, br#"-42 "a\"b\u0001""#);
    }

    #[test]
    fn errors_read_as_sentences() {
        assert_eq!(ExtractError::NotJson.to_string(), "the body is not a JSON value");
        assert_eq!(not("method is empty").to_string(), "the body is not JSON-RPC: method is empty");
        assert_eq!(
            ExtractError::DuplicateKey { key: "name".into() }.to_string(),
            "the member name \"name\" appears twice in one object"
        );
        assert_eq!(ExtractError::EmptyBatch.to_string(), "the body is an empty JSON-RPC batch");
        assert_eq!(
            ExtractError::MissingName { method: "resources/read".into(), field: "params.uri" }.to_string(),
            "resources/read needs params.uri as a string"
        );
    }
}
