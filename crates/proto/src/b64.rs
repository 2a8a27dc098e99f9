//! base64url without padding (RFC 4648 §5), the encoding of every JOSE member.
//!
//! Decoding is strict: no `=`, no whitespace, no non-zero trailing bits. That makes
//! decode→encode the identity, which the LUKS2 token ⇄ compact conversion relies on.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{Error, Result};

/// Encodes bytes as base64url without padding.
pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding.
pub fn decode(text: &str) -> Result<Vec<u8>> {
    decode_named(text, "value")
}

/// Like [`decode`], with the name of the value for the error message.
pub(crate) fn decode_named(text: &str, what: &str) -> Result<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| Error::Base64 { what: what.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        assert_eq!(encode(b"\xfb\xff"), "-_8");
        assert_eq!(decode("-_8").unwrap(), b"\xfb\xff");
        assert_eq!(decode("").unwrap(), b"");
        assert!(decode("-_8=").is_err(), "padding");
        assert!(decode("-_9").is_err(), "non-zero trailing bits");
        assert!(decode("+/8").is_err(), "standard alphabet");
        assert!(decode("A").is_err(), "impossible length");
    }
}
