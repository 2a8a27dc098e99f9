//! `latchkey nbde`: the cluster's unlock policy for a node's root disk.
//!
//! ```text
//!   latchkey nbde status ─▶ status.rs: header + boot dir (pure reading) + Tang /adv
//!   latchkey nbde apply ──▶ handover: exec latchkey-luks nbde apply ─▶ apply.rs
//!                              ─▶ tang.rs (advertisements) ─▶ latchkey-enroll::policy::apply (Session)
//! ```
//!
//! The policy itself (modes, the plan, crash safety) is
//! `latchkey_enroll::policy`; this module is its command line and output.

#[cfg(feature = "cryptsetup")]
pub mod apply;
mod report;
mod status;
mod tang;

use std::path::PathBuf;

use argh::FromArgs;
use latchkey_enroll::policy::{Invalid, Mode, Record};

/// The unlock policy of a cluster node's disk: degraded (a local boot key), tang (any
/// one Tang server) or quorum (t of them), and safe moves between them.
#[derive(FromArgs)]
#[argh(subcommand, name = "nbde")]
pub struct Args {
    #[argh(subcommand)]
    command: Command,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Command {
    Apply(ApplyArgs),
    Status(StatusArgs),
}

/// Move a disk to the unlock policy for the healthy Tang servers given: fewer than 3:
/// degraded (a local key on the boot partition), 3: tang (any one), 4 or more: quorum.
#[derive(FromArgs)]
#[argh(subcommand, name = "apply")]
pub struct ApplyArgs {
    /// the LUKS device or image
    #[argh(option, short = 'd')]
    pub device: PathBuf,
    /// a file holding the recovery secret: the passphrase of a keyslot of its own, which
    /// authorises adding keyslots
    #[argh(option)]
    pub recovery_key_file: PathBuf,
    /// a healthy Tang server (once per server)
    #[argh(option)]
    pub tang: Vec<String>,
    /// how many servers a quorum needs (default: a majority)
    #[argh(option)]
    pub threshold: Option<u32>,
    /// auto (default: by the number of servers), degraded, tang or quorum
    #[argh(option, default = "String::from(\"auto\")")]
    pub mode: String,
    /// where the boot partition is mounted (default /boot)
    #[argh(option, default = "PathBuf::from(\"/boot\")")]
    pub boot_dir: PathBuf,
    /// build the policy from the servers that answer, if some do not
    #[argh(switch)]
    pub allow_missing: bool,
    /// print the plan, in order, and change nothing
    #[argh(switch)]
    pub dry_run: bool,
    /// print the resulting state as JSON
    #[argh(switch)]
    pub json: bool,
}

/// The disk's unlock policy as its header and boot directory hold it, and
/// what is inconsistent. Exits 0 when nothing is.
#[derive(FromArgs)]
#[argh(subcommand, name = "status")]
pub struct StatusArgs {
    /// the LUKS device or image
    #[argh(option, short = 'd')]
    pub device: PathBuf,
    /// where the boot partition is mounted (default /boot)
    #[argh(option, default = "PathBuf::from(\"/boot\")")]
    pub boot_dir: PathBuf,
    /// print the state as JSON
    #[argh(switch)]
    pub json: bool,
}

impl ApplyArgs {
    /// The policy asked for (`--mode`, `--tang`, `--threshold`), or what is wrong with it.
    pub fn request(&self) -> Result<Record, Invalid> {
        let mode = match self.mode.as_str() {
            "auto" => None,
            m => Some(Mode::parse(m).ok_or_else(|| {
                Invalid(format!(
                    "--mode {m}: expected auto, degraded, tang or quorum"
                ))
            })?),
        };
        Record::choose(mode, &self.tang, self.threshold)
    }
}

/// What degraded mode accepts, said wherever it is in force.
pub const TRADE_OFF: &str = "degraded mode: the local key on the unencrypted boot partition \
    opens this disk with no network, so whoever takes the disk together with its boot \
    partition can unlock it";

/// Runs `latchkey nbde ...` and exits with its status.
pub fn run(args: Args) -> ! {
    match args.command {
        Command::Status(a) => match status::run(&a) {
            Ok(code) => std::process::exit(code),
            Err(e) => {
                eprintln!("latchkey nbde status: {e:#}");
                if a.json {
                    crate::luks::print_json(
                        &serde_json::json!({"device": a.device, "error": format!("{e:#}")}),
                    );
                }
                std::process::exit(1)
            }
        },
        Command::Apply(a) => {
            if let Err(e) = a.request() {
                eprintln!("latchkey nbde apply: {e}");
                std::process::exit(2)
            }
            // Header writes need libcryptsetup: the companion parses the same arguments.
            let argv: Vec<String> = std::env::args().collect();
            let at = argv.iter().position(|a| a == "apply").unwrap_or(argv.len());
            crate::luks::handover::exec("nbde", &argv[at..]);
        }
    }
}
