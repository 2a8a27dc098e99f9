//! base64url without padding (RFC 4648 §5), the encoding of every JOSE member.
//!
//! Decoding is strict: no `=`, no whitespace, no non-zero trailing bits. That makes
//! decode→encode the identity, which the LUKS2 token ⇄ compact conversion relies on.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::secret::Secret;

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

/// Like [`decode_named`], for private members: decoded straight into a wiped buffer, which
/// is wiped on the error paths too.
pub(crate) fn decode_secret(text: &str, what: &str) -> Result<Secret> {
    let mut buf = Zeroizing::new(vec![0u8; base64::decoded_len_estimate(text.len())]);
    let n = URL_SAFE_NO_PAD
        .decode_slice(text, &mut buf[..])
        .map_err(|_| Error::Base64 { what: what.into() })?;
    buf.truncate(n);
    // Moved, not copied, out of the Zeroizing (which is left holding an empty Vec).
    Ok(Secret::new(core::mem::take(&mut *buf)))
}

/// Base64url of `bytes` written into `out`, which must be exactly [`encoded_len`] long.
pub(crate) fn encode_into(bytes: &[u8], out: &mut [u8]) {
    let n = URL_SAFE_NO_PAD
        .encode_slice(bytes, out)
        .expect("out is encoded_len long");
    debug_assert_eq!(n, out.len());
}

/// Length of the base64url (unpadded) encoding of `n` bytes.
pub(crate) fn encoded_len(n: usize) -> usize {
    base64::encoded_len(n, false).expect("a length that fits in memory")
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

    #[test]
    fn secret_forms_agree_with_the_plain_ones() {
        for len in 0..70 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37) as u8).collect();
            let text = encode(&bytes);
            assert_eq!(encoded_len(len), text.len());
            let mut out = vec![0; encoded_len(len)];
            encode_into(&bytes, &mut out);
            assert_eq!(out, text.as_bytes());
            assert_eq!(decode_secret(&text, "x").unwrap().expose(), &bytes[..]);
        }
        assert!(decode_secret("-_8=", "x").is_err());
        assert!(decode_secret("A", "x").is_err());
    }
}
