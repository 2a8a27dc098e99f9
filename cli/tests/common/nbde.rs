//! Pieces of the `latchkey nbde` tests: a cluster of real tangd servers, a disk
//! with its boot directory, and the ways to check how it opens.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use super::*;

/// Real tangd servers, as the cluster's healthy nodes.
pub struct Cluster(pub Vec<Tang>);

impl Cluster {
    pub fn start(n: usize) -> Cluster {
        Cluster((0..n).map(|_| Tang::start()).collect())
    }

    /// The URLs of the first `n` servers.
    pub fn urls(&self, n: usize) -> Vec<String> {
        self.0[..n].iter().map(|t| t.url.clone()).collect()
    }
}

/// A LUKS image made by cryptsetup, its recovery secret (keyslot 0) in a file,
/// and an empty directory standing for the mounted boot partition.
pub struct Disk {
    pub img: PathBuf,
    pub recovery: PathBuf,
    pub boot: PathBuf,
}

impl Disk {
    pub fn new(s: &Scratch, kind: &str, name: &str) -> Disk {
        let (img, recovery) = luks_image(s, kind, &format!("{name}.img"));
        let boot = s.path(&format!("{name}-boot"));
        std::fs::create_dir(&boot).unwrap();
        Disk {
            img,
            recovery,
            boot,
        }
    }

    /// A copy of this disk and its boot directory under `name`.
    pub fn copy(&self, s: &Scratch, name: &str) -> Disk {
        let d = Disk {
            img: s.path(&format!("{name}.img")),
            recovery: self.recovery.clone(),
            boot: s.path(&format!("{name}-boot")),
        };
        std::fs::copy(&self.img, &d.img).unwrap();
        run_ok(Command::new("cp").arg("-a").arg(&self.boot).arg(&d.boot));
        d
    }

    /// Removes the image and the boot directory.
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.img);
        let _ = Command::new("chmod")
            .args(["-R", "u+w"])
            .arg(&self.boot)
            .status();
        let _ = std::fs::remove_dir_all(&self.boot);
    }

    pub fn key_file(&self) -> PathBuf {
        self.boot.join("nbde/local-boot.key")
    }

    /// `latchkey nbde apply -d IMG --recovery-key-file F --boot-dir B ARGS`.
    pub fn apply_args(&self, args: &[String]) -> Vec<String> {
        let mut v: Vec<String> = ["apply", "-d", p(&self.img), "--recovery-key-file"]
            .map(String::from)
            .into();
        v.push(p(&self.recovery).into());
        v.push("--boot-dir".into());
        v.push(p(&self.boot).into());
        v.extend(args.iter().cloned());
        v
    }

    pub fn apply(&self, args: &[String]) -> Output {
        nbde(&self.apply_args(args))
    }

    /// `apply ARGS --json`, asserting success; its document.
    pub fn apply_json(&self, args: &[String]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json".into());
        let out = self.apply(&a);
        assert!(
            out.status.success(),
            "nbde apply {args:?} on {}: {}{}",
            self.img.display(),
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `latchkey nbde status` (with `--json` when asked): exit code and stdout.
    pub fn status(&self, json: bool) -> (i32, String) {
        let mut a = vec!["status", "-d", p(&self.img), "--boot-dir", p(&self.boot)];
        if json {
            a.push("--json");
        }
        let out = nbde(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stdout).unwrap(),
        )
    }

    /// What must not change in a run that changes nothing: the header area and
    /// the boot directory's files, modes and contents.
    pub fn fingerprint(&self) -> (Vec<u8>, String) {
        let out = run_ok(
            Command::new("sh")
                .arg("-c")
                .arg("cd \"$1\" && find . -printf '%p %m %s\\n' | sort && find . -type f -exec sha256sum {} + | sort")
                .arg("sh")
                .arg(&self.boot),
        );
        (
            digest(&self.img, 16 << 20),
            String::from_utf8(out.stdout).unwrap(),
        )
    }

    /// The recovery secret opens the disk.
    pub fn recovery_opens(&self) -> bool {
        cryptsetup_opens(&self.img, KEY, None)
    }

    /// The local key file exists and cryptsetup opens the disk with it.
    pub fn key_file_opens(&self) -> bool {
        std::fs::read(self.key_file()).is_ok_and(|k| cryptsetup_opens(&self.img, &k, None))
    }

    /// Debian's `clevis luks pass` recovers keyslot `slot`'s passphrase and
    /// cryptsetup opens that keyslot with it.
    pub fn clevis_opens(&self, slot: u64) -> bool {
        let out = run_with(
            Command::new("clevis")
                .args(["luks", "pass", "-d", p(&self.img), "-s"])
                .arg(slot.to_string()),
            b"",
            Duration::from_secs(60),
        );
        out.status.success()
            && cryptsetup_opens(&self.img, &out.stdout, Some(u32::try_from(slot).unwrap()))
    }

    /// The agent's dry run as at boot, with the local key at its place in the
    /// boot directory: how it would open (`local key` or `clevis`), or its log.
    pub fn boots(&self) -> Result<&'static str, String> {
        let cmdline = self.boot.with_extension("cmdline");
        std::fs::write(
            &cmdline,
            format!("latchkey.key={}\n", self.key_file().display()),
        )
        .unwrap();
        let agent = Path::new(env!("CARGO_BIN_EXE_latchkey")).with_file_name("latchkey-agent");
        let out = run_with(
            Command::new(agent)
                .args(["unlock", "--dry-run", "--no-prompt"])
                .args(["--crypttab", "/nonexistent", "--cmdline"])
                .arg(&cmdline)
                .arg("--device")
                .arg(&self.img),
            b"",
            Duration::from_secs(90),
        );
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            Err(log)
        } else if log.contains("(local key); dry run") {
            Ok("local key")
        } else {
            Ok("clevis")
        }
    }

    /// `clevis luks list`: one line per binding.
    pub fn clevis_list(&self) -> Vec<String> {
        let out = run_ok(Command::new("clevis").args(["luks", "list", "-d", p(&self.img)]));
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `latchkey nbde ARGS`.
pub fn nbde(args: &[String]) -> Output {
    run_with(
        latchkey().arg("nbde").args(args),
        b"",
        Duration::from_secs(180),
    )
}

/// `--tang URL` for each URL, then `extra`.
pub fn tang_args(urls: &[String], extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = urls
        .iter()
        .flat_map(|u| ["--tang".to_string(), u.clone()])
        .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// The tools every nbde test needs, or a skip.
pub fn nbde_tools() -> bool {
    have_tools() && have(&["/usr/sbin/cryptsetup", "/usr/bin/clevis-luks-pass"]) && have_agent()
}
