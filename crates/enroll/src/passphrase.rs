//! The passphrase a binding protects: what clevis makes with `pwmake B`, where
//! B is the largest volume-key size of the header in bits, at most 256.
//!
//! pwmake's text is printable ASCII from an 80-character set, about one
//! character per 4.75 bits asked for (54 characters for 256 bits), so people
//! and cryptsetup's prompts can handle it. The same set and length are used
//! here, each character drawn uniformly (6.3 bits each, so more entropy than
//! asked for), without pwmake's dependency on libpwquality.

use latchkey_proto::Secret;
use rand_core::CryptoRng;

/// pwmake's characters.
pub const ALPHABET: &[u8; 80] =
    b"!#$%&()*+,-.0123456789;=@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^abcdefghijklmnopqrstuvwxyz";

/// pwmake's ceiling.
pub const MAX_BITS: u32 = 256;

/// The entropy clevis asks for: the largest key size in bytes, as bits, capped.
pub fn bits_for(key_sizes: impl IntoIterator<Item = usize>) -> u32 {
    let bits = key_sizes.into_iter().max().unwrap_or(32) * 8;
    u32::try_from(bits).unwrap_or(MAX_BITS).clamp(64, MAX_BITS)
}

/// The number of characters pwmake produces for `bits`.
pub fn length(bits: u32) -> usize {
    (bits as usize * 100).div_ceil(475)
}

/// A fresh passphrase for `bits` of entropy.
pub fn generate<R: CryptoRng + ?Sized>(bits: u32, rng: &mut R) -> Secret {
    let n = length(bits);
    let mut out = Vec::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        rng.fill_bytes(&mut buf);
        // 240 = 3 × 80: reject the top 16 values so every character is equally likely.
        for &b in buf.iter().filter(|&&b| b < 240) {
            if out.len() == n {
                break;
            }
            out.push(ALPHABET[usize::from(b % 80)]);
        }
    }
    buf.fill(0);
    Secret::new(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_match_pwmake() {
        // `pwmake B | wc -c` (minus the newline), most common value over 20 runs.
        for (bits, len) in [(256, 54), (192, 41), (160, 34), (128, 27), (64, 14)] {
            assert_eq!(length(bits), len, "{bits} bits");
        }
        assert_eq!(bits_for([64, 32]), 256);
        assert_eq!(bits_for([16]), 128);
    }

    #[test]
    fn draws_from_the_alphabet_and_differs() {
        let mut rng = latchkey_sys::rng::os();
        let a = generate(256, &mut rng);
        let b = generate(256, &mut rng);
        assert_eq!(a.len(), 54);
        assert!(a.expose().iter().all(|c| ALPHABET.contains(c)));
        assert!(!a.ct_eq(&b));
        let mut seen = [false; 80];
        for _ in 0..200 {
            for c in generate(256, &mut rng).expose() {
                seen[ALPHABET.iter().position(|a| a == c).unwrap()] = true;
            }
        }
        assert!(seen.iter().all(|&s| s), "every character turns up");
    }
}
