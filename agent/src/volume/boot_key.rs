//! The local key file of degraded mode (`/boot/nbde/local-boot.key` by
//! default): read from the boot partition, mounted read-only for the read
//! and unmounted at once, so a machine with no network still boots.
//!
//! The file is opened without blocking and must be, by `fstat` of what was
//! opened, a regular file of at most 8 MiB: a FIFO, a device or a directory
//! at that path is refused at once. A key that others could read, or
//! replace (through the file or a directory on its path), is used with a
//! warning. Loading runs inside the unlock race, so its deadline applies.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use latchkey_client::time::Deadline;
use latchkey_proto::secret::Secret;
use latchkey_sys::mount;
use rustix::fs::OFlags;

use crate::cmdline::BootKeyOptions;
use crate::error::{Error, KeyFileProblem};
use crate::kmsg_log::Log;
use crate::volume;

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

/// What a file that is not a regular file is, for the error.
fn kind(t: std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

/// Who besides root could get at the key: directories on its path (as
/// given, and after symlinks) that group or others may write to (a sticky
/// one, like /tmp, lets nobody replace another's file), and the file's own
/// mode bits.
fn exposure(path: &Path, mode: u32) -> Vec<String> {
    let mut out = Vec::new();
    let resolved = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut seen: Vec<&Path> = Vec::new();
    for dir in path.ancestors().skip(1).chain(resolved.ancestors().skip(1)) {
        if dir.as_os_str().is_empty() || seen.contains(&dir) {
            continue;
        }
        seen.push(dir);
        let Ok(m) = std::fs::metadata(dir) else {
            continue;
        };
        let bits = m.permissions().mode();
        if bits & 0o022 != 0 && bits & 0o1000 == 0 {
            out.push(format!(
                "directory {} is writable by group or others, who could replace the key file",
                dir.display()
            ));
        }
    }
    if resolved != path && !out.is_empty() {
        out.push(format!(
            "{} is reached through a symlink, to {}",
            path.display(),
            resolved.display()
        ));
    }
    if mode & 0o022 != 0 {
        out.push("the key file is writable by group or others".to_owned());
    }
    if mode & 0o044 != 0 {
        out.push("the key file is readable by group or others".to_owned());
    }
    out
}

/// Reads the key file at `path`: opened without blocking, then checked on
/// the open file (a regular file, not empty, at most 8 MiB), then read.
fn read_key(path: &Path, log: &Log) -> Result<Secret, Error> {
    let name = path.display();
    let read = |source| Error::Read {
        path: path.to_owned(),
        source,
    };
    let bad = |reason| Error::KeyFile {
        path: path.to_owned(),
        reason,
    };
    let flags = OFlags::NONBLOCK | OFlags::NOCTTY;
    let f: File = OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
        .map_err(read)?;
    let meta = f.metadata().map_err(read)?;
    if !meta.file_type().is_file() {
        return Err(bad(KeyFileProblem::NotRegular(kind(meta.file_type()))));
    }
    if meta.len() > MAX_KEY_BYTES {
        return Err(bad(KeyFileProblem::TooLarge));
    }
    if meta.len() == 0 {
        return Err(bad(KeyFileProblem::Empty));
    }
    for w in exposure(path, meta.mode()) {
        log.warn(&format!("local key {name}: {w}"));
    }
    let mut bytes = Vec::new();
    f.take(MAX_KEY_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() as u64 > MAX_KEY_BYTES {
        return Err(bad(KeyFileProblem::TooLarge));
    }
    if bytes.is_empty() {
        return Err(bad(KeyFileProblem::Empty));
    }
    Ok(Secret::new(bytes))
}

/// Reads the local key: from `latchkey.boot=` when given (mounting that
/// partition read-only), else from the path in the initrd itself if present.
/// `Ok(None)` when there is no key file, which is the normal case.
pub fn load(cfg: &BootKeyOptions, until: Deadline, log: &Log) -> Result<Option<Secret>, Error> {
    let Some(spec) = &cfg.partition else {
        // symlink_metadata: a dangling symlink is a key file that is missing,
        // and says so, rather than no key file at all.
        return match cfg.path.symlink_metadata() {
            Ok(_) => read_key(&cfg.path, log).map(Some),
            Err(_) => Ok(None),
        };
    };
    let what = volume::describe(spec);
    let dev = volume::find_device(spec, until)
        .ok_or_else(|| Error::NoBootPartition { spec: what.clone() })?;
    let target = Path::new(MOUNT_POINT);
    std::fs::create_dir_all(target).map_err(|source| Error::CreateDir {
        path: target.to_owned(),
        source,
    })?;
    let fstype = mount::mount_readonly(&dev.dev_path(), target, FS_TYPES).map_err(|source| {
        Error::Mount {
            spec: what.clone(),
            source,
        }
    })?;
    log.debug(&format!(
        "boot partition {what} ({}) mounted read-only as {fstype}",
        dev.dev_path().display()
    ));
    let file = target.join(
        path_in_partition(&cfg.path)
            .strip_prefix("/")
            .unwrap_or(Path::new("")),
    );
    let key = if file.symlink_metadata().is_ok() {
        read_key(&file, log).map(Some)
    } else {
        Ok(None)
    };
    if let Err(e) = mount::umount(target) {
        log.warn(&format!("unmounting {MOUNT_POINT}: {e}"));
    }
    match &key {
        Ok(Some(_)) => log.info(&format!("local key found on {what}")),
        Ok(None) => log.info(&format!("no {} on {what}", cfg.path.display())),
        Err(_) => {}
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

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
        let log = Log::memory(Instant::now(), false);
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k");
        std::fs::write(&p, b"pass\n").unwrap();
        assert_eq!(
            read_key(&p, &log).unwrap().expose(),
            b"pass\n",
            "key files are used byte for byte, as cryptsetup does"
        );
        std::fs::write(&p, b"").unwrap();
        assert!(
            read_key(&p, &log)
                .err()
                .unwrap()
                .to_string()
                .contains("empty")
        );
        assert!(
            read_key(&d.path().join("none"), &log)
                .err()
                .unwrap()
                .to_string()
                .contains("none")
        );
    }

    /// Not regular files: refused from fstat, at once, without reading (a
    /// FIFO with no writer would block a plain open forever; /dev/zero never
    /// ends). A huge sparse file is refused by its size, unread.
    #[test]
    fn only_regular_files_of_sane_size() {
        let log = Log::memory(Instant::now(), false);
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        let st = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(st.success());
        let start = Instant::now();
        let e = read_key(&fifo, &log).err().unwrap().to_string();
        assert_eq!(
            e,
            format!("{}: not a regular file (a FIFO)", fifo.display())
        );
        let e = read_key(Path::new("/dev/zero"), &log)
            .err()
            .unwrap()
            .to_string();
        assert_eq!(e, "/dev/zero: not a regular file (a character device)");
        let e = read_key(d.path(), &log).err().unwrap().to_string();
        assert!(e.ends_with("not a regular file (a directory)"), "{e}");
        let big = d.path().join("big");
        File::create(&big).unwrap().set_len(1 << 40).unwrap();
        assert!(
            read_key(&big, &log)
                .err()
                .unwrap()
                .to_string()
                .ends_with("larger than 8 MiB")
        );
        println!("four refusals in {:?}", start.elapsed());
        // A symlink to a FIFO is the FIFO.
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&fifo, &link).unwrap();
        assert!(
            read_key(&link, &log)
                .err()
                .unwrap()
                .to_string()
                .contains("(a FIFO)")
        );
    }

    #[test]
    fn exposed_keys_are_used_with_a_warning() {
        use std::fs::Permissions;
        let d = tempfile::tempdir().unwrap();
        let open_dir = d.path().join("open");
        std::fs::create_dir(&open_dir).unwrap();
        std::fs::set_permissions(&open_dir, Permissions::from_mode(0o777)).unwrap();
        let sticky = d.path().join("sticky");
        std::fs::create_dir(&sticky).unwrap();
        std::fs::set_permissions(&sticky, Permissions::from_mode(0o1777)).unwrap();
        let safe = d.path().join("safe");
        std::fs::create_dir(&safe).unwrap();
        std::fs::set_permissions(&safe, Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(d.path(), Permissions::from_mode(0o700)).unwrap();

        let key = safe.join("k");
        std::fs::write(&key, b"k").unwrap();
        std::fs::set_permissions(&key, Permissions::from_mode(0o600)).unwrap();
        let warnings = |p: &Path| {
            let log = Log::memory(Instant::now(), false);
            read_key(p, &log).unwrap();
            log.lines().into_iter().map(|(_, l)| l).collect::<Vec<_>>()
        };
        assert!(warnings(&key).is_empty(), "{:?}", warnings(&key));

        std::fs::set_permissions(&key, Permissions::from_mode(0o644)).unwrap();
        let w = warnings(&key);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].ends_with("the key file is readable by group or others"),
            "{w:?}"
        );
        std::fs::set_permissions(&key, Permissions::from_mode(0o666)).unwrap();
        assert_eq!(warnings(&key).len(), 2);
        std::fs::set_permissions(&key, Permissions::from_mode(0o600)).unwrap();

        // A key in a directory anyone may write to.
        let k2 = open_dir.join("k");
        std::fs::write(&k2, b"k").unwrap();
        std::fs::set_permissions(&k2, Permissions::from_mode(0o600)).unwrap();
        let w = warnings(&k2);
        assert!(
            w.iter()
                .any(|l| l.contains(&format!("directory {} is writable", open_dir.display()))),
            "{w:?}"
        );
        // A symlink in such a directory, to the safe key: whoever can
        // write there can point it elsewhere.
        let link = open_dir.join("link");
        std::os::unix::fs::symlink(&key, &link).unwrap();
        let w = warnings(&link);
        assert!(w.iter().any(|l| l.contains("is writable")), "{w:?}");
        assert!(
            w.iter().any(|l| l.contains("reached through a symlink")),
            "{w:?}"
        );
        // A sticky directory is fine.
        let k3 = sticky.join("k");
        std::fs::write(&k3, b"k").unwrap();
        std::fs::set_permissions(&k3, Permissions::from_mode(0o600)).unwrap();
        assert!(warnings(&k3).is_empty(), "{:?}", warnings(&k3));
    }
}
