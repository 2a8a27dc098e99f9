//! Pure-Rust reading of LUKS1 and LUKS2 headers, the clevis bindings stored
//! in them, and keyslot unlocking, so that volumes open without cryptsetup.
//!
//! ```text
//!   block device ──Read+Seek──▶ Header::read ──▶ clevis_bindings() ──▶ latchkey-proto
//!                                     │                                (JWE → passphrase)
//!                passphrase ──▶ unlock(&hdr, dev, pass, slot, &limits)
//!                                     │
//!                                     ▼
//!                     Unlocked { keyslot, volume_key, dm } ──▶ latchkey-sys (dm-crypt table)
//! ```
//!
//! The crate owns no files: everything is read through a `Read + Seek` and
//! every length or offset taken from the disk is bounded before use, so a
//! malformed header yields an [`Error`], never a panic or a huge allocation.
//!
//! # API
//!
//! * [`Header::read`]`(&mut dev) -> Result<Header, Error>`; [`Header::from_bytes`].
//!   - LUKS2: both binary headers are verified (checksum with `checksum_alg`,
//!     JSON), the valid copy with the higher seqid wins, and
//!     [`Header::health`] reports which copy was used and why the other was not.
//!     Metadata sizes 16 KiB to 4 MiB.
//!   - LUKS1: the binary header and its eight keyslots, plus LUKSMeta.
//! * [`Header::clevis_bindings`]`() -> &[ClevisBinding]`: LUKS2 `clevis` tokens
//!   and LUKS1 LUKSMeta slots (clevis UUID), each with its keyslot and its JWE
//!   parsed by `latchkey-proto` (or why it does not parse). [`Header::tokens`] (with each token's JSON) and
//!   [`Header::luksmeta`] show the rest: tokens of other types, entries of
//!   inactive keyslots. [`luksmeta`] is the one model of the LUKSMeta format,
//!   which writers encode with too.
//! * [`unlock`]`(&hdr, &mut dev, passphrase, slot, &limits) -> Result<Unlocked, Error>`:
//!   PBKDF2 or Argon2i/id (memory, deadline and cancellation in [`Limits`]), keyslot area
//!   decryption (AES XTS/CBC/ECB with plain, plain64 or ESSIV IVs), AF merge,
//!   constant-time digest check. [`Unlocked`] carries the opened keyslot, the
//!   [`VolumeKey`] and the [`DmParams`] for the dm-crypt table;
//!   [`Unlocked::decrypt_data`] reads volume data without dm-crypt, the way
//!   dm-crypt would (IVs in 512-byte units, no `iv_large_sectors`).
//!
//! Not supported: ciphers other than AES, dm-integrity segments, volumes
//! with LUKS2 mandatory requirements (unfinished reencryption), LUKS2 digests
//! other than pbkdf2.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod af;
mod cipher;
mod crc32c;
mod error;
mod hash;
mod header;
mod io;
mod kdf;
mod luks1;
mod luks2;
pub mod luksmeta;
mod model;
mod secret;
mod unlock;

pub use error::Error;
pub use hash::Hash;
pub use header::Header;
pub use luksmeta::{CLEVIS_UUID, LuksMeta};
pub use model::{
    Argon2Variant, BindingSource, ClevisBinding, CopyState, DataSize, Digest, DmFlags, DmParams,
    HeaderCopy, HeaderHealth, Kdf, Keyslot, Priority, Segment, Token, Version,
};
pub use secret::VolumeKey;
pub use unlock::{ARGON2_MAX_MEMORY_KIB, FALLBACK_MEMORY_KIB, Limits, Stop, Unlocked, unlock};
