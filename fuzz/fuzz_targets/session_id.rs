//! `session::unwrap` never panics on any presented id, and returns an id only for the caller it
//! was wrapped for; `wrap` of any id it accepts gives visible ASCII that unwraps to that id.
//! The seeds hold ids wrapped with this key for this caller and for another.
#![no_main]
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use mcp_auth_edge::gate::keyring::KeyRing;
use mcp_auth_edge::gate::session::{unwrap, wrap, Caller, SessionError};

static KEYS: LazyLock<KeyRing> = LazyLock::new(|| KeyRing::new(&[[0x5a; 32]]).expect("one 32-byte key"));
const ALICE: Caller = Caller { issuer: "https://as.example.com", subject: Some("alice"), client_id: Some("app") };
const BOB: Caller = Caller { issuer: "https://as.example.com", subject: Some("bob"), client_id: Some("app") };

fuzz_target!(|data: &[u8]| {
    if let Ok(id) = unwrap(&KEYS, data, &ALICE) {
        assert_eq!(unwrap(&KEYS, data, &BOB), Err(SessionError::OtherCaller), "{id:?}");
    }
    if let Ok(wrapped) = wrap(&KEYS, data, &ALICE) {
        assert!(wrapped.bytes().all(|b| (0x21..=0x7E).contains(&b)));
        assert_eq!(unwrap(&KEYS, wrapped.as_bytes(), &ALICE).as_deref(), Ok(data));
    }
});
