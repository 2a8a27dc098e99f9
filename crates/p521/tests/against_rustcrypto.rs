//! Every result compared with RustCrypto's `p521` (complete projective formulas, an
//! independent implementation): random scalars and points, and the scalars where window
//! and comb arithmetic go wrong if they are going to.

use latchkey_p521::{BYTES, Error, is_on_curve, mul, mul_base};
use p521::elliptic_curve::PrimeField;
use p521::elliptic_curve::sec1::{FromSec1Point, ToSec1Point};
use p521::{AffinePoint, FieldBytes, ProjectivePoint, Scalar};
use rand_core::Rng;

/// n − 1, big-endian.
const N_MINUS_1: &str = "01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386408";

fn hex(s: &str) -> [u8; BYTES] {
    let mut out = [0u8; BYTES];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

fn scalar(k: &[u8; BYTES]) -> Scalar {
    Scalar::from_repr(FieldBytes::from(*k)).unwrap()
}

fn coords(p: ProjectivePoint) -> ([u8; BYTES], [u8; BYTES]) {
    let enc = p.to_affine().to_sec1_point(false);
    let b = enc.as_bytes();
    (b[1..67].try_into().unwrap(), b[67..].try_into().unwrap())
}

fn random_scalar(rng: &mut impl Rng) -> [u8; BYTES] {
    loop {
        let mut k = [0u8; BYTES];
        rng.fill_bytes(&mut k);
        k[0] &= 1;
        if Option::<Scalar>::from(Scalar::from_repr(FieldBytes::from(k))).is_some() {
            return k;
        }
    }
}

fn small(v: u64) -> [u8; BYTES] {
    let mut k = [0u8; BYTES];
    k[BYTES - 8..].copy_from_slice(&v.to_be_bytes());
    k
}

fn edge_scalars() -> Vec<[u8; BYTES]> {
    let n1 = hex(N_MINUS_1);
    let mut n2 = n1;
    n2[BYTES - 1] -= 1;
    let mut v = vec![
        small(1),
        small(2),
        small(3),
        small(15),
        small(16),
        small(17),
        small(31),
    ];
    v.extend([small(32), small(33), small(0xffff_ffff), n1, n2]);
    for bit in [5, 64, 65, 66, 131, 132, 263, 264, 461, 462, 519, 520] {
        let mut k = [0u8; BYTES];
        k[BYTES - 1 - bit / 8] = 1 << (bit % 8);
        v.push(k);
    }
    // Long runs of ones: every window recodes to −1 with a carry.
    let mut ones = [0xffu8; BYTES];
    ones[0] = 0;
    v.push(ones);
    let mut alt = [0xaau8; BYTES];
    alt[0] = 1;
    v.push(alt);
    v
}

#[test]
fn mul_base_matches() {
    let mut rng = latchkey_sys::rng::os();
    let mut ks = edge_scalars();
    ks.extend((0..64).map(|_| random_scalar(&mut rng)));
    for k in ks {
        let want = coords(ProjectivePoint::GENERATOR * scalar(&k));
        assert_eq!(mul_base(&k).unwrap(), want, "k = {k:02x?}");
    }
}

#[test]
fn mul_matches_on_random_points() {
    let mut rng = latchkey_sys::rng::os();
    let g = coords(ProjectivePoint::GENERATOR);
    let mut points = vec![g];
    points.extend(
        (0..8).map(|_| coords(ProjectivePoint::GENERATOR * scalar(&random_scalar(&mut rng)))),
    );
    for (x, y) in &points {
        let p = ProjectivePoint::from(
            AffinePoint::from_sec1_bytes(&[&[4u8][..], x, y].concat()).unwrap(),
        );
        let mut ks = edge_scalars();
        ks.extend((0..16).map(|_| random_scalar(&mut rng)));
        for k in ks {
            let want = coords(p * scalar(&k));
            assert_eq!(mul(&k, x, y).unwrap(), want, "k = {k:02x?}");
        }
    }
}

#[test]
fn exchange_identity_holds() {
    // a·(b·G) = b·(a·G) = (ab)·G, all three through this crate.
    let mut rng = latchkey_sys::rng::os();
    for _ in 0..8 {
        let (a, b) = (random_scalar(&mut rng), random_scalar(&mut rng));
        let ag = mul_base(&a).unwrap();
        let bg = mul_base(&b).unwrap();
        let ab: [u8; BYTES] = (scalar(&a) * scalar(&b)).to_repr().into();
        assert_eq!(
            mul(&a, &bg.0, &bg.1).unwrap(),
            mul(&b, &ag.0, &ag.1).unwrap()
        );
        assert_eq!(mul(&a, &bg.0, &bg.1).unwrap(), mul_base(&ab).unwrap());
    }
}

#[test]
fn bad_inputs_are_refused() {
    let (gx, gy) = coords(ProjectivePoint::GENERATOR);
    assert!(is_on_curve(&gx, &gy));
    let mut off = gy;
    off[BYTES - 1] ^= 1;
    assert!(!is_on_curve(&gx, &off));
    assert_eq!(mul(&small(2), &gx, &off), Err(Error::NotOnCurve));
    // Coordinates ≥ p.
    let mut p = [0xffu8; BYTES];
    p[0] = 1;
    assert_eq!(mul(&small(2), &p, &gy), Err(Error::NotOnCurve));
    assert_eq!(mul(&small(2), &gx, &p), Err(Error::NotOnCurve));
    // Scalars: zero and n give infinity; bits above 2^521 are refused.
    assert_eq!(mul_base(&[0; BYTES]), Err(Error::Infinity));
    assert_eq!(mul(&[0; BYTES], &gx, &gy), Err(Error::Infinity));
    let mut n = hex(N_MINUS_1);
    n[BYTES - 1] += 1;
    assert_eq!(mul_base(&n), Err(Error::Infinity));
    assert_eq!(mul(&n, &gx, &gy), Err(Error::Infinity));
    let mut big = [0u8; BYTES];
    big[0] = 2;
    assert_eq!(mul_base(&big), Err(Error::ScalarTooLarge));
}

/// k, n − k and n + k, big-endian.
struct NearScalars {
    k: u64,
    plus_k: [u8; BYTES],
    minus_k: [u8; BYTES],
    n_plus_k: [u8; BYTES],
}

/// k, n − k and n + k for 1 ≤ k ≤ 64: the last windows and comb teeth meet the points in
/// the table there (n − 18 = 32·v − 9 with 32·v ≡ −9 mod n, so the final addition is −9P +
/// −9P). n + k is not a valid scalar for the Tang exchange but is below 2^521, which is
/// all this crate asks of a scalar.
fn near_zero_and_the_order() -> Vec<NearScalars> {
    let n = scalar(&hex(N_MINUS_1)).to_repr();
    (1..=64u64)
        .map(|k| {
            let minus: [u8; BYTES] = (-scalar(&small(k))).to_repr().into();
            // n + k = (n − 1) + (k + 1), carried by hand: Scalar reduces mod n.
            let mut plus: [u8; BYTES] = n.into();
            let mut carry = u16::from(k as u8) + 1;
            for b in plus.iter_mut().rev() {
                let v = u16::from(*b) + carry;
                *b = v as u8;
                carry = v >> 8;
            }
            NearScalars {
                k,
                plus_k: small(k),
                minus_k: minus,
                n_plus_k: plus,
            }
        })
        .collect()
}

#[test]
fn scalars_near_zero_and_the_order_match() {
    let mut rng = latchkey_sys::rng::os();
    let r = ProjectivePoint::GENERATOR * scalar(&random_scalar(&mut rng));
    for p in [ProjectivePoint::GENERATOR, r] {
        let (x, y) = coords(p);
        for NearScalars {
            k,
            plus_k,
            minus_k,
            n_plus_k,
        } in near_zero_and_the_order()
        {
            let (want_plus, want_minus) =
                (coords(p * scalar(&plus_k)), coords(-(p * scalar(&plus_k))));
            assert_eq!(mul(&plus_k, &x, &y), Ok(want_plus), "{k}·P");
            assert_eq!(mul(&minus_k, &x, &y), Ok(want_minus), "(n − {k})·P");
            assert_eq!(mul(&n_plus_k, &x, &y), Ok(want_plus), "(n + {k})·P");
            if p == ProjectivePoint::GENERATOR {
                assert_eq!(mul_base(&plus_k), Ok(want_plus), "{k}·G");
                assert_eq!(mul_base(&minus_k), Ok(want_minus), "(n − {k})·G");
                assert_eq!(mul_base(&n_plus_k), Ok(want_plus), "(n + {k})·G");
            }
        }
    }
}

/// Writes the scalars above, on G and on a fixed second point, as inputs of the `p521_mul`
/// fuzz target (k ‖ x ‖ y) into `fuzz/seeds/p521_mul`, where fuzz runs always read them.
#[test]
#[ignore = "writes fuzz/seeds/p521_mul (run by fuzz/seed)"]
fn write_fuzz_seeds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/p521_mul");
    std::fs::create_dir_all(&dir).unwrap();
    let r = ProjectivePoint::GENERATOR * scalar(&small(0x5eed_5eed_5eed_5eed));
    for (name, p) in [("G", ProjectivePoint::GENERATOR), ("R", r)] {
        let (x, y) = coords(p);
        for s in near_zero_and_the_order() {
            for (label, k) in [("k", s.plus_k), ("n-k", s.minus_k), ("n+k", s.n_plus_k)] {
                let file = dir.join(format!("{label}-{}-{name}", s.k));
                std::fs::write(file, [&k[..], &x, &y].concat()).unwrap();
            }
        }
    }
}
