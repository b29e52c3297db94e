//! `bearer` and `credential` never panic on any field value or set of `Authorization` headers.
//! A token they return is a piece of the input of the RFC 6750 §2.1 `b64token` form, after the
//! scheme `Bearer` in any case and SP, with only whitespace around it; the scheme's case never
//! changes the verdict; several headers are `Malformed`; `Bearer <token>` built from any valid
//! token parses back to it. Every token found goes to `jwt::verify`, which never panics and
//! accepts only an unexpired three-part base64url JWS (the seeds hold tokens signed with these
//! keys).
#![no_main]
use std::sync::LazyLock;

use http::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use libfuzzer_sys::fuzz_target;
use mcp_auth_edge::gate::credential::{bearer, credential, Credential};
use mcp_auth_edge::gate::jwt::{verify, Expectations, JwkSet, JwtTyp};

const JWKS: &str = r#"{"keys": [{"kty": "RSA", "kid": "rsa", "e": "AQAB", "n": "1TiP5lOGY5SwiwaM562u3pNxX-1jt0PB-jcHXybGXwYFIkByI0eLR8BN9nF7CoHC46t-dHigWi6nVmpeEqdcnJXNoEPwxs-h8EPSoqYEt8-xo-dHfjS4NggKO4ZUMVaKC_SEH1_cYEOkfMyy69HkiaoeQJBqhr0RfyeXrGWszCYWdnvcj7PuSukgtbcnwC7GyNtfM8yb5wO5RR56b2qMog9ebbdf4QTnznMBTeTuMC3nZT_7uHjsR_7IodGKGdyBuadtC35RuX_sqK4n0c7oTSv5HNy_3vKcy-sorhwZSOQO1AQoD1aIrhO0OQyN4Bh0CjcQs2jXJT9l2dJFoQednw"},
  {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "I55gOFh1FuNTDl01m3n5KmoIMvET5L0pDP8iPpPm-OE", "y": "fz-r7Y87-nWlLfz_Sc3EzhhrtrdRcE1IoE7P4JuTTM0"},
  {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "j6-kofzV4GU3Lx7lUxs2RzGDwTSbussRA8Go3S_5xa8"}]}"#;

const NOW: u64 = 1_750_000_000;
const LEEWAY: u64 = 60;

static FIXED: LazyLock<(JwkSet, Expectations)> = LazyLock::new(|| {
    let (issuer, audiences) = ("https://as.example.com".into(), vec!["https://mcp.example.com/mcp".into()]);
    (
        JwkSet::parse(JWKS.as_bytes()).expect("the fixed JWKS parses"),
        Expectations { issuer, audiences, leeway_secs: LEEWAY, typ: JwtTyp::Lenient },
    )
});

/// The `b64token` characters before the trailing `=` padding (RFC 6750 §2.1).
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/";

fuzz_target!(|data: &[u8]| {
    // The input as one field value.
    let verdict = bearer(data);
    if let Credential::Bearer(token) = verdict {
        check_found(data, token);
        check_verified(std::str::from_utf8(token).expect("a b64token is ASCII"));
    }
    let mut recased = data.to_vec();
    let scheme_end = data.iter().position(|&b| b == b' ').unwrap_or(data.len());
    recased[..scheme_end].iter_mut().filter(|b| b.is_ascii_alphabetic()).for_each(|b| *b ^= 0x20);
    assert_eq!(bearer(&recased), verdict, "scheme case changed the verdict");

    // A valid token built from the input, in a value built from it too.
    if let Some((value, token)) = built(data) {
        assert_eq!(bearer(&value), Credential::Bearer(&token), "{value:?}");
        let mut headers = HeaderMap::new();
        headers.append(AUTHORIZATION, HeaderValue::from_bytes(&value).expect("built from visible ASCII, SP, HTAB"));
        assert_eq!(credential(&headers), Credential::Bearer(&token));
        check_verified(std::str::from_utf8(&token).expect("built from ASCII"));
    }

    // The input as the request's `Authorization` headers, one per line.
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let Ok(value) = HeaderValue::from_bytes(line) else { return };
        headers.append(AUTHORIZATION, value);
    }
    match headers.get_all(AUTHORIZATION).iter().count() {
        1 => assert_eq!(credential(&headers), verdict),
        _ => assert_eq!(credential(&headers), Credential::Malformed),
    }
});

/// A token `bearer` returned: a sub-slice of `value`, after `Bearer` and SP, with only
/// whitespace between them and after it, and of the `b64token` form.
fn check_found(value: &[u8], token: &[u8]) {
    let (v, t) = (value.as_ptr_range(), token.as_ptr_range());
    assert!(v.start <= t.start && t.end <= v.end, "token is not a piece of the value");
    let start = t.start as usize - v.start as usize;
    let end = start + token.len();
    let scheme = value.get(..7).filter(|s| s[..6].eq_ignore_ascii_case(b"bearer") && s[6] == b' ');
    assert!(scheme.is_some() && start >= 7, "no `Bearer` and SP before the token");
    // In a field value (`HeaderValue`, what requests carry) the only ASCII whitespace is SP and
    // HTAB, so there this is OWS; `bearer` on raw bytes also trims CR, LF and FF.
    let space = |s: &[u8]| s.iter().all(u8::is_ascii_whitespace);
    assert!(space(&value[7..start]) && space(&value[end..]), "more than whitespace around the token");
    assert!(is_b64token(token), "not a b64token");
}

/// `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`
fn is_b64token(token: &[u8]) -> bool {
    let body = token.iter().position(|&b| b == b'=').unwrap_or(token.len());
    body > 0 && token[..body].iter().all(|b| ALPHABET.contains(b)) && token[body..].iter().all(|&b| b == b'=')
}

/// `jwt::verify` accepts only a compact JWS of three base64url parts, not expired.
fn check_verified(token: &str) {
    let Ok(claims) = verify(token, &FIXED.0, &FIXED.1, NOW) else { return };
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "accepted {token:?}");
    let base64url = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    assert!(parts.iter().all(base64url), "accepted {token:?}");
    assert!(NOW <= claims.expires_at + LEEWAY, "accepted an expired token");
}

/// `Bearer <token>`: the input's bytes mapped into the alphabet (its trailing `=` kept as
/// padding), the scheme's case, the spaces after it and the trailing whitespace chosen by it.
fn built(data: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let body_end = data.len() - data.iter().rev().take_while(|&&b| b == b'=').count();
    if body_end == 0 {
        return None;
    }
    let (body, padding) = data.split_at(body_end);
    let mut token: Vec<u8> = body
        .iter()
        .map(|&b| if ALPHABET.contains(&b) { b } else { ALPHABET[usize::from(b) % ALPHABET.len()] })
        .collect();
    token.extend_from_slice(padding);
    let (first, last) = (data[0], data[data.len() - 1]);
    let mut value: Vec<u8> = b"Bearer"
        .iter()
        .enumerate()
        .map(|(i, &c)| if first >> i & 1 == 1 { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
        .collect();
    value.extend(std::iter::repeat_n(b' ', 1 + usize::from(last % 3)));
    value.extend_from_slice(&token);
    value.extend_from_slice([&b""[..], b" ", b"\t", b" \t "][usize::from(last / 3 % 4)]);
    Some((value, token))
}
