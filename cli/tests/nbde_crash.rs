//! Crash safety of `latchkey nbde apply`, by fault injection.
//!
//! strace kills the command (and the `latchkey-luks` it execs) at its Nth
//! call of one kind: the header's writes and flushes (write, pwrite64, fsync,
//! fdatasync) and the key file's operations (mkdir, write, fsync, rename,
//! unlink, rmdir), for transitions between every two modes on LUKS1 and
//! LUKS2. After each kill:
//!
//! - cryptsetup and this project's reader still load the header;
//! - the recovery secret still opens the disk;
//! - the agent's dry run, as at boot, opens it (by the local key or a Tang
//!   binding: the old method or the new one);
//! - a key file that opens nothing is reported by `latchkey nbde status`;
//! - running apply again converges: the new policy in force, `status`
//!   consistent, and the disk opens by the new method.
//!
//! Each kind of call is walked N = 1, 2, … until the command completes. The
//! rare ones (mkdir, rename, unlink, rmdir, and pwrite64, LUKSMeta's writes)
//! are walked at every N; write, fsync and fdatasync, which a transition
//! makes dozens of, at every `STRIDE`th N from an offset that differs per
//! transition, so that the transitions together still meet every residue
//! (a kill at a flush leaves what a kill at the next write leaves, on an
//! image whose page cache survives). `LATCHKEY_CRASH_STRIDE=1` walks every
//! kill point (about four times longer).

use std::time::{Duration, Instant};

mod common;
use common::nbde::*;
use common::*;

/// The calls walked, each counted on its own by strace.
const SYSCALLS: [&str; 8] = [
    "write",
    "fsync",
    "pwrite64",
    "fdatasync",
    "mkdir",
    "rename",
    "unlink",
    "rmdir",
];
/// Of these, every `STRIDE`th kill point is taken.
const SAMPLED: [&str; 3] = ["write", "fsync", "fdatasync"];
const STRIDE: usize = 6;
/// Parallel kill sequences (the work is mostly waiting on child processes).
const WORKERS: usize = 3;

struct Case {
    name: String,
    /// The disk every kill starts from, in the `from` mode.
    base: Disk,
    /// The arguments of the apply under test.
    to: Vec<String>,
    /// The method by which the final state opens: "local key" or "clevis".
    new: &'static str,
    old: &'static str,
    mode: &'static str,
    offset: usize,
}

/// A transition: its name, the policy the disk starts in, the one applied,
/// the methods that open it before and after, and the mode after.
type Move<'a> = (
    &'static str,
    &'a [String],
    &'a [String],
    &'static str,
    &'static str,
    &'static str,
);

fn stride() -> usize {
    std::env::var("LATCHKEY_CRASH_STRIDE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(STRIDE)
}

fn taken(syscall: &str, offset: usize, n: usize) -> bool {
    !SAMPLED.contains(&syscall) || (n + offset) % stride() == 0
}

/// The policy of `c` is in force on `d`, and the disk opens by it.
fn converged(c: &Case, d: &Disk, at: &str) {
    let (code, text) = d.status(false);
    assert_eq!(code, 0, "{at}: status after convergence:\n{text}");
    assert!(
        text.contains(&format!("\nstate: {}", c.mode)),
        "{at}: status after convergence:\n{text}"
    );
    assert_eq!(d.boots(), Ok(c.new), "{at}: after convergence");
    assert!(d.recovery_opens(), "{at}: recovery, after convergence");
    assert_eq!(
        d.key_file().exists(),
        c.mode == "degraded",
        "{at}: the key file"
    );
}

/// Walks the kill points of one call kind for one case; the number covered.
fn walk(c: &Case, syscall: &str, s: &Scratch) -> usize {
    let mut covered = 0;
    for n in 1.. {
        if !taken(syscall, c.offset, n) {
            continue;
        }
        let d = c.base.copy(s, &format!("{}-{syscall}-{n}", c.name));
        let args = d.apply_args(&c.to);
        let at = format!("{} killed at {syscall} #{n}", c.name);
        if !killed_at("nbde", &args, syscall, n, Duration::from_secs(180)) {
            converged(c, &d, &format!("{} ran through", c.name));
            d.remove();
            return covered;
        }
        covered += 1;
        loads(&d.img).unwrap_or_else(|e| panic!("{at}: the header does not load: {e}"));
        assert!(d.recovery_opens(), "{at}: the recovery secret");
        match d.boots() {
            Ok(how) => assert!(how == c.old || how == c.new, "{at}: opened by {how}"),
            Err(log) => panic!("{at}: the agent does not open it: {log}"),
        }
        if d.key_file().exists() && !d.key_file_opens() {
            let (code, text) = d.status(false);
            assert_eq!(code, 1, "{at}: a key file that opens nothing:\n{text}");
        }
        let doc = d.apply_json(&c.to);
        assert_eq!(doc["mode"], c.mode, "{at}: the re-run: {doc}");
        assert_eq!(doc["converged"], true, "{at}: the re-run: {doc}");
        converged(c, &d, &at);
        d.remove();
    }
    unreachable!()
}

#[test]
fn every_kill_point_leaves_a_disk_that_opens_and_a_rerun_converges() {
    if !(nbde_tools() && have(&["/usr/bin/strace"])) {
        return;
    }
    let started = Instant::now();
    let c = Cluster::start(5);
    let s = Scratch::new("nbde-crash");
    let degraded: Vec<String> = Vec::new();
    let tang = tang_args(&c.urls(3), &[]);
    let quorum = tang_args(&c.urls(4), &[]);
    let moved = tang_args(&c.urls(5)[1..], &["--threshold", "2"]);
    let moves: [Move; 5] = [
        (
            "degraded-tang",
            &degraded,
            &tang,
            "local key",
            "clevis",
            "tang",
        ),
        ("tang-quorum", &tang, &quorum, "clevis", "clevis", "quorum"),
        (
            "quorum-degraded",
            &quorum,
            &degraded,
            "clevis",
            "local key",
            "degraded",
        ),
        (
            "quorum-moved",
            &quorum,
            &moved,
            "clevis",
            "clevis",
            "quorum",
        ),
        (
            "degraded-quorum",
            &degraded,
            &quorum,
            "local key",
            "clevis",
            "quorum",
        ),
    ];
    let mut cases = Vec::new();
    for kind in ["luks2", "luks1"] {
        for &(name, from, to, old, new, mode) in &moves {
            let name = format!("{kind}-{name}");
            let base = Disk::new(&s, kind, &name);
            base.apply_json(from);
            cases.push(Case {
                offset: cases.len(),
                name,
                base,
                to: to.to_vec(),
                old,
                new,
                mode,
            });
        }
    }
    let covered = walk_all(&cases, &SYSCALLS, WORKERS, |c, sc| walk(c, sc, &s));
    let mut total = 0;
    for (case, counts) in cases.iter().zip(&covered) {
        let per: Vec<String> = SYSCALLS
            .iter()
            .zip(counts)
            .filter(|(_, n)| **n > 0)
            .map(|(sc, n)| format!("{sc} {n}"))
            .collect();
        let sum: usize = counts.iter().sum();
        total += sum;
        println!("{}: {sum} kill points ({})", case.name, per.join(", "));
    }
    println!(
        "nbde crash safety: {total} kill points covered (write, fsync, fdatasync: every {}th) in {:.0?}",
        stride(),
        started.elapsed()
    );
    assert!(total > 50, "too few kill points: {total}");
}
