//! Bad input to the header-changing commands: each is refused with a non-zero
//! status and a message naming the device, keyslot or URL, and the image is
//! byte for byte what it was (its SHA-256 before and after).

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::*;

fn tools() -> bool {
    have_tools() && have(&["/usr/sbin/cryptsetup", "/usr/bin/luksmeta"])
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A LUKS1 image already initialized for LUKSMeta, or a LUKS2 one.
fn image(s: &Scratch, kind: &str) -> (PathBuf, PathBuf) {
    let (img, key) = luks_image(s, kind, &format!("{kind}.img"));
    if kind == "luks1" {
        run_ok(
            Command::new("luksmeta")
                .args(["init", "-f", "-d"])
                .arg(&img),
        );
    }
    (img, key)
}

/// Runs `latchkey luks ARGS`; asserts it fails with `status`, says each of
/// `names` on stderr, and leaves `img` unchanged.
fn refused(img: &Path, args: &[&str], status: i32, names: &[&str]) -> String {
    let before = std::fs::read(img).unwrap();
    let out = luks(args, b"");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(status), "{args:?}: {err}");
    for n in names {
        assert!(err.contains(n), "{args:?}: {err:?} does not name {n:?}");
    }
    assert!(
        std::fs::read(img).unwrap() == before,
        "{args:?} changed {}",
        img.display()
    );
    err
}

#[test]
fn refusals_leave_the_header_unchanged() {
    if !tools() {
        return;
    }
    let s = Scratch::new("errors");
    let tang = Tang::start();
    let cfg = tang.config();
    let wrong = s.path("wrong.key");
    std::fs::write(&wrong, "not the passphrase").unwrap();
    for kind in ["luks1", "luks2"] {
        let (img, key) = image(&s, kind);
        let (d, k) = (p(&img), p(&key));
        let bind = |extra: &[&str], cfg: &str| -> Vec<String> {
            let mut v: Vec<String> = ["bind", "-d", d].map(String::from).to_vec();
            v.extend(extra.iter().map(|x| x.to_string()));
            v.extend(["tang".to_owned(), cfg.to_owned()]);
            v
        };
        let run = |v: &[String], status, names: &[&str]| {
            let v: Vec<&str> = v.iter().map(String::as_str).collect();
            refused(&img, &v, status, names)
        };
        // Wrong existing passphrase.
        run(
            &bind(&["-y", "-k", p(&wrong)], &cfg),
            1,
            &[d, "no keyslot opens"],
        );
        // Keyslots that do not exist, or are taken.
        let last = if kind == "luks1" { "8" } else { "32" };
        run(
            &bind(&["-y", "-k", k, "-s", last], &cfg),
            1,
            &[d, &format!("keyslot {last} does not exist")],
        );
        run(
            &bind(&["-y", "-k", k, "-s", "0"], &cfg),
            1,
            &[d, "keyslot 0 is already in use"],
        );
        refused(&img, &["unbind", "-f", "-d", d, "-s", "0"], 1, &[d, "0"]);
        refused(
            &img,
            &["regen", "-q", "-d", d, "-s", "0"],
            1,
            &[d, "keyslot 0"],
        );
        refused(
            &img,
            &["edit", "-d", d, "-s", last, "-c", &cfg],
            1,
            &[d, last],
        );
        refused(&img, &["pass", "-d", d, "-s", "3"], 1, &[d, "slot 3"]);
        // A Tang server that does not answer.
        let dead = format!("http://127.0.0.1:{}", free_port());
        run(
            &bind(&["-y", "-k", k], &format!(r#"{{"url":"{dead}"}}"#)),
            1,
            &[&dead],
        );
        // A thumbprint that names no key; no -y and no thumbprint, without a terminal.
        let thp = format!(r#"{{"url":"{}","thp":"{}"}}"#, tang.url, "A".repeat(43));
        run(&bind(&["-k", k], &thp), 1, &[&tang.url]);
        run(&bind(&["-k", k], &cfg), 1, &[&tang.url, "-y"]);
        // Not a pin, not JSON.
        run(&bind(&["-y", "-k", k], "{"), 1, &["malformed"]);
        let v: Vec<String> = ["bind", "-y", "-d", d, "-k", k, "tpm9", "{}"]
            .map(String::from)
            .to_vec();
        run(&v, 2, &["'tpm9' is not a valid pin!"]);
        if kind == "luks1" {
            run(
                &bind(&["-y", "-k", k, "-t", "1"], &cfg),
                1,
                &[d, "-t is only supported in LUKS2"],
            );
        }
    }
}

#[test]
fn an_advertisement_that_does_not_verify_is_refused() {
    if !tools() {
        return;
    }
    let s = Scratch::new("errors-adv");
    let tang = Tang::start();
    let adv = std::fs::read_to_string(save_adv(&tang, &s)).unwrap();
    // Flip one character of the signature.
    let at = adv.find("\"signature\"").unwrap() + 20;
    let mut bad = adv.into_bytes();
    bad[at] = if bad[at] == b'A' { b'B' } else { b'A' };
    let body = String::from_utf8(bad).unwrap();
    let reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/jose+json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let url = fixed_server(Box::leak(reply.into_boxed_str()).as_bytes());
    for kind in ["luks1", "luks2"] {
        let (img, key) = image(&s, kind);
        let cfg = format!(r#"{{"url":"{url}"}}"#);
        refused(
            &img,
            &["bind", "-y", "-d", p(&img), "-k", p(&key), "tang", &cfg],
            1,
            &[&url],
        );
    }
}

#[test]
fn full_keyslot_table_is_refused() {
    if !tools() {
        return;
    }
    let s = Scratch::new("errors-full");
    let tang = Tang::start();
    let cfg = tang.config();
    for (kind, slots) in [("luks1", 8), ("luks2", 32)] {
        let (img, key) = image(&s, kind);
        for _ in 1..slots {
            luks_add_key(&img, &key, &key);
        }
        refused(
            &img,
            &["bind", "-y", "-d", p(&img), "-k", p(&key), "tang", &cfg],
            1,
            &[p(&img), "no free keyslot"],
        );
    }
}

#[test]
fn not_luks_and_read_only_devices_are_refused() {
    if !tools() {
        return;
    }
    let s = Scratch::new("errors-dev");
    let tang = Tang::start();
    let cfg = tang.config();
    let plain = s.path("plain.img");
    std::fs::write(&plain, vec![0x5a; 4 << 20]).unwrap();
    let key = s.path("key");
    std::fs::write(&key, KEY).unwrap();
    let d = p(&plain);
    refused(
        &plain,
        &["bind", "-y", "-d", d, "-k", p(&key), "tang", &cfg],
        1,
        &[d, "not a supported LUKS device"],
    );
    refused(&plain, &["unbind", "-f", "-d", d, "-s", "1"], 1, &[d]);
    refused(&plain, &["regen", "-q", "-d", d, "-s", "1"], 1, &[d]);
    refused(&plain, &["list", "-d", d], 1, &[d]);

    // An image bound, then made immutable: opening it for writing fails even for root.
    let (img, key) = image(&s, "luks2");
    luks_ok(&["bind", "-y", "-d", p(&img), "-k", p(&key), "tang", &cfg]);
    let immutable = run_with(
        Command::new("chattr").arg("+i").arg(&img),
        b"",
        std::time::Duration::from_secs(10),
    );
    if !immutable.status.success() {
        println!(
            "skipped: read-only case (chattr +i: {})",
            String::from_utf8_lossy(&immutable.stderr)
        );
        return;
    }
    struct Mutable<'a>(&'a Path);
    impl Drop for Mutable<'_> {
        fn drop(&mut self) {
            let _ = Command::new("chattr").arg("-i").arg(self.0).status();
        }
    }
    let _guard = Mutable(&img);
    let d = p(&img);
    refused(
        &img,
        &["bind", "-y", "-d", d, "-k", p(&key), "tang", &cfg],
        1,
        &[d, "read-only"],
    );
    refused(
        &img,
        &["unbind", "-f", "-d", d, "-s", "1"],
        1,
        &[d, "read-only"],
    );
    refused(
        &img,
        &["regen", "-q", "-d", d, "-s", "1"],
        1,
        &[d, "read-only"],
    );
    // Reading still works.
    assert_eq!(luks_ok(&["list", "-d", d]), format!("1: tang '{cfg}'\n"));
}

#[test]
fn the_last_keyslot_is_kept_unless_forced() {
    if !tools() {
        return;
    }
    let s = Scratch::new("errors-last");
    let tang = Tang::start();
    let cfg = tang.config();
    for kind in ["luks1", "luks2"] {
        let (img, key) = image(&s, kind);
        luks_ok(&["bind", "-y", "-d", p(&img), "-k", p(&key), "tang", &cfg]);
        run_ok(
            Command::new("cryptsetup")
                .args(["luksKillSlot", "-q"])
                .arg(&img)
                .arg("0"),
        );
        refused(
            &img,
            &["unbind", "-d", p(&img), "-s", "1"],
            1,
            &[p(&img), "last keyslot", "-f"],
        );
        let out = luks(&["unbind", "-f", "-d", p(&img), "-s", "1"], b"");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(luks_ok(&["list", "-d", p(&img)]), "");
    }
}
