//! Mounting the boot partition read-only, and locking memory so that keys
//! never reach swap.

use std::path::Path;

use rustix::mm::MlockAllFlags;
use rustix::mount::{MountFlags, UnmountFlags};

use crate::{Error, Result};

/// Mounts `source` on `target` read-only (`nosuid,nodev,noexec`), trying
/// each file system type in turn. Returns the type that worked; on failure
/// the error of the last type tried.
pub fn mount_readonly<'a>(source: &Path, target: &Path, fstypes: &[&'a str]) -> Result<&'a str> {
    let flags = MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    let mut last = None;
    for &fstype in fstypes {
        match rustix::mount::mount(source, target, fstype, flags, None) {
            Ok(()) => return Ok(fstype),
            Err(errno) => {
                last = Some(Error::Mount {
                    source: source.display().to_string(),
                    target: target.display().to_string(),
                    fstype: fstype.to_owned(),
                    errno,
                })
            }
        }
    }
    Err(last.unwrap_or_else(|| Error::Mount {
        source: source.display().to_string(),
        target: target.display().to_string(),
        fstype: String::new(),
        errno: rustix::io::Errno::INVAL,
    }))
}

/// Mounts a pseudo file system (`proc`, `sysfs`, `devtmpfs`, `tmpfs`) on
/// `target`, for an initrd that has not done so yet.
pub fn mount_pseudo(fstype: &str, target: &Path) -> Result<()> {
    let flags = MountFlags::NOSUID | MountFlags::NOEXEC;
    rustix::mount::mount(fstype, target, fstype, flags, None).map_err(|errno| Error::Mount {
        source: fstype.to_owned(),
        target: target.display().to_string(),
        fstype: fstype.to_owned(),
        errno,
    })
}

/// Unmounts `target`.
pub fn umount(target: &Path) -> Result<()> {
    rustix::mount::unmount(target, UnmountFlags::empty()).map_err(|errno| Error::Umount {
        target: target.display().to_string(),
        errno,
    })
}

/// `mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT)`: keeps every page of
/// the process, and so every key it ever holds, out of swap. A page is locked
/// when it is first touched, which is before it can hold anything: a thread's
/// stack or a buffer costs only what is used of it, not its whole mapping
/// zeroed up front (tens of milliseconds per thread in an emulated boot).
/// Kernels before 4.4 lack `MCL_ONFAULT` and lock every page at once.
pub fn lock_memory() -> Result<()> {
    let all = MlockAllFlags::CURRENT | MlockAllFlags::FUTURE;
    match rustix::mm::mlockall(all | MlockAllFlags::ONFAULT) {
        Err(rustix::io::Errno::INVAL) => rustix::mm::mlockall(all),
        r => r,
    }
    .map_err(Error::Mlockall)
}

/// Moves the calling thread into a new, empty network namespace (only a
/// down loopback device). Used by tests and tools that must never touch
/// the host's interfaces.
pub fn enter_new_network_namespace() -> Result<()> {
    // SAFETY: CLONE_NEWNET only swaps the network namespace of the calling
    // thread; it does not unshare the file table, memory or credentials, so
    // no other thread's view of fds or memory changes.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }
        .map_err(Error::Unshare)
}
