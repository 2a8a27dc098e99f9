//! Any text as a clevis JWE: parsing, both serializations, and building the decryption plan
//! (which walks the whole pin tree, nested sss included).
#![no_main]

use latchkey_proto::jwe::Jwe;
use latchkey_proto::pin::Decryption;
use latchkey_proto::rand_core::{TryCryptoRng, TryRng};
use libfuzzer_sys::fuzz_target;

/// A deterministic generator, so that a crash reproduces.
struct Counter(u64);

impl TryRng for Counter {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.try_next_u64()? as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        Ok(self.0)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for b in dst {
            *b = (self.try_next_u64()? >> 56) as u8;
        }
        Ok(())
    }
}

impl TryCryptoRng for Counter {}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(jwe) = Jwe::parse(text) else { return };
    assert_eq!(Jwe::parse(&jwe.to_compact()).as_ref(), Ok(&jwe));
    assert_eq!(Jwe::parse(&jwe.to_flattened_json()).as_ref(), Ok(&jwe));
    if let Ok(mut plan) = Decryption::new(&jwe, &mut Counter(1)) {
        for req in plan.requests() {
            plan.supply(req.id, Ok(data.to_vec()));
        }
        let _ = plan.status();
    }
});
