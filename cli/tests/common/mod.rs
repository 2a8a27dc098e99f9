//! Pieces of the cli's interop tests: running `latchkey` and `clevis` with stdin, and
//! misbehaving servers. The Tang fixture and process helpers are latchkey-testkit's.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
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

/// The advertisement of `tang` saved to a file (what clevis's `"adv"` config names).
pub fn save_adv(tang: &Tang, dir: &Scratch) -> PathBuf {
    // tang runs behind socat, one process per connection; under load a connection is
    // now and then reset before the reply, so a few attempts are allowed.
    let body = (0..5)
        .find_map(|attempt| {
            if attempt > 0 {
                thread::sleep(Duration::from_millis(100));
            }
            fetch_adv_once(tang.port)
                .map_err(|e| eprintln!("GET /adv from tang, attempt {attempt}: {e}"))
                .ok()
        })
        .expect("tang never answered GET /adv");
    let path = dir.path("adv.jws");
    std::fs::write(&path, body).unwrap();
    path
}

fn fetch_adv_once(port: u16) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.write_all(b"GET /adv HTTP/1.1\r\nHost: x\r\n\r\n")?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf)?;
        all.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&all).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| std::io::Error::other(format!("no Content-Length in {head:?}")))?;
            if body.len() >= len {
                return Ok(body[..len].to_owned());
            }
        }
        if n == 0 {
            return Err(std::io::Error::other("tang closed during /adv"));
        }
    }
}
