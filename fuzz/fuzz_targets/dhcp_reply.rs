//! Any bytes as a frame arriving on the DHCP client's packet socket, in
//! every state of the exchange.
#![no_main]

use std::time::{Duration, Instant};

use latchkey_client::time::{Backoff, NoJitter};
use latchkey_agent::net::dhcp::{Client, parse_reply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_reply(data);
    let now = Instant::now();
    let backoff = Backoff::new(Duration::from_millis(500), 2, Duration::from_secs(8));
    let mut c = Client::new([2, 0, 0, 0, 0, 1], 0x1234_5678, backoff, now);
    let _ = c.poll(now, &mut NoJitter);
    let _ = c.handle_frame(data, false, now);
    let _ = c.handle_frame(data, true, now);
});
