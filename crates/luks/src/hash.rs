//! The hashes LUKS names by string: header checksums, PBKDF2, AF diffusion, ESSIV.
//!
//! Most of what passes through here is key material (passphrases, AF stripes, volume
//! keys), so every hash state wipes itself on drop (the crates' `zeroize` features,
//! asserted below at compile time) and every output lands in a buffer that is wiped.

use crate::Error;
use hmac::Hmac;
use hmac::digest::block_api::EagerHash;
use hmac::digest::{FixedOutput, KeyInit, Output, Update};
use sha2::Digest;
use zeroize::{Zeroize as _, Zeroizing};

// The hash states wipe themselves on drop only with the crates' `zeroize` features; this
// stops the build if a dependency change turns one off.
const _: () = {
    fn wipes_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    let _ = wipes_on_drop::<sha1::Sha1>;
    let _ = wipes_on_drop::<sha2::Sha224>;
    let _ = wipes_on_drop::<sha2::Sha256>;
    let _ = wipes_on_drop::<sha2::Sha384>;
    let _ = wipes_on_drop::<sha2::Sha512>;
    let _ = wipes_on_drop::<ripemd::Ripemd160>;
};

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
                Digest::update(&mut d, p);
            }
            let mut full = Zeroizing::new([0u8; MAX_OUTPUT]);
            Digest::finalize_into(d, output_slot::<D>(&mut full));
            out.copy_from_slice(&full[..out.len()]);
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

    /// PBKDF2-HMAC with this hash, filling all of `out`. `stopped` is asked
    /// every [`PBKDF2_CHECK_EVERY`] rounds; once it says yes the derivation
    /// ends with `Err(Stopped)` and `out` holds nothing usable.
    pub(crate) fn pbkdf2(
        self,
        password: &[u8],
        salt: &[u8],
        rounds: u32,
        out: &mut [u8],
        stopped: &dyn Fn() -> bool,
    ) -> Result<(), Stopped> {
        match self {
            Hash::Sha1 => pbkdf2_hmac::<sha1::Sha1>(password, salt, rounds, out, stopped),
            Hash::Sha224 => pbkdf2_hmac::<sha2::Sha224>(password, salt, rounds, out, stopped),
            Hash::Sha256 => pbkdf2_hmac::<sha2::Sha256>(password, salt, rounds, out, stopped),
            Hash::Sha384 => pbkdf2_hmac::<sha2::Sha384>(password, salt, rounds, out, stopped),
            Hash::Sha512 => pbkdf2_hmac::<sha2::Sha512>(password, salt, rounds, out, stopped),
            Hash::Ripemd160 => {
                pbkdf2_hmac::<ripemd::Ripemd160>(password, salt, rounds, out, stopped)
            }
        }
    }
}

/// Rounds of PBKDF2 between two looks at the stop condition: well under a
/// millisecond of work, so a stop is noticed at once, and a clock read per
/// thousand HMACs costs nothing measurable.
pub(crate) const PBKDF2_CHECK_EVERY: u32 = 1024;

/// A derivation ended early because its caller asked it to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stopped;

/// PBKDF2 (RFC 8018, section 5.2) with HMAC-`D`. Written here rather than taken from the
/// `pbkdf2` crate because the rounds must be interruptible (a header may ask for four
/// billion of them) and because that crate keeps the running block U_i in a stack
/// variable it does not wipe (it has no `zeroize` feature): here U_i lives in a wiped
/// buffer and is updated in place, and the HMAC states (password-equivalent) wipe
/// themselves on drop. On `Err(Stopped)` `out` is wiped.
fn pbkdf2_hmac<D: EagerHash>(
    password: &[u8],
    salt: &[u8],
    rounds: u32,
    out: &mut [u8],
    stopped: &dyn Fn() -> bool,
) -> Result<(), Stopped>
where
    Hmac<D>: KeyInit + Update + FixedOutput + Clone,
{
    let prf = Hmac::<D>::new_from_slice(password).expect("HMAC takes keys of any length");
    let mut buf = Zeroizing::new([0u8; MAX_OUTPUT]);
    let u = output_slot::<Hmac<D>>(&mut buf);
    let mut result = Ok(());
    'blocks: for (i, t) in out.chunks_mut(u.len()).enumerate() {
        let mut mac = prf.clone();
        mac.update(salt);
        mac.update(&(i as u32 + 1).to_be_bytes());
        mac.finalize_into(u);
        t.copy_from_slice(&u[..t.len()]);
        for round in 1..rounds {
            if round % PBKDF2_CHECK_EVERY == 0 && stopped() {
                result = Err(Stopped);
                break 'blocks;
            }
            let mut mac = prf.clone();
            mac.update(u);
            mac.finalize_into(u);
            t.iter_mut().zip(u.iter()).for_each(|(t, u)| *t ^= u);
        }
    }
    if result.is_err() {
        out.zeroize();
    }
    result
}

/// The longest digest here (SHA-512).
const MAX_OUTPUT: usize = 64;

/// The first `OutputSize` bytes of a wiped buffer, typed as the hash's output.
fn output_slot<D: hmac::digest::OutputSizeUser>(buf: &mut [u8; MAX_OUTPUT]) -> &mut Output<D> {
    let n = D::output_size();
    <&mut Output<D>>::try_from(&mut buf[..n]).expect("digests are at most 64 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbkdf2_sha256_rfc7914_vector() {
        // RFC 7914 section 11, first PBKDF2-HMAC-SHA256 vector.
        let mut out = [0u8; 64];
        Hash::Sha256
            .pbkdf2(b"passwd", b"salt", 1, &mut out, &|| false)
            .unwrap();
        assert_eq!(
            &out[..16],
            &[
                0x55, 0xac, 0x04, 0x6e, 0x56, 0xe3, 0x08, 0x9f, 0xec, 0x16, 0x91, 0xc2, 0x25, 0x44,
                0xb6, 0x05
            ]
        );
    }

    #[test]
    fn pbkdf2_matches_the_pbkdf2_crate() {
        // Every hash, outputs shorter than, equal to and several blocks longer than a
        // digest, one round and several, round counts around the stop check.
        fn reference(h: Hash, pw: &[u8], salt: &[u8], rounds: u32, out: &mut [u8]) {
            use pbkdf2::pbkdf2_hmac as p;
            match h {
                Hash::Sha1 => p::<sha1::Sha1>(pw, salt, rounds, out),
                Hash::Sha224 => p::<sha2::Sha224>(pw, salt, rounds, out),
                Hash::Sha256 => p::<sha2::Sha256>(pw, salt, rounds, out),
                Hash::Sha384 => p::<sha2::Sha384>(pw, salt, rounds, out),
                Hash::Sha512 => p::<sha2::Sha512>(pw, salt, rounds, out),
                Hash::Ripemd160 => p::<ripemd::Ripemd160>(pw, salt, rounds, out),
            }
        }
        let long_password = [0x5au8; 200]; // longer than any block: hashed first
        for h in ALL {
            for (pw, salt) in [(&b"passphrase"[..], &b"salt"[..]), (&long_password, b"")] {
                for rounds in [1, 2, 1023, 1024, 1025, 3000] {
                    for len in [16, h.output_len(), 64, 129] {
                        let (mut ours, mut want) = (vec![0; len], vec![1; len]);
                        h.pbkdf2(pw, salt, rounds, &mut ours, &|| false).unwrap();
                        reference(h, pw, salt, rounds, &mut want);
                        assert_eq!(ours, want, "{} rounds {rounds} len {len}", h.name());
                    }
                }
            }
        }
    }

    const ALL: [Hash; 6] = [
        Hash::Sha1,
        Hash::Sha224,
        Hash::Sha256,
        Hash::Sha384,
        Hash::Sha512,
        Hash::Ripemd160,
    ];

    #[test]
    fn names_round_trip() {
        for h in ALL {
            assert_eq!(Hash::from_name(h.name()).unwrap(), h);
            let mut out = vec![0; h.output_len()];
            h.digest_into(&[b"x"], &mut out);
        }
        assert!(Hash::from_name("md5").is_err());
    }

    /// RFC 6070's PBKDF2-HMAC-SHA1 vectors, the 4096-round one included (it
    /// crosses several stop checks).
    #[test]
    fn pbkdf2_sha1_rfc6070_vectors() {
        let cases: [(&[u8], &[u8], u32, &str); 3] = [
            (
                b"password",
                b"salt",
                2,
                "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957",
            ),
            (
                b"password",
                b"salt",
                4096,
                "4b007901b765489abead49d926f721d065a429c1",
            ),
            (
                b"passwordPASSWORDpassword",
                b"saltSALTsaltSALTsaltSALTsaltSALTsalt",
                4096,
                "3d2eec4fe41c849b80c8d83662c0e44a8b291a964cf2f07038",
            ),
        ];
        for (pass, salt, rounds, want) in cases {
            let mut out = vec![0u8; want.len() / 2];
            Hash::Sha1
                .pbkdf2(pass, salt, rounds, &mut out, &|| false)
                .unwrap();
            let hex: String = out.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(hex, want, "{rounds} rounds");
        }
    }

    /// Four billion rounds, stopped after the first check: the number of
    /// rounds done is bounded by the check interval, not the header.
    #[test]
    fn pbkdf2_stops_when_asked() {
        let asked = std::cell::Cell::new(0u32);
        let stop = || {
            asked.set(asked.get() + 1);
            asked.get() >= 3
        };
        let mut out = [0u8; 32];
        assert_eq!(
            Hash::Sha256.pbkdf2(b"p", b"s", 4_000_000_000, &mut out, &stop),
            Err(Stopped)
        );
        assert_eq!(asked.get(), 3, "stopped at the third look");
    }
}
