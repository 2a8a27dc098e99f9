//! Any bytes as a JWK: parsing, thumbprints, the public half, and a lossless round trip.
#![no_main]

use latchkey_proto::jwk::{Jwk, ThpHash};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(jwk) = Jwk::parse(data) else { return };
    for h in ThpHash::ALL {
        let _ = jwk.thumbprint(h);
    }
    let again = Jwk::from_value(&jwk.to_value()).expect("a parsed key re-parses");
    assert_eq!(again.to_value(), jwk.to_value());
    let public = jwk.public();
    assert!(!public.is_private());
    assert_eq!(public.thumbprint(ThpHash::S256), jwk.thumbprint(ThpHash::S256));
});
