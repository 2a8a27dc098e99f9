//! Log lines to stderr from a thread of their own, so that a slow stderr
//! (a pipe to journald, a terminal) never stalls the workers serving requests.
//! Lines that arrive while the queue is full are counted and reported, not kept.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

const QUEUE: usize = 16 * 1024;

/// `None` tells the writer to stop after what is queued before it.
type Msg = Option<String>;

#[derive(Clone)]
pub struct Logger {
    tx: SyncSender<Msg>,
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
            tx: tx.clone(),
            dropped,
        },
        Flusher(tx, handle),
    )
}

impl Logger {
    pub fn line(&self, line: String) {
        match self.tx.try_send(Some(line)) {
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
    let mut next = rx.recv();
    while let Ok(Some(line)) = next {
        let _ = writeln!(out, "{line}");
        // Batch whatever queued up meanwhile into one write.
        next = loop {
            match rx.try_recv() {
                Ok(Some(line)) => {
                    let _ = writeln!(out, "{line}");
                }
                Ok(None) => break Ok(None),
                Err(_) => {
                    let lost = dropped.swap(0, Ordering::Relaxed);
                    if lost > 0 {
                        let _ = writeln!(out, "log: {lost} lines dropped (stderr too slow)");
                    }
                    let _ = out.flush();
                    break rx.recv();
                }
            }
        };
    }
    let _ = out.flush();
}
