//! The two scalar multiplications of the Tang exchange, both constant time in the scalar:
//!
//! - `k·P` for any point: signed 5-bit windows (106 digits in [−16, 15]), a table of
//!   P..16P scanned in full for each digit, 5 doublings and one addition per window.
//! - `k·G`: a comb over two precomputed tables of 15 affine points each (`table.rs`): 66
//!   doublings and 132 mixed additions, about three times fewer operations.
//!
//! Point addition is complete (`point.rs`), so neither loop tracks infinity or has to show
//! that the accumulator never meets the point it adds: every scalar below 2^521 is an
//! ordinary input, including the multiples of n and their neighbours.

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroize;

use crate::field::BYTES;
use crate::point::{Affine, Jacobian};
use crate::table::COMB;

/// Windows of 5 bits cover 525 ≥ 521 bits; one more digit takes the last carry.
const DIGITS: usize = 106;

/// Spacing of the comb's teeth: 8 teeth × 66 = 528 ≥ 521 bits.
pub(crate) const COMB_SPACING: usize = 66;

/// The scalar's 528 bits, least significant first, as 64-bit words.
struct Bits([u64; 9]);

impl Bits {
    fn new(k: &[u8; BYTES]) -> Bits {
        let mut w = [0u64; 9];
        for (i, byte) in k.iter().rev().enumerate() {
            w[i / 8] |= u64::from(*byte) << (8 * (i % 8));
        }
        Bits(w)
    }

    /// Bit `i` (0 beyond the top). The position is public; only the value is secret.
    fn bit(&self, i: usize) -> u64 {
        if i >= 64 * 9 {
            return 0;
        }
        (self.0[i / 64] >> (i % 64)) & 1
    }

    fn window(&self, i: usize) -> u64 {
        (0..5).fold(0, |acc, b| acc | (self.bit(5 * i + b) << b))
    }
}

impl Drop for Bits {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// Signed digits d with k = Σ d_i·32^i, each in [−16, 15] (the last in {0, 1}).
fn recode(bits: &Bits) -> [i8; DIGITS] {
    let mut d = [0i8; DIGITS];
    let mut carry = 0i64;
    for (i, digit) in d.iter_mut().enumerate().take(DIGITS - 1) {
        let v = bits.window(i) as i64 + carry;
        carry = (v + 16) >> 5;
        *digit = (v - (carry << 5)) as i8;
    }
    d[DIGITS - 1] = carry as i8;
    d
}

/// `table[|d| − 1]`, negated when d < 0, or infinity for d = 0; every entry is read.
fn lookup(table: &[Jacobian; 16], d: i8) -> Jacobian {
    let sign = (d >> 7) as u8 & 1; // 1 when negative
    let abs = ((d ^ (d >> 7)) - (d >> 7)) as u8;
    let mut out = Jacobian::INFINITY;
    for (j, entry) in table.iter().enumerate() {
        out.conditional_assign(entry, abs.ct_eq(&(j as u8 + 1)));
    }
    let neg = out.neg();
    out.conditional_assign(&neg, Choice::from(sign));
    out
}

/// `k·p`, k given as 66 big-endian bytes below 2^521.
pub(crate) fn mul(k: &[u8; BYTES], p: &Affine) -> Jacobian {
    let mut table = [Jacobian::INFINITY; 16];
    table[0] = p.to_jacobian();
    for i in 1..16 {
        table[i] = table[i - 1].add(&table[0]);
    }
    let bits = Bits::new(k);
    let mut digits = recode(&bits);
    let mut q = lookup(&table, digits[DIGITS - 1]);
    for i in (0..DIGITS - 1).rev() {
        for _ in 0..5 {
            q = q.double();
        }
        q = q.add(&lookup(&table, digits[i]));
    }
    digits.zeroize();
    table.zeroize();
    q
}

/// `k·G`, k given as 66 big-endian bytes below 2^521.
pub(crate) fn mul_base(k: &[u8; BYTES]) -> Jacobian {
    let bits = Bits::new(k);
    let mut q = Jacobian::INFINITY;
    for i in (0..COMB_SPACING).rev() {
        q = q.double();
        for (t, table) in COMB.iter().enumerate() {
            let mut index = 0u8;
            for tooth in 0..4 {
                let pos = i + COMB_SPACING * (4 * t + tooth);
                index |= (bits.bit(pos) as u8) << tooth;
            }
            let mut entry = table[0];
            for (j, candidate) in table.iter().enumerate() {
                entry.conditional_assign(candidate, index.ct_eq(&(j as u8 + 1)));
            }
            // Index 0 adds nothing (the table has no entry for it).
            let sum = q.add_affine(&entry);
            q.conditional_assign(&sum, !index.ct_eq(&0));
        }
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recoding_sums_back_to_the_scalar() {
        for k in [[0u8; BYTES], [0xff; BYTES], {
            let mut k = [0x5a; BYTES];
            k[0] = 1;
            k
        }] {
            let mut k = k;
            k[0] &= 1;
            let bits = Bits::new(&k);
            let d = recode(&bits);
            // Σ d_i·32^i in 64-bit words, compared with the scalar's words.
            let mut acc = [0i128; 10];
            for (i, &di) in d.iter().enumerate() {
                let bit = 5 * i;
                acc[bit / 64] += i128::from(di) << (bit % 64);
            }
            let mut carry = 0i128;
            for (i, a) in acc.iter_mut().enumerate().take(9) {
                let v = *a + carry;
                let word = v.rem_euclid(1 << 64);
                carry = (v - word) >> 64;
                assert_eq!(word as u64, bits.0[i], "word {i}");
            }
            assert_eq!(acc[9] + carry, 0);
            assert!(d.iter().all(|&x| (-16..=15).contains(&x)));
        }
    }
}
