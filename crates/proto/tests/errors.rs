//! Broken inputs each give a specific error: truncated or garbled JWEs, wrong tags, missing
//! header fields, unknown pins, bad shares, and bad server replies.

mod common;

use common::*;
use latchkey_proto::jwe::Jwe;
use latchkey_proto::pin::{Decryption, Status};
use latchkey_proto::{Error, b64};
use serde_json::json;

fn new_err(text: &str) -> Error {
    match Jwe::parse(text) {
        Err(e) => e,
        Ok(jwe) => err(Decryption::new(&jwe, &mut rng())),
    }
}

#[test]
fn truncated_jwes() {
    let t = text("jwe/tang.jwe");
    let dots: Vec<usize> = t.match_indices('.').map(|(i, _)| i).collect();
    assert_eq!(new_err(&t[..dots[3]]).to_string(), "JWE has no tag");
    assert_eq!(new_err(&t[..dots[2]]).to_string(), "JWE has no ciphertext");
    assert_eq!(
        new_err(&t[..dots[0]]).to_string(),
        "JWE has no encrypted_key"
    );
    assert_eq!(new_err(&t[..dots[3] + 1]).to_string(), "JWE has no tag");
    assert!(matches!(new_err(&t[..100]), Error::Missing { .. }));
    assert!(matches!(new_err(""), Error::Invalid { .. }));
    // A cut inside the protected header: base64 or JSON, never a panic.
    for cut in [5, 17, 301, 1193] {
        let s = format!("{}{}", &t[..cut], &t[dots[0]..]);
        assert!(
            matches!(new_err(&s), Error::Base64 { .. } | Error::Json { .. }),
            "cut {cut}"
        );
    }
    // A cut in the ciphertext is caught by the tag, after the server answered.
    let s = format!("{}{}", &t[..dots[3] - 4], &t[dots[3]..]);
    let e = err(decrypt(&s));
    assert_eq!(e.to_string(), "http://127.0.0.1:18081: decryption failed");
}

#[test]
fn garbled_jwes() {
    let t = text("jwe/null.jwe");
    let mut g = t.clone().into_bytes();
    g[0] = b'f';
    assert!(matches!(
        new_err(std::str::from_utf8(&g).unwrap()),
        Error::Json { .. }
    ));
    assert!(matches!(
        new_err(&t.replacen('.', "!", 1)),
        Error::Base64 { .. } | Error::Missing { .. }
    ));
    assert!(matches!(new_err(&format!("{t}.x")), Error::Invalid { .. }));
    assert!(matches!(new_err("{\"protected\":"), Error::Json { .. }));
}

fn flip_part(text: &str, part: usize) -> String {
    let mut parts: Vec<String> = text.split('.').map(String::from).collect();
    let mut raw = b64::decode(&parts[part]).unwrap();
    raw[0] ^= 1;
    parts[part] = b64::encode(&raw);
    parts.join(".")
}

#[test]
fn wrong_tags_and_ciphertexts() {
    let null = text("jwe/null.jwe");
    assert_eq!(new_err(&flip_part(&null, 4)), Error::DecryptFailed);
    assert_eq!(new_err(&flip_part(&null, 3)), Error::DecryptFailed);
    assert_eq!(new_err(&flip_part(&null, 2)), Error::DecryptFailed);
    let tang = text("jwe/tang.jwe");
    assert_eq!(
        err(decrypt(&flip_part(&tang, 4))).to_string(),
        "http://127.0.0.1:18081: decryption failed"
    );
    // Re-serializing clevis's header gives the same bytes (sorted compact, as jose)...
    assert_eq!(edit_header(&null, |_| {}), null.trim());
    // ...and the AAD is the header as received: any other header fails.
    let e = new_err(&edit_header(&null, |h| h["zzz"] = json!(1)));
    assert_eq!(e, Error::DecryptFailed);
    // wrong tag length
    let mut parts: Vec<&str> = null.split('.').collect();
    parts[4] = "AAAA";
    assert!(
        new_err(&parts.join("."))
            .to_string()
            .contains("has an invalid tag")
    );
}

#[test]
fn missing_tang_fields_are_named() {
    let t = text("jwe/tang.jwe");
    let cases: [(&str, &str); 6] = [
        ("/epk", "JWE has no epk"),
        ("/kid", "JWE has no kid"),
        ("/clevis/tang/adv", "JWE has no clevis.tang.adv"),
        ("/clevis/tang/url", "JWE has no clevis.tang.url"),
        ("/clevis/pin", "JWE has no clevis.pin"),
        ("/alg", "JWE has no alg"),
    ];
    for (ptr, msg) in cases {
        let (parent, key) = ptr.rsplit_once('/').unwrap();
        let s = edit_header(&t, |h| {
            let obj = if parent.is_empty() {
                h
            } else {
                h.pointer_mut(parent).unwrap()
            };
            obj.as_object_mut().unwrap().remove(key);
        });
        assert_eq!(new_err(&s).to_string(), msg);
    }
    let s = edit_header(&t, |h| h["kid"] = json!("nope"));
    assert_eq!(new_err(&s), Error::KidNotInAdvertisement("nope".into()));
    let s = edit_header(&t, |h| h["alg"] = json!("RSA-OAEP"));
    assert!(matches!(new_err(&s), Error::Unsupported { .. }));
}

#[test]
fn unknown_pins_are_named() {
    let s = edit_header(&text("jwe/null.jwe"), |h| {
        h["clevis"]["pin"] = json!("tpm3")
    });
    let e = new_err(&s);
    assert_eq!(e, Error::UnknownPin("tpm3".into()));
    assert!(e.to_string().contains("\"tpm3\""));
    // Inside sss an unknown pin is one failed share, as with clevis. The outer JWE is
    // re-encrypted with the sample's recovered key (sss-vector.json) for its new header.
    let sss = text("jwe/sss-2of3-null.jwe");
    let e0 = hex("9d4bcc6dd20b89d5d3eb54ede3383bdc399f9bf785a123b874cb2516afbf5936");
    let reencrypt = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut header = Jwe::parse(&sss).unwrap().header;
        edit(&mut header);
        let cek = latchkey_proto::Secret::new(e0.clone());
        Jwe::encrypt(&header, &cek, b"re-encrypted", &mut rng()).unwrap()
    };
    let one_bad = reencrypt(&|h| {
        let list = h.pointer_mut("/clevis/sss/jwe").unwrap();
        list[0] = json!(edit_header(
            list[0].as_str().unwrap(),
            |c| c["clevis"]["pin"] = json!("tpm3")
        ));
    });
    match Decryption::new(&one_bad, &mut rng()).unwrap().status() {
        Status::Done(s) => assert_eq!(s.expose(), b"re-encrypted"),
        _ => panic!("two good shares of three suffice"),
    }
    let two_bad = edit_header(&sss, |h| {
        let list = h.pointer_mut("/clevis/sss/jwe").unwrap();
        for i in [0, 2] {
            list[i] = json!(edit_header(
                list[i].as_str().unwrap(),
                |c| c["clevis"]["pin"] = json!("tpm3")
            ));
        }
    });
    let e = new_err(&two_bad);
    let msg = e.to_string();
    assert_threshold(&e, 2, 1, 3);
    assert_eq!(
        msg.matches("unknown clevis pin \"tpm3\"").count(),
        2,
        "{msg}"
    );
}

#[test]
fn bad_sss_headers() {
    let sss = text("jwe/sss-2of3-null.jwe");
    for (edit, msg) in [
        (json!({"t": 0}), "JWE has an invalid clevis.sss.t"),
        (json!({"t": 4}), "sss threshold 4, got 0 of 3 shares"),
        (json!({"p": "AAAA"}), "JWE has an invalid clevis.sss.p"),
        (json!({"jwe": "x"}), "JWE has an invalid clevis.sss.jwe"),
    ] {
        let s = edit_header(&sss, |h| {
            for (k, v) in edit.as_object().unwrap() {
                h["clevis"]["sss"][k] = v.clone();
            }
        });
        let e = new_err(&s).to_string();
        assert!(e.starts_with(msg), "{e}");
    }
    let s = edit_header(&sss, |h| {
        h["clevis"]["sss"].as_object_mut().unwrap().remove("p");
    });
    assert_eq!(new_err(&s).to_string(), "JWE has no clevis.sss.p");
}

/// Answers every request with `reply` instead of tang's.
fn with_reply(jwe: &str, reply: &[u8]) -> String {
    let r = reply.to_vec();
    err(drive(jwe, move |_| Ok(r.clone()))).to_string()
}

#[test]
fn bad_replies() {
    let t = text("jwe/tang.jwe");
    let good = {
        let mut got = Vec::new();
        drive(&t, |r| {
            let reply = serve(r, &[]);
            got = reply.clone().unwrap();
            reply
        })
        .unwrap();
        got
    };
    let mut reply: serde_json::Value = serde_json::from_slice(&good).unwrap();
    // off the curve
    let mut y = b64::decode(reply["y"].as_str().unwrap()).unwrap();
    y[65] ^= 1;
    reply["y"] = json!(b64::encode(&y));
    let e = with_reply(&t, &serde_json::to_vec(&reply).unwrap());
    assert!(
        e.starts_with("http://127.0.0.1:18081: invalid EC point"),
        "{e}"
    );
    // coordinates not below p
    reply["x"] = json!(b64::encode(&[0xff; 66]));
    let e = with_reply(&t, &serde_json::to_vec(&reply).unwrap());
    assert!(e.contains("invalid EC point"), "{e}");
    // another curve
    let p256 = latchkey_proto::jwk::Jwk::generate(
        latchkey_proto::curve::Curve::P256,
        "ECMR",
        &[],
        &mut rng(),
    );
    let e = with_reply(&t, &serde_json::to_vec(&p256.public().to_value()).unwrap());
    assert!(e.contains("reply is on P-256, expected P-521"), "{e}");
    // P-521 label on P-256-sized coordinates
    let mut v = p256.public().to_value();
    v["crv"] = json!("P-521");
    assert!(with_reply(&t, &serde_json::to_vec(&v).unwrap()).contains("has an invalid x"));
    // not EC, not JSON, empty
    assert!(with_reply(&t, br#"{"kty":"oct","k":"AA"}"#).contains("unsupported kty"));
    assert!(with_reply(&t, b"<html>").contains("not valid JSON"));
    assert!(with_reply(&t, b"").contains("not valid JSON"));
    // tang's own error statuses, reported by the client as transport errors
    let e = err(drive(&t, |_| Err("HTTP 404".into()))).to_string();
    assert_eq!(e, "http://127.0.0.1:18081: HTTP 404");
    // the reply for another request (another e) does not decrypt
    let e = with_reply(&t, &good);
    assert_eq!(e, "http://127.0.0.1:18081: decryption failed");
}

#[test]
fn wrong_size_shares_fail_the_sss_node() {
    use latchkey_proto::pin;
    use latchkey_proto::sss::Dealer;
    let mut rng = rng();
    let dealer = Dealer::new(2, &mut rng).unwrap();
    let mut io = Io::default();
    let share = dealer.share(&mut rng);
    let good = pin::encrypt("null", &json!({}), share.expose(), true, &mut io, &mut rng).unwrap();
    let short = pin::encrypt("null", &json!({}), &[7u8; 63], true, &mut io, &mut rng).unwrap();
    let header = json!({"alg":"dir","enc":"A256GCM","clevis":{"pin":"sss","sss":{
        "jwe":[short, good.clone(), good], "p": b64::encode(&dealer.prime()), "t": 2}}});
    let outer = Jwe::encrypt(&header, &dealer.key(), b"secret", &mut rng).unwrap();
    let e = err(Decryption::new(&outer, &mut rng));
    assert_eq!(
        e,
        Error::ShareLength {
            got: 63,
            expected: 64
        }
    );
    // Nested: the inner sss fails as a whole and the outer sees one failed child.
    let inner = outer.to_compact();
    let d2 = Dealer::new(1, &mut rng).unwrap();
    let share = d2.share(&mut rng);
    let share = pin::encrypt("null", &json!({}), share.expose(), true, &mut io, &mut rng).unwrap();
    let header = json!({"alg":"dir","enc":"A256GCM","clevis":{"pin":"sss","sss":{
        "jwe":[inner, share], "p": b64::encode(&d2.prime()), "t": 1}}});
    let outer = Jwe::encrypt(&header, &d2.key(), b"nested", &mut rng).unwrap();
    match Decryption::new(&outer, &mut rng).unwrap().status() {
        Status::Done(s) => assert_eq!(s.expose(), b"nested"),
        _ => panic!("the good share suffices"),
    }
}

/// tang.jwe re-encrypted under its own CEK (tang-vector.json) after `edit`, so the header
/// can change while the ECDH secret stays the same.
fn tang_reencrypted(edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut header = Jwe::parse(&text("jwe/tang.jwe")).unwrap().header;
    edit(&mut header);
    let cek = latchkey_proto::Secret::new(hex(
        "e2fedd0692da76ed81981be66db38a94d2cc272bb59c6a05f99f82ab35166c22",
    ));
    Jwe::encrypt(&header, &cek, b"re-encrypted", &mut rng())
        .unwrap()
        .to_compact()
}

#[test]
fn kid_may_be_s1() {
    let s1 = tang_reencrypted(|h| h["kid"] = json!("0C-N825zucXqVFZnZV8ftjbmDIs"));
    assert_eq!(decrypt(&s1).unwrap().expose(), b"re-encrypted");
    let mut seen = String::new();
    drive(&s1, |r| {
        seen = r.rec_url.clone();
        serve(r, &[])
    })
    .unwrap();
    assert_eq!(
        seen,
        "http://127.0.0.1:18081/rec/0C-N825zucXqVFZnZV8ftjbmDIs"
    );
    // S512 is not accepted in a JWE kid (clevis looks up S256, then S1).
    let s512 = tang_reencrypted(|h| {
        h["kid"] = json!(keys("tang-db")[1].thumbprint(latchkey_proto::jwk::ThpHash::S512));
    });
    assert!(matches!(new_err(&s512), Error::KidNotInAdvertisement(_)));
}

#[test]
fn bad_epks_are_refused_before_any_request() {
    // off the curve
    let off = tang_reencrypted(|h| {
        let mut y = b64::decode(h["epk"]["y"].as_str().unwrap()).unwrap();
        y[65] ^= 1;
        h["epk"]["y"] = json!(b64::encode(&y));
    });
    assert!(
        matches!(new_err(&off), Error::InvalidPoint(_)),
        "{}",
        new_err(&off)
    );
    // another curve than the server key
    let p256 = latchkey_proto::jwk::Jwk::generate(
        latchkey_proto::curve::Curve::P256,
        "x",
        &[],
        &mut rng(),
    );
    let other = tang_reencrypted(|h| h["epk"] = p256.public().without_alg_and_ops().to_value());
    assert_eq!(
        new_err(&other).to_string(),
        "invalid EC point: epk is on P-256, the server key on P-521"
    );
    // not EC
    let oct = tang_reencrypted(|h| h["epk"] = json!({"kty": "oct", "k": "AAAA"}));
    assert!(matches!(new_err(&oct), Error::Unsupported { .. }));
}

/// Input that is no JWE at all says what was expected and describes what
/// was found without quoting it (it may be a secret piped by mistake).
#[test]
fn not_a_jwe_says_what_was_expected_and_what_was_found() {
    let expected = "not a JWE: expected a compact JWE (five base64url parts separated by dots, \
                    as clevis encrypt writes) or the JSON of a LUKS2 clevis token (as cryptsetup \
                    token export writes), found ";
    for (input, found) in [
        ("garbage\n", "7 bytes of text with no dots"),
        (
            "my secret.passphrase",
            "20 bytes of text in 2 dot-separated parts",
        ),
        (
            r#"{"type":"luks2","keyslots":{}}"#,
            "a JSON object with members keyslots, type",
        ),
        ("{}", "an empty JSON object"),
        ("[1,2]", "JSON that is an array"),
    ] {
        let e = new_err(input);
        assert_eq!(e.to_string(), format!("{expected}{found}"), "{input:?}");
        assert!(!e.to_string().contains("secret"));
    }
    // What is recognisably a JWE, cut short, names the missing part.
    let t = text("jwe/tang.jwe");
    assert_eq!(
        new_err(&t[..t.find('.').unwrap()]).to_string(),
        "JWE has no encrypted_key"
    );
}

/// Pin configs: each mistake names the pin, the member, what was expected
/// and what was found.
#[test]
fn config_mistakes_say_what_was_expected() {
    let encrypt = |pin: &str, cfg: &str| {
        latchkey_proto::pin::encrypt_json(pin, cfg, b"x", true, &mut Io::samples(), &mut rng())
            .unwrap_err()
            .to_string()
    };
    for (pin, cfg, want) in [
        (
            "tang",
            "http://tang.example",
            r#"tang pin config: CONFIG is not JSON (expected value at line 1 column 1); expected an object such as {"url":"http://tang.example"}"#,
        ),
        (
            "tang",
            r#"[{"url":"http://a"}]"#,
            "tang pin config has an invalid document: expected a JSON object, found an array",
        ),
        (
            "tang",
            r#"{"url":80}"#,
            "tang pin config has an invalid url: expected a string, found a number",
        ),
        (
            "tang",
            r#"{"url":"http://a","adv":{"keys":[]}}"#,
            "tang pin config adv: not a Tang advertisement (a JWS as GET /adv returns): JWS has no payload",
        ),
        (
            "tang",
            r#"{"url":"http://a","adv":"/no/such/file"}"#,
            "tang pin config adv: no such file",
        ),
        (
            "sss",
            r#"{"t":"2","pins":{"null":[{},{}]}}"#,
            "sss pin config has an invalid t: expected an integer ≥ 1, found a string",
        ),
        (
            "sss",
            r#"{"t":1,"pins":["null"]}"#,
            "sss pin config has an invalid pins: expected an object of pin names, found an array",
        ),
        (
            "sss",
            r#"{"t":1,"pins":{"null":true}}"#,
            "sss pin config has an invalid pins.null: expected a pin config (an object) or an array of them, found a boolean",
        ),
        (
            "null",
            r#"{"fail":"yes"}"#,
            "null pin config has an invalid fail: expected a boolean, found a string",
        ),
    ] {
        assert_eq!(encrypt(pin, cfg), want, "{pin} {cfg}");
    }
}
