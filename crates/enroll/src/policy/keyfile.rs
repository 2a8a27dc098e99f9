//! The local key file of degraded mode on the boot partition, and how it is
//! written and removed so that a crash leaves either the old file or the new
//! one, never a torn one.
//!
//! ```text
//!   install: mkdir nbde (0700), fsync boot ─▶ create .local-boot.key.new (0400, O_EXCL)
//!            ─▶ write ─▶ fsync ─▶ rename to local-boot.key ─▶ fsync nbde
//!   remove:  overwrite with zeros ─▶ fsync ─▶ unlink (key and temporary) ─▶ fsync nbde
//!            ─▶ rmdir nbde if empty ─▶ fsync boot
//! ```
//!
//! The boot partition is not encrypted: whoever holds it holds the key. That
//! is what degraded mode accepts; the modes are what the file makes safe.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use latchkey_proto::Secret;

/// Bytes of a new local key (from the OS RNG; binary, as cryptsetup key files may be).
pub const KEY_BYTES: usize = 64;
/// Largest key file read: cryptsetup's own limit for key files.
pub const MAX_KEY_BYTES: u64 = 8 << 20;
/// The name a new key is written under before it is renamed into place.
const TEMP_NAME: &str = ".local-boot.key.new";

/// The boot directory (`/boot`, where the boot partition is mounted) and the
/// key's place in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootDir {
    root: PathBuf,
}

impl BootDir {
    /// The boot partition mounted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> BootDir {
        BootDir { root: root.into() }
    }

    /// The mount point.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `ROOT/nbde/local-boot.key`.
    pub fn key(&self) -> PathBuf {
        self.root.join(super::KEY_FILE)
    }

    /// `ROOT/nbde`.
    pub fn dir(&self) -> PathBuf {
        self.key()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.root.clone())
    }

    /// Where a new key is written before the rename.
    pub fn temp(&self) -> PathBuf {
        self.dir().join(TEMP_NAME)
    }
}

/// A file operation on the boot partition that failed.
#[derive(Debug, thiserror::Error)]
#[error("{}: {what}: {source}", path.display())]
pub struct FileError {
    /// The file or directory.
    pub path: PathBuf,
    /// The operation.
    pub what: &'static str,
    /// Why.
    #[source]
    pub source: io::Error,
}

fn at<'p>(path: &'p Path, what: &'static str) -> impl FnOnce(io::Error) -> FileError + 'p {
    move |source| FileError {
        path: path.to_path_buf(),
        what,
        source,
    }
}

/// Reads a key file whole, as cryptsetup reads `--key-file`: `Ok(None)` when
/// there is none; an error for anything but a regular file of at most
/// [`MAX_KEY_BYTES`] bytes, or an empty one.
pub fn read(path: &Path) -> Result<Option<Secret>, FileError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // A dangling symlink is a key file that is missing, and says so.
            if path.symlink_metadata().is_ok() {
                return Err(at(path, "reading the key file")(e));
            }
            return Ok(None);
        }
        Err(e) => return Err(at(path, "reading the key file")(e)),
    };
    let bad = |what: &'static str| {
        Err(FileError {
            path: path.to_path_buf(),
            what,
            source: io::Error::from(io::ErrorKind::InvalidData),
        })
    };
    if !meta.file_type().is_file() {
        return bad("not a regular file");
    }
    if meta.len() > MAX_KEY_BYTES {
        return bad("larger than 8 MiB");
    }
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|f| f.take(MAX_KEY_BYTES + 1).read_to_end(&mut bytes))
        .map_err(at(path, "reading the key file"))?;
    let key = Secret::new(bytes);
    if key.is_empty() {
        return bad("empty");
    }
    if key.len() as u64 > MAX_KEY_BYTES {
        return bad("larger than 8 MiB");
    }
    Ok(Some(key))
}

/// Whether a temporary key file is left over (by an interrupted install).
pub fn temp_left(boot: &BootDir) -> bool {
    boot.temp().symlink_metadata().is_ok()
}

#[cfg(feature = "cryptsetup")]
pub use write::{install, new_key, remove, remove_temp};

#[cfg(feature = "cryptsetup")]
mod write {
    use std::fs::{DirBuilder, File, OpenOptions, Permissions};
    use std::io::{self, Write};
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    use std::path::Path;

    use latchkey_proto::Secret;
    use rand_core::Rng;

    use super::{BootDir, FileError, KEY_BYTES, at};

    /// 64 bytes from the OS RNG.
    pub fn new_key() -> Secret {
        let mut key = vec![0u8; KEY_BYTES];
        latchkey_sys::rng::os().fill_bytes(&mut key);
        Secret::new(key)
    }

    fn sync_dir(dir: &Path) -> Result<(), FileError> {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(at(dir, "flushing the directory"))
    }

    /// Writes `key` as the key file: `nbde` made (0700) if missing, the key
    /// written to a temporary name (0400, created exclusively), flushed, renamed
    /// over the key file, and the directory flushed.
    pub fn install(boot: &BootDir, key: &Secret) -> Result<(), FileError> {
        let dir = boot.dir();
        match DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => sync_dir(boot.root())?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let meta = std::fs::symlink_metadata(&dir).map_err(at(&dir, "reading"))?;
                if !meta.is_dir() {
                    return Err(FileError {
                        path: dir,
                        what: "not a directory",
                        source: io::Error::from(io::ErrorKind::AlreadyExists),
                    });
                }
                if meta.permissions().mode() & 0o777 != 0o700 {
                    std::fs::set_permissions(&dir, Permissions::from_mode(0o700))
                        .map_err(at(&dir, "making it private (0700)"))?;
                }
            }
            Err(e) => return Err(at(&dir, "creating the directory")(e)),
        }
        let temp = boot.temp();
        remove_temp(boot)?;
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o400)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&temp)
            .map_err(at(&temp, "creating the new key file"))?;
        f.write_all(key.expose())
            .and_then(|()| f.sync_all())
            .map_err(at(&temp, "writing the new key file"))?;
        drop(f);
        let key_path = boot.key();
        std::fs::rename(&temp, &key_path).map_err(at(&key_path, "renaming the new key file"))?;
        sync_dir(&dir)
    }

    /// Overwrites `path` with zeros and flushes it, if it is a regular file
    /// this process may write (best effort: the unlink follows anyway).
    fn overwrite(path: &Path) {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return;
        };
        if !meta.is_file() {
            return;
        }
        if let Ok(mut f) = OpenOptions::new()
            .write(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(path)
        {
            let zeros = vec![0u8; usize::try_from(meta.len()).unwrap_or(0).min(1 << 20)];
            let _ = f.write_all(&zeros).and_then(|()| f.sync_all());
        }
    }

    fn unlink(path: &Path) -> Result<bool, FileError> {
        match std::fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(at(path, "removing")(e)),
        }
    }

    /// Removes a temporary key file left by an interrupted install.
    pub fn remove_temp(boot: &BootDir) -> Result<(), FileError> {
        let temp = boot.temp();
        if temp.symlink_metadata().is_err() {
            return Ok(());
        }
        overwrite(&temp);
        unlink(&temp)?;
        sync_dir(&boot.dir())
    }

    /// Removes the key file (and a temporary one): each overwritten with zeros
    /// and flushed (best effort), unlinked, the directory flushed; then the
    /// `nbde` directory itself if nothing else is in it.
    pub fn remove(boot: &BootDir) -> Result<(), FileError> {
        let dir = boot.dir();
        let mut gone = false;
        for path in [boot.key(), boot.temp()] {
            overwrite(&path);
            gone |= unlink(&path)?;
        }
        if gone {
            sync_dir(&dir)?;
        }
        match std::fs::remove_dir(&dir) {
            Ok(()) => sync_dir(boot.root()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            // Something else lives there; the directory stays.
            Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => Ok(()),
            Err(e) => Err(at(&dir, "removing the directory")(e)),
        }
    }
}

#[cfg(all(test, feature = "cryptsetup"))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn install_then_remove() {
        let d = tempfile::tempdir().unwrap();
        let boot = BootDir::new(d.path());
        assert_eq!(read(&boot.key()).unwrap().map(|k| k.len()), None);
        let key = new_key();
        assert_eq!(key.len(), KEY_BYTES);
        assert!(!key.ct_eq(&new_key()));
        install(&boot, &key).unwrap();
        assert_eq!(mode(&boot.dir()), 0o700);
        assert_eq!(mode(&boot.key()), 0o400);
        assert!(read(&boot.key()).unwrap().unwrap().ct_eq(&key));
        assert!(!temp_left(&boot));
        // A second install replaces it; a leftover temporary file goes first.
        std::fs::write(boot.temp(), b"torn").unwrap();
        let other = new_key();
        install(&boot, &other).unwrap();
        assert!(read(&boot.key()).unwrap().unwrap().ct_eq(&other));
        assert!(!temp_left(&boot));
        remove(&boot).unwrap();
        assert!(!boot.dir().exists());
        remove(&boot).unwrap();
    }

    #[test]
    fn the_directory_is_made_private_and_kept_when_not_empty() {
        let d = tempfile::tempdir().unwrap();
        let boot = BootDir::new(d.path());
        std::fs::create_dir(boot.dir()).unwrap();
        std::fs::set_permissions(boot.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(boot.dir().join("README"), b"other").unwrap();
        install(&boot, &new_key()).unwrap();
        assert_eq!(mode(&boot.dir()), 0o700);
        remove(&boot).unwrap();
        assert!(!boot.key().exists());
        assert!(boot.dir().join("README").exists());
    }

    #[test]
    fn reading_refuses_what_is_not_a_key_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k");
        std::fs::write(&p, b"").unwrap();
        let what = |p: &Path| read(p).err().map(|e| e.what);
        assert_eq!(what(&p), Some("empty"));
        assert_eq!(what(d.path()), Some("not a regular file"));
        let big = d.path().join("big");
        File::create(&big).unwrap().set_len(1 << 40).unwrap();
        assert_eq!(what(&big), Some("larger than 8 MiB"));
        let link = d.path().join("link");
        std::os::unix::fs::symlink(d.path().join("none"), &link).unwrap();
        assert!(read(&link).is_err(), "a dangling symlink is not 'no key'");
        assert!(read(&d.path().join("none")).unwrap().is_none());
    }
}
