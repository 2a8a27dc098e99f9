//! Shamir secret sharing exactly as clevis's sss pin does it.
//!
//! GF(p) with a fresh 256-bit safe prime per encryption; the polynomial's constant term e0
//! is the A256GCM key of the outer JWE; a share is `x ‖ y`, each 32 bytes big-endian, with x
//! random in [0, p). Recovery is Lagrange interpolation at 0 over any t shares.

use crypto_bigint::{NonZero, RandomMod, U256};
use rand_core::CryptoRng;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};
use crate::secret::Secret;

/// Bytes of p, of e0 and of each half of a share.
pub const P_LEN: usize = 32;

/// Bytes of a share (x ‖ y).
pub const SHARE_LEN: usize = 2 * P_LEN;

/// Draws a random 256-bit safe prime (p = 2q + 1, q prime, top bit set), as
/// `BN_generate_prime_ex(256, safe=1)` does. Takes tens of milliseconds.
pub fn safe_prime<R: CryptoRng + ?Sized>(rng: &mut R) -> [u8; P_LEN] {
    let p: U256 = crypto_primes::random_prime(rng, crypto_primes::Flavor::Safe, 256);
    p.to_be_bytes().into()
}

/// Whether `p` (32 bytes big-endian) is a safe prime.
pub fn is_safe_prime(p: &[u8]) -> bool {
    p.len() == P_LEN
        && crypto_primes::is_prime(crypto_primes::Flavor::Safe, &U256::from_be_slice(p))
}

/// The polynomial of one sss encryption. Its coefficients are wiped on drop.
pub struct Dealer {
    p: NonZero<U256>,
    coeffs: Vec<U256>,
}

impl Drop for Dealer {
    fn drop(&mut self) {
        self.coeffs.iter_mut().for_each(Zeroize::zeroize);
    }
}

impl Dealer {
    /// A fresh safe prime and `t` uniform coefficients (threshold `t` ≥ 1).
    pub fn new<R: CryptoRng + ?Sized>(t: usize, rng: &mut R) -> Result<Dealer> {
        let p = safe_prime(rng);
        Dealer::with_prime(&p, t, rng)
    }

    /// As [`Dealer::new`] with a given prime (it must be a safe prime; for tests).
    pub fn with_prime<R: CryptoRng + ?Sized>(p: &[u8], t: usize, rng: &mut R) -> Result<Dealer> {
        if t == 0 {
            return Err(Error::Config {
                pin: "sss".into(),
                reason: "t must be at least 1".into(),
            });
        }
        let p = modulus(p)?;
        let coeffs = (0..t).map(|_| U256::random_mod_vartime(rng, &p)).collect();
        Ok(Dealer { p, coeffs })
    }

    /// p, 32 bytes big-endian (the header's `clevis.sss.p`).
    pub fn prime(&self) -> [u8; P_LEN] {
        self.p.get().to_be_bytes().into()
    }

    /// e0 as 32 bytes: the content key of the outer JWE.
    pub fn key(&self) -> Secret {
        Secret::from_slice(&self.coeffs[0].to_be_bytes())
    }

    /// A new share `x ‖ y` with x uniform in [0, p).
    pub fn share<R: CryptoRng + ?Sized>(&self, rng: &mut R) -> Secret {
        let x = U256::random_mod_vartime(rng, &self.p);
        let mut y = U256::ZERO;
        for c in self.coeffs.iter().rev() {
            y = y.mul_mod(&x, &self.p).add_mod(c, &self.p);
        }
        let mut out = Vec::with_capacity(SHARE_LEN);
        out.extend_from_slice(&x.to_be_bytes());
        out.extend_from_slice(&y.to_be_bytes());
        y.zeroize();
        Secret::new(out)
    }
}

fn modulus(p: &[u8]) -> Result<NonZero<U256>> {
    if p.len() != P_LEN {
        return Err(Error::Combine(format!(
            "p is {} bytes, expected {P_LEN}",
            p.len()
        )));
    }
    Option::from(NonZero::new(U256::from_be_slice(p)))
        .ok_or_else(|| Error::Combine("p is zero".into()))
}

/// Recovers e0 from t shares (each exactly 64 bytes) by Lagrange interpolation at 0.
/// Everything derived from the shares is wiped on every return, errors included.
pub fn combine(p: &[u8], shares: &[Secret]) -> Result<Secret> {
    let p = modulus(p)?;
    let mut points: Zeroizing<Vec<[U256; 2]>> = Zeroizing::new(Vec::with_capacity(shares.len()));
    for s in shares {
        if s.len() != SHARE_LEN {
            return Err(Error::ShareLength {
                got: s.len(),
                expected: SHARE_LEN,
            });
        }
        let point = Zeroizing::new([
            U256::from_be_slice(&s.expose()[..P_LEN]),
            U256::from_be_slice(&s.expose()[P_LEN..]),
        ]);
        if point.iter().any(|v| *v >= p.get()) {
            return Err(Error::Combine("a share is not below p".into()));
        }
        points.push(*point);
    }
    let mut k = Zeroizing::new(U256::ZERO);
    for (i, [xi, yi]) in points.iter().enumerate() {
        let mut num = Zeroizing::new(U256::ONE);
        let mut den = Zeroizing::new(U256::ONE);
        for (j, [xj, _]) in points.iter().enumerate() {
            if i != j {
                *num = num.mul_mod(&U256::ZERO.sub_mod(xj, &p), &p);
                *den = den.mul_mod(&xi.sub_mod(xj, &p), &p);
            }
        }
        let inv: Option<U256> = den.invert_mod(&p).into();
        let inv =
            Zeroizing::new(inv.ok_or_else(|| Error::Combine("two shares have the same x".into()))?);
        let term = Zeroizing::new(yi.mul_mod(&num, &p).mul_mod(&inv, &p));
        *k = k.add_mod(&term, &p);
    }
    let bytes = Zeroizing::new(k.to_be_bytes());
    Ok(Secret::from_slice(&bytes[..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_sys::wipecheck::Watch;

    #[test]
    fn split_and_combine_any_t_of_n() {
        let mut rng = latchkey_sys::rng::os();
        let p = safe_prime(&mut rng);
        assert!(is_safe_prime(&p));
        assert!(p[0] & 0x80 != 0, "top bit set");
        for t in 1..=4 {
            let d = Dealer::with_prime(&p, t, &mut rng).unwrap();
            let shares: Vec<Secret> = (0..5).map(|_| d.share(&mut rng)).collect();
            assert!(combine(&p, &shares[5 - t..]).unwrap().ct_eq(&d.key()));
            assert!(combine(&p, &shares[..t]).unwrap().ct_eq(&d.key()));
            if t > 1 {
                assert!(!combine(&p, &shares[..t - 1]).unwrap().ct_eq(&d.key()));
            }
        }
    }

    #[test]
    fn combine_wipes_the_shares_on_every_error() {
        // U256 keeps little-endian limbs: in memory, y is its big-endian bytes reversed.
        let mut rng = latchkey_sys::rng::os();
        let p = safe_prime(&mut rng);
        let d = Dealer::with_prime(&p, 2, &mut rng).unwrap();
        let (a, b) = (d.share(&mut rng), d.share(&mut rng));
        let y_in_memory: Vec<u8> = a.expose()[P_LEN..].iter().rev().copied().collect();
        let mut not_below_p = b.expose().to_vec();
        not_below_p[P_LEN..].copy_from_slice(&[0xff; P_LEN]);
        let failing: [Vec<Secret>; 3] = [
            vec![a.clone(), Secret::new(vec![1; 63])],
            vec![a.clone(), Secret::new(not_below_p)],
            vec![a.clone(), a.clone()],
        ];
        let watch = Watch::new(&y_in_memory);
        for shares in &failing {
            assert!(combine(&p, shares).is_err());
        }
        assert!(combine(&p, &[a, b]).unwrap().ct_eq(&d.key()));
        assert_eq!(watch.freed_copies(), 0, "freed blocks held a share's y");
    }

    #[test]
    fn rejects_bad_shares() {
        let p = [0xffu8; 32];
        let a = Secret::new([[1u8; 32], [2u8; 32]].concat());
        assert!(matches!(
            combine(&p, &[a.clone(), a.clone()]),
            Err(Error::Combine(_))
        ));
        assert!(matches!(
            combine(&p, &[Secret::new(vec![1; 63])]),
            Err(Error::ShareLength {
                got: 63,
                expected: 64
            })
        ));
    }
}
