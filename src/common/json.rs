//! JSON read with the strictness a security edge needs where parsers disagree: a member name
//! repeated in one object (RFC 8259 §4 leaves its meaning to the parser; serde_json keeps the
//! last, others keep the first).

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The first member name repeated within one object, at any depth of the JSON text `bytes`;
/// `None` when there is none or the text is not JSON (the caller's own parse says why).
pub fn repeated_key(bytes: &[u8]) -> Option<String> {
    let mut found = None;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    // serde_json bounds the nesting itself (128 levels), so hostile input cannot overflow.
    Walk { found: &mut found }.deserialize(&mut de).ok()?;
    found
}

/// Visits every value, noting the first repeated name in `found`.
struct Walk<'a> {
    found: &'a mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if self.found.is_some() {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            map.next_value_seed(Walk { found: &mut *self.found })?;
            if self.found.is_none() && !seen.insert(key.clone()) {
                *self.found = Some(key);
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Walk { found: &mut *self.found })?.is_some() {}
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_names_are_found_at_any_depth() {
        assert_eq!(repeated_key(br#"{"a":1,"b":2}"#), None);
        assert_eq!(repeated_key(br#"{"a":1,"a":2}"#), Some("a".into()));
        assert_eq!(repeated_key(br#"{"a":{"x":1,"y":{"z":1,"z":2}}}"#), Some("z".into()));
        assert_eq!(repeated_key(br#"{"a":[{"k":1},{"k":2,"k":3}]}"#), Some("k".into()));
        // The same name in two different objects is no repetition.
        assert_eq!(repeated_key(br#"{"a":{"k":1},"b":{"k":2}}"#), None);
        // Escapes are read: "\u0061" is "a".
        assert_eq!(repeated_key(br#"{"a":1,"\u0061":2}"#), Some("a".into()));
        assert_eq!(repeated_key(b"not json"), None);
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(repeated_key(deep.as_bytes()), None);
    }
}
