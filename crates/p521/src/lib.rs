//! latchkey-p521: P-521 scalar multiplication for the Tang exchange, faster than
//! the generic projective arithmetic it replaces, in pure Rust and constant time.
//!
//! ```text
//!   latchkey-proto (curve::RustCrypto backend, P-521 mul and mul_base)
//!        │ 66-byte big-endian scalars and coordinates
//!   ┌────▼───────────────────────────────────────────────────────────────┐
//!   │ latchkey-p521: mul (signed windows) ─ mul_base (comb, table.rs)     │
//!   │                point (Jacobian, a = −3) ─ field (fiat-crypto)        │
//!   └────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! Every client-side recovery does two P-521 multiplications (`e·G` for the request, `e·S`
//! for the reply) and every `tangd` recovery one; they dominate the time of both. This crate
//! does only those two operations. Validation of scalars against the group order, and
//! everything else, stays with the caller.
//!
//! # Why this crate exists beside RustCrypto's `p521`
//!
//! RustCrypto's `p521` (already a dependency, for JWS and point validation) can do both
//! multiplications. It uses the complete Renes–Costello–Batina formulas in projective
//! coordinates, on the same fiat-crypto field. This crate uses Jacobian coordinates,
//! whose doubling is about half the price, and a precomputed comb for `k·G`; its
//! additions are made complete by selecting the exceptional results in constant time
//! (`point.rs`), so that no scalar is special.
//!
//! Measured on the build machine (`cargo run --release -p latchkey-p521 --example speed`,
//! fastest of 30 rounds; RustCrypto without its lazily built base-point table, which a
//! one-shot process would build on every run):
//!
//! | | this crate | RustCrypto `p521` |
//! | --- | --- | --- |
//! | `k·P` | 358 µs | 425 µs |
//! | `k·G` | 201 µs | 425 µs |
//! | `latchkey decrypt`, one tang binding (median of 150, against our `tangd`) | 1.90 ms | 2.18 ms |
//!
//! `bench/decrypt` is well above its 30x target either way (60x to 100x on a loaded
//! machine); the client overlaps `e·S` with the server's work, so `e·G` is what shows.
//! The price is the code an auditor reads: about 420 lines (`field.rs` wraps fiat's
//! verified field arithmetic, `point.rs` three formulas from the Explicit-Formulas
//! Database and the selections, `mul.rs` the recoding and the two loops; `table.rs` is
//! data checked entry by entry against RustCrypto). Every result is tested against
//! RustCrypto, including k, n − k and n + k for k ≤ 64 on G and a random point, and the
//! `p521_mul` fuzz target compares the two on any input.

#![forbid(unsafe_code)]

mod field;
mod mul;
mod point;
mod table;

pub use field::BYTES;

use point::Affine;

/// A scalar multiplication that cannot produce an affine point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// A coordinate is not below p, or the point is not on P-521.
    NotOnCurve,
    /// The scalar has bits above 2^521.
    ScalarTooLarge,
    /// The result is the point at infinity (the scalar is a multiple of the group order).
    Infinity,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Error::NotOnCurve => "not a point of P-521",
            Error::ScalarTooLarge => "scalar above 2^521",
            Error::Infinity => "the result is the point at infinity",
        })
    }
}

impl std::error::Error for Error {}

/// Affine coordinates, big-endian, 66 bytes each.
pub type Coordinates = ([u8; BYTES], [u8; BYTES]);

/// `k·(x, y)`; the point is validated (coordinates below p, on the curve).
pub fn mul(k: &[u8; BYTES], x: &[u8; BYTES], y: &[u8; BYTES]) -> Result<Coordinates, Error> {
    check_scalar(k)?;
    let p = Affine::from_be_bytes(x, y).ok_or(Error::NotOnCurve)?;
    encode(mul::mul(k, &p))
}

/// `k·G`.
pub fn mul_base(k: &[u8; BYTES]) -> Result<Coordinates, Error> {
    check_scalar(k)?;
    encode(mul::mul_base(k))
}

/// Checks that (x, y) is a point of P-521 with canonical coordinates.
pub fn is_on_curve(x: &[u8; BYTES], y: &[u8; BYTES]) -> bool {
    Affine::from_be_bytes(x, y).is_some()
}

fn check_scalar(k: &[u8; BYTES]) -> Result<(), Error> {
    if k[0] > 1 {
        return Err(Error::ScalarTooLarge);
    }
    Ok(())
}

fn encode(p: point::Jacobian) -> Result<Coordinates, Error> {
    let a = p.to_affine().ok_or(Error::Infinity)?;
    Ok((a.x.to_be_bytes(), a.y.to_be_bytes()))
}
