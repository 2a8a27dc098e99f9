//! Decrypting the JWEs clevis made, through the plan, with the sample servers simulated by
//! the real exchange (`tang::rec`) over their real key directories.

mod common;

use common::*;
use latchkey_proto::Error;
use latchkey_proto::jwe::Jwe;
use latchkey_proto::pin::{Decryption, Status};

fn plain(file: &str) -> String {
    String::from_utf8(
        decrypt(&text(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .expose()
            .to_vec(),
    )
    .unwrap()
}

#[test]
fn serverless_samples_decrypt_without_requests() {
    for (file, expected) in [
        ("jwe/null.jwe", "null-pin-passphrase"),
        ("jwe/sss-2of3-null.jwe", "sss-2of3-null-passphrase"),
    ] {
        let jwe = Jwe::parse(&text(file)).unwrap();
        let mut plan = Decryption::new(&jwe, &mut rng()).unwrap();
        assert!(plan.requests().is_empty(), "{file}");
        match plan.status() {
            Status::Done(s) => assert_eq!(s.expose(), expected.as_bytes(), "{file}"),
            _ => panic!("{file} not done"),
        }
    }
}

#[test]
fn null_fail_fails_clearly() {
    let e = Decryption::new(&Jwe::parse(&text("jwe/null-fail.jwe")).unwrap(), &mut rng())
        .err()
        .unwrap();
    assert_eq!(e, Error::NullFail);
    assert!(e.to_string().contains("fail"), "{e}");
}

#[test]
fn tang_samples_decrypt() {
    assert_eq!(plain("jwe/tang.jwe"), "tang-sample-passphrase-1");
    assert_eq!(plain("jwe/tang-thp-s256.jwe"), "tang-thp-S256-passphrase");
    assert_eq!(plain("jwe/tang-thp-s1.jwe"), "tang-thp-S1-passphrase");
    assert_eq!(plain("jwe/tang-advfile.jwe"), "tang-adv-file-passphrase");
    // Its kid is now a hidden (rotated) key of tang-db-rot.
    assert_eq!(plain("jwe/tang-prerotation.jwe"), "pre-rotation-passphrase");
}

#[test]
fn sss_tang_samples_decrypt() {
    assert_eq!(plain("jwe/sss-2of3-tang.jwe"), "sss-2of3-tang-passphrase");
    assert_eq!(plain("jwe/sss-nested.jwe"), "sss-nested-passphrase");
}

/// A file of the LUKS2 sample (tokens and keyslot passphrases), kept with the
/// luks crate's test data.
fn luks2(name: &str) -> String {
    format!("../../../luks/tests/data/luks2/{name}")
}

#[test]
fn luks2_token_jwes_decrypt_to_the_slot_passphrases() {
    for (token, slot) in [(0, 1), (1, 2), (2, 3), (5, 7)] {
        let got = decrypt(&text(&luks2(&format!("token{token}.json")))).unwrap();
        assert_eq!(
            got.expose(),
            data(&luks2(&format!("slot{slot}.passphrase"))),
            "token {token}"
        );
        let got = decrypt(&text(&luks2(&format!("token{token}.compact.jwe")))).unwrap();
        assert_eq!(
            got.expose(),
            data(&luks2(&format!("slot{slot}.passphrase"))),
            "token {token}"
        );
    }
}

#[test]
fn luks2_tokens_convert_losslessly() {
    for token in [0, 1, 2, 5] {
        let json: serde_json::Value =
            serde_json::from_slice(&data(&luks2(&format!("token{token}.json")))).unwrap();
        let compact = text(&luks2(&format!("token{token}.compact.jwe")));
        let from_json = Jwe::from_json(&json["jwe"]).unwrap();
        assert_eq!(from_json.to_compact(), compact.trim_end());
        let from_compact = Jwe::parse(&compact).unwrap();
        assert_eq!(
            from_compact.to_flattened_json(),
            serde_json::to_string(&json["jwe"]).unwrap()
        );
        // the whole token is accepted too
        assert_eq!(
            Jwe::parse(&text(&luks2(&format!("token{token}.json")))).unwrap(),
            from_compact
        );
    }
}

#[test]
fn sss_survives_one_server_down_and_reports_two() {
    let jwe = text("jwe/sss-2of3-tang.jwe");
    let got = drive(&jwe, |r| serve(r, &["http://127.0.0.1:18082"])).unwrap();
    assert_eq!(got.expose(), b"sss-2of3-tang-passphrase");
    let e = err(drive(&jwe, |r| {
        serve(r, &["http://127.0.0.1:18082", "http://127.0.0.1:18083"])
    }));
    let msg = e.to_string();
    assert_threshold(&e, 2, 1, 3);
    assert!(msg.contains("threshold 2, got 1 of 3 shares"), "{msg}");
    assert!(
        msg.contains("http://127.0.0.1:18082: connection refused"),
        "{msg}"
    );
    assert!(
        msg.contains("http://127.0.0.1:18083: connection refused"),
        "{msg}"
    );
}

#[test]
fn plan_resolves_as_soon_as_it_can() {
    let jwe = Jwe::parse(&text("jwe/sss-2of3-tang.jwe")).unwrap();
    let mut plan = Decryption::new(&jwe, &mut rng()).unwrap();
    let reqs = plan.requests();
    assert_eq!(reqs.len(), 3);
    assert!(
        plan.requests().is_empty(),
        "each request is handed out once"
    );
    plan.supply(reqs[0].id, serve(&reqs[0], &[]));
    assert!(matches!(plan.status(), Status::Pending));
    plan.supply(reqs[0].id, Err("duplicate is ignored".into()));
    assert!(matches!(plan.status(), Status::Pending));
    plan.supply(reqs[2].id, serve(&reqs[2], &[]));
    assert!(
        matches!(plan.status(), Status::Done(_)),
        "done at the threshold, third still outstanding"
    );
    assert_eq!(plan.outstanding(), 0);
    // Fails early: two of three down is decided before the third answers.
    let mut plan = Decryption::new(&jwe, &mut rng()).unwrap();
    let reqs = plan.requests();
    plan.supply(reqs[0].id, Err("timed out".into()));
    assert!(matches!(plan.status(), Status::Pending));
    plan.supply(reqs[1].id, Err("timed out".into()));
    assert!(matches!(
        plan.status(),
        Status::Failed(Error::Threshold { .. })
    ));
}

#[test]
fn nested_sss_needs_the_outer_threshold() {
    // t=2 over [tang 18081, sss(t=1, [18082, 18083])]
    let jwe = text("jwe/sss-nested.jwe");
    let got = drive(&jwe, |r| serve(r, &["http://127.0.0.1:18082"])).unwrap();
    assert_eq!(got.expose(), b"sss-nested-passphrase");
    let e = err(drive(&jwe, |r| {
        serve(r, &["http://127.0.0.1:18082", "http://127.0.0.1:18083"])
    }));
    assert!(
        e.to_string().contains("threshold 1, got 0 of 2 shares"),
        "{e}"
    );
    let e = err(drive(&jwe, |r| serve(r, &["http://127.0.0.1:18081"])));
    assert!(
        e.to_string()
            .contains("http://127.0.0.1:18081: connection refused"),
        "{e}"
    );
}
