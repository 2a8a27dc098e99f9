//! TPM 2.0 response codes (TPM 2.0 Part 2, §6.6): which error, and which handle,
//! session or parameter it is about, with the names tpm2-tools prints.

use std::fmt;

/// A non-zero `responseCode` from a TPM response header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseCode(pub u32);

const FMT1: u32 = 0x080;
const VER1: u32 = 0x100;
const WARN: u32 = 0x900;

/// `TPM_RC_INITIALIZE`: TPM2_Startup has not run.
pub const INITIALIZE: u32 = 0x100;
/// `TPM_RC_FAILURE`: the TPM is in failure mode (a software TPM: not powered on).
pub const FAILURE: u32 = 0x101;
/// `TPM_RC_YIELDED`, `TPM_RC_TESTING`, `TPM_RC_RETRY`: try the same command again.
pub const RETRYABLE: [u32; 3] = [0x908, 0x90A, 0x922];

/// What a format-one code refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// The n-th handle of the command.
    Handle(u8),
    /// The n-th authorization session.
    Session(u8),
    /// The n-th parameter.
    Parameter(u8),
}

impl ResponseCode {
    /// The code with its subject bits removed: one of the `TPM_RC_*` base values.
    pub fn base(self) -> u32 {
        if self.0 & FMT1 != 0 {
            FMT1 | (self.0 & 0x3F)
        } else {
            self.0 & 0xFFF
        }
    }

    /// The handle, session or parameter a format-one code is about.
    pub fn subject(self) -> Option<Subject> {
        if self.0 & FMT1 == 0 {
            return None;
        }
        let n = ((self.0 >> 8) & 0xF) as u8;
        Some(if self.0 & 0x40 != 0 {
            Subject::Parameter(n)
        } else if n & 0x8 != 0 {
            Subject::Session(n & 0x7)
        } else {
            Subject::Handle(n)
        })
    }

    /// `TPM_RC_POLICY_FAIL`: a policy session's digest is not the object's authPolicy.
    pub fn is_policy_fail(self) -> bool {
        self.base() == FMT1 | 0x1D
    }

    /// Worth repeating the command unchanged.
    pub fn is_retryable(self) -> bool {
        RETRYABLE.contains(&self.base())
    }

    /// The `TPM_RC_*` name and its meaning, as tpm2-tools words them.
    pub fn describe(self) -> (&'static str, &'static str) {
        let b = self.base();
        let known = if b & FMT1 != 0 {
            FMT1_CODES.iter().find(|(c, _, _)| *c == b & 0x3F)
        } else if b & WARN == WARN {
            WARN_CODES.iter().find(|(c, _, _)| *c == b & 0x7F)
        } else if b & VER1 != 0 {
            VER1_CODES.iter().find(|(c, _, _)| *c == b & 0x7F)
        } else {
            None
        };
        known.map_or(("TPM_RC_?", "unknown response code"), |(_, n, m)| (*n, *m))
    }
}

impl fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, meaning) = self.describe();
        write!(f, "{name} (0x{:03x}", self.0)?;
        match self.subject() {
            Some(Subject::Handle(n)) => write!(f, ", handle {n}")?,
            Some(Subject::Session(n)) => write!(f, ", session {n}")?,
            Some(Subject::Parameter(n)) => write!(f, ", parameter {n}")?,
            None => {}
        }
        write!(f, "): {meaning}")
    }
}

type Table = [(u32, &'static str, &'static str)];

const FMT1_CODES: &Table = &[
    (
        0x01,
        "TPM_RC_ASYMMETRIC",
        "asymmetric algorithm not supported or not correct",
    ),
    (0x02, "TPM_RC_ATTRIBUTES", "inconsistent attributes"),
    (
        0x03,
        "TPM_RC_HASH",
        "hash algorithm not supported or not appropriate",
    ),
    (
        0x04,
        "TPM_RC_VALUE",
        "value is out of range or is not correct for the context",
    ),
    (
        0x05,
        "TPM_RC_HIERARCHY",
        "hierarchy is not enabled or is not correct for the use",
    ),
    (0x07, "TPM_RC_KEY_SIZE", "key size is not supported"),
    (0x08, "TPM_RC_MGF", "mask generation function not supported"),
    (0x09, "TPM_RC_MODE", "mode of operation not supported"),
    (
        0x0A,
        "TPM_RC_TYPE",
        "the type of the value is not appropriate for the use",
    ),
    (
        0x0B,
        "TPM_RC_HANDLE",
        "the handle is not correct for the use",
    ),
    (0x0C, "TPM_RC_KDF", "unsupported key derivation function"),
    (0x0D, "TPM_RC_RANGE", "value was out of allowed range"),
    (
        0x0E,
        "TPM_RC_AUTH_FAIL",
        "the authorization HMAC check failed and DA counter incremented",
    ),
    (
        0x0F,
        "TPM_RC_NONCE",
        "invalid nonce size or nonce value mismatch",
    ),
    (0x10, "TPM_RC_PP", "authorization requires assertion of PP"),
    (0x12, "TPM_RC_SCHEME", "unsupported or incompatible scheme"),
    (0x15, "TPM_RC_SIZE", "structure is the wrong size"),
    (
        0x16,
        "TPM_RC_SYMMETRIC",
        "unsupported symmetric algorithm or key size",
    ),
    (0x17, "TPM_RC_TAG", "incorrect structure tag"),
    (0x18, "TPM_RC_SELECTOR", "union selector is incorrect"),
    (
        0x1A,
        "TPM_RC_INSUFFICIENT",
        "the TPM was unable to unmarshal a value",
    ),
    (0x1B, "TPM_RC_SIGNATURE", "the signature is not valid"),
    (
        0x1C,
        "TPM_RC_KEY",
        "key fields are not compatible with the selected use",
    ),
    (0x1D, "TPM_RC_POLICY_FAIL", "a policy check failed"),
    (0x1F, "TPM_RC_INTEGRITY", "integrity check failed"),
    (0x20, "TPM_RC_TICKET", "invalid ticket"),
    (
        0x21,
        "TPM_RC_RESERVED_BITS",
        "reserved bits not set to zero as required",
    ),
    (
        0x22,
        "TPM_RC_BAD_AUTH",
        "authorization failure without DA implications",
    ),
    (0x23, "TPM_RC_EXPIRED", "the policy has expired"),
    (
        0x24,
        "TPM_RC_POLICY_CC",
        "the commandCode in the policy is not the commandCode of the command",
    ),
    (
        0x25,
        "TPM_RC_BINDING",
        "public and sensitive portions of an object are not cryptographically bound",
    ),
    (0x26, "TPM_RC_CURVE", "curve not supported"),
    (
        0x27,
        "TPM_RC_ECC_POINT",
        "point is not on the required curve",
    ),
];

const VER1_CODES: &Table = &[
    (
        0x00,
        "TPM_RC_INITIALIZE",
        "TPM not initialized by TPM2_Startup or already initialized",
    ),
    (
        0x01,
        "TPM_RC_FAILURE",
        "commands not being accepted because of a TPM failure",
    ),
    (0x03, "TPM_RC_SEQUENCE", "improper use of a sequence handle"),
    (0x0B, "TPM_RC_PRIVATE", "not currently used"),
    (0x19, "TPM_RC_HMAC", "not currently used"),
    (0x20, "TPM_RC_DISABLED", "the command is disabled"),
    (
        0x21,
        "TPM_RC_EXCLUSIVE",
        "command failed because audit sequence required exclusivity",
    ),
    (
        0x24,
        "TPM_RC_AUTH_TYPE",
        "authorization handle is not correct for command",
    ),
    (
        0x25,
        "TPM_RC_AUTH_MISSING",
        "command requires an authorization session for handle and it is not present",
    ),
    (
        0x26,
        "TPM_RC_POLICY",
        "policy failure in math operation or an invalid authPolicy value",
    ),
    (0x27, "TPM_RC_PCR", "PCR check fail"),
    (0x28, "TPM_RC_PCR_CHANGED", "PCR have changed since checked"),
    (0x2D, "TPM_RC_UPGRADE", "the TPM is in field upgrade mode"),
    (
        0x2E,
        "TPM_RC_TOO_MANY_CONTEXTS",
        "context ID counter is at maximum",
    ),
    (
        0x2F,
        "TPM_RC_AUTH_UNAVAILABLE",
        "authValue or authPolicy is not available for selected entity",
    ),
    (
        0x30,
        "TPM_RC_REBOOT",
        "a _TPM_Init and Startup(CLEAR) is required before the TPM can resume operation",
    ),
    (
        0x31,
        "TPM_RC_UNBALANCED",
        "the protection algorithms (hash and symmetric) are not reasonably balanced",
    ),
    (
        0x42,
        "TPM_RC_COMMAND_SIZE",
        "command commandSize value is inconsistent with contents of the command buffer",
    ),
    (0x43, "TPM_RC_COMMAND_CODE", "command code not supported"),
    (
        0x44,
        "TPM_RC_AUTHSIZE",
        "the value of authorizationSize is out of range",
    ),
    (
        0x45,
        "TPM_RC_AUTH_CONTEXT",
        "use of an authorization session with a context command",
    ),
    (0x50, "TPM_RC_BAD_CONTEXT", "a context load failed"),
    (
        0x51,
        "TPM_RC_CPHASH",
        "cpHash value already set or not correct for use",
    ),
    (
        0x52,
        "TPM_RC_PARENT",
        "handle for parent is not a valid parent",
    ),
    (0x53, "TPM_RC_NEEDS_TEST", "some function needs testing"),
    (
        0x54,
        "TPM_RC_NO_RESULT",
        "returned when an internal function cannot process a request",
    ),
    (
        0x55,
        "TPM_RC_SENSITIVE",
        "the sensitive area did not unmarshal correctly after decryption",
    ),
];

const WARN_CODES: &Table = &[
    (
        0x01,
        "TPM_RC_CONTEXT_GAP",
        "gap for context ID is too large",
    ),
    (
        0x02,
        "TPM_RC_OBJECT_MEMORY",
        "out of memory for object contexts",
    ),
    (
        0x03,
        "TPM_RC_SESSION_MEMORY",
        "out of memory for session contexts",
    ),
    (
        0x04,
        "TPM_RC_MEMORY",
        "out of shared object/session memory or need space for internal operations",
    ),
    (0x05, "TPM_RC_SESSION_HANDLES", "out of session handles"),
    (0x06, "TPM_RC_OBJECT_HANDLES", "out of object handles"),
    (0x07, "TPM_RC_LOCALITY", "bad locality"),
    (
        0x08,
        "TPM_RC_YIELDED",
        "the TPM has suspended operation on the command",
    ),
    (0x09, "TPM_RC_CANCELED", "the command was canceled"),
    (0x0A, "TPM_RC_TESTING", "TPM is performing self-tests"),
    (
        0x20,
        "TPM_RC_NV_RATE",
        "the TPM is rate-limiting accesses to prevent wearout of NV",
    ),
    (
        0x21,
        "TPM_RC_LOCKOUT",
        "authorizations for objects subject to DA protection are not allowed at this time",
    ),
    (
        0x22,
        "TPM_RC_RETRY",
        "the TPM was not able to start the command",
    ),
    (
        0x23,
        "TPM_RC_NV_UNAVAILABLE",
        "the command may require writing of NV and NV is not current accessible",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_codes_tpm2_tools_reports() {
        // Esys_Unseal(0x99D) - tpm:session(1):a policy check failed
        let rc = ResponseCode(0x99D);
        assert!(rc.is_policy_fail());
        assert_eq!(rc.subject(), Some(Subject::Session(1)));
        assert_eq!(
            rc.to_string(),
            "TPM_RC_POLICY_FAIL (0x99d, session 1): a policy check failed"
        );
        // Esys_CreatePrimary(0x2D2) - tpm:parameter(2):unsupported or incompatible scheme
        let rc = ResponseCode(0x2D2);
        assert_eq!(rc.subject(), Some(Subject::Parameter(2)));
        assert_eq!(rc.describe().0, "TPM_RC_SCHEME");
        // Esys_Create(0x18A) - tpm:handle(1):the type of the value is not appropriate
        assert_eq!(ResponseCode(0x18A).subject(), Some(Subject::Handle(1)));
        assert_eq!(ResponseCode(0x18A).describe().0, "TPM_RC_TYPE");
        assert_eq!(ResponseCode(0x903).describe().0, "TPM_RC_SESSION_MEMORY");
        assert_eq!(ResponseCode(0x903).subject(), None);
        assert_eq!(ResponseCode(0x100).describe().0, "TPM_RC_INITIALIZE");
        assert!(ResponseCode(0x922).is_retryable());
        assert!(!ResponseCode(0x921).is_retryable());
        assert_eq!(ResponseCode(0x1E).describe().0, "TPM_RC_?");
    }
}
