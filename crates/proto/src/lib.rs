//! latchkey-proto: the sans-IO core of latchkey.
//!
//! ```text
//!   agent / cli / luks check          tangd
//!          │                            │
//!   latchkey-client (HTTP)              │ (HTTP)
//!          │ requests ▲ replies         │ bodies
//!   ┌──────▼──────────┴─────────────────▼──────────────────────────────┐
//!   │ latchkey-proto: pin (tang, sss, tpm2, null) ─ jwe ─ jws ─ jwk    │
//!   │                 tang ─ sss ─ curve (EcBackend) ─ b64 ─ secret    │
//!   └──────────────────────────────────────────────────────────────────┘
//! ```
//!
//! Bytes in, bytes out: no sockets, files or clocks. Randomness comes in as a
//! [`rand_core::CryptoRng`] (re-exported as [`rand_core`] so callers use the same version;
//! the binaries pass the OS generator, `latchkey_sys::rng::os()`).
//! Everything is byte-compatible with clevis 19, tang 11 and jose 11.
//!
//! Decrypting a clevis JWE is a plan the caller drives, so that the network stays outside:
//!
//! ```no_run
//! # use latchkey_proto::{jwe::Jwe, pin::{Decryption, Status}};
//! # fn post(url: &str, body: &[u8]) -> Result<Vec<u8>, String> { unimplemented!() }
//! # fn run(text: &str, rng: &mut impl latchkey_proto::rand_core::CryptoRng) -> latchkey_proto::Result<()> {
//! let jwe = Jwe::parse(text)?;
//! let mut plan = Decryption::new(&jwe, rng)?;
//! for req in plan.requests() {
//!     // POST req.body() to req.rec_url (Content-Type application/jwk+json), concurrently;
//!     // req.prepare() meanwhile, on another core, readies the unblinding.
//!     plan.supply(req.id, post(&req.rec_url, &req.body()?));
//!     if !matches!(plan.status(), Status::Pending) { break; }
//! }
//! match plan.status() {
//!     Status::Done(passphrase) => { /* use passphrase.expose() */ }
//!     Status::Failed(e) => eprintln!("{e}"),
//!     Status::Pending => unreachable!("every request was answered"),
//! }
//! # Ok(()) }
//! ```
//!
//! tpm2 leaves come out of [`pin::Decryption::unseal_requests`] instead: the caller's
//! TPM (latchkey-tpm2, through [`pin::Unseal`]) unseals each binding and hands the bytes
//! to [`pin::Decryption::supply_unseal`]; they need no network and run alongside.
//!
//! Where this crate is precise about behaviour the reference leaves open:
//! - [`jws::verify_advertisement`] applies clevis's rule (`jose jws ver -a` over the payload's
//!   `verify` keys): every `verify` key of the payload must have made one of the signatures,
//!   and there must be one. Signatures by keys outside the payload are ignored, so the
//!   answer to `/adv/{rotated key}` verifies as it does for clevis.
//! - [`pin::Decryption::new`] also fails when the tree cannot succeed from the start (say,
//!   an sss node with too many unknown pins); an unknown pin inside sss is otherwise one
//!   failed share, as with clevis.
//! - [`pin::encrypt`] takes a parsed `serde_json::Value`, whose maps are sorted, so sss
//!   orders `clevis.sss.jwe` by pin name; [`pin::encrypt_json`] takes CONFIG as written and
//!   keeps its order, as clevis does. No decrypter depends on that order.
//! - [`pin::Status`] has no `Debug`, because it can hold the plaintext.
#![forbid(unsafe_code)]

pub mod b64;
pub mod curve;
pub mod error;
mod json;
pub mod jwe;
pub mod jwk;
pub mod jws;
pub mod pin;
pub mod recovery;
pub mod secret;
pub mod sss;
pub mod tang;

pub use error::{Error, Result};
pub use rand_core;
pub use secret::Secret;

/// Unit tests check that no secret reaches freed memory.
#[cfg(test)]
#[global_allocator]
static ALLOC: latchkey_sys::wipecheck::WipeCheck = latchkey_sys::wipecheck::WipeCheck;
