//! `tangd recover`: offline recovery codes answered straight from a key directory made by
//! Debian's tangd-keygen, rotated keys included; every answer is checked against s·X
//! computed here from the key file.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::*;
use latchkey_proto::curve::{Curve, EcBackend, EcPoint, RustCrypto, random_scalar};
use latchkey_proto::jwk::{Jwk, ThpHash};
use latchkey_proto::recovery::{AnswerCode, RequestCode, split_codes};
use latchkey_testkit::{KEYGEN, ROTATE};

fn random_point() -> EcPoint {
    RustCrypto
        .mul_base(
            Curve::P521,
            &random_scalar(Curve::P521, &mut latchkey_sys::rng::os()),
        )
        .unwrap()
}

fn recover(dir: &Path, extra: &[&str], input: &str) -> Output {
    let mut child = Command::new(TANGD)
        .args(["recover", "--keys"])
        .arg(dir)
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// The (hidden?, key) exchange keys of a directory.
fn exchange_keys(dir: &Path) -> Vec<(bool, Jwk)> {
    tangd::keydir::load(dir)
        .unwrap()
        .keys
        .into_iter()
        .filter(|k| k.jwk.allows("deriveKey"))
        .map(|k| (k.hidden, k.jwk))
        .collect()
}

/// Asserts that `out` answered `code` with the key `key`.
fn assert_answered(out: &Output, code: &RequestCode, key: &Jwk) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let parts = split_codes(&text);
    assert_eq!(parts.len(), 1, "{text}");
    let answer = AnswerCode::parse(&parts[0].1).unwrap();
    let expected = RustCrypto
        .mul(Curve::P521, key.d().unwrap(), code.point())
        .unwrap();
    assert_eq!(*answer.point(), expected);
    assert_eq!(answer, AnswerCode::new(&expected, code));
}

fn keygen_dir(tag: &str) -> Option<Scratch> {
    if !have(&[KEYGEN, ROTATE]) {
        return None;
    }
    Some(debian_keys(tag))
}

#[test]
fn recover_answers_from_a_debian_key_directory_hidden_keys_included() {
    let Some(dir) = keygen_dir("recover-debian") else {
        return;
    };
    let keys = exchange_keys(dir.dir());
    let [(false, first)] = keys.as_slice() else {
        panic!("one active exchange key expected");
    };
    let first = first.clone();
    let code = RequestCode::new(&random_point(), first.point().unwrap());
    assert_answered(&recover(dir.dir(), &[], &code.to_string()), &code, &first);

    // After tangd-rotate-keys the key is hidden: not advertised, still answered, by tag
    // and by --kid (any thumbprint form).
    debian_rotate(dir.dir());
    let keys = exchange_keys(dir.dir());
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().any(
        |(hidden, k)| *hidden && k.thumbprint(ThpHash::S256) == first.thumbprint(ThpHash::S256)
    ));
    assert_answered(&recover(dir.dir(), &[], &code.to_string()), &code, &first);
    let s1 = first.thumbprint(ThpHash::S1);
    let rows = code.code().rows(4).join("\n");
    assert_answered(&recover(dir.dir(), &["--kid", &s1], &rows), &code, &first);
    let (_, new) = keys.iter().find(|(hidden, _)| !hidden).unwrap();
    let fresh = RequestCode::new(&random_point(), new.point().unwrap());
    assert_answered(&recover(dir.dir(), &[], &fresh.to_string()), &fresh, new);
}

#[test]
fn recover_refuses_unknown_keys_and_points_off_the_curve() {
    let Some(dir) = keygen_dir("recover-refuses") else {
        return;
    };
    let keys = exchange_keys(dir.dir());
    let [(_, key)] = keys.as_slice() else {
        panic!("one exchange key expected");
    };
    let good = RequestCode::new(&random_point(), key.point().unwrap());

    // A code for a key this directory does not have.
    let stranger = RequestCode::new(&random_point(), &random_point());
    let out = recover(dir.dir(), &[], &stranger.to_string());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no exchange key of"), "{err}");
    assert!(err.contains("--kid"), "{err}");
    assert!(out.stdout.is_empty());

    // An x with no point on P-521, in a code whose check symbols are right.
    let mut x = random_point().x.clone();
    while EcPoint::from_compressed(Curve::P521, &x, false).is_ok() {
        x[65] = x[65].wrapping_add(1);
    }
    let forged = RequestCode::new(
        &EcPoint::new(Curve::P521, x, vec![0; 66]).unwrap(),
        key.point().unwrap(),
    );
    let out = recover(dir.dir(), &[], &forged.to_string());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not on P-521"), "{err}");

    // A typo, then a good code: the good one is answered, the run still fails.
    let typo = good
        .to_string()
        .replacen(|c: char| c.is_ascii_alphanumeric(), "", 1);
    let input = format!("{typo}\n\n{good}\n");
    let out = recover(dir.dir(), &[], &input);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the code on line 1"), "{err}");
    assert!(err.contains("118 characters"), "{err}");
    assert_eq!(
        split_codes(&String::from_utf8_lossy(&out.stdout)).len(),
        1,
        "the good code is answered"
    );

    // --kid with several codes, and a --kid the directory does not have.
    let out = recover(dir.dir(), &["--kid", "abc"], &format!("{good}\n{good}\n"));
    assert_eq!(out.status.code(), Some(1));
    let out = recover(dir.dir(), &["--kid", "abc"], &good.to_string());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no key abc"));
    // Nothing on stdin.
    assert_eq!(recover(dir.dir(), &[], "\n").status.code(), Some(1));
}
