//! latchkey: the operator's tool, speaking clevis's grammar.
//!
//! ```text
//!   latchkey encrypt PIN CONFIG ──▶ encrypt.rs ──▶ latchkey-proto (pin::encrypt, EncryptIo)
//!                                        └──────▶ latchkey-client (fetch_adv)
//!   latchkey decrypt ─────────────▶ decrypt.rs ──▶ latchkey-client (decrypt) ──▶ Tang servers
//!                                        └──────▶ tpm.rs ─▶ latchkey-tpm2 ──────────▶ the TPM
//!   latchkey luks list|pass|report|check ─▶ luks/ ──▶ latchkey-luks (header) + latchkey-enroll (pure)
//!   latchkey luks bind|unbind|regen|edit ─▶ luks/handover.rs ──exec──▶ latchkey-luks (companion)
//!                                              luks/write.rs ──▶ latchkey-enroll::Session ──▶ libcryptsetup
//!   latchkey nbde status ─────────▶ nbde/ ──▶ latchkey-enroll::policy (pure) + Tang /adv
//!   latchkey nbde apply ──────────▶ nbde/ ──exec──▶ latchkey-luks nbde apply ──▶ latchkey-enroll::policy::apply
//!   latchkey recover ... ─────────▶ recover.rs ─▶ latchkey-proto (recovery codes) + client, luks
//! ```
//!
//! Two binaries share this library. `latchkey` is static (musl) and starts in
//! well under a millisecond, which `decrypt` wants; the commands that write a
//! LUKS header need libcryptsetup, which Debian ships for glibc only, so they
//! run in `latchkey-luks`, a dynamic companion installed beside it, which
//! `latchkey` execs with the same arguments. `main.rs` files only call in here.
#![forbid(unsafe_code)]

mod decrypt;
mod encrypt;
mod input;
pub mod luks;
pub mod nbde;
mod recover;
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
    Nbde(nbde::Args),
    Recover(recover::Args),
}

/// `latchkey`: parses the command line and runs the subcommand. Errors go to
/// stderr with their context; the exit status is 1 (or the status clevis uses
/// for the same `luks` failure).
pub fn main() {
    let cli: Cli = argh::from_env();
    let (name, result) = match cli.command {
        Command::Encrypt(args) => ("encrypt", encrypt::run(args)),
        Command::Decrypt(args) => ("decrypt", decrypt::run(args)),
        Command::Luks(args) => luks::run(args),
        Command::Nbde(args) => nbde::run(args),
        Command::Recover(args) => ("recover", recover::run(args)),
    };
    if let Err(e) = result {
        eprintln!("latchkey {name}: {e:#}");
        std::process::exit(1);
    }
}
