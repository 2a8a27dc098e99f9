//! Clevis bindings in LUKS headers: how clevis lists them, and how they are
//! added, removed and replaced without ever leaving a volume that neither the
//! old nor the new method opens.
//!
//! ```text
//!   latchkey luks list/pass/report (static) ──▶ listing, inventory, rotation   (pure, this crate
//!                                                   │                            without features)
//!                                          latchkey-luks (Header)
//!
//!   latchkey-luks bind/unbind/regen/edit ──▶ Session ──▶ luks2 ──▶ device (libcryptsetup: keyslots, tokens)
//!   (companion binary, `cryptsetup`)          │ Pins      luks1 ──▶ luksmeta (LUKSMeta, own writer)
//!                                             ▼
//!                              encrypt/decrypt at the caller's edge (Tang)
//! ```
//!
//! The pure half ([`listing`], [`inventory`], [`rotation`], [`journal`],
//! [`passphrase`]) builds without libcryptsetup so that the static `latchkey`
//! can list and report. The `cryptsetup` feature adds [`Session`], the only
//! code that writes headers: keyslots and LUKS2 tokens through libcryptsetup,
//! LUKSMeta through [`latchkey_luks::luksmeta`]'s model.
//!
//! Every change is additive first: the new keyslot and binding are written and
//! the new passphrase has opened the keyslot (and the new JWE has decrypted to
//! it) before anything old goes. Multi-step changes write a journal first, so a
//! re-run after a crash finishes or undoes them; see [`Session`].
//!
//! [`policy`] is the cluster's unlock policy on top: a local boot key, any
//! one Tang server, or a quorum of them, and the safe way between them.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod inventory;
pub mod journal;
pub mod listing;
pub mod passphrase;
pub mod policy;
pub mod rotation;

#[cfg(feature = "cryptsetup")]
mod device;
#[cfg(feature = "cryptsetup")]
mod error;
#[cfg(feature = "cryptsetup")]
mod luks1;
#[cfg(feature = "cryptsetup")]
mod luks2;
#[cfg(feature = "cryptsetup")]
mod luksmeta;
#[cfg(feature = "cryptsetup")]
mod session;

#[cfg(feature = "cryptsetup")]
pub use device::ITERATIONS;
#[cfg(feature = "cryptsetup")]
pub use error::Error;
#[cfg(feature = "cryptsetup")]
pub use session::{Bound, Pins, Request, Session, Settled};
