//! Stateless DPoP server nonces: RFC 9449 §8, which a resource server uses as §9 says (a 401
//! `use_dpop_nonce` challenge with a `DPoP-Nonce` header). A nonce bounds how far ahead a
//! client, or whoever controls it, can make proofs: without one, a proof's `iat` is the
//! client's word.
//!
//! A nonce is `base64url(slot || tag)`: `slot` is `now / period` as 8 big-endian bytes and
//! `tag` the first 16 bytes of HMAC-SHA-256 over a label and the slot. Nothing is stored, so
//! every replica holding the key accepts every other replica's nonces. The current and the
//! previous slot are accepted: a nonce lives between one and two periods. Every client gets
//! the same nonce within a slot; §8 asks that nonces be unpredictable, which they are to
//! anyone without the key. Keys rotate as [`KeyRing`] describes. Replicas' clocks should agree
//! to well within a period: a nonce from a replica already in the next slot is refused (with a
//! fresh nonce, which the client retries with) by one still in the previous.

use std::num::NonZeroU64;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::gate::keyring::{KeyRing, TAG_LEN};

/// A nonce lives one to two minutes: long enough for a client's retry, short enough that a
/// proof made with it cannot be kept for later.
pub const DEFAULT_PERIOD_SECS: u64 = 60;
/// Every nonce is this long (24 bytes in base64url), so a longer one is refused unread.
pub const NONCE_LEN: usize = 32;
const SLOT_LEN: usize = 8;
/// SECURITY: names the use, so a tag made with the same key for anything else (a session id)
/// is never a valid nonce.
const LABEL: &[u8] = b"mcp-auth-edge/dpop-nonce/v1\0";

/// Issues and checks nonces for one resource.
#[derive(Debug)]
pub struct Nonces {
    keys: KeyRing,
    period: NonZeroU64,
}

impl Nonces {
    pub fn new(keys: KeyRing, period_secs: NonZeroU64) -> Nonces {
        Nonces { keys, period: period_secs }
    }

    /// The nonce for the slot `now` falls in: the value of a `DPoP-Nonce` header.
    pub fn issue(&self, now: u64) -> String {
        let slot = (now / self.period).to_be_bytes();
        let mut raw = [0; SLOT_LEN + TAG_LEN];
        raw[..SLOT_LEN].copy_from_slice(&slot);
        raw[SLOT_LEN..].copy_from_slice(&self.keys.tag(&[LABEL, &slot]));
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Whether a proof's `nonce` claim is one this resource issued, in the current or the
    /// previous slot, under any of its keys.
    pub fn accept(&self, nonce: &str, now: u64) -> bool {
        if nonce.len() != NONCE_LEN {
            return false;
        }
        let Ok(raw) = URL_SAFE_NO_PAD.decode(nonce) else { return false };
        let Some((slot, tag)) = raw.split_first_chunk::<SLOT_LEN>() else { return false };
        let current = now / self.period;
        let issued = u64::from_be_bytes(*slot);
        (issued == current || issued.checked_add(1) == Some(current)) && self.keys.verify(&[LABEL, slot], tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_750_000_000;
    const PERIOD: u64 = 60;

    fn nonces(secrets: &[[u8; 32]]) -> Nonces {
        Nonces::new(KeyRing::new(secrets).unwrap(), NonZeroU64::new(PERIOD).unwrap())
    }

    #[test]
    fn a_nonce_is_accepted_in_its_slot_and_the_next() {
        let n = nonces(&[[7; 32]]);
        let start = NOW - NOW % PERIOD;
        let nonce = n.issue(start);
        assert_eq!(nonce.len(), NONCE_LEN);
        assert_eq!(n.issue(start + PERIOD - 1), nonce, "one nonce per slot");
        assert_ne!(n.issue(start + PERIOD), nonce);
        assert!(n.accept(&nonce, start));
        assert!(n.accept(&nonce, start + PERIOD - 1));
        assert!(n.accept(&nonce, start + 2 * PERIOD - 1), "previous slot");
        assert!(!n.accept(&nonce, start + 2 * PERIOD), "expired");
        assert!(!n.accept(&nonce, start - 1), "from the future");
    }

    #[test]
    fn a_nonce_under_another_key_is_refused() {
        let ours = nonces(&[[7; 32]]);
        let theirs = nonces(&[[8; 32]]);
        assert!(!ours.accept(&theirs.issue(NOW), NOW));
    }

    #[test]
    fn rotation_keeps_old_nonces_valid() {
        let old = nonces(&[[7; 32]]);
        let rotated = nonces(&[[8; 32], [7; 32]]);
        assert!(rotated.accept(&old.issue(NOW), NOW));
        assert!(!old.accept(&rotated.issue(NOW), NOW), "the new key signs");
        // Replicas with the same keys accept each other's nonces.
        assert!(nonces(&[[8; 32], [7; 32]]).accept(&rotated.issue(NOW), NOW));
    }

    #[test]
    fn altered_and_malformed_nonces_are_refused() {
        let n = nonces(&[[7; 32]]);
        let nonce = n.issue(NOW);
        let mut raw = URL_SAFE_NO_PAD.decode(&nonce).unwrap();
        raw[SLOT_LEN + 3] ^= 1;
        assert!(!n.accept(&URL_SAFE_NO_PAD.encode(&raw), NOW));
        // A slot moved forward keeps its old tag, which no longer matches.
        let mut raw = URL_SAFE_NO_PAD.decode(&nonce).unwrap();
        raw[SLOT_LEN - 1] = raw[SLOT_LEN - 1].wrapping_add(1);
        assert!(!n.accept(&URL_SAFE_NO_PAD.encode(&raw), NOW + PERIOD));
        for bad in ["", "x", &nonce[1..], &format!("{nonce}A"), &"*".repeat(NONCE_LEN), &"A".repeat(NONCE_LEN)] {
            assert!(!n.accept(bad, NOW), "{bad}");
        }
    }

    #[test]
    fn the_last_slot_does_not_overflow() {
        let n = nonces(&[[7; 32]]);
        assert!(n.accept(&n.issue(u64::MAX), u64::MAX));
        assert!(n.accept(&n.issue(0), 0));
    }
}
