//! Keeping the private keys in this process's memory only: no core dump
//! (none written on a crash, `RLIMIT_CORE` 0), not dumpable (other processes
//! of the same user cannot ptrace it or read its memory through /proc), and no
//! swap where the memory lock limit allows it.
//!
//! Memory is locked only when `RLIMIT_MEMLOCK` is unlimited (or can be made
//! so) or does not apply (`CAP_IPC_LOCK`): with a finite limit, locking all future memory would turn
//! the first allocation past it into a failure, and a server that handles
//! thousands of connections cannot promise to stay under 8 MiB. Pages are
//! locked as they are touched (`MCL_ONFAULT`), so thread stacks and the
//! allocator's reserve do not count until used.

use rustix::mm::MlockAllFlags;
use rustix::process::{DumpableBehavior, Resource, Rlimit, getrlimit, setrlimit};

/// What was done, and what could not be, for the startup log.
pub fn apply() -> String {
    let mut done = Vec::new();
    let zero = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    // A sandbox may refuse setrlimit; the limit may be 0 already (LimitCORE=0).
    match setrlimit(Resource::Core, zero) {
        Ok(()) => done.push("no core dumps".to_owned()),
        Err(_) if getrlimit(Resource::Core).current == Some(0) => {
            done.push("no core dumps".to_owned())
        }
        Err(e) => done.push(format!("core dumps NOT off ({e})")),
    }
    match rustix::process::set_dumpable_behavior(DumpableBehavior::NotDumpable) {
        Ok(()) => done.push("not dumpable".to_owned()),
        Err(e) => done.push(format!("dumpable ({e})")),
    }
    done.push(lock_memory());
    format!("hardening: {}", done.join(", "))
}

fn lock_memory() -> String {
    let unlimited = Rlimit {
        current: None,
        maximum: None,
    };
    // With CAP_SYS_RESOURCE this lifts the limit; otherwise it fails unless
    // it is lifted already.
    let _ = setrlimit(Resource::Memlock, unlimited);
    let lim = getrlimit(Resource::Memlock);
    let exempt = rustix::thread::capabilities(None).is_ok_and(|c| {
        c.effective
            .contains(rustix::thread::CapabilitySet::IPC_LOCK)
    });
    if let (Some(bytes), false) = (lim.current, exempt) {
        return format!(
            "memory NOT locked (RLIMIT_MEMLOCK is {} KiB; LimitMEMLOCK=infinity allows it)",
            bytes / 1024
        );
    }
    match rustix::mm::mlockall(
        MlockAllFlags::CURRENT | MlockAllFlags::FUTURE | MlockAllFlags::ONFAULT,
    ) {
        Ok(()) => "memory locked".to_owned(),
        Err(e) => format!("memory NOT locked ({e})"),
    }
}
