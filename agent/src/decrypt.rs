//! `latchkey-agent decrypt`: a clevis JWE on stdin, its plaintext on stdout,
//! through the same engine the boot flow uses.

use std::io::{Read, Write};
use std::time::Duration;

use latchkey_client::Options;
use latchkey_proto::jwe::Jwe;

/// Runs the command; the process exit code.
pub fn run(mut args: impl Iterator<Item = String>) -> i32 {
    // Before any secret exists, so none is ever swapped out (as `unlock` does). Without
    // the privilege to lock it, the command still works, as clevis would.
    let _ = latchkey_sys::mount::lock_memory();
    let mut opts = Options::default();
    while let Some(a) = args.next() {
        let secs = |v: Option<String>| match v {
            None => Err(format!("{a} expects a number of seconds, found nothing")),
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|s| *s > 0.0 && *s < 86400.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| {
                    format!("{a} expects a number of seconds above 0 and below 86400, found {v:?}")
                }),
        };
        match a.as_str() {
            "--timeout" => match secs(args.next()) {
                Ok(d) => {
                    opts.timeout = d;
                    opts.connect_timeout = d;
                }
                Err(e) => return usage(&e),
            },
            "--deadline" => match secs(args.next()) {
                Ok(d) => opts.deadline = d,
                Err(e) => return usage(&e),
            },
            other => return usage(&format!("unknown option {other:?}")),
        }
    }
    let mut text = String::new();
    if let Err(e) = std::io::stdin().take(16 << 20).read_to_string(&mut text) {
        eprintln!("latchkey-agent decrypt: reading the JWE from stdin: {e}");
        return 1;
    }
    let jwe = match Jwe::parse(&text) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("latchkey-agent decrypt: {e}");
            return 1;
        }
    };
    match latchkey_client::decrypt(&jwe, &opts) {
        Ok(secret) => {
            let mut out = std::io::stdout().lock();
            if out
                .write_all(secret.expose())
                .and_then(|()| out.flush())
                .is_err()
            {
                eprintln!("latchkey-agent decrypt: writing the plaintext to stdout failed");
                return 1;
            }
            0
        }
        Err(e) => {
            eprintln!("latchkey-agent decrypt: {e}");
            1
        }
    }
}

fn usage(msg: &str) -> i32 {
    eprintln!("latchkey-agent decrypt: {msg}");
    2
}
