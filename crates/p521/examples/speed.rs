//! Times this crate's multiplications against RustCrypto's `p521` on this machine:
//! `cargo run --release -p latchkey-p521 --example speed`.
//!
//! The four operations take turns in short rounds and each reports its fastest round, so
//! that other work on a shared machine slows the figures down as little as possible and
//! both sides alike.

use std::time::{Duration, Instant};

use latchkey_p521::{mul, mul_base};
use p521::elliptic_curve::PrimeField;
use p521::{FieldBytes, ProjectivePoint, Scalar};

struct Op<'a> {
    name: &'static str,
    run: Box<dyn FnMut() + 'a>,
    best: Duration,
}

fn op<'a>(name: &'static str, run: impl FnMut() + 'a) -> Op<'a> {
    Op {
        name,
        run: Box::new(run),
        best: Duration::MAX,
    }
}

fn main() {
    const ROUNDS: u32 = 30;
    const N: u32 = 20;
    let mut k = [0x5au8; 66];
    k[0] = 1;
    let s = Scalar::from_repr(FieldBytes::from(k)).unwrap();
    let (x, y) = mul_base(&k).unwrap();
    let p = ProjectivePoint::GENERATOR * s;

    let mut ops = [
        op("latchkey-p521 k*P", || {
            std::hint::black_box(mul(&k, &x, &y).unwrap());
        }),
        op("latchkey-p521 k*G", || {
            std::hint::black_box(mul_base(&k).unwrap());
        }),
        op("p521 k*P (to affine)", || {
            std::hint::black_box((p * s).to_affine());
        }),
        op("p521 k*G (to affine)", || {
            std::hint::black_box((ProjectivePoint::GENERATOR * s).to_affine());
        }),
    ];
    for _ in 0..ROUNDS {
        for op in ops.iter_mut() {
            let t = Instant::now();
            for _ in 0..N {
                (op.run)();
            }
            op.best = op.best.min(t.elapsed() / N);
        }
    }
    for op in &ops {
        println!("{:<28} {:>8.1} us", op.name, op.best.as_secs_f64() * 1e6);
    }
    let ratio = |a: usize, b: usize| ops[b].best.as_secs_f64() / ops[a].best.as_secs_f64();
    println!("speed-up: k*P {:.2}x, k*G {:.2}x", ratio(0, 2), ratio(1, 3));
}
