//! Pieces of the cli's interop tests: running `latchkey` and `clevis` with stdin, and
//! misbehaving servers. The Tang fixture and process helpers are latchkey-testkit's.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::thread;
use std::time::Duration;

pub use latchkey_testkit::*;

pub fn latchkey() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_latchkey"));
    c.env_remove("http_proxy").env_remove("HTTP_PROXY");
    c
}

pub fn clevis() -> Command {
    Command::new("clevis")
}

/// `clevis encrypt PIN CONFIG -y` of `secret`; the compact JWE.
pub fn clevis_encrypt(pin: &str, config: &str, secret: &[u8], yes: bool) -> String {
    let mut cmd = clevis();
    cmd.args(["encrypt", pin, config]);
    if yes {
        cmd.arg("-y");
    }
    let out = run_with(&mut cmd, secret, Duration::from_secs(20));
    assert!(
        out.status.success(),
        "clevis encrypt {pin} {config}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `latchkey encrypt PIN CONFIG -y` of `secret`; the compact JWE.
pub fn latchkey_encrypt(pin: &str, config: &str, secret: &[u8]) -> String {
    let out = run_with(
        latchkey().args(["encrypt", pin, config, "-y"]),
        secret,
        Duration::from_secs(20),
    );
    assert!(
        out.status.success(),
        "latchkey encrypt {pin} {config}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let jwe = String::from_utf8(out.stdout).unwrap();
    assert!(!jwe.ends_with('\n'), "JWE must not end with a newline");
    jwe
}

/// Decrypts with `latchkey decrypt`, asserting success; the plaintext.
pub fn latchkey_decrypt(jwe: &str) -> Vec<u8> {
    let out = run_with(
        latchkey().arg("decrypt"),
        jwe.as_bytes(),
        Duration::from_secs(20),
    );
    assert!(
        out.status.success(),
        "latchkey decrypt: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Decrypts with `clevis decrypt`, asserting success; the plaintext.
pub fn clevis_decrypt(jwe: &str) -> Vec<u8> {
    let out = run_with(
        clevis().arg("decrypt"),
        jwe.as_bytes(),
        Duration::from_secs(20),
    );
    assert!(
        out.status.success(),
        "clevis decrypt: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A loopback server that answers every request with `reply` and keeps the connection
/// open (like tangd). Lives as long as the test process.
pub fn fixed_server(reply: &'static [u8]) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", l.local_addr().unwrap().port());
    thread::spawn(move || {
        let mut open = Vec::new();
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 8192];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let _ = s.write_all(reply);
            open.push(s);
        }
    });
    url
}

/// A loopback server that accepts connections and never answers.
pub fn hanging_server() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", l.local_addr().unwrap().port());
    thread::spawn(move || {
        let mut open = Vec::new();
        for s in l.incoming().flatten() {
            open.push(s);
        }
    });
    url
}
