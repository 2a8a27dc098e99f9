//! Handing a header-writing command to `latchkey-luks`, the companion binary
//! linked with libcryptsetup: the same arguments, stdin, terminal and
//! environment, by `exec` so that its exit status is ours. Secrets never pass
//! through argv; the companion reads them itself.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

/// The companion's file name.
pub const COMPANION: &str = "latchkey-luks";

/// Where the companion is: beside this binary, in `../lib/latchkey/` (the
/// installed layout), or on PATH.
pub fn companion() -> Result<PathBuf> {
    let here = std::env::current_exe().context("finding this program")?;
    let dir = here.parent().unwrap_or(Path::new("/"));
    let mut tried = vec![
        dir.join(COMPANION),
        dir.join("../lib/latchkey").join(COMPANION),
    ];
    if let Some(path) = std::env::var_os("PATH") {
        tried.extend(std::env::split_paths(&path).map(|d| d.join(COMPANION)));
    }
    tried
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .with_context(|| {
            format!(
                "`latchkey luks` header changes run in {COMPANION} (linked with libcryptsetup), \
                 which is installed beside latchkey; not found beside {} nor in ../lib/latchkey nor on PATH",
                here.display()
            )
        })
}

/// Replaces this process with `latchkey-luks COMMAND ARGS...`.
pub fn exec(command: &str, args: &[String]) -> ! {
    let err = match companion() {
        Ok(path) => Command::new(&path).arg(command).args(args).exec().into(),
        Err(e) => e,
    };
    eprintln!("latchkey luks {command}: {err:#}");
    std::process::exit(1)
}

/// Runs `latchkey-luks COMMAND ARGS...` with this stdin and stderr, and returns
/// its exit status and stdout.
pub fn run(command: &str, args: &[OsString]) -> Result<(i32, Vec<u8>)> {
    let out = Command::new(companion()?)
        .arg(command)
        .args(args)
        .stdout(Stdio::piped())
        .output()
        .with_context(|| format!("running {COMPANION} {command}"))?;
    Ok((out.status.code().unwrap_or(1), out.stdout))
}
