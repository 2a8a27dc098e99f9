//! Noticing that the key directory changed, cheaply enough to ask before
//! every request.
//!
//! tang reads the directory on every request, so a key renamed, added or
//! deleted counts from the very next request. tangd keeps the parsed keys and
//! asks this module whether they may be stale:
//!
//! * inotify where it sees every change: the kernel queues an event inside the
//!   system call that renames, writes or deletes a file, before that call
//!   returns, so a request that arrives after a change finds the event queued.
//!   The question is one `FIONREAD` on the inotify descriptor. Watched: the key
//!   directory, the directory holding it (the key directory replaced, or its
//!   name swapped to another directory), and the directories holding the
//!   targets of `*.jwk` symlinks (Kubernetes swaps `..data`; links elsewhere
//!   change without an event in the key directory).
//! * a fingerprint of the directory (stat of the directory and of each key
//!   file, through symlinks) where inotify cannot be had or misses changes made
//!   by other machines (network file systems).

use std::collections::HashMap;
use std::ffi::OsString;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};

use crate::keydir::{self, Fingerprint};

/// File systems whose changes may come from another machine, which inotify never hears of.
const REMOTE_FS: &[(rustix::fs::FsWord, &str)] = &[
    (0x6969, "NFS"),
    (0xFF53_4D42, "CIFS"),
    (0xFE53_4D42, "SMB2"),
    (0x517B, "SMB"),
    (0x6573_5546, "FUSE"),
    (0x0102_1997, "9P"),
    (0x00C3_6400, "Ceph"),
    (0x5346_414F, "AFS"),
    (0x0BD0_0BD0, "Lustre"),
    (0x4750_4653, "GPFS"),
];

/// How often the fingerprint is taken again while waiting for a change.
const POLL_STEP: Duration = Duration::from_millis(10);

pub struct Watch {
    dir: PathBuf,
    kind: Kind,
}

enum Kind {
    Notify(Notify),
    /// The fingerprint the keys in memory were read at; `None` when it could not
    /// be taken or was too recent to trust (then every request reads again).
    Poll(RwLock<Option<Fingerprint>>),
}

struct Notify {
    fd: OwnedFd,
    /// No watch is on the key directory (it is missing): nothing would tell us
    /// when it comes back, so every request looks.
    unarmed: AtomicBool,
    watches: Mutex<Watches>,
    parent: Option<PathBuf>,
    name: Option<OsString>,
}

#[derive(Default)]
struct Watches {
    dir: Option<i32>,
    parent: Option<i32>,
    links: HashMap<i32, PathBuf>,
    /// Set until the first `take`, which must always read.
    fresh: bool,
}

/// Every change of an entry, and the directory itself going away. Not opens
/// or reads: reading the keys must not look like a change.
fn mask() -> WatchFlags {
    WatchFlags::CREATE
        | WatchFlags::DELETE
        | WatchFlags::MOVED_FROM
        | WatchFlags::MOVED_TO
        | WatchFlags::CLOSE_WRITE
        | WatchFlags::MODIFY
        | WatchFlags::ATTRIB
        | WatchFlags::DELETE_SELF
        | WatchFlags::MOVE_SELF
        | WatchFlags::ONLYDIR
}

impl Watch {
    /// Watches `dir`; also says how, for the startup log.
    pub fn new(dir: &Path) -> (Watch, String) {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        let remote = rustix::fs::statfs(&dir).ok().and_then(|s| {
            REMOTE_FS
                .iter()
                .find(|(m, _)| *m == s.f_type)
                .map(|(_, n)| *n)
        });
        let poll = |why: String| {
            let w = Watch {
                dir: dir.clone(),
                kind: Kind::Poll(RwLock::new(None)),
            };
            (
                w,
                format!("keys: checking {} on every request ({why})", dir.display()),
            )
        };
        if let Some(fs) = remote {
            return poll(format!(
                "{fs} file system: changes may come from other machines"
            ));
        }
        match inotify::init(CreateFlags::NONBLOCK | CreateFlags::CLOEXEC) {
            Ok(fd) => {
                let how = format!("keys: watching {} (inotify)", dir.display());
                let w = Watch {
                    kind: Kind::Notify(Notify {
                        fd,
                        unarmed: AtomicBool::new(true),
                        watches: Mutex::new(Watches {
                            fresh: true,
                            ..Watches::default()
                        }),
                        parent: dir.parent().map(Path::to_path_buf),
                        name: dir.file_name().map(OsString::from),
                    }),
                    dir,
                };
                (w, how)
            }
            Err(e) => poll(format!("no inotify: {e}")),
        }
    }

    /// Always the fingerprint, as on a network file system (for tests and
    /// for directories where inotify is known not to work).
    pub fn polling(dir: &Path) -> Watch {
        Watch {
            dir: dir.to_path_buf(),
            kind: Kind::Poll(RwLock::new(None)),
        }
    }

    /// Per request: may the directory differ from what was read last?
    pub fn changed(&self) -> bool {
        match &self.kind {
            Kind::Notify(n) => {
                n.unarmed.load(Ordering::SeqCst)
                    || rustix::io::ioctl_fionread(&n.fd).map_or(true, |pending| pending > 0)
            }
            Kind::Poll(last) => {
                let last = last.read().unwrap_or_else(|p| p.into_inner());
                match &*last {
                    None => true,
                    Some(fp) => keydir::fingerprint(&self.dir).ok().as_ref() != Some(fp),
                }
            }
        }
    }

    /// Before reading the directory: takes what is pending and watches the
    /// directory again (it may have been replaced). False when nothing that
    /// matters changed (only other entries of the parent directory). A change
    /// after this call is seen by the next [`Watch::changed`].
    pub fn take(&self) -> bool {
        match &self.kind {
            Kind::Notify(n) => n.take(&self.dir),
            Kind::Poll(last) => {
                let now = keydir::fingerprint(&self.dir).ok();
                let mut last = last.write().unwrap_or_else(|p| p.into_inner());
                let changed = last.is_none() || *last != now;
                *last = now.filter(|f| f.settled(SystemTime::now()));
                changed
            }
        }
    }

    /// After reading: watches the directories that symlinked keys lead to.
    /// True when a new one is watched: a change there between the read and
    /// now would have gone unseen, so read again.
    pub fn follow(&self, dirs: &[PathBuf]) -> bool {
        match &self.kind {
            Kind::Notify(n) => n.follow(dirs),
            Kind::Poll(_) => false,
        }
    }

    /// Waits until something may have changed, at most `limit`.
    pub fn wait(&self, limit: Duration) {
        match &self.kind {
            Kind::Notify(n) => {
                let mut fds = [rustix::event::PollFd::new(
                    &n.fd,
                    rustix::event::PollFlags::IN,
                )];
                let ts =
                    rustix::event::Timespec::try_from(limit).unwrap_or(rustix::event::Timespec {
                        tv_sec: 1,
                        tv_nsec: 0,
                    });
                let _ = rustix::event::poll(&mut fds, Some(&ts));
            }
            Kind::Poll(_) => std::thread::sleep(limit.min(POLL_STEP)),
        }
    }
}

impl Notify {
    fn take(&self, dir: &Path) -> bool {
        let mut w = self.watches.lock().unwrap_or_else(|p| p.into_inner());
        let mut relevant = std::mem::take(&mut w.fresh);
        // Arm first, then drain: whatever happens after the drain stays queued.
        let dir_wd = inotify::add_watch(&self.fd, dir, mask()).ok();
        let parent_wd = self
            .parent
            .as_deref()
            .and_then(|p| inotify::add_watch(&self.fd, p, mask()).ok());
        for (old, new) in [(w.dir, dir_wd), (w.parent, parent_wd)] {
            if let Some(old) = old {
                if Some(old) != dir_wd && Some(old) != parent_wd && !w.links.contains_key(&old) {
                    let _ = inotify::remove_watch(&self.fd, old);
                }
            }
            relevant |= old != new;
        }
        w.dir = dir_wd;
        w.parent = parent_wd;
        self.unarmed.store(dir_wd.is_none(), Ordering::SeqCst);

        let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
        let mut events = inotify::Reader::new(&self.fd, &mut buf);
        loop {
            match events.next() {
                Ok(ev) => {
                    let only_parent = Some(ev.wd()) == parent_wd
                        && Some(ev.wd()) != dir_wd
                        && !w.links.contains_key(&ev.wd())
                        && !ev.events().contains(ReadFlags::QUEUE_OVERFLOW);
                    relevant |= !only_parent
                        || ev
                            .file_name()
                            .is_some_and(|f| Some(f.to_bytes()) == self.name_bytes());
                }
                Err(rustix::io::Errno::AGAIN) => break,
                Err(_) => {
                    relevant = true;
                    break;
                }
            }
        }
        relevant
    }

    fn name_bytes(&self) -> Option<&[u8]> {
        use std::os::unix::ffi::OsStrExt as _;
        self.name.as_deref().map(|n| n.as_bytes())
    }

    fn follow(&self, dirs: &[PathBuf]) -> bool {
        let mut w = self.watches.lock().unwrap_or_else(|p| p.into_inner());
        let mut links = HashMap::new();
        let mut added = false;
        for d in dirs {
            if let Ok(wd) = inotify::add_watch(&self.fd, d, mask()) {
                let known = w.links.contains_key(&wd) || Some(wd) == w.dir || Some(wd) == w.parent;
                added |= !known;
                links.insert(wd, d.clone());
            }
        }
        for old in w.links.keys() {
            if !links.contains_key(old) && Some(*old) != w.dir && Some(*old) != w.parent {
                let _ = inotify::remove_watch(&self.fd, *old);
            }
        }
        w.links = links;
        added
    }
}
