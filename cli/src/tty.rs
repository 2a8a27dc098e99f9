//! Asking the operator: on the controlling terminal whether to trust Tang keys or
//! wipe a keyslot, and on stdin (as clevis's `read` does) for a passphrase or a yes.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};

use latchkey_proto::Secret;
use rustix::termios::{self, LocalModes, OptionalActions};

/// Shows `thumbprints` for `url` and asks "Do you wish to trust these keys? [ynYN]" as
/// clevis does: the list and prompt on stderr, the answer from /dev/tty. Without a
/// terminal it says so and what to do instead, and answers no.
pub fn trust(url: &str, thumbprints: &[String]) -> bool {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "The advertisement of {url} contains the following signing keys:\n"
    );
    for thp in thumbprints {
        let _ = writeln!(err, "{thp}");
    }
    let _ = writeln!(err);
    let tty = match File::open("/dev/tty") {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(
                err,
                "cannot ask whether to trust these keys: no terminal (/dev/tty: {e}); \
                 give \"thp\" in the config or pass -y"
            );
            return false;
        }
    };
    let _ = write!(err, "Do you wish to trust these keys? [ynYN] ");
    let _ = err.flush();
    let mut answer = String::new();
    if BufReader::new(tty).read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim_end_matches(['\r', '\n']), "y" | "Y")
}

/// Longest line read as an answer or a passphrase (bash's `read` has no limit;
/// cryptsetup takes at most 512 characters interactively).
const MAX_LINE: usize = 8192;

/// Asks `question` on the controlling terminal (as clevis asks before wiping a
/// keyslot); true for `y` or `Y`. Without a terminal the answer is no.
#[cfg(feature = "cryptsetup")]
pub fn confirm(question: &str) -> bool {
    let Ok(tty) = File::options().read(true).write(true).open("/dev/tty") else {
        return false;
    };
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{question}");
    let _ = err.flush();
    let mut answer = String::new();
    if BufReader::new(tty).read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim_end_matches(['\r', '\n']), "y" | "Y")
}

/// bash's `read -r -p PROMPT` on stdin: the prompt (on stderr) only when stdin
/// is a terminal, then one line without its newline; `None` at end of input.
pub fn ask_stdin(prompt: &str) -> Option<String> {
    let line = read_stdin_line(prompt, false)?;
    Some(String::from_utf8_lossy(line.expose()).into_owned())
}

/// bash's `read -r -s -p PROMPT` on stdin, for a passphrase: echo off when stdin
/// is a terminal; the line without its newline, kept in a wiping buffer.
#[cfg(feature = "cryptsetup")]
pub fn ask_secret(prompt: &str) -> Option<Secret> {
    read_stdin_line(prompt, true)
}

fn read_stdin_line(prompt: &str, secret: bool) -> Option<Secret> {
    let stdin = std::io::stdin();
    let interactive = termios::isatty(&stdin);
    let saved = if interactive {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "{prompt}");
        let _ = err.flush();
        termios::tcgetattr(&stdin).ok()
    } else {
        None
    };
    if let (true, Some(t)) = (secret, &saved) {
        let mut quiet = t.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        let _ = termios::tcsetattr(&stdin, OptionalActions::Now, &quiet);
    }
    let line = read_line(&mut stdin.lock());
    if let (true, Some(t)) = (secret, &saved) {
        let _ = termios::tcsetattr(&stdin, OptionalActions::Now, t);
        eprintln!();
    }
    line
}

/// Up to a newline, byte by byte so that nothing after it is consumed; at most
/// `MAX_LINE` bytes are kept. `None` at end of input before any byte.
fn read_line(r: &mut impl Read) -> Option<Secret> {
    // Allocated once at full size, so that no reallocation leaves a copy of a
    // passphrase behind; the Secret below wipes it.
    let mut bytes = Vec::with_capacity(MAX_LINE);
    let mut byte = [0u8; 1];
    let mut any = false;
    loop {
        match r.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => {
                any = true;
                if byte[0] == b'\n' {
                    break;
                }
                if bytes.len() < MAX_LINE {
                    bytes.push(byte[0]);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let line = Secret::new(bytes);
    any.then_some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_without_its_newline_and_nothing_after() {
        let mut input: &[u8] = b"  spaced\\pass \r\nnext";
        assert_eq!(
            read_line(&mut input).unwrap().expose(),
            b"  spaced\\pass \r"
        );
        assert_eq!(input, b"next");
        let mut last: &[u8] = b"tail";
        assert_eq!(read_line(&mut last).unwrap().expose(), b"tail");
        let mut empty: &[u8] = b"\n";
        assert_eq!(read_line(&mut empty).unwrap().expose(), b"");
        let mut eof: &[u8] = b"";
        assert!(read_line(&mut eof).is_none());
        let long = vec![b'x'; MAX_LINE + 10];
        assert_eq!(read_line(&mut &long[..]).unwrap().len(), MAX_LINE);
    }
}
