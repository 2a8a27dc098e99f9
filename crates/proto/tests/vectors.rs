//! The intermediate values of clevis/jose/tang, step by step (vectors/tang-vector.json and
//! vectors/sss-vector.json).

mod common;

use common::*;
use latchkey_proto::curve::{EcBackend, EcPoint, RustCrypto};
use latchkey_proto::jwe::{self, Jwe};
use latchkey_proto::jwk::{Jwk, ThpHash};
use latchkey_proto::{Secret, b64, sss, tang};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn vector(name: &str) -> Value {
    serde_json::from_slice(&data(&format!("vectors/{name}"))).unwrap()
}

fn hexs(v: &[u8]) -> String {
    v.iter().map(|b| format!("{b:02x}")).collect()
}

fn point(v: &Value) -> EcPoint {
    Jwk::from_value(v).unwrap().point().unwrap().clone()
}

#[test]
fn tang_vector_step_by_step() {
    let v = vector("tang-vector.json");
    let server = Jwk::from_value(&v["server_ecmr_jwk"]).unwrap();
    assert_eq!(hexs(server.d().unwrap().expose()), v["server_ecmr_d_hex"]);

    // kid and the RFC 7638 hash input
    let input = v["thumbprint_input_json"].as_str().unwrap();
    assert_eq!(
        b64::encode(&Sha256::digest(input.as_bytes())),
        v["kid_S256"]
    );
    assert_eq!(server.thumbprint(ThpHash::S256), v["kid_S256"]);
    assert_eq!(server.thumbprint(ThpHash::S1), v["kid_S1"]);

    // K = s·C, Z = K.x
    let c = point(&v["jwe_epk (C)"]);
    let k = RustCrypto.mul(c.crv, server.d().unwrap(), &c).unwrap();
    assert_eq!(hexs(&k.x), v["K = s*C  (x hex, y hex)"][0]);
    assert_eq!(hexs(&k.y), v["K = s*C  (x hex, y hex)"][1]);
    assert_eq!(hexs(&k.x), v["Z = K.x as 66 bytes (hex)"]);

    // Concat KDF
    let other = jwe::concat_kdf_other_info();
    assert_eq!(
        hexs(&other),
        v["concat_kdf_otherinfo_hex (AlgorithmID||PartyU||PartyV||SuppPubInfo)"]
    );
    let round1 = [&1u32.to_be_bytes()[..], &k.x, &other].concat();
    assert_eq!(hexs(&round1), v["concat_kdf_round1_input_hex"]);
    let cek = jwe::ecdh_es_cek(&Secret::from_slice(&k.x));
    assert_eq!(hexs(cek.expose()), v["CEK (hex)"]);

    // The JWE itself
    let jwe = Jwe::parse(&text("jwe/tang.jwe")).unwrap();
    assert_eq!(hexs(&jwe.iv), v["iv_hex"]);
    assert_eq!(hexs(&jwe.ciphertext), v["ciphertext_hex"]);
    assert_eq!(hexs(&jwe.tag), v["tag_hex"]);
    assert_eq!(
        jwe.decrypt(&cek).unwrap().expose(),
        v["plaintext"].as_str().unwrap().as_bytes()
    );

    // Recovery with the recorded e: request bytes, tang's reply bytes, e·S, K.
    let r = &v["recovery"];
    let e = Secret::new(hex(r["e (client ephemeral private, hex)"]
        .as_str()
        .unwrap()));
    let big_e = RustCrypto.mul_base(c.crv, &e).unwrap();
    assert_eq!(big_e, point(&r["E = e*G"]));
    let s = server.point().unwrap();
    let (body, unblinder) = tang::blind_with(&c, s, e.clone(), &RustCrypto).unwrap();
    let expected_x = r["X = C + E  -> request body (sorted compact JSON; clevis appends \\n)"]
        .as_str()
        .unwrap();
    assert_eq!(body, format!("{expected_x}\n").into_bytes());
    let reply = tang::exchange(&server, &body, &RustCrypto).unwrap();
    assert_eq!(
        reply,
        r["Y = s*X -> tang reply body (exact bytes)"]
            .as_str()
            .unwrap()
            .as_bytes()
    );
    assert_eq!(RustCrypto.mul(c.crv, &e, s).unwrap(), point(&r["e*S"]));
    let z = unblinder.unblind(&reply, &RustCrypto).unwrap();
    assert_eq!(z.expose(), &k.x[..]);
}

#[test]
fn sss_vector() {
    let v = vector("sss-vector.json");
    let p = b64::decode(v["p_b64"].as_str().unwrap()).unwrap();
    assert_eq!(hexs(&p), v["p_hex"]);
    assert!(sss::is_safe_prime(&p));
    let shares: Vec<Secret> = v["shares"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| Secret::new(hex(s["plaintext_64_bytes_hex"].as_str().unwrap())))
        .collect();
    let e0 = v["recovered_key_e0_hex"].as_str().unwrap();
    for pair in [[0, 1], [0, 2], [1, 2]] {
        let got = sss::combine(&p, &[shares[pair[0]].clone(), shares[pair[1]].clone()]).unwrap();
        assert_eq!(hexs(got.expose()), e0, "{pair:?}");
    }
    assert_eq!(
        hexs(sss::combine(&p, &shares).unwrap().expose()),
        e0,
        "3 points of a line"
    );
    assert_ne!(
        hexs(sss::combine(&p, &shares[..1]).unwrap().expose()),
        e0,
        "one share is not enough"
    );
    assert_eq!(b64::encode(&hex(e0)), v["recovered_key_as_jwk"]["k"]);

    // Each inner null JWE holds exactly that share.
    let outer = Jwe::parse(&text("jwe/sss-2of3-null.jwe")).unwrap();
    let inner = outer
        .header
        .pointer("/clevis/sss/jwe")
        .unwrap()
        .as_array()
        .unwrap();
    for (jwe, share) in inner.iter().zip(&v["shares"].as_array().unwrap()[..]) {
        let jwe = Jwe::parse(jwe.as_str().unwrap()).unwrap();
        assert_eq!(
            jwe.header.pointer("/clevis/null/jwk/k").unwrap(),
            &share["inner_null_key_k"]
        );
        let k = Secret::new(b64::decode(share["inner_null_key_k"].as_str().unwrap()).unwrap());
        assert_eq!(
            hexs(jwe.decrypt(&k).unwrap().expose()),
            share["plaintext_64_bytes_hex"]
        );
    }
    let cek = Secret::new(hex(e0));
    assert_eq!(
        outer.decrypt(&cek).unwrap().expose(),
        v["plaintext"].as_str().unwrap().as_bytes()
    );
}
