//! `JwkSet::parse` never panics on arbitrary bytes, and `verify` never panics on an arbitrary
//! token against a fixed key set (the seeds hold tokens signed with these keys).
#![no_main]
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use mcp_auth_edge::gate::jwt::{verify, Expectations, JwkSet, JwtTyp};

const JWKS: &str = r#"{"keys": [{"kty": "RSA", "kid": "rsa", "e": "AQAB", "n": "1TiP5lOGY5SwiwaM562u3pNxX-1jt0PB-jcHXybGXwYFIkByI0eLR8BN9nF7CoHC46t-dHigWi6nVmpeEqdcnJXNoEPwxs-h8EPSoqYEt8-xo-dHfjS4NggKO4ZUMVaKC_SEH1_cYEOkfMyy69HkiaoeQJBqhr0RfyeXrGWszCYWdnvcj7PuSukgtbcnwC7GyNtfM8yb5wO5RR56b2qMog9ebbdf4QTnznMBTeTuMC3nZT_7uHjsR_7IodGKGdyBuadtC35RuX_sqK4n0c7oTSv5HNy_3vKcy-sorhwZSOQO1AQoD1aIrhO0OQyN4Bh0CjcQs2jXJT9l2dJFoQednw"},
  {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "I55gOFh1FuNTDl01m3n5KmoIMvET5L0pDP8iPpPm-OE", "y": "fz-r7Y87-nWlLfz_Sc3EzhhrtrdRcE1IoE7P4JuTTM0"},
  {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "j6-kofzV4GU3Lx7lUxs2RzGDwTSbussRA8Go3S_5xa8"}]}"#;

static FIXED: LazyLock<(JwkSet, Expectations)> = LazyLock::new(|| {
    let (issuer, audiences) = ("https://as.example.com".into(), vec!["https://mcp.example.com/mcp".into()]);
    (
        JwkSet::parse(JWKS.as_bytes()).expect("the fixed JWKS parses"),
        Expectations { issuer, audiences, leeway_secs: 60, typ: JwtTyp::Lenient },
    )
});

fuzz_target!(|data: &[u8]| {
    let _ = JwkSet::parse(data);
    let _ = verify(&String::from_utf8_lossy(data), &FIXED.0, &FIXED.1, 1_750_000_000);
});
