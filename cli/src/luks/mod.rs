//! `latchkey luks COMMAND`: clevis's `luks` commands, with its flags, output
//! and exit statuses, plus `check` and `--json` everywhere.
//!
//! ```text
//!   list, pass, report, check ─▶ read the header here (latchkey-luks, pure Rust)
//!   bind, unbind, regen, edit ─▶ handover: exec latchkey-luks (libcryptsetup) ─▶ write.rs
//!   report -r ────────────────▶ report, then exec latchkey-luks regen -q (as clevis execs its regen)
//! ```

mod check;
#[cfg(feature = "cryptsetup")]
mod editor;
pub(crate) mod handover;
mod list;
mod opts;
mod pass;
pub(crate) mod pins;
mod report;
#[cfg(feature = "cryptsetup")]
pub mod write;

use std::fs::File;
use std::path::Path;

use anyhow::{Context, Result};
use argh::FromArgs;
use latchkey_luks::{Header, Limits};
use serde_json::Value;

use opts::{Opts, Spec};

/// LUKS volumes bound with clevis: bind, unbind, list, pass, regen, report, edit, check
/// (clevis's flags; `latchkey luks COMMAND -h` for each).
#[derive(FromArgs)]
#[argh(subcommand, name = "luks")]
pub struct Args {
    /// the command and its arguments, as for `clevis luks`
    #[argh(positional, greedy)]
    args: Vec<String>,
}

pub(crate) const BIND: Spec = Spec {
    name: "bind",
    letters: "hfyd:s:k:t:e:",
    usage:
        "Usage: latchkey luks bind [-y] [-f] [-s SLT] [-k KEY] [-t TOKEN_ID] [-e EXISTING_TOKEN_ID] -d DEV [--json] PIN CFG

Binds a LUKS device using the specified policy:

  -f           Do not prompt for LUKSMeta initialization
  -d DEV       The LUKS device on which to perform binding
  -y           Automatically answer yes for all questions
  -s SLT       The LUKS slot to use
  -t TKN_ID    The LUKS token ID to use; only available for LUKS2
  -k KEY       Non-interactively read LUKS password from KEY file
  -k -         Non-interactively read LUKS password from standard input
  -e E_TKN_ID  Existing LUKS token ID for existing passphrase; only available for LUKS2
  --json       Print the result as JSON",
    usage_status: 2,
};

pub(crate) const UNBIND: Spec = Spec {
    name: "unbind",
    letters: "d:s:f",
    usage: "Usage: latchkey luks unbind -d DEV -s SLT [-f] [--json]

Unbinds a pin bound to a LUKS volume:

  -d DEV  The bound LUKS device
  -s SLOT The LUKS slot number for the pin unbind
  -f      Do not ask for confirmation, and remove the slot even if it is the last one
  --json  Print the result as JSON",
    usage_status: 2,
};

const LIST: Spec = Spec {
    name: "list",
    letters: "d:s:",
    usage: "Usage: latchkey luks list -d DEV [-s SLT] [--json]

Lists pins bound to a LUKSv1 or LUKSv2 device:

  -d DEV  The LUKS device to list bound pins
  -s SLOT The slot number to list
  --json  Bindings, unbound keyslots and leftovers of interrupted changes, as JSON",
    usage_status: 1,
};

const PASS: Spec = Spec {
    name: "pass",
    letters: "d:s:",
    usage: "Usage: latchkey luks pass -d DEV -s SLT [--json]

Returns the LUKS passphrase used for binding a particular slot.

  -d DEV  The LUKS device to extract the LUKS passphrase used for binding
  -s SLOT The slot number to extract the LUKS passphrase
  --json  Print it inside a JSON object",
    usage_status: 1,
};

pub(crate) const REGEN: Spec = Spec {
    name: "regen",
    letters: "hqd:s:",
    usage: "Usage: latchkey luks regen [-q] -d DEV -s SLOT [--json]

Regenerate clevis binding

  -d DEV  The LUKS device on which to perform rebinding
  -s SLT  The LUKS slot to use
  -q      Do not prompt for confirmation
  --json  Print the result as JSON",
    usage_status: 1,
};

const REPORT: Spec = Spec {
    name: "report",
    letters: "hd:s:rq",
    usage: "Usage: latchkey luks report [-q] [-r] -d DEV -s SLOT [--json]

Report tang keys' rotations

  -d DEV  The LUKS device to check for key rotations
  -s SLT  The LUKS slot to use
  -q      Quiet mode; do not prompt for using 'latchkey luks regen'
  -r      Regenerate binding with 'latchkey luks regen -q -d DEV -s SLOT'
  --json  Each server and its keys that are no longer advertised, as JSON",
    usage_status: 1,
};

pub(crate) const EDIT: Spec = Spec {
    name: "edit",
    letters: "fd:s:c:",
    usage: "Usage: latchkey luks edit [-f] -d DEV -s SLT [-c CONFIG] [--json]

Edit a binding from a clevis-bound slot in a LUKS device

'latchkey luks edit' uses the text editor defined in the EDITOR environment variable.
                     If EDITOR is not defined, it will attempt to use 'vi' as default editor.

  -d DEV     The LUKS device to edit clevis-bound pins
  -s SLOT    The slot to use when editing the clevis binding
  -f         Proceed with the edit operation even if the configuration is unchanged
  -c CONFIG  The updated config to use
  --json     Print the result as JSON",
    usage_status: 1,
};

const COMMANDS: &str = "Usage: latchkey luks COMMAND [OPTIONS]

  bind    Binds a LUKS device using the specified policy
  unbind  Unbinds a pin bound to a LUKS volume
  list    Lists pins bound to a LUKSv1 or LUKSv2 device
  pass    Returns the LUKS passphrase used for binding a particular slot
  regen   Regenerate clevis binding
  report  Report tang keys' rotations
  edit    Edit a binding from a clevis-bound slot in a LUKS device
  check   Report what a boot would do with a LUKS device";

/// Runs `latchkey luks ...` and exits with the command's status.
pub fn run(args: Args) -> ! {
    let mut argv = args.args.into_iter();
    let command = argv.next().unwrap_or_default();
    let rest: Vec<String> = argv.collect();
    let spec = match command.as_str() {
        "check" => exit_with("check", check::run(&rest)),
        "bind" => &BIND,
        "unbind" => &UNBIND,
        "list" => &LIST,
        "pass" => &PASS,
        "regen" => &REGEN,
        "report" => &REPORT,
        "edit" => &EDIT,
        "" | "-h" | "--help" | "help" => {
            println!("{COMMANDS}");
            std::process::exit(0)
        }
        other => {
            eprintln!("latchkey luks: unknown command {other:?}\n\n{COMMANDS}");
            std::process::exit(1)
        }
    };
    let o = parse_or_exit(spec, &rest);
    match spec.name {
        "list" => exit_with("list", list::run(&o)),
        "pass" => exit_with("pass", pass::run(&o)),
        "report" => exit_with("report", report::run(&o)),
        // The header writers live in the companion.
        _ => handover::exec(spec.name, &rest),
    }
}

/// Parses, or prints the usage and exits as clevis does.
pub(crate) fn parse_or_exit(spec: &Spec, args: &[String]) -> Opts {
    match opts::parse(spec, args) {
        Ok(o) if o.help => {
            eprintln!("{}", spec.usage);
            std::process::exit(0)
        }
        Ok(o) => o,
        Err(e) => usage(spec, &e.0),
    }
}

/// Prints `problem` and the usage, exits with the command's usage status.
pub(crate) fn usage(spec: &Spec, problem: &str) -> ! {
    eprintln!("{problem}\n\n{}", spec.usage);
    std::process::exit(spec.usage_status)
}

/// Exits with the status of a command: its own on success, 1 with the error.
pub(crate) fn exit_with(name: &str, r: Result<i32>) -> ! {
    match r {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("latchkey luks {name}: {e:#}");
            std::process::exit(1)
        }
    }
}

/// `-d` and (if `slot`) `-s`, as clevis checks them; a missing one is a usage error.
pub(crate) fn device_and_slot(spec: &Spec, o: &Opts, slot: bool) -> (String, Option<u32>) {
    let Some(dev) = o.value('d').filter(|d| !d.is_empty()) else {
        usage(spec, "Did not specify a device!");
    };
    let s = match o.value('s') {
        None | Some("") if slot => usage(spec, "Did not specify a slot!"),
        None | Some("") => None,
        Some(s) => match s.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                eprintln!("Please, provide a valid key slot number, not {s:?}");
                std::process::exit(1)
            }
        },
    };
    (dev.to_owned(), s)
}

/// The header of `dev`, read by this project's reader, and the open file.
pub(crate) fn read_header(dev: &str) -> Result<(Header, File)> {
    let mut f = File::open(dev).with_context(|| format!("opening {dev}"))?;
    let hdr =
        Header::read(&mut f).with_context(|| format!("{dev} is not a supported LUKS device"))?;
    Ok((hdr, f))
}

/// Prints one JSON document on stdout.
pub(crate) fn print_json(v: &Value) {
    println!("{v}");
}

/// A failure that ends the command with status 1: `message` on stderr, and with
/// `--json` also `{"device":…,"error":…}` on stdout.
pub(crate) fn failed(o: &Opts, dev: &str, message: &str) -> Result<i32> {
    eprintln!("{message}");
    if o.json {
        print_json(&serde_json::json!({"device": dev, "error": message}));
    }
    Ok(1)
}

/// Whether the passphrase opens keyslot `slot` of `dev` (then any keyslot, as
/// clevis checks with `cryptsetup open --test-passphrase`).
pub(crate) fn opens(hdr: &Header, dev: &Path, slot: u32, pass: &[u8]) -> bool {
    let limits = Limits::for_this_machine();
    let try_slot = |s: Option<u32>| {
        File::open(dev)
            .ok()
            .is_some_and(|mut f| latchkey_luks::unlock(hdr, &mut f, pass, s, &limits).is_ok())
    };
    try_slot(Some(slot)) || try_slot(None)
}
