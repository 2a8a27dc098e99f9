//! Differential: latchkey-p521's k·P and k·G against RustCrypto's p521 on any scalar and
//! any coordinates. Both must refuse the same points and agree on every result.
#![no_main]

use latchkey_p521::{BYTES, Error, mul, mul_base};
use libfuzzer_sys::fuzz_target;
use p521::elliptic_curve::PrimeField;
use p521::elliptic_curve::sec1::{FromSec1Point, ToSec1Point};
use p521::{AffinePoint, FieldBytes, ProjectivePoint, Scalar};

fn coords(p: ProjectivePoint) -> ([u8; BYTES], [u8; BYTES]) {
    let enc = p.to_affine().to_sec1_point(false);
    let b = enc.as_bytes();
    (b[1..67].try_into().unwrap(), b[67..].try_into().unwrap())
}

/// The group order n, big-endian.
const N: [u8; BYTES] = {
    let hex = b"01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409";
    let mut out = [0u8; BYTES];
    let mut i = 0;
    while i < BYTES {
        out[i] = nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]);
        i += 1;
    }
    out
};

const fn nibble(c: u8) -> u8 {
    if c <= b'9' { c - b'0' } else { c - b'a' + 10 }
}

/// k − n for n ≤ k (big-endian, with borrow).
fn minus_n(k: &[u8; BYTES]) -> [u8; BYTES] {
    let mut out = [0u8; BYTES];
    let mut borrow = 0i16;
    for i in (0..BYTES).rev() {
        let v = i16::from(k[i]) - i16::from(N[i]) - borrow;
        borrow = i16::from(v < 0);
        out[i] = v.rem_euclid(256) as u8;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 * BYTES {
        return;
    }
    let k: [u8; BYTES] = data[..BYTES].try_into().unwrap();
    let x: [u8; BYTES] = data[BYTES..2 * BYTES].try_into().unwrap();
    let y: [u8; BYTES] = data[2 * BYTES..3 * BYTES].try_into().unwrap();
    let Some(s) = Option::<Scalar>::from(Scalar::from_repr(FieldBytes::from(k))) else {
        // Not below n: only bits above 2^521 are refused outright; n ≤ k < 2^521 acts as
        // k − n (n itself giving infinity).
        if k[0] > 1 {
            assert_eq!(mul_base(&k), Err(Error::ScalarTooLarge));
        } else {
            let reduced = minus_n(&k);
            assert_eq!(mul_base(&k), mul_base(&reduced));
            let (gx, gy) = coords(ProjectivePoint::GENERATOR);
            assert_eq!(mul(&k, &gx, &gy), mul_base(&reduced));
        }
        return;
    };
    let want_base = (!bool::from(s.is_zero())).then(|| coords(ProjectivePoint::GENERATOR * s));
    assert_eq!(mul_base(&k).ok(), want_base);
    let sec1 = [&[4u8][..], &x, &y].concat();
    match AffinePoint::from_sec1_bytes(&sec1).ok() {
        None => {
            assert_eq!(mul(&k, &x, &y), Err(Error::NotOnCurve));
            // Random bytes are almost never a point: multiply a point made from x instead.
            let mut xs = x;
            xs[0] &= 1;
            if let Some(m) = Option::<Scalar>::from(Scalar::from_repr(FieldBytes::from(xs))) {
                if !bool::from(m.is_zero()) && !bool::from(s.is_zero()) {
                    let p = ProjectivePoint::GENERATOR * m;
                    let (px, py) = coords(p);
                    assert_eq!(mul(&k, &px, &py).ok(), Some(coords(p * s)));
                }
            }
        }
        Some(p) => {
            let want = (!bool::from(s.is_zero())).then(|| coords(ProjectivePoint::from(p) * s));
            assert_eq!(mul(&k, &x, &y).ok(), want);
        }
    }
});
