//! The one error type of this crate.

use std::io;

/// Everything that can go wrong while reading a LUKS header or opening a keyslot.
///
/// Messages name the keyslot, token or JSON field concerned. A rejected
/// passphrase is a single opaque variant: it says which slots were tried and
/// nothing about why, so that callers cannot build an oracle from it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading the device failed (other than by ending early).
    #[error("reading {what}: {source}")]
    Io {
        /// The structure being read.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The device ends before a structure its header points to.
    #[error("device too short: {what} lies beyond its end")]
    Truncated {
        /// The structure that could not be read in full.
        what: &'static str,
    },
    /// Neither offset 0 nor any LUKS2 secondary-header offset holds a LUKS magic.
    #[error(
        "not a LUKS device (no LUKS magic at offset 0 or at any LUKS2 secondary header offset)"
    )]
    NotLuks,
    /// The header declares a version other than 1 or 2.
    #[error("unsupported LUKS version {0}")]
    UnsupportedVersion(u16),
    /// Both LUKS2 binary headers are unusable; each reason is given.
    #[error("no valid LUKS2 header: primary: {primary}; secondary: {secondary}")]
    NoValidHeader {
        /// Why the primary copy (offset 0) was rejected.
        primary: String,
        /// Why the secondary copy was rejected.
        secondary: String,
    },
    /// The LUKS2 JSON area is not valid JSON.
    #[error("LUKS2 JSON metadata: {0}")]
    Json(String),
    /// A LUKS1 field or LUKS2 JSON field is missing, has the wrong type or an
    /// out-of-range value.
    #[error("LUKS metadata field {field}: {problem}")]
    Metadata {
        /// Path of the field, e.g. `keyslots.1.area.offset`.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A hash named in the header is not implemented here.
    #[error("unsupported hash {0:?}")]
    UnsupportedHash(String),
    /// A cipher specification named in the header is not implemented here.
    #[error("unsupported cipher {0:?}")]
    UnsupportedCipher(String),
    /// A keyslot uses a key derivation function not implemented here.
    #[error("keyslot {slot}: unsupported key derivation {kdf:?}")]
    UnsupportedKdf {
        /// Keyslot number.
        slot: u32,
        /// The `kdf.type` found.
        kdf: String,
    },
    /// The volume needs something this reader cannot provide (LUKS2
    /// `config.requirements.mandatory`, an integrity segment, …).
    #[error("unsupported volume feature: {0}")]
    UnsupportedFeature(String),
    /// A clevis token or LUKSMeta entry is malformed.
    #[error("clevis binding in {source_name}: {problem}")]
    ClevisBinding {
        /// `token N` or `LUKSMeta slot N`.
        source_name: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The LUKSMeta header or one of its slots fails its CRC32C.
    #[error("LUKSMeta {what}: CRC32C mismatch")]
    LuksMetaChecksum {
        /// `header` or `slot N`.
        what: String,
    },
    /// Argon2 would need more memory than the caller allows.
    #[error(
        "keyslot {slot}: Argon2 needs {needed_kib} KiB of memory but only {limit_kib} KiB may be used; \
         free memory or unlock with another keyslot"
    )]
    MemoryLimit {
        /// Keyslot number.
        slot: u32,
        /// Memory cost from the header, KiB.
        needed_kib: u64,
        /// The caller's limit, KiB.
        limit_kib: u64,
    },
    /// The derivation was abandoned: its deadline passed, or the caller
    /// cancelled it ([`crate::Limits`]).
    #[error("keyslot {slot}: key derivation {reason}")]
    KdfStopped {
        /// Keyslot number.
        slot: u32,
        /// Deadline or cancellation.
        reason: crate::Stop,
    },
    /// Argon2 cannot be interrupted, so one that would not finish before the
    /// deadline is not started.
    #[error(
        "keyslot {slot}: Argon2 with {passes} passes over {memory_kib} KiB would take about {:.1}s, \
         more than the {:.1}s left before the deadline",
        estimate.as_secs_f64(),
        left.as_secs_f64()
    )]
    KdfTooSlow {
        /// Keyslot number.
        slot: u32,
        /// Time cost from the header.
        passes: u32,
        /// Memory cost from the header, KiB.
        memory_kib: u32,
        /// What this machine would need, from a measurement of its Argon2 speed.
        estimate: std::time::Duration,
        /// Time left before the deadline.
        left: std::time::Duration,
    },
    /// Argon2 or PBKDF2 refused its parameters.
    #[error("keyslot {slot}: key derivation failed: {reason}")]
    Kdf {
        /// Keyslot number.
        slot: u32,
        /// The library's reason.
        reason: String,
    },
    /// The requested keyslot does not exist or is not active.
    #[error("keyslot {0} is not active")]
    NoSuchKeyslot(u32),
    /// The header has no active keyslot that may be tried.
    #[error("no usable keyslot in this header")]
    NoUsableKeyslot,
    /// No keyslot accepted the passphrase.
    #[error("no key available with this passphrase (tried keyslots {tried:?})")]
    PassphraseRejected {
        /// The keyslots tried, in order.
        tried: Vec<u32>,
    },
}

impl Error {
    pub(crate) fn meta(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Error::Metadata {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// Map an I/O error, turning an early end of file into [`Error::Truncated`].
    pub(crate) fn io(what: &'static str, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::UnexpectedEof {
            Error::Truncated { what }
        } else {
            Error::Io { what, source }
        }
    }
}
