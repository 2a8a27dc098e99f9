//! Trying a passphrase on keyslots: KDF, area decryption, AF merge, digest.

use crate::cipher::CipherSpec;
use crate::header::Header;
use crate::io::read_at;
use crate::model::{Digest, DmParams, Keyslot, Priority};
use crate::secret::VolumeKey;
use crate::{Error, af, kdf};
use std::io::{Read, Seek};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Cryptsetup's largest Argon2 memory cost (`crypt_pbkdf_get_limits`): 4 GiB.
/// A keyslot asking for more was not made by cryptsetup and is refused.
pub const ARGON2_MAX_MEMORY_KIB: u64 = 4 * 1024 * 1024;

/// What key derivation may cost: memory, and time.
///
/// PBKDF2 (keyslots and digests) looks at the deadline and the cancel flag
/// every few hundred microseconds and stops with [`Error::KdfStopped`].
/// Argon2 cannot be interrupted: it runs one at a time in the process (each
/// may take half of the available memory), and one that would not finish
/// before the deadline is not started ([`Error::KdfTooSlow`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Limits {
    /// Largest Argon2 memory cost to run, in KiB. A keyslot asking for more
    /// (or for more than [`ARGON2_MAX_MEMORY_KIB`]) fails with
    /// [`Error::MemoryLimit`] instead of exhausting memory.
    pub max_memory_kib: u64,
    deadline: Option<Instant>,
    cancel: Option<Arc<AtomicBool>>,
}

/// Argon2 memory allowed when `/proc/meminfo` cannot be read: enough for
/// cryptsetup's default cost on a small machine.
pub const FALLBACK_MEMORY_KIB: u64 = 1 << 20;

impl Limits {
    /// Allow Argon2 up to `max_memory_kib` KiB, with no deadline.
    pub fn new(max_memory_kib: u64) -> Limits {
        Limits {
            max_memory_kib,
            deadline: None,
            cancel: None,
        }
    }

    /// Limits from the text of `/proc/meminfo`: half of `MemAvailable` (or
    /// of `MemFree` on kernels without it), as cryptsetup allows itself on a
    /// machine without swap. `None` if neither line is there.
    pub fn from_meminfo(meminfo: &str) -> Option<Limits> {
        let field = |name: &str| {
            meminfo.lines().find_map(|l| {
                let rest = l.strip_prefix(name)?.strip_prefix(':')?;
                rest.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()
            })
        };
        field("MemAvailable")
            .or_else(|| field("MemFree"))
            .map(|kib| Limits::new(kib / 2))
    }

    /// Limits for this machine, from `/proc/meminfo`; when that cannot be read,
    /// [`FALLBACK_MEMORY_KIB`].
    pub fn for_this_machine() -> Limits {
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| Limits::from_meminfo(&m))
            .unwrap_or_else(|| Limits::new(FALLBACK_MEMORY_KIB))
    }

    /// The same limits, with derivations stopped at `deadline`.
    pub fn until(mut self, deadline: Instant) -> Limits {
        self.deadline = Some(deadline);
        self
    }

    /// The same limits, with derivations stopped once `flag` is set.
    pub fn cancelled_by(mut self, flag: Arc<AtomicBool>) -> Limits {
        self.cancel = Some(flag);
        self
    }

    /// The deadline, if any.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Why derivation must stop now, if it must.
    pub(crate) fn stop(&self) -> Option<Stop> {
        if self
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
        {
            Some(Stop::Cancelled)
        } else if self.deadline.is_some_and(|d| Instant::now() >= d) {
            Some(Stop::Deadline)
        } else {
            None
        }
    }

    /// `Err(KdfStopped)` if derivation for `slot` must stop now.
    pub(crate) fn check(&self, slot: u32) -> Result<(), Error> {
        match self.stop() {
            Some(reason) => Err(Error::KdfStopped { slot, reason }),
            None => Ok(()),
        }
    }

    /// Time left before the deadline; `None` without one.
    pub(crate) fn time_left(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }
}

/// Why a key derivation was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The caller's deadline passed.
    Deadline,
    /// The caller no longer needs the result.
    Cancelled,
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stop::Deadline => "stopped at the deadline",
            Stop::Cancelled => "cancelled",
        })
    }
}

/// A successfully opened keyslot.
#[non_exhaustive]
pub struct Unlocked {
    /// The keyslot that accepted the passphrase.
    pub keyslot: u32,
    /// The volume key.
    pub volume_key: VolumeKey,
    /// What the dm-crypt table needs besides the key.
    pub dm: DmParams,
}

impl Unlocked {
    /// Decrypt volume data read from the device without dm-crypt, e.g. to look
    /// at a filesystem superblock before mapping.
    ///
    /// `buf` holds whole encryption sectors (`dm.sector_size` bytes each)
    /// read from device byte offset `dm.offset_sectors * 512 + data_offset`;
    /// `data_offset` is the position inside the mapped volume and must be a
    /// multiple of the sector size.
    pub fn decrypt_data(&self, data_offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        let unit = self.dm.sector_size as usize;
        if data_offset % unit as u64 != 0 {
            return Err(Error::meta(
                "data offset",
                format!("{data_offset} is not a multiple of the {unit}-byte sector"),
            ));
        }
        let spec = CipherSpec::parse(&self.dm.cipher)?;
        spec.decrypt_units(
            self.volume_key.expose(),
            buf,
            unit,
            self.dm.iv_offset.wrapping_add(data_offset / 512),
        )
    }
}

/// Try `passphrase` on keyslot `slot`, or on every keyslot if `None`.
///
/// Without a slot, keyslots are tried as cryptsetup does: priority `High`
/// first, then `Normal`, each in numeric order; `Ignore` slots only when
/// named. When no slot opens, the first error other than a wrong passphrase
/// (e.g. [`Error::MemoryLimit`]) is returned, else [`Error::PassphraseRejected`].
/// A derivation stopped by `limits` ([`Error::KdfStopped`]) ends the search at once.
pub fn unlock<R: Read + Seek>(
    hdr: &Header,
    dev: &mut R,
    passphrase: &[u8],
    slot: Option<u32>,
    limits: &Limits,
) -> Result<Unlocked, Error> {
    if let Some(r) = hdr.requirements().first() {
        return Err(Error::UnsupportedFeature(format!(
            "LUKS2 mandatory requirement {r:?} (e.g. an unfinished reencryption)"
        )));
    }
    let candidates: Vec<&Keyslot> = match slot {
        Some(n) => vec![hdr.keyslot(n).ok_or(Error::NoSuchKeyslot(n))?],
        None => {
            let mut v: Vec<&Keyslot> = hdr
                .keyslots()
                .iter()
                .filter(|k| k.priority != Priority::Ignore)
                .collect();
            v.sort_by_key(|k| (std::cmp::Reverse(k.priority), k.id));
            v
        }
    };
    if candidates.is_empty() {
        return Err(Error::NoUsableKeyslot);
    }
    let mut tried = Vec::new();
    let mut first_error = None;
    for ks in candidates {
        tried.push(ks.id);
        match try_keyslot(hdr, dev, ks, passphrase, limits) {
            Ok(Some(u)) => return Ok(u),
            Ok(None) => {}
            Err(e @ Error::KdfStopped { .. }) => return Err(e),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or(Error::PassphraseRejected { tried }))
}

/// `Ok(None)` means the passphrase is wrong for this slot.
fn try_keyslot<R: Read + Seek>(
    hdr: &Header,
    dev: &mut R,
    ks: &Keyslot,
    passphrase: &[u8],
    limits: &Limits,
) -> Result<Option<Unlocked>, Error> {
    let digest = hdr
        .digests
        .iter()
        .find(|d| d.keyslots.contains(&ks.id))
        .ok_or_else(|| {
            Error::meta(
                format!("keyslots.{}", ks.id),
                "no digest covers this keyslot",
            )
        })?;
    let segment = hdr.segment_for(digest).ok_or_else(|| {
        Error::meta(
            "digests",
            format!("keyslot {} opens no crypt segment", ks.id),
        )
    })?;
    if let Some(i) = &segment.integrity {
        return Err(Error::UnsupportedFeature(format!(
            "dm-integrity segment ({i})"
        )));
    }
    let spec = CipherSpec::parse(&ks.area_encryption)?;
    if !spec.key_len_ok(ks.area_key_size) {
        return Err(Error::UnsupportedCipher(format!(
            "{} with a {}-byte key",
            ks.area_encryption, ks.area_key_size
        )));
    }

    let area_key = kdf::derive(&ks.kdf, ks.id, passphrase, ks.area_key_size, limits)?;
    let len = af::material_len(ks.key_size, ks.af_stripes);
    let mut material = Zeroizing::new(read_at(dev, ks.area_offset, len, "keyslot material")?);
    spec.decrypt_sectors(&area_key, &mut material)?;
    let key = af::merge(&material, ks.key_size, ks.af_stripes, ks.af_hash);
    if !digest_matches(digest, &key, ks.id, limits)? {
        return Ok(None);
    }
    let dm = hdr.dm_params(segment, key.len());
    Ok(Some(Unlocked {
        keyslot: ks.id,
        volume_key: VolumeKey::new(key),
        dm,
    }))
}

/// The digest's iterations come from the header too, so they are bounded
/// like the keyslot's.
fn digest_matches(d: &Digest, key: &[u8], slot: u32, limits: &Limits) -> Result<bool, Error> {
    let mut out = Zeroizing::new(vec![0u8; d.value.len()]);
    d.hash
        .pbkdf2(key, &d.salt, d.iterations, &mut out, &|| {
            limits.stop().is_some()
        })
        .map_err(|_| Error::KdfStopped {
            slot,
            reason: limits.stop().unwrap_or(Stop::Deadline),
        })?;
    Ok(bool::from(out.ct_eq(&d.value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_from_meminfo_take_half_of_what_is_available() {
        let mem = |text: &str| Limits::from_meminfo(text).map(|l| l.max_memory_kib);
        let text =
            "MemTotal:       24684408 kB\nMemFree:        1000 kB\nMemAvailable:   24123456 kB\n";
        assert_eq!(mem(text), Some(12_061_728));
        assert_eq!(mem("MemFree:  77 kB\n"), Some(38));
        assert_eq!(mem("MemAvailableX: 5 kB\n"), None);
        assert_eq!(mem(""), None);
    }

    #[test]
    fn stop_reasons() {
        let flag = Arc::new(AtomicBool::new(false));
        let l = Limits::new(1).until(Instant::now() + Duration::from_secs(3600));
        assert_eq!(l.stop(), None);
        let l = l.cancelled_by(flag.clone());
        flag.store(true, Ordering::Relaxed);
        assert_eq!(l.stop(), Some(Stop::Cancelled));
        let past = Limits::new(1).until(Instant::now());
        assert_eq!(past.stop(), Some(Stop::Deadline));
        assert_eq!(
            past.check(3).unwrap_err().to_string(),
            "keyslot 3: key derivation stopped at the deadline"
        );
    }
}
