//! Offline recovery with the codes as text, end to end: the JWEs clevis made, answered
//! from the sample servers' real key directories through tang's `/rec` handler.

mod common;

use common::*;
use latchkey_proto::curve::{Curve, EcBackend, RustCrypto, random_scalar};
use latchkey_proto::jwe::Jwe;
use latchkey_proto::jwk::{Jwk, ThpHash};
use latchkey_proto::pin::Status;
use latchkey_proto::recovery::{
    AnswerCode, Recovery, RecoveryError, RequestCode, State, answer_from_keys,
};

fn db_of(url: &str) -> &'static str {
    SERVERS.iter().find(|(u, _)| *u == url).unwrap().1
}

/// What `tangd recover --keys DB` does with the text of a request code; the answer's text.
fn answer_text(code_text: &str, db: &str, kid: Option<&str>) -> Result<String, RecoveryError> {
    let code = RequestCode::parse(code_text)?;
    answer_from_keys(&code, &keys(db), kid, db, &RustCrypto).map(|a| a.to_string())
}

fn passphrase(rec: &Recovery) -> Vec<u8> {
    match rec.status() {
        Status::Done(s) => s.expose().to_vec(),
        Status::Pending => panic!("pending: {}", rec.progress()),
        Status::Failed(e) => panic!("failed: {e}"),
    }
}

#[track_caller]
fn err<T>(r: Result<T, RecoveryError>) -> RecoveryError {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

#[test]
fn every_clevis_sample_recovers_through_codes() {
    for (file, expected, needed) in [
        ("jwe/tang.jwe", "tang-sample-passphrase-1", 1),
        ("jwe/tang-thp-s1.jwe", "tang-thp-S1-passphrase", 1),
        // Its kid is a hidden key of tang-db-rot now: /adv no longer lists it.
        ("jwe/tang-prerotation.jwe", "pre-rotation-passphrase", 1),
        ("jwe/sss-2of3-tang.jwe", "sss-2of3-tang-passphrase", 2),
        ("jwe/sss-nested.jwe", "sss-nested-passphrase", 2),
    ] {
        let jwe = Jwe::parse(&text(file)).unwrap();
        let mut rec = Recovery::new(&jwe, &mut rng()).unwrap();
        let answers: Vec<String> = rec
            .challenges()
            .iter()
            .map(|c| answer_text(&c.code.to_string(), db_of(&c.url), None).unwrap())
            .collect();
        // Answers in reverse order; only as many as the tree needs.
        let mut used = 0;
        for a in answers.iter().rev() {
            if matches!(rec.status(), Status::Done(_)) {
                break;
            }
            match rec.answer(&AnswerCode::parse(a).unwrap()) {
                Ok(_) => used += 1,
                // Nested: code 3 settled the inner sss, so code 2 is not needed.
                Err(RecoveryError::NotNeeded(2)) if file.contains("nested") => {}
                Err(e) => panic!("{file}: {e}"),
            }
        }
        assert_eq!(used, needed, "{file}");
        assert_eq!(passphrase(&rec), expected.as_bytes(), "{file}");
    }
}

#[test]
fn state_resumes_in_another_process_with_the_same_codes() {
    let jwe = Jwe::parse(&text("jwe/sss-2of3-tang.jwe")).unwrap();
    let first = Recovery::new(&jwe, &mut rng()).unwrap();
    let bytes = first.state().to_bytes();
    let codes: Vec<String> = first
        .challenges()
        .iter()
        .map(|c| c.code.to_string())
        .collect();
    drop(first);
    let state = State::parse(bytes.expose()).unwrap();
    assert!(state.is_for(&jwe));
    let mut rec = Recovery::resume(&jwe, &state).unwrap();
    let again: Vec<String> = rec
        .challenges()
        .iter()
        .map(|c| c.code.to_string())
        .collect();
    assert_eq!(again, codes);
    for c in &rec.challenges()[1..].to_vec() {
        let a = answer_text(&codes[c.number - 1], db_of(&c.url), None).unwrap();
        assert_eq!(
            rec.answer(&AnswerCode::parse(&a).unwrap()).unwrap(),
            c.number
        );
    }
    assert_eq!(passphrase(&rec), b"sss-2of3-tang-passphrase");

    // Another binding's state, and one with an e too few or too many.
    let other = Jwe::parse(&text("jwe/tang.jwe")).unwrap();
    let e = err(Recovery::resume(&other, &state));
    assert!(matches!(e, RecoveryError::StateMismatch(_)), "{e}");
    let text = String::from_utf8(bytes.expose().to_vec()).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let extra = lines[3];
    lines.push(extra);
    let more = State::parse(lines.join("\n").as_bytes()).unwrap();
    assert!(matches!(
        err(Recovery::resume(&jwe, &more)),
        RecoveryError::StateMismatch(m) if m.contains("more e lines")
    ));
    lines.truncate(4);
    let fewer = State::parse(lines.join("\n").as_bytes()).unwrap();
    assert!(matches!(
        err(Recovery::resume(&jwe, &fewer)),
        RecoveryError::StateMismatch(m) if m.contains("fewer e lines")
    ));
    // An e that is no scalar (zero) is refused, not multiplied.
    let zero = text.replacen(
        text.lines().nth(2).unwrap(),
        &format!("e {}", latchkey_proto::b64::encode(&[0; 66])),
        1,
    );
    let zero = State::parse(zero.as_bytes()).unwrap();
    assert!(matches!(
        err(Recovery::resume(&jwe, &zero)),
        RecoveryError::StateMismatch(_)
    ));
}

#[test]
fn progress_names_what_is_missing() {
    let jwe = Jwe::parse(&text("jwe/sss-2of3-tang.jwe")).unwrap();
    let mut rec = Recovery::new(&jwe, &mut rng()).unwrap();
    assert_eq!(
        rec.progress(),
        "2 of 3 answers needed; have 0; still needed: 2 of [code 1 (http://127.0.0.1:18081), \
         code 2 (http://127.0.0.1:18082), code 3 (http://127.0.0.1:18083)]"
    );
    let c = rec.challenges()[1].clone();
    let a = answer_text(&c.code.to_string(), db_of(&c.url), None).unwrap();
    rec.answer(&AnswerCode::parse(&a).unwrap()).unwrap();
    assert_eq!(
        rec.progress(),
        "2 of 3 answers needed; have 1; still needed: 1 of [code 1 (http://127.0.0.1:18081), \
         code 3 (http://127.0.0.1:18083)]"
    );
    // The same answer again changes nothing and says so.
    assert_eq!(
        err(rec.answer(&AnswerCode::parse(&a).unwrap())),
        RecoveryError::NotNeeded(2)
    );

    let nested = Jwe::parse(&text("jwe/sss-nested.jwe")).unwrap();
    let rec = Recovery::new(&nested, &mut rng()).unwrap();
    assert_eq!(
        rec.progress(),
        "2 of 2 shares needed; have 0; still needed: all of [code 1 (http://127.0.0.1:18081), \
         1 of [code 2 (http://127.0.0.1:18082), code 3 (http://127.0.0.1:18083)]]"
    );
    let single = Recovery::new(&Jwe::parse(&text("jwe/tang.jwe")).unwrap(), &mut rng()).unwrap();
    assert_eq!(
        single.progress(),
        "1 answer needed: code 1 (http://127.0.0.1:18081)"
    );
}

#[test]
fn answers_for_other_codes_are_refused_and_nothing_is_lost() {
    let jwe = Jwe::parse(&text("jwe/tang.jwe")).unwrap();
    let mut rec = Recovery::new(&jwe, &mut rng()).unwrap();
    let mine = rec.challenges()[0].clone();

    // An answer to another challenge of the same disk.
    let other = Recovery::new(&jwe, &mut rng()).unwrap();
    let a = answer_text(&other.challenges()[0].code.to_string(), "tang-db", None).unwrap();
    let e = err(rec.answer(&AnswerCode::parse(&a).unwrap()));
    assert_eq!(e, RecoveryError::NotForThisCode { code: None });
    assert!(
        e.to_string()
            .starts_with("this answer is not for this code"),
        "{e}"
    );

    // The right request answered with another key (a wrong --kid): the tag matches,
    // the JWE's authentication does not.
    let wrong_key = keys("tang-db2")
        .into_iter()
        .find(|k| k.allows("deriveKey"))
        .unwrap()
        .thumbprint(ThpHash::S256);
    let keys_both: Vec<Jwk> = keys("tang-db")
        .into_iter()
        .chain(keys("tang-db2"))
        .collect();
    let code = RequestCode::parse(&mine.code.to_string()).unwrap();
    let a = answer_from_keys(&code, &keys_both, Some(&wrong_key), "both", &RustCrypto).unwrap();
    let e = err(rec.answer(&a));
    assert_eq!(e, RecoveryError::NotForThisCode { code: Some(1) });
    assert!(e.to_string().contains("code 1"), "{e}");
    assert!(matches!(rec.status(), Status::Pending));

    // A request code where an answer belongs.
    assert!(matches!(
        AnswerCode::parse(&mine.code.to_string()),
        Err(RecoveryError::WrongKind { .. })
    ));

    // The right answer still works after all that.
    let a = answer_text(&mine.code.to_string(), "tang-db", None).unwrap();
    assert_eq!(rec.answer(&AnswerCode::parse(&a).unwrap()).unwrap(), 1);
    assert_eq!(passphrase(&rec), b"tang-sample-passphrase-1");
}

#[test]
fn the_tang_side_resolves_key_tags_or_says_why_not() {
    let jwe = Jwe::parse(&text("jwe/tang.jwe")).unwrap();
    let rec = Recovery::new(&jwe, &mut rng()).unwrap();
    let c = &rec.challenges()[0];
    assert_eq!(c.kid, "Hk_gGBVF5MTLuXfJvfnQYraEqI_SWT33ykzPmp6Ejrw");
    let text = c.code.to_string();

    // Another server's keys: none matches.
    let e = err(answer_text(&text, "tang-db2", None));
    assert_eq!(
        e,
        RecoveryError::UnknownKey {
            server: "tang-db2".into()
        }
    );
    assert!(e.to_string().contains("--kid"), "{e}");
    // --kid naming no key of the directory.
    let e = err(answer_text(&text, "tang-db2", Some(&c.kid)));
    assert!(matches!(e, RecoveryError::UnknownKid { .. }), "{e}");
    // --kid naming the signing key: tang's 403, as an exchange error.
    let sig = keys("tang-db")
        .into_iter()
        .find(|k| k.allows("sign"))
        .unwrap()
        .thumbprint(ThpHash::S1);
    let e = err(answer_text(&text, "tang-db", Some(&sig)));
    assert!(matches!(e, RecoveryError::Exchange(_)), "{e}");
    // --kid with the S1 form works like the tag.
    let s1 = keys("tang-db")
        .into_iter()
        .find(|k| k.allows("deriveKey"))
        .unwrap()
        .thumbprint(ThpHash::S1);
    assert_eq!(
        answer_text(&text, "tang-db", Some(&s1)).unwrap(),
        answer_text(&text, "tang-db", None).unwrap()
    );

    // Two exchange keys whose thumbprints share the first 10 bits.
    let mut seen: Vec<Jwk> = Vec::new();
    let (a, b) = loop {
        let k = Jwk::generate(Curve::P521, "ECMR", &["deriveKey"], &mut rng());
        let tag = |k: &Jwk| {
            let d = k.thumbprint_digest(ThpHash::S256);
            (d[0], d[1] >> 6)
        };
        if let Some(prev) = seen.iter().find(|p| tag(p) == tag(&k)) {
            break (prev.clone(), k);
        }
        seen.push(k);
    };
    let x = RustCrypto
        .mul_base(Curve::P521, &random_scalar(Curve::P521, &mut rng()))
        .unwrap();
    let code = RequestCode::new(&x, a.point().unwrap());
    let both = [a.clone(), b.clone()];
    let e = err(answer_from_keys(&code, &both, None, "dir", &RustCrypto));
    match &e {
        RecoveryError::AmbiguousKey { candidates, .. } => {
            assert_eq!(candidates.len(), 2);
            assert!(candidates.contains(&a.thumbprint(ThpHash::S256)));
        }
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains("--kid"), "{e}");
    // --kid settles it.
    answer_from_keys(
        &code,
        &both,
        Some(&a.thumbprint(ThpHash::S256)),
        "dir",
        &RustCrypto,
    )
    .unwrap();
}

#[test]
fn a_tang_reply_off_the_curve_is_refused() {
    let jwe = Jwe::parse(&text("jwe/tang.jwe")).unwrap();
    let rec = Recovery::new(&jwe, &mut rng()).unwrap();
    let code = rec.challenges()[0].code.clone();
    let (_, good) = http(&data("tang-http/11-post-rec-ok.resp"));
    code.answer_from_reply(&good).unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
    let y = v["y"].as_str().unwrap().to_owned();
    let flipped = format!(
        "{}{}",
        &y[..y.len() - 1],
        if y.ends_with('A') { 'B' } else { 'A' }
    );
    v["y"] = serde_json::Value::String(flipped);
    let e = err(code.answer_from_reply(v.to_string().as_bytes()));
    assert!(
        matches!(e, RecoveryError::Exchange(ref m) if m.contains("point")),
        "{e}"
    );
    assert!(code.answer_from_reply(b"{}").is_err());
}

#[test]
fn bindings_that_need_no_tang_are_sent_to_decrypt() {
    let jwe = Jwe::parse(&text("jwe/sss-2of3-null.jwe")).unwrap();
    assert_eq!(
        err(Recovery::new(&jwe, &mut rng())),
        RecoveryError::NothingToRecover
    );
}

#[test]
fn codes_are_short_enough_to_read_out() {
    let jwe = Jwe::parse(&text("jwe/tang.jwe")).unwrap();
    let rec = Recovery::new(&jwe, &mut rng()).unwrap();
    let code = &rec.challenges()[0].code;
    let symbols = code.code().compact().len();
    assert_eq!(symbols, 119);
    assert!(symbols <= 120);
    let rows = code.code().rows(4);
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r.len() <= 47), "{rows:?}");
}

/// The codes of the McCallum-Relyea exchange in `vectors/tang-vector.json` (X and Y with
/// the fixed e, the tang-db key): the format, pinned.
#[test]
fn code_vectors_of_the_tang_vector() {
    let v: serde_json::Value = serde_json::from_slice(&data("vectors/tang-vector.json")).unwrap();
    let rec = &v["recovery"];
    let body = |k: &str| rec[k].as_str().unwrap().as_bytes().to_vec();
    let x = Jwk::parse(&body(
        "X = C + E  -> request body (sorted compact JSON; clevis appends \\n)",
    ))
    .unwrap();
    let y = Jwk::parse(&body("Y = s*X -> tang reply body (exact bytes)")).unwrap();
    let server = Jwk::from_value(&v["server_ecmr_jwk"]).unwrap();
    let request = RequestCode::new(x.point().unwrap(), server.point().unwrap());
    let answer = AnswerCode::new(y.point().unwrap(), &request);
    let request_text = text("recovery/tang-vector.request.txt");
    let answer_text = text("recovery/tang-vector.answer.txt");
    assert_eq!(request.code().rows(4).join("\n") + "\n", request_text);
    assert_eq!(answer.code().rows(4).join("\n") + "\n", answer_text);
    assert_eq!(RequestCode::parse(&request_text).unwrap(), request);
    assert!(request.names_key(&server));
    let parsed = AnswerCode::parse(&answer_text).unwrap();
    assert_eq!(parsed.point(), y.point().unwrap());
    // tangd's answer to this request is this answer.
    let keys = keys("tang-db");
    assert_eq!(
        answer_from_keys(&request, &keys, None, "tang-db", &RustCrypto).unwrap(),
        answer
    );
}
