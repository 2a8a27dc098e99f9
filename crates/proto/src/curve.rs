//! NIST curves and the small arithmetic interface the Tang exchange needs.
//!
//! ```text
//!   tang / jwe / jwk ──► &dyn EcBackend ──► RustCrypto (p256/p384/p521, pure Rust, this crate)
//!                                       └─► tangd's OpenSSL backend (another crate)
//! ```
//!
//! Every point that enters a backend is validated: coordinates of the curve's width and below
//! the field prime, on the curve, not the identity. Every result is checked not to be the
//! identity, so an all-zero shared secret can never come out.

use rand_core::CryptoRng;

use crate::error::{Error, Result};
use crate::secret::Secret;

/// The curves JOSE names P-256, P-384 and P-521.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Curve {
    /// NIST P-256 (`ES256`).
    P256,
    /// NIST P-384 (`ES384`).
    P384,
    /// NIST P-521 (`ES512`; the only curve tang uses).
    P521,
}

impl Curve {
    /// Every supported curve.
    pub const ALL: [Curve; 3] = [Curve::P256, Curve::P384, Curve::P521];

    /// The JWK `crv` name.
    pub fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
        }
    }

    /// Parses a JWK `crv` name.
    pub fn from_name(name: &str) -> Option<Curve> {
        Curve::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Bytes of a coordinate or a private scalar (32, 48, 66).
    pub fn width(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }

    /// The JWS algorithm that signs with this curve.
    pub fn jws_alg(self) -> &'static str {
        match self {
            Curve::P256 => "ES256",
            Curve::P384 => "ES384",
            Curve::P521 => "ES512",
        }
    }
}

/// An affine point with fixed-width big-endian coordinates. Wiped on drop, because a shared
/// point (K = c·S) is key material.
#[derive(Clone, PartialEq, Eq)]
pub struct EcPoint {
    /// The curve the point claims to be on.
    pub crv: Curve,
    /// x, exactly `crv.width()` bytes.
    pub x: Vec<u8>,
    /// y, exactly `crv.width()` bytes.
    pub y: Vec<u8>,
}

impl core::fmt::Debug for EcPoint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Public points are harmless but shared points are not: print only the curve.
        write!(f, "EcPoint({})", self.crv.name())
    }
}

impl Drop for EcPoint {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.x.zeroize();
        self.y.zeroize();
    }
}

impl EcPoint {
    /// The curve of both points, which every two-point operation needs them to share.
    pub fn common_curve(&self, other: &EcPoint) -> Result<Curve> {
        if self.crv != other.crv {
            return Err(Error::InvalidPoint(format!(
                "points on different curves ({} and {})",
                self.crv.name(),
                other.crv.name()
            )));
        }
        Ok(self.crv)
    }

    /// `Ok` if the point says it is on `crv` (membership itself is the backend's check).
    pub fn expect_curve(&self, crv: Curve) -> Result<()> {
        if self.crv != crv {
            return Err(Error::InvalidPoint(format!(
                "expected a {} point, got {}",
                crv.name(),
                self.crv.name()
            )));
        }
        Ok(())
    }

    /// Builds a point, checking only the coordinate widths (curve membership is checked by the
    /// backend that uses it).
    pub fn new(crv: Curve, x: Vec<u8>, y: Vec<u8>) -> Result<EcPoint> {
        let w = crv.width();
        if x.len() != w || y.len() != w {
            return Err(Error::InvalidPoint(format!(
                "{} coordinates must be {w} bytes, got {} and {}",
                crv.name(),
                x.len(),
                y.len()
            )));
        }
        Ok(EcPoint { crv, x, y })
    }

    /// The SEC1 uncompressed encoding `04 ‖ x ‖ y`.
    pub fn to_sec1(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(1 + 2 * self.x.len());
        v.push(4);
        v.extend_from_slice(&self.x);
        v.extend_from_slice(&self.y);
        v
    }

    /// The SEC1 compressed encoding `02 ‖ x` (y even) or `03 ‖ x` (y odd).
    pub fn to_compressed(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(1 + self.x.len());
        v.push(2 | (self.y.last().copied().unwrap_or(0) & 1));
        v.extend_from_slice(&self.x);
        v
    }

    /// The point with this x whose y has this parity: y is recovered from the curve
    /// equation, so x must belong to a point of `crv` (else [`Error::InvalidPoint`]). The
    /// result is validated as every point entering a backend is.
    pub fn from_compressed(crv: Curve, x: &[u8], y_odd: bool) -> Result<EcPoint> {
        if x.len() != crv.width() {
            return Err(Error::InvalidPoint(format!(
                "{} x must be {} bytes, got {}",
                crv.name(),
                crv.width(),
                x.len()
            )));
        }
        let mut sec1 = Vec::with_capacity(1 + x.len());
        sec1.push(if y_odd { 3 } else { 2 });
        sec1.extend_from_slice(x);
        match crv {
            Curve::P256 => p256::decompress(&sec1),
            Curve::P384 => p384::decompress(&sec1),
            Curve::P521 => p521::decompress(&sec1),
        }
    }
}

/// Curve arithmetic for the Tang exchange. Implement it outside this crate for a faster
/// backend; implementations must validate every input point and reject identity results.
pub trait EcBackend: Send + Sync {
    /// `scalar · point`; `scalar_be` is big-endian, exactly `crv.width()` bytes, in [1, n).
    fn mul(&self, crv: Curve, scalar_be: &Secret, point: &EcPoint) -> Result<EcPoint>;
    /// `scalar · G`.
    fn mul_base(&self, crv: Curve, scalar_be: &Secret) -> Result<EcPoint>;
    /// `a + b` (both on the same curve).
    fn add(&self, a: &EcPoint, b: &EcPoint) -> Result<EcPoint>;
    /// `a − b` (both on the same curve).
    fn sub(&self, a: &EcPoint, b: &EcPoint) -> Result<EcPoint>;
    /// Checks that the point is on its curve, in range and not the identity.
    fn validate(&self, point: &EcPoint) -> Result<()>;
}

/// The pure-Rust backend: RustCrypto's `p256`, `p384` and `p521`, except that P-521's two
/// scalar multiplications, the hot path of every Tang recovery, go to `latchkey-p521`
/// (Jacobian formulas and a precomputed comb for G: about 1.2x and 2x faster). Scalars
/// and points are validated here first either way.
#[derive(Debug, Clone, Copy, Default)]
pub struct RustCrypto;

macro_rules! curve_ops {
    ($m:ident, $crv:expr) => {
        mod $m {
            use super::*;
            use ::$m::elliptic_curve::group::Group as _;
            use ::$m::elliptic_curve::sec1::{FromSec1Point, ToSec1Point};
            use ::$m::{AffinePoint, FieldBytes, NonZeroScalar, ProjectivePoint};
            use zeroize::Zeroizing;

            /// True if the bytes are a scalar in [1, n).
            pub(super) fn is_scalar(s: &Secret) -> bool {
                scalar(s).is_ok()
            }

            pub(super) fn validate(p: &EcPoint) -> Result<()> {
                decode(p).map(drop)
            }

            pub(super) fn decode(p: &EcPoint) -> Result<ProjectivePoint> {
                p.expect_curve($crv)?;
                let checked = EcPoint::new(p.crv, p.x.clone(), p.y.clone())?;
                let affine = AffinePoint::from_sec1_bytes(&checked.to_sec1())
                    .map_err(|_| Error::InvalidPoint(format!("not a point of {}", $crv.name())))?;
                let proj = ProjectivePoint::from(affine);
                if bool::from(proj.is_identity()) {
                    return Err(Error::InvalidPoint("identity".into()));
                }
                Ok(proj)
            }

            pub(super) fn decompress(sec1: &[u8]) -> Result<EcPoint> {
                let affine = AffinePoint::from_sec1_bytes(sec1)
                    .map_err(|_| Error::InvalidPoint(format!("not a point of {}", $crv.name())))?;
                encode(&ProjectivePoint::from(affine))
            }

            pub(super) fn encode(p: &ProjectivePoint) -> Result<EcPoint> {
                if bool::from(p.is_identity()) {
                    return Err(Error::InvalidPoint("result is the identity".into()));
                }
                let enc = Zeroizing::new(p.to_affine()).to_sec1_point(false);
                let bytes = enc.as_bytes();
                let w = $crv.width();
                EcPoint::new($crv, bytes[1..1 + w].to_vec(), bytes[1 + w..].to_vec())
            }

            /// The scalar, and the products below, are wiped when dropped (RustCrypto's
            /// scalars and points are `Copy` and never wipe themselves).
            pub(super) fn scalar(s: &Secret) -> Result<Zeroizing<NonZeroScalar>> {
                if s.len() != $crv.width() {
                    return Err(Error::InvalidScalar(format!(
                        "{} scalar must be {} bytes",
                        $crv.name(),
                        $crv.width()
                    )));
                }
                let mut repr = FieldBytes::default();
                repr.copy_from_slice(s.expose());
                let k = Option::from(NonZeroScalar::from_repr(repr));
                repr.iter_mut().for_each(|b| *b = 0);
                k.map(Zeroizing::new)
                    .ok_or_else(|| Error::InvalidScalar("zero or not below the group order".into()))
            }

            pub(super) fn mul(s: &Secret, p: &EcPoint) -> Result<EcPoint> {
                let k = scalar(s)?;
                encode(&Zeroizing::new(decode(p)? * **k))
            }

            pub(super) fn mul_base(s: &Secret) -> Result<EcPoint> {
                let k = scalar(s)?;
                encode(&Zeroizing::new(ProjectivePoint::generator() * **k))
            }

            pub(super) fn add(a: &EcPoint, b: &EcPoint) -> Result<EcPoint> {
                encode(&Zeroizing::new(decode(a)? + decode(b)?))
            }

            pub(super) fn sub(a: &EcPoint, b: &EcPoint) -> Result<EcPoint> {
                encode(&Zeroizing::new(decode(a)? - decode(b)?))
            }
        }
    };
}

curve_ops!(p256, Curve::P256);
curve_ops!(p384, Curve::P384);
curve_ops!(p521, Curve::P521);

macro_rules! dispatch {
    ($crv:expr, $f:ident ( $($arg:expr),* )) => {
        match $crv {
            Curve::P256 => p256::$f($($arg),*),
            Curve::P384 => p384::$f($($arg),*),
            Curve::P521 => p521::$f($($arg),*),
        }
    };
}

/// Draws a uniform private scalar in [1, n) for `crv`, as `crv.width()` big-endian bytes.
///
/// Candidates are drawn with the bits above the order's bit length cleared and rejected
/// unless they are in [1, n) (FIPS 186-5 A.2.2). Without the mask, a P-521 candidate (66
/// bytes, 528 bits, n < 2^521) is accepted once in 128 draws; with it, about every time. The
/// random bytes for several candidates come from one call to the RNG, which here is a
/// system call.
pub fn random_scalar<R: CryptoRng + ?Sized>(crv: Curve, rng: &mut R) -> Secret {
    const BATCH: usize = 4;
    let w = crv.width();
    let top_mask: u8 = match crv {
        Curve::P256 | Curve::P384 => 0xff,
        Curve::P521 => 0x01,
    };
    let mut pool = Secret::new(vec![0u8; w * BATCH]);
    loop {
        rng.fill_bytes(pool.expose_mut());
        for candidate in pool.expose_mut().chunks_exact_mut(w) {
            candidate[0] &= top_mask;
            let k = Secret::from_slice(candidate);
            if dispatch!(crv, is_scalar(&k)) {
                return k;
            }
        }
    }
}

/// P-521 multiplications through `latchkey-p521`, with the same checks and errors as the
/// generic path: the scalar in [1, n), the point on the curve, the result not the identity.
mod fast521 {
    use super::*;
    use zeroize::Zeroize;

    fn scalar(s: &Secret) -> Result<&[u8; 66]> {
        p521::scalar(s)?;
        s.expose()
            .try_into()
            .map_err(|_| Error::InvalidScalar("P-521 scalar must be 66 bytes".into()))
    }

    fn point(
        r: core::result::Result<latchkey_p521::Coordinates, latchkey_p521::Error>,
    ) -> Result<EcPoint> {
        use latchkey_p521::Error as E;
        let (mut x, mut y) = r.map_err(|e| match e {
            E::NotOnCurve => Error::InvalidPoint("not a point of P-521".into()),
            E::Infinity => Error::InvalidPoint("result is the identity".into()),
            E::ScalarTooLarge => Error::InvalidScalar("zero or not below the group order".into()),
        })?;
        let p = EcPoint::new(Curve::P521, x.to_vec(), y.to_vec());
        x.zeroize();
        y.zeroize();
        p
    }

    pub(super) fn mul(s: &Secret, p: &EcPoint) -> Result<EcPoint> {
        let k = scalar(s)?;
        let checked = EcPoint::new(p.crv, p.x.clone(), p.y.clone())?;
        let (Ok(x), Ok(y)) = (
            <&[u8; 66]>::try_from(checked.x.as_slice()),
            <&[u8; 66]>::try_from(checked.y.as_slice()),
        ) else {
            return Err(Error::InvalidPoint(
                "P-521 coordinates must be 66 bytes".into(),
            ));
        };
        point(latchkey_p521::mul(k, x, y))
    }

    pub(super) fn mul_base(s: &Secret) -> Result<EcPoint> {
        point(latchkey_p521::mul_base(scalar(s)?))
    }
}

impl EcBackend for RustCrypto {
    fn mul(&self, crv: Curve, scalar_be: &Secret, point: &EcPoint) -> Result<EcPoint> {
        point.expect_curve(crv)?;
        match crv {
            Curve::P521 => fast521::mul(scalar_be, point),
            _ => dispatch!(crv, mul(scalar_be, point)),
        }
    }

    fn mul_base(&self, crv: Curve, scalar_be: &Secret) -> Result<EcPoint> {
        match crv {
            Curve::P521 => fast521::mul_base(scalar_be),
            _ => dispatch!(crv, mul_base(scalar_be)),
        }
    }

    fn add(&self, a: &EcPoint, b: &EcPoint) -> Result<EcPoint> {
        dispatch!(a.common_curve(b)?, add(a, b))
    }

    fn sub(&self, a: &EcPoint, b: &EcPoint) -> Result<EcPoint> {
        dispatch!(a.common_curve(b)?, sub(a, b))
    }

    fn validate(&self, point: &EcPoint) -> Result<()> {
        dispatch!(point.crv, validate(point))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(crv: Curve) -> Secret {
        let mut v = vec![0u8; crv.width()];
        *v.last_mut().unwrap() = 1;
        Secret::new(v)
    }

    #[test]
    fn group_laws_and_validation() {
        let b = RustCrypto;
        for crv in Curve::ALL {
            let g = b.mul_base(crv, &one(crv)).unwrap();
            b.validate(&g).unwrap();
            let two_g = b.add(&g, &g).unwrap();
            let mut two = vec![0u8; crv.width()];
            *two.last_mut().unwrap() = 2;
            assert_eq!(b.mul(crv, &Secret::new(two), &g).unwrap(), two_g);
            assert_eq!(b.sub(&two_g, &g).unwrap(), g);
            // g - g is the identity: refused.
            assert!(matches!(b.sub(&g, &g), Err(Error::InvalidPoint(_))));
            // off the curve
            let mut bad = g.clone();
            *bad.y.last_mut().unwrap() ^= 1;
            assert!(matches!(b.validate(&bad), Err(Error::InvalidPoint(_))));
            // zero scalar
            assert!(matches!(
                b.mul_base(crv, &Secret::new(vec![0; crv.width()])),
                Err(Error::InvalidScalar(_))
            ));
            // scalar above the order
            assert!(
                b.mul_base(crv, &Secret::new(vec![0xff; crv.width()]))
                    .is_err()
            );
        }
    }

    #[test]
    fn random_scalars_are_in_range_and_use_the_top_bit() {
        let mut rng = latchkey_sys::rng::os();
        for crv in Curve::ALL {
            let mut top_set = 0;
            for _ in 0..64 {
                let k = random_scalar(crv, &mut rng);
                assert_eq!(k.len(), crv.width());
                // In [1, n): usable as a scalar.
                RustCrypto.mul_base(crv, &k).unwrap();
                if crv == Curve::P521 {
                    assert!(k.expose()[0] <= 1, "P-521 scalars have 521 bits");
                }
                top_set += usize::from(k.expose()[0] != 0);
            }
            // The masked top bits are still random (P-521: one bit, set about half the time).
            assert!(top_set > 0, "{}", crv.name());
        }
    }

    #[test]
    fn compressed_points_round_trip_and_off_curve_x_is_refused() {
        let mut rng = latchkey_sys::rng::os();
        for crv in Curve::ALL {
            for _ in 0..8 {
                let p = RustCrypto
                    .mul_base(crv, &random_scalar(crv, &mut rng))
                    .unwrap();
                let c = p.to_compressed();
                assert_eq!(c.len(), 1 + crv.width());
                let back = EcPoint::from_compressed(crv, &c[1..], c[0] == 3).unwrap();
                assert_eq!(back, p);
                // The other parity is the negated point: valid, but another point.
                let neg = EcPoint::from_compressed(crv, &c[1..], c[0] == 2).unwrap();
                assert_eq!(neg.x, p.x);
                assert_ne!(neg.y, p.y);
            }
            // About half of all x have no point; x = 0 is such an x on none of the three
            // curves, so look for one by counting up.
            let off = (0u8..=255)
                .map(|b| {
                    let mut x = vec![0u8; crv.width()];
                    *x.last_mut().unwrap() = b;
                    x
                })
                .find(|x| EcPoint::from_compressed(crv, x, false).is_err())
                .expect("an x off the curve");
            assert!(matches!(
                EcPoint::from_compressed(crv, &off, true),
                Err(Error::InvalidPoint(_))
            ));
            // x not below the field prime, and the wrong width.
            assert!(EcPoint::from_compressed(crv, &vec![0xff; crv.width()], false).is_err());
            assert!(EcPoint::from_compressed(crv, &vec![1; crv.width() - 1], false).is_err());
        }
    }

    #[test]
    fn coordinates_out_of_range_are_rejected() {
        // x = p (the P-256 field prime) with any y: not canonical, must fail.
        let p = hex("ffffffff00000001000000000000000000000000ffffffffffffffffffffffff");
        let pt = EcPoint {
            crv: Curve::P256,
            x: p.clone(),
            y: p,
        };
        assert!(RustCrypto.validate(&pt).is_err());
        // wrong curve label
        let g = RustCrypto.mul_base(Curve::P256, &one(Curve::P256)).unwrap();
        let other = EcPoint {
            crv: Curve::P384,
            x: g.x.clone(),
            y: g.y.clone(),
        };
        assert!(RustCrypto.validate(&other).is_err());
        assert!(RustCrypto.add(&g, &other).is_err());
    }

    use latchkey_testkit::unhex as hex;
}
