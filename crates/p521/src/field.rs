//! Arithmetic modulo p = 2^521 − 1 on fiat-crypto's unsaturated nine-limb representation
//! (limbs of 58, ..., 58, 57 bits). Every element here is in fiat's "tight" bounds; sums go
//! through a carry before they are stored, which costs little next to a multiplication.

use fiat_crypto::p521_64::{
    fiat_p521_add, fiat_p521_carry, fiat_p521_carry_mul, fiat_p521_carry_square,
    fiat_p521_from_bytes, fiat_p521_loose_field_element as Loose, fiat_p521_opp, fiat_p521_relax,
    fiat_p521_selectznz, fiat_p521_sub, fiat_p521_tight_field_element as Tight, fiat_p521_to_bytes,
};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

/// Bytes of an encoded element.
pub const BYTES: usize = 66;

/// A field element.
#[derive(Clone, Copy)]
pub struct Fe(Tight);

impl Fe {
    pub const ZERO: Fe = Fe(Tight([0; 9]));
    pub const ONE: Fe = Fe(Tight([1, 0, 0, 0, 0, 0, 0, 0, 0]));

    /// Parses 66 big-endian bytes; `None` unless the value is below p.
    pub fn from_be_bytes(be: &[u8; BYTES]) -> Option<Fe> {
        // fiat wants little-endian input below 2^521.
        if be[0] > 1 {
            return None;
        }
        let mut le = *be;
        le.reverse();
        let fe = Fe::from_le_unchecked(&le);
        // Canonical: p itself (all 521 bits set) would read as zero.
        (fe.to_be_bytes() == *be).then_some(fe)
    }

    /// Parses a constant (hex, big-endian, below p); for curve constants and tables.
    pub const fn from_hex(hex: &str) -> Fe {
        let h = hex.as_bytes();
        assert!(h.len() == 2 * BYTES);
        let mut le = [0u8; BYTES];
        let mut i = 0;
        while i < BYTES {
            le[BYTES - 1 - i] = (nibble(h[2 * i]) << 4) | nibble(h[2 * i + 1]);
            i += 1;
        }
        assert!(le[BYTES - 1] <= 1);
        Fe::from_le_unchecked(&le)
    }

    const fn from_le_unchecked(le: &[u8; BYTES]) -> Fe {
        let mut out = Tight([0; 9]);
        fiat_p521_from_bytes(&mut out, le);
        Fe(out)
    }

    /// The canonical 66-byte big-endian encoding.
    pub fn to_be_bytes(self) -> [u8; BYTES] {
        let mut out = [0u8; BYTES];
        fiat_p521_to_bytes(&mut out, &self.0);
        out.reverse();
        out
    }

    fn loose(&self) -> Loose {
        let mut out = Loose([0; 9]);
        fiat_p521_relax(&mut out, &self.0);
        out
    }

    fn carry(l: &Loose) -> Fe {
        let mut out = Tight([0; 9]);
        fiat_p521_carry(&mut out, l);
        Fe(out)
    }

    pub fn add(&self, rhs: &Fe) -> Fe {
        let mut l = Loose([0; 9]);
        fiat_p521_add(&mut l, &self.0, &rhs.0);
        Fe::carry(&l)
    }

    pub fn sub(&self, rhs: &Fe) -> Fe {
        let mut l = Loose([0; 9]);
        fiat_p521_sub(&mut l, &self.0, &rhs.0);
        Fe::carry(&l)
    }

    pub fn neg(&self) -> Fe {
        let mut l = Loose([0; 9]);
        fiat_p521_opp(&mut l, &self.0);
        Fe::carry(&l)
    }

    pub fn double(&self) -> Fe {
        self.add(self)
    }

    pub fn mul(&self, rhs: &Fe) -> Fe {
        let mut out = Tight([0; 9]);
        fiat_p521_carry_mul(&mut out, &self.loose(), &rhs.loose());
        Fe(out)
    }

    pub fn square(&self) -> Fe {
        let mut out = Tight([0; 9]);
        fiat_p521_carry_square(&mut out, &self.loose());
        Fe(out)
    }

    fn square_n(&self, n: usize) -> Fe {
        let mut x = *self;
        for _ in 0..n {
            x = x.square();
        }
        x
    }

    /// `self^(p−2)`: the inverse, or zero for zero. Constant time.
    pub fn invert(&self) -> Fe {
        // p − 2 = 2^521 − 3 = (2^519 − 1)·4 + 1. Build a^(2^k − 1) by doubling k.
        let a = *self;
        let t2 = a.square().mul(&a); // 2^2 − 1
        let t3 = t2.square().mul(&a); // 2^3 − 1
        let t4 = t2.square_n(2).mul(&t2); // 2^4 − 1
        let t7 = t4.square_n(3).mul(&t3); // 2^7 − 1
        let t8 = t4.square_n(4).mul(&t4);
        let t16 = t8.square_n(8).mul(&t8);
        let t32 = t16.square_n(16).mul(&t16);
        let t64 = t32.square_n(32).mul(&t32);
        let t128 = t64.square_n(64).mul(&t64);
        let t256 = t128.square_n(128).mul(&t128);
        let t512 = t256.square_n(256).mul(&t256);
        let t519 = t512.square_n(7).mul(&t7);
        t519.square_n(2).mul(&a)
    }

    pub fn is_zero(&self) -> Choice {
        self.to_be_bytes().ct_eq(&[0u8; BYTES])
    }

    pub fn ct_eq(&self, rhs: &Fe) -> Choice {
        self.to_be_bytes().ct_eq(&rhs.to_be_bytes())
    }
}

impl ConditionallySelectable for Fe {
    fn conditional_select(a: &Fe, b: &Fe, choice: Choice) -> Fe {
        let mut out = [0u64; 9];
        fiat_p521_selectznz(&mut out, choice.unwrap_u8(), &a.0.0, &b.0.0);
        Fe(Tight(out))
    }
}

impl zeroize::DefaultIsZeroes for Fe {}

impl Default for Fe {
    fn default() -> Fe {
        Fe::ZERO
    }
}

const fn nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => panic!("not a hex digit"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_is_canonical() {
        let mut p = [0xffu8; BYTES];
        p[0] = 1;
        assert!(Fe::from_be_bytes(&p).is_none(), "p itself");
        let mut pm1 = p;
        pm1[BYTES - 1] = 0xfe;
        let x = Fe::from_be_bytes(&pm1).unwrap();
        assert_eq!(x.to_be_bytes(), pm1);
        let mut big = [0u8; BYTES];
        big[0] = 2;
        assert!(Fe::from_be_bytes(&big).is_none(), "2^521");
        // p − 1 = −1
        assert!(bool::from(x.add(&Fe::ONE).is_zero()));
    }

    #[test]
    fn inverse() {
        let x = Fe::from_hex(
            "00c6858e06b70404e9cd9e3ecb662395b4429c648139053fb521f828af606b4d3dbaa14b5e77efe75928fe1dc127a2ffa8de3348b3c1856a429bf97e7e31c2e5bd66",
        );
        assert!(bool::from(x.mul(&x.invert()).ct_eq(&Fe::ONE)));
        assert!(bool::from(Fe::ZERO.invert().is_zero()));
        assert!(bool::from(Fe::ONE.neg().invert().ct_eq(&Fe::ONE.neg())));
    }
}
