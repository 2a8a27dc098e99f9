//! Points of P-521 (y² = x³ − 3x + b) in affine and Jacobian coordinates, with the formulas
//! of the Explicit-Formulas Database for a = −3: `dbl-2001-b` (3M + 5S), `add-2007-bl`
//! (11M + 5S) and `madd-2007-bl` (7M + 4S).
//!
//! Every operation is correct for every input, so no caller has to prove anything about the
//! points it adds:
//!
//! - doubling: infinity (Z = 0) doubles to Z = 0, and P-521 has no point with y = 0 (its
//!   order n is odd), the one case `dbl-2001-b` gets wrong;
//! - addition: the formulas are right for two distinct finite points and give Z = 0 for
//!   `P + (−P)`; for `P + P` and for an infinite operand they are wrong, so `2·P` and the
//!   other operand are computed too and selected in constant time. The extra doubling
//!   costs about a third of `k·P` and more of `k·G`; it is what makes the exceptional
//!   scalars (n − 18 for `k·P` with signed 5-bit windows, among others) ordinary ones.

use subtle::{Choice, ConditionallySelectable};

use crate::field::{BYTES, Fe};

/// b of the curve equation.
const B: Fe = Fe::from_hex(
    "0051953eb9618e1c9a1f929a21a0b68540eea2da725b99b315f3b8b489918ef109e156193951ec7e937b1652c0bd3bb1bf073573df883d2c34f1ef451fd46b503f00",
);

/// An affine point (never the point at infinity).
#[derive(Clone, Copy, Default)]
pub struct Affine {
    pub x: Fe,
    pub y: Fe,
}

/// A Jacobian point (X/Z², Y/Z³); Z = 0 is the point at infinity.
#[derive(Clone, Copy, Default)]
pub struct Jacobian {
    pub x: Fe,
    pub y: Fe,
    pub z: Fe,
}

impl Affine {
    /// Parses big-endian coordinates; `None` unless both are below p and the point is on
    /// the curve. (P-521 has cofactor 1: on the curve means in the group.)
    pub fn from_be_bytes(x: &[u8; BYTES], y: &[u8; BYTES]) -> Option<Affine> {
        let p = Affine {
            x: Fe::from_be_bytes(x)?,
            y: Fe::from_be_bytes(y)?,
        };
        p.is_on_curve().then_some(p)
    }

    fn is_on_curve(&self) -> bool {
        let x3 = self.x.square().mul(&self.x);
        let three_x = self.x.double().add(&self.x);
        let rhs = x3.sub(&three_x).add(&B);
        bool::from(self.y.square().ct_eq(&rhs))
    }

    pub fn to_jacobian(self) -> Jacobian {
        Jacobian {
            x: self.x,
            y: self.y,
            z: Fe::ONE,
        }
    }
}

impl ConditionallySelectable for Affine {
    fn conditional_select(a: &Affine, b: &Affine, choice: Choice) -> Affine {
        Affine {
            x: Fe::conditional_select(&a.x, &b.x, choice),
            y: Fe::conditional_select(&a.y, &b.y, choice),
        }
    }
}

impl ConditionallySelectable for Jacobian {
    fn conditional_select(a: &Jacobian, b: &Jacobian, choice: Choice) -> Jacobian {
        Jacobian {
            x: Fe::conditional_select(&a.x, &b.x, choice),
            y: Fe::conditional_select(&a.y, &b.y, choice),
            z: Fe::conditional_select(&a.z, &b.z, choice),
        }
    }
}

impl zeroize::DefaultIsZeroes for Jacobian {}

impl Jacobian {
    pub const INFINITY: Jacobian = Jacobian {
        x: Fe::ONE,
        y: Fe::ONE,
        z: Fe::ZERO,
    };

    pub fn is_infinity(&self) -> Choice {
        self.z.is_zero()
    }

    /// `dbl-2001-b`. Infinity doubles to infinity (Z stays 0).
    pub fn double(&self) -> Jacobian {
        let delta = self.z.square();
        let gamma = self.y.square();
        let beta = self.x.mul(&gamma);
        let t = self.x.sub(&delta).mul(&self.x.add(&delta));
        let alpha = t.double().add(&t);
        let beta4 = beta.double().double();
        let x3 = alpha.square().sub(&beta4.double());
        let z3 = self.y.add(&self.z).square().sub(&gamma).sub(&delta);
        let gamma2_8 = gamma.square().double().double().double();
        let y3 = alpha.mul(&beta4.sub(&x3)).sub(&gamma2_8);
        Jacobian {
            x: x3,
            y: y3,
            z: z3,
        }
    }

    /// `self + q` for any two points, infinity and `self = ±q` included. `add-2007-bl`
    /// gives the sum of two distinct finite points, and infinity (Z = 0) for `self = −q`;
    /// the two other cases are selected in constant time: `2·self` when the points are
    /// equal, and the other operand when one is infinity.
    pub fn add(&self, q: &Jacobian) -> Jacobian {
        let z1z1 = self.z.square();
        let z2z2 = q.z.square();
        let u1 = self.x.mul(&z2z2);
        let u2 = q.x.mul(&z1z1);
        let s1 = self.y.mul(&q.z).mul(&z2z2);
        let s2 = q.y.mul(&self.z).mul(&z1z1);
        let h = u2.sub(&u1);
        let r = s2.sub(&s1).double();
        let i = h.double().square();
        let j = h.mul(&i);
        let v = u1.mul(&i);
        let x3 = r.square().sub(&j).sub(&v.double());
        let y3 = r.mul(&v.sub(&x3)).sub(&s1.mul(&j).double());
        let z3 = self.z.add(&q.z).square().sub(&z1z1).sub(&z2z2).mul(&h);
        let mut sum = Jacobian {
            x: x3,
            y: y3,
            z: z3,
        };
        // With both Z ≠ 0, H = 0 and R = 0 mean the same affine point.
        sum.conditional_assign(&self.double(), h.is_zero() & r.is_zero());
        sum.conditional_assign(q, self.is_infinity());
        sum.conditional_assign(self, q.is_infinity());
        sum
    }

    /// `self + q` with q affine (never infinity), for any self: `madd-2007-bl`, with the
    /// same constant-time selections as [`Jacobian::add`].
    pub fn add_affine(&self, q: &Affine) -> Jacobian {
        let z1z1 = self.z.square();
        let u2 = q.x.mul(&z1z1);
        let s2 = q.y.mul(&self.z).mul(&z1z1);
        let h = u2.sub(&self.x);
        let r = s2.sub(&self.y).double();
        let hh = h.square();
        let i = hh.double().double();
        let j = h.mul(&i);
        let v = self.x.mul(&i);
        let x3 = r.square().sub(&j).sub(&v.double());
        let y3 = r.mul(&v.sub(&x3)).sub(&self.y.mul(&j).double());
        let z3 = self.z.add(&h).square().sub(&z1z1).sub(&hh);
        let mut sum = Jacobian {
            x: x3,
            y: y3,
            z: z3,
        };
        sum.conditional_assign(&self.double(), h.is_zero() & r.is_zero());
        sum.conditional_assign(&q.to_jacobian(), self.is_infinity());
        sum
    }

    pub fn neg(&self) -> Jacobian {
        Jacobian {
            x: self.x,
            y: self.y.neg(),
            z: self.z,
        }
    }

    /// The affine point, or `None` for infinity.
    pub fn to_affine(self) -> Option<Affine> {
        if bool::from(self.is_infinity()) {
            return None;
        }
        let zi = self.z.invert();
        let zi2 = zi.square();
        Some(Affine {
            x: self.x.mul(&zi2),
            y: self.y.mul(&zi2).mul(&zi),
        })
    }
}
