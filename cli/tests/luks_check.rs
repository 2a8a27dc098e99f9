//! `latchkey luks check` against images made by the real cryptsetup and bound
//! by the real `clevis luks bind`; its verdict must agree with
//! `cryptsetup open --test-passphrase`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use latchkey_testkit::{
    CHEAP_PBKDF, PCR7, SWTPM_TOOLS, Scratch, Swtpm, Tang, clevis_luks_bind, have, have_tools,
    luks_format, run_with,
};

fn tools() -> bool {
    have_tools() && have(&["/usr/sbin/cryptsetup", "/usr/bin/luksmeta"])
}

fn check(args: &[&str], dev: &Path) -> (bool, String) {
    check_with(
        Command::new(env!("CARGO_BIN_EXE_latchkey")),
        &[&["--timeout", "2"], args].concat(),
        dev,
    )
}

/// `latchkey luks check -d DEV ARGS` run by `latchkey` (its environment set): whether
/// it passed, and its stdout and stderr.
fn check_with(mut latchkey: Command, args: &[&str], dev: &Path) -> (bool, String) {
    let out: Output = run_with(
        latchkey.args(["luks", "check", "-d"]).arg(dev).args(args),
        b"",
        Duration::from_secs(60),
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn cryptsetup_accepts(dev: &Path, key: &Path) -> bool {
    let out = run_with(
        Command::new("cryptsetup")
            .args(["open", "--test-passphrase", "--key-file"])
            .arg(key)
            .arg(dev),
        b"",
        Duration::from_secs(60),
    );
    out.status.success()
}

fn image(s: &Scratch, args: &[&str]) -> (PathBuf, PathBuf) {
    luks_format(s, "disk.img", b"initial passphrase", args)
}

/// A LUKS2 [`image`] with [`CHEAP_PBKDF`].
fn luks2_image(s: &Scratch) -> (PathBuf, PathBuf) {
    image(s, &[&["--type", "luks2"][..], &CHEAP_PBKDF].concat())
}

#[test]
fn agrees_with_cryptsetup_on_key_files() {
    if !tools() {
        return;
    }
    let s = Scratch::new("check-keys");
    let wrong = s.path("wrong.key");
    std::fs::write(&wrong, "not the passphrase").unwrap();
    let luks2 = [&["--type", "luks2"][..], &CHEAP_PBKDF].concat();
    let formats: &[&[&str]] = &[
        &luks2,
        &[
            "--type",
            "luks2",
            "--pbkdf",
            "argon2id",
            "--pbkdf-memory",
            "32768",
            "--pbkdf-force-iterations",
            "4",
            "--sector-size",
            "4096",
        ],
        &[
            "--type",
            "luks1",
            "--pbkdf-force-iterations",
            "1000",
            "--cipher",
            "aes-cbc-essiv:sha256",
            "--key-size",
            "256",
        ],
    ];
    for args in formats {
        let (img, key) = image(&s, args);
        for k in [&key, &wrong] {
            let (ours, text) = check(&["--key-file", k.to_str().unwrap()], &img);
            assert_eq!(
                ours,
                cryptsetup_accepts(&img, k),
                "{args:?} {}: {text}",
                k.display()
            );
        }
    }
}

#[test]
fn reports_bindings_servers_and_the_opening_keyslot() {
    if !tools() {
        return;
    }
    let s = Scratch::new("check-bind");
    let mut tang = Tang::start();
    let (img, key) = luks2_image(&s);
    clevis_luks_bind(&img, &key, "tang", &tang.config());

    let (ok, text) = check(&[], &img);
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("clevis token 0 (keyslot 1): tang {}", tang.url)),
        "{text}"
    );
    assert!(text.contains("answers; key still advertised"), "{text}");
    assert!(text.contains("opens keyslot 1"), "{text}");

    tang.rotate();
    let (ok, text) = check(&[], &img);
    assert!(ok, "a rotated key still recovers: {text}");
    assert!(text.contains("no longer advertised"), "{text}");

    tang.stop();
    let (ok, text) = check(&[], &img);
    assert!(!ok, "{text}");
    assert!(text.contains("NOT answering"), "{text}");
    assert!(text.contains("would NOT unlock"), "{text}");
    let (ok, text) = check(&["--key-file", key.to_str().unwrap()], &img);
    assert!(ok, "the key file still opens slot 0: {text}");
    assert!(text.contains("opens keyslot 0"), "{text}");
}

/// A slot bound by `clevis luks bind ... tpm2` to PCR 7, checked against the same swtpm
/// before and after PCR 7 changes.
#[test]
fn a_clevis_tpm2_binding_and_a_changed_pcr() {
    if !tools() || !have(&SWTPM_TOOLS) {
        return;
    }
    let s = Scratch::new("check-tpm2");
    let sw = Swtpm::start();
    let (img, key) = luks2_image(&s);
    sw.clevis_luks_bind(&img, &key, "tpm2", PCR7);
    let check = || check_with(sw.command(env!("CARGO_BIN_EXE_latchkey")), &[], &img);
    let (ok, text) = check();
    assert!(ok, "{text}");
    assert!(
        text.contains("clevis token 0 (keyslot 1): tpm2 sha256:7"),
        "{text}"
    );
    assert!(text.contains("opens keyslot 1"), "{text}");

    sw.extend_pcr("sha256", 7);
    let (ok, text) = check();
    assert!(!ok, "{text}");
    assert!(
        text.contains("FAILS: tpm2 (sha256:7): PCR sha256:7 policy does not match"),
        "{text}"
    );
    assert!(text.contains("would NOT unlock"), "{text}");
}

/// sss 1 of [tang, tpm2 to PCR 7]: Tang alone opens the volume, so only a check that
/// asks the TPM on its own shows that its share broke when PCR 7 changed.
#[test]
fn a_tpm2_share_that_tang_outvotes_is_still_checked() {
    if !tools() || !have(&SWTPM_TOOLS) {
        return;
    }
    let s = Scratch::new("check-sss-tpm2");
    let sw = Swtpm::start();
    let tang = Tang::start();
    let (img, key) = luks2_image(&s);
    let cfg = format!(
        r#"{{"t":1,"pins":{{"tang":[{}],"tpm2":{PCR7}}}}}"#,
        tang.config()
    );
    sw.clevis_luks_bind(&img, &key, "sss", &cfg);
    let check = || check_with(sw.command(env!("CARGO_BIN_EXE_latchkey")), &[], &img);
    let (ok, text) = check();
    assert!(ok, "{text}");
    assert!(text.contains("  tpm2 (sha256:7): unseals"), "{text}");

    sw.extend_pcr("sha256", 7);
    let (ok, text) = check();
    assert!(ok, "Tang's share still opens it: {text}");
    assert!(text.contains("opens keyslot 1"), "{text}");
    assert!(
        text.contains("  tpm2 (sha256:7): does NOT unseal: PCR sha256:7 policy does not match"),
        "{text}"
    );
}
