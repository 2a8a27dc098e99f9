//! Pieces of the cli's interop tests: running `latchkey` and `clevis` with stdin, and
//! misbehaving servers. The Tang fixture and process helpers are latchkey-testkit's.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

pub use latchkey_testkit::*;

pub mod nbde;

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
    let out = run_ok_with(&mut cmd, secret, Duration::from_secs(20));
    String::from_utf8(out.stdout).unwrap()
}

/// `latchkey encrypt PIN CONFIG -y` of `secret`; the compact JWE.
pub fn latchkey_encrypt(pin: &str, config: &str, secret: &[u8]) -> String {
    let out = run_ok_with(
        latchkey().args(["encrypt", pin, config, "-y"]),
        secret,
        Duration::from_secs(20),
    );
    let jwe = String::from_utf8(out.stdout).unwrap();
    assert!(!jwe.ends_with('\n'), "JWE must not end with a newline");
    jwe
}

/// Decrypts with `latchkey decrypt`, asserting success; the plaintext.
pub fn latchkey_decrypt(jwe: &str) -> Vec<u8> {
    decrypt(latchkey(), jwe)
}

/// Decrypts with `clevis decrypt`, asserting success; the plaintext.
pub fn clevis_decrypt(jwe: &str) -> Vec<u8> {
    decrypt(clevis(), jwe)
}

/// `PROGRAM decrypt` of `jwe` run by `program`, asserting success; the plaintext.
fn decrypt(mut program: Command, jwe: &str) -> Vec<u8> {
    let limit = Duration::from_secs(20);
    run_ok_with(program.arg("decrypt"), jwe.as_bytes(), limit).stdout
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

/// `latchkey luks ARGS` with `input` on stdin.
pub fn luks(args: &[&str], input: &[u8]) -> std::process::Output {
    run_with(
        latchkey().arg("luks").args(args),
        input,
        Duration::from_secs(120),
    )
}

/// `latchkey luks ARGS`, asserting success; stdout.
pub fn luks_ok(args: &[&str]) -> String {
    let out = run_ok_with(
        latchkey().arg("luks").args(args),
        b"",
        Duration::from_secs(120),
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A 32 MiB LUKS image made by cryptsetup ([`CHEAP_PBKDF`]) with `KEY` in
/// keyslot 0, and the key file.
pub fn luks_image(s: &Scratch, kind: &str, name: &str) -> (PathBuf, PathBuf) {
    luks_format(
        s,
        name,
        KEY,
        &[&["--type", kind][..], &CHEAP_PBKDF].concat(),
    )
}

/// The passphrase of keyslot 0 of [`luks_image`]s.
pub const KEY: &[u8] = b"the existing passphrase";

/// `cryptsetup open --test-passphrase` with `pass` (any keyslot, or `slot`).
pub fn cryptsetup_opens(img: &Path, pass: &[u8], slot: Option<u32>) -> bool {
    let mut c = Command::new("cryptsetup");
    c.args(["open", "--test-passphrase", "--key-file", "-"]);
    if let Some(s) = slot {
        c.args(["--key-slot", &s.to_string()]);
    }
    run_with(c.arg(img), pass, Duration::from_secs(60))
        .status
        .success()
}

/// The agent's verdict on `img` with no passphrase and no console: it opens only
/// through a clevis binding.
pub fn agent_opens(img: &Path) -> (bool, String) {
    let out = run_with(
        Command::new(agent_bin())
            .args([
                "unlock",
                "--dry-run",
                "--no-prompt",
                "--crypttab",
                "/nonexistent",
            ])
            .args(["--cmdline", "/dev/null", "--device"])
            .arg(img),
        b"",
        Duration::from_secs(60),
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The agent binary (built by `cargo test --workspace`), or a skip.
pub fn have_agent() -> bool {
    have(&[agent_bin().to_str().unwrap()])
}

/// Where `cargo test` puts the agent beside the cli.
fn agent_bin() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_latchkey")).with_file_name("latchkey-agent")
}

/// `latchkey luks list --json` of `img`.
pub fn list_json(img: &Path) -> serde_json::Value {
    let out = luks_ok(&["list", "--json", "-d", img.to_str().unwrap()]);
    serde_json::from_str(&out).unwrap()
}

/// SHA-256 of the first `len` bytes of `img` (the header area).
pub fn digest(img: &Path, len: usize) -> Vec<u8> {
    let data = std::fs::read(img).unwrap();
    let out = run_with(
        &mut Command::new("sha256sum"),
        &data[..len.min(data.len())],
        Duration::from_secs(30),
    );
    out.stdout
}

/// Runs `latchkey SUBCOMMAND ARGS` under strace, killed at its `n`th `syscall`
/// (strace counts each call kind on its own, in the programs it execs too);
/// true if it was killed (false: it finished first, so there is no `n`th call).
pub fn killed_at(
    subcommand: &str,
    args: &[String],
    syscall: &str,
    n: usize,
    limit: Duration,
) -> bool {
    let out = run_with(
        Command::new("strace")
            .args(["-f", "-qq", "-o", "/dev/null", "-e"])
            .arg(format!("trace={syscall}"))
            .arg("-e")
            .arg(format!("inject={syscall}:signal=SIGKILL:when={n}"))
            .arg(Path::new(env!("CARGO_BIN_EXE_latchkey")))
            .arg(subcommand)
            .args(args),
        b"",
        limit,
    );
    match out.status.code() {
        Some(0) => false,
        Some(137) | None => true,
        Some(rc) => panic!(
            "{subcommand} {args:?} failed under strace (rc {rc}) before the kill: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Both cryptsetup and this project's reader load the header of `img`.
pub fn loads(img: &Path) -> Result<(), String> {
    let out = run_with(
        Command::new("cryptsetup").arg("luksDump").arg(img),
        b"",
        Duration::from_secs(30),
    );
    if !out.status.success() {
        return Err(format!(
            "cryptsetup luksDump: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut f = std::fs::File::open(img).unwrap();
    latchkey_luks::Header::read(&mut f)
        .map(drop)
        .map_err(|e| format!("our reader: {e}"))
}

/// Walks the kill points of each call kind in `syscalls` for each case,
/// `workers` at once (the work is mostly waiting on child processes); per
/// case, the number `walk` covered at each call kind, in their order.
pub fn walk_all<C: Sync>(
    cases: &[C],
    syscalls: &[&'static str],
    workers: usize,
    walk: impl Fn(&C, &'static str) -> usize + Sync,
) -> Vec<Vec<usize>> {
    let jobs: Vec<(usize, usize)> = (0..cases.len())
        .flat_map(|i| (0..syscalls.len()).map(move |k| (i, k)))
        .collect();
    let next = AtomicUsize::new(0);
    let covered = Mutex::new(vec![vec![0; syscalls.len()]; cases.len()]);
    thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let j = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(i, k)) = jobs.get(j) else { break };
                    let n = walk(&cases[i], syscalls[k]);
                    covered.lock().unwrap()[i][k] = n;
                }
            });
        }
    });
    covered.into_inner().unwrap()
}
