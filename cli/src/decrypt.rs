//! `latchkey decrypt`: JWE on stdin, plaintext on stdout once the tag has verified.

use std::time::Duration;

use anyhow::{Context, Result};
use argh::FromArgs;
use latchkey_client::{Options, Retry};

use crate::tpm;

/// Decrypt a clevis JWE (compact, or a LUKS2 token's JSON) read from stdin. tpm2 pins use
/// the TPM that TPM2TOOLS_TCTI names (default /dev/tpmrm0, then /dev/tpm0).
#[derive(FromArgs)]
#[argh(subcommand, name = "decrypt")]
pub struct Args {
    /// seconds one Tang request may take, connect to reply (default 10)
    #[argh(option, default = "10.0")]
    timeout: f64,
    /// seconds the whole decryption may take, retries included (default 30)
    #[argh(option, default = "30.0")]
    deadline: f64,
    /// retries of a request whose server could not be reached (default 3)
    #[argh(option, default = "3")]
    retries: u32,
}

pub fn run(args: Args) -> Result<()> {
    let opts = options(&args)?;
    latchkey_client::decrypt_stdin(&opts, Some(tpm::unsealer()))?;
    Ok(())
}

fn options(args: &Args) -> Result<Options> {
    client_options(args.timeout, args.deadline, args.retries)
}

/// Client options from `--timeout` and `--deadline` seconds and `--retries`.
pub fn client_options(timeout: f64, deadline: f64, retries: u32) -> Result<Options> {
    let secs = |what: &str, v: f64| {
        Duration::try_from_secs_f64(v)
            .ok()
            .filter(|d| !d.is_zero())
            .with_context(|| format!("--{what} must be a positive number of seconds, not {v}"))
    };
    Ok(tang_options(
        secs("timeout", timeout)?,
        secs("deadline", deadline)?,
        retries,
    ))
}

/// The client options of every command that recovers a passphrase: one request
/// may take `timeout`, all of them with retries `budget`.
pub(crate) fn tang_options(timeout: Duration, budget: Duration, retries: u32) -> Options {
    Options {
        connect_timeout: timeout,
        timeout,
        budget,
        retry: Retry {
            retries,
            ..Retry::default()
        },
        ..Options::default()
    }
}
