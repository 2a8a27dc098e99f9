//! Log lines to stderr from a thread of their own, so that a slow stderr
//! (a pipe to journald, a terminal) never stalls the workers serving requests.
//! Lines that arrive while the queue is full are counted and reported, not kept.
//!
//! The writer wakes up on a timer and takes whatever has queued up, rather
//! than being woken per line: a futex wake and a context switch per request
//! cost more than formatting the line.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

const QUEUE: usize = 64 * 1024;
const INTERVAL: Duration = Duration::from_millis(20);

/// `None` tells the writer to stop after what is queued before it.
type Msg = Option<String>;

#[derive(Clone)]
pub struct Logger {
    /// `None`: lines are discarded.
    tx: Option<SyncSender<Msg>>,
    dropped: Arc<AtomicU64>,
}

/// Stops the writer thread once the lines queued so far are out, so that the
/// last lines are written before the process exits.
pub struct Flusher(SyncSender<Msg>, JoinHandle<()>);

impl Flusher {
    pub fn finish(self) {
        if self.0.send(None).is_ok() {
            let _ = self.1.join();
        }
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
    (
        Logger {
            tx: Some(tx.clone()),
            dropped,
        },
        Flusher(tx, handle),
    )
}

/// A logger whose lines go to the returned receiver instead of stderr.
#[cfg(test)]
pub(crate) fn capture() -> (Logger, Receiver<Msg>) {
    let (tx, rx) = sync_channel(QUEUE);
    let dropped = Arc::new(AtomicU64::new(0));
    (
        Logger {
            tx: Some(tx),
            dropped,
        },
        rx,
    )
}

impl Logger {
    /// A logger that drops every line (fuzzing, benchmarks of the request loop).
    pub fn discard() -> Logger {
        Logger {
            tx: None,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn line(&self, line: String) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(Some(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(line)) => eprintln!("{}", line.unwrap_or_default()),
        }
    }
}

fn write_loop(rx: Receiver<Msg>, dropped: Arc<AtomicU64>) {
    let stderr = std::io::stderr();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, stderr.lock());
    loop {
        let mut stop = false;
        loop {
            match rx.try_recv() {
                Ok(Some(line)) => {
                    let _ = writeln!(out, "{line}");
                }
                Ok(None) | Err(TryRecvError::Disconnected) => {
                    stop = true;
                    break;
                }
                Err(TryRecvError::Empty) => break,
            }
        }
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let _ = writeln!(out, "log: {lost} lines dropped (stderr too slow)");
        }
        let _ = out.flush();
        if stop {
            return;
        }
        std::thread::sleep(INTERVAL);
    }
}
