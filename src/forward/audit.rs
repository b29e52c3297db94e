//! The MCP policy's decisions, told to operators: each counted in
//! `mcp_auth_edge_policy_decisions_total` and, with `--audit-log`, written as a line. The
//! enforcer ([`crate::forward::inspect`]) calls here with what it has at hand; the line is
//! built only when there is an audit log, and queued, never written, on the request path.

use std::sync::Arc;
use std::time::SystemTime;

use http::header::HeaderMap;

use crate::config::policy::Policy;
use crate::gate::jwt::Claims as TokenClaims;
use crate::mcp::decide::{self, Claims, Denial, Verdict};
use crate::mcp::headers::{self, Source};
use crate::mcp::jsonrpc::{Body, Message};
use crate::mcp::Call;
use crate::telemetry::audit::{AuditLog, Entry, From, Rule};
use crate::telemetry::metrics::{Decision, MethodLabel, Metrics};
use crate::telemetry::request_id::X_REQUEST_ID;
use crate::telemetry::Telemetry;

/// Where one resource's policy decisions go.
pub struct Decisions {
    metrics: Arc<Metrics>,
    log: Option<AuditLog>,
    resource: Arc<str>,
}

/// Who asked, and how: what every line of one request shares.
#[derive(Clone, Copy)]
pub struct Asker<'a> {
    pub claims: Option<&'a TokenClaims>,
    /// The request's headers, where the edge put its `X-Request-Id`.
    pub headers: &'a HeaderMap,
    pub source: From,
}

/// The policy a verdict came from, and the resource's required scopes.
pub struct Applied<'a> {
    pub policy: &'a Policy,
    /// The resource's required scopes: what the default of allow needs.
    pub required: &'a [String],
}

/// A request allowed from its `Mcp-*` headers whose body is still streaming: what its second
/// line needs should the body turn out to disagree.
pub struct Pending {
    method: MethodLabel,
    entry: Option<Box<Entry>>,
}

impl Decisions {
    /// Counting into `telemetry`'s metrics and writing to its audit log, if any, for `resource`.
    pub fn new(telemetry: &Telemetry, resource: &str) -> Decisions {
        Decisions {
            metrics: Arc::clone(&telemetry.metrics),
            log: telemetry.audit.clone(),
            resource: Arc::from(resource),
        }
    }

    /// One operation decided; the label it was counted under, for [`Decisions::pending`].
    pub fn decided(&self, asker: Asker<'_>, call: Call<'_>, verdict: &Verdict, applied: &Applied<'_>) -> MethodLabel {
        let decision = match verdict {
            Verdict::Allow { .. } => Decision::Allow,
            Verdict::Deny { .. } => Decision::Deny,
        };
        let method = label(call);
        self.metrics.policy_decision(method, decision);
        if let Some(log) = &self.log {
            log.record(self.entry(asker, call, verdict, applied, None));
        }
        method
    }

    /// The operations of a body, decided together as `verdict`. A batch has a line per
    /// operation: its own rule and scopes, and the batch's outcome (an operation its rule
    /// allows in a batch another denies is `deny` with the reason `batch`: nothing of it
    /// reached the MCP server). Responses carry no operation and have no line.
    pub fn body(
        &self,
        asker: Asker<'_>,
        body: &Body<'_>,
        verdict: &Verdict,
        applied: &Applied<'_>,
        claims: &dyn Claims,
    ) {
        let log = match (body, &self.log) {
            (Body::Batch(_), Some(log)) => log,
            _ => {
                for operation in body.messages().iter().filter_map(Message::operation) {
                    let _counted = self.decided(asker, operation.call(), verdict, applied);
                }
                return;
            }
        };
        let held = asker.claims.map_or(&[][..], |c| c.scopes.as_slice());
        for (index, message) in body.messages().iter().enumerate() {
            let Some(operation) = message.operation() else { continue };
            let call = operation.call();
            let own = decide::decide(applied.policy, call, held, claims, applied.required);
            let mut entry = self.entry(asker, call, &own, applied, Some(index));
            if matches!(verdict, Verdict::Deny { .. }) && entry.decision == Decision::Allow {
                entry.decision = Decision::Deny;
                entry.reason = Some("batch");
            }
            self.metrics.policy_decision(label(call), entry.decision);
            log.record(entry);
        }
    }

    /// A request refused before (or instead of) a decision: `call` when what it asked for is
    /// known.
    pub fn refused(&self, asker: Asker<'_>, call: Option<Call<'_>>, reason: &'static str) {
        self.metrics.policy_decision(MethodLabel::of(call.map(|c| c.method.as_bytes())), Decision::Refused);
        if let Some(log) = &self.log {
            let mut entry = self.base(asker, call, Decision::Refused);
            entry.reason = Some(reason);
            log.record(entry);
        }
    }

    /// A request a body's operations could not be agreed with its headers: a line per operation.
    pub fn disagrees(&self, asker: Asker<'_>, body: &Body<'_>) {
        for operation in body.messages().iter().filter_map(Message::operation) {
            self.refused(asker, Some(operation.call()), "header_mismatch");
        }
    }

    /// Notes what the second line of a header-decided request would say; `method` is the label
    /// of the one its headers announced ([`Decisions::decided`]'s), and they are those it is
    /// forwarded with. Without an audit log this keeps only the label: no header is read again.
    pub fn pending(&self, asker: Asker<'_>, method: MethodLabel) -> Pending {
        let entry = self.log.as_ref().map(|_| {
            let announced = match headers::read(asker.headers) {
                Ok(Source::Headers(announced)) => Some(announced),
                _ => None,
            };
            let mut entry = self.base(asker, announced.as_ref().map(|a| a.call()), Decision::Refused);
            entry.reason = Some("header_mismatch");
            Box::new(entry)
        });
        Pending { method, entry }
    }

    /// The body of a request allowed from its headers disagreed with them as it streamed.
    pub fn disagreed(&self, pending: Pending) {
        self.metrics.policy_decision(pending.method, Decision::Refused);
        if let (Some(log), Some(mut entry)) = (&self.log, pending.entry) {
            entry.time = SystemTime::now();
            log.record(*entry);
        }
    }

    fn entry(
        &self,
        asker: Asker<'_>,
        call: Call<'_>,
        verdict: &Verdict,
        applied: &Applied<'_>,
        batch: Option<usize>,
    ) -> Entry {
        let rule_scopes = |rule: Option<usize>| match rule.and_then(|i| applied.policy.rules().get(i)) {
            Some(rule) => rule.scopes().to_vec(),
            None => applied.required.to_vec(),
        };
        let (decision, rule, reason, claim, required) = match verdict {
            Verdict::Allow { rule } => (Decision::Allow, *rule, None, None, rule_scopes(*rule)),
            Verdict::Deny { rule, reason } => {
                let (why, claim, required) = match reason {
                    Denial::Scope { needed, .. } => ("insufficient_scope", None, needed.clone()),
                    Denial::Claim { claim } => ("claim", Some(claim.clone()), rule_scopes(*rule)),
                    Denial::NoRule => ("no_rule", None, Vec::new()),
                    Denial::AmbiguousUri => ("ambiguous_uri", None, Vec::new()),
                };
                (Decision::Deny, *rule, Some(why), claim, required)
            }
        };
        let mut entry = self.base(asker, Some(call), decision);
        entry.rule = match (rule, verdict) {
            (Some(i), _) => Rule::Index(i),
            (None, Verdict::Deny { reason: Denial::AmbiguousUri, .. }) => Rule::Undecided,
            (None, _) => Rule::Default,
        };
        entry.reason = reason;
        entry.claim = claim;
        entry.scopes_required = required;
        entry.batch = batch;
        entry
    }

    /// A line with who asked and what, and no rule.
    fn base(&self, asker: Asker<'_>, call: Option<Call<'_>>, decision: Decision) -> Entry {
        let claims = asker.claims;
        let issuer = claims.and_then(|c| c.payload.get("iss")).and_then(|v| v.as_str()).map(str::to_string);
        Entry {
            time: SystemTime::now(),
            request_id: asker.headers.get(X_REQUEST_ID).cloned(),
            resource: Arc::clone(&self.resource),
            issuer,
            subject: claims.and_then(|c| c.subject.clone()),
            client_id: claims.and_then(|c| c.client_id.clone()),
            method: call.map(|c| c.method.to_string()),
            name: call.and_then(|c| c.target).map(str::to_string),
            decision,
            reason: None,
            claim: None,
            rule: Rule::Undecided,
            scopes_required: Vec::new(),
            scopes_held: claims.map(|c| c.scopes.clone()).unwrap_or_default(),
            source: asker.source,
            batch: None,
        }
    }
}

fn label(call: Call<'_>) -> MethodLabel {
    MethodLabel::of(Some(call.method.as_bytes()))
}
