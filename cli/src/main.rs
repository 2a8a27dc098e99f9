//! latchkey: the operator's tool, speaking clevis's grammar.
//!
//! ```text
//!   latchkey encrypt PIN CONFIG ──▶ encrypt.rs ──▶ latchkey-proto (pin::encrypt, EncryptIo)
//!                                        └──────▶ latchkey-client (fetch_adv)
//!   latchkey decrypt ─────────────▶ decrypt.rs ──▶ latchkey-client (decrypt) ──▶ Tang servers
//!                                        └──────▶ tpm.rs ─▶ latchkey-tpm2 ──────────▶ the TPM
//!   latchkey luks check -d DEV ───▶ luks.rs ────▶ latchkey-luks (header, unlock) + latchkey-client
//!   latchkey recover ... ─────────▶ recover.rs ─▶ latchkey-proto (recovery codes) + client, luks
//! ```
//!
//! This file only parses the command line and dispatches; each subcommand is a module.
//! Errors go to stderr with their context and the exit status is 1.
#![forbid(unsafe_code)]

mod decrypt;
mod encrypt;
mod input;
mod luks;
mod recover;
mod rng;
mod tpm;
mod tty;

use argh::FromArgs;

/// Tests check that no secret reaches freed memory.
#[cfg(test)]
#[global_allocator]
static ALLOC: latchkey_sys::wipecheck::WipeCheck = latchkey_sys::wipecheck::WipeCheck;

/// Network-Bound Disk Encryption, compatible with clevis and tang.
#[derive(FromArgs)]
struct Cli {
    #[argh(subcommand)]
    command: Command,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Command {
    Encrypt(encrypt::Args),
    Decrypt(decrypt::Args),
    Luks(luks::Args),
    Recover(recover::Args),
}

fn main() {
    let cli: Cli = argh::from_env();
    let (name, result) = match cli.command {
        Command::Encrypt(args) => ("encrypt", encrypt::run(args)),
        Command::Decrypt(args) => ("decrypt", decrypt::run(args)),
        Command::Luks(args) => ("luks", luks::run(args)),
        Command::Recover(args) => ("recover", recover::run(args)),
    };
    if let Err(e) = result {
        eprintln!("latchkey {name}: {e:#}");
        std::process::exit(1);
    }
}
