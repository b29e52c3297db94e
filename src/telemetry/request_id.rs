//! Request ids: the client's `X-Request-Id` when it is usable, otherwise a new one, made
//! without an allocation per id.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::HeaderName;
use http::HeaderValue;

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest client-sent request id kept; longer ones are replaced.
const MAX_ID_LEN: usize = 128;

/// A request id the client sent that is worth keeping: 1 to 128 visible ASCII characters,
/// so it can go into a log line and upstream as it is.
pub fn usable_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty() && bytes.len() <= MAX_ID_LEN && bytes.iter().all(u8::is_ascii_graphic)
}

/// The client's `X-Request-Id` (its first) when usable, else a new one.
pub fn request_id(client: Option<&HeaderValue>) -> HeaderValue {
    match client {
        Some(id) if usable_id(id) => id.clone(),
        _ => IDS.next(),
    }
}

/// Request ids: 32 hex digits from a per-process seed mixed with a counter, so replicas
/// started at the same moment do not repeat each other's ids.
struct Ids {
    seed: u64,
    next: AtomicU64,
}

/// Ids made per batch: each thread fills one buffer with this many and hands out slices of
/// it, one allocation per batch rather than per id.
const BATCH: usize = 256;
const ID_LEN: usize = 32;
/// Each byte's two hexadecimal digits.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut pairs = [[0u8; 2]; 256];
    let mut byte = 0;
    while byte < 256 {
        pairs[byte] = [HEX[byte >> 4], HEX[byte & 0xf]];
        byte += 1;
    }
    pairs
};

thread_local! {
    /// This thread's batch of ids and how many of it are handed out.
    static BATCHED: std::cell::RefCell<(bytes::Bytes, usize)> = const { std::cell::RefCell::new((bytes::Bytes::new(), BATCH)) };
}

static IDS: LazyLock<Ids> = LazyLock::new(|| {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let seed = mix(now.as_nanos() as u64 ^ (u64::from(std::process::id()) << 32));
    Ids { seed, next: AtomicU64::new(0) }
});

/// SplitMix64's finaliser: spreads each input bit over the whole output.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Ids {
    /// The next id, sliced from this thread's batch.
    fn next(&self) -> HeaderValue {
        BATCHED.with(|batched| {
            let mut batched = batched.borrow_mut();
            if batched.1 == BATCH {
                *batched = (self.batch(), 0);
            }
            let at = batched.1 * ID_LEN;
            batched.1 += 1;
            HeaderValue::from_maybe_shared(batched.0.slice(at..at + ID_LEN))
                .unwrap_or_else(|_| HeaderValue::from_static("0"))
        })
    }

    /// Makes a batch of ids, back to back.
    fn batch(&self) -> bytes::Bytes {
        let first = self.next.fetch_add(BATCH as u64, Ordering::Relaxed);
        let mut text = Vec::with_capacity(BATCH * ID_LEN);
        for n in first..first + BATCH as u64 {
            let (high, low) =
                (mix(self.seed ^ n), mix(self.seed.rotate_left(17) ^ n.wrapping_add(0x9e37_79b9_7f4a_7c15)));
            // Most significant digit first, two digits per byte from a table, into a fixed
            // array (no capacity check per digit).
            let mut id = [0u8; ID_LEN];
            let (upper, lower) = id.split_at_mut(ID_LEN / 2);
            for (half, word) in [(upper, high), (lower, low)] {
                for (pair, byte) in half.chunks_exact_mut(2).zip(word.to_be_bytes()) {
                    pair.copy_from_slice(&HEX_PAIRS[usize::from(byte)]);
                }
            }
            text.extend_from_slice(&id);
        }
        bytes::Bytes::from(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_kept_only_when_printable_and_short() {
        let mut h = http::HeaderMap::new();
        h.insert(X_REQUEST_ID, HeaderValue::from_static("abc-123_XYZ"));
        assert_eq!(request_id(h.get(X_REQUEST_ID)), "abc-123_XYZ");
        for bad in ["", "two words", &"x".repeat(129)] {
            h.insert(X_REQUEST_ID, HeaderValue::from_str(bad).unwrap());
            let id = request_id(h.get(X_REQUEST_ID));
            assert_ne!(id, bad);
            assert_eq!(id.len(), 32, "{id:?}");
        }
    }

    #[test]
    fn a_batch_spells_each_id_most_significant_digit_first() {
        let ids = Ids { seed: 7, next: AtomicU64::new(0) };
        let batch = ids.batch();
        assert_eq!(batch.len(), BATCH * ID_LEN);
        let (high, low) = (mix(7), mix(7u64.rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15));
        assert_eq!(&batch[..ID_LEN], format!("{high:016x}{low:016x}").as_bytes());
    }

    #[test]
    fn generated_ids_are_hex_and_distinct() {
        let ids: std::collections::HashSet<_> = (0..10_000).map(|_| IDS.next()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|id| id.len() == 32 && id.as_bytes().iter().all(u8::is_ascii_hexdigit)));
    }
}
