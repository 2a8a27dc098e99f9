//! `latchkey-agent-tls decrypt` with an `https://` Tang binding: Debian's real
//! tangd behind a TLS front with a test CA's certificate for IP 127.0.0.1. The
//! CA file or the pin given on the command line is what the server must match.
#![cfg(feature = "tls")]

use std::process::{Command, Output};
use std::time::Duration;

use latchkey_testkit::{TlsTang, run_with};

const SECRET: &[u8] = b"recovered over https by the agent";

fn decrypt(s: &TlsTang, args: &[&str]) -> Output {
    run_with(
        Command::new(env!("CARGO_BIN_EXE_latchkey-agent-tls"))
            .arg("decrypt")
            .args(["--timeout", "10", "--deadline", "15"])
            .args(args),
        &s.jwe,
        Duration::from_secs(60),
    )
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn the_ca_or_the_pin_given_opens_and_a_wrong_one_is_named() {
    let Some(s) = TlsTang::start(SECRET) else {
        return;
    };
    let ca = s.pki.dir().join("ca.pem");
    let out = decrypt(&s, &["--ca", ca.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, SECRET);

    let pin = std::fs::read_to_string(s.pki.dir().join("server.pin")).unwrap();
    let out = decrypt(&s, &["--tls-pin", pin.trim()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, SECRET);

    let other = s.pki.dir().join("other-ca.pem");
    let out = decrypt(&s, &["--ca", other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    let e = stderr(&out);
    assert!(e.contains("https://127.0.0.1:"), "{e}");
    assert!(e.contains("unknown issuer"), "{e}");
    assert!(e.contains(other.to_str().unwrap()), "{e}");

    let wrong = format!("sha256:{}", "ab".repeat(32));
    let out = decrypt(&s, &["--tls-pin", &wrong]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("pin mismatch"), "{}", stderr(&out));
}

#[test]
fn a_malformed_pin_or_a_missing_ca_path_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_latchkey-agent-tls"))
        .args(["decrypt", "--tls-pin", "sha256:12ab"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = stderr(&out);
    assert!(
        e.contains("--tls-pin") && e.contains("64 hex digits"),
        "{e}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_latchkey-agent-tls"))
        .args(["decrypt", "--ca"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--ca expects"), "{}", stderr(&out));
}
