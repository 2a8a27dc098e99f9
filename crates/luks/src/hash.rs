//! The hashes LUKS names by string: header checksums, PBKDF2, AF diffusion, ESSIV.

use crate::Error;
use sha2::Digest;

/// A hash algorithm as named in a LUKS header (`sha256`, `sha1`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Hash {
    /// SHA-1.
    Sha1,
    /// SHA-224.
    Sha224,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
    /// RIPEMD-160.
    Ripemd160,
}

impl Hash {
    /// Parse the spelling cryptsetup writes (lower case; upper case is accepted too).
    pub fn from_name(name: &str) -> Result<Hash, Error> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "sha1" => Hash::Sha1,
            "sha224" => Hash::Sha224,
            "sha256" => Hash::Sha256,
            "sha384" => Hash::Sha384,
            "sha512" => Hash::Sha512,
            "ripemd160" => Hash::Ripemd160,
            _ => return Err(Error::UnsupportedHash(name.to_owned())),
        })
    }

    /// The name as cryptsetup writes it.
    pub fn name(self) -> &'static str {
        match self {
            Hash::Sha1 => "sha1",
            Hash::Sha224 => "sha224",
            Hash::Sha256 => "sha256",
            Hash::Sha384 => "sha384",
            Hash::Sha512 => "sha512",
            Hash::Ripemd160 => "ripemd160",
        }
    }

    /// Digest length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Hash::Sha1 | Hash::Ripemd160 => 20,
            Hash::Sha224 => 28,
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }

    /// Hash the concatenation of `parts` into `out` (which must be `output_len` long).
    pub(crate) fn digest_into(self, parts: &[&[u8]], out: &mut [u8]) {
        fn run<D: Digest>(parts: &[&[u8]], out: &mut [u8]) {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            out.copy_from_slice(&d.finalize());
        }
        match self {
            Hash::Sha1 => run::<sha1::Sha1>(parts, out),
            Hash::Sha224 => run::<sha2::Sha224>(parts, out),
            Hash::Sha256 => run::<sha2::Sha256>(parts, out),
            Hash::Sha384 => run::<sha2::Sha384>(parts, out),
            Hash::Sha512 => run::<sha2::Sha512>(parts, out),
            Hash::Ripemd160 => run::<ripemd::Ripemd160>(parts, out),
        }
    }

    /// PBKDF2-HMAC with this hash, filling all of `out`.
    pub(crate) fn pbkdf2(self, password: &[u8], salt: &[u8], rounds: u32, out: &mut [u8]) {
        use pbkdf2::pbkdf2_hmac;
        match self {
            Hash::Sha1 => pbkdf2_hmac::<sha1::Sha1>(password, salt, rounds, out),
            Hash::Sha224 => pbkdf2_hmac::<sha2::Sha224>(password, salt, rounds, out),
            Hash::Sha256 => pbkdf2_hmac::<sha2::Sha256>(password, salt, rounds, out),
            Hash::Sha384 => pbkdf2_hmac::<sha2::Sha384>(password, salt, rounds, out),
            Hash::Sha512 => pbkdf2_hmac::<sha2::Sha512>(password, salt, rounds, out),
            Hash::Ripemd160 => pbkdf2_hmac::<ripemd::Ripemd160>(password, salt, rounds, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbkdf2_sha256_rfc7914_vector() {
        // RFC 7914 section 11, first PBKDF2-HMAC-SHA256 vector.
        let mut out = [0u8; 64];
        Hash::Sha256.pbkdf2(b"passwd", b"salt", 1, &mut out);
        assert_eq!(
            &out[..16],
            &[
                0x55, 0xac, 0x04, 0x6e, 0x56, 0xe3, 0x08, 0x9f, 0xec, 0x16, 0x91, 0xc2, 0x25, 0x44,
                0xb6, 0x05
            ]
        );
    }

    #[test]
    fn names_round_trip() {
        for h in [
            Hash::Sha1,
            Hash::Sha224,
            Hash::Sha256,
            Hash::Sha384,
            Hash::Sha512,
            Hash::Ripemd160,
        ] {
            assert_eq!(Hash::from_name(h.name()).unwrap(), h);
            let mut out = vec![0; h.output_len()];
            h.digest_into(&[b"x"], &mut out);
        }
        assert!(Hash::from_name("md5").is_err());
    }
}
