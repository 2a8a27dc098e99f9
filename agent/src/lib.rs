//! latchkey-agent: the static initrd binary that recovers a LUKS passphrase
//! from Tang servers and opens the root volume.
//!
//! ```text
//!   /proc/cmdline ─► cmdline ─► volumes ─► engine ─┬─► net (netlink + dhcp) ─► Tang (latchkey-client)
//!   /etc/crypttab ─► crypttab                      ├─► bootkey (local key file)
//!                                                  └─► console
//!                    luks header ─► volume key ─► dm_table ─► activate (latchkey-sys dm)
//! ```
//!
//! `main` only dispatches: `unlock` (the boot flow), `decrypt` (JWE on
//! stdin, plaintext on stdout, for initrd scripts that only want the key)
//! and `initrd-config` (what the initrd hooks record at build time).
#![forbid(unsafe_code)]

pub mod activate;
pub mod bootkey;
pub mod cmdline;
pub mod console;
pub mod crypttab;
pub mod deadline;
pub mod decrypt;
pub mod dhcp;
pub mod dm_table;
pub mod engine;
pub mod initrd_config;
pub mod kmsg_log;
pub mod net;
pub mod netconf;
pub mod unlock;
pub mod volumes;
