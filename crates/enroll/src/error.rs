//! The one error type of this crate. Every message names the device and, where
//! it applies, the keyslot, token or server, and what to do next.

use std::io;
use std::path::PathBuf;

/// What went wrong while changing a header. A variant raised before the first
/// write means the header is untouched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The device could not be opened for writing.
    #[error("{}: cannot open for writing: {source}", device.display())]
    Open {
        /// The device.
        device: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The device is read-only.
    #[error("{} is read-only; header changes need write access", device.display())]
    ReadOnly {
        /// The device.
        device: PathBuf,
    },
    /// The device holds no LUKS header, or one that cannot be read.
    #[error("{} is not a supported LUKS device: {reason}", device.display())]
    NotLuks {
        /// The device.
        device: PathBuf,
        /// What the reader found.
        reason: String,
    },
    /// No keyslot accepted the passphrase.
    #[error("{}: no keyslot opens with this passphrase", device.display())]
    WrongPassphrase {
        /// The device.
        device: PathBuf,
    },
    /// The keyslot number is out of range for the format.
    #[error("{}: keyslot {slot} does not exist (LUKS{version} has keyslots 0-{last})", device.display())]
    NoSuchKeyslot {
        /// The device.
        device: PathBuf,
        /// The keyslot asked for.
        slot: u32,
        /// 1 or 2.
        version: u16,
        /// The highest keyslot number.
        last: u32,
    },
    /// The keyslot asked for is already in use.
    #[error("{}: keyslot {slot} is already in use; pick a free one or leave -s out", device.display())]
    KeyslotInUse {
        /// The device.
        device: PathBuf,
        /// The keyslot.
        slot: u32,
    },
    /// The LUKS2 token id asked for is already in use.
    #[error("{}: token {token} is already in use; pick a free one or leave -t out", device.display())]
    TokenInUse {
        /// The device.
        device: PathBuf,
        /// The token id.
        token: u32,
    },
    /// Every keyslot is in use.
    #[error("{}: no free keyslot ({what}); remove one with `latchkey luks unbind` or `cryptsetup luksKillSlot`", device.display())]
    NoFreeKeyslot {
        /// The device.
        device: PathBuf,
        /// What the free keyslot was for.
        what: String,
    },
    /// The keyslot has no clevis binding.
    #[error("{}: keyslot {slot} has no clevis binding", device.display())]
    NotBound {
        /// The device.
        device: PathBuf,
        /// The keyslot.
        slot: u32,
    },
    /// Removing the keyslot would leave the volume with none.
    #[error("{}: keyslot {slot} is the last keyslot: the volume could not be opened any more; pass -f to remove it anyway", device.display())]
    LastKeyslot {
        /// The device.
        device: PathBuf,
        /// The keyslot.
        slot: u32,
    },
    /// The LUKS2 token given for the existing passphrase (`-e`) cannot give one.
    #[error("{}: token {token} gives no existing passphrase: {reason}", device.display())]
    ExistingToken {
        /// The device.
        device: PathBuf,
        /// The token id.
        token: u32,
        /// Why.
        reason: String,
    },
    /// The kernel keyring has no key the `-e` token names, or it cannot be read.
    #[error("{}: token {token}: {source}; add it in this session with `keyctl padd user DESCRIPTION @s < KEYFILE`", device.display())]
    Keyring {
        /// The device.
        device: PathBuf,
        /// The token id.
        token: u32,
        /// The keyring's error, with the key's description.
        #[source]
        source: latchkey_sys::Error,
    },
    /// LUKS1 without LUKSMeta, and the caller did not allow initializing it.
    #[error("{}: LUKSMeta is not initialized; pass -f (or -y) to initialize it", device.display())]
    NoLuksMeta {
        /// The device.
        device: PathBuf,
    },
    /// The header has no room for the new metadata.
    #[error("{}: {what}", device.display())]
    NoRoom {
        /// The device.
        device: PathBuf,
        /// Which area is full and by how much.
        what: String,
    },
    /// A LUKS2 token id asked for on LUKS1.
    #[error("{} is a LUKS1 device; -t is only supported in LUKS2", device.display())]
    TokenOnLuks1 {
        /// The device.
        device: PathBuf,
    },
    /// The pin could not encrypt the new passphrase (Tang unreachable, bad
    /// config, untrusted advertisement, …).
    #[error("encrypting with pin {pin}: {reason}")]
    Encrypt {
        /// The pin.
        pin: String,
        /// Why.
        reason: String,
    },
    /// The new JWE did not decrypt to the new passphrase.
    #[error("{}: the new binding does not give back its passphrase: {reason}; nothing was changed", device.display())]
    Verify {
        /// The device.
        device: PathBuf,
        /// Why.
        reason: String,
    },
    /// An interrupted operation cannot be finished or undone now.
    #[error("{}: {what}: {reason}", device.display())]
    Interrupted {
        /// The device.
        device: PathBuf,
        /// Which operation, where.
        what: String,
        /// What is missing.
        reason: String,
    },
    /// A binding clevis would not have written (and this crate does not change).
    #[error("{}: {what}", device.display())]
    Unsupported {
        /// The device.
        device: PathBuf,
        /// What, and what to do instead.
        what: String,
    },
    /// libcryptsetup refused an operation.
    #[error("{}: {what}: {source}", device.display())]
    Cryptsetup {
        /// The device.
        device: PathBuf,
        /// The operation, with keyslot or token.
        what: String,
        /// The errno libcryptsetup returned, or its message.
        #[source]
        source: io::Error,
    },
    /// Reading or writing LUKSMeta failed.
    #[error("{}: {what}: {source}", device.display())]
    Io {
        /// The device.
        device: PathBuf,
        /// The operation.
        what: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}
