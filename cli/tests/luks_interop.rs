//! `latchkey luks` against the real clevis 19, cryptsetup 2.6 and luksmeta on
//! LUKS1 and LUKS2 images, both ways: what latchkey binds, clevis lists and
//! opens; what clevis binds, latchkey lists, passes, reports, regenerates,
//! edits and unbinds, and clevis still reads what is left. Tang key rotation
//! with tang's own script and with `tangd rotate`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

mod common;
use common::*;

fn tools() -> bool {
    have_tools() && have(&["/usr/sbin/cryptsetup", "/usr/bin/luksmeta"]) && have_agent()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn clevis_luks(args: &[&str]) -> Output {
    run_with(
        Command::new("clevis").arg("luks").args(args),
        b"",
        Duration::from_secs(120),
    )
}

fn clevis_ok(args: &[&str]) -> Vec<u8> {
    let out = clevis_luks(args);
    assert!(
        out.status.success(),
        "clevis luks {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn text(b: Vec<u8>) -> String {
    String::from_utf8(b).unwrap()
}

/// `clevis luks list -d IMG`.
fn clevis_list(img: &Path) -> String {
    text(clevis_ok(&["list", "-d", p(img)]))
}

/// The command succeeded, or its stderr in the panic.
fn succeeded(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `tangd` built beside `latchkey`.
fn tangd() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_latchkey")).with_file_name("tangd")
}

fn latchkey_binds_and_clevis_reads(kind: &str) {
    let s = Scratch::new(&format!("interop-ours-{kind}"));
    let (t1, t2) = (Tang::start(), Tang::start());
    let (img, key) = luks_image(&s, kind, "disk.img");
    let tang = t1.config();
    let sss = format!(
        r#"{{"t":2,"pins":{{"tang":[{{"url":"{}"}},{{"url":"{}"}}],"sss":{{"t":1,"pins":{{"null":[{{}}],"tang":[{{"url":"{}"}}]}}}}}}}}"#,
        t1.url, t2.url, t2.url
    );
    luks_ok(&["bind", "-y", "-d", p(&img), "-k", p(&key), "tang", &tang]);
    // -k - reads one line of stdin, as clevis does.
    let mut stdin = KEY.to_vec();
    stdin.push(b'\n');
    let out = luks(
        &[
            "bind",
            "-y",
            "-d",
            p(&img),
            "-k",
            "-",
            "-s",
            "3",
            "sss",
            &sss,
        ],
        &stdin,
    );
    succeeded(&out);

    let ours = luks_ok(&["list", "-d", p(&img)]);
    let theirs = clevis_list(&img);
    assert_eq!(ours, theirs);
    assert!(
        ours.starts_with(&format!("1: tang '{tang}'\n3: sss '")),
        "{ours}"
    );
    assert_eq!(
        luks_ok(&["list", "-d", p(&img), "-s", "3"]),
        text(clevis_ok(&["list", "-d", p(&img), "-s", "3"]))
    );
    for slot in ["1", "3"] {
        let ours = luks_ok(&["pass", "-d", p(&img), "-s", slot]);
        let theirs = text(clevis_ok(&["pass", "-d", p(&img), "-s", slot]));
        assert_eq!(ours, theirs);
        assert_eq!(ours.len(), 54, "clevis's length for a 512-bit key");
        assert!(cryptsetup_opens(
            &img,
            ours.as_bytes(),
            Some(slot.parse().unwrap())
        ));
    }
    let (ok, log) = agent_opens(&img);
    assert!(ok, "{log}");
    assert_eq!(
        clevis_luks(&["report", "-q", "-d", p(&img), "-s", "1"])
            .status
            .code(),
        Some(0)
    );

    if kind == "luks2" {
        // The token clevis writes: type, one keyslot as a string, the flattened JWE.
        let out = run_ok(
            Command::new("cryptsetup")
                .args(["token", "export", "--token-id", "0"])
                .arg(&img),
        );
        let token: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(token["type"], "clevis");
        assert_eq!(token["keyslots"], serde_json::json!(["1"]));
        let members: Vec<&String> = token["jwe"].as_object().unwrap().keys().collect();
        assert_eq!(
            members,
            ["ciphertext", "encrypted_key", "iv", "protected", "tag"]
        );
        assert_eq!(token["jwe"]["encrypted_key"], "");
        let dump = text(run_ok(Command::new("cryptsetup").arg("luksDump").arg(&img)).stdout);
        // Every keyslot PBKDF2 with 1000 iterations, as clevis 19 makes them.
        assert_eq!(dump.matches("PBKDF:      pbkdf2").count(), 3, "{dump}");
        assert_eq!(dump.matches("Iterations: 1000").count(), 4, "{dump}");
    } else {
        let show = text(run_ok(Command::new("luksmeta").args(["show", "-d"]).arg(&img)).stdout);
        assert!(
            show.contains("1   active cb6e8904-81ff-40da-a84a-07ab9ab5715e"),
            "{show}"
        );
        assert!(
            show.contains("3   active cb6e8904-81ff-40da-a84a-07ab9ab5715e"),
            "{show}"
        );
        let load = run_ok(
            Command::new("luksmeta")
                .args(["load", "-d"])
                .arg(&img)
                .args(["-s", "1"]),
        );
        assert!(
            !load.stdout.ends_with(b"\n"),
            "the JWE is stored without a newline"
        );
    }

    // clevis removes what latchkey made; latchkey still reads what is left.
    clevis_ok(&["unbind", "-f", "-d", p(&img), "-s", "3"]);
    assert_eq!(
        luks_ok(&["list", "-d", p(&img)]),
        format!("1: tang '{tang}'\n")
    );
}

#[test]
fn luks2_latchkey_binds_and_clevis_reads() {
    if tools() {
        latchkey_binds_and_clevis_reads("luks2");
    }
}

#[test]
fn luks1_latchkey_binds_and_clevis_reads() {
    if tools() {
        latchkey_binds_and_clevis_reads("luks1");
    }
}

fn clevis_binds_and_latchkey_maintains(kind: &str) {
    let s = Scratch::new(&format!("interop-theirs-{kind}"));
    let (mut t1, t2) = (Tang::start(), Tang::start());
    let (img, key) = luks_image(&s, kind, "disk.img");
    let tang = t1.config();
    clevis_ok(&["bind", "-y", "-d", p(&img), "-k", p(&key), "tang", &tang]);
    clevis_ok(&[
        "bind",
        "-y",
        "-d",
        p(&img),
        "-k",
        p(&key),
        "-s",
        "2",
        "tang",
        &tang,
    ]);

    assert_eq!(luks_ok(&["list", "-d", p(&img)]), clevis_list(&img));
    let before = luks_ok(&["pass", "-d", p(&img), "-s", "1"]);
    assert_eq!(before, text(clevis_ok(&["pass", "-d", p(&img), "-s", "1"])));

    // Tang's own rotation: both report the same keys, and the same status.
    run_ok(Command::new(ROTATE).arg("-d").arg(&t1.db));
    let ours = luks(&["report", "-q", "-d", p(&img), "-s", "1"], b"");
    let theirs = clevis_luks(&["report", "-q", "-d", p(&img), "-s", "1"]);
    assert_eq!(ours.status.code(), Some(1));
    assert_eq!(theirs.status.code(), Some(1));
    assert_eq!(ours.stdout, theirs.stdout);
    assert!(text(ours.stdout).lines().count() == 3, "two rotated keys");

    // regen keeps the keyslot, changes the passphrase, and clevis agrees it is current.
    let out = luks(&["regen", "-q", "-d", p(&img), "-s", "1"], b"");
    succeeded(&out);
    assert_eq!(
        text(out.stdout),
        format!(
            "Regenerating binding (device {}, slot 1):\nPin: tang, Config: '{tang}'\n",
            img.display()
        )
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Binding regenerated successfully\n"
    );
    assert_eq!(
        clevis_luks(&["report", "-q", "-d", p(&img), "-s", "1"])
            .status
            .code(),
        Some(0)
    );
    let after = text(clevis_ok(&["pass", "-d", p(&img), "-s", "1"]));
    assert_ne!(before, after);
    assert!(
        !cryptsetup_opens(&img, before.as_bytes(), None),
        "the old passphrase is gone"
    );
    assert!(cryptsetup_opens(&img, after.as_bytes(), Some(1)));

    // report -r regenerates too.
    let out = luks(&["report", "-r", "-d", p(&img), "-s", "2"], b"");
    succeeded(&out);
    assert_eq!(
        clevis_luks(&["report", "-q", "-d", p(&img), "-s", "2"])
            .status
            .code(),
        Some(0)
    );

    // edit moves slot 2 to the other server; clevis lists the new policy.
    let other = t2.config();
    let out = luks(&["edit", "-d", p(&img), "-s", "2", "-c", &other], b"");
    succeeded(&out);
    assert_eq!(text(out.stdout), "Updating binding...\n");
    assert_eq!(
        clevis_list(&img),
        format!("1: tang '{tang}'\n2: tang '{other}'\n")
    );
    let out = luks(&["edit", "-d", p(&img), "-s", "2", "-c", &other], b"");
    assert_eq!(out.status.code(), Some(1), "no change, as clevis");
    // With the first server down, slot 2 alone still opens the volume.
    t1.stop();
    assert!(!clevis_ok(&["pass", "-d", p(&img), "-s", "2"]).is_empty());
    t1.resume();

    // unbind: keyslot and binding gone; clevis reads what is left.
    let out = luks(&["unbind", "-f", "-d", p(&img), "-s", "1"], b"");
    succeeded(&out);
    assert_eq!(clevis_list(&img), format!("2: tang '{other}'\n"));
    assert!(!cryptsetup_opens(&img, after.as_bytes(), None));
    let out = luks(&["unbind", "-f", "-d", p(&img), "-s", "1"], b"");
    assert_eq!(
        out.status.code(),
        Some(1),
        "nothing left to unbind in slot 1"
    );
    assert!(cryptsetup_opens(&img, KEY, Some(0)));
}

#[test]
fn luks2_clevis_binds_and_latchkey_maintains() {
    if tools() {
        clevis_binds_and_latchkey_maintains("luks2");
    }
}

#[test]
fn luks1_clevis_binds_and_latchkey_maintains() {
    if tools() {
        clevis_binds_and_latchkey_maintains("luks1");
    }
}

#[test]
fn rotation_by_our_tangd_is_reported_and_fixed() {
    if !tools() || !have(&[tangd().to_str().unwrap()]) {
        return;
    }
    let s = Scratch::new("interop-tangd");
    let keys = s.path("keys");
    run_ok(Command::new(tangd()).arg("keygen").arg(&keys));
    let port = free_port();
    /// Stops the server even when an assertion fails.
    struct Server(std::process::Child);
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Server(
        Command::new(tangd())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--keys"])
            .arg(&keys)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}");
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < end, "tangd did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (img, key) = luks_image(&s, "luks2", "disk.img");
    let cfg = format!(r#"{{"url":"{url}"}}"#);
    luks_ok(&["bind", "-y", "-d", p(&img), "-k", p(&key), "tang", &cfg]);
    assert_eq!(
        luks(&["report", "-d", p(&img), "-s", "1"], b"")
            .status
            .code(),
        Some(0)
    );
    run_ok(Command::new(tangd()).arg("rotate").arg(&keys));
    // tangd notices the new key files within its polling interval.
    let end = std::time::Instant::now() + Duration::from_secs(20);
    let out = loop {
        let out = luks(&["report", "--json", "-d", p(&img), "-s", "1"], b"");
        if out.status.code() != Some(0) || std::time::Instant::now() > end {
            break out;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["servers"][0]["url"], url.as_str());
    assert_eq!(doc["stale"].as_array().unwrap().len(), 2, "{doc}");
    assert_eq!(
        clevis_luks(&["report", "-q", "-d", p(&img), "-s", "1"])
            .status
            .code(),
        Some(1)
    );

    let out = luks(&["report", "-r", "--json", "-d", p(&img), "-s", "1"], b"");
    succeeded(&out);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["regen"]["slot"], 1, "{doc}");
    assert_eq!(doc["regen"]["verified"], true, "{doc}");
    assert_eq!(
        clevis_luks(&["report", "-q", "-d", p(&img), "-s", "1"])
            .status
            .code(),
        Some(0)
    );
    let (ok, log) = agent_opens(&img);
    assert!(ok, "{log}");
}

/// The samples bound by clevis 19 (reference data), and corner cases of its
/// lookup: a token that names the keyslot second, one of another type first.
#[test]
fn list_is_clevis_byte_for_byte() {
    if !tools() {
        return;
    }
    // Bound by clevis 19 (crates/luks/tests/data/README.md says how).
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/luks/tests/data");
    for img in [
        "luks2/luks2-bound.first32KiB.bin",
        "luks1/luks1-bound.first2MiB.img",
    ] {
        let img = samples.join(img);
        let s = Scratch::new("interop-list-sample");
        let copy = s.path("copy.img");
        std::fs::copy(&img, &copy).unwrap();
        // cryptsetup wants the keyslot areas there too, if only as zeros.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&copy)
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
        let ours = luks_ok(&["list", "-d", p(&copy)]);
        assert_eq!(
            ours,
            text(clevis_ok(&["list", "-d", p(&copy)])),
            "{}",
            img.display()
        );
        assert!(
            ours.contains("sss '{\"t\":2,\"pins\":{\"tang\":["),
            "{ours}"
        );
    }

    let s = Scratch::new("interop-list-cases");
    let (img, key) = luks_image(&s, "luks2", "disk.img");
    for _ in 0..3 {
        luks_add_key(&img, &key, &key);
    }
    let null = clevis_encrypt("null", "{}", b"x", false);
    let nested = clevis_encrypt(
        "sss",
        r#"{"t":1,"pins":{"null":[{}],"sss":{"t":1,"pins":{"null":{}}}}}"#,
        b"y",
        false,
    );
    let flat = |jwe: &str| {
        let parts: Vec<&str> = jwe.split('.').collect();
        format!(
            r#"{{"ciphertext":"{}","encrypted_key":"","iv":"{}","protected":"{}","tag":"{}"}}"#,
            parts[3], parts[2], parts[0], parts[4]
        )
    };
    for (id, token) in [
        (
            0,
            format!(
                r#"{{"type":"clevis","keyslots":["1"],"jwe":{}}}"#,
                flat(&null)
            ),
        ),
        (
            1,
            format!(
                r#"{{"type":"clevis","keyslots":["3","2"],"jwe":{}}}"#,
                flat(&nested)
            ),
        ),
        (2, r#"{"type":"systemd-other","keyslots":["3"]}"#.to_owned()),
        (
            4,
            format!(
                r#"{{"type":"clevis","keyslots":["3"],"jwe":{}}}"#,
                flat(&nested)
            ),
        ),
    ] {
        let out = run_with(
            Command::new("cryptsetup")
                .args(["token", "import", "--token-id", &id.to_string()])
                .arg(&img),
            token.as_bytes(),
            Duration::from_secs(30),
        );
        succeeded(&out);
    }
    let ours = luks_ok(&["list", "-d", p(&img)]);
    assert_eq!(ours, clevis_list(&img));
    assert!(ours.starts_with("1: unknown pin 'null'\n"), "{ours}");
    for slot in ["0", "1", "2", "3", "9"] {
        let a = luks(&["list", "-d", p(&img), "-s", slot], b"");
        let b = clevis_luks(&["list", "-d", p(&img), "-s", slot]);
        assert_eq!(a.stdout, b.stdout, "slot {slot}");
        assert_eq!(a.status.code(), b.status.code(), "slot {slot}");
    }
}

/// Leftovers of an interrupted clevis are named by list and check, and bind
/// removes them.
#[test]
fn orphans_are_reported_and_repaired() {
    if !tools() {
        return;
    }
    let s = Scratch::new("interop-orphan");
    let tang = Tang::start();
    let cfg = tang.config();
    for kind in ["luks2", "luks1"] {
        let (img, key) = luks_image(&s, kind, &format!("{kind}.img"));
        clevis_ok(&["bind", "-y", "-d", p(&img), "-k", p(&key), "tang", &cfg]);
        // What `clevis luks unbind` leaves when it dies between its two steps.
        run_ok(
            Command::new("cryptsetup")
                .args(["luksKillSlot", "-q"])
                .arg(&img)
                .arg("1"),
        );
        let out = luks(&["list", "-d", p(&img)], b"");
        assert!(out.status.success());
        assert!(out.stdout.is_empty());
        let warning = String::from_utf8_lossy(&out.stderr);
        assert!(
            warning.contains("names no keyslot") || warning.contains("not active"),
            "{warning}"
        );
        let doc = list_json(&img);
        assert_eq!(doc["problems"].as_array().unwrap().len(), 1, "{doc}");

        let out = luks(
            &["bind", "-y", "-d", p(&img), "-k", p(&key), "tang", &cfg],
            b"",
        );
        succeeded(&out);
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            said.contains("removed clevis token 0") || said.contains("wiped LUKSMeta slot 1"),
            "{said}"
        );
        let doc = list_json(&img);
        assert!(doc["problems"].as_array().unwrap().is_empty(), "{doc}");
        assert_eq!(clevis_list(&img), format!("1: tang '{cfg}'\n"));
    }
}

/// Every command's `--json`: one document on stdout with the state it changed.
#[test]
fn json_outputs() {
    if !tools() {
        return;
    }
    let s = Scratch::new("interop-json");
    let tang = Tang::start();
    let (img, key) = luks_image(&s, "luks2", "disk.img");
    let cfg = tang.config();
    let doc = |args: &[&str]| -> serde_json::Value {
        let out = luks(args, b"");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let d = p(&img);
    let b = doc(&[
        "bind",
        "--json",
        "-y",
        "-d",
        d,
        "-k",
        p(&key),
        "-t",
        "4",
        "tang",
        &cfg,
    ]);
    assert_eq!(
        (b["slot"].as_u64(), b["token"].as_u64()),
        (Some(1), Some(4)),
        "{b}"
    );
    assert_eq!(b["verified"], true);
    let l = doc(&["list", "--json", "-d", d]);
    assert_eq!(l["luks"], 2);
    assert_eq!(l["bindings"][0]["line"], format!("1: tang '{cfg}'"));
    assert_eq!(l["bindings"][0]["config"]["url"], tang.url.as_str());
    assert_eq!(l["bindings"][0]["store"]["token"], 4);
    assert_eq!(
        l["bindings"][0]["tang"][0]["kid"].as_str().unwrap().len(),
        43
    );
    assert_eq!(l["unbound"], serde_json::json!([0]));
    let pass = doc(&["pass", "--json", "-d", d, "-s", "1"]);
    assert!(cryptsetup_opens(
        &img,
        pass["passphrase"].as_str().unwrap().as_bytes(),
        Some(1)
    ));
    let r = doc(&["report", "--json", "-d", d, "-s", "1"]);
    assert_eq!(r["stale"], serde_json::json!([]));
    let g = doc(&["regen", "-q", "--json", "-d", d, "-s", "1"]);
    assert_eq!(
        (g["slot"].as_u64(), g["token"].as_u64()),
        (Some(1), Some(4)),
        "{g}"
    );
    let c = doc(&["check", "--json", "-d", d]);
    assert_eq!(c["unlocks"], true, "{c}");
    assert_eq!(c["bindings"][0]["opens"], 1, "{c}");
    let u = doc(&["unbind", "--json", "-f", "-d", d, "-s", "1"]);
    assert_eq!(u["slot"], 1);
    assert_eq!(
        doc(&["list", "--json", "-d", d])["bindings"],
        serde_json::json!([])
    );
}

/// An executable shell script `name` in `s` with `body`.
fn script(s: &Scratch, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = s.path(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// `latchkey luks edit` without `-c` opens the config in `$EDITOR`, shows the
/// result and asks, as `clevis luks edit` does; a malformed edit or a no
/// leaves the header as it was.
#[test]
fn edit_without_config_runs_the_editor() {
    if !tools() {
        return;
    }
    let s = Scratch::new("interop-editor");
    let (t1, t2) = (Tang::start(), Tang::start());
    let (img, key) = luks_image(&s, "luks2", "disk.img");
    let cfg = format!(
        r#"{{"t":1,"pins":{{"tang":[{{"url":"{}"}},{{"url":"{}"}}]}}}}"#,
        t1.url, t2.url
    );
    luks_ok(&["bind", "-y", "-d", p(&img), "-k", p(&key), "sss", &cfg]);
    let edit = |editor: &Path, answers: &[u8]| {
        run_with(
            latchkey()
                .env("EDITOR", editor)
                .args(["luks", "edit", "-d", p(&img), "-s", "1"]),
            answers,
            Duration::from_secs(120),
        )
    };
    let header = || digest(&img, 16 << 20);

    // What the editor is given: the config as `jq .` prints it.
    let seen = s.path("seen");
    let raise = script(
        &s,
        "raise",
        &format!(
            "cp \"$1\" '{}' && sed -i 's/\"t\": 1,/\"t\": 2,/' \"$1\"",
            p(&seen)
        ),
    );
    let before = header();
    let out = edit(&raise, b"n\n");
    succeeded(&out);
    assert!(
        std::fs::read_to_string(&seen)
            .unwrap()
            .starts_with("{\n  \"t\": 1,\n  \"pins\": {\n    \"tang\": [\n      {\n"),
        "{}",
        std::fs::read_to_string(&seen).unwrap()
    );
    let shown = text(out.stdout);
    assert!(shown.starts_with("Pin: sss\nNew config:\n"), "{shown}");
    assert!(shown.contains("\"t\": 2"), "{shown}");
    assert_eq!(header(), before, "declined: nothing written");

    let out = edit(&script(&s, "break", "printf '{' >\"$1\""), b"n\n");
    assert!(!out.status.success());
    assert_eq!(header(), before, "malformed: nothing written");

    let out = edit(&raise, b"y\n");
    succeeded(&out);
    let want = format!(
        r#"1: sss '{{"t":2,"pins":{{"tang":[{{"url":"{}"}},{{"url":"{}"}}]}}}}'"#,
        t1.url, t2.url
    );
    assert_eq!(clevis_list(&img), format!("{want}\n"));
    let pass = clevis_ok(&["pass", "-d", p(&img), "-s", "1"]);
    assert!(cryptsetup_opens(&img, &pass, Some(1)));
}

/// `latchkey luks bind -e TOKEN`: the existing passphrase from the kernel
/// keyring key a `luks2-keyring` token names, never asked for; with a key
/// file too, on LUKS1, or with no such key: an error, the header unchanged.
#[test]
fn bind_takes_the_existing_passphrase_from_a_keyring_token() {
    if !tools() || !have(&["/usr/bin/keyctl"]) {
        return;
    }
    let s = Scratch::new("interop-keyring");
    let tang = Tang::start();
    let (img, key) = luks_image(&s, "luks2", "disk.img");
    let cfg = tang.config();
    let desc = format!("latchkey-test-{}", std::process::id());
    run_ok(
        Command::new("cryptsetup")
            .args([
                "token",
                "add",
                "--token-id",
                "5",
                "--key-description",
                &desc,
            ])
            .arg(&img),
    );
    let latchkey_bin = env!("CARGO_BIN_EXE_latchkey");
    // In a session keyring of its own; the passphrase goes through stdin. Without
    // the key, as clevis, the passphrase is asked for: here stdin is empty.
    let bind = |with_key: bool, extra: &[&str]| {
        let add = if with_key {
            r#"keyctl padd user "$1" @s >/dev/null || exit 9; "#
        } else {
            ""
        };
        run_with(
            Command::new("keyctl")
                .args(["session", "-", "sh", "-c"])
                .arg(format!("{add}shift; exec \"$@\""))
                .args([
                    "sh",
                    &desc,
                    latchkey_bin,
                    "luks",
                    "bind",
                    "-y",
                    "-d",
                    p(&img),
                ])
                .args(extra)
                .args(["-e", "5", "tang", &cfg]),
            if with_key { KEY } else { b"" },
            Duration::from_secs(120),
        )
    };
    let before = digest(&img, 16 << 20);
    let out = bind(true, &["-k", p(&key)]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("key file"), "{err}");
    let out = bind(false, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("token 5") && err.contains(&desc), "{err}");
    assert_eq!(digest(&img, 16 << 20), before);

    let out = bind(true, &[]);
    succeeded(&out);
    assert_eq!(clevis_list(&img), format!("1: tang '{cfg}'\n"));
    let pass = clevis_ok(&["pass", "-d", p(&img), "-s", "1"]);
    assert!(cryptsetup_opens(&img, &pass, Some(1)));
    // The keyring token stays as it was.
    let token = run_ok(
        Command::new("cryptsetup")
            .args(["token", "export", "--token-id", "5"])
            .arg(&img),
    );
    assert!(text(token.stdout).contains(&desc));

    let (luks1, _) = luks_image(&s, "luks1", "luks1.img");
    let out = run_with(
        latchkey().args([
            "luks",
            "bind",
            "-y",
            "-d",
            p(&luks1),
            "-e",
            "0",
            "tang",
            &cfg,
        ]),
        b"",
        Duration::from_secs(60),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("LUKS1") && err.contains(p(&luks1)), "{err}");
}
