//! The local key file of degraded mode (`/boot/nbde/local-boot.key` by
//! default): read from the boot partition, mounted read-only for the read
//! and unmounted at once, so a machine with no network still boots.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use latchkey_proto::secret::Secret;
use latchkey_sys::mount;

use crate::cmdline::Config;
use crate::kmsg_log::Log;
use crate::volumes;

/// Where the boot partition is mounted for the read.
const MOUNT_POINT: &str = "/run/latchkey/boot";
/// A key file is a passphrase or a cryptsetup key file; cryptsetup's own
/// limit for key files is 8 MiB, real ones are tiny.
const MAX_KEY_BYTES: u64 = 8 << 20;
const FS_TYPES: &[&str] = &["ext4", "vfat", "ext3", "ext2", "xfs", "btrfs"];

/// The key file's path inside the boot partition: `/boot/nbde/x.key` lives at
/// `/nbde/x.key` there, since the partition is mounted on `/boot`.
fn path_in_partition(key: &Path) -> PathBuf {
    key.strip_prefix("/boot")
        .map(|p| Path::new("/").join(p))
        .unwrap_or_else(|_| key.to_path_buf())
}

fn read_key(path: &Path) -> Result<Secret, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    f.take(MAX_KEY_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_KEY_BYTES {
        return Err(format!("{}: larger than 8 MiB", path.display()));
    }
    if bytes.is_empty() {
        return Err(format!("{}: empty", path.display()));
    }
    Ok(Secret::new(bytes))
}

/// Reads the local key: from `latchkey.boot=` when given (mounting that
/// partition read-only), else from the path in the initrd itself if present.
/// `Ok(None)` when there is no key file, which is the normal case.
pub fn load(cfg: &Config, until: Instant, log: &Log) -> Result<Option<Secret>, String> {
    let Some(spec) = &cfg.boot else {
        return match cfg.key_path.exists() {
            true => read_key(&cfg.key_path).map(Some),
            false => Ok(None),
        };
    };
    let what = volumes::describe(spec);
    let dev = volumes::find_device(spec, until)
        .ok_or_else(|| format!("boot partition {what} not found"))?;
    let target = Path::new(MOUNT_POINT);
    std::fs::create_dir_all(target).map_err(|e| format!("creating {MOUNT_POINT}: {e}"))?;
    let fstype = mount::mount_readonly(&dev.dev_path(), target, FS_TYPES)
        .map_err(|e| format!("mounting boot partition {what}: {e}"))?;
    log.debug(&format!(
        "boot partition {what} ({}) mounted read-only as {fstype}",
        dev.dev_path().display()
    ));
    let file = target.join(
        path_in_partition(&cfg.key_path)
            .strip_prefix("/")
            .unwrap_or(Path::new("")),
    );
    let key = if file.exists() {
        read_key(&file).map(Some)
    } else {
        Ok(None)
    };
    if let Err(e) = mount::umount(target) {
        log.warn(&format!("unmounting {MOUNT_POINT}: {e}"));
    }
    match &key {
        Ok(Some(_)) => log.info(&format!("local key found on {what}")),
        Ok(None) => log.info(&format!("no {} on {what}", cfg.key_path.display())),
        Err(_) => {}
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_are_relative_to_the_boot_partition() {
        assert_eq!(
            path_in_partition(Path::new("/boot/nbde/local-boot.key")),
            Path::new("/nbde/local-boot.key")
        );
        assert_eq!(
            path_in_partition(Path::new("/nbde/k")),
            Path::new("/nbde/k")
        );
    }

    #[test]
    fn key_file_read_exactly() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k");
        std::fs::write(&p, b"pass\n").unwrap();
        assert_eq!(
            read_key(&p).unwrap().expose(),
            b"pass\n",
            "key files are used byte for byte, as cryptsetup does"
        );
        std::fs::write(&p, b"").unwrap();
        assert!(read_key(&p).err().unwrap().contains("empty"));
        assert!(
            read_key(&d.path().join("none"))
                .err()
                .unwrap()
                .contains("none")
        );
    }
}
