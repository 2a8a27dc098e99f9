//! The key directory on disk, in tang's layout.
//!
//! One JWK per `*.jwk` file; a leading `.` hides a key from the advertisement
//! but keeps it usable for recovery. File names are never used to find a key
//! (thumbprints are computed from the content), so files made by Debian's
//! `tangd-keygen`, by tangd's auto-creation and by us all read the same.
//! Files we write are what `jose jwk gen` writes: sorted compact JSON and a
//! newline, mode 0440, named by the key's S256 thumbprint.
//!
//! Key files are read through symlinks, as tang reads them (a directory made
//! from a Kubernetes Secret is a farm of `name.jwk -> ..data/name.jwk`), but
//! only regular files of at most [`MAX_KEY_FILE`] bytes are read: a FIFO, a
//! device or a directory named `*.jwk` is skipped, never opened for a blocking
//! read.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{
    FileTypeExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use latchkey_proto::curve::Curve;
use latchkey_proto::jwk::{Jwk, ThpHash};
use rustix::fs::{Mode, OFlags};
use zeroize::Zeroize as _;

/// The largest key file read. A P-521 JWK with its private part is about 400
/// bytes; anything near this size is not a key.
pub const MAX_KEY_FILE: u64 = 64 * 1024;

/// A key read from the directory.
pub struct KeyFile {
    pub name: String,
    pub hidden: bool,
    pub jwk: Jwk,
}

/// One read of the directory.
#[derive(Default)]
pub struct Scan {
    pub keys: Vec<KeyFile>,
    /// Files that were skipped, with the reason, for the log.
    pub skipped: Vec<String>,
    /// Keys others may read or change, for the log.
    pub warnings: Vec<String>,
    /// Directories holding the files that `*.jwk` symlinks lead to: a change
    /// there changes a key without touching the key directory.
    pub link_dirs: Vec<PathBuf>,
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

/// Reads every key file of `dir`. Only a failure to list the directory is an
/// error; a file that cannot be read or parsed is skipped and reported.
pub fn load(dir: &Path) -> io::Result<Scan> {
    let mut scan = Scan::default();
    let egid = rustix::process::getegid().as_raw();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if !is_key_name(name.as_bytes()) {
            continue;
        }
        let shown = name.to_string_lossy().into_owned();
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_symlink()) {
            if let Some(parent) = fs::canonicalize(&path)
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf))
            {
                if !scan.link_dirs.contains(&parent) {
                    scan.link_dirs.push(parent);
                }
            }
        }
        let (mut bytes, meta) = match read_key_file(&path) {
            Ok(r) => r,
            Err(e) => {
                scan.skipped.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        let parsed = Jwk::parse(&bytes);
        bytes.zeroize();
        match parsed {
            Ok(jwk) => {
                if let Some(w) = exposure(&meta, egid) {
                    scan.warnings.push(format!("{} is {w}", path.display()));
                }
                scan.keys.push(KeyFile {
                    hidden: shown.starts_with('.'),
                    name: shown,
                    jwk,
                })
            }
            Err(e) => scan.skipped.push(format!("{}: {e}", path.display())),
        }
    }
    // readdir order is arbitrary; a stable order keeps advertisements stable across reloads.
    scan.keys.sort_by(|a, b| a.name.cmp(&b.name));
    scan.link_dirs.sort();
    Ok(scan)
}

/// Opens without blocking (a FIFO would block `open` itself), checks that what
/// was opened is a regular file of at most [`MAX_KEY_FILE`] bytes, and reads it.
/// The type is checked before opening as well, so a device is never opened.
fn read_key_file(path: &Path) -> io::Result<(Vec<u8>, fs::Metadata)> {
    check_kind(&fs::metadata(path)?)?;
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let file = File::from(fd);
    let meta = file.metadata()?;
    check_kind(&meta)?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0) + 1);
    (&file).take(MAX_KEY_FILE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_KEY_FILE {
        bytes.zeroize();
        return Err(too_big());
    }
    Ok((bytes, meta))
}

fn check_kind(meta: &fs::Metadata) -> io::Result<()> {
    let t = meta.file_type();
    let kind = if t.is_file() {
        return if meta.len() > MAX_KEY_FILE {
            Err(too_big())
        } else {
            Ok(())
        };
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{kind}, not a key file"),
    ))
}

fn too_big() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("larger than {MAX_KEY_FILE} bytes, not a key file"),
    )
}

/// Who else can read or replace a private key. tang's own files are 0440 with
/// tang's group, so a group that tangd runs as is fine; any other group, or
/// everyone, is worth a warning.
fn exposure(meta: &fs::Metadata, egid: u32) -> Option<String> {
    let mode = meta.mode() & 0o777;
    if mode & 0o002 != 0 {
        Some(format!("writable by everyone (mode {mode:o})"))
    } else if mode & 0o004 != 0 {
        Some(format!("readable by everyone (mode {mode:o})"))
    } else if mode & 0o020 != 0 {
        Some(format!("writable by group {} (mode {mode:o})", meta.gid()))
    } else if mode & 0o040 != 0 && meta.gid() != egid {
        Some(format!("readable by group {} (mode {mode:o})", meta.gid()))
    } else {
        None
    }
}

/// What changes when a key file is added, removed, renamed or rewritten, or
/// the directory itself is replaced: the directory's identity and times, and
/// name, identity, size, mode and times of every `*.jwk` entry, seen through
/// symlinks (a swapped `..data` link changes what every entry leads to, not
/// the entries themselves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    dir: Stamp,
    entries: Vec<(OsString, Stamp)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mode: u32,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(m: &fs::Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mode: m.mode(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }

    /// File times come from a clock that ticks every few milliseconds: two
    /// changes within one tick can leave the same times behind. A stamp that
    /// recent cannot prove that nothing changed since.
    fn settled(&self, now: SystemTime) -> bool {
        let recent = |(s, ns): (i64, i64)| {
            let t = u64::try_from(s)
                .ok()
                .map(|s| SystemTime::UNIX_EPOCH + Duration::new(s, u32::try_from(ns).unwrap_or(0)));
            t.is_some_and(|t| match now.duration_since(t) {
                Ok(age) => age < TIMESTAMP_TICK,
                Err(ahead) => ahead.duration() < TIMESTAMP_TICK,
            })
        };
        !recent(self.mtime) && !recent(self.ctime)
    }
}

/// Longer than the coarse clock behind file times ever ticks (1-10 ms).
const TIMESTAMP_TICK: Duration = Duration::from_millis(50);

impl Fingerprint {
    /// False while some time in it is too recent to rule out a second change
    /// within the same clock tick.
    pub fn settled(&self, now: SystemTime) -> bool {
        self.dir.settled(now) && self.entries.iter().all(|(_, s)| s.settled(now))
    }
}

pub fn fingerprint(dir: &Path) -> io::Result<Fingerprint> {
    let d = Stamp::of(&fs::metadata(dir)?);
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if !is_key_name(name.as_bytes()) {
            continue;
        }
        // A file that vanished between readdir and stat is just a change.
        let stamp = fs::metadata(entry.path()).map_or(Stamp::default(), |m| Stamp::of(&m));
        entries.push((name, stamp));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Fingerprint { dir: d, entries })
}

/// Generates tang's pair: an ES512 signing key and an ECMR exchange key, both P-521.
pub fn generate_pair() -> [Jwk; 2] {
    let sig = Jwk::generate(
        Curve::P521,
        "ES512",
        &["sign", "verify"],
        &mut latchkey_sys::rng::os(),
    );
    let exc = Jwk::generate(
        Curve::P521,
        "ECMR",
        &["deriveKey"],
        &mut latchkey_sys::rng::os(),
    );
    [sig, exc]
}

static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Writes a key as `<S256>.jwk`, atomically: a temporary name that no reader
/// picks up (leading dot, no `.jwk` suffix), fsync, then rename into place.
pub fn write_key(dir: &Path, jwk: &Jwk) -> io::Result<String> {
    write_key_as(dir, jwk, &jwk.thumbprint(ThpHash::S256))
}

/// Writes a key as `<stem>.jwk` (tang's `tangd-keygen DIR SIG EXC` names them).
pub fn write_key_as(dir: &Path, jwk: &Jwk, stem: &str) -> io::Result<String> {
    if stem.is_empty() || stem.contains('/') || stem.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{stem:?} is not a key file name"),
        ));
    }
    let name = format!("{stem}.jwk");
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

/// Creates a new active pair; returns the file names. `names` are the file
/// stems of the signing and the exchange key; by default their thumbprints.
pub fn create_pair(dir: &Path, names: Option<[&str; 2]>) -> anyhow::Result<Vec<String>> {
    let pair = generate_pair();
    let mut out = Vec::new();
    for (i, jwk) in pair.iter().enumerate() {
        out.push(match names {
            Some(n) => write_key_as(dir, jwk, n[i])?,
            None => write_key(dir, jwk)?,
        });
    }
    sync_dir(dir)?;
    Ok(out)
}

/// What a rotation did.
pub struct Rotation {
    pub created: Vec<String>,
    pub hidden: Vec<String>,
}

fn active_names(dir: &Path) -> io::Result<Vec<String>> {
    let mut v = Vec::new();
    for e in fs::read_dir(dir)? {
        let n = e?.file_name().to_string_lossy().into_owned();
        if is_key_name(n.as_bytes()) && !n.starts_with('.') {
            v.push(n);
        }
    }
    Ok(v)
}

/// Hides the active keys behind a new pair. The new pair is in place before
/// any old key is hidden, so a crash at any step leaves a usable directory
/// (at worst with the old keys still advertised beside the new ones).
pub fn rotate(dir: &Path) -> anyhow::Result<Rotation> {
    let old = active_names(dir)?;
    let created = create_pair(dir, None)?;
    let mut hidden = Vec::new();
    for name in old.into_iter().filter(|n| !created.contains(n)) {
        fs::rename(dir.join(&name), dir.join(format!(".{name}")))?;
        hidden.push(name);
    }
    sync_dir(dir)?;
    Ok(Rotation { created, hidden })
}

/// Which hidden keys [`retire`] deletes.
pub enum Retire<'a> {
    /// Every hidden key.
    AllHidden,
    /// Hidden keys hidden at least this long ago.
    OlderThan(Duration),
    /// The keys with these thumbprints (any hash tang accepts); each must be hidden.
    Kids(&'a [String]),
}

/// What a retirement did.
#[derive(Debug, Default)]
pub struct Retirement {
    pub deleted: Vec<String>,
    /// Hidden files left in place, and why.
    pub kept: Vec<String>,
}

/// Deletes hidden keys: the last step of a rotation, once every client has
/// been bound to the new keys. A key that is also advertised is never
/// deleted; naming one is an error, and so is a thumbprint of no key. Nothing
/// is deleted unless every named key can be.
///
/// Age is the file's change time, which renaming it to its hidden name sets
/// (a later chmod or chown sets it again: the judgement errs towards keeping).
pub fn retire(dir: &Path, which: Retire<'_>) -> anyhow::Result<Retirement> {
    let scan = load(dir)?;
    let active: Vec<&KeyFile> = scan.keys.iter().filter(|k| !k.hidden).collect();
    let also_active = |k: &KeyFile| {
        let thp = k.jwk.thumbprint(ThpHash::S256);
        active
            .iter()
            .find(|a| a.jwk.thumbprint(ThpHash::S256) == thp)
            .map(|a| a.name.clone())
    };
    let mut out = Retirement::default();
    let mut doomed: Vec<&KeyFile> = Vec::new();
    match which {
        Retire::Kids(kids) => {
            for kid in kids {
                let found: Vec<&KeyFile> = scan
                    .keys
                    .iter()
                    .filter(|k| k.jwk.matches_thumbprint(kid, &ThpHash::ALL))
                    .collect();
                if let Some(a) = found.iter().find(|k| !k.hidden) {
                    anyhow::bail!(
                        "{kid} is advertised ({}): rotate it first (tangd rotate {}); nothing was deleted",
                        dir.join(&a.name).display(),
                        dir.display()
                    );
                }
                anyhow::ensure!(
                    !found.is_empty(),
                    "no key in {} has the thumbprint {kid}; nothing was deleted",
                    dir.display()
                );
                for k in found {
                    if !doomed.iter().any(|d| d.name == k.name) {
                        doomed.push(k);
                    }
                }
            }
        }
        Retire::AllHidden | Retire::OlderThan(_) => {
            let now = SystemTime::now();
            for k in scan.keys.iter().filter(|k| k.hidden) {
                if let Some(a) = also_active(k) {
                    out.kept
                        .push(format!("{}: the same key is advertised as {a}", k.name));
                    continue;
                }
                if let Retire::OlderThan(age) = which {
                    let changed = fs::symlink_metadata(dir.join(&k.name))?;
                    let when = SystemTime::UNIX_EPOCH
                        + Duration::new(
                            u64::try_from(changed.ctime()).unwrap_or(0),
                            u32::try_from(changed.ctime_nsec()).unwrap_or(0),
                        );
                    if now.duration_since(when).unwrap_or_default() < age {
                        out.kept
                            .push(format!("{}: hidden less than {age:?} ago", k.name));
                        continue;
                    }
                }
                doomed.push(k);
            }
        }
    }
    for s in &scan.skipped {
        out.kept.push(format!("not a key: {s}"));
    }
    for k in doomed {
        fs::remove_file(dir.join(&k.name))
            .map_err(|e| anyhow::anyhow!("deleting {}: {e}", dir.join(&k.name).display()))?;
        out.deleted.push(k.name.clone());
    }
    sync_dir(dir)?;
    Ok(out)
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

    #[test]
    fn recent_times_are_not_settled() {
        let now = SystemTime::now();
        let secs = |t: SystemTime| {
            let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap();
            (d.as_secs() as i64, i64::from(d.subsec_nanos()))
        };
        let mut s = Stamp {
            mtime: secs(now - Duration::from_secs(5)),
            ctime: secs(now - Duration::from_secs(5)),
            ..Stamp::default()
        };
        assert!(s.settled(now));
        s.ctime = secs(now - Duration::from_millis(2));
        assert!(!s.settled(now));
        s.ctime = secs(now + Duration::from_millis(2));
        assert!(!s.settled(now));
    }
}
