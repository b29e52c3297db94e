//! The opt-in audit log (`--audit-log`): one JSON line per MCP authorization decision, written
//! off the request path by the same writer as the access log ([`crate::telemetry::lines`]).
//!
//! Every value the client or the token supplied is written as a JSON string by serde_json, so
//! none can break a line or forge a field.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderValue;
use serde_json::{json, Value};

use crate::telemetry::lines::{Line, Lines, Named};
use crate::telemetry::metrics::{Decision, Metrics};

/// The request path's end of the audit log.
pub type AuditLog = Lines<Entry>;

/// How the audit log is named and counted.
pub const AUDIT_LOG: Named = Named { name: "the audit log", dropped: Metrics::audit_log_dropped };

/// Where the operation was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum From {
    /// The `Mcp-Method` / `Mcp-Name` headers (2026-07-28 and later).
    Headers,
    /// The JSON-RPC body.
    Body,
}

/// The rule that decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// The policy's rule at this index (counting from 0).
    Index(usize),
    /// The policy's default: no rule selected the operation.
    Default,
    /// None: the request was refused before the policy was consulted.
    Undecided,
}

/// One decision, as the audit log records it.
#[derive(Debug)]
pub struct Entry {
    pub time: SystemTime,
    pub request_id: Option<HeaderValue>,
    /// The resource URL whose policy decided.
    pub resource: Arc<str>,
    pub issuer: Option<String>,
    pub subject: Option<String>,
    pub client_id: Option<String>,
    pub method: Option<String>,
    /// The tool or prompt name, or the resource URI.
    pub name: Option<String>,
    pub decision: Decision,
    /// Why a request was denied or refused (`insufficient_scope`, `claim`, `no_rule`,
    /// `ambiguous_uri`, `batch`; `not_jsonrpc`, `too_large`, `header_mismatch`, ...).
    pub reason: Option<&'static str>,
    /// The claim whose condition failed, for `reason: "claim"`.
    pub claim: Option<String>,
    pub rule: Rule,
    /// What the deciding rule (or the default) needs.
    pub scopes_required: Vec<String>,
    /// What the token holds.
    pub scopes_held: Vec<String>,
    pub source: From,
    /// The element's position in a JSON-RPC batch (from 0); `None` for a single message.
    pub batch: Option<usize>,
}

impl Line for Entry {
    fn line(&self, out: &mut Vec<u8>) {
        let since_epoch = self.time.duration_since(UNIX_EPOCH).unwrap_or_default();
        let rule = match self.rule {
            Rule::Index(i) => json!(i),
            Rule::Default => json!("default"),
            Rule::Undecided => Value::Null,
        };
        let mut record = json!({
            "time": crate::common::date::timestamp_millis(since_epoch),
            "request_id": self.request_id.as_ref().map(|v| String::from_utf8_lossy(v.as_bytes())),
            "resource": &*self.resource,
            "issuer": self.issuer,
            "subject": self.subject,
            "client_id": self.client_id,
            "method": self.method,
            "name": self.name,
            "decision": self.decision.as_str(),
            "reason": self.reason,
            "rule": rule,
            "scopes_required": self.scopes_required,
            "scopes_held": self.scopes_held,
            "source": match self.source { From::Headers => "headers", From::Body => "body" },
        });
        if let Some(claim) = &self.claim {
            record["claim"] = json!(claim);
        }
        if let Some(index) = self.batch {
            record["batch_index"] = json!(index);
        }
        // Writing a `Value` into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &record);
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_line_is_one_json_object_whatever_the_values() {
        let entry = Entry {
            time: UNIX_EPOCH + Duration::from_millis(1_795_435_200_042),
            request_id: Some(HeaderValue::from_static("req-1")),
            resource: Arc::from("https://mcp.example/mcp"),
            issuer: Some("https://as.example".into()),
            subject: Some("alice\n{\"decision\":\"allow\"}".into()),
            client_id: None,
            method: Some("tools/call".into()),
            name: Some("delete\u{2028}x\r\n".into()),
            decision: Decision::Deny,
            reason: Some("claim"),
            claim: Some("groups".into()),
            rule: Rule::Index(2),
            scopes_required: vec!["mcp:admin".into()],
            scopes_held: vec!["mcp:read".into()],
            source: From::Body,
            batch: Some(1),
        };
        let mut out = Vec::new();
        entry.line(&mut out);
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1, "one line: {}", String::from_utf8_lossy(&out));
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["time"], "2026-11-23T12:00:00.042Z");
        assert_eq!(v["subject"], "alice\n{\"decision\":\"allow\"}");
        assert_eq!(v["decision"], "deny");
        assert_eq!(v["rule"], 2);
        assert_eq!(v["claim"], "groups");
        assert_eq!(v["batch_index"], 1);
        assert_eq!(v["client_id"], Value::Null);
        assert_eq!(v["scopes_required"], json!(["mcp:admin"]));
        let default = Entry { rule: Rule::Default, batch: None, claim: None, ..entry };
        let mut out = Vec::new();
        default.line(&mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["rule"], "default");
        assert!(v.get("batch_index").is_none() && v.get("claim").is_none());
    }
}
