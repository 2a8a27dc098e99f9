//! The `latchkey-agent` binary: dispatches to [`latchkey_agent::unlock`]
//! (the boot flow) and [`latchkey_agent::decrypt`].
#![forbid(unsafe_code)]

use latchkey_agent::{decrypt, initrd_config, netdev, unlock};
use std::path::PathBuf;
use std::process::ExitCode;

/// Small blocks from a pool the agent keeps (see `latchkey_sys::alloc`).
#[global_allocator]
static ALLOCATOR: latchkey_sys::alloc::PoolAllocator = latchkey_sys::alloc::PoolAllocator::new();

const USAGE: &str = "\
usage: latchkey-agent unlock [--dry-run] [--no-prompt] [--netdev] [--console TTY] [--cmdline FILE] [--crypttab FILE] [--device PATH]...
       latchkey-agent decrypt [--timeout SECONDS] [--deadline SECONDS] [--ca PEM | --tls-pin sha256:HEX] < JWE > PLAINTEXT
       latchkey-agent initrd-config [--root DIR] > initrd.conf
       latchkey-agent netdev-generator NORMAL_DIR [EARLY_DIR LATE_DIR]   (or run as latchkey-netdev-generator)
       latchkey-agent --version

unlock   open the LUKS volumes named by rd.luks.* / crypttab (or every clevis-bound one):
         the local key file and every clevis binding at once, then the console
         (/dev/console, or --console TTY, which also asks in a dry run);
         --netdev: late boot, the _netdev volumes of /etc/crypttab over the system's network
decrypt  recover a clevis JWE (compact or LUKS2 token JSON) with the same engine;
         https:// Tang servers checked against the system CA store, the CA
         certificates of --ca, or the server certificate --tls-pin names
initrd-config  print the options an initrd hook records for the system at DIR (/)
netdev-generator  systemd generator: the _netdev volumes of /etc/crypttab wait for
         latchkey-netdev.service, which opens them once the network is online";

fn value(it: &mut impl Iterator<Item = String>, flag: &str) -> Result<String, String> {
    it.next().ok_or_else(|| format!("{flag} needs a value"))
}

fn parse_unlock(mut it: impl Iterator<Item = String>) -> Result<unlock::Args, String> {
    let mut a = unlock::Args::default();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--dry-run" => a.dry_run = true,
            "--no-prompt" => a.no_prompt = true,
            "--console" => a.console = Some(PathBuf::from(value(&mut it, &arg)?)),
            "--cmdline" => a.cmdline = Some(PathBuf::from(value(&mut it, &arg)?)),
            "--crypttab" => a.crypttab = Some(PathBuf::from(value(&mut it, &arg)?)),
            "--device" => a.devices.push(PathBuf::from(value(&mut it, &arg)?)),
            "--netdev" => a.netdev = true,
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok(a)
}

fn print_initrd_config(root: &str) -> i32 {
    let (text, notes) = initrd_config::generate(std::path::Path::new(root));
    for n in notes {
        eprintln!("latchkey: {n}");
    }
    print!("{text}");
    0
}

/// Also the entry point of `latchkey-agent-tls` (src/bin).
pub fn main() -> ExitCode {
    let mut args = std::env::args();
    // Installed as a systemd generator, a link to this binary by that name.
    let argv0 = args.next().unwrap_or_default();
    if argv0.rsplit('/').next() == Some(netdev::GENERATOR) {
        let rc = netdev::run_generator(&args.collect::<Vec<_>>());
        return ExitCode::from(rc as u8);
    }
    let cmd = args.next();
    let rc = match cmd.as_deref() {
        Some("unlock") => match parse_unlock(args) {
            Ok(a) => unlock::run(&a),
            Err(e) => {
                eprintln!("latchkey-agent unlock: {e}\n{USAGE}");
                2
            }
        },
        Some("decrypt") => decrypt::run(args),
        Some("initrd-config") => match (args.next().as_deref(), args.next(), args.next()) {
            (None, None, None) => print_initrd_config("/"),
            (Some("--root"), Some(dir), None) => print_initrd_config(&dir),
            _ => {
                eprintln!("{USAGE}");
                2
            }
        },
        Some("netdev-generator") => netdev::run_generator(&args.collect::<Vec<_>>()),
        Some("--version") => {
            println!("latchkey-agent {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            0
        }
        _ => {
            eprintln!("{USAGE}");
            2
        }
    };
    ExitCode::from(rc as u8)
}
