//! The MCP authorization policy (issue 12) as plain values: which MCP operations need which
//! scopes and claims, parsed once from JSON and checked whole before it is used. Matching an
//! operation against it is `crate::mcp::decide`; this file only holds and validates.
//!
//! ```json
//! {"default": "deny",
//!  "implies": {"mcp:admin": ["mcp:tools:write", "mcp:read"]},
//!  "rules": [
//!    {"method": "tools/call", "name": "delete_*", "scopes": ["mcp:admin"],
//!     "claims": [{"claim": "groups", "contains": "ops"}]},
//!    {"method": "resources/read", "uri_prefix": "file:///public/", "scopes": ["mcp:read"]},
//!    {"method": "notifications/*"}]}
//! ```
//!
//! - `default` (required): `"allow"` (with the resource's required scopes) or `"deny"`, for an
//!   operation no rule selects.
//! - `rules`: the first rule whose `method` and target (`name`, `uri` or `uri_prefix`) match
//!   decides; its `scopes` are all required (none when absent) and its `claims` must all hold.
//! - Patterns: a `*` matches any run of characters, `/` included (`notifications/*` matches
//!   `notifications/roots/list_changed`); there is no other metacharacter and no escape. A
//!   pattern without `*` is compared exactly; values are case-sensitive, as MCP method names,
//!   tool and prompt names and URIs are (streamable-http.mdx, "Case Sensitivity").
//! - `name` is allowed only on a rule whose `method` is exactly `tools/call` or `prompts/get`,
//!   `uri` and `uri_prefix` only on exactly `resources/read`: the only methods whose target MCP
//!   mirrors into `Mcp-Name` (2026-07-28 streamable-http.mdx, "Standard Request Headers").
//! - `implies`: a broader scope implies the narrower ones listed (2026-07-28
//!   authorization/index.mdx, "Step-Up Authorization Flow": servers must account for scope
//!   hierarchies); transitive, computed once here. A cycle is refused: it would make a narrow
//!   scope imply a broad one, which is never what an operator means.
//! - Claim conditions: `equals` (a string, number or boolean, compared as JSON) or `contains`
//!   (a string that is an element of an array claim, or a space-separated word of a string
//!   claim, as `scope` is spelt). The claim name is passed to the claim lookup as written.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Map, Value};

use super::values::valid_scope;

/// Most distinct scopes one policy may name, in rules and implications together. Scope sets are
/// `u128` bitsets, so a decision compares them without allocating.
pub const MAX_SCOPES: usize = 128;

/// A validated policy. Built only by [`Policy::parse`], so every rule is well-formed, every scope
/// has an index and the implication closure is computed.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    fallback: Fallback,
    rules: Vec<Rule>,
    /// Every scope the policy names, sorted and unique; a scope's index is its bit.
    names: Vec<String>,
    /// For each scope, every scope it implies, itself included (the reflexive-transitive closure).
    implied: Vec<ScopeSet>,
    /// Some rule matches on a resource URI; see `crate::mcp::decide` on ambiguous URIs.
    uri_rules: bool,
    /// For each method a rule names exactly, the rules that select it; see [`Policy::select`].
    by_method: Vec<Methods>,
    /// The rules whose method is a pattern: the only ones that may select any other method.
    by_pattern: Vec<usize>,
}

/// The rules whose method matches one method a rule names exactly (those naming it, and the
/// patterns it matches), in the policy's order: a decision on that method compares targets
/// only. Found by length and last bytes before the text is compared.
#[derive(Clone, Debug, PartialEq)]
struct Methods {
    method: Box<str>,
    tail: u64,
    rules: Vec<usize>,
}

/// The last eight bytes of a method (all of a shorter one), as a word.
fn tail(method: &str) -> u64 {
    let bytes = method.as_bytes();
    let last = &bytes[bytes.len().saturating_sub(8)..];
    let mut word = [0u8; 8];
    word[..last.len()].copy_from_slice(last);
    u64::from_le_bytes(word)
}

/// What an operation no rule selects gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// Allowed when the token holds the resource's required scopes.
    Allow,
    Deny,
}

/// A set of a policy's scopes, by index.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScopeSet(u128);

impl ScopeSet {
    pub const EMPTY: ScopeSet = ScopeSet(0);

    fn one(index: usize) -> ScopeSet {
        ScopeSet(1u128 << index)
    }

    pub fn union(self, other: ScopeSet) -> ScopeSet {
        ScopeSet(self.0 | other.0)
    }

    /// The members of `self` that `other` lacks.
    pub fn minus(self, other: ScopeSet) -> ScopeSet {
        ScopeSet(self.0 & !other.0)
    }

    pub fn contains(self, index: usize) -> bool {
        index < MAX_SCOPES && self.0 & (1u128 << index) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The indices in the set, ascending.
    pub fn indices(self) -> impl Iterator<Item = usize> {
        (0..MAX_SCOPES).filter(move |&i| self.contains(i))
    }
}

/// Which request field an operation targets, by its method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetKind {
    /// `params.name`: the tool of `tools/call`, the prompt of `prompts/get`.
    Name,
    /// `params.uri`: the resource of `resources/read`.
    Uri,
}

impl TargetKind {
    /// The methods MCP mirrors a target of into `Mcp-Name` (2026-07-28 streamable-http.mdx,
    /// "Standard Request Headers"); every other method is matched by its name alone.
    pub fn of(method: &str) -> Option<TargetKind> {
        match method {
            "tools/call" | "prompts/get" => Some(TargetKind::Name),
            "resources/read" => Some(TargetKind::Uri),
            _ => None,
        }
    }

    /// The body field the target is read from.
    pub fn field(self) -> &'static str {
        match self {
            TargetKind::Name => "params.name",
            TargetKind::Uri => "params.uri",
        }
    }
}

/// A method, name or URI pattern: exact, or literal pieces around `*`s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pattern {
    Exact(String),
    /// The literal text between the `*`s: at least two pieces, the first and last anchored.
    Glob(Vec<String>),
}

impl Pattern {
    fn parse(text: &str, path: &str) -> Result<Pattern, PolicyError> {
        if text.is_empty() {
            return Err(PolicyError::EmptyPattern { path: path.to_string() });
        }
        if text.contains('*') {
            Ok(Pattern::Glob(text.split('*').map(String::from).collect()))
        } else {
            Ok(Pattern::Exact(text.to_string()))
        }
    }

    /// Whether `text` matches. Linear in `text` per piece, allocation-free; the leftmost match
    /// of each middle piece is enough because a `*` can absorb anything between pieces.
    pub fn matches(&self, text: &str) -> bool {
        let pieces = match self {
            Pattern::Exact(exact) => return exact == text,
            Pattern::Glob(pieces) => pieces,
        };
        // `prefix*`, the usual glob of a tool name: one comparison.
        if let [prefix, last] = pieces.as_slice() {
            if last.is_empty() {
                return text.starts_with(prefix.as_str());
            }
        }
        let (Some(first), Some(last)) = (pieces.first(), pieces.last()) else { return false };
        if text.len() < first.len() + last.len() || !text.starts_with(first.as_str()) || !text.ends_with(last.as_str())
        {
            return false;
        }
        // Both bounds are char boundaries: `text` starts with `first` and ends with `last`.
        let mut rest = &text[first.len()..text.len() - last.len()];
        for piece in &pieces[1..pieces.len() - 1] {
            match rest.find(piece.as_str()) {
                Some(at) => rest = &rest[at + piece.len()..],
                None => return false,
            }
        }
        true
    }
}

/// What a rule asks of an operation's target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetMatch {
    /// The rule does not look at the target.
    Any,
    /// The tool or prompt name.
    Name(Pattern),
    /// The resource URI, as a pattern.
    Uri(Pattern),
    /// The resource URI starts with this text (compared as bytes, not normalised).
    UriPrefix(String),
}

/// One rule: a selector (method and target) and its requirements (scopes and claims).
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    method: Pattern,
    target: TargetMatch,
    /// As written, duplicates removed: the scopes a step-up challenge names.
    scopes: Vec<String>,
    scope_set: ScopeSet,
    claims: Vec<ClaimCondition>,
}

impl Rule {
    /// Whether the rule selects an operation: its method matches and, when the rule names a
    /// target, the operation's target (`params.name` or `params.uri`) matches too.
    pub fn selects(&self, method: &str, target: Option<&str>) -> bool {
        self.method.matches(method) && self.selects_target(target)
    }

    /// Whether the rule's target condition, if any, holds for an operation's target.
    fn selects_target(&self, target: Option<&str>) -> bool {
        match (&self.target, target) {
            (TargetMatch::Any, _) => true,
            (_, None) => false,
            (TargetMatch::Name(p) | TargetMatch::Uri(p), Some(t)) => p.matches(t),
            (TargetMatch::UriPrefix(prefix), Some(t)) => t.starts_with(prefix.as_str()),
        }
    }

    pub fn target(&self) -> &TargetMatch {
        &self.target
    }

    /// The scopes the rule requires, as written.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    pub fn scope_set(&self) -> ScopeSet {
        self.scope_set
    }

    pub fn claims(&self) -> &[ClaimCondition] {
        &self.claims
    }
}

/// A condition on one claim of the token.
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimCondition {
    claim: String,
    test: ClaimTest,
}

/// How a claim is tested.
#[derive(Clone, Debug, PartialEq)]
pub enum ClaimTest {
    /// The claim is this string, number or boolean (JSON equality: `1` is not `1.0` or `"1"`).
    Equals(Value),
    /// The claim is an array with this string among its elements, or a string with this
    /// space-separated word.
    Contains(String),
}

impl ClaimCondition {
    pub fn claim(&self) -> &str {
        &self.claim
    }

    pub fn test(&self) -> &ClaimTest {
        &self.test
    }

    /// Whether the claim's value (absent: `None`) passes. Allocation-free.
    pub fn holds(&self, value: Option<&Value>) -> bool {
        match (&self.test, value) {
            (_, None) => false,
            (ClaimTest::Equals(expected), Some(v)) => v == expected,
            (ClaimTest::Contains(word), Some(Value::Array(items))) => {
                items.iter().any(|i| i.as_str() == Some(word.as_str()))
            }
            (ClaimTest::Contains(word), Some(Value::String(s))) => s.split(' ').any(|w| w == word.as_str()),
            (ClaimTest::Contains(_), Some(_)) => false,
        }
    }
}

/// Why a policy was refused. Each names the key path of the offending value, under the path
/// the caller passed (`policy`, `resources[1].policy`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyError {
    WrongType {
        path: String,
        expected: &'static str,
    },
    UnknownKey {
        path: String,
    },
    Missing {
        path: String,
    },
    EmptyPattern {
        path: String,
    },
    Invalid {
        path: String,
        reason: &'static str,
    },
    /// A target condition on a rule whose method has no target of that kind.
    NoTarget {
        path: String,
        field: &'static str,
    },
    /// Two keys that cannot be combined; `path` names the second.
    Conflict {
        path: String,
        with: &'static str,
    },
    /// `scope` implies itself through the implications at `path`.
    ImplicationCycle {
        path: String,
        scope: String,
    },
    TooManyScopes {
        path: String,
        count: usize,
    },
}

impl PolicyError {
    /// The key path of the offending value (`policy.rules[2].name`).
    pub fn path(&self) -> &str {
        match self {
            PolicyError::WrongType { path, .. }
            | PolicyError::UnknownKey { path }
            | PolicyError::Missing { path }
            | PolicyError::EmptyPattern { path }
            | PolicyError::Invalid { path, .. }
            | PolicyError::NoTarget { path, .. }
            | PolicyError::Conflict { path, .. }
            | PolicyError::ImplicationCycle { path, .. }
            | PolicyError::TooManyScopes { path, .. } => path,
        }
    }

    /// What is wrong, without the path: for messages that place the path themselves.
    pub fn reason(&self) -> Reason<'_> {
        Reason(self)
    }
}

/// A [`PolicyError`]'s reason, displayed without its path.
pub struct Reason<'e>(&'e PolicyError);

impl fmt::Display for Reason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            PolicyError::WrongType { expected, .. } => write!(f, "must be {expected}"),
            PolicyError::UnknownKey { .. } => f.write_str("unknown key"),
            PolicyError::Missing { .. } => f.write_str("required"),
            PolicyError::EmptyPattern { .. } => f.write_str("empty pattern"),
            PolicyError::Invalid { reason, .. } => f.write_str(reason),
            PolicyError::NoTarget { field, .. } => write!(
                f,
                "only a rule whose method is exactly {} can match {field}",
                if *field == "params.name" { "tools/call or prompts/get" } else { "resources/read" }
            ),
            PolicyError::Conflict { with, .. } => write!(f, "cannot be combined with {with}"),
            PolicyError::ImplicationCycle { scope, .. } => {
                write!(f, "{scope:?} implies itself through a cycle of implications")
            }
            PolicyError::TooManyScopes { count, .. } => {
                write!(f, "names {count} distinct scopes, at most {MAX_SCOPES} are supported")
            }
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path(), self.reason())
    }
}

impl std::error::Error for PolicyError {}

/// The scopes and implications read from the JSON before indices are assigned.
struct Draft {
    fallback: Fallback,
    implies: Vec<(String, Vec<String>)>,
    rules: Vec<(Pattern, TargetMatch, Vec<String>, Vec<ClaimCondition>)>,
}

impl Policy {
    /// Parses and validates a policy; `path` is where it sits in the configuration, for errors.
    pub fn parse(value: &Value, path: &str) -> Result<Policy, PolicyError> {
        let draft = parse_draft(value, path)?;
        let names: Vec<String> = draft
            .implies
            .iter()
            .flat_map(|(broad, narrow)| std::iter::once(broad).chain(narrow))
            .chain(draft.rules.iter().flat_map(|rule| &rule.2))
            .cloned()
            .collect::<BTreeSet<String>>()
            .into_iter()
            .collect();
        if names.len() > MAX_SCOPES {
            return Err(PolicyError::TooManyScopes { path: path.to_string(), count: names.len() });
        }
        let index = |scope: &str| names.binary_search_by(|n| n.as_str().cmp(scope)).expect("every scope was collected");
        let set = |scopes: &[String]| scopes.iter().fold(ScopeSet::EMPTY, |s, n| s.union(ScopeSet::one(index(n))));
        // The closure by iteration to a fixed point: at most one pass per scope.
        let mut implied: Vec<ScopeSet> = (0..names.len()).map(ScopeSet::one).collect();
        let edges: Vec<(usize, ScopeSet)> = draft.implies.iter().map(|(b, n)| (index(b), set(n))).collect();
        loop {
            let mut changed = false;
            for (broad, narrow) in &edges {
                let grown = narrow.indices().fold(implied[*broad], |s, n| s.union(implied[n]));
                changed |= grown != implied[*broad];
                implied[*broad] = grown;
            }
            if !changed {
                break;
            }
        }
        for (broad, narrow) in &edges {
            if narrow.indices().any(|n| implied[n].contains(*broad)) {
                let scope = names[*broad].clone();
                return Err(PolicyError::ImplicationCycle { path: format!("{path}.implies.{scope}"), scope });
            }
        }
        let uri_rules = draft.rules.iter().any(|r| matches!(r.1, TargetMatch::Uri(_) | TargetMatch::UriPrefix(_)));
        let rules: Vec<Rule> = draft
            .rules
            .into_iter()
            .map(|(method, target, scopes, claims)| Rule { method, target, scope_set: set(&scopes), scopes, claims })
            .collect();
        let mut by_method: Vec<Methods> = Vec::new();
        for rule in &rules {
            if let Pattern::Exact(method) = &rule.method {
                if !by_method.iter().any(|m| *m.method == **method) {
                    let selecting = (0..rules.len()).filter(|&i| rules[i].method.matches(method)).collect();
                    by_method.push(Methods { method: method.as_str().into(), tail: tail(method), rules: selecting });
                }
            }
        }
        let by_pattern = (0..rules.len()).filter(|&i| matches!(rules[i].method, Pattern::Glob(_))).collect();
        Ok(Policy { fallback: draft.fallback, rules, names, implied, uri_rules, by_method, by_pattern })
    }

    /// The first rule that selects an operation (its method and target match), with its index:
    /// the rule that decides it. The method picks the rules to try, so that only their targets
    /// are compared.
    pub fn select(&self, method: &str, target: Option<&str>) -> Option<(usize, &Rule)> {
        let word = tail(method);
        let named =
            self.by_method.iter().find(|m| m.method.len() == method.len() && m.tail == word && *m.method == *method);
        let (tried, matched) = match named {
            Some(named) => (&named.rules, true),
            None => (&self.by_pattern, false),
        };
        tried
            .iter()
            .map(|&i| (i, &self.rules[i]))
            .find(|(_, rule)| (matched || rule.method.matches(method)) && rule.selects_target(target))
    }

    pub fn fallback(&self) -> Fallback {
        self.fallback
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether some rule matches on a resource URI.
    pub fn has_uri_rules(&self) -> bool {
        self.uri_rules
    }

    /// The index of a scope the policy names.
    pub fn index(&self, scope: &str) -> Option<usize> {
        self.names.binary_search_by(|n| n.as_str().cmp(scope)).ok()
    }

    /// The name of the scope at `index`.
    pub fn name(&self, index: usize) -> Option<&str> {
        self.names.get(index).map(String::as_str)
    }

    /// Everything a token holding `held` may do: each held scope the policy knows, and what it
    /// implies. Scopes the policy does not name add nothing. Allocation-free.
    pub fn effective(&self, held: &[String]) -> ScopeSet {
        held.iter().filter_map(|s| self.index(s)).fold(ScopeSet::EMPTY, |set, i| set.union(self.implied[i]))
    }

    /// Every scope a rule requires, sorted: what the protected resource metadata's
    /// `scopes_supported` must list so clients can ask for them.
    pub fn scopes(&self) -> Vec<&str> {
        let all = self.rules.iter().fold(ScopeSet::EMPTY, |s, r| s.union(r.scope_set));
        all.indices().filter_map(|i| self.name(i)).collect()
    }

    /// The scopes a rule requires that the authorization server's `scopes_supported` does not
    /// list: no client could obtain them, so the caller refuses to start with such a policy.
    pub fn unsupported_scopes<'p>(&'p self, supported: &[String]) -> Vec<&'p str> {
        self.scopes().into_iter().filter(|s| !supported.iter().any(|o| o == s)).collect()
    }
}

fn parse_draft(value: &Value, path: &str) -> Result<Draft, PolicyError> {
    let object = as_object(value, path)?;
    known(object, path, &["default", "implies", "rules"])?;
    let default_path = format!("{path}.default");
    let fallback = match object.get("default") {
        None => return Err(PolicyError::Missing { path: default_path }),
        Some(Value::String(s)) if s == "allow" => Fallback::Allow,
        Some(Value::String(s)) if s == "deny" => Fallback::Deny,
        Some(_) => return Err(PolicyError::WrongType { path: default_path, expected: "\"allow\" or \"deny\"" }),
    };
    let mut implies = Vec::new();
    if let Some(v) = object.get("implies") {
        let implies_path = format!("{path}.implies");
        for (broad, narrow) in as_object(v, &implies_path)? {
            let entry_path = format!("{implies_path}.{broad}");
            check_scope(broad, &entry_path)?;
            implies.push((broad.clone(), scope_list(narrow, &entry_path)?));
        }
    }
    let mut rules = Vec::new();
    if let Some(v) = object.get("rules") {
        let rules_path = format!("{path}.rules");
        let Value::Array(items) = v else {
            return Err(PolicyError::WrongType { path: rules_path, expected: "an array of rules" });
        };
        for (i, item) in items.iter().enumerate() {
            rules.push(parse_rule(item, &format!("{rules_path}[{i}]"))?);
        }
    }
    Ok(Draft { fallback, implies, rules })
}

fn parse_rule(
    value: &Value,
    path: &str,
) -> Result<(Pattern, TargetMatch, Vec<String>, Vec<ClaimCondition>), PolicyError> {
    let object = as_object(value, path)?;
    known(object, path, &["method", "name", "uri", "uri_prefix", "scopes", "claims"])?;
    let method_path = format!("{path}.method");
    let method = match object.get("method") {
        None => return Err(PolicyError::Missing { path: method_path }),
        Some(v) => Pattern::parse(as_str(v, &method_path)?, &method_path)?,
    };
    let kind = match &method {
        Pattern::Exact(m) => TargetKind::of(m),
        Pattern::Glob(_) => None,
    };
    let mut target = TargetMatch::Any;
    for (key, want) in [("name", TargetKind::Name), ("uri", TargetKind::Uri), ("uri_prefix", TargetKind::Uri)] {
        let Some(v) = object.get(key) else { continue };
        let key_path = format!("{path}.{key}");
        if kind != Some(want) {
            return Err(PolicyError::NoTarget { path: key_path, field: want.field() });
        }
        if key == "uri_prefix" && target != TargetMatch::Any {
            return Err(PolicyError::Conflict { path: key_path, with: "uri" });
        }
        let text = as_str(v, &key_path)?;
        target = match key {
            "name" => TargetMatch::Name(Pattern::parse(text, &key_path)?),
            "uri" => TargetMatch::Uri(Pattern::parse(text, &key_path)?),
            _ if text.is_empty() => return Err(PolicyError::EmptyPattern { path: key_path }),
            _ => TargetMatch::UriPrefix(text.to_string()),
        };
    }
    let scopes = match object.get("scopes") {
        None => Vec::new(),
        Some(v) => scope_list(v, &format!("{path}.scopes"))?,
    };
    let mut claims = Vec::new();
    if let Some(v) = object.get("claims") {
        let claims_path = format!("{path}.claims");
        let Value::Array(items) = v else {
            return Err(PolicyError::WrongType { path: claims_path, expected: "an array of claim conditions" });
        };
        for (i, item) in items.iter().enumerate() {
            claims.push(parse_claim(item, &format!("{claims_path}[{i}]"))?);
        }
    }
    Ok((method, target, scopes, claims))
}

fn parse_claim(value: &Value, path: &str) -> Result<ClaimCondition, PolicyError> {
    let object = as_object(value, path)?;
    known(object, path, &["claim", "equals", "contains"])?;
    let claim_path = format!("{path}.claim");
    let claim = match object.get("claim") {
        None => return Err(PolicyError::Missing { path: claim_path }),
        Some(v) => as_str(v, &claim_path)?,
    };
    if claim.is_empty() {
        return Err(PolicyError::Invalid { path: claim_path, reason: "empty claim name" });
    }
    let test = match (object.get("equals"), object.get("contains")) {
        (Some(_), Some(_)) => return Err(PolicyError::Conflict { path: format!("{path}.contains"), with: "equals" }),
        (None, None) => return Err(PolicyError::Missing { path: format!("{path}.equals") }),
        (Some(v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))), None) => ClaimTest::Equals(v.clone()),
        (Some(_), None) => {
            return Err(PolicyError::WrongType {
                path: format!("{path}.equals"),
                expected: "a string, number or boolean",
            })
        }
        (None, Some(v)) => {
            let word_path = format!("{path}.contains");
            let word = as_str(v, &word_path)?;
            if word.is_empty() || word.contains(' ') {
                return Err(PolicyError::Invalid { path: word_path, reason: "must be one non-empty word" });
            }
            ClaimTest::Contains(word.to_string())
        }
    };
    Ok(ClaimCondition { claim: claim.to_string(), test })
}

fn as_object<'v>(value: &'v Value, path: &str) -> Result<&'v Map<String, Value>, PolicyError> {
    value.as_object().ok_or_else(|| PolicyError::WrongType { path: path.to_string(), expected: "an object" })
}

fn as_str<'v>(value: &'v Value, path: &str) -> Result<&'v str, PolicyError> {
    value.as_str().ok_or_else(|| PolicyError::WrongType { path: path.to_string(), expected: "a string" })
}

/// Refuses keys outside `allowed`: a misspelt key would otherwise loosen the policy silently.
fn known(object: &Map<String, Value>, path: &str, allowed: &[&str]) -> Result<(), PolicyError> {
    match object.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(PolicyError::UnknownKey { path: format!("{path}.{key}") }),
        None => Ok(()),
    }
}

fn check_scope(scope: &str, path: &str) -> Result<(), PolicyError> {
    if valid_scope(scope) {
        Ok(())
    } else {
        Err(PolicyError::Invalid { path: path.to_string(), reason: "not a scope token (RFC 6749 §3.3)" })
    }
}

/// An array of scope tokens, duplicates dropped, order kept.
fn scope_list(value: &Value, path: &str) -> Result<Vec<String>, PolicyError> {
    let Value::Array(items) = value else {
        return Err(PolicyError::WrongType { path: path.to_string(), expected: "an array of scopes" });
    };
    let mut scopes: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        let scope = as_str(item, &item_path)?;
        check_scope(scope, &item_path)?;
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_string());
        }
    }
    Ok(scopes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Policy, PolicyError> {
        Policy::parse(&v, "policy")
    }

    fn err(v: Value) -> String {
        parse(v).expect_err("the policy is invalid").to_string()
    }

    fn glob(p: &str) -> Pattern {
        Pattern::parse(p, "p").expect("non-empty")
    }

    #[test]
    fn patterns_match_exactly_or_around_stars() {
        assert!(glob("tools/call").matches("tools/call"));
        assert!(!glob("tools/call").matches("tools/Call"));
        assert!(!glob("tools/call").matches("tools/call2"));
        assert!(glob("delete_*").matches("delete_"));
        assert!(glob("delete_*").matches("delete_user"));
        assert!(!glob("delete_*").matches("undelete_user"));
        assert!(glob("*_admin").matches("db_admin"));
        assert!(!glob("*_admin").matches("db_admin2"));
        assert!(glob("notifications/*").matches("notifications/roots/list_changed"), "* crosses /");
        assert!(glob("*").matches(""));
        assert!(glob("a*b*c").matches("abc"));
        assert!(glob("a*b*c").matches("a-b-b-c"));
        assert!(!glob("a*b*c").matches("acb"));
        // First and last pieces must not overlap.
        assert!(!glob("ab*ba").matches("aba"));
        assert!(glob("ab*ba").matches("abba"));
        assert!(glob("é*ü").matches("éxü"));
        assert!(!glob("é*ü").matches("é"));
        assert!(glob("**").matches("anything"));
    }

    #[test]
    fn the_suggested_policy_parses() {
        let p = parse(json!({"default": "deny",
            "implies": {"mcp:admin": ["mcp:tools:write", "mcp:read"]},
            "rules": [
                {"method": "tools/call", "name": "delete_*", "scopes": ["mcp:admin"],
                 "claims": [{"claim": "groups", "contains": "ops"}]},
                {"method": "resources/read", "uri_prefix": "file:///public/", "scopes": ["mcp:read"]},
                {"method": "notifications/*", "scopes": []}]}))
        .expect("valid");
        assert_eq!(p.fallback(), Fallback::Deny);
        assert_eq!(p.rules().len(), 3);
        assert!(p.has_uri_rules());
        assert_eq!(p.scopes(), ["mcp:admin", "mcp:read"], "implied-only scopes are not a rule's");
        assert!(p.rules()[0].selects("tools/call", Some("delete_user")));
        assert!(!p.rules()[0].selects("tools/call", Some("create_user")));
        assert!(!p.rules()[0].selects("tools/call", None));
        assert!(!p.rules()[0].selects("prompts/get", Some("delete_user")));
        assert!(p.rules()[1].selects("resources/read", Some("file:///public/a.txt")));
        assert!(!p.rules()[1].selects("resources/read", Some("file:///private/a.txt")));
        assert!(p.rules()[2].selects("notifications/initialized", None));
    }

    #[test]
    fn the_method_index_selects_the_first_rule_as_a_scan_of_all_rules_would() {
        let p = parse(json!({"default": "deny", "rules": [
            {"method": "tools/call", "name": "admin_*"},
            {"method": "tools/*"},
            {"method": "tools/call"},
            {"method": "ping"},
            {"method": "*/list"},
            {"method": "tools/list"}]}))
        .unwrap();
        let scan = |method: &str, target: Option<&str>| p.rules().iter().position(|r| r.selects(method, target));
        for (method, target) in [
            ("tools/call", Some("admin_x")),
            ("tools/call", Some("read")),
            ("tools/call", None),
            ("tools/list", None),
            ("prompts/list", None),
            ("ping", None),
            ("pong", None),
            ("tools/lis", None),
            ("xtools/list", None),
            ("", None),
        ] {
            assert_eq!(p.select(method, target).map(|(i, _)| i), scan(method, target), "{method} {target:?}");
        }
        assert_eq!(p.select("tools/call", Some("read")).map(|(i, _)| i), Some(1));
        assert_eq!(p.select("prompts/list", None).map(|(i, _)| i), Some(4));
        assert_eq!(p.select("pong", None).map(|(i, _)| i), None);
    }

    #[test]
    fn implication_is_the_reflexive_transitive_closure() {
        let p = parse(json!({"default": "deny", "implies": {
            "admin": ["write"], "write": ["read"], "other": ["read"]}}))
        .expect("valid");
        let held = |s: &[&str]| p.effective(&s.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let has = |set: ScopeSet, s: &str| set.contains(p.index(s).expect("named"));
        let admin = held(&["admin"]);
        assert!(has(admin, "admin") && has(admin, "write") && has(admin, "read"), "broad implies narrow, transitively");
        assert!(!has(admin, "other"));
        let read = held(&["read"]);
        assert!(has(read, "read") && !has(read, "write") && !has(read, "admin"), "not the reverse");
        assert_eq!(held(&["unknown"]), ScopeSet::EMPTY);
        assert_eq!(held(&[]), ScopeSet::EMPTY);
    }

    #[test]
    fn unsupported_scopes_are_those_a_rule_needs_and_the_server_lacks() {
        let p = parse(json!({"default": "allow", "implies": {"root": ["a"]}, "rules": [
            {"method": "tools/call", "scopes": ["a", "b"]}, {"method": "prompts/get", "scopes": ["c", "a"]}]}))
        .expect("valid");
        assert_eq!(p.scopes(), ["a", "b", "c"]);
        let supported = vec!["a".to_string(), "c".to_string()];
        assert_eq!(p.unsupported_scopes(&supported), ["b"]);
        assert!(p.unsupported_scopes(&["a", "b", "c"].map(String::from)).is_empty());
    }

    #[test]
    fn claim_conditions() {
        let p = parse(json!({"default": "deny", "rules": [{"method": "x", "claims": [
            {"claim": "groups", "contains": "ops"}, {"claim": "tenant", "equals": "acme"},
            {"claim": "level", "equals": 3}]}]}))
        .expect("valid");
        let [contains, equals, number] = p.rules()[0].claims() else { panic!("three conditions") };
        assert_eq!(contains.claim(), "groups");
        assert!(contains.holds(Some(&json!(["dev", "ops"]))));
        assert!(contains.holds(Some(&json!("dev ops"))));
        assert!(!contains.holds(Some(&json!("devops"))));
        assert!(!contains.holds(Some(&json!(["devops"]))));
        assert!(!contains.holds(Some(&json!({"ops": true}))));
        assert!(!contains.holds(None));
        assert!(equals.holds(Some(&json!("acme"))));
        assert!(!equals.holds(Some(&json!("Acme"))));
        assert!(!equals.holds(Some(&json!(["acme"]))));
        assert!(number.holds(Some(&json!(3))));
        assert!(!number.holds(Some(&json!("3"))));
    }

    #[test]
    fn every_error_names_its_key_path() {
        let cases = [
            (json!([]), "policy: must be an object"),
            (json!({"rules": []}), "policy.default: required"),
            (json!({"default": "maybe"}), "policy.default: must be \"allow\" or \"deny\""),
            (json!({"default": "deny", "rule": []}), "policy.rule: unknown key"),
            (json!({"default": "deny", "rules": {}}), "policy.rules: must be an array of rules"),
            (json!({"default": "deny", "rules": [{"method": "a"}, "b"]}), "policy.rules[1]: must be an object"),
            (json!({"default": "deny", "rules": [{"name": "a"}]}), "policy.rules[0].method: required"),
            (json!({"default": "deny", "rules": [{"method": 1}]}), "policy.rules[0].method: must be a string"),
            (json!({"default": "deny", "rules": [{"method": ""}]}), "policy.rules[0].method: empty pattern"),
            (
                json!({"default": "deny", "rules": [{"method": "a"}, {"method": "a"}, {"method": "tools/call", "name": ""}]}),
                "policy.rules[2].name: empty pattern",
            ),
            (
                json!({"default": "deny", "rules": [{"method": "resources/read", "uri_prefix": ""}]}),
                "policy.rules[0].uri_prefix: empty pattern",
            ),
            (
                json!({"default": "deny", "rules": [{"method": "tools/list", "name": "x"}]}),
                "policy.rules[0].name: only a rule whose method is exactly tools/call or prompts/get can match params.name",
            ),
            (
                json!({"default": "deny", "rules": [{"method": "tools/*", "name": "x"}]}),
                "policy.rules[0].name: only a rule whose method is exactly tools/call or prompts/get can match params.name",
            ),
            (
                json!({"default": "deny", "rules": [{"method": "tools/call", "uri": "x"}]}),
                "policy.rules[0].uri: only a rule whose method is exactly resources/read can match params.uri",
            ),
            (
                json!({"default": "deny", "rules": [{"method": "resources/read", "uri": "a*", "uri_prefix": "a"}]}),
                "policy.rules[0].uri_prefix: cannot be combined with uri",
            ),
            (
                json!({"default": "deny", "rules": [{"method": "a", "nmae": "x"}]}),
                "policy.rules[0].nmae: unknown key",
            ),
            (
                json!({"default": "deny", "rules": [{"method": "a", "scopes": "s"}]}),
                "policy.rules[0].scopes: must be an array of scopes",
            ),
            (
                json!({"default": "deny", "rules": [{"method": "a", "scopes": ["ok", "has space"]}]}),
                "policy.rules[0].scopes[1]: not a scope token (RFC 6749 §3.3)",
            ),
            (
                json!({"default": "deny", "rules": [{"method": "a", "claims": {}}]}),
                "policy.rules[0].claims: must be an array of claim conditions",
            ),
            (
                json!({"default": "deny", "rules": [{"method": "a", "claims": [{"equals": "x"}]}]}),
                "policy.rules[0].claims[0].claim: required",
            ),
            (
                json!({"default": "deny", "rules": [{"method": "a", "claims": [{"claim": ""}]}]}),
                "policy.rules[0].claims[0].claim: empty claim name",
            ),
            (
                json!({"default": "deny", "rules": [{"method": "a", "claims": [{"claim": "g"}]}]}),
                "policy.rules[0].claims[0].equals: required",
            ),
            (
                json!({"default": "deny", "rules": [{"method": "a", "claims": [{"claim": "g", "equals": 1, "contains": "x"}]}]}),
                "policy.rules[0].claims[0].contains: cannot be combined with equals",
            ),
            (
                json!({"default": "deny", "rules": [{"method": "a", "claims": [{"claim": "g", "equals": null}]}]}),
                "policy.rules[0].claims[0].equals: must be a string, number or boolean",
            ),
            (
                json!({"default": "deny", "rules": [{"method": "a", "claims": [{"claim": "g", "contains": "a b"}]}]}),
                "policy.rules[0].claims[0].contains: must be one non-empty word",
            ),
            (
                json!({"default": "deny", "rules": [{"method": "a", "claims": [{"claim": "g", "has": "x"}]}]}),
                "policy.rules[0].claims[0].has: unknown key",
            ),
            (json!({"default": "deny", "implies": []}), "policy.implies: must be an object"),
            (json!({"default": "deny", "implies": {"a": "b"}}), "policy.implies.a: must be an array of scopes"),
            (json!({"default": "deny", "implies": {"a b": []}}), "policy.implies.a b: not a scope token (RFC 6749 §3.3)"),
            (
                json!({"default": "deny", "implies": {"a": ["b"], "b": ["c"], "c": ["a"]}}),
                "policy.implies.a: \"a\" implies itself through a cycle of implications",
            ),
            (
                json!({"default": "deny", "implies": {"a": ["a"]}}),
                "policy.implies.a: \"a\" implies itself through a cycle of implications",
            ),
        ];
        for (value, want) in cases {
            assert_eq!(err(value.clone()), want, "{value}");
        }
        let many: Vec<String> = (0..=MAX_SCOPES).map(|i| format!("s{i}")).collect();
        assert_eq!(
            parse(json!({"default": "deny", "rules": [{"method": "a", "scopes": many}]})),
            Err(PolicyError::TooManyScopes { path: "policy".into(), count: MAX_SCOPES + 1 })
        );
        let most: Vec<String> = (0..MAX_SCOPES).map(|i| format!("s{i}")).collect();
        let p = parse(json!({"default": "deny", "rules": [{"method": "a", "scopes": most}]})).expect("128 fit");
        assert!(p.effective(&["s127".to_string()]).contains(p.index("s127").expect("named")));
    }

    #[test]
    fn the_error_path_is_the_callers() {
        let e = Policy::parse(&json!({"default": 1}), "resources[2].policy").expect_err("wrong type");
        assert_eq!(
            e,
            PolicyError::WrongType { path: "resources[2].policy.default".into(), expected: "\"allow\" or \"deny\"" }
        );
    }
}
