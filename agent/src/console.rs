//! The console fallback: ask a person for a passphrase on `/dev/console`,
//! echo off, one volume at a time.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::sync::Mutex;

use latchkey_proto::secret::Secret;
use rustix::termios::{self, LocalModes, OptionalActions};

/// Longest passphrase line accepted (cryptsetup's interactive limit is 512).
const MAX_LINE: usize = 512;

/// The console, shared by the volumes' workers so that prompts never mix.
pub struct Console {
    tty: Mutex<File>,
}

impl Console {
    /// Opens `/dev/console` if it is a terminal a person could type on.
    pub fn open() -> Option<Console> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/console")
            .ok()?;
        termios::isatty(&f).then(|| Console { tty: Mutex::new(f) })
    }

    /// Prints `prompt`, reads one line with echo off. `None` at end of input.
    pub fn ask(&self, prompt: &str) -> Option<Secret> {
        let mut tty = self.tty.lock().unwrap_or_else(|e| e.into_inner());
        let _ = tty.write_all(prompt.as_bytes());
        let saved = termios::tcgetattr(&*tty).ok();
        if let Some(t) = &saved {
            let mut quiet = t.clone();
            quiet.local_modes.remove(LocalModes::ECHO);
            let _ = termios::tcsetattr(&*tty, OptionalActions::Now, &quiet);
        }
        let line = read_line(&mut *tty);
        if let Some(t) = &saved {
            let _ = termios::tcsetattr(&*tty, OptionalActions::Now, t);
        }
        let _ = tty.write_all(b"\n");
        line
    }

    /// Writes a line for the person at the console.
    pub fn say(&self, text: &str) {
        let mut tty = self.tty.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(tty, "{text}");
    }
}

/// Reads up to a newline, byte by byte so nothing after it is consumed.
/// Strips the line end as cryptsetup does for an interactive passphrase.
fn read_line(r: &mut impl Read) -> Option<Secret> {
    let mut buf = zeroize::Zeroizing::new(Vec::with_capacity(64));
    let mut byte = [0u8; 1];
    loop {
        match r.read(&mut byte) {
            Ok(0) => {
                if buf.is_empty() {
                    return None;
                }
                break;
            }
            Ok(_) if byte[0] == b'\n' || byte[0] == b'\r' => break,
            Ok(_) if buf.len() < MAX_LINE => buf.push(byte[0]),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(Secret::new(std::mem::take(&mut *buf)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_lose_their_end_and_nothing_more() {
        let mut input: &[u8] = b"s3cret pass\nnext";
        assert_eq!(read_line(&mut input).unwrap().expose(), b"s3cret pass");
        assert_eq!(input, b"next");
        let mut cr: &[u8] = b"abc\r\n";
        assert_eq!(read_line(&mut cr).unwrap().expose(), b"abc");
        let mut eof: &[u8] = b"";
        assert!(read_line(&mut eof).is_none());
        let mut last: &[u8] = b"tail";
        assert_eq!(read_line(&mut last).unwrap().expose(), b"tail");
    }

    #[test]
    fn overlong_lines_are_cut() {
        let long = vec![b'x'; 2000];
        let mut input: &[u8] = &long;
        assert_eq!(read_line(&mut input).unwrap().len(), MAX_LINE);
    }
}
