//! Follows the key directory: polls a cheap fingerprint (names, inodes, sizes,
//! mtimes of `*.jwk`) and rebuilds the key set when it changes.
//!
//! Polling rather than inotify: it works on every filesystem, survives the
//! directory being replaced, and a stat of a handful of files per second
//! costs nothing.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::keydir;
use crate::keyset::{KeySet, KeyStore};
use crate::log::Logger;

/// Loads the directory; if it has no active key, creates a pair first (as
/// tang does), provided the directory is writable.
pub fn load_or_create(dir: &std::path::Path, log: &Logger) -> std::io::Result<KeySet> {
    let mut scan = keydir::load(dir)?;
    if !scan.has_active() {
        match keydir::create_pair(dir) {
            Ok(names) => {
                log.line(format!(
                    "keys: {} had no active key; created {}",
                    dir.display(),
                    names.join(", ")
                ));
                scan = keydir::load(dir)?;
            }
            Err(e) => log.line(format!(
                "keys: {} has no active key and none could be created: {e:#}",
                dir.display()
            )),
        }
    }
    for s in &scan.skipped {
        log.line(format!("keys: skipped {s}"));
    }
    Ok(KeySet::build(scan))
}

/// Starts the polling thread.
pub fn spawn(dir: PathBuf, store: Arc<KeyStore>, interval: Duration, log: Logger) {
    let run = move || {
        let mut last = keydir::fingerprint(&dir).ok();
        // Debian's tangd-rotate-keys hides the old keys before it makes new
        // ones; creating a pair in that gap would leave two. So an empty
        // directory must stay empty for one more poll before we fill it.
        let mut empty_polls = 0;
        loop {
            std::thread::sleep(interval);
            let now = match keydir::fingerprint(&dir) {
                Ok(f) => Some(f),
                Err(e) => {
                    if last.is_some() {
                        log.line(format!(
                            "keys: cannot read {}: {e}; keeping the keys in memory",
                            dir.display()
                        ));
                    }
                    None
                }
            };
            if now.is_none() || (now == last && empty_polls == 0) {
                if now.is_none() {
                    last = None;
                }
                continue;
            }
            match keydir::load(&dir) {
                Ok(scan) if !scan.has_active() && empty_polls == 0 => {
                    empty_polls = 1;
                    continue;
                }
                Ok(scan) if !scan.has_active() => match load_or_create(&dir, &log) {
                    Ok(set) => {
                        log.line(set.describe());
                        store.replace(set);
                    }
                    Err(e) => log.line(format!("keys: reading {}: {e}", dir.display())),
                },
                Ok(scan) => {
                    for s in &scan.skipped {
                        log.line(format!("keys: skipped {s}"));
                    }
                    let set = KeySet::build(scan);
                    log.line(set.describe());
                    store.replace(set);
                }
                Err(e) => log.line(format!("keys: reading {}: {e}", dir.display())),
            }
            empty_polls = 0;
            // The fingerprint from before the load: a file that changed while
            // it was being read (a key half written) differs next time.
            last = now;
        }
    };
    std::thread::Builder::new()
        .name("keys".into())
        .spawn(run)
        .expect("spawning the key watcher");
}
