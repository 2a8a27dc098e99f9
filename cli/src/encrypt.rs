//! `latchkey encrypt PIN CONFIG [-y]`: secret on stdin, compact JWE on stdout.

use std::io::Write;

use anyhow::{Context, Result};
use argh::FromArgs;
use latchkey_client::Options;
use latchkey_proto::pin::{self, EncryptIo, SealRequest, Sealed};

use crate::{input, tpm, tty};

/// Encrypt stdin with a clevis pin (tang, sss, tpm2 or null) and its JSON config.
#[derive(FromArgs)]
#[argh(subcommand, name = "encrypt")]
pub struct Args {
    /// the pin: tang, sss, tpm2 or null
    #[argh(positional)]
    pin: String,
    /// the pin's configuration, JSON as clevis takes it
    #[argh(positional)]
    config: String,
    /// trust the Tang advertisements without asking
    #[argh(switch, short = 'y')]
    yes: bool,
}

pub fn run(args: Args) -> Result<()> {
    let secret = input::stdin()?;
    let mut io = Io {
        opts: Options::default(),
    };
    let jwe = pin::encrypt_json(
        &args.pin,
        &args.config,
        secret.expose(),
        args.yes,
        &mut io,
        &mut latchkey_sys::rng::os(),
    )?;
    let mut out = std::io::stdout().lock();
    out.write_all(jwe.as_bytes())
        .and_then(|()| out.flush())
        .context("writing the JWE")?;
    Ok(())
}

/// What encryption needs from the outside world: the network, files, the TPM and the
/// operator.
pub(crate) struct Io {
    pub(crate) opts: Options,
}

impl EncryptIo for Io {
    fn fetch_adv(&mut self, url: &str, thp: Option<&str>) -> Result<Vec<u8>, String> {
        latchkey_client::fetch_adv(url, thp, &self.opts).map_err(|e| e.to_string())
    }

    fn read_file(&mut self, path: &str) -> Result<Vec<u8>, String> {
        std::fs::read(path).map_err(|e| format!("reading {path}: {e}"))
    }

    fn trust(&mut self, url: &str, thumbprints: &[String]) -> bool {
        tty::trust(url, thumbprints)
    }

    fn tpm2_seal(&mut self, req: &SealRequest) -> Result<Sealed, String> {
        tpm::seal(req)
    }
}
