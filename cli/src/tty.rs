//! Asking the operator, on the controlling terminal, whether to trust Tang keys.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};

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
