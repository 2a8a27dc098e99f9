//! Encryption: round trips through the decryption plan, trust decisions, and headers that
//! match clevis's byte for byte.

mod common;

use common::*;
use latchkey_proto::curve::{Curve, RustCrypto};
use latchkey_proto::jwe::Jwe;
use latchkey_proto::jwk::{Jwk, ThpHash};
use latchkey_proto::pin::{self, Decryption, Status};
use latchkey_proto::{Error, b64, jws, sss, tang};
use serde_json::{Value, json};

const URL1: &str = "http://127.0.0.1:18081";

fn enc(pin: &str, cfg: Value, plaintext: &[u8], yes: bool, io: &mut Io) -> Result<String, Error> {
    pin::encrypt(pin, &cfg, plaintext, yes, io, &mut rng())
}

#[test]
fn null_round_trip_and_fail() {
    let mut io = Io::default();
    let jwe = enc("null", json!({}), b"null secret", false, &mut io).unwrap();
    assert!(!jwe.ends_with('\n'));
    assert_eq!(decrypt(&jwe).unwrap().expose(), b"null secret");
    let failing = enc("null", json!({"fail": true}), b"x", false, &mut io).unwrap();
    assert_eq!(err(decrypt(&failing)), Error::NullFail);
    let h = Jwe::parse(&jwe).unwrap().header;
    let clevis = Jwe::parse(&text("jwe/null.jwe")).unwrap().header;
    let shape = |mut h: Value| {
        h["clevis"]["null"]["jwk"]["k"] = json!("");
        h
    };
    assert_eq!(
        shape(h),
        shape(clevis),
        "same header as clevis encrypt null"
    );
}

#[test]
fn tang_header_is_clevis_byte_for_byte() {
    // Same advertisement file as clevis used for tang-advfile.jwe.
    let mut io = Io {
        files: vec![("adv.jws".into(), data("jwe/adv-for-offline.jws"))],
        ..Io::default()
    };
    let ours = enc(
        "tang",
        json!({"url": URL1, "adv": "adv.jws"}),
        b"tang-adv-file-passphrase",
        false,
        &mut io,
    )
    .unwrap();
    assert!(
        io.fetched.is_empty() && io.asked.is_empty(),
        "an adv file is trusted and needs no HTTP"
    );
    let ours = Jwe::parse(&ours).unwrap();
    let theirs = Jwe::parse(&text("jwe/tang-advfile.jwe")).unwrap();
    let mut header = ours.header.clone();
    header["epk"] = theirs.header["epk"].clone();
    let theirs_bytes = b64::decode(&theirs.protected_b64).unwrap();
    assert_eq!(
        serde_json::to_string(&header).unwrap().into_bytes(),
        theirs_bytes
    );
    assert_eq!(ours.protected_b64.len(), theirs.protected_b64.len());
    assert_eq!(ours.iv.len(), 12);
    assert_eq!(ours.tag.len(), 16);
    assert_eq!(ours.ciphertext.len(), 24);
    assert_eq!(
        decrypt(&ours.to_compact()).unwrap().expose(),
        b"tang-adv-file-passphrase"
    );
}

#[test]
fn tang_trust_decisions() {
    let sig = "45kux_IdAIuGDUtrzdUDqwGgVAZfWVjknmI2sJh7TrA";
    let sig_s1 = "eL_SAkTQGwlmxINGyxpmwoJqcnM";
    let ecmr = "Hk_gGBVF5MTLuXfJvfnQYraEqI_SWT33ykzPmp6Ejrw";
    // No thp, no -y: the operator is asked about the S256 signing thumbprints.
    let mut io = Io::samples();
    let e = enc("tang", json!({"url": URL1}), b"p", false, &mut io).unwrap_err();
    assert!(matches!(e, Error::Untrusted { .. }), "{e}");
    assert_eq!(io.asked, vec![(URL1.to_string(), vec![sig.to_string()])]);
    assert_eq!(io.fetched, vec![format!("{URL1}/adv/")]);
    io.trust_answer = true;
    let jwe = enc("tang", json!({"url": URL1}), b"asked", false, &mut io).unwrap();
    assert_eq!(decrypt(&jwe).unwrap().expose(), b"asked");
    // thp (S256 or S1 of a signing key) is trusted without asking.
    for thp in [sig, sig_s1] {
        let mut io = Io::samples();
        let jwe = enc(
            "tang",
            json!({"url": URL1, "thp": thp}),
            b"thp",
            false,
            &mut io,
        )
        .unwrap();
        assert!(io.asked.is_empty());
        assert_eq!(io.fetched, vec![format!("{URL1}/adv/{thp}")]);
        assert_eq!(decrypt(&jwe).unwrap().expose(), b"thp");
    }
    // Other hashes, or the exchange key, are not trusted.
    let keys = keys("tang-db");
    let s512 = keys
        .iter()
        .find(|k| k.allows("sign"))
        .unwrap()
        .thumbprint(ThpHash::S512);
    for thp in [ecmr, s512.as_str()] {
        let e = enc(
            "tang",
            json!({"url": URL1, "thp": thp}),
            b"p",
            false,
            &mut Io::samples(),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("did not sign the advertisement"),
            "{e}"
        );
    }
    // -y skips the question; the kid is the S256 of the exchange key.
    let mut io = Io::samples();
    let jwe = enc("tang", json!({"url": URL1}), b"yes", true, &mut io).unwrap();
    assert!(io.asked.is_empty());
    assert_eq!(Jwe::parse(&jwe).unwrap().header["kid"], ecmr);
    // Unreachable server, missing url.
    let e = enc(
        "tang",
        json!({"url": "http://127.0.0.1:1"}),
        b"p",
        true,
        &mut Io::samples(),
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "http://127.0.0.1:1/adv/: connection refused");
    let e = enc("tang", json!({}), b"p", true, &mut Io::samples()).unwrap_err();
    assert_eq!(e.to_string(), "tang pin config has no url");
    // A tampered advertisement is refused even with -y.
    let mut io = Io::samples();
    io.advs[0].1 = text("adv/adv-tang-db.json")
        .replace("\"signature\": \"A", "\"signature\": \"B")
        .into_bytes();
    assert!(enc("tang", json!({"url": URL1}), b"p", true, &mut io).is_err());
}

/// A fresh tang server made here: keys from `Jwk::generate`, adv from `jws::sign`.
#[test]
fn tang_round_trip_with_fresh_server_keys() {
    let mut rng = rng();
    let sig = Jwk::generate(Curve::P521, "ES512", &["sign", "verify"], &mut rng);
    let exc = Jwk::generate(Curve::P521, "ECMR", &["deriveKey"], &mut rng);
    let payload = json!({"keys": [sig.public().to_value(), exc.public().to_value()]});
    let adv = jws::sign(payload.to_string().as_bytes(), &[&sig], &mut rng).unwrap();
    let mut io = Io {
        advs: vec![("http://fresh".into(), adv.into_bytes())],
        ..Io::default()
    };
    let thp = sig.thumbprint(ThpHash::S256);
    let jwe = enc(
        "tang",
        json!({"url": "http://fresh", "thp": thp}),
        b"fresh",
        false,
        &mut io,
    )
    .unwrap();
    let db = [sig, exc];
    let got = drive(&jwe, |r| {
        assert_eq!(
            r.rec_url,
            format!("http://fresh/rec/{}", db[1].thumbprint(ThpHash::S256))
        );
        let kid = r.rec_url.rsplit('/').next().unwrap();
        tang::rec(&db, kid, &r.body().unwrap(), &RustCrypto).map_err(|e| e.to_string())
    })
    .unwrap();
    assert_eq!(got.expose(), b"fresh");
}

#[test]
fn sss_nested_round_trip() {
    let cfg = json!({"t": 2, "pins": {
        "tang": [{"url": "http://127.0.0.1:18081"}, {"url": "http://127.0.0.1:18082"}],
        "sss": {"t": 1, "pins": {"null": [{}], "tang": {"url": "http://127.0.0.1:18083"}}},
    }});
    let mut io = Io::samples();
    let text = enc("sss", cfg, b"nested round trip", true, &mut io).unwrap();
    let jwe = Jwe::parse(&text).unwrap();
    let s = &jwe.header["clevis"]["sss"];
    assert_eq!(s["t"], 2);
    assert_eq!(s["jwe"].as_array().unwrap().len(), 3);
    assert!(sss::is_safe_prime(
        &b64::decode(s["p"].as_str().unwrap()).unwrap()
    ));
    assert_eq!(jwe.header["alg"], "dir");
    assert_eq!(decrypt(&text).unwrap().expose(), b"nested round trip");
    // The inner sss resolves through its null pin even with 18083 down; one tang suffices.
    let got = drive(&text, |r| {
        serve(r, &["http://127.0.0.1:18081", "http://127.0.0.1:18083"])
    })
    .unwrap();
    assert_eq!(got.expose(), b"nested round trip");
    let e = err(drive(&text, |r| {
        serve(r, &["http://127.0.0.1:18081", "http://127.0.0.1:18082"])
    }));
    assert!(
        e.to_string()
            .starts_with("sss threshold 2, got 1 of 3 shares"),
        "{e}"
    );
}

#[test]
fn sss_shares_follow_the_config_order_as_written() {
    // clevis makes one share per pin in the order of `pins` as written; a sorted map
    // would put null before tang and sss.
    let config = r#"{"t":1,"pins":{"tang":{"url":"http://127.0.0.1:18081"},"sss":{"pins":{"tang":[{"url":"http://127.0.0.1:18082"}],"null":{}}},"null":[{}]}}"#;
    let mut io = Io::samples();
    let text = pin::encrypt_json("sss", config, b"in order", true, &mut io, &mut rng()).unwrap();
    let pins = |jwe: &Jwe| -> Vec<String> {
        jwe.header["clevis"]["sss"]["jwe"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                Jwe::parse(c.as_str().unwrap())
                    .unwrap()
                    .pin()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    let jwe = Jwe::parse(&text).unwrap();
    assert_eq!(pins(&jwe), ["tang", "sss", "null"]);
    let inner = Jwe::parse(jwe.header["clevis"]["sss"]["jwe"][1].as_str().unwrap()).unwrap();
    assert_eq!(pins(&inner), ["tang", "null"]);
    assert_eq!(decrypt(&text).unwrap().expose(), b"in order");
    // The parsed-Value entry point sorts.
    let cfg: Value = serde_json::from_str(config).unwrap();
    let sorted = Jwe::parse(&enc("sss", cfg, b"sorted", true, &mut io).unwrap()).unwrap();
    assert_eq!(pins(&sorted), ["null", "sss", "tang"]);
    assert!(matches!(
        pin::encrypt_json("sss", "{", b"x", true, &mut io, &mut rng()),
        Err(Error::Config { .. })
    ));
}

#[test]
fn sss_of_nulls_t1_and_config_errors() {
    let mut io = Io::default();
    let one = enc(
        "sss",
        json!({"pins": {"null": {}}}),
        b"t defaults to 1",
        false,
        &mut io,
    )
    .unwrap();
    let jwe = Jwe::parse(&one).unwrap();
    let mut plan = Decryption::new(&jwe, &mut rng()).unwrap();
    assert!(plan.requests().is_empty());
    assert!(matches!(plan.status(), Status::Done(s) if s.expose() == b"t defaults to 1"));
    let e = enc(
        "sss",
        json!({"t": 3, "pins": {"null": [{}, {}]}}),
        b"x",
        false,
        &mut io,
    )
    .unwrap_err();
    assert!(matches!(e, Error::Config { .. }), "{e}");
    let e = enc(
        "sss",
        json!({"t": 1, "pins": {"tpm9": {}}}),
        b"x",
        false,
        &mut io,
    )
    .unwrap_err();
    assert_eq!(e, Error::UnknownPin("tpm9".into()));
    let e = enc("sss", json!({"t": 1}), b"x", false, &mut io).unwrap_err();
    assert_eq!(e.to_string(), "sss pin config has no pins");
    assert_eq!(
        enc("tpm3", json!({}), b"x", false, &mut io).unwrap_err(),
        Error::UnknownPin("tpm3".into())
    );
    // tpm2 is known; without a TPM behind EncryptIo it fails naming the binding.
    assert_eq!(
        enc("tpm2", json!({"pcr_ids": "7"}), b"x", false, &mut io)
            .unwrap_err()
            .to_string(),
        "tpm2 (first active bank:7): this program was built without TPM support"
    );
}
