//! The one error type of the crate. Each message names the TPM (its TCTI), the command
//! and what to do when there is something to do.

use std::time::Duration;

use crate::rc::ResponseCode;

/// What can go wrong between latchkey and a TPM.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `TPM2TOOLS_TCTI` (or the given TCTI) is not one this crate speaks.
    #[error("TCTI {0}")]
    Tcti(String),
    /// No TPM character device exists (neither `/dev/tpmrm0` nor `/dev/tpm0`).
    #[error("no TPM device: {0} not found (is the tpm_tis or tpm_crb driver loaded?)")]
    NoDevice(String),
    /// The TPM device could not be opened.
    #[error("opening {path}: {source}")]
    Open {
        /// The device.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The software TPM's socket could not be reached.
    #[error("connecting to the TPM at {addr}: {source}")]
    Connect {
        /// host:port.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Reading or writing the TPM failed.
    #[error("{tcti}: {source}")]
    Io {
        /// The TCTI, e.g. `device:/dev/tpmrm0`.
        tcti: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The TPM did not answer in time.
    #[error("{tcti}: no answer to {command} within {}ms", .after.as_millis())]
    Timeout {
        /// The TCTI.
        tcti: String,
        /// The command (TPM2_Unseal, ...).
        command: &'static str,
        /// The time allowed.
        after: Duration,
    },
    /// A response does not parse, or is larger than a TPM response can be.
    #[error("malformed {what} response: {reason}")]
    Malformed {
        /// The command whose response it is.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The TPM refused a command.
    #[error("{command}: {rc}")]
    Tpm {
        /// The command.
        command: &'static str,
        /// Its response code.
        rc: ResponseCode,
    },
    /// Unseal failed the PCR policy: the PCRs hold other values than at sealing time.
    #[error(
        "PCR {pcrs} policy does not match: the PCR values differ from those the key was sealed to"
    )]
    PcrMismatch {
        /// `sha256:7`.
        pcrs: String,
    },
    /// The sealed object does not load under this TPM's primary.
    #[error(
        "the sealed key does not belong to this TPM (another TPM made it, or this one was cleared since): {0}"
    )]
    ForeignObject(ResponseCode),
    /// The owner hierarchy is disabled or has a password (clevis needs neither).
    #[error("the TPM's owner hierarchy cannot be used without a password or is disabled: {0}")]
    OwnerHierarchy(ResponseCode),
    /// Dictionary-attack lockout.
    #[error("the TPM is in dictionary-attack lockout: {0}")]
    Lockout(ResponseCode),
    /// The TPM has no room for another object or session (without a resource manager,
    /// other programs' leftovers count).
    #[error("{command}: the TPM has no free slot ({rc}); use /dev/tpmrm0, or flush stale handles")]
    Exhausted {
        /// The command.
        command: &'static str,
        /// TPM_RC_OBJECT_MEMORY, TPM_RC_SESSION_MEMORY, ...
        rc: ResponseCode,
    },
    /// An algorithm or key name this crate does not implement.
    #[error("{field}: unsupported {value:?} (supported: {supported})")]
    Unsupported {
        /// The config or header member.
        field: &'static str,
        /// The value found.
        value: String,
        /// What works.
        supported: &'static str,
    },
    /// A configuration or header value is wrong.
    #[error("{0}")]
    Config(String),
    /// The caller's deadline passed before the TPM step could start or go on.
    #[error("deadline passed before {0}")]
    Deadline(&'static str),
    /// The caller stopped the TPM step between two commands (the key was recovered
    /// another way).
    #[error("not needed any more: stopped before {0}")]
    Stopped(&'static str),
    /// The random generator failed.
    #[error("random numbers: {0}")]
    Random(String),
}

impl Error {
    /// The TPM is not there at all (as opposed to refusing something): worth saying once,
    /// not worth trying again.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Error::NoDevice(_) | Error::Open { .. } | Error::Connect { .. } | Error::Tcti(_)
        )
    }
}

impl Error {
    /// The conversation with the TPM may be out of step (a response still on its way, a
    /// stream cut midway): the next command goes over a fresh connection.
    pub(crate) fn breaks_transport(&self) -> bool {
        matches!(
            self,
            Error::Io { .. } | Error::Timeout { .. } | Error::Malformed { .. }
        )
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;
