//! The key set every request is answered from, equal to the key directory
//! at the moment the request is answered, as tang's is.
//!
//! ```text
//!  request ──▶ KeyStore::current ──(Watch::changed: no)──▶ keys in memory (the hot path)
//!                   │ yes
//!                   ▼
//!      one reload at a time, on the blocking pool; other requests wait for it
//!      and take its result: Watch::take → read → settle → publish
//! ```
//!
//! What a read may publish:
//!
//! * a complete directory (an active signing and an active exchange key): as is;
//! * no active key at all: tang creates a pair, and so does tangd (unless told
//!   not to), at once for an empty directory and after [`SETTLE`] when hidden
//!   keys are left (Debian's `tangd-rotate-keys` hides the old keys before it
//!   writes the new ones);
//! * active keys without a signing or an exchange key (a rotation half done):
//!   never advertised. The directory is read again as it changes, for up to
//!   [`SETTLE`]; if it stays so, the previous advertisement is kept, provided
//!   every key in it is still in the directory, else nothing is advertised.
//!
//! `/rec` always sees the files as they are: a deleted key is gone from the
//! very next request, whatever is advertised.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::keydir;
use crate::keyset::{KeySet, Shape};
use crate::log::Logger;
use crate::watch::Watch;

/// How long a directory may look half-rotated before it is taken as it is.
pub const SETTLE: Duration = Duration::from_secs(1);
/// How long a request waits for a reload before it is answered 503.
pub const STALL: Duration = Duration::from_secs(5);
/// Reads of one reload, at most (the directory changing all the time).
const MAX_READS: usize = 1000;

/// How the directory is read: [`keydir::load`], but for tests.
type Read = fn(&Path) -> std::io::Result<keydir::Scan>;

pub struct KeyStore {
    dir: PathBuf,
    watch: Watch,
    read: Read,
    /// How long a request waits for a reload: [`STALL`], but for tests.
    stall: Duration,
    /// Create a pair when the directory has no active key, as tang does.
    create: bool,
    log: Logger,
    published: RwLock<Arc<KeySet>>,
    /// Set while a reload runs: its notifications are taken but its result is
    /// not published yet, so `changed() == false` proves nothing.
    reloading: AtomicBool,
    reload: Arc<tokio::sync::Mutex<()>>,
    /// What the running reload is doing, for the log when it hangs.
    step: Mutex<String>,
    stalled: AtomicBool,
    last_line: Mutex<String>,
}

impl KeyStore {
    /// Reads the directory (creating keys if it has none, as tang would on the
    /// first request) and returns the store.
    pub fn open(dir: &Path, watch: Watch, create: bool, log: Logger) -> Arc<KeyStore> {
        KeyStore::open_with(dir, watch, create, log, keydir::load, STALL)
    }

    fn open_with(
        dir: &Path,
        watch: Watch,
        create: bool,
        log: Logger,
        read: Read,
        stall: Duration,
    ) -> Arc<KeyStore> {
        let store = Arc::new(KeyStore {
            dir: dir.to_path_buf(),
            watch,
            read,
            stall,
            create,
            log,
            published: RwLock::new(Arc::new(KeySet::empty())),
            reloading: AtomicBool::new(false),
            reload: Arc::new(tokio::sync::Mutex::new(())),
            step: Mutex::new(String::new()),
            stalled: AtomicBool::new(false),
            last_line: Mutex::new(String::new()),
        });
        store.reload_now();
        store
    }

    /// The keys as the directory holds them now; `None` when reading the
    /// directory hangs (then the request gets 503).
    pub async fn current(self: &Arc<Self>) -> Option<Arc<KeySet>> {
        if self.fresh() {
            return Some(self.published());
        }
        if self.stalled.load(Ordering::SeqCst) {
            return None;
        }
        let this = self.clone();
        let wait = async move {
            let guard = this.reload.clone().lock_owned().await;
            // Whoever held the lock may have just read what we came for.
            if this.fresh() {
                return Some(this.published());
            }
            let t = this.clone();
            tokio::task::spawn_blocking(move || {
                t.reload_now();
                drop(guard);
                t.published()
            })
            .await
            .ok()
        };
        match tokio::time::timeout(self.stall, wait).await {
            Ok(keys) => keys,
            Err(_) => {
                if !self.stalled.swap(true, Ordering::SeqCst) {
                    let step = self.step.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    self.log.line(format!(
                        "keys: reading {} has not finished after {:.1}s (at: {step}); answering 503 until it does",
                        self.dir.display(),
                        self.stall.as_secs_f64()
                    ));
                }
                None
            }
        }
    }

    fn fresh(&self) -> bool {
        !self.reloading.load(Ordering::SeqCst) && !self.watch.changed()
    }

    fn published(&self) -> Arc<KeySet> {
        self.published
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reads the directory until it settles and publishes what it holds.
    /// Blocking; one at a time (the caller holds `reload`, or is `open`).
    fn reload_now(&self) {
        self.reloading.store(true, Ordering::SeqCst);
        let started = Instant::now();
        let previous = self.published();
        let mut reads = 0;
        if let Some(set) = self.read_settled(&previous, &mut reads) {
            self.log.line(format!(
                "keys: reloaded {} ({reads} read{}, {:.1} ms)",
                self.dir.display(),
                if reads == 1 { "" } else { "s" },
                started.elapsed().as_secs_f64() * 1e3
            ));
            let line = set.describe();
            let mut last = self.last_line.lock().unwrap_or_else(|p| p.into_inner());
            if *last != line {
                self.log.line(line.clone());
                *last = line;
            }
            *self.published.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
        }
        self.reloading.store(false, Ordering::SeqCst);
        if self.stalled.swap(false, Ordering::SeqCst) {
            self.log.line(format!(
                "keys: reading {} finished after {:.1}s",
                self.dir.display(),
                started.elapsed().as_secs_f64()
            ));
        }
    }

    fn set_step(&self, step: String) {
        *self.step.lock().unwrap_or_else(|p| p.into_inner()) = step;
    }

    /// `None` when nothing that matters changed.
    fn read_settled(&self, previous: &KeySet, reads: &mut usize) -> Option<KeySet> {
        let deadline = Instant::now() + SETTLE;
        let mut created = false;
        let mut set = KeySet::empty();
        for read in 0..MAX_READS {
            if !self.watch.take() && read == 0 {
                return None;
            }
            self.set_step(format!("reading the key files of {}", self.dir.display()));
            *reads += 1;
            let scan = match (self.read)(&self.dir) {
                Ok(scan) => scan,
                Err(e) => {
                    // tang answers 500 while its directory cannot be read.
                    let mut set = KeySet::empty();
                    set.set_note(format!("cannot read {}: {e}", self.dir.display()));
                    return Some(set);
                }
            };
            self.set_step(format!(
                "watching the link targets of {}",
                self.dir.display()
            ));
            if self.watch.follow(&scan.link_dirs) {
                continue;
            }
            let notes: Vec<String> = scan
                .skipped
                .iter()
                .map(|s| format!("keys: skipped {s}"))
                .chain(scan.warnings.iter().map(|w| format!("keys: warning: {w}")))
                .collect();
            set = KeySet::from_scan(scan);
            let shape = set.shape();
            let waited = Instant::now() >= deadline;
            if shape != Shape::Complete && !waited {
                // An empty directory is not a rotation half done: tang fills it at once.
                let empty = shape == Shape::NoActive && set.is_empty();
                if !(empty && self.create && !created) {
                    self.watch
                        .wait(deadline.saturating_duration_since(Instant::now()));
                    continue;
                }
            }
            for n in notes {
                self.log.line(n);
            }
            match shape {
                Shape::Complete => {
                    set.advertise_own(Some(previous));
                    return Some(set);
                }
                Shape::NoActive if self.create && !created => {
                    created = true;
                    self.set_step(format!("creating keys in {}", self.dir.display()));
                    match keydir::create_pair(&self.dir, None) {
                        Ok(names) => self.log.line(format!(
                            "keys: {} had no active key; created {}",
                            self.dir.display(),
                            names.join(", ")
                        )),
                        Err(e) => {
                            set.set_note(format!(
                                "no active key, and creating a pair failed: {e:#}"
                            ));
                            return Some(set);
                        }
                    }
                }
                _ => {
                    let why = match shape {
                        Shape::NoActive if self.create => {
                            "no active key even after creating a pair"
                        }
                        Shape::NoActive => "no active key, and creating keys is off",
                        Shape::Partial { signing: false, .. } => "no active signing key",
                        _ => "an active signing key but no active exchange key",
                    };
                    if !set.advertise_previous(
                        previous,
                        format!("{why}; still advertising the previous keys"),
                    ) {
                        set.set_note(why.to_owned());
                    }
                    return Some(set);
                }
            }
        }
        // The directory never held still: serve the last read as tang would.
        set.set_note("the directory kept changing".into());
        Some(set)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Condvar, Mutex};

    use super::*;

    /// Reads wait while this is closed: a file system that does not answer.
    static GATE: (Mutex<bool>, Condvar) = (Mutex::new(true), Condvar::new());

    fn gate(open: bool) {
        *GATE.0.lock().unwrap() = open;
        GATE.1.notify_all();
    }

    fn gated_read(dir: &Path) -> std::io::Result<keydir::Scan> {
        let mut open = GATE.0.lock().unwrap();
        while !*open {
            open = GATE.1.wait(open).unwrap();
        }
        drop(open);
        keydir::load(dir)
    }

    /// A reload that hangs is logged, requests get `None` (503) instead of
    /// waiting without end, and once it finishes the new keys are served.
    #[test]
    fn a_hanging_read_is_logged_and_answered() {
        let dir = std::env::temp_dir().join(format!("tangd-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        keydir::create_pair(&dir, None).unwrap();
        let (log, lines) = crate::log::capture();
        let stall = Duration::from_millis(300);
        let store = KeyStore::open_with(&dir, Watch::polling(&dir), true, log, gated_read, stall);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap();
        let before = rt.block_on(store.current()).unwrap().signing_thumbprints();

        gate(false);
        keydir::rotate(&dir).unwrap();
        let t = Instant::now();
        assert!(rt.block_on(store.current()).is_none());
        assert!(t.elapsed() >= stall);
        let t = Instant::now();
        assert!(rt.block_on(store.current()).is_none(), "no second wait");
        assert!(t.elapsed() < stall);
        let said: Vec<String> = lines.try_iter().flatten().collect();
        assert!(
            said.iter()
                .any(|l| l.contains("has not finished after 0.3s")),
            "{said:?}"
        );

        gate(true);
        let end = Instant::now() + Duration::from_secs(10);
        let after = loop {
            if let Some(keys) = rt.block_on(store.current()) {
                break keys.signing_thumbprints();
            }
            assert!(Instant::now() < end, "the reload never finished");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_ne!(before, after);
        let said: Vec<String> = lines.try_iter().flatten().collect();
        assert!(
            said.iter().any(|l| l.contains("finished after")),
            "{said:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
