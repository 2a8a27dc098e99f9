//! Any text as a kernel command line (rd.luks.*, ip=, latchkey.*) and as an
//! /etc/crypttab: parsed into settings plus warnings, never a panic.
#![no_main]

use latchkey_agent::cmdline;
use latchkey_agent::net::plan;
use latchkey_agent::volume::crypttab;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (cfg, _) = cmdline::parse(text);
    let _ = plan::plan(&cfg.network);
    for u in &cfg.volumes.uuids {
        let _ = cfg.volumes.name_for(u);
    }
    let _ = crypttab::parse(text);
});
