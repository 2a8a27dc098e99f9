//! Any text as the value of `vlan=` and of `bond=`: a definition within
//! the kernel's limits (names, VLAN IDs, slaves) or a warning, never a panic.
#![no_main]

use latchkey_agent::net::links::{MAX_SLAVES, parse_bond, parse_vlan, valid_ifname};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(v) = parse_vlan(text) {
        assert!(valid_ifname(&v.name) && valid_ifname(&v.parent) && v.name != v.parent);
        assert!((1..=4094).contains(&v.id));
    }
    for v in [Some(text), None] {
        match parse_bond(v) {
            Ok((b, _)) => {
                assert!(valid_ifname(&b.name));
                assert!(!b.slaves.is_empty() && b.slaves.len() <= MAX_SLAVES);
                assert!(b.slaves.iter().all(|s| valid_ifname(s) && *s != b.name));
                assert!(b.primary.as_ref().is_none_or(|p| b.slaves.contains(p)));
            }
            Err(e) => assert!(e.starts_with("bond=")),
        }
    }
});
