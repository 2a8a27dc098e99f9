//! Open a keyslot of a LUKS image or device and report how long it took.
//!
//! ```text
//! cargo run --release -p latchkey-luks --example unlock -- IMAGE KEYFILE [SLOT] [RUNS]
//! ```
//!
//! Prints one line per run, `unlock keyslot=N ms=T`, and exits 2 if the
//! passphrase is rejected. Argon2 memory is limited by `MemAvailable`.

use latchkey_luks::{Header, Limits, unlock};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: unlock IMAGE KEYFILE [SLOT|any] [RUNS]");
        std::process::exit(64);
    }
    let passphrase = std::fs::read(&args[1]).expect("reading key file");
    let slot = args
        .get(2)
        .filter(|s| *s != "any")
        .map(|s| s.parse::<u32>().expect("slot number"));
    let runs: usize = args.get(3).map_or(1, |s| s.parse().expect("run count"));
    let meminfo = std::fs::read_to_string("/proc/meminfo").expect("reading /proc/meminfo");
    let limits = Limits::from_meminfo(&meminfo).expect("MemAvailable in /proc/meminfo");
    for _ in 0..runs {
        let start = Instant::now();
        let mut dev = std::fs::File::open(&args[0]).expect("opening image");
        let hdr = Header::read(&mut dev).expect("reading LUKS header");
        match unlock(&hdr, &mut dev, &passphrase, slot, &limits) {
            Ok(u) => println!(
                "unlock keyslot={} ms={:.3}",
                u.keyslot,
                start.elapsed().as_secs_f64() * 1e3
            ),
            Err(e) => {
                eprintln!("unlock failed: {e}");
                std::process::exit(2);
            }
        }
    }
}
