//! Times this crate's multiplications against RustCrypto's `p521` on this machine:
//! `cargo run --release -p latchkey-p521 --example speed`.

use std::time::Instant;

use latchkey_p521::{mul, mul_base};
use p521::elliptic_curve::PrimeField;
use p521::{FieldBytes, ProjectivePoint, Scalar};

fn main() {
    const N: u32 = 300;
    let mut k = [0x5au8; 66];
    k[0] = 1;
    let s = Scalar::from_repr(FieldBytes::from(k)).unwrap();
    let (x, y) = mul_base(&k).unwrap();
    let p = ProjectivePoint::GENERATOR * s;

    let time = |name: &str, f: &mut dyn FnMut()| {
        f();
        let t = Instant::now();
        for _ in 0..N {
            f();
        }
        let per = t.elapsed() / N;
        println!("{name:<28} {:>8.1} us", per.as_secs_f64() * 1e6);
        per
    };
    let ours_var = time("latchkey-p521 k*P", &mut || {
        std::hint::black_box(mul(&k, &x, &y).unwrap());
    });
    let ours_base = time("latchkey-p521 k*G", &mut || {
        std::hint::black_box(mul_base(&k).unwrap());
    });
    let rc_var = time("p521 k*P (to affine)", &mut || {
        std::hint::black_box((p * s).to_affine());
    });
    let rc_base = time("p521 k*G (to affine)", &mut || {
        std::hint::black_box((ProjectivePoint::GENERATOR * s).to_affine());
    });
    println!(
        "speed-up: k*P {:.2}x, k*G {:.2}x",
        rc_var.as_secs_f64() / ours_var.as_secs_f64(),
        rc_base.as_secs_f64() / ours_base.as_secs_f64()
    );
}
