//! The console fallback: ask a person for a passphrase on `/dev/console`,
//! echo off, one volume at a time.
//!
//! A prompt can be withdrawn (its volume was opened another way, or the
//! agent is finishing): the read stops within [`POLL`], echo comes back, and
//! the next volume's prompt gets the console. [`Console::close`] withdraws
//! every prompt and puts the terminal back as it was found, so the agent
//! never leaves a console with echo off.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use latchkey_proto::secret::Secret;
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::termios::{self, LocalModes, OptionalActions, Termios};

/// Longest passphrase line accepted (cryptsetup's interactive limit is 512).
const MAX_LINE: usize = 512;

/// How often a waiting or reading prompt looks whether it was withdrawn.
const POLL: Duration = Duration::from_millis(100);

/// What became of a question.
pub enum Answer {
    /// The line typed, without its end.
    Line(Secret),
    /// The terminal gave end of input (or an error) before any line.
    Eof,
    /// The prompt was withdrawn before a line was complete.
    Withdrawn,
}

/// The console, shared by the volumes' workers so that prompts never mix.
pub struct Console {
    tty: File,
    /// The settings found at open, put back by [`Console::close`].
    found: Option<Termios>,
    /// Held by the prompt on screen.
    turn: Mutex<()>,
    closed: AtomicBool,
}

impl Console {
    /// Opens `/dev/console` if it is a terminal a person could type on.
    pub fn open() -> Option<Console> {
        Console::open_path(Path::new("/dev/console"))
    }

    /// Opens the terminal at `path`; `None` if it cannot be opened or is
    /// not a terminal.
    pub fn open_path(path: &Path) -> Option<Console> {
        let tty = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(rustix::fs::OFlags::NOCTTY.bits() as i32)
            .open(path)
            .ok()?;
        if !termios::isatty(&tty) {
            return None;
        }
        let found = termios::tcgetattr(&tty).ok();
        Some(Console {
            tty,
            found,
            turn: Mutex::new(()),
            closed: AtomicBool::new(false),
        })
    }

    /// Waits for the console, prints `prompt`, reads one line with echo
    /// off. Gives up as soon as `withdraw` is set or the console is closed.
    pub fn ask(&self, prompt: &str, withdraw: &AtomicBool) -> Answer {
        self.ask_until(&[], prompt, &|| withdraw.load(Ordering::Relaxed))
    }

    /// [`Console::ask`], with `lines` shown first in the same turn (no other volume's
    /// prompt comes between them and the question), withdrawn once `stop` says so.
    pub fn ask_until(&self, lines: &[String], prompt: &str, stop: &dyn Fn() -> bool) -> Answer {
        let gone = || stop() || self.closed.load(Ordering::Relaxed);
        let Some(_turn) = self.wait_turn(&gone) else {
            return Answer::Withdrawn;
        };
        let mut tty = &self.tty;
        // Echo goes off before the prompt shows: nothing typed after it is echoed.
        let saved = termios::tcgetattr(tty).ok();
        if let Some(t) = &saved {
            let mut quiet = t.clone();
            quiet.local_modes.remove(LocalModes::ECHO);
            let _ = termios::tcsetattr(tty, OptionalActions::Now, &quiet);
        }
        for l in lines {
            let _ = writeln!(tty, "{l}");
        }
        let _ = tty.write_all(prompt.as_bytes());
        let answer = read_line(&mut tty, &gone);
        if let Some(t) = &saved {
            let _ = termios::tcsetattr(tty, OptionalActions::Now, t);
        }
        let _ = tty.write_all(b"\n");
        answer
    }

    /// Writes a line for the person at the console.
    pub fn say(&self, text: &str) {
        let _ = writeln!(&self.tty, "{text}");
    }

    /// Withdraws every prompt, waits (briefly) for the one on screen to
    /// let go, and puts the terminal settings back as they were at open.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        let _turn = self.wait_turn(&|| false);
        if let Some(t) = &self.found {
            let _ = termios::tcsetattr(&self.tty, OptionalActions::Now, t);
        }
    }

    /// The console's turn, or `None` once `gone` says so.
    fn wait_turn(&self, gone: &dyn Fn() -> bool) -> Option<MutexGuard<'_, ()>> {
        loop {
            match self.turn.try_lock() {
                Ok(t) => return Some(t),
                Err(TryLockError::Poisoned(p)) => return Some(p.into_inner()),
                Err(TryLockError::WouldBlock) => {}
            }
            if gone() {
                return None;
            }
            std::thread::sleep(POLL);
        }
    }
}

/// Reads up to a newline, byte by byte so nothing after it is consumed,
/// looking every [`POLL`] whether to give up. Strips the line end as
/// cryptsetup does for an interactive passphrase.
fn read_line<R: Read + rustix::fd::AsFd>(r: &mut R, gone: &dyn Fn() -> bool) -> Answer {
    let mut buf = zeroize::Zeroizing::new(Vec::with_capacity(64));
    let mut byte = [0u8; 1];
    let tick = Timespec {
        tv_sec: 0,
        tv_nsec: POLL.as_nanos() as _,
    };
    loop {
        if gone() {
            return Answer::Withdrawn;
        }
        let mut fds = [PollFd::new(&*r, PollFlags::IN)];
        match poll(&mut fds, Some(&tick)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return Answer::Eof,
        }
        match r.read(&mut byte) {
            Ok(0) if buf.is_empty() => return Answer::Eof,
            Ok(0) => break,
            Ok(_) if byte[0] == b'\n' || byte[0] == b'\r' => break,
            Ok(_) if buf.len() < MAX_LINE => buf.push(byte[0]),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return Answer::Eof,
        }
    }
    Answer::Line(Secret::new(std::mem::take(&mut *buf)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_testkit::Pty;
    use std::os::unix::net::UnixStream;
    use std::sync::Arc;

    fn line(answer: Answer) -> Option<Vec<u8>> {
        match answer {
            Answer::Line(s) => Some(s.expose().to_vec()),
            _ => None,
        }
    }

    #[test]
    fn lines_lose_their_end_and_nothing_more() {
        let (mut r, mut w) = UnixStream::pair().unwrap();
        let never = || false;
        w.write_all(b"s3cret pass\nabc\rdef\n").unwrap();
        assert_eq!(line(read_line(&mut r, &never)).unwrap(), b"s3cret pass");
        assert_eq!(line(read_line(&mut r, &never)).unwrap(), b"abc");
        assert_eq!(line(read_line(&mut r, &never)).unwrap(), b"def");
        w.write_all(b"tail").unwrap();
        drop(w);
        assert_eq!(line(read_line(&mut r, &never)).unwrap(), b"tail");
        assert!(matches!(read_line(&mut r, &never), Answer::Eof));
    }

    #[test]
    fn overlong_lines_are_cut() {
        let (mut r, mut w) = UnixStream::pair().unwrap();
        w.write_all(&[b'x'; 2000]).unwrap();
        w.write_all(b"\n").unwrap();
        assert_eq!(line(read_line(&mut r, &|| false)).unwrap().len(), MAX_LINE);
    }

    #[test]
    fn a_read_without_input_ends_when_withdrawn() {
        let (mut r, _w) = UnixStream::pair().unwrap();
        let flag = AtomicBool::new(false);
        let gone = || flag.swap(true, Ordering::Relaxed);
        assert!(matches!(read_line(&mut r, &gone), Answer::Withdrawn));
    }

    /// On a real terminal: echo is off while asking, a withdrawn prompt ends
    /// within a poll interval with echo back on, and the next prompt gets
    /// the console.
    #[test]
    fn a_withdrawn_prompt_gives_the_console_back() {
        let mut pty = Pty::new();
        let console = Arc::new(Console::open_path(&pty.path).expect("the pty is a terminal"));
        assert!(pty.echo());
        let withdraw_a = Arc::new(AtomicBool::new(false));
        let a = {
            let (c, w) = (console.clone(), withdraw_a.clone());
            std::thread::spawn(move || matches!(c.ask("passphrase for A: ", &w), Answer::Withdrawn))
        };
        pty.expect("passphrase for A: ");
        assert!(!pty.echo(), "echo off while a passphrase is typed");
        let b = {
            let c = console.clone();
            std::thread::spawn(move || line(c.ask("passphrase for B: ", &AtomicBool::new(false))))
        };
        std::thread::sleep(POLL * 3);
        withdraw_a.store(true, Ordering::Relaxed);
        assert!(a.join().unwrap());
        pty.expect("passphrase for B: ");
        pty.type_in("b-pass\n");
        assert_eq!(b.join().unwrap().unwrap(), b"b-pass");
        assert!(pty.echo(), "echo back on");
    }

    /// Closing the console while a prompt reads puts the terminal back.
    #[test]
    fn close_restores_the_terminal() {
        let mut pty = Pty::new();
        let console = Arc::new(Console::open_path(&pty.path).unwrap());
        let asking = {
            let c = console.clone();
            std::thread::spawn(move || {
                matches!(c.ask("p: ", &AtomicBool::new(false)), Answer::Withdrawn)
            })
        };
        pty.expect("p: ");
        assert!(!pty.echo());
        console.close();
        assert!(pty.echo(), "echo back on after close");
        assert!(asking.join().unwrap());
    }
}
