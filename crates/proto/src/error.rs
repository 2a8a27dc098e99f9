//! The one error type of the crate.
//!
//! Messages name the object and the field that is wrong (`JWE has no clevis.tang.url`), the
//! URL that failed, or the pin that is unknown. Decryption failures are deliberately opaque.

/// Everything that can go wrong in latchkey-proto.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A base64url value did not decode (padding, a bad character or stray trailing bits).
    #[error("{what} is not valid base64url")]
    Base64 {
        /// Which value, e.g. `JWE iv`.
        what: String,
    },
    /// A JSON document did not parse.
    #[error("{what} is not valid JSON: {reason}")]
    Json {
        /// Which document, e.g. `JWE protected header`.
        what: String,
        /// The parser's message.
        reason: String,
    },
    /// The input is not a JWE in any form clevis writes.
    #[error(
        "not a JWE: expected a compact JWE (five base64url parts separated by dots, as clevis \
         encrypt writes) or the JSON of a LUKS2 clevis token (as cryptsetup token export \
         writes), found {found}"
    )]
    NotJwe {
        /// What the input looks like (described, never quoted).
        found: String,
    },
    /// A required member is absent.
    #[error("{what} has no {field}")]
    Missing {
        /// The object, e.g. `JWE`.
        what: String,
        /// The dotted path of the member, e.g. `clevis.tang.url`.
        field: String,
    },
    /// A member is present but has the wrong type, size or value.
    #[error("{what} has an invalid {field}: {reason}")]
    Invalid {
        /// The object, e.g. `JWK`.
        what: String,
        /// The dotted path of the member.
        field: String,
        /// Why it is rejected.
        reason: String,
    },
    /// An algorithm, curve or key type this implementation does not speak.
    #[error("{what}: unsupported {field} {value:?}")]
    Unsupported {
        /// The object, e.g. `JWE`.
        what: String,
        /// The member holding it, e.g. `enc`.
        field: String,
        /// The value found.
        value: String,
    },
    /// The clevis pin is not one of tang, sss, tpm2, null.
    #[error("unknown clevis pin {0:?} (supported: tang, sss, tpm2, null)")]
    UnknownPin(String),
    /// A point is not on its curve, has coordinates out of range, is the identity, or belongs
    /// to another curve than expected.
    #[error("invalid EC point: {0}")]
    InvalidPoint(String),
    /// A private scalar is zero, too large or of the wrong width.
    #[error("invalid EC private key: {0}")]
    InvalidScalar(String),
    /// The key does not allow the operation (`key_ops`/`use`), or lacks the private part.
    #[error("key cannot be used to {0}")]
    KeyUse(String),
    /// A JWS signature did not verify, or a signing key signed nothing.
    #[error("advertisement signature check failed: {0}")]
    BadSignature(String),
    /// The operator did not trust the advertisement, or `thp` names no signing key of it.
    #[error("advertisement from {url} not trusted: {reason}")]
    Untrusted {
        /// The Tang URL.
        url: String,
        /// What did not match.
        reason: String,
    },
    /// The key named by a JWE `kid` is not in the advertisement it carries.
    #[error("JWE kid {0} matches no key in clevis.tang.adv")]
    KidNotInAdvertisement(String),
    /// Authenticated decryption failed. Deliberately says nothing more.
    #[error("decryption failed")]
    DecryptFailed,
    /// A Shamir share has the wrong size (clevis requires exactly 2·len(p) bytes).
    #[error("sss share is {got} bytes, expected {expected}")]
    ShareLength {
        /// Bytes found.
        got: usize,
        /// 2·len(p).
        expected: usize,
    },
    /// Shamir combination failed (duplicate x, or a value not below p).
    #[error("sss shares cannot be combined: {0}")]
    Combine(String),
    /// An sss node can no longer reach its threshold; `reasons` says why each child failed.
    #[error("sss threshold {t}, got {got} of {total} shares{}", join_reasons(.reasons))]
    Threshold {
        /// Shares needed.
        t: usize,
        /// Shares recovered.
        got: usize,
        /// Shares in the JWE.
        total: usize,
        /// One line per failed child.
        reasons: Vec<String>,
    },
    /// A Tang server could not be reached or answered something unusable.
    #[error("{url}: {reason}")]
    Server {
        /// The JWE's `clevis.tang.url`.
        url: String,
        /// Transport error or what is wrong with the reply.
        reason: String,
    },
    /// The TPM step of a tpm2 binding failed (no TPM, a PCR policy that does not match,
    /// a sealed key from another TPM, ...).
    #[error("{binding}: {reason}")]
    Tpm {
        /// The binding, e.g. `tpm2 (sha256:7)`.
        binding: String,
        /// What the TPM side reported.
        reason: String,
    },
    /// Fetching an advertisement or reading a file through [`crate::pin::EncryptIo`] failed.
    #[error("{what}: {reason}")]
    Io {
        /// URL or path.
        what: String,
        /// The caller's message.
        reason: String,
    },
    /// A pin's configuration is wrong.
    #[error("{pin} pin config: {reason}")]
    Config {
        /// The pin name.
        pin: String,
        /// What is wrong.
        reason: String,
    },
    /// A null pin made with `{"fail":true}`: it never decrypts.
    #[error("null pin has no key (made with \"fail\": true)")]
    NullFail,
}

fn join_reasons(reasons: &[String]) -> String {
    if reasons.is_empty() {
        String::new()
    } else {
        format!(" ({})", reasons.join("; "))
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;

pub(crate) fn missing(what: &str, field: &str) -> Error {
    Error::Missing {
        what: what.into(),
        field: field.into(),
    }
}

pub(crate) fn invalid(what: &str, field: &str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        what: what.into(),
        field: field.into(),
        reason: reason.into(),
    }
}

pub(crate) fn unsupported(what: &str, field: &str, value: &str) -> Error {
    Error::Unsupported {
        what: what.into(),
        field: field.into(),
        value: value.into(),
    }
}
