//! latchkey-agent: the static initrd binary that recovers a LUKS passphrase
//! from Tang servers and opens the root volume.
//!
//! ```text
//!   /proc/cmdline ─► cmdline ─► volume (discovery, crypttab) ─► unlock ─► engine ─┬─► net (plan, dhcp) ─► Tang (latchkey-client)
//!                                                                                  ├─► volume::boot_key
//!                                                                                  └─► console
//!                    luks header ─► volume key ─► volume::dm_table ─► volume::activate (latchkey-sys dm)
//! ```
//!
//! `main` only dispatches: `unlock` (the boot flow), `decrypt` (JWE on
//! stdin, plaintext on stdout, for initrd scripts that only want the key)
//! and `initrd-config` (what the initrd hooks record at build time).
//!
//! Public on purpose, beside those entry points: the parsers the fuzz
//! targets drive (`cmdline`, `net::dhcp`, `net::plan`, `volume::crypttab`)
//! and the pieces of the unlock race that the integration tests
//! assemble (`engine`, `console`, `kmsg_log`, `volume::Volume`).
#![forbid(unsafe_code)]

pub mod cmdline;
pub mod console;
pub mod decrypt;
pub mod engine;
pub mod error;
pub mod initrd_config;
pub mod kmsg_log;
pub mod net;
pub mod unlock;
pub mod volume;
