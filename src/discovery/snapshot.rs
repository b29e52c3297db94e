//! Pre-built discovery documents. Everything a response needs from a document (its bytes,
//! entity tag, length) is computed once, when the document is made; requests only clone
//! reference-counted handles.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::HeaderValue;

use crate::config::{Config, DpopMode};
use crate::gate::dpop::SUPPORTED_ALGS;

/// A document ready to serve.
#[derive(Debug)]
pub struct Document {
    pub body: Bytes,
    /// A strong entity tag derived from the bytes, so replicas that hold the same document
    /// agree on it.
    pub etag: HeaderValue,
    pub content_length: HeaderValue,
}

impl Document {
    pub fn new(body: Bytes) -> Document {
        let etag = entity_tag(&body);
        let content_length = HeaderValue::from(body.len());
        Document { body, etag, content_length }
    }
}

/// `"<length in hex>-<FNV-1a 64 in hex>"`: cheap, stable across processes and versions, and
/// more than enough to tell two revisions of one small document apart.
fn entity_tag(body: &[u8]) -> HeaderValue {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in body {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let tag = format!("\"{:x}-{:016x}\"", body.len(), hash);
    HeaderValue::from_str(&tag).expect("hex digits, a dash and quotes are valid header bytes")
}

/// The RFC 9728 protected resource metadata document for the configured resource.
pub fn resource_metadata(config: &Config) -> Bytes {
    let text = |s: &str| serde_json::Value::String(s.to_string()).to_string();
    let list = |items: &[&str]| {
        let parts: Vec<String> = items.iter().map(|s| text(s)).collect();
        format!("[{}]", parts.join(","))
    };
    let mut out = format!("{{\"resource\":{}", text(&config.resource.url));
    out.push_str(&format!(",\"authorization_servers\":{}", list(&[&config.issuer.url])));
    // The policy's scopes too: a client can only ask for what the document lists (issue 12).
    let mut scopes: Vec<&str> = config.scopes.iter().map(String::as_str).collect();
    for scope in config.policy.iter().flat_map(|p| p.scopes()) {
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    if !scopes.is_empty() {
        out.push_str(&format!(",\"scopes_supported\":{}", list(&scopes)));
    }
    // RFC 9728 §2: the edge only ever accepts the Authorization header (RFC 6750 §2.1).
    out.push_str(",\"bearer_methods_supported\":[\"header\"]");
    // RFC 9728 §2: what DPoP proofs may be signed with, and whether only bound tokens do.
    let required = match config.dpop.mode {
        DpopMode::Off => None,
        DpopMode::Allow => Some(false),
        DpopMode::Require => Some(true),
    };
    if let Some(required) = required {
        let algs: Vec<&str> = SUPPORTED_ALGS.iter().map(|alg| alg.name()).collect();
        out.push_str(&format!(",\"dpop_signing_alg_values_supported\":{}", list(&algs)));
        out.push_str(&format!(",\"dpop_bound_access_tokens_required\":{required}"));
    }
    if let Some(name) = &config.resource_name {
        out.push_str(&format!(",\"resource_name\":{}", text(name)));
    }
    if let Some(doc) = &config.resource_documentation {
        out.push_str(&format!(",\"resource_documentation\":{}", text(doc)));
    }
    out.push('}');
    Bytes::from(out)
}

/// The documents in service: the relayed authorization server metadata, swapped by the
/// refresh task, and the resource metadata, fixed at start.
pub struct Snapshots {
    auth_server: ArcSwapOption<Document>,
    resource: Document,
    started: Instant,
    /// Milliseconds from `started` to the last good fetch, plus one; 0 means never.
    last_good: AtomicU64,
}

impl Snapshots {
    pub fn new(resource: Bytes) -> Snapshots {
        Snapshots {
            auth_server: ArcSwapOption::empty(),
            resource: Document::new(resource),
            started: Instant::now(),
            last_good: AtomicU64::new(0),
        }
    }

    /// The authorization server document, if one has been fetched.
    pub fn auth_server(&self) -> arc_swap::Guard<Option<Arc<Document>>> {
        self.auth_server.load()
    }

    pub fn resource(&self) -> &Document {
        &self.resource
    }

    /// Records a good fetch. The document is replaced only when its bytes changed, so its
    /// entity tag (and clients' caches) survive refreshes that bring nothing new.
    /// Returns whether it was replaced.
    pub fn offer(&self, body: Bytes) -> bool {
        let now = self.started.elapsed().as_millis() as u64 + 1;
        let changed = match &*self.auth_server.load() {
            Some(current) => current.body != body,
            None => true,
        };
        if changed {
            self.auth_server.store(Some(Arc::new(Document::new(body))));
        }
        self.last_good.store(now, Ordering::Release);
        changed
    }

    /// Whether a document is in service (readiness).
    pub fn ready(&self) -> bool {
        self.auth_server.load().is_some()
    }

    /// Time since the last good fetch, or `None` before the first.
    pub fn age(&self) -> Option<Duration> {
        match self.last_good.load(Ordering::Acquire) {
            0 => None,
            at => Some(self.started.elapsed().saturating_sub(Duration::from_millis(at - 1))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_tag_is_stable_and_content_dependent() {
        let a = Document::new(Bytes::from_static(b"{\"a\":1}"));
        let b = Document::new(Bytes::from_static(b"{\"a\":1}"));
        let c = Document::new(Bytes::from_static(b"{\"a\":2}"));
        assert_eq!(a.etag, b.etag);
        assert_ne!(a.etag, c.etag);
        assert!(a.etag.to_str().unwrap().starts_with("\"7-"));
        assert_eq!(a.content_length, "7");
    }

    #[test]
    fn offer_swaps_only_on_change() {
        let s = Snapshots::new(Bytes::from_static(b"{}"));
        assert!(!s.ready());
        assert!(s.age().is_none());
        assert!(s.offer(Bytes::from_static(b"{\"v\":1}")));
        let first = s.auth_server().as_ref().map(Arc::clone).unwrap();
        assert!(!s.offer(Bytes::from_static(b"{\"v\":1}")));
        assert!(Arc::ptr_eq(&first, s.auth_server().as_ref().unwrap()));
        assert!(s.offer(Bytes::from_static(b"{\"v\":2}")));
        assert_ne!(first.etag, s.auth_server().as_ref().unwrap().etag);
        assert!(s.ready());
        assert!(s.age().is_some());
    }
}
