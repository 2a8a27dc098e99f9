//! Any bytes as a Tang advertisement (flattened or general JWS JSON).
#![no_main]

use latchkey_proto::jws::verify_advertisement;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(adv) = verify_advertisement(data) {
        assert!(!adv.signing_keys().is_empty());
        let _ = adv.exchange_keys();
    }
});
