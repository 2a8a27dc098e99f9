//! tangd's side against the recorded traffic of tang 11: advertisements verify, and
//! `tang::rec` gives tang's reply bytes and statuses for the recorded `/rec` requests.

mod common;

use common::*;
use latchkey_proto::curve::RustCrypto;
use latchkey_proto::jwk::{Jwk, ThpHash};
use latchkey_proto::{Error, b64, jws, tang};

#[test]
fn thumbprints_of_key_files_match_their_names() {
    for db in [
        "tang-db",
        "tang-db2",
        "tang-db3",
        "tang-db-rot",
        "tang-db-auto",
    ] {
        for (file, key) in key_dir(db) {
            let name = file.trim_start_matches('.').trim_end_matches(".jwk");
            assert_eq!(key.thumbprint(ThpHash::S256), name, "{db}/{file}");
        }
    }
    let ecmr = Jwk::parse(&data(
        "tang-db/tang-db/Hk_gGBVF5MTLuXfJvfnQYraEqI_SWT33ykzPmp6Ejrw.jwk",
    ))
    .unwrap();
    assert_eq!(ecmr.thumbprint(ThpHash::S1), "0C-N825zucXqVFZnZV8ftjbmDIs");
    let v: serde_json::Value = serde_json::from_slice(&data("vectors/tang-vector.json")).unwrap();
    assert_eq!(ecmr.thumbprint(ThpHash::S256), v["kid_S256"]);
}

/// The S256 thumbprints an independent verifier found (samples/adv/VERIFY.txt).
const ADVS: &[(&str, &[&str])] = &[
    (
        "adv-tang-db-auto.json",
        &["aH3kUk4nJxdb_ZJlALswwiY6N7WyQNvmZ_PiGF3liuA"],
    ),
    (
        "adv-tang-db-by-sig-thp.json",
        &["45kux_IdAIuGDUtrzdUDqwGgVAZfWVjknmI2sJh7TrA"],
    ),
    (
        "adv-tang-db-rot-after-first-rotation.json",
        &["aYVG4GdxW8EKxRJMjYr5jNqnspif_jpKKXbRi27smjw"],
    ),
    (
        "adv-tang-db-rot-before-rotation.json",
        &["z1n1Yeqy5iLUPUUJllyOlyd1gh2QBha5u19acvC4_Hw"],
    ),
    (
        "adv-tang-db-rot-by-rotated-sig-thp.json",
        &["aYVG4GdxW8EKxRJMjYr5jNqnspif_jpKKXbRi27smjw"],
    ),
    (
        "adv-tang-db-rot-current.json",
        &["FGfyUvNrPJH7QZSKfNA02DRjLlAG-pdoW9RIhO7LahI"],
    ),
    (
        "adv-tang-db.json",
        &["45kux_IdAIuGDUtrzdUDqwGgVAZfWVjknmI2sJh7TrA"],
    ),
    (
        "adv-tang-db2.json",
        &["9JxGbFuPnDgTwq_RsgmzlpBPCn3SMZEs5ggk5Az10BA"],
    ),
    (
        "adv-tang-db3.json",
        &["DqG09F42OMgieP4sFOYgS8E7ErKKNDngJO0uWMdzYt8"],
    ),
    (
        "adv-two-active-signing-keys.json",
        &[
            "45kux_IdAIuGDUtrzdUDqwGgVAZfWVjknmI2sJh7TrA",
            "nD10-vNTbqC8h85Du2dy2l1qzY_jLgcxrXX8sAFqZb4",
        ],
    ),
];

#[test]
fn every_sample_advertisement_verifies() {
    for (file, signers) in ADVS {
        let adv = jws::verify_advertisement(&data(&format!("adv/{file}")))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let got: Vec<String> = adv
            .signing_keys()
            .iter()
            .map(|k| k.thumbprint(ThpHash::S256))
            .collect();
        assert_eq!(got, *signers, "{file}");
        assert_eq!(adv.exchange_keys().len(), 1, "{file}");
        assert!(adv.find_by_thumbprint(signers[0]).is_some());
    }
}

fn tamper(body: &[u8], f: impl Fn(&mut serde_json::Value)) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(body).unwrap();
    f(&mut v);
    serde_json::to_vec(&v).unwrap()
}

fn flip_b64(s: &str, byte: usize) -> String {
    let mut raw = b64::decode(s).unwrap();
    raw[byte] ^= 1;
    b64::encode(&raw)
}

#[test]
fn tampered_advertisements_fail() {
    let body = data("adv/adv-tang-db.json");
    let bad_sig = tamper(&body, |v| {
        let s = flip_b64(v["signature"].as_str().unwrap(), 100);
        v["signature"] = s.into();
    });
    assert!(matches!(
        jws::verify_advertisement(&bad_sig),
        Err(Error::BadSignature(_))
    ));
    let bad_payload = tamper(&body, |v| {
        let p = String::from_utf8(b64::decode(v["payload"].as_str().unwrap()).unwrap()).unwrap();
        v["payload"] = b64::encode(p.replacen("deriveKey", "deriveBits", 1).as_bytes()).into();
    });
    assert!(matches!(
        jws::verify_advertisement(&bad_payload),
        Err(Error::BadSignature(_))
    ));
    // Two signing keys: dropping one signature leaves a verify key that signed nothing.
    let two = data("adv/adv-two-active-signing-keys.json");
    let one_sig = tamper(&two, |v| {
        v["signatures"].as_array_mut().unwrap().pop();
    });
    assert!(matches!(
        jws::verify_advertisement(&one_sig),
        Err(Error::BadSignature(_))
    ));
    let no_sig = tamper(&body, |v| {
        v.as_object_mut().unwrap().remove("signature");
    });
    assert_eq!(
        jws::verify_advertisement(&no_sig).unwrap_err().to_string(),
        "JWS has no signature"
    );
    assert!(jws::verify_advertisement(b"{\"payload\":").is_err());
}

#[test]
fn sign_with_a_tang_key_verifies() {
    let keys = keys("tang-db");
    let sig = keys.iter().find(|k| k.allows("sign")).unwrap();
    let payload =
        serde_json::json!({"keys": keys.iter().map(|k| k.public().to_value()).collect::<Vec<_>>()});
    let payload = serde_json::to_vec(&payload).unwrap();
    let mut rng = rng();
    let body = jws::sign(&payload, &[sig], &mut rng).unwrap();
    let adv = jws::verify_advertisement(body.as_bytes()).unwrap();
    assert_eq!(adv.payload, payload);
    assert_eq!(adv.signing_keys()[0].key_ops().unwrap(), ["verify"]);
    // the ECMR key cannot sign
    let ecmr = keys.iter().find(|k| k.allows("deriveKey")).unwrap();
    assert!(jws::sign(&payload, &[ecmr], &mut rng).is_err());
}

/// Replays every recorded POST /rec against the tang-db keys.
#[test]
fn rec_reproduces_recorded_replies_and_statuses() {
    let keys = keys("tang-db");
    let mut seen = 0;
    for entry in std::fs::read_dir(path("tang-http")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".req") else {
            continue;
        };
        let (line, body) = http(&data(&format!("tang-http/{name}")));
        if !line.starts_with("POST /rec/") {
            continue;
        }
        let kid = line.split(' ').nth(1).unwrap().trim_start_matches("/rec/");
        let (status_line, expected) = http(&data(&format!("tang-http/{stem}.resp")));
        let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        match tang::rec(&keys, kid, &body, &RustCrypto) {
            Ok(reply) => {
                assert_eq!(status, 200, "{stem}");
                assert_eq!(reply, expected, "{stem}: reply bytes");
            }
            Err(e) => assert_eq!(e.status(), status, "{stem}: {e}"),
        }
        seen += 1;
    }
    assert_eq!(seen, 12);
}

#[test]
fn rec_error_cases_beyond_the_recordings() {
    let db = keys("tang-db");
    let kid = "Hk_gGBVF5MTLuXfJvfnQYraEqI_SWT33ykzPmp6Ejrw";
    let (_, ok) = http(&data("tang-http/11-post-rec-ok.req"));
    assert_eq!(
        tang::rec(&[], kid, &ok, &RustCrypto).unwrap_err().status(),
        500
    );
    // a P-256 point on a P-521 key
    let mut rng = rng();
    let p256 = Jwk::generate(
        latchkey_proto::curve::Curve::P256,
        "ECMR",
        &["deriveKey"],
        &mut rng,
    );
    let body = serde_json::to_vec(&p256.public().to_value()).unwrap();
    assert_eq!(
        tang::rec(&db, kid, &body, &RustCrypto)
            .unwrap_err()
            .status(),
        400
    );
    // all five hashes find the key
    let ecmr = tang::find_key(&db, kid).unwrap();
    for h in ThpHash::ALL {
        let reply = tang::rec(&db, &ecmr.thumbprint(h), &ok, &RustCrypto).unwrap();
        assert_eq!(reply, http(&data("tang-http/11-post-rec-ok.resp")).1);
    }
    // exchange with the single key, and a missing/empty body
    assert_eq!(
        tang::exchange(ecmr, b"", &RustCrypto).unwrap_err().status(),
        400
    );
    assert!(tang::exchange(ecmr, &ok, &RustCrypto).is_ok());
    let hidden = keys("tang-db-rot");
    let old = "-9TsOaRKV8d6zqFmtiqGOWdF92DK9T2fWdaBz9hcn1k";
    assert!(
        tang::find_key(&hidden, old).is_some(),
        "hidden keys are found"
    );
}
