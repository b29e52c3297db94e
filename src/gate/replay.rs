//! The DPoP replay cache: a proof's `jti` is accepted once while its `iat` is inside the
//! window (RFC 9449 §11.1). Bounded, in memory, with no clock of its own: `now` is passed in.
//!
//! Entries are keyed by [`key`], a hash of the proof key's thumbprint and the `jti`, so one
//! client's identifiers never collide with another's, and kept until the last second their
//! proof could be accepted ([`crate::gate::dpop::Proof::replayable_until`]); after that the
//! proof is refused on its `iat` alone and the entry may go.
//!
//! When full: expired entries are dropped first; if none has expired, the proof is refused
//! with [`Verdict::Full`]. SECURITY: evicting a live entry would let its proof be replayed
//! inside the window, so the cache fails closed instead. The price is that a caller able to
//! fill it (one holding a valid token, since the gate inserts only after the token and its
//! binding are accepted) can make the edge refuse DPoP requests until entries expire: at most
//! twice the window. Size it as peak DPoP requests per second times the window: the default,
//! 262 144 entries, is about 870 requests a second at ±300 s, some 13 MB when full.
//!
//! Each replica has its own cache, so a proof captured with its token can be replayed once to
//! each other replica inside the window. Sticky routing closes that; server nonces
//! ([`crate::gate::nonce`]) shorten the usable time to their lifetime. Say so where deployed.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// Entries kept at most (see the module doc for the arithmetic).
pub const DEFAULT_CAPACITY: usize = 1 << 18;
/// Independent locks, so concurrent requests rarely wait on each other.
const SHARDS: usize = 16;

/// 128 bits of SHA-256 over the thumbprint and the `jti`: a collision, which would refuse one
/// honest proof, is out of reach by chance or by search.
pub type Key = [u8; 16];

/// The cache key of a proof made with the key of thumbprint `jkt`, carrying `jti`.
pub fn key(jkt: &[u8; 32], jti: &str) -> Key {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(jkt);
    context.update(jti.as_bytes());
    let mut out = [0; 16];
    out.copy_from_slice(&context.finish().as_ref()[..16]);
    out
}

/// What the cache says about a proof.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not seen inside its window: accept it (it is now remembered).
    Fresh,
    /// Seen before, and still inside the window: refuse it.
    Replayed,
    /// No room, and nothing expired to make room: refuse it (fail closed, see the module doc).
    Full,
}

/// A bounded set of recently seen proofs.
#[derive(Debug)]
pub struct ReplayCache {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
}

#[derive(Debug, Default)]
struct Shard {
    /// Each key with the last second its proof could be accepted.
    seen: HashMap<Key, u64>,
    /// No entry expires before this: a full shard is not scanned again until `now` passes it.
    /// It may lag below the true minimum (after a replaced entry), which only costs a scan.
    earliest: u64,
}

impl ReplayCache {
    /// A cache of at least `capacity` entries (rounded up to a multiple of the shard count).
    pub fn new(capacity: usize) -> ReplayCache {
        let per_shard = capacity.div_ceil(SHARDS).max(1);
        let shards = (0..SHARDS).map(|_| Mutex::new(Shard { earliest: u64::MAX, ..Shard::default() })).collect();
        ReplayCache { shards, per_shard }
    }

    /// Records a proof unless it was seen inside its window. `until` is the last second at which
    /// the proof would be accepted (its `iat` plus the window).
    pub fn check(&self, key: Key, until: u64, now: u64) -> Verdict {
        let shard = &self.shards[usize::from(key[0]) % SHARDS];
        // A panic elsewhere while holding the lock cannot leave the map half-updated in a way
        // that matters: at worst an entry is missing or stale, as after its expiry.
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        match shard.seen.get(&key) {
            // SECURITY: `>=` because a proof is accepted up to and including `until`.
            Some(&expires) if expires >= now => return Verdict::Replayed,
            // Past its window: its proof is refused on `iat`; this one reuses the jti later.
            Some(_) => {}
            None if shard.seen.len() < self.per_shard => {}
            None => {
                if now > shard.earliest {
                    shard.seen.retain(|_, expires| *expires >= now);
                    shard.earliest = shard.seen.values().copied().min().unwrap_or(u64::MAX);
                }
                if shard.seen.len() >= self.per_shard {
                    return Verdict::Full;
                }
            }
        }
        shard.seen.insert(key, until);
        shard.earliest = shard.earliest.min(until);
        Verdict::Fresh
    }

    /// Entries held, expired ones included until a full shard drops them.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).seen.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_750_000_000;
    const WINDOW: u64 = 300;

    /// A key in shard `shard`, distinct for each `n`.
    fn key_in(shard: u8, n: u32) -> Key {
        let mut k = [0; 16];
        k[0] = shard;
        k[1..5].copy_from_slice(&n.to_be_bytes());
        k
    }

    #[test]
    fn a_proof_is_fresh_once_inside_its_window() {
        let cache = ReplayCache::new(DEFAULT_CAPACITY);
        let k = key(&[9; 32], "jti-1");
        assert_eq!(cache.check(k, NOW + WINDOW, NOW), Verdict::Fresh);
        assert_eq!(cache.check(k, NOW + WINDOW, NOW), Verdict::Replayed);
        assert_eq!(cache.check(k, NOW + WINDOW, NOW + WINDOW), Verdict::Replayed, "the last second counts");
        // After the window the proof itself is refused on iat; the entry no longer matters.
        assert_eq!(cache.check(k, NOW + 2 * WINDOW + 1, NOW + WINDOW + 1), Verdict::Fresh);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn keys_separate_clients_and_identifiers() {
        assert_ne!(key(&[1; 32], "a"), key(&[2; 32], "a"));
        assert_ne!(key(&[1; 32], "a"), key(&[1; 32], "b"));
        assert_eq!(key(&[1; 32], "a"), key(&[1; 32], "a"));
        let cache = ReplayCache::new(64);
        assert_eq!(cache.check(key(&[1; 32], "a"), NOW, NOW), Verdict::Fresh);
        assert_eq!(cache.check(key(&[2; 32], "a"), NOW, NOW), Verdict::Fresh);
    }

    #[test]
    fn a_full_cache_drops_expired_entries_first() {
        let cache = ReplayCache::new(SHARDS * 2);
        assert_eq!(cache.check(key_in(0, 1), NOW + 10, NOW), Verdict::Fresh);
        assert_eq!(cache.check(key_in(0, 2), NOW + 20, NOW), Verdict::Fresh);
        assert_eq!(cache.check(key_in(0, 3), NOW + 30, NOW), Verdict::Full);
        // Another shard has room of its own.
        assert_eq!(cache.check(key_in(1, 3), NOW + 30, NOW), Verdict::Fresh);
        // Once the first entry's window has passed, it makes room.
        assert_eq!(cache.check(key_in(0, 3), NOW + 30, NOW + 10), Verdict::Full, "still inside its window");
        assert_eq!(cache.check(key_in(0, 3), NOW + 30, NOW + 11), Verdict::Fresh);
        // SECURITY: the live entry was kept, so its replay is still caught.
        assert_eq!(cache.check(key_in(0, 2), NOW + 20, NOW + 11), Verdict::Replayed);
        assert_eq!(cache.check(key_in(0, 1), NOW + 31, NOW + 11), Verdict::Full);
    }

    #[test]
    fn a_replay_inside_the_window_is_never_accepted_under_pressure() {
        let cache = ReplayCache::new(SHARDS * 4);
        let victim = key_in(5, 0);
        assert_eq!(cache.check(victim, NOW + WINDOW, NOW), Verdict::Fresh);
        for n in 1..1000 {
            let now = NOW + u64::from(n) / 10;
            let verdict = cache.check(key_in(5, n), now + 1, now);
            assert_ne!(verdict, Verdict::Replayed);
            assert_eq!(cache.check(victim, NOW + WINDOW, now), Verdict::Replayed, "n = {n}");
        }
    }

    #[test]
    fn a_tiny_capacity_still_holds_one_entry_per_shard() {
        let cache = ReplayCache::new(0);
        assert_eq!(cache.check(key_in(0, 1), NOW, NOW), Verdict::Fresh);
        assert_eq!(cache.check(key_in(0, 2), NOW, NOW), Verdict::Full);
        assert!(!cache.is_empty());
    }

    #[test]
    fn the_cache_is_shared_across_threads() {
        let cache = std::sync::Arc::new(ReplayCache::new(DEFAULT_CAPACITY));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let cache = cache.clone();
                std::thread::spawn(move || {
                    (0..500).filter(|n| cache.check(key(&[7; 32], &n.to_string()), NOW, NOW) == Verdict::Fresh).count()
                })
            })
            .collect();
        let fresh: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(fresh, 500, "each jti is fresh exactly once");
    }
}
