//! The policy's verdict on an operation: pure, and allocation-free when it allows.
//!
//! The first rule that selects the operation (its method and target match) decides; a later
//! rule is never consulted, even when the first denies. A selected rule's claim conditions are
//! checked before its scopes: a claim no token refresh can change makes step-up pointless.
//! Scopes are compared through the policy's implication closure, so a broader scope held
//! satisfies the narrower ones it implies (2026-07-28 authorization/index.mdx, "Step-Up
//! Authorization Flow").

use serde_json::{Map, Value};

use crate::config::policy::{Fallback, Policy, ScopeSet, TargetKind};
use crate::mcp::Call;

/// The token's claims, as the policy's claim conditions read them.
pub trait Claims {
    fn claim(&self, name: &str) -> Option<&Value>;
}

/// A JWT payload or an introspection answer.
impl Claims for Map<String, Value> {
    fn claim(&self, name: &str) -> Option<&Value> {
        self.get(name)
    }
}

/// A token with no claims the edge can read (the `presence` token check).
pub struct NoClaims;

impl Claims for NoClaims {
    fn claim(&self, _: &str) -> Option<&Value> {
        None
    }
}

/// What the policy says; `rule` is the index of the deciding rule, `None` for the default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow { rule: Option<usize> },
    Deny { rule: Option<usize>, reason: Denial },
}

/// Why an operation is denied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denial {
    /// The token lacks scopes: a step-up can fix it. `needed` is everything the operation
    /// requires, for the challenge's one `scope` list; `missing` is what the token lacks of it.
    Scope { needed: Vec<String>, missing: Vec<String> },
    /// A claim condition of the deciding rule does not hold; no step-up changes that.
    Claim { claim: String },
    /// No rule selects the operation and the policy's default is deny.
    NoRule,
    /// SECURITY: a resource URI the MCP server might read as another one (dot segments or an
    /// encoded slash), refused whenever the policy has URI rules, because a prefix or pattern
    /// compared on the unnormalised text could be sidestepped (`file:///public/../secret`).
    AmbiguousUri,
}

/// Decides one operation. `held` are the token's scopes, `claims` its claims, and `required`
/// the resource's required scopes, which an operation that no rule selects needs under a
/// default of allow.
pub fn decide(policy: &Policy, call: Call<'_>, held: &[String], claims: &dyn Claims, required: &[String]) -> Verdict {
    if let (true, Some(uri)) = (policy.has_uri_rules(), call.target) {
        if TargetKind::of(call.method) == Some(TargetKind::Uri) && ambiguous_uri(uri) {
            return Verdict::Deny { rule: None, reason: Denial::AmbiguousUri };
        }
    }
    let Some((index, rule)) = policy.select(call.method, call.target) else {
        return match policy.fallback() {
            Fallback::Deny => Verdict::Deny { rule: None, reason: Denial::NoRule },
            Fallback::Allow => {
                let effective = policy.effective(held);
                let holds = |scope: &str| holds(policy, held, effective, scope);
                if required.iter().all(|s| holds(s.as_str())) {
                    Verdict::Allow { rule: None }
                } else {
                    Verdict::Deny { rule: None, reason: shortfall(required, &holds) }
                }
            }
        };
    };
    if let Some(failed) = rule.claims().iter().find(|c| !c.holds(claims.claim(c.claim()))) {
        return Verdict::Deny { rule: Some(index), reason: Denial::Claim { claim: failed.claim().to_string() } };
    }
    // Every scope the rule requires held as written (none, or the usual one or two) is enough;
    // otherwise implications are consulted.
    if rule.scopes().iter().all(|scope| held.iter().any(|h| h == scope)) {
        return Verdict::Allow { rule: Some(index) };
    }
    let effective = policy.effective(held);
    if rule.scope_set().minus(effective).is_empty() {
        Verdict::Allow { rule: Some(index) }
    } else {
        Verdict::Deny { rule: Some(index), reason: shortfall(rule.scopes(), &|s| holds(policy, held, effective, s)) }
    }
}

/// Whether a token holding `held` (`effective` in the policy's terms) has `scope`: held as it
/// is, or implied by one held.
fn holds(policy: &Policy, held: &[String], effective: ScopeSet, scope: &str) -> bool {
    held.iter().any(|h| h == scope) || policy.index(scope).is_some_and(|i| effective.contains(i))
}

fn shortfall(needed: &[String], holds: &dyn Fn(&str) -> bool) -> Denial {
    Denial::Scope { needed: needed.to_vec(), missing: needed.iter().filter(|s| !holds(s.as_str())).cloned().collect() }
}

/// Decides every operation of a batch: allowed when all are. A denial no step-up can fix
/// decides the batch (the first such); otherwise the scope shortfalls are joined, so that one
/// challenge names everything the batch needs, and `rule` is the first denying rule's. An
/// allowed batch of more than one operation names no rule. Responses in a body carry no
/// operation and are not passed here: they answer the server's own requests and invoke nothing.
pub fn decide_all<'c>(
    policy: &Policy,
    calls: impl IntoIterator<Item = Call<'c>>,
    held: &[String],
    claims: &dyn Claims,
    required: &[String],
) -> Verdict {
    let mut count = 0;
    let mut allowed_by = None;
    let mut short: Option<(Option<usize>, Vec<String>, Vec<String>)> = None;
    for call in calls {
        count += 1;
        match decide(policy, call, held, claims, required) {
            Verdict::Allow { rule } => allowed_by = rule,
            Verdict::Deny { rule, reason: Denial::Scope { needed, missing } } => {
                let (_, all_needed, all_missing) = short.get_or_insert_with(|| (rule, Vec::new(), Vec::new()));
                join(all_needed, needed);
                join(all_missing, missing);
            }
            denied @ Verdict::Deny { .. } => return denied,
        }
    }
    match short {
        Some((rule, needed, missing)) => Verdict::Deny { rule, reason: Denial::Scope { needed, missing } },
        None if count == 1 => Verdict::Allow { rule: allowed_by },
        None => Verdict::Allow { rule: None },
    }
}

/// Appends the scopes `into` lacks, keeping first-seen order.
fn join(into: &mut Vec<String>, from: Vec<String>) {
    for scope in from {
        if !into.contains(&scope) {
            into.push(scope);
        }
    }
}

/// Whether a URI has a path segment `.` or `..` (also percent-encoded) or an encoded `/` or
/// `\`: text a server may resolve to another resource than the one the policy matched.
fn ambiguous_uri(uri: &str) -> bool {
    let lower_has = |needle: &[u8]| uri.as_bytes().windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle));
    lower_has(b"%2f") || lower_has(b"%5c") || uri.split(['/', '\\', '?', '#']).any(is_dot_segment)
}

fn is_dot_segment(segment: &str) -> bool {
    let (mut dots, mut rest) = (0, segment.as_bytes());
    while !rest.is_empty() {
        if rest[0] == b'.' {
            rest = &rest[1..];
        } else if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(b"%2e") {
            rest = &rest[3..];
        } else {
            return false;
        }
        dots += 1;
    }
    dots == 1 || dots == 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(v: Value) -> Policy {
        Policy::parse(&v, "policy").expect("valid policy")
    }

    fn scopes(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    fn call<'a>(method: &'a str, target: Option<&'a str>) -> Call<'a> {
        Call { method, target }
    }

    fn the_suggested() -> Policy {
        policy(json!({"default": "deny",
            "implies": {"mcp:admin": ["mcp:tools:write", "mcp:read"], "mcp:tools:write": ["mcp:tools:read"]},
            "rules": [
                {"method": "tools/call", "name": "delete_*", "scopes": ["mcp:admin"],
                 "claims": [{"claim": "groups", "contains": "ops"}]},
                {"method": "tools/call", "name": "write_*", "scopes": ["mcp:tools:write", "mcp:read"]},
                {"method": "tools/call", "scopes": ["mcp:tools:read"]},
                {"method": "resources/read", "uri_prefix": "file:///public/", "scopes": ["mcp:read"]},
                {"method": "notifications/*", "scopes": []}]}))
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().expect("object").clone()
    }

    #[test]
    fn the_first_selecting_rule_decides() {
        let p = the_suggested();
        let ops = claims(json!({"groups": ["ops"]}));
        let d = |c, held: &[&str], cl: &dyn Claims| decide(&p, c, &scopes(held), cl, &[]);
        assert_eq!(d(call("tools/call", Some("delete_user")), &["mcp:admin"], &ops), Verdict::Allow { rule: Some(0) });
        assert_eq!(
            d(call("tools/call", Some("read_file")), &["mcp:tools:read"], &NoClaims),
            Verdict::Allow { rule: Some(2) }
        );
        // delete_* is rule 0's even for a token that rule 2 would allow.
        assert_eq!(
            d(call("tools/call", Some("delete_user")), &["mcp:tools:read"], &ops),
            Verdict::Deny {
                rule: Some(0),
                reason: Denial::Scope { needed: scopes(&["mcp:admin"]), missing: scopes(&["mcp:admin"]) }
            }
        );
        assert_eq!(d(call("notifications/initialized", None), &[], &NoClaims), Verdict::Allow { rule: Some(4) });
        assert_eq!(
            d(call("tools/list", None), &["mcp:admin"], &ops),
            Verdict::Deny { rule: None, reason: Denial::NoRule }
        );
    }

    #[test]
    fn implication_counts_broad_for_narrow_transitively_never_the_reverse() {
        let p = the_suggested();
        let d = |c, held: &[&str]| decide(&p, c, &scopes(held), &NoClaims, &[]);
        let read_tool = call("tools/call", Some("read_file"));
        assert_eq!(d(read_tool, &["mcp:tools:write"]), Verdict::Allow { rule: Some(2) });
        assert_eq!(d(read_tool, &["mcp:admin"]), Verdict::Allow { rule: Some(2) }, "admin > write > read");
        assert_eq!(d(call("tools/call", Some("write_x")), &["mcp:admin"]), Verdict::Allow { rule: Some(1) });
        assert_eq!(
            d(call("tools/call", Some("write_x")), &["mcp:tools:read", "mcp:read"]),
            Verdict::Deny {
                rule: Some(1),
                reason: Denial::Scope {
                    needed: scopes(&["mcp:tools:write", "mcp:read"]),
                    missing: scopes(&["mcp:tools:write"])
                }
            },
            "the narrow scope does not imply the broad; the challenge names all the rule needs"
        );
        assert_eq!(
            d(read_tool, &["mcp:read"]),
            Verdict::Deny {
                rule: Some(2),
                reason: Denial::Scope { needed: scopes(&["mcp:tools:read"]), missing: scopes(&["mcp:tools:read"]) }
            }
        );
    }

    #[test]
    fn claim_conditions_deny_without_step_up() {
        let p = the_suggested();
        let delete = call("tools/call", Some("delete_user"));
        let admin = scopes(&["mcp:admin"]);
        for c in [json!({"groups": ["dev"]}), json!({"groups": "dev qa"}), json!({}), json!({"groups": "ops-team"})] {
            assert_eq!(
                decide(&p, delete, &admin, &claims(c.clone()), &[]),
                Verdict::Deny { rule: Some(0), reason: Denial::Claim { claim: "groups".into() } },
                "{c}"
            );
        }
        assert_eq!(
            decide(&p, delete, &admin, &claims(json!({"groups": "dev ops"})), &[]),
            Verdict::Allow { rule: Some(0) }
        );
        // Claims are judged first: a token failing both is not told to step up.
        assert_eq!(
            decide(&p, delete, &[], &NoClaims, &[]),
            Verdict::Deny { rule: Some(0), reason: Denial::Claim { claim: "groups".into() } }
        );
    }

    #[test]
    fn the_default_allows_with_the_resources_required_scopes() {
        let p = policy(json!({"default": "allow", "implies": {"mcp:all": ["mcp:base"]},
            "rules": [{"method": "tools/call", "name": "admin_*", "scopes": ["mcp:admin"]}]}));
        let required = scopes(&["mcp:base"]);
        let list = call("tools/list", None);
        assert_eq!(decide(&p, list, &scopes(&["mcp:base"]), &NoClaims, &required), Verdict::Allow { rule: None });
        assert_eq!(
            decide(&p, list, &scopes(&["mcp:all"]), &NoClaims, &required),
            Verdict::Allow { rule: None },
            "implied"
        );
        assert_eq!(
            decide(&p, list, &scopes(&["mcp:other"]), &NoClaims, &required),
            Verdict::Deny {
                rule: None,
                reason: Denial::Scope { needed: scopes(&["mcp:base"]), missing: scopes(&["mcp:base"]) }
            }
        );
        // A required scope the policy never names is compared as it is.
        let unnamed = scopes(&["x:y"]);
        assert_eq!(decide(&p, list, &unnamed, &NoClaims, &unnamed), Verdict::Allow { rule: None });
        assert_eq!(decide(&p, list, &[], &NoClaims, &[]), Verdict::Allow { rule: None });
        assert_eq!(
            decide(&p, call("tools/call", Some("admin_reset")), &scopes(&["mcp:base"]), &NoClaims, &required),
            Verdict::Deny {
                rule: Some(0),
                reason: Denial::Scope { needed: scopes(&["mcp:admin"]), missing: scopes(&["mcp:admin"]) }
            }
        );
    }

    #[test]
    fn resource_uris_match_by_prefix_and_ambiguous_ones_are_refused() {
        let p = the_suggested();
        let read = scopes(&["mcp:read"]);
        let d = |uri| decide(&p, call("resources/read", Some(uri)), &read, &NoClaims, &[]);
        assert_eq!(d("file:///public/a.txt"), Verdict::Allow { rule: Some(3) });
        assert_eq!(d("file:///private/a.txt"), Verdict::Deny { rule: None, reason: Denial::NoRule });
        for sneaky in [
            "file:///public/../secret",
            "file:///public/%2e%2E/secret",
            "file:///public/.%2e/secret",
            "file:///public/./a",
            "file:///public/..",
            "file:///public%2f..%2fsecret",
            "file:///public/..\\secret",
            "file:///public/a%5C..%5Cb",
        ] {
            assert_eq!(d(sneaky), Verdict::Deny { rule: None, reason: Denial::AmbiguousUri }, "{sneaky}");
        }
        assert_eq!(d("file:///public/a..b/.c"), Verdict::Allow { rule: Some(3) }, "dots inside a segment are fine");
        let no_uri_rules = policy(json!({"default": "allow"}));
        assert_eq!(
            decide(&no_uri_rules, call("resources/read", Some("file:///a/../b")), &[], &NoClaims, &[]),
            Verdict::Allow { rule: None },
            "without URI rules nothing depends on the URI's text"
        );
    }

    #[test]
    fn a_batch_is_allowed_only_when_every_operation_is() {
        let p = the_suggested();
        let read = scopes(&["mcp:tools:read"]);
        let ops = claims(json!({"groups": "ops"}));
        let allowed = [call("tools/call", Some("a")), call("notifications/progress", None)];
        assert_eq!(decide_all(&p, allowed, &read, &ops, &[]), Verdict::Allow { rule: None });
        assert_eq!(decide_all(&p, [call("tools/call", Some("a"))], &read, &ops, &[]), Verdict::Allow { rule: Some(2) });
        assert_eq!(decide_all(&p, [], &read, &ops, &[]), Verdict::Allow { rule: None }, "responses only");
        let two_shortfalls = [
            call("tools/call", Some("a")),
            call("tools/call", Some("write_x")),
            call("tools/call", Some("delete_y")),
            call("tools/call", Some("write_z")),
        ];
        assert_eq!(
            decide_all(&p, two_shortfalls, &read, &ops, &[]),
            Verdict::Deny {
                rule: Some(1),
                reason: Denial::Scope {
                    needed: scopes(&["mcp:tools:write", "mcp:read", "mcp:admin"]),
                    missing: scopes(&["mcp:tools:write", "mcp:read", "mcp:admin"])
                }
            }
        );
        let with_unfixable = [call("tools/call", Some("write_x")), call("tools/list", None)];
        assert_eq!(
            decide_all(&p, with_unfixable, &read, &ops, &[]),
            Verdict::Deny { rule: None, reason: Denial::NoRule },
            "no step-up could allow the whole batch"
        );
    }

    #[test]
    fn dot_segments() {
        for yes in [".", "..", "%2e", "%2E%2e", ".%2E"] {
            assert!(is_dot_segment(yes), "{yes}");
        }
        for no in ["", "...", "a.", ".a", "%2e%2e%2e", "%2", "%"] {
            assert!(!is_dot_segment(no), "{no}");
        }
    }
}
