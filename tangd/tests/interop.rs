//! Interop with Debian's real programs on 127.0.0.1: clevis against our tangd
//! with keys from either side, and the real tangd on directories we made.
//! Needs clevis, tang (/usr/libexec/tangd*), jose and socat (scripts/setup).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use latchkey_proto::jws::verify_advertisement;
use latchkey_testkit::{KEYGEN, ROTATE, Tang as RealTang};

const TOOLS: &[&str] = &[
    "clevis",
    "jose",
    "socat",
    "curl",
    latchkey_testkit::TANGD,
    KEYGEN,
];

fn clevis(args: &[&str], input: &str) -> Result<String, String> {
    let out = run_with(
        Command::new("clevis").args(args),
        input.as_bytes(),
        Duration::from_secs(60),
    );
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn clevis_encrypt(url: &str, plaintext: &str) -> String {
    let cfg = format!(r#"{{"url":"{url}"}}"#);
    clevis(&["encrypt", "tang", &cfg, "-y"], plaintext)
        .unwrap_or_else(|e| panic!("clevis encrypt {url}: {e}"))
}

fn clevis_decrypt(jwe: &str) -> Result<String, String> {
    clevis(&["decrypt"], jwe)
}

/// The `kid` in a clevis tang JWE's protected header.
fn kid(jwe: &str) -> String {
    let protected = jwe.split('.').next().unwrap();
    let header = latchkey_proto::b64::decode(protected).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&header).unwrap();
    v["kid"].as_str().unwrap().to_owned()
}

fn active_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".jwk") && !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

#[test]
fn clevis_round_trip_with_our_keys() {
    if !have(TOOLS) {
        return;
    }
    let dir = our_keys("ours");
    let tangd = Tangd::start(dir.dir(), &[]);
    let jwe = clevis_encrypt(&tangd.url(), "our-keys-secret");
    assert_eq!(clevis_decrypt(&jwe).unwrap(), "our-keys-secret");
}

#[test]
fn debian_keygen_and_rotate_while_serving() {
    if !have(TOOLS) || !have(&[ROTATE]) {
        return;
    }
    let dir = debian_keys("debian");
    let tangd = Tangd::start(dir.dir(), &[]);
    let before = clevis_encrypt(&tangd.url(), "before-rotation");
    assert_eq!(clevis_decrypt(&before).unwrap(), "before-rotation");
    let adv_before = get(tangd.addr, "/adv").body;

    debian_rotate(dir.dir());
    // The script writes the new signing key, then the exchange key: wait for both.
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let adv = get(tangd.addr, "/adv").body;
        if adv != adv_before && verify_advertisement(&adv).is_ok_and(|a| a.keys.len() == 2) {
            break;
        }
        assert!(
            Instant::now() < end,
            "rotation not picked up: {}",
            tangd.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Debian's script hides first, then generates: we must not have filled the gap with a pair of our own.
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        active_files(dir.dir()).len(),
        2,
        "{:?}",
        active_files(dir.dir())
    );

    let after = clevis_encrypt(&tangd.url(), "after-rotation");
    assert_ne!(
        kid(&before),
        kid(&after),
        "new JWEs use the new exchange key"
    );
    assert_eq!(
        clevis_decrypt(&before).unwrap(),
        "before-rotation",
        "hidden key still recovers"
    );
    assert_eq!(clevis_decrypt(&after).unwrap(), "after-rotation");
}

#[test]
fn jwe_made_with_real_tang_decrypts_with_ours() {
    if !have(TOOLS) {
        return;
    }
    let dir = debian_keys("realtang");
    let port = free_port();
    let jwe = {
        let real = RealTang::serve(dir.dir(), port);
        clevis_encrypt(&real.url, "made-with-real-tang")
    };
    // Same directory, same port, our server now.
    let tangd = Tangd::start_on(port, dir.dir());
    assert_eq!(clevis_decrypt(&jwe).unwrap(), "made-with-real-tang");
    assert!(
        tangd.log().contains("POST /rec/"),
        "decrypt went through our tangd: {}",
        tangd.log()
    );
}

#[test]
fn real_tang_serves_our_keys() {
    if !have(TOOLS) {
        return;
    }
    let dir = our_keys("ourkeys-realtang");
    // A JWE made against our tangd...
    let port = free_port();
    let ours_jwe = {
        let tangd = Tangd::start_on(port, dir.dir());
        let jwe = clevis_encrypt(&tangd.url(), "made-with-ours");
        drop(tangd);
        jwe
    };
    // ...decrypts against the real tangd on the same directory, which also
    // advertises our keys and round-trips new JWEs. It must not have needed to
    // make keys of its own.
    let real = RealTang::serve(dir.dir(), port);
    assert_eq!(clevis_decrypt(&ours_jwe).unwrap(), "made-with-ours");
    let adv = Command::new("curl")
        .args(["-sf", &format!("{}/adv", real.url)])
        .output()
        .unwrap();
    assert!(adv.status.success());
    assert_eq!(verify_advertisement(&adv.stdout).unwrap().keys.len(), 2);
    let jwe = clevis_encrypt(&real.url, "real-tang-our-keys");
    assert_eq!(clevis_decrypt(&jwe).unwrap(), "real-tang-our-keys");
    assert_eq!(active_files(dir.dir()).len(), 2);
    // jose agrees with the file names.
    for name in active_files(dir.dir()) {
        let out = Command::new("jose")
            .args([
                "jwk",
                "thp",
                "-i",
                dir.dir().join(&name).to_str().unwrap(),
                "-a",
                "S256",
            ])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap().trim(),
            name.trim_end_matches(".jwk")
        );
    }
}
