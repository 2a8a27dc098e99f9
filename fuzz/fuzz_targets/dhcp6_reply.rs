//! Any bytes as a datagram arriving on the DHCPv6 client's socket, in
//! every state of the exchange.
#![no_main]

use std::time::{Duration, Instant};

use latchkey_agent::net::dhcp6::{Client, MAX_DNS, parse};
use latchkey_client::time::NoJitter;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = parse(data) {
        assert!(m.dns.len() <= MAX_DNS);
    }
    let now = Instant::now();
    // The transaction id the input carries, so that replies get past it.
    let xid = data
        .get(1..4)
        .map_or(0, |b| u32::from_be_bytes([0, b[0], b[1], b[2]]));
    let mut c = Client::new([0x52, 0x54, 0, 0x12, 0x34, 0x56], xid, now);
    let _ = c.poll(now, &mut NoJitter);
    let _ = c.handle(data, now);
    // Then as the answer to a REQUEST, if the first one was taken as an offer.
    let later = now + Duration::from_secs(1);
    let _ = c.poll(later, &mut NoJitter);
    let _ = c.handle(data, later);
});
