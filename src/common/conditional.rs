//! Conditional requests: `If-None-Match` against the snapshot's entity tag (RFC 9110 §13.1.2).

/// Whether an `If-None-Match` field value matches `etag` (a quoted entity tag such as
/// `"abc"`), in which case a `GET` or `HEAD` answers 304.
///
/// RFC 9110 §13.1.2 uses weak comparison, so `W/"abc"` matches `"abc"`. `*` matches any current
/// representation. A malformed list matches nothing: the client then gets the full document,
/// which is always a safe answer.
pub fn if_none_match(field: &[u8], etag: &[u8]) -> bool {
    let own = opaque(etag);
    let mut rest = field;
    loop {
        rest = skip_separators(rest);
        if rest.is_empty() {
            return false;
        }
        if rest[0] == b'*' {
            // `*` is only valid as the whole field, but treating it as matching anywhere is the
            // conservative reading: it asks for "no current representation".
            return true;
        }
        if let Some(weak) = rest.strip_prefix(b"W/") {
            rest = weak;
        }
        let Some(after_quote) = rest.strip_prefix(b"\"") else {
            return false;
        };
        let Some(end) = after_quote.iter().position(|&b| b == b'"') else {
            return false;
        };
        let (tag, tail) = after_quote.split_at(end);
        if Some(tag) == own {
            return true;
        }
        // Skip the closing quote; the next byte must be a separator or the end.
        rest = &tail[1..];
        match rest.first() {
            None | Some(b',' | b' ' | b'\t') => {}
            Some(_) => return false,
        }
    }
}

fn skip_separators(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t' | b',', tail @ ..] = s {
        s = tail;
    }
    s
}

/// The opaque part of a quoted (possibly weak) entity tag.
fn opaque(etag: &[u8]) -> Option<&[u8]> {
    let etag = etag.strip_prefix(b"W/").unwrap_or(etag);
    etag.strip_prefix(b"\"")?.strip_suffix(b"\"")
}

#[cfg(test)]
mod tests {
    use super::if_none_match;

    const TAG: &[u8] = b"\"5a-1f2e\"";

    #[test]
    fn exact_and_weak_match() {
        assert!(if_none_match(b"\"5a-1f2e\"", TAG));
        assert!(if_none_match(b"W/\"5a-1f2e\"", TAG));
        assert!(if_none_match(b"*", TAG));
    }

    #[test]
    fn lists_and_whitespace() {
        assert!(if_none_match(b"\"x\", \"5a-1f2e\"", TAG));
        assert!(if_none_match(b" ,\t\"x\",W/\"5a-1f2e\" ", TAG));
        assert!(!if_none_match(b"\"x\", \"y\"", TAG));
    }

    #[test]
    fn no_match_for_malformed_or_partial() {
        assert!(!if_none_match(b"", TAG));
        assert!(!if_none_match(b"5a-1f2e", TAG));
        assert!(!if_none_match(b"\"5a-1f2e", TAG));
        assert!(!if_none_match(b"\"5a\"-1f2e\"", TAG));
        assert!(!if_none_match(b"\"5a-1f2", TAG));
        assert!(!if_none_match(b"\"x\"garbage, \"5a-1f2e\"", TAG));
        assert!(!if_none_match(b"\"\"", TAG));
    }

    #[test]
    fn unquoted_own_tag_never_matches() {
        assert!(!if_none_match(b"\"abc\"", b"abc"));
    }
}
