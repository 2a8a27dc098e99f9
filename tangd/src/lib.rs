//! tangd: an asynchronous Tang server, a drop-in replacement for latchset/tang
//! on the same key directory.
//!
//! ```text
//!  clevis / latchkey-agent ──HTTP──▶ server (tokio, limits, deadlines)
//!                                       │ route (tang's patterns)
//!                                       ▼
//!                        service ──▶ store ──▶ keyset (in memory, signed once per change)
//!                           │          ▲ watch: changed since? (per request) → keydir
//!                           ▼
//!        latchkey_proto::tang::exchange + backend (OpenSSL or RustCrypto)
//! ```
#![forbid(unsafe_code)]

pub mod backend;
pub mod conns;
pub mod harden;
pub mod http;
pub mod keydir;
pub mod keyset;
pub mod listen;
pub mod log;
pub mod recover;
pub mod route;
pub mod server;
pub mod service;
pub mod store;
pub mod watch;
