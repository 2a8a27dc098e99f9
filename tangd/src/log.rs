//! Log lines to stderr from a thread of their own, so that a slow stderr
//! (a pipe to journald, a terminal) never stalls the workers serving requests.
//! Lines that arrive while the queue is full are counted and reported, not kept.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

const QUEUE: usize = 16 * 1024;

#[derive(Clone)]
pub struct Logger {
    tx: SyncSender<String>,
    dropped: Arc<AtomicU64>,
}

/// Joins the writer thread once every [`Logger`] clone is gone, so that the
/// last lines are out before the process exits.
pub struct Flusher(JoinHandle<()>);

impl Flusher {
    pub fn finish(self) {
        let _ = self.0.join();
    }
}

pub fn start() -> (Logger, Flusher) {
    let (tx, rx) = sync_channel(QUEUE);
    let dropped = Arc::new(AtomicU64::new(0));
    let counter = dropped.clone();
    let handle = std::thread::Builder::new()
        .name("log".into())
        .spawn(move || write_loop(rx, counter))
        .expect("spawning the log thread");
    (Logger { tx, dropped }, Flusher(handle))
}

impl Logger {
    pub fn line(&self, line: String) {
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(line)) => eprintln!("{line}"),
        }
    }
}

fn write_loop(rx: Receiver<String>, dropped: Arc<AtomicU64>) {
    let stderr = std::io::stderr();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, stderr.lock());
    while let Ok(first) = rx.recv() {
        let _ = writeln!(out, "{first}");
        // Batch whatever queued up meanwhile into one write.
        while let Ok(line) = rx.try_recv() {
            let _ = writeln!(out, "{line}");
        }
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let _ = writeln!(out, "log: {lost} lines dropped (stderr too slow)");
        }
        let _ = out.flush();
    }
}
