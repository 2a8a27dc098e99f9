//! Bad input and bad servers: each gives a specific message on stderr, nothing on stdout,
//! a non-zero exit, and comes back within the timeout.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// Runs `latchkey decrypt ARGS` on `input`; asserts failure and returns stderr.
fn fails(input: &str, args: &[&str]) -> String {
    let out = run_with(
        latchkey().arg("decrypt").args(args),
        input.as_bytes(),
        Duration::from_secs(30),
    );
    assert!(!out.status.success(), "unexpected success");
    assert!(out.stdout.is_empty(), "plaintext leaked: {:?}", out.stdout);
    let err = String::from_utf8(out.stderr).unwrap();
    println!("{err}");
    err
}

/// A tang JWE whose URL points at `url` (a test server) but whose keys are real tang's,
/// made offline by clevis from a saved advertisement.
fn jwe_for(url: &str) -> String {
    let tang = Tang::start();
    let dir = Scratch::new("adv");
    let adv = save_adv(&tang, &dir);
    clevis_encrypt(
        "tang",
        &format!(r#"{{"url":"{url}","adv":"{}"}}"#, adv.display()),
        b"x",
        false,
    )
}

#[test]
fn truncated_and_garbled_jwe() {
    if !have_tools() {
        return;
    }
    let jwe = clevis_encrypt("null", "{}", b"secret", false);
    let parts: Vec<&str> = jwe.split('.').collect();
    assert_eq!(parts.len(), 5);
    let truncated = parts[..3].join(".");
    let err = fails(&truncated, &[]);
    assert!(err.contains("JWE has no ciphertext"), "{err}");
    let err = fails("not a jwe at all", &[]);
    assert!(err.contains("JWE"), "{err}");
    let err = fails("garbage\n", &[]);
    assert!(
        err.contains(
            "not a JWE: expected a compact JWE (five base64url parts separated by dots, as \
             clevis encrypt writes) or the JSON of a LUKS2 clevis token (as cryptsetup token \
             export writes), found 7 bytes of text with no dots"
        ),
        "{err}"
    );
    let err = fails("", &[]);
    assert!(err.contains("no JWE on stdin"), "{err}");
    // A protected header that is not base64url JSON.
    let garbled = format!("eyJ!!!.{}", parts[1..].join("."));
    let err = fails(&garbled, &[]);
    assert!(
        err.contains("JWE protected header is not valid base64url"),
        "{err}"
    );
}

#[test]
fn wrong_tag_releases_nothing() {
    if !have_tools() {
        return;
    }
    let jwe = clevis_encrypt("null", "{}", b"secret", false);
    let (head, tag) = jwe.rsplit_once('.').unwrap();
    let flipped = if tag.starts_with('A') { "B" } else { "A" };
    let bad = format!("{head}.{flipped}{}", &tag[1..]);
    let err = fails(&bad, &[]);
    assert_eq!(err.trim_end(), "latchkey decrypt: decryption failed");
}

/// `latchkey decrypt ARGS` of a JWE for a server that never answers, which must fail
/// within 4 s: the server's URL and the error.
fn fails_on_a_hanging_server(args: &[&str]) -> (String, String) {
    let url = hanging_server();
    let jwe = jwe_for(&url);
    let start = Instant::now();
    let err = fails(&jwe, args);
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "took {:?}",
        start.elapsed()
    );
    (url, err)
}

/// `latchkey decrypt --timeout 5` of a JWE for a server that answers every request
/// with `reply`, which must fail: the server's URL and the error.
fn fails_on_a_reply(reply: &'static [u8]) -> (String, String) {
    let url = fixed_server(reply);
    let err = fails(&jwe_for(&url), &["--timeout", "5"]);
    (url, err)
}

#[test]
fn hanging_server_times_out() {
    if !have_tools() {
        return;
    }
    let (url, err) = fails_on_a_hanging_server(&["--timeout", "1", "--deadline", "5"]);
    assert!(
        err.contains(&format!("{url}: /rec/"))
            && err.contains(": timeout after 1s waiting for the reply"),
        "{err}"
    );
}

#[test]
fn overall_deadline_bounds_everything() {
    if !have_tools() {
        return;
    }
    let (url, err) = fails_on_a_hanging_server(&["--timeout", "30", "--deadline", "1"]);
    assert!(err.contains("no result within the deadline of 1s"), "{err}");
    assert!(
        err.contains(&format!("{url}: no reply before the deadline")),
        "{err}"
    );
}

#[test]
fn quorum_does_not_wait_for_a_hanging_server() {
    if !have_tools() {
        return;
    }
    let hang = hanging_server();
    let t: Vec<Tang> = (0..2).map(|_| Tang::start()).collect();
    let dir = Scratch::new("adv");
    let adv = save_adv(&t[0], &dir);
    let cfg = format!(
        r#"{{"t":2,"pins":{{"tang":[{{"url":"{hang}","adv":"{}"}},{{"url":"{}"}},{{"url":"{}"}}]}}}}"#,
        adv.display(),
        t[0].url,
        t[1].url
    );
    let jwe = clevis_encrypt("sss", &cfg, b"quorum", true);
    let start = Instant::now();
    let out = run_ok_with(
        latchkey().args(["decrypt", "--timeout", "20", "--deadline", "25"]),
        jwe.as_bytes(),
        Duration::from_secs(30),
    );
    assert_eq!(out.stdout, b"quorum");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "waited for the hung server: {:?}",
        start.elapsed()
    );
}

#[test]
fn garbage_json_reply() {
    if !have_tools() {
        return;
    }
    let (url, err) = fails_on_a_reply(b"HTTP/1.1 200 OK\r\nContent-Type: application/jwk+json\r\nContent-Length: 9\r\n\r\n{not json");
    assert!(
        err.contains(&format!("{url}: tang reply is not valid JSON")),
        "{err}"
    );
}

#[test]
fn off_curve_point_reply() {
    if !have_tools() {
        return;
    }
    // (1, 1) is not on P-521: the reply must be rejected, not multiplied.
    let one = format!("{}B", "A".repeat(87));
    let body = format!(
        r#"{{"alg":"ECMR","crv":"P-521","key_ops":["deriveKey"],"kty":"EC","x":"{one}","y":"{one}"}}"#
    );
    let reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/jwk+json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (url, err) = fails_on_a_reply(Box::leak(reply.into_bytes().into_boxed_slice()));
    assert!(err.contains(&format!("{url}: invalid EC point")), "{err}");
}

#[test]
fn http_error_status() {
    if !have_tools() {
        return;
    }
    let (url, err) = fails_on_a_reply(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    assert!(
        err.contains(&format!("{url}: /rec/")) && err.contains(": HTTP status 404"),
        "{err}"
    );
}
