//! The credential: reading the `Authorization` header (RFC 6750 §2.1, and RFC 9449 §7.1 for
//! `DPoP`), and finding the token again where it was read.

use http::header::{self, HeaderMap, HeaderValue};

/// What the `Authorization` header of a request holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential<'a> {
    /// No `Authorization` header, or one for another scheme (RFC 6750 §3.1: no error code).
    Missing,
    /// A bearer token of the RFC 6750 §2.1 `b64token` form, hence ASCII. Kept as bytes: a
    /// UTF-8 check of a token hundreds of bytes long is a measurable share of a request.
    Bearer(&'a [u8]),
    /// A DPoP-bound token (RFC 9449 §7.1), of the same `b64token` form; read only where the
    /// resource takes DPoP ([`Schemes::BearerAndDpop`]), otherwise another scheme (`Missing`).
    Dpop(&'a [u8]),
    /// A `Bearer` (or `DPoP`) header that does not follow RFC 6750 §2.1, or several `Authorization` headers.
    Malformed,
}

/// The scheme a token was presented with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Bearer,
    Dpop,
}

/// The authorization schemes a resource reads as credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schemes {
    Bearer,
    /// `Bearer` and `DPoP` (`--dpop allow` or `require`; the gate applies the mode).
    BearerAndDpop,
}

/// Reads the bearer credential from request headers.
pub fn credential(headers: &HeaderMap) -> Credential<'_> {
    read(headers).0
}

/// [`credential`] and, for a bearer token, its [`span`], from one lookup of the header.
pub fn located(headers: &HeaderMap) -> (Credential<'_>, Option<std::ops::Range<usize>>) {
    let (credential, value) = read(headers);
    let span = match (credential, value) {
        (Credential::Bearer(token), Some(value)) => offset(value.as_bytes(), token),
        _ => None,
    };
    (credential, span)
}

/// [`located`], from the first `Authorization` line and the number of lines, when a pass over
/// the headers has found them already.
pub fn located_in(
    first: Option<&HeaderValue>,
    lines: usize,
    schemes: Schemes,
) -> (Credential<'_>, Option<std::ops::Range<usize>>) {
    locate(first, lines, schemes, Form::Checked)
}

/// [`located_in`] with the token's form left unchecked (a `Bearer` or `DPoP` credential of any
/// non-empty token): for the gate, whose caller checks the form with [`well_formed`] unless the
/// verdict cache holds the token byte for byte, which it does only for tokens accepted, and so
/// checked, before. The check is linear in the token (hundreds of bytes) and was the largest
/// piece of a forwarded call's token handling.
pub fn located_unchecked(
    first: Option<&HeaderValue>,
    lines: usize,
    schemes: Schemes,
) -> (Credential<'_>, Option<std::ops::Range<usize>>) {
    locate(first, lines, schemes, Form::Unchecked)
}

/// [`located_in`] and [`located_unchecked`], the token's form checked or not.
fn locate(
    first: Option<&HeaderValue>,
    lines: usize,
    schemes: Schemes,
    form: Form,
) -> (Credential<'_>, Option<std::ops::Range<usize>>) {
    match (first, lines) {
        (None, _) => (Credential::Missing, None),
        (Some(_), 2..) => (Credential::Malformed, None),
        (Some(value), _) => {
            let credential = parse_form(value.as_bytes(), schemes, form);
            let span = match credential {
                Credential::Bearer(token) | Credential::Dpop(token) => offset(value.as_bytes(), token),
                _ => None,
            };
            (credential, span)
        }
    }
}

/// Whether a token as [`located_unchecked`] found it has the form of RFC 6750 §2.1: what
/// [`bearer`] checks.
pub fn well_formed(token: &[u8]) -> bool {
    let padding = token.iter().rev().take_while(|&&b| b == b'=').count();
    let body = &token[..token.len() - padding];
    !body.is_empty() && b64token_body(body)
}

/// Whether [`parse`] checks the token's form.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    Checked,
    Unchecked,
}

/// The credential, and the one `Authorization` value it was read from.
fn read(headers: &HeaderMap) -> (Credential<'_>, Option<&HeaderValue>) {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return (Credential::Missing, None);
    };
    if values.next().is_some() {
        return (Credential::Malformed, None);
    }
    (bearer(value.as_bytes()), Some(value))
}

/// Where `token`, as [`credential`] read it from these headers, lies in the `Authorization`
/// value, so that a later stage can take it again with [`token_at`] instead of parsing anew.
pub fn span(headers: &HeaderMap, token: &[u8]) -> Option<std::ops::Range<usize>> {
    offset(headers.get(header::AUTHORIZATION)?.as_bytes(), token)
}

/// Where `token`, a piece of `value`, lies in it.
fn offset(value: &[u8], token: &[u8]) -> Option<std::ops::Range<usize>> {
    let start = (token.as_ptr() as usize).checked_sub(value.as_ptr() as usize)?;
    let end = start.checked_add(token.len())?;
    (end <= value.len()).then_some(start..end)
}

/// The token at `span` of the `Authorization` value (see [`span`]); `None` if the header is
/// gone or the span no longer fits it.
pub fn token_at(headers: &HeaderMap, span: std::ops::Range<usize>) -> Option<&[u8]> {
    token_in(headers.get(header::AUTHORIZATION)?, span)
}

/// The token at `span` of this `Authorization` value.
pub fn token_in(value: &HeaderValue, span: std::ops::Range<usize>) -> Option<&[u8]> {
    value.as_bytes().get(span)
}

/// Parses one `Authorization` field value. The scheme is case-insensitive (RFC 9110 §11.1) and
/// followed by one or more SP (§11.4; a tab there makes the credential malformed); whitespace
/// after the token is not part of the value (§5.5). The token is
/// `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
pub fn bearer(value: &[u8]) -> Credential<'_> {
    parse(value, Schemes::Bearer)
}

/// [`bearer`], with `DPoP` read too where `schemes` says so (RFC 9449 §7.1 gives it the same
/// token form). Bearer is compared first: the usual credential costs what it did.
pub fn parse(value: &[u8], schemes: Schemes) -> Credential<'_> {
    parse_form(value, schemes, Form::Checked)
}

/// [`parse`], the token's form checked or not.
fn parse_form(value: &[u8], schemes: Schemes, form: Form) -> Credential<'_> {
    #[derive(Clone, Copy)]
    enum Kind {
        Bearer,
        Dpop,
    }
    let ours = |scheme: &[u8]| {
        if scheme.eq_ignore_ascii_case(b"bearer") {
            Some(Kind::Bearer)
        } else if schemes == Schemes::BearerAndDpop && scheme.eq_ignore_ascii_case(b"dpop") {
            Some(Kind::Dpop)
        } else {
            None
        }
    };
    let Some(split) = value.iter().position(|&b| b == b' ' || b == b'\t') else {
        return if ours(value).is_some() { Credential::Malformed } else { Credential::Missing };
    };
    let (scheme, rest) = value.split_at(split);
    let Some(kind) = ours(scheme) else {
        return Credential::Missing;
    };
    let start = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
    let end = rest.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(start, |last| (last + 1).max(start));
    // A tab right after the spaces stays in the token, which then fails the form check below.
    let token = &rest[start..end];
    let malformed = match form {
        Form::Checked => !well_formed(token),
        Form::Unchecked => token.is_empty(),
    };
    if malformed {
        return Credential::Malformed;
    }
    match kind {
        Kind::Bearer => Credential::Bearer(token),
        Kind::Dpop => Credential::Dpop(token),
    }
}

/// `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" )`, checked with a table of the
/// bytes allowed, eight at a time and without early exit: tokens are hundreds of bytes, and this
/// runs on every gated request. Comparing each byte with the ranges and marks cost about five
/// instructions a byte (2,000 for the bench's token); a table lookup costs two.
fn b64token_body(bytes: &[u8]) -> bool {
    let allowed = |b: u8| B64TOKEN[usize::from(b)];
    let mut chunks = bytes.chunks_exact(8);
    let mut ok = true;
    for c in &mut chunks {
        ok &= allowed(c[0])
            & allowed(c[1])
            & allowed(c[2])
            & allowed(c[3])
            & allowed(c[4])
            & allowed(c[5])
            & allowed(c[6])
            & allowed(c[7]);
    }
    chunks.remainder().iter().fold(ok, |ok, &b| ok & allowed(b))
}

/// Whether each byte value may appear in a b64token's body.
static B64TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_located_unchecked_then_checked_reads_as_a_checked_parse() {
        let both = Schemes::BearerAndDpop;
        let values: [&[u8]; 12] = [
            b"Bearer abc.def-_~+/==",
            b"Bearer a b",
            b"Bearer a\"b",
            b"Bearer ===",
            b"Bearer a=b",
            b"DPoP tok",
            b"DPoP t\xffk",
            b"Bearer",
            b"Bearer   ",
            b"Basic x",
            b"Bearer \ttok",
            b"bearer  tok  ",
        ];
        for value in values {
            let read = match parse_form(value, both, Form::Unchecked) {
                Credential::Bearer(t) | Credential::Dpop(t) if !well_formed(t) => Credential::Malformed,
                other => other,
            };
            assert_eq!(read, parse(value, both), "{:?}", String::from_utf8_lossy(value));
        }
        let value = HeaderValue::from_static("Bearer a b");
        assert_eq!(located_unchecked(Some(&value), 1, both), (Credential::Bearer(b"a b"), Some(7..10)));
        assert_eq!(located_unchecked(Some(&value), 2, both), (Credential::Malformed, None));
    }

    #[test]
    fn the_token_table_allows_exactly_the_b64token_characters() {
        for b in 0..=255u8 {
            let expected = b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
            // At every position of a chunk of eight and in the remainder after one.
            for at in 0..11 {
                let mut token = vec![b'a'; 11];
                token[at] = b;
                assert_eq!(b64token_body(&token), expected, "byte {b:#04x} at {at}");
            }
        }
    }

    #[test]
    fn bearer_forms() {
        assert_eq!(bearer(b"Bearer abc.def-_~+/=="), Credential::Bearer(b"abc.def-_~+/=="));
        assert_eq!(bearer(b"bearer  tok "), Credential::Bearer(b"tok"));
        assert_eq!(bearer(b"BEARER tok"), Credential::Bearer(b"tok"));
        assert_eq!(bearer(b"Bearer tok\t "), Credential::Bearer(b"tok"));
        assert_eq!(bearer(b"Bearer\ttok"), Credential::Malformed);
        assert_eq!(bearer(b"Bearer \ttok"), Credential::Malformed);
        assert_eq!(bearer(b"Basic\tdXNlcjpwYXNz"), Credential::Missing);
        assert_eq!(bearer(b"Basic dXNlcjpwYXNz"), Credential::Missing);
        assert_eq!(bearer(b"Bearer"), Credential::Malformed);
        assert_eq!(bearer(b"Bearer "), Credential::Malformed);
        assert_eq!(bearer(b"Bearer a b"), Credential::Malformed);
        assert_eq!(bearer(b"Bearer a=b"), Credential::Malformed);
        assert_eq!(bearer(b"Bearer ==="), Credential::Malformed);
        assert_eq!(bearer(b"Bearer t\xc3\xa9"), Credential::Malformed);
    }

    #[test]
    fn dpop_is_a_credential_only_where_the_resource_takes_it() {
        let both = Schemes::BearerAndDpop;
        assert_eq!(parse(b"DPoP abc.def-_~+/==", both), Credential::Dpop(b"abc.def-_~+/=="));
        assert_eq!(parse(b"dpop  tok ", both), Credential::Dpop(b"tok"));
        assert_eq!(parse(b"Bearer tok", both), Credential::Bearer(b"tok"));
        assert_eq!(parse(b"DPoP", both), Credential::Malformed);
        assert_eq!(parse(b"DPoP a b", both), Credential::Malformed);
        assert_eq!(parse(b"DPoPX tok", both), Credential::Missing);
        // As today where DPoP is off: another scheme, answered with the challenge.
        assert_eq!(parse(b"DPoP tok", Schemes::Bearer), Credential::Missing);
        assert_eq!(parse(b"DPoP", Schemes::Bearer), Credential::Missing);
        let value = HeaderValue::from_static("DPoP  tok");
        assert_eq!(located_in(Some(&value), 1, both), (Credential::Dpop(b"tok"), Some(6..9)));
    }

    #[test]
    fn a_token_is_taken_again_where_it_was_read() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bEaReR   abc.DEF-_~+/==  "));
        let Credential::Bearer(token) = credential(&h) else { panic!("a bearer token") };
        let at = span(&h, token).expect("inside the value");
        assert_eq!(at, 9..23);
        assert_eq!(token_at(&h, at.clone()), Some(&b"abc.DEF-_~+/=="[..]));
        assert_eq!(located(&h), (Credential::Bearer(b"abc.DEF-_~+/=="), Some(at.clone())));
        // A string from elsewhere has no place in the value; a span past its end finds nothing.
        assert_eq!(span(&h, String::from("abc.DEF-_~+/==").as_bytes()), None);
        assert_eq!(token_at(&h, 20..40), None);
        h.remove(header::AUTHORIZATION);
        assert_eq!(token_at(&h, at), None);
    }

    #[test]
    fn several_authorization_headers_are_malformed() {
        let mut h = HeaderMap::new();
        assert_eq!(credential(&h), Credential::Missing);
        h.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer a"));
        assert_eq!(credential(&h), Credential::Bearer(b"a"));
        h.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer b"));
        assert_eq!(credential(&h), Credential::Malformed);
    }
}
