//! `latchkey-agent decrypt` locks its memory, as `unlock` does, before it holds anything
//! secret: the recovered passphrase must never reach swap.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `VmLck` of a process, in kB.
fn locked_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmLck:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn decrypt_locks_its_memory_before_reading_the_jwe_root() {
    if !latchkey_sys::proc::is_root() {
        // mlockall of the whole process needs root (RLIMIT_MEMLOCK).
        assert!(std::env::var_os("CI").is_none(), "CI runs as root");
        println!("skipped: needs root");
        return;
    }
    // stdin stays open: the agent waits for the JWE with its memory already locked.
    let mut child = Command::new(env!("CARGO_BIN_EXE_latchkey-agent"))
        .arg("decrypt")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(20);
    let mut kb = 0;
    while Instant::now() < end {
        kb = locked_kb(child.id()).unwrap_or(0);
        if kb > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        kb > 0,
        "latchkey-agent decrypt never locked its memory (VmLck 0 kB)"
    );
}
