//! The HMAC-SHA-256 keys behind the edge's stateless values (DPoP nonces, bound session ids):
//! the first key makes tags, every key checks them, so a key is rotated without a flag day.
//!
//! Rotation across replicas: add the new key second everywhere (it only verifies), then move
//! it first everywhere (it now signs, the old one still verifies), then drop the old key once
//! nothing it signed can still be presented.

use std::fmt;

use ring::hmac;

/// The shortest secret accepted: 256 bits, the strength of the hash.
pub const MIN_KEY_LEN: usize = 32;
/// Tags are truncated to 128 bits: forging one is an online guess against a 2^128 space.
pub const TAG_LEN: usize = 16;

/// One or more keys, the first of which makes tags.
pub struct KeyRing {
    keys: Vec<hmac::Key>,
}

/// Why secrets were not accepted as a key ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyError {
    NoKey,
    /// The key at this position (0-based) is shorter than [`MIN_KEY_LEN`] bytes.
    TooShort {
        index: usize,
    },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::NoKey => f.write_str("no key given"),
            KeyError::TooShort { index } => write!(f, "key {index} is shorter than {MIN_KEY_LEN} bytes"),
        }
    }
}

impl std::error::Error for KeyError {}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SECURITY: never the key bytes.
        write!(f, "KeyRing({} keys)", self.keys.len())
    }
}

impl KeyRing {
    /// Keys from secrets, the signing one first.
    pub fn new<S: AsRef<[u8]>>(secrets: &[S]) -> Result<KeyRing, KeyError> {
        if secrets.is_empty() {
            return Err(KeyError::NoKey);
        }
        let mut keys = Vec::with_capacity(secrets.len());
        for (index, secret) in secrets.iter().enumerate() {
            if secret.as_ref().len() < MIN_KEY_LEN {
                return Err(KeyError::TooShort { index });
            }
            keys.push(hmac::Key::new(hmac::HMAC_SHA256, secret.as_ref()));
        }
        Ok(KeyRing { keys })
    }

    /// The truncated tag of the concatenated parts under the signing key. Callers put a label
    /// naming the use first, so a tag made for one use never verifies for another.
    pub(crate) fn tag(&self, parts: &[&[u8]]) -> [u8; TAG_LEN] {
        let signing = self.keys.first().expect("a key ring is never empty: new refuses no keys");
        tag_with(signing, parts)
    }

    /// Whether `tag` is the truncated tag of the parts under any of the keys.
    pub(crate) fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        // Every key is tried, whichever matches, so the time taken says nothing about which.
        self.keys.iter().fold(false, |found, key| found | constant_time_eq(&tag_with(key, parts), tag))
    }
}

fn tag_with(key: &hmac::Key, parts: &[&[u8]]) -> [u8; TAG_LEN] {
    let mut context = hmac::Context::with_key(key);
    for part in parts {
        context.update(part);
    }
    let mut out = [0; TAG_LEN];
    out.copy_from_slice(&context.sign().as_ref()[..TAG_LEN]);
    out
}

/// Byte equality whose time depends on the lengths only, not on where the first difference
/// lies. ring's own helper is deprecated for outside use; this is the usual fold.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // SECURITY: black_box keeps the optimiser from turning the fold into an early exit.
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 32] = [1; 32];
    const B: [u8; 32] = [2; 32];

    #[test]
    fn keys_must_be_given_and_long_enough() {
        assert_eq!(KeyRing::new::<&[u8]>(&[]).map(|_| ()), Err(KeyError::NoKey));
        assert_eq!(KeyRing::new(&[&A[..], &[0; 31][..]]).map(|_| ()), Err(KeyError::TooShort { index: 1 }));
        assert_eq!(format!("{:?}", KeyRing::new(&[A, B]).unwrap()), "KeyRing(2 keys)");
    }

    #[test]
    fn the_first_key_signs_and_every_key_verifies() {
        let old = KeyRing::new(&[A]).unwrap();
        let rotated = KeyRing::new(&[B, A]).unwrap();
        let parts: [&[u8]; 2] = [b"label", b"message"];
        let by_old = old.tag(&parts);
        assert!(rotated.verify(&parts, &by_old));
        assert!(!old.verify(&parts, &rotated.tag(&parts)));
        assert!(!rotated.verify(&[b"label", b"messagf"], &by_old));
        assert!(!rotated.verify(&parts, &by_old[..15]));
    }

    #[test]
    fn parts_are_concatenated() {
        // Callers length-prefix their fields; the ring itself only concatenates.
        let ring = KeyRing::new(&[A]).unwrap();
        assert_eq!(ring.tag(&[b"ab", b"c"]), ring.tag(&[b"a", b"bc"]));
    }

    #[test]
    fn constant_time_eq_compares_bytes_and_lengths() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
