//! Any bytes as the JSON area of a LUKS2 header whose binary parts and
//! checksums are valid, so the fuzzer reaches the metadata parser directly.
#![no_main]

use latchkey_luks::Header;
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

const HDR: usize = 16384;

fn copy(json: &[u8], offset: usize, magic: &[u8; 6]) -> Vec<u8> {
    let mut h = vec![0u8; HDR];
    h[..6].copy_from_slice(magic);
    h[6..8].copy_from_slice(&2u16.to_be_bytes());
    h[8..16].copy_from_slice(&(HDR as u64).to_be_bytes());
    h[16..24].copy_from_slice(&1u64.to_be_bytes());
    h[72..78].copy_from_slice(b"sha256");
    h[168..204].copy_from_slice(b"00000000-0000-0000-0000-000000000000");
    h[256..264].copy_from_slice(&(offset as u64).to_be_bytes());
    let n = json.len().min(HDR - 4096 - 1);
    h[4096..4096 + n].copy_from_slice(&json[..n]);
    let sum = Sha256::digest(&h);
    h[448..480].copy_from_slice(&sum);
    h
}

fuzz_target!(|json: &[u8]| {
    let mut img = copy(json, 0, b"LUKS\xba\xbe");
    img.extend(copy(json, HDR, b"SKUL\xba\xbe"));
    img.resize(4 * HDR, 0);
    if let Ok(h) = Header::from_bytes(&img) {
        let _ = h.clevis_bindings();
        let _ = h.keyslots();
    }
});
