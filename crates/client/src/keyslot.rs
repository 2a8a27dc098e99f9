//! A clevis binding's whole use: recover its passphrase, then open the keyslot it
//! names. The initrd agent's race and `latchkey luks check` both do exactly this.

use std::fmt;
use std::io::{Read, Seek};
use std::sync::Arc;

use latchkey_luks::{Header, Limits, Unlocked};
use latchkey_proto::jwe::Jwe;
use latchkey_proto::pin::Unseal;

use crate::time::Deadline;
use crate::{Error, NetworkGate, Options, decrypt_until};

/// How the passphrase is recovered: the arguments of [`decrypt_until`].
pub struct Recover<'a> {
    /// Per-request options.
    pub opts: &'a Options,
    /// The TPM steps of tpm2 pins.
    pub tpm: Option<Arc<dyn Unseal>>,
    /// Passed by each Tang request before it connects.
    pub network: Option<NetworkGate>,
    /// When recovery gives up.
    pub deadline: Deadline,
}

/// Why [`open_keyslot`] failed.
#[derive(Debug)]
pub enum KeyslotError {
    /// The passphrase could not be recovered.
    Recover(Error),
    /// The device holding the keyslot could not be opened.
    Device(std::io::Error),
    /// The recovered passphrase does not open the keyslot.
    Keyslot {
        /// The keyslot the binding names.
        slot: u32,
        /// Why it did not open.
        source: latchkey_luks::Error,
    },
}

impl fmt::Display for KeyslotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyslotError::Recover(e) => write!(f, "{e}"),
            KeyslotError::Device(e) => write!(f, "{e}"),
            KeyslotError::Keyslot { slot, source } => write!(f, "keyslot {slot}: {source}"),
        }
    }
}

/// Each message already carries its cause's text, so no `source` chain repeats it.
impl std::error::Error for KeyslotError {}

/// Recovers `jwe`'s passphrase as `how` says, calls `recovered` (the moment a boot log
/// marks), then opens `keyslot` of `header` with it, reading the keyslot from the device
/// `device` opens, within `limits`.
pub fn open_keyslot<R: Read + Seek>(
    jwe: &Jwe,
    keyslot: u32,
    header: &Header,
    how: Recover<'_>,
    limits: &Limits,
    device: impl FnOnce() -> std::io::Result<R>,
    recovered: impl FnOnce(),
) -> Result<Unlocked, KeyslotError> {
    let pass = decrypt_until(jwe, how.opts, how.tpm, how.network, how.deadline)
        .map_err(KeyslotError::Recover)?;
    recovered();
    let mut dev = device().map_err(KeyslotError::Device)?;
    latchkey_luks::unlock(header, &mut dev, pass.expose(), Some(keyslot), limits).map_err(
        |source| KeyslotError::Keyslot {
            slot: keyslot,
            source,
        },
    )
}
