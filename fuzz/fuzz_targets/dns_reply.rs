//! Any bytes as a name server's reply to each question the resolver asks,
//! and as the resolv.conf and hosts files it reads.
#![no_main]

use latchkey_client::dns::{MAX_RECORDS, TYPE_A, TYPE_AAAA, hosts_lookup, nameservers, parse_reply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let id = data
        .get(..2)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    for name in ["tang.test", "alias.test", "a"] {
        for t in [TYPE_A, TYPE_AAAA] {
            if let Ok(a) = parse_reply(data, id, name, t) {
                assert!(a.len() <= MAX_RECORDS);
                assert!(a.iter().all(|a| a.is_ipv4() == (t == TYPE_A)));
            }
        }
    }
    let text = String::from_utf8_lossy(data);
    assert!(nameservers(&text).len() <= 3);
    let _ = hosts_lookup(&text, "tang.test");
});
