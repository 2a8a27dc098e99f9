//! Writing LUKSMeta, the LUKS1 home of clevis JWEs, with the format model of
//! latchkey-luks.
//!
//! One change may touch several entries and still be atomic: new data goes to
//! blocks no entry uses, is flushed, then the 272-byte header is written in
//! one `pwrite` and flushed; only then are the blocks the old entries used
//! zeroed. A crash leaves either the old header or the new one, each with all
//! its data in place. (luksmeta 9 zeroes a wiped entry's data before it
//! rewrites the header, so a crash there leaves an entry whose checksum fails.)

use std::os::unix::fs::FileExt;

use latchkey_luks::luksmeta::{Area, Entry, LuksMeta, SLOTS};
use rustix::fs::{FlockOperation, flock};

use crate::Error;
use crate::device::Device;

/// A change to one entry: new data of a type, or empty.
pub enum Change<'a> {
    /// Store `data` as type `uuid`.
    Put([u8; 16], &'a [u8]),
    /// Empty the entry.
    Wipe,
}

/// The header after `init`: every entry empty.
pub fn init(dev: &Device, area: Area) -> Result<LuksMeta, Error> {
    let lm = LuksMeta::empty(area);
    write_header(dev, &lm)?;
    Ok(lm)
}

/// Whether the changes fit: the new data, placed beside everything stored now.
pub fn fits(current: &LuksMeta, changes: &[(usize, Change<'_>)]) -> bool {
    place(current, changes).is_some()
}

fn place(current: &LuksMeta, changes: &[(usize, Change<'_>)]) -> Option<Vec<(usize, u32)>> {
    let mut taken: Vec<(u32, u32)> = Vec::new();
    let mut out = Vec::new();
    for (slot, change) in changes {
        if let Change::Put(_, data) = change {
            let off = current.allocate(data.len(), &taken)?;
            taken.push((off, u32::try_from(data.len()).ok()?));
            out.push((*slot, off));
        }
    }
    Some(out)
}

/// Applies `changes` to `current` atomically; returns the new header.
pub fn commit(
    dev: &Device,
    current: &LuksMeta,
    changes: &[(usize, Change<'_>)],
) -> Result<LuksMeta, Error> {
    let placed = place(current, changes).ok_or_else(|| Error::NoRoom {
        device: dev.path().to_path_buf(),
        what: format!(
            "the LUKSMeta area ({} bytes at {}) has no room for the new data",
            current.area.len, current.area.offset
        ),
    })?;
    let _lock = Lock::take(dev)?;
    let mut next = current.clone();
    for (slot, change) in changes {
        assert!(*slot < SLOTS, "LUKSMeta has {SLOTS} entries");
        next.entries[*slot] = match change {
            Change::Put(uuid, data) => {
                let off = placed
                    .iter()
                    .find(|(s, _)| s == slot)
                    .map(|(_, o)| *o)
                    .expect("placed above");
                write_at(
                    dev,
                    current.area.offset + u64::from(off),
                    data,
                    "writing LUKSMeta data",
                )?;
                Entry::new(*uuid, off, data)
            }
            Change::Wipe => Entry::default(),
        };
    }
    sync(dev)?;
    write_header(dev, &next)?;
    // The blocks of replaced entries are no longer referenced: wipe them.
    for (i, old) in current.entries.iter().enumerate() {
        if !old.is_empty() && next.entries[i] != *old && !next.entries.contains(old) {
            let zero = vec![0u8; old.length as usize];
            write_at(
                dev,
                current.area.offset + u64::from(old.offset),
                &zero,
                "wiping old LUKSMeta data",
            )?;
        }
    }
    sync(dev)?;
    Ok(next)
}

fn write_header(dev: &Device, lm: &LuksMeta) -> Result<(), Error> {
    let _lock = Lock::take(dev)?;
    write_at(
        dev,
        lm.area.offset,
        &lm.encode(),
        "writing the LUKSMeta header",
    )?;
    sync(dev)
}

fn write_at(dev: &Device, offset: u64, data: &[u8], what: &str) -> Result<(), Error> {
    dev.file()
        .write_all_at(data, offset)
        .map_err(|source| Error::Io {
            device: dev.path().to_path_buf(),
            what: what.to_owned(),
            source,
        })
}

fn sync(dev: &Device) -> Result<(), Error> {
    dev.file().sync_data().map_err(|source| Error::Io {
        device: dev.path().to_path_buf(),
        what: "flushing LUKSMeta".into(),
        source,
    })
}

/// libcryptsetup's own lock on the device while LUKSMeta is written, so that no
/// cryptsetup run changes the header in between.
struct Lock<'a>(&'a Device);

impl<'a> Lock<'a> {
    fn take(dev: &'a Device) -> Result<Lock<'a>, Error> {
        flock(dev.file(), FlockOperation::LockExclusive).map_err(|e| Error::Io {
            device: dev.path().to_path_buf(),
            what: "locking the device".into(),
            source: e.into(),
        })?;
        Ok(Lock(dev))
    }
}

impl Drop for Lock<'_> {
    fn drop(&mut self) {
        let _ = flock(self.0.file(), FlockOperation::Unlock);
    }
}
