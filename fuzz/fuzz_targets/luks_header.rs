//! Any bytes as a device: reading the header must return, never panic; when it
//! parses, a cheap unlock attempt must return too.
#![no_main]

use latchkey_luks::{Header, Kdf, Limits, unlock};
use libfuzzer_sys::fuzz_target;
use std::io::Cursor;

fuzz_target!(|data: &[u8]| {
    let Ok(hdr) = Header::from_bytes(data) else {
        return;
    };
    let _ = hdr.clevis_bindings();
    // Only keyslots cheap enough for a fuzzer: the costs come from the input.
    let cheap = hdr.digests().iter().all(|d| d.iterations <= 2000)
        && hdr.keyslots().iter().all(|k| match &k.kdf {
            Kdf::Pbkdf2 { iterations, .. } => *iterations <= 2000,
            Kdf::Argon2 {
                time, memory_kib, ..
            } => *time <= 4 && *memory_kib <= 4096,
            _ => false,
        });
    if cheap {
        let _ = unlock(
            &hdr,
            &mut Cursor::new(data),
            b"fuzz",
            None,
            &Limits::new(4096),
        );
    }
});
