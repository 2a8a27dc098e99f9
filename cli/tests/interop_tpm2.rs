//! The tpm2 pin against Debian's clevis-tpm2 (tpm2-tools 5) on swtpm: each side opens
//! what the other sealed, with and without PCRs; a PCR changed after sealing; sss mixing
//! tpm2 and tang; no TPM at all; LUKS bindings of the tpm2 pin made by one, used by the other.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use serde_json::Value;

fn have_tpm_tools() -> bool {
    have(&SWTPM_TOOLS) && have_tools()
}

/// A started swtpm, or a skip without the tools.
fn swtpm() -> Option<Swtpm> {
    have_tpm_tools().then(Swtpm::start)
}

fn run(mut cmd: Command, input: &[u8]) -> Output {
    run_with(&mut cmd, input, Duration::from_secs(60))
}

fn ok(out: Output, what: &str) -> Vec<u8> {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn encrypt(tool: Command, pin: &str, cfg: &str, secret: &[u8]) -> String {
    let mut tool = tool;
    tool.args(["encrypt", pin, cfg, "-y"]);
    String::from_utf8(ok(run(tool, secret), &format!("encrypt {pin} {cfg}"))).unwrap()
}

fn decrypt(mut tool: Command, jwe: &str) -> Output {
    tool.arg("decrypt");
    run(tool, jwe.as_bytes())
}

fn ours(sw: &Swtpm) -> Command {
    sw.command(env!("CARGO_BIN_EXE_latchkey"))
}

fn theirs(sw: &Swtpm) -> Command {
    sw.command("clevis")
}

fn tpm2_header(jwe: &str) -> Value {
    let h = latchkey_proto::jwe::Jwe::parse(jwe).unwrap().header;
    assert_eq!(h["alg"], "dir");
    assert_eq!(h["enc"], "A256GCM");
    assert_eq!(h["clevis"]["pin"], "tpm2");
    h["clevis"]["tpm2"].clone()
}

#[test]
fn clevis_tpm2_jwes_decrypt_with_latchkey() {
    let Some(sw) = swtpm() else { return };
    for cfg in [
        r#"{}"#,
        PCR7,
        r#"{"pcr_bank":"sha1","pcr_ids":["0","7"],"key":"rsa"}"#,
        r#"{"hash":"sha384","key":"ecc384","pcr_bank":"sha256","pcr_ids":"0, 1"}"#,
    ] {
        let jwe = encrypt(theirs(&sw), "tpm2", cfg, b"sealed by clevis");
        sw.flush_all();
        let out = ok(decrypt(ours(&sw), &jwe), cfg);
        assert_eq!(out, b"sealed by clevis", "{cfg}");
    }
}

#[test]
fn latchkey_tpm2_jwes_decrypt_with_clevis() {
    let Some(sw) = swtpm() else { return };
    let reference = encrypt(theirs(&sw), "tpm2", PCR7, b"x");
    sw.flush_all();
    for cfg in [
        r#"{}"#,
        PCR7,
        r#"{"pcr_bank":"sha256","pcr_ids":[0,7],"key":"rsa"}"#,
        r#"{"pcr_ids":"7"}"#,
    ] {
        let jwe = encrypt(ours(&sw), "tpm2", cfg, b"sealed by latchkey");
        let out = ok(decrypt(theirs(&sw), &jwe), cfg);
        assert_eq!(out, b"sealed by latchkey", "{cfg}");
        sw.flush_all();
    }
    // The same header members as clevis writes, in the same form.
    let jwe = encrypt(ours(&sw), "tpm2", PCR7, b"x");
    let (a, b) = (tpm2_header(&jwe), tpm2_header(&reference));
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&a), keys(&b));
    for k in ["hash", "key", "pcr_bank", "pcr_ids"] {
        assert_eq!(a[k], b[k], "{k}");
    }
    // The sealed object's public area is clevis's but for the TPM-computed unique.
    let pub_of = |v: &Value| latchkey_proto::b64::decode(v["jwk_pub"].as_str().unwrap()).unwrap();
    let (pa, pb) = (pub_of(&a), pub_of(&b));
    assert_eq!(pa.len(), pb.len());
    assert_eq!(pa[..pa.len() - 32], pb[..pb.len() - 32]);
    // No PCR given a bank: the TPM's first active bank (swtpm: sha1), as clevis 21 does.
    let jwe = encrypt(ours(&sw), "tpm2", r#"{"pcr_ids":"7"}"#, b"x");
    assert_eq!(tpm2_header(&jwe)["pcr_bank"], "sha1");
}

#[test]
fn a_pcr_extended_after_sealing_is_a_clear_error() {
    let Some(sw) = swtpm() else { return };
    let by_clevis = encrypt(theirs(&sw), "tpm2", PCR7, b"s");
    sw.flush_all();
    let by_us = encrypt(
        ours(&sw),
        "tpm2",
        r#"{"pcr_bank":"sha256","pcr_ids":"0,7"}"#,
        b"s",
    );
    sw.extend_pcr("sha256", 7);
    for (jwe, pcrs) in [(&by_clevis, "sha256:7"), (&by_us, "sha256:0,7")] {
        let out = decrypt(ours(&sw), jwe);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            err.trim(),
            format!(
                "latchkey decrypt: tpm2 ({pcrs}): PCR {pcrs} policy does not match: \
                 the PCR values differ from those the key was sealed to"
            )
        );
        // clevis agrees that it cannot be opened.
        assert!(!decrypt(theirs(&sw), jwe).status.success());
    }
}

#[test]
fn sss_of_tpm2_and_tang() {
    let Some(sw) = swtpm() else { return };
    let mut tang = Tang::start();
    let pins = |t: u8| {
        format!(
            r#"{{"t":{t},"pins":{{"tpm2":{{"pcr_bank":"sha256","pcr_ids":"7"}},"tang":[{{"url":"{}"}}]}}}}"#,
            tang.url
        )
    };
    let two_by_clevis = encrypt(theirs(&sw), "sss", &pins(2), b"both");
    sw.flush_all();
    let two_by_us = encrypt(ours(&sw), "sss", &pins(2), b"both");
    let one_by_clevis = encrypt(theirs(&sw), "sss", &pins(1), b"either");
    sw.flush_all();
    let one_by_us = encrypt(ours(&sw), "sss", &pins(1), b"either");
    for jwe in [&two_by_clevis, &two_by_us] {
        assert_eq!(ok(decrypt(ours(&sw), jwe), "t=2"), b"both");
        assert_eq!(ok(decrypt(theirs(&sw), jwe), "clevis t=2"), b"both");
    }
    for jwe in [&one_by_clevis, &one_by_us] {
        assert_eq!(ok(decrypt(ours(&sw), jwe), "t=1"), b"either");
        assert_eq!(ok(decrypt(theirs(&sw), jwe), "clevis t=1"), b"either");
    }

    // Tang down: t=1 still opens from the TPM alone; t=2 fails naming the server.
    tang.stop();
    for jwe in [&one_by_clevis, &one_by_us] {
        assert_eq!(ok(decrypt(ours(&sw), jwe), "t=1 tang down"), b"either");
    }
    let out = decrypt(ours(&sw), &two_by_us);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&tang.url) && err.contains("connection refused"),
        "{err}"
    );

    // PCR 7 changed, Tang back: t=1 opens from Tang; t=2 fails on the PCR, said once.
    tang.resume();
    sw.extend_pcr("sha256", 7);
    for jwe in [&one_by_clevis, &one_by_us] {
        assert_eq!(ok(decrypt(ours(&sw), jwe), "t=1 pcr changed"), b"either");
    }
    let out = decrypt(ours(&sw), &two_by_clevis);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.matches("PCR sha256:7 policy does not match").count(),
        1,
        "{err}"
    );
    // The quorum is lost with the TPM's failure, whether Tang answered first or not.
    assert!(
        err.contains("sss threshold 2, got 0 of 2 shares")
            || err.contains("sss threshold 2, got 1 of 2 shares"),
        "{err}"
    );
}

/// No TPM: every tpm2 binding fails with the same reason, said once (and within
/// run_with's bound, like every command here).
#[test]
fn no_tpm_is_reported_once() {
    let Some(sw) = swtpm() else { return };
    let cfg = r#"{"t":1,"pins":{"tpm2":[{},{"pcr_bank":"sha256","pcr_ids":"7"}]}}"#;
    let jwe = encrypt(ours(&sw), "sss", cfg, b"two seals");
    assert_eq!(ok(decrypt(ours(&sw), &jwe), "both there"), b"two seals");
    let tcti = sw.tcti.clone();
    drop(sw);
    let mut cmd = latchkey();
    cmd.env("TPM2TOOLS_TCTI", &tcti);
    let out = decrypt(cmd, &jwe);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.matches("connecting to the TPM at 127.0.0.1:").count(),
        1,
        "{err}"
    );

    // No variable, no device (unless this machine has a TPM): the default devices.
    if !std::path::Path::new("/dev/tpmrm0").exists() && !std::path::Path::new("/dev/tpm0").exists()
    {
        let mut cmd = latchkey();
        cmd.env_remove("TPM2TOOLS_TCTI");
        let out = decrypt(cmd, &jwe);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            err.matches("no TPM device: /dev/tpmrm0 and /dev/tpm0 not found")
                .count(),
            1,
            "{err}"
        );
    }
    let mut cmd = latchkey();
    cmd.env("TPM2TOOLS_TCTI", "mssim:port=2321");
    let err = String::from_utf8(decrypt(cmd, &jwe).stderr).unwrap();
    assert!(
        err.contains("TCTI \"mssim:port=2321\" is not supported"),
        "{err}"
    );
}

fn luks_cmd(mut tool: Command, args: &[&str]) -> Command {
    tool.arg("luks").args(args);
    tool
}

/// `latchkey luks bind tpm2` on swtpm: clevis lists and passes the binding;
/// latchkey passes and regenerates one clevis made, and clevis reads the result.
#[test]
fn luks_tpm2_bindings_both_ways() {
    if !have_tpm_tools() || !have(&["/usr/sbin/cryptsetup", "/usr/bin/luksmeta"]) {
        return;
    }
    let sw = Swtpm::start();
    let s = Scratch::new("luks-tpm2");
    let (img, key) = luks_image(&s, "luks2", "disk.img");
    let (img, key) = (img.to_str().unwrap(), key.to_str().unwrap());
    let cfg = PCR7;

    let bind = ["bind", "-d", img, "-k", key, "tpm2", cfg];
    ok(run(luks_cmd(ours(&sw), &bind), b""), "latchkey luks bind");
    sw.flush_all();
    let list = ["list", "-d", img];
    let listed = ok(run(luks_cmd(theirs(&sw), &list), b""), "clevis luks list");
    assert!(
        String::from_utf8_lossy(&listed).starts_with("1: tpm2 '{\"hash\":\"sha256\""),
        "{}",
        String::from_utf8_lossy(&listed)
    );
    assert_eq!(ok(run(luks_cmd(ours(&sw), &list), b""), "list"), listed);
    let pass1 = ["pass", "-d", img, "-s", "1"];
    let by_clevis = ok(run(luks_cmd(theirs(&sw), &pass1), b""), "clevis luks pass");
    sw.flush_all();
    assert_eq!(ok(run(luks_cmd(ours(&sw), &pass1), b""), "pass"), by_clevis);
    assert!(cryptsetup_opens(Path::new(img), &by_clevis, Some(1)));

    // clevis binds keyslot 2; latchkey regenerates it with a fresh passphrase.
    ok(run(luks_cmd(theirs(&sw), &bind), b""), "clevis luks bind");
    sw.flush_all();
    let pass2 = ["pass", "-d", img, "-s", "2"];
    let old = ok(run(luks_cmd(ours(&sw), &pass2), b""), "pass");
    assert!(cryptsetup_opens(Path::new(img), &old, Some(2)));
    let regen = ["regen", "-q", "-d", img, "-s", "2"];
    ok(run(luks_cmd(ours(&sw), &regen), b""), "latchkey luks regen");
    sw.flush_all();
    let new = ok(run(luks_cmd(theirs(&sw), &pass2), b""), "clevis luks pass");
    assert_ne!(new, old);
    assert!(cryptsetup_opens(Path::new(img), &new, Some(2)));
    assert!(!cryptsetup_opens(Path::new(img), &old, None));
}

/// Tang answering first in a t=1 sss makes the TPM step unneeded midway: it still
/// flushes what it loaded before the process ends. A TPM without a resource manager
/// (swtpm here, /dev/tpm0) keeps whatever is left: three such objects fill swtpm's slots,
/// and every later unseal, ours or clevis's, fails with TPM_RC_OBJECT_MEMORY.
#[test]
fn an_unneeded_tpm_step_leaves_nothing_loaded() {
    let Some(sw) = swtpm() else { return };
    let tang = Tang::start();
    // An RSA primary takes swtpm long enough that Tang usually answers first.
    let cfg = format!(
        r#"{{"t":1,"pins":{{"tpm2":{{"key":"rsa","pcr_bank":"sha256","pcr_ids":"7"}},"tang":[{{"url":"{}"}}]}}}}"#,
        tang.url
    );
    let jwe = encrypt(ours(&sw), "sss", &cfg, b"either");
    for _ in 0..5 {
        assert_eq!(ok(decrypt(ours(&sw), &jwe), "t=1"), b"either");
    }
    for what in ["handles-transient", "handles-loaded-session"] {
        let mut getcap = sw.command("tpm2_getcap");
        getcap.arg(what);
        let out = ok(run(getcap, b""), what);
        assert!(out.is_empty(), "{what}: {}", String::from_utf8_lossy(&out));
    }
    let alone = encrypt(ours(&sw), "tpm2", "{}", b"alone");
    assert_eq!(ok(decrypt(theirs(&sw), &alone), "clevis after"), b"alone");
}
