//! latchkey-proto: the sans-IO core of latchkey.
//!
//! ```text
//!   agent / cli / luks check          tangd
//!          │                            │
//!   latchkey-client (HTTP)              │ (HTTP)
//!          │ requests ▲ replies         │ bodies
//!   ┌──────▼──────────┴─────────────────▼──────────────────────────────┐
//!   │ latchkey-proto: pin (tang, sss, null) ─ jwe ─ jws ─ jwk ─ tang   │
//!   │                 sss ─ curve (EcBackend) ─ b64 ─ secret           │
//!   └──────────────────────────────────────────────────────────────────┘
//! ```
//!
//! Bytes in, bytes out: no sockets, files or clocks. Randomness comes in as a
//! [`rand_core::CryptoRng`] (re-exported as [`rand_core`] so callers use the same version;
//! the binaries pass the OS generator, e.g. `rand_core::UnwrapErr(getrandom::SysRng)`).
//! Everything is byte-compatible with clevis 19, tang 11 and jose 11.
#![forbid(unsafe_code)]

pub mod b64;
pub mod curve;
pub mod error;
mod json;
pub mod jwe;
pub mod jwk;
pub mod jws;
pub mod pin;
pub mod secret;
pub mod sss;
pub mod tang;

pub use error::{Error, Result};
pub use rand_core;
pub use secret::Secret;

/// The OS generator for unit tests.
#[cfg(test)]
pub(crate) fn tests_rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}
