//! JWEs made by Debian's `clevis encrypt` decrypt with `latchkey decrypt`, against real tangd.

mod common;

use common::*;

/// A tang binding pinned to the signing key's thumbprint by `alg`.
fn tang_with_thumbprint(alg: &str) {
    if !have_tools() {
        return;
    }
    let tang = Tang::start();
    let cfg = format!(
        r#"{{"url":"{}","thp":"{}"}}"#,
        tang.url,
        tang.signing_thp(alg)
    );
    let secret = format!("{alg} secret");
    let jwe = clevis_encrypt("tang", &cfg, secret.as_bytes(), false);
    assert_eq!(latchkey_decrypt(&jwe), secret.as_bytes());
}

#[test]
fn tang_with_s256_thumbprint() {
    tang_with_thumbprint("S256");
}

#[test]
fn tang_with_s1_thumbprint() {
    tang_with_thumbprint("S1");
}

#[test]
fn tang_with_adv_from_a_file() {
    if !have_tools() {
        return;
    }
    let tang = Tang::start();
    let dir = Scratch::new("advfile");
    let adv = save_adv(&tang, &dir);
    let cfg = format!(r#"{{"url":"{}","adv":"{}"}}"#, tang.url, adv.display());
    let jwe = clevis_encrypt("tang", &cfg, b"adv file secret", false);
    assert_eq!(latchkey_decrypt(&jwe), b"adv file secret");
}

#[test]
fn sss_two_of_three_with_one_server_stopped() {
    if !have_tools() {
        return;
    }
    let mut t: Vec<Tang> = (0..3).map(|_| Tang::start()).collect();
    let jwe = clevis_encrypt("sss", &Tang::sss_config(2, &t), b"quorum secret", true);
    t[1].stop();
    assert_eq!(latchkey_decrypt(&jwe), b"quorum secret");
    // With two of three down the quorum is gone, and the report names the servers.
    t[2].stop();
    let out = run_with(
        latchkey().arg("decrypt"),
        jwe.as_bytes(),
        std::time::Duration::from_secs(30),
    );
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&t[1].url) && err.contains(&t[2].url), "{err}");
    assert!(err.contains("refused"), "{err}");
}

#[test]
fn nested_sss() {
    if !have_tools() {
        return;
    }
    let t: Vec<Tang> = (0..3).map(|_| Tang::start()).collect();
    let cfg = format!(
        r#"{{"t":2,"pins":{{"tang":[{{"url":"{}"}}],"sss":{{"t":1,"pins":{{"tang":[{{"url":"{}"}},{{"url":"{}"}}]}}}}}}}}"#,
        t[0].url, t[1].url, t[2].url
    );
    let jwe = clevis_encrypt("sss", &cfg, b"nested secret", true);
    assert_eq!(latchkey_decrypt(&jwe), b"nested secret");
}

#[test]
fn null_pin() {
    if !have_tools() {
        return;
    }
    let jwe = clevis_encrypt("null", "{}", b"null secret", false);
    assert_eq!(latchkey_decrypt(&jwe), b"null secret");
    // Surrounding whitespace (e.g. a trailing newline from a file) is ignored.
    assert_eq!(latchkey_decrypt(&format!("\n {jwe}\n")), b"null secret");
}

#[test]
fn kid_of_a_rotated_key() {
    if !have_tools() {
        return;
    }
    let tang = Tang::start();
    let jwe = clevis_encrypt("tang", &tang.config(), b"before rotation", true);
    tang.rotate();
    assert_eq!(latchkey_decrypt(&jwe), b"before rotation");
}

#[test]
fn luks2_token_json() {
    if !have_tools() || !have(&["/usr/sbin/cryptsetup"]) {
        return;
    }
    // A real token: clevis luks bind on an image file, then cryptsetup token export.
    let tang = Tang::start();
    let dir = Scratch::new("luks2");
    let (img, key) = luks_image(&dir, "luks2", "disk.img");
    clevis_luks_bind(&img, &key, "tang", &tang.config());
    let t = std::time::Duration::from_secs(60);
    let out = run_ok_with(
        std::process::Command::new("cryptsetup")
            .args(["token", "export", "--token-id", "0"])
            .arg(&img),
        b"",
        t,
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let pass = run_ok_with(
        clevis().args(["luks", "pass", "-s", "1", "-d"]).arg(&img),
        b"",
        t,
    );
    assert!(!pass.stdout.is_empty());

    // The whole token as exported, and just its flattened "jwe" member.
    assert_eq!(latchkey_decrypt(&token), pass.stdout);
    let v: serde_json::Value = serde_json::from_str(&token).unwrap();
    let flattened = serde_json::to_string_pretty(&v["jwe"]).unwrap();
    assert_eq!(latchkey_decrypt(&flattened), pass.stdout);
}
