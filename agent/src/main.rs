//! latchkey-agent: the static initrd binary that recovers a LUKS passphrase
//! from Tang servers and opens the root volume.
//!
//! ```text
//!   /proc/cmdline ─► cmdline ─► netconf ─► net (netlink + dhcp) ─► Tang (client/proto)
//!   /etc/crypttab ─► crypttab                                          │
//!                               luks header ─► volume key ─► dm_table ─► latchkey-sys dm
//! ```
//!
//! This file only lists the modules; the unlock flow is wired in later.
#![forbid(unsafe_code)]
// The modules are complete but not yet called from `main`.
#![allow(dead_code)]

mod cmdline;
mod crypttab;
mod deadline;
mod dhcp;
mod dm_table;
mod kmsg_log;
mod net;
mod netconf;

fn main() {
    let log = kmsg_log::Log::open(std::time::Instant::now(), false);
    let line = latchkey_sys::proc::read_cmdline().unwrap_or_default();
    let (cfg, warnings) = cmdline::parse(&line);
    for w in &warnings {
        log.warn(w);
    }
    log.debug(&format!(
        "{} LUKS volume(s) requested",
        cfg.luks_uuids.len()
    ));
}
