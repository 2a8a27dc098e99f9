//! `latchkey-agent unlock --dry-run` and `latchkey-agent decrypt` on a normal
//! host: LUKS images made by the real cryptsetup, bound by the real
//! `clevis luks bind` to Debian's tangd on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use latchkey_testkit::{
    Flood, FloodKind, GNU_TIME, Relay, Scratch, Tang, have, have_tools, run_measured, run_ok,
    run_with, save_adv,
};

fn tools() -> bool {
    have_tools() && have(&["/usr/sbin/cryptsetup", "/usr/bin/luksmeta", GNU_TIME])
}

/// Peak resident set the agent may reach facing a hostile server: its own
/// few MiB (code, locked thread stacks) plus the per-reply limits.
const HOSTILE_RSS_KIB: u64 = 16 << 10;

fn agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_latchkey-agent"))
}

/// A 32 MiB LUKS image with passphrase file `key` in slot 0.
fn image(s: &Scratch, kind: &str, name: &str) -> (PathBuf, PathBuf) {
    let img = s.path(name);
    let key = s.path(&format!("{name}.key"));
    std::fs::write(&key, format!("initial passphrase of {name}")).unwrap();
    std::fs::File::create(&img)
        .unwrap()
        .set_len(32 << 20)
        .unwrap();
    run_ok(
        Command::new("cryptsetup")
            .args([
                "luksFormat",
                "-q",
                "--type",
                kind,
                "--pbkdf",
                "pbkdf2",
                "--pbkdf-force-iterations",
                "1000",
            ])
            .arg("--key-file")
            .arg(&key)
            .arg(&img),
    );
    (img, key)
}

fn bind(img: &Path, key: &Path, pin: &str, cfg: &str) {
    run_ok(
        Command::new("clevis")
            .args(["luks", "bind", "-y", "-d"])
            .arg(img)
            .arg("-k")
            .arg(key)
            .args([pin, cfg]),
    );
}

fn dry_run(s: &Scratch, img: &Path, cmdline: &str) -> (Output, String) {
    let (out, text, _) = dry_run_rss(s, img, cmdline);
    (out, text)
}

/// [`dry_run`], with the agent's peak RSS in KiB.
fn dry_run_rss(s: &Scratch, img: &Path, cmdline: &str) -> (Output, String, u64) {
    let line = s.path("cmdline");
    std::fs::write(&line, cmdline).unwrap();
    let (out, rss) = run_measured(
        agent()
            .args([
                "unlock",
                "--dry-run",
                "--no-prompt",
                "--crypttab",
                "/nonexistent",
                "--cmdline",
            ])
            .arg(&line)
            .arg("--device")
            .arg(img),
        b"",
        Duration::from_secs(60),
    );
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    println!("latchkey-agent unlock --dry-run: peak RSS {rss} KiB");
    (out, text, rss)
}

#[test]
fn luks2_tang_binding_opens_and_names_the_server_when_it_is_down() {
    if !tools() {
        return;
    }
    let s = Scratch::new("agent-luks2");
    let mut tang = Tang::start();
    let (img, key) = image(&s, "luks2", "root.img");
    bind(&img, &key, "tang", &format!(r#"{{"url":"{}"}}"#, tang.url));

    let (out, text) = dry_run(&s, &img, "latchkey.timeout=2 latchkey.deadline=20");
    assert!(out.status.success(), "{text}");
    assert!(text.contains("clevis token 0 (keyslot 1)"), "{text}");
    assert!(text.contains("would open with keyslot 1"), "{text}");

    tang.stop();
    let (out, text) = dry_run(&s, &img, "latchkey.timeout=1 latchkey.deadline=8");
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("NOT opened"), "{text}");
    assert!(
        text.contains(&tang.url),
        "the failure names the server: {text}"
    );
}

#[test]
fn luks1_luksmeta_sss_binding_opens() {
    if !tools() {
        return;
    }
    let s = Scratch::new("agent-luks1");
    let (t1, t2) = (Tang::start(), Tang::start());
    let (img, key) = image(&s, "luks1", "old.img");
    let cfg = format!(
        r#"{{"t":2,"pins":{{"tang":[{{"url":"{}"}},{{"url":"{}"}}]}}}}"#,
        t1.url, t2.url
    );
    bind(&img, &key, "sss", &cfg);
    let (out, text) = dry_run(&s, &img, "latchkey.timeout=2 latchkey.deadline=20");
    assert!(out.status.success(), "{text}");
    assert!(text.contains("clevis LUKSMeta slot 1"), "{text}");
    assert!(text.contains("sss 2 of [tang"), "{text}");
    assert!(text.contains("would open with keyslot 1"), "{text}");
}

#[test]
fn local_key_opens_without_any_server() {
    if !tools() {
        return;
    }
    let s = Scratch::new("agent-local");
    let (img, key) = image(&s, "luks2", "root.img");
    let local = s.path("local-boot.key");
    std::fs::write(&local, b"a local key\nwith a newline kept\n").unwrap();
    run_ok(
        Command::new("cryptsetup")
            .args([
                "luksAddKey",
                "-q",
                "--pbkdf",
                "pbkdf2",
                "--pbkdf-force-iterations",
                "1000",
                "--key-file",
            ])
            .arg(&key)
            .arg(&img)
            .arg(&local),
    );
    let (out, text) = dry_run(
        &s,
        &img,
        &format!("latchkey.key={} latchkey.timeout=1", local.display()),
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("local key opened keyslot 1"), "{text}");
}

#[test]
fn decrypt_mode_recovers_a_clevis_jwe() {
    if !tools() {
        return;
    }
    let tang = Tang::start();
    let cfg = format!(r#"{{"url":"{}"}}"#, tang.url);
    let jwe = run_with(
        Command::new("clevis").args(["encrypt", "tang", &cfg, "-y"]),
        b"agent decrypt secret",
        Duration::from_secs(20),
    );
    assert!(jwe.status.success());
    let out = run_with(agent().arg("decrypt"), &jwe.stdout, Duration::from_secs(20));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"agent decrypt secret");
    let out = run_with(
        agent().arg("decrypt"),
        b"not a jwe",
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
}

/// An sss 2-of-3 binding whose first server floods the reply: the agent
/// must drop that server within the reply limits and open the volume with
/// the other two, which answer only once it has hung up on the flood.
fn flood_in_sss(kind: FloodKind) {
    if !tools() {
        return;
    }
    let s = Scratch::new("agent-flood");
    let flood = Flood::start(kind);
    let (t1, t2) = (Tang::start(), Tang::start());
    let (d1, d2) = (Scratch::new("adv1"), Scratch::new("adv2"));
    let (adv1, adv2) = (save_adv(&t1, &d1), save_adv(&t2, &d2));
    let r1 = Relay::start(t1.port, flood.hung_up.clone());
    let r2 = Relay::start(t2.port, flood.hung_up.clone());
    let (img, key) = image(&s, "luks2", "root.img");
    let cfg = format!(
        r#"{{"t":2,"pins":{{"tang":[{{"url":"{}","adv":"{a1}"}},{{"url":"{}","adv":"{a1}"}},{{"url":"{}","adv":"{a2}"}}]}}}}"#,
        flood.url,
        r1.url,
        r2.url,
        a1 = adv1.display(),
        a2 = adv2.display(),
    );
    bind(&img, &key, "sss", &cfg);
    let (out, text, rss) = dry_run_rss(&s, &img, "latchkey.timeout=20 latchkey.deadline=30");
    let sent = flood.sent.load(std::sync::atomic::Ordering::Relaxed);
    println!("{kind:?}: agent peak RSS {rss} KiB; the flood sent {sent} bytes");
    assert!(out.status.success(), "{text}");
    assert!(text.contains("would open with keyslot 1"), "{text}");
    assert!(
        rss < HOSTILE_RSS_KIB,
        "{kind:?}: peak RSS {rss} KiB (limit {HOSTILE_RSS_KIB} KiB)"
    );
}

#[test]
fn sss_survives_a_server_flooding_100_continue() {
    flood_in_sss(FloodKind::Continue);
}

#[test]
fn sss_survives_a_server_flooding_chunk_extensions() {
    flood_in_sss(FloodKind::ChunkExtensions);
}

#[test]
fn sss_survives_a_server_flooding_trailers() {
    flood_in_sss(FloodKind::Trailers);
}

/// `latchkey-agent decrypt` against a lone flooding server: a bad-reply error
/// naming it (not a timeout: the limits end it, not the clock), in bounded memory.
#[test]
fn decrypt_names_a_flooding_server_in_bounded_memory() {
    if !tools() {
        return;
    }
    let tang = Tang::start();
    let dir = Scratch::new("adv");
    let adv = save_adv(&tang, &dir);
    let mut wrong = Vec::new();
    for kind in [
        FloodKind::Continue,
        FloodKind::ChunkExtensions,
        FloodKind::Trailers,
    ] {
        let flood = Flood::start(kind);
        let cfg = format!(r#"{{"url":"{}","adv":"{}"}}"#, flood.url, adv.display());
        let jwe = run_with(
            Command::new("clevis").args(["encrypt", "tang", &cfg]),
            b"flood secret",
            Duration::from_secs(20),
        );
        assert!(
            jwe.status.success(),
            "{}",
            String::from_utf8_lossy(&jwe.stderr)
        );
        let start = std::time::Instant::now();
        let (out, rss) = run_measured(
            agent().args(["decrypt", "--timeout", "20", "--deadline", "30"]),
            &jwe.stdout,
            Duration::from_secs(60),
        );
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        println!(
            "{kind:?}: {:.2}s, peak RSS {rss} KiB: {err}",
            start.elapsed().as_secs_f64()
        );
        let named = err.contains(&flood.url) && err.contains("bad reply");
        if out.status.code() != Some(1) || !out.stdout.is_empty() || !named {
            wrong.push(format!("{kind:?}: exit {:?}: {err}", out.status.code()));
        }
        if rss >= HOSTILE_RSS_KIB {
            wrong.push(format!("{kind:?}: peak RSS {rss} KiB"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
