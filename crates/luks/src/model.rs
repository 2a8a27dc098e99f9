//! The parsed view of a LUKS header that callers see.

use crate::hash::Hash;
use latchkey_proto::jwe::Jwe;

/// Largest volume key accepted, in bytes (dm-crypt's own limit is far below).
pub(crate) const MAX_KEY_SIZE: usize = 512;

/// LUKS on-disk format version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// LUKS1: one binary header, eight keyslots.
    Luks1,
    /// LUKS2: two binary headers with JSON metadata.
    Luks2,
}

impl Version {
    /// `1` or `2`.
    pub fn number(self) -> u16 {
        match self {
            Version::Luks1 => 1,
            Version::Luks2 => 2,
        }
    }
}

/// One of the two LUKS2 binary header copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderCopy {
    /// The copy at offset 0.
    Primary,
    /// The copy at offset `hdr_size`.
    Secondary,
}

/// What was found in one header copy.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CopyState {
    /// Valid, with this sequence id.
    Valid {
        /// The header's `seqid`.
        seqid: u64,
    },
    /// Unusable (bad magic, checksum, size or JSON); the reason says which.
    Damaged {
        /// Why the copy was rejected.
        reason: String,
    },
    /// The format has no such copy (LUKS1 has no secondary header).
    Absent,
}

/// Which header copy the metadata came from, and the state of each.
///
/// cryptsetup would repair a damaged or stale copy from the one used; this
/// reader never writes, so the caller decides whether to warn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderHealth {
    /// The copy the metadata was taken from.
    pub used: HeaderCopy,
    /// State of the primary copy.
    pub primary: CopyState,
    /// State of the secondary copy.
    pub secondary: CopyState,
}

impl HeaderHealth {
    /// True when both copies are valid and carry the same sequence id.
    pub fn is_clean(&self) -> bool {
        match (&self.primary, &self.secondary) {
            (CopyState::Valid { seqid: a }, CopyState::Valid { seqid: b }) => a == b,
            (CopyState::Valid { .. }, CopyState::Absent) => true,
            _ => false,
        }
    }
}

/// Keyslot priority (LUKS2 `priority`; LUKS1 slots are all `Normal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// Tried only when named explicitly.
    Ignore,
    /// Tried after `High` ones.
    Normal,
    /// Tried first.
    High,
}

/// Argon2 flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Argon2Variant {
    /// Argon2i.
    I,
    /// Argon2id.
    Id,
}

/// How a keyslot turns a passphrase into its area key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kdf {
    /// PBKDF2-HMAC.
    Pbkdf2 {
        /// The HMAC hash.
        hash: Hash,
        /// Iteration count.
        iterations: u32,
        /// Salt.
        salt: Vec<u8>,
    },
    /// Argon2 version 0x13.
    Argon2 {
        /// i or id.
        variant: Argon2Variant,
        /// Passes.
        time: u32,
        /// Memory in KiB.
        memory_kib: u32,
        /// Lanes (and threads).
        cpus: u32,
        /// Salt.
        salt: Vec<u8>,
    },
}

/// An active keyslot, with everything needed to try a passphrase on it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Keyslot {
    /// Keyslot number (0–7 for LUKS1, 0–31 for LUKS2).
    pub id: u32,
    /// Volume key size in bytes.
    pub key_size: usize,
    /// Try order.
    pub priority: Priority,
    /// Key derivation.
    pub kdf: Kdf,
    /// Anti-forensic stripes.
    pub af_stripes: u32,
    /// Anti-forensic diffusion hash.
    pub af_hash: Hash,
    /// Byte offset of the key material area on the device.
    pub area_offset: u64,
    /// Byte length of the key material area.
    pub area_size: u64,
    /// Cipher of the key material area, e.g. `aes-xts-plain64`.
    pub area_encryption: String,
    /// Key size of the area cipher in bytes (the KDF output length).
    pub area_key_size: usize,
}

/// Size of the mapped data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataSize {
    /// To the end of the device.
    Dynamic,
    /// Exactly this many bytes.
    Bytes(u64),
}

/// The data segment the volume key opens.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Segment {
    /// Byte offset of the encrypted data.
    pub offset: u64,
    /// Length of the encrypted data.
    pub size: DataSize,
    /// IV offset (`iv_tweak`) in 512-byte sectors.
    pub iv_tweak: u64,
    /// dm-crypt cipher specification, e.g. `aes-xts-plain64`.
    pub encryption: String,
    /// Encryption sector size in bytes (512–4096).
    pub sector_size: u32,
    /// dm-integrity algorithm, when the segment has one.
    pub integrity: Option<String>,
}

/// Activation flags kept in the LUKS2 `config.flags` array.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DmFlags {
    /// `allow-discards`.
    pub allow_discards: bool,
    /// `same-cpu-crypt`.
    pub same_cpu_crypt: bool,
    /// `submit-from-crypt-cpus`.
    pub submit_from_crypt_cpus: bool,
    /// `no-read-workqueue`.
    pub no_read_workqueue: bool,
    /// `no-write-workqueue`.
    pub no_write_workqueue: bool,
}

impl DmFlags {
    /// Sets the flag that `name` names as LUKS2 `config.flags` and cryptsetup's options
    /// spell it (`allow-discards`, `same-cpu-crypt`, ...); any other name (`no-journal`
    /// for integrity, crypttab's own options) does not concern dm-crypt and is ignored.
    pub fn set(&mut self, name: &str) {
        match name {
            "allow-discards" => self.allow_discards = true,
            "same-cpu-crypt" => self.same_cpu_crypt = true,
            "submit-from-crypt-cpus" => self.submit_from_crypt_cpus = true,
            "no-read-workqueue" => self.no_read_workqueue = true,
            "no-write-workqueue" => self.no_write_workqueue = true,
            _ => {}
        }
    }

    /// Every flag set in either.
    pub fn union(self, other: DmFlags) -> DmFlags {
        DmFlags {
            allow_discards: self.allow_discards || other.allow_discards,
            same_cpu_crypt: self.same_cpu_crypt || other.same_cpu_crypt,
            submit_from_crypt_cpus: self.submit_from_crypt_cpus || other.submit_from_crypt_cpus,
            no_read_workqueue: self.no_read_workqueue || other.no_read_workqueue,
            no_write_workqueue: self.no_write_workqueue || other.no_write_workqueue,
        }
    }
}

/// What a dm-crypt table needs besides the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DmParams {
    /// Cipher specification as dm-crypt wants it, e.g. `aes-xts-plain64`.
    pub cipher: String,
    /// Volume key size in bytes.
    pub key_size: usize,
    /// IV offset in 512-byte sectors.
    pub iv_offset: u64,
    /// Data offset in 512-byte sectors.
    pub offset_sectors: u64,
    /// Mapped size.
    pub size: DataSize,
    /// Encryption sector size in bytes. LUKS counts IVs in 512-byte units
    /// whatever this is, so no `iv_large_sectors` is wanted.
    pub sector_size: u32,
    /// Activation flags from the header.
    pub flags: DmFlags,
    /// Volume UUID (for the dm UUID `CRYPT-LUKS2-<uuid without dashes>-<name>`).
    pub uuid: String,
    /// LUKS2 label, if set.
    pub label: Option<String>,
    /// On-disk format version.
    pub version: Version,
}

/// Where a clevis binding is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingSource {
    /// A LUKS2 token of type `clevis`, with this token id.
    Luks2Token(u32),
    /// A LUKSMeta slot on LUKS1 (same number as the keyslot).
    LuksMeta(u32),
}

/// A clevis JWE that protects the passphrase of one keyslot.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClevisBinding {
    /// The keyslot the decrypted passphrase opens.
    pub keyslot: u32,
    /// The LUKS2 token id, if the binding is a token.
    pub token_id: Option<u32>,
    /// The JWE, parsed once (a LUKS2 token's flattened JSON, a LUKSMeta entry's compact
    /// text), or why it does not parse: one unreadable binding leaves the others usable.
    /// [`Jwe::to_compact`] gives the text `clevis luks list` and `jose jwe fmt -c` show.
    pub jwe: Result<Jwe, latchkey_proto::Error>,
    /// Where it came from.
    pub source: BindingSource,
}

/// How logs and reports name a binding: `clevis token 0 (keyslot 1)` or
/// `clevis LUKSMeta slot 2`.
impl core::fmt::Display for ClevisBinding {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.source {
            BindingSource::Luks2Token(t) => {
                write!(f, "clevis token {t} (keyslot {})", self.keyslot)
            }
            BindingSource::LuksMeta(_) => write!(f, "clevis LUKSMeta slot {}", self.keyslot),
        }
    }
}

/// A LUKS2 token of any type.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Token {
    /// Token id.
    pub id: u32,
    /// Its `type`, e.g. `clevis` or `systemd-tpm2`.
    pub kind: String,
    /// The keyslots it names.
    pub keyslots: Vec<u32>,
    /// The whole token object as stored.
    pub json: serde_json::Value,
}

/// A volume key digest (PBKDF2 of the volume key): which keyslots and
/// segments it covers and how it is computed. LUKS1 has one, over all slots.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Digest {
    /// Keyslots whose key this digest checks.
    pub keyslots: Vec<u32>,
    /// Segments the key opens.
    pub segments: Vec<u32>,
    /// PBKDF2 hash.
    pub hash: Hash,
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// PBKDF2 salt.
    pub salt: Vec<u8>,
    /// Expected PBKDF2 output.
    pub value: Vec<u8>,
}
