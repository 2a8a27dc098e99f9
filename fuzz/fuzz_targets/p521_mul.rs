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

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 * BYTES {
        return;
    }
    let k: [u8; BYTES] = data[..BYTES].try_into().unwrap();
    let x: [u8; BYTES] = data[BYTES..2 * BYTES].try_into().unwrap();
    let y: [u8; BYTES] = data[2 * BYTES..3 * BYTES].try_into().unwrap();
    let Some(s) = Option::<Scalar>::from(Scalar::from_repr(FieldBytes::from(k))) else {
        // Not below n: only bits above 2^521 are refused outright.
        if k[0] > 1 {
            assert_eq!(mul_base(&k), Err(Error::ScalarTooLarge));
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
