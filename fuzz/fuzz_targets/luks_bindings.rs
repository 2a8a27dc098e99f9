//! Any bytes as a device, read as `latchkey luks list` and `report` read it:
//! the clevis bindings, leftovers and journals, each binding's policy line and
//! its tang nodes. Everything must return, never panic, whatever the JWEs and
//! LUKSMeta entries hold (nesting, sizes and JSON come from the input).
#![no_main]

use latchkey_enroll::{inventory, listing, rotation};
use latchkey_luks::Header;
use libfuzzer_sys::fuzz_target;
use std::io::Cursor;

fuzz_target!(|data: &[u8]| {
    let Ok(hdr) = Header::from_bytes(data) else {
        return;
    };
    let inv = inventory::inventory(&hdr, &mut Cursor::new(data));
    for b in &inv.bindings {
        let _ = listing::describe(&b.jwe);
        let _ = listing::pin_and_config(&b.jwe);
        let _ = rotation::tang_nodes(&b.jwe);
    }
    for p in &inv.problems {
        let _ = p.describe();
    }
    for slot in 0..33 {
        let _ = inventory::binding_of(&hdr, &mut Cursor::new(data), slot);
    }
});
