//! `check_proof` never panics on any header value, and a proof it accepts is bound to the key
//! it was signed with: its thumbprint matches as a `cnf.jkt` and its replay window ends within
//! the window of `iat`. `Htu::parse` never panics either. The seeds hold proofs for this request.
#![no_main]
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use mcp_auth_edge::gate::dpop::{bound_matches, check_proof, htu, Expect, Htu, SUPPORTED_ALGS};

const NOW: u64 = 1_750_000_000;
static HTU: LazyLock<Htu> = LazyLock::new(|| htu("https://mcp.example.com", "/mcp").expect("a valid origin and path"));

fuzz_target!(|data: &[u8]| {
    let expect = Expect {
        method: "POST",
        htu: &HTU,
        access_token: Some(b"fuzz-access-token"),
        window_secs: 300,
        algs: &SUPPORTED_ALGS,
        nonces: None,
    };
    if let Ok(proof) = check_proof(data, &expect, NOW) {
        assert!(bound_matches(&proof.jkt_base64(), &proof));
        assert!(proof.iat.abs_diff(NOW) <= 300 && proof.replayable_until == proof.iat + 300);
    }
    let _ = Htu::parse(&String::from_utf8_lossy(data));
});
