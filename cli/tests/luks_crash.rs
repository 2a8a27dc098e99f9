//! Crash safety of the header-changing commands, by fault injection.
//!
//! strace kills `latchkey luks bind|unbind|regen|edit` at its Nth write(2),
//! pwrite64(2), fsync(2) and fdatasync(2), for N = 1, 2, … until the command
//! completes, on LUKS1 and LUKS2 images made by cryptsetup. Those are the
//! calls that change or flush a header (`strace -c` of a regen: libcryptsetup
//! writes with write+fsync, LUKSMeta goes out with pwrite64+fdatasync; the rest
//! are sendto to Tang and read-only ioctls). strace counts each call kind on
//! its own, so the four kinds are walked separately; together they cover every
//! write and every flush.
//!
//! After each kill: libcryptsetup and this project's reader still load the
//! header, and the volume still opens with the old or the new method (the
//! images of regen and edit have no passphrase keyslot left, so only a clevis
//! binding opens them, which the agent's dry run must do). Then, unless the
//! change had already completed, the same command runs again and must finish
//! the job: the expected binding, no journal, no orphan, and it opens.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::*;

use latchkey_enroll::{inventory, listing};
use latchkey_luks::Header;

/// The calls that change or flush a header.
const SYSCALLS: [&str; 4] = ["write", "pwrite64", "fsync", "fdatasync"];
/// Parallel kill sequences (the work is mostly waiting on child processes).
const WORKERS: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Cmd {
    Bind,
    Unbind,
    Regen,
    Edit,
}

struct Case {
    kind: &'static str,
    cmd: Cmd,
    /// The image every kill starts from.
    base: PathBuf,
    key: PathBuf,
    /// The JWE tag of keyslot 1 in `base` (regen must change it).
    base_tag: Option<String>,
    new_config: String,
}

fn tools() -> bool {
    have_tools() && have(&["/usr/sbin/cryptsetup", "/usr/bin/strace"]) && have_agent()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn args(c: &Case, img: &Path, config1: &str) -> Vec<String> {
    let v: Vec<&str> = match c.cmd {
        Cmd::Bind => vec!["bind", "-y", "-d", p(img), "-k", p(&c.key), "tang", config1],
        Cmd::Unbind => vec!["unbind", "-f", "-d", p(img), "-s", "1"],
        Cmd::Regen => vec!["regen", "-q", "-d", p(img), "-s", "1"],
        Cmd::Edit => vec!["edit", "-d", p(img), "-s", "1", "-c", &c.new_config],
    };
    v.into_iter().map(String::from).collect()
}

fn slot1_tag(img: &Path) -> Option<String> {
    let mut f = std::fs::File::open(img).unwrap();
    let hdr = Header::read(&mut f).ok()?;
    let (_, jwe) = inventory::binding_of(&hdr, &mut f, 1)?;
    Some(latchkey_enroll::journal::jwe_tag(&jwe).to_owned())
}

/// Active keyslots, `N: PIN 'CONFIG'` per binding, and the number of leftovers.
fn state(img: &Path) -> (Vec<u32>, Vec<String>, usize) {
    let mut f = std::fs::File::open(img).unwrap();
    let hdr = Header::read(&mut f).unwrap();
    let inv = inventory::inventory(&hdr, &mut f);
    let lines = inv
        .bindings
        .iter()
        .map(|b| {
            format!(
                "{}: {}",
                b.keyslot,
                listing::describe(&b.jwe).unwrap_or_default()
            )
        })
        .collect();
    (inv.active, lines, inv.problems.len())
}

/// The command's work is done: the state it leaves on success.
fn complete(c: &Case, img: &Path, config1: &str) -> bool {
    let (active, lines, problems) = state(img);
    let slot1 = |cfg: &str| lines.contains(&format!("1: tang '{cfg}'"));
    problems == 0
        && match c.cmd {
            Cmd::Bind => active == [0, 1] && slot1(config1),
            Cmd::Unbind => active == [0] && lines.is_empty(),
            Cmd::Regen => active == [1] && slot1(config1) && slot1_tag(img) != c.base_tag,
            Cmd::Edit => active == [1] && slot1(&c.new_config),
        }
}

/// The volume opens with the old or the new method.
fn openable(c: &Case, img: &Path) -> Result<(), String> {
    match c.cmd {
        Cmd::Bind | Cmd::Unbind => {
            if cryptsetup_opens(img, KEY, None) {
                Ok(())
            } else {
                Err("the existing passphrase no longer opens it".into())
            }
        }
        Cmd::Regen | Cmd::Edit => match agent_opens(img) {
            (true, _) => Ok(()),
            (false, log) => Err(format!("no binding opens it: {log}")),
        },
    }
}

/// Walks every kill point of one call kind for one case; the number covered.
fn walk(c: &Case, syscall: &str, dir: &Path, config1: &str) -> usize {
    for n in 1.. {
        let img = dir.join(format!("{}-{:?}-{syscall}-{n}.img", c.kind, c.cmd));
        std::fs::copy(&c.base, &img).unwrap();
        let cmd = args(c, &img, config1);
        if !killed_at("luks", &cmd, syscall, n, Duration::from_secs(120)) {
            assert!(
                complete(c, &img, config1),
                "{cmd:?} completed but left {:?}",
                state(&img)
            );
            std::fs::remove_file(&img).unwrap();
            // Killed at calls 1..n-1.
            return n - 1;
        }
        let at = format!("{} {:?} killed at {syscall} #{n}", c.kind, c.cmd);
        loads(&img).unwrap_or_else(|e| panic!("{at}: the header does not load: {e}"));
        openable(c, &img).unwrap_or_else(|e| panic!("{at}: {e}"));
        if !complete(c, &img, config1) {
            let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
            let out = luks(&cmd, b"");
            assert!(
                out.status.success(),
                "{at}: running it again failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                complete(c, &img, config1),
                "{at}: the re-run left {:?}",
                state(&img)
            );
        }
        // The outcome opens by its own method: the new binding, or for unbind the passphrase.
        let (ok, log) = agent_opens(&img);
        assert_eq!(
            ok,
            c.cmd != Cmd::Unbind,
            "{at}: agent after convergence: {log}"
        );
        openable(c, &img).unwrap_or_else(|e| panic!("{at}, after convergence: {e}"));
        std::fs::remove_file(&img).unwrap();
    }
    unreachable!()
}

fn prepare(s: &Scratch, kind: &'static str, cmd: Cmd, config1: &str, config2: &str) -> Case {
    let (base, key) = luks_image(s, kind, &format!("{kind}-{cmd:?}.img"));
    if cmd != Cmd::Bind {
        luks_ok(&["bind", "-y", "-d", p(&base), "-k", p(&key), "tang", config1]);
    }
    if matches!(cmd, Cmd::Regen | Cmd::Edit) {
        // Only the binding opens the volume now.
        run_ok(
            Command::new("cryptsetup")
                .args(["luksKillSlot", "-q"])
                .arg(&base)
                .arg("0"),
        );
    }
    Case {
        kind,
        cmd,
        base_tag: slot1_tag(&base),
        key,
        base,
        new_config: config2.to_owned(),
    }
}

#[test]
fn every_kill_point_leaves_an_openable_volume_and_a_rerun_converges() {
    if !tools() {
        return;
    }
    let started = Instant::now();
    let (t1, t2) = (Tang::start(), Tang::start());
    let config1 = t1.config();
    let config2 = t2.config();
    let s = Scratch::new("crash");
    let mut cases = Vec::new();
    for kind in ["luks1", "luks2"] {
        for cmd in [Cmd::Bind, Cmd::Unbind, Cmd::Regen, Cmd::Edit] {
            cases.push(prepare(&s, kind, cmd, &config1, &config2));
        }
    }
    let covered = walk_all(&cases, &SYSCALLS, WORKERS, |c, sc| {
        walk(c, sc, &s.0, &config1)
    });
    let mut total = 0;
    for (case, counts) in cases.iter().zip(&covered) {
        let per: Vec<String> = SYSCALLS
            .iter()
            .zip(counts)
            .map(|(sc, n)| format!("{sc} {n}"))
            .collect();
        let sum: usize = counts.iter().sum();
        total += sum;
        println!(
            "{} {:?}: {sum} kill points ({})",
            case.kind,
            case.cmd,
            per.join(", ")
        );
    }
    println!(
        "crash safety: {total} kill points covered in {:.0?}",
        started.elapsed()
    );
    assert!(total > 100, "too few kill points: {total}");
}
