//! The agent's log: lines go to the kernel log as `latchkey: …` with a
//! syslog level (so they show on the console and in `journalctl -b`
//! later), or to stderr when `/dev/kmsg` cannot be opened. Phase times are
//! measured from agent start: `latchkey: network up after 0.41s`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use latchkey_sys::kmsg::{Kmsg, Level};

enum Sink {
    Kmsg(Kmsg),
    Stderr,
    Memory(Vec<(Level, String)>),
}

/// The logger. Methods take `&self` so that concurrent workers can share it.
pub struct Log {
    start: Instant,
    debug: bool,
    sink: Mutex<Sink>,
}

/// `0.41s`: seconds with two decimals.
pub fn format_elapsed(d: Duration) -> String {
    let cs = (d.as_millis() + 5) / 10;
    format!("{}.{:02}s", cs / 100, cs % 100)
}

impl Log {
    /// Logs to `/dev/kmsg`, or stderr if that fails. `start` is the agent's
    /// start time; `debug` enables [`Log::debug`] lines.
    pub fn open(start: Instant, debug: bool) -> Log {
        let sink = Kmsg::open().map(Sink::Kmsg).unwrap_or(Sink::Stderr);
        Log {
            start,
            debug,
            sink: Mutex::new(sink),
        }
    }

    /// Logs to stderr only.
    pub fn stderr(start: Instant, debug: bool) -> Log {
        Log {
            start,
            debug,
            sink: Mutex::new(Sink::Stderr),
        }
    }

    /// Keeps lines in memory, for tests.
    pub fn memory(start: Instant, debug: bool) -> Log {
        Log {
            start,
            debug,
            sink: Mutex::new(Sink::Memory(Vec::new())),
        }
    }

    /// Lines kept by a [`Log::memory`] logger.
    pub fn lines(&self) -> Vec<(Level, String)> {
        match &*self.sink.lock().unwrap_or_else(|e| e.into_inner()) {
            Sink::Memory(v) => v.clone(),
            _ => Vec::new(),
        }
    }

    /// Turns debug lines on or off (after the command line was read).
    pub fn set_debug(&mut self, on: bool) {
        self.debug = on;
    }

    /// Time since agent start.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Writes `latchkey: <msg>` at `level`.
    pub fn log(&self, level: Level, msg: &str) {
        if level == Level::Debug && !self.debug {
            return;
        }
        let line = format!("latchkey: {msg}");
        let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *sink {
            Sink::Kmsg(k) => {
                if k.write(level, &line).is_err() {
                    eprintln!("{line}");
                }
            }
            Sink::Stderr => match level {
                Level::Err => eprintln!("latchkey: error: {msg}"),
                Level::Warning => eprintln!("latchkey: warning: {msg}"),
                _ => eprintln!("{line}"),
            },
            Sink::Memory(v) => v.push((level, line)),
        }
    }

    /// An error.
    pub fn error(&self, msg: &str) {
        self.log(Level::Err, msg);
    }

    /// A warning.
    pub fn warn(&self, msg: &str) {
        self.log(Level::Warning, msg);
    }

    /// Progress.
    pub fn info(&self, msg: &str) {
        self.log(Level::Info, msg);
    }

    /// Detail shown only with `latchkey.debug`.
    pub fn debug(&self, msg: &str) {
        self.log(Level::Debug, msg);
    }

    /// Marks the end of a phase: `<what> after 0.41s` (since agent start).
    pub fn phase(&self, what: &str) {
        self.info(&format!("{what} after {}", format_elapsed(self.elapsed())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_format() {
        assert_eq!(format_elapsed(Duration::from_millis(410)), "0.41s");
        assert_eq!(format_elapsed(Duration::from_millis(12_345)), "12.35s");
        assert_eq!(format_elapsed(Duration::ZERO), "0.00s");
        assert_eq!(format_elapsed(Duration::from_millis(999)), "1.00s");
    }

    #[test]
    fn levels_prefix_and_debug_filter() {
        let start = Instant::now() - Duration::from_millis(1500);
        let mut log = Log::memory(start, false);
        log.info("hello");
        log.debug("hidden");
        log.warn("careful");
        log.set_debug(true);
        log.debug("shown");
        log.phase("network up");
        let lines = log.lines();
        assert_eq!(lines[0], (Level::Info, "latchkey: hello".to_owned()));
        assert_eq!(lines[1], (Level::Warning, "latchkey: careful".to_owned()));
        assert_eq!(lines[2], (Level::Debug, "latchkey: shown".to_owned()));
        assert!(
            lines[3].1.starts_with("latchkey: network up after 1."),
            "{:?}",
            lines[3]
        );
        assert!(lines[3].1.ends_with('s'));
        assert_eq!(lines.len(), 4);
    }
}
