//! Any bytes as the body of `POST /rec/{kid}` against tang's handler, with a real key.
#![no_main]

use latchkey_proto::curve::RustCrypto;
use latchkey_proto::jwk::Jwk;
use latchkey_proto::tang;
use libfuzzer_sys::fuzz_target;

/// The ECMR key of the sample tang-db (test material).
const KEY: &str = r#"{"alg":"ECMR","crv":"P-521","d":"AfDeiyfq4l7Du-M25g4VSw9MxNbI82CzLN9zCgiYuEYFS7gr1tzktmYI-koQ58BYK_8mRh1CxNoIQwRbNUrpoWvy","key_ops":["deriveKey"],"kty":"EC","x":"AGcCtIRgCKuSvxZOfvOluSj2IdF9rdKeeErnxDRsGKp7yU5vyWY4N8Z9z-YTYx_X65gcAmZnUlcFEHjE7iSUS5aC","y":"AOeBqgDtp88rWlGfnHF79CJVfytrkLoUHVefDY7CRYlP2aR_p2lUpNFOmkjJW6swoOMy2K9Pqkzvp_cBwz_sp2BR"}"#;

fuzz_target!(|data: &[u8]| {
    let keys = [Jwk::parse(KEY.as_bytes()).unwrap()];
    match tang::rec(&keys, "Hk_gGBVF5MTLuXfJvfnQYraEqI_SWT33ykzPmp6Ejrw", data, &RustCrypto) {
        Ok(reply) => assert!(Jwk::parse(&reply).is_ok()),
        Err(e) => assert!(matches!(e.status(), 400 | 403)),
    }
});
