//! The key directory on disk, in tang's layout.
//!
//! One JWK per `*.jwk` file; a leading `.` hides a key from the advertisement
//! but keeps it usable for recovery. File names are never used to find a key
//! (thumbprints are computed from the content), so files made by Debian's
//! `tangd-keygen`, by tangd's auto-creation and by us all read the same.
//! Files we write are what `jose jwk gen` writes: sorted compact JSON and a
//! newline, mode 0440, named by the key's S256 thumbprint.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use latchkey_proto::curve::Curve;
use latchkey_proto::jwk::{Jwk, ThpHash};
use zeroize::Zeroize as _;

use crate::rng;

/// A key read from the directory.
pub struct KeyFile {
    pub name: String,
    pub hidden: bool,
    pub jwk: Jwk,
}

/// One read of the directory.
pub struct Scan {
    pub keys: Vec<KeyFile>,
    /// Files that were skipped, with the reason, for the log.
    pub skipped: Vec<String>,
}

impl Scan {
    /// tang creates keys when no active (non-hidden) key file loads.
    pub fn has_active(&self) -> bool {
        self.keys.iter().any(|k| !k.hidden)
    }
}

/// tang reads every name whose last `.`-suffix is `.jwk`, including `.jwk` itself.
pub fn is_key_name(name: &[u8]) -> bool {
    name.ends_with(b".jwk")
}

pub fn load(dir: &Path) -> io::Result<Scan> {
    let mut scan = Scan {
        keys: Vec::new(),
        skipped: Vec::new(),
    };
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if !is_key_name(name.as_bytes()) {
            continue;
        }
        let shown = name.to_string_lossy().into_owned();
        let path = entry.path();
        let mut bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                scan.skipped.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        let parsed = Jwk::parse(&bytes);
        bytes.zeroize();
        match parsed {
            Ok(jwk) => scan.keys.push(KeyFile {
                hidden: shown.starts_with('.'),
                name: shown,
                jwk,
            }),
            Err(e) => scan.skipped.push(format!("{}: {e}", path.display())),
        }
    }
    // readdir order is arbitrary; a stable order keeps advertisements stable across reloads.
    scan.keys.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(scan)
}

/// What changes when a key file is added, removed, renamed or rewritten:
/// name, inode, size and modification time of every `*.jwk` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(Vec<(OsString, u64, u64, i64, i64)>);

pub fn fingerprint(dir: &Path) -> io::Result<Fingerprint> {
    let mut v = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if !is_key_name(name.as_bytes()) {
            continue;
        }
        // A file that vanished between readdir and stat is just a change.
        let (ino, size, sec, nsec) = match entry.metadata() {
            Ok(m) => (m.ino(), m.size(), m.mtime(), m.mtime_nsec()),
            Err(_) => (0, 0, 0, 0),
        };
        v.push((name, ino, size, sec, nsec));
    }
    v.sort();
    Ok(Fingerprint(v))
}

/// Generates tang's pair: an ES512 signing key and an ECMR exchange key, both P-521.
pub fn generate_pair() -> [Jwk; 2] {
    let sig = Jwk::generate(Curve::P521, "ES512", &["sign", "verify"], &mut rng());
    let exc = Jwk::generate(Curve::P521, "ECMR", &["deriveKey"], &mut rng());
    [sig, exc]
}

static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Writes a key as `<S256>.jwk`, atomically: a temporary name that no reader
/// picks up (leading dot, no `.jwk` suffix), fsync, then rename into place.
pub fn write_key(dir: &Path, jwk: &Jwk) -> io::Result<String> {
    let name = format!("{}.jwk", jwk.thumbprint(ThpHash::S256));
    let tmp = dir.join(format!(
        ".tangd-{}-{}.tmp",
        std::process::id(),
        TEMP_SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let mut text = key_file_text(jwk);
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o440)
            .open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(0o440))?;
        f.write_all(&text)?;
        f.sync_all()
    })();
    text.zeroize();
    if let Err(e) = written.and_then(|()| fs::rename(&tmp, dir.join(&name))) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(name)
}

/// `jose jwk gen` output: sorted compact JSON plus a newline.
fn key_file_text(jwk: &Jwk) -> Vec<u8> {
    let json = jwk.to_private_json();
    let mut text = Vec::with_capacity(json.len() + 1);
    text.extend_from_slice(json.expose());
    text.push(b'\n');
    text
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates a new active pair; returns the file names.
pub fn create_pair(dir: &Path) -> anyhow::Result<Vec<String>> {
    let pair = generate_pair();
    let mut names = Vec::new();
    for jwk in &pair {
        names.push(write_key(dir, jwk)?);
    }
    sync_dir(dir)?;
    Ok(names)
}

/// What a rotation did.
pub struct Rotation {
    pub created: Vec<String>,
    pub hidden: Vec<String>,
}

/// Hides the active keys behind a new pair. The new pair is in place before
/// any old key is hidden, so a crash at any step leaves a usable directory
/// (at worst with the old keys still advertised beside the new ones).
pub fn rotate(dir: &Path) -> anyhow::Result<Rotation> {
    let old: Vec<String> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| is_key_name(n.as_bytes()) && !n.starts_with('.'))
        .collect();
    let created = create_pair(dir)?;
    let mut hidden = Vec::new();
    for name in old.into_iter().filter(|n| !created.contains(n)) {
        fs::rename(dir.join(&name), dir.join(format!(".{name}")))?;
        hidden.push(name);
    }
    sync_dir(dir)?;
    Ok(Rotation { created, hidden })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_like_tang() {
        assert!(is_key_name(b"abc.jwk"));
        assert!(is_key_name(b".abc.jwk"));
        assert!(is_key_name(b".jwk"));
        assert!(!is_key_name(b"abc.jwk~"));
        assert!(!is_key_name(b"abc.JWK"));
        assert!(!is_key_name(b".tangd-1-1.tmp"));
    }
}
