//! `latchkey-agent decrypt`: a clevis JWE on stdin, its plaintext on stdout,
//! through the same engine the boot flow uses (tpm2 pins through the TPM
//! `TPM2TOOLS_TCTI` names, else /dev/tpmrm0, then /dev/tpm0). `https://` Tang
//! servers are checked against the system CA store, or, as at boot
//! (`latchkey.ca=`, `latchkey.tls-pin=`), a CA file or a certificate pin.

use std::sync::Arc;
use std::time::Duration;

use latchkey_client::{Fingerprint, Options, Trust};
use latchkey_tpm2::{COMMAND_TIMEOUT, Unsealer};

/// Runs the command; the process exit code.
pub fn run(mut args: impl Iterator<Item = String>) -> i32 {
    // Before any secret exists, so none is ever swapped out (as `unlock` does). Without
    // the privilege to lock it, the command still works, as clevis would.
    let _ = latchkey_sys::mount::lock_memory();
    let mut opts = Options {
        resolver: latchkey_client::Resolver::Stub,
        ..Options::default()
    };
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
                Ok(d) => opts.budget = d,
                Err(e) => return usage(&e),
            },
            "--ca" => match args.next() {
                Some(p) if !p.is_empty() => opts.trust = Trust::CaFile(p.into()),
                _ => return usage("--ca expects the path of a PEM file of CA certificates"),
            },
            "--tls-pin" => match Fingerprint::parse(&args.next().unwrap_or_default()) {
                Ok(fp) => opts.trust = Trust::Pin(fp),
                Err(e) => return usage(&format!("--tls-pin: {e}")),
            },
            other => return usage(&format!("unknown option {other:?}")),
        }
    }
    let tpm = Arc::new(Unsealer::from_env(COMMAND_TIMEOUT));
    match latchkey_client::decrypt_stdin(&opts, Some(tpm)) {
        Ok(()) => 0,
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
