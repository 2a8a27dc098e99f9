//! Where a disk stands: what its header and its boot directory hold, seen
//! through the policy (which keyslot is the recovery secret's, which the
//! local key's, which clevis bindings are the policy's).
//!
//! ```text
//!   Header + device ──▶ inventory (clevis bindings, journals) + record + markers
//!   boot dir ─────────▶ key file ──▶ which keyslots it opens (tried one by one)
//! ```
//!
//! Nothing here writes. The key file is tried against the marked keyslots
//! and against every keyslot that no token explains, so a keyslot added just
//! before a crash, before its marker, is still found.

use std::io::{Read, Seek};

use latchkey_luks::{Header, Limits, Version};

use super::keyfile::{self, BootDir};
use super::record::{self, Found, Marker};
use super::{Mode, TangPolicy, tang_policy};
use crate::inventory::{self, Problem, Store};

/// A clevis binding whose pin tree is Tang only: the policy's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyBinding {
    /// Its keyslot.
    pub keyslot: u32,
    /// Where its JWE is.
    pub store: Store,
    /// Its threshold and servers.
    pub policy: TangPolicy,
    /// The compact JWE.
    pub jwe: String,
}

/// The local key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyFile {
    /// No file.
    Absent,
    /// A file, and the keyslots it opens (of those it was tried on).
    Present {
        /// The keyslots it opens.
        opens: Vec<u32>,
    },
    /// Something is there that cannot be read as a key file.
    Unreadable(String),
}

/// What a disk's header and boot directory hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// LUKS1 or LUKS2.
    pub version: Version,
    /// LUKS1: whether LUKSMeta is initialized (LUKS2: always true).
    pub luksmeta: bool,
    /// Active keyslots.
    pub active: Vec<u32>,
    /// The keyslot of the recovery secret: as the caller found it, else the
    /// record's.
    pub recovery: Option<u32>,
    /// The records (normally one).
    pub records: Vec<Found>,
    /// Local key markers.
    pub markers: Vec<Marker>,
    /// The key file.
    pub key_file: KeyFile,
    /// A temporary key file is left over.
    pub temp_left: bool,
    /// The policy's clevis bindings.
    pub bindings: Vec<PolicyBinding>,
    /// Keyslots with another clevis binding (tpm2, nested sss, ...).
    pub foreign: Vec<u32>,
    /// Active keyslots nothing explains: no binding, no marker, not the
    /// recovery keyslot, not opened by the key file.
    pub unknown: Vec<u32>,
    /// Leftovers of interrupted `latchkey luks` changes (journals, orphans).
    pub problems: Vec<Problem>,
}

impl Observed {
    /// The record, if exactly one readable one stands beside the recovery keyslot.
    pub fn record(&self) -> Option<&record::Record> {
        self.records.first().and_then(|f| f.record.as_ref())
    }

    /// Active keyslots with a marker.
    pub fn marked(&self) -> Vec<u32> {
        self.markers.iter().filter_map(|m| m.keyslot).collect()
    }

    /// Markers whose keyslot is gone.
    pub fn stale_markers(&self) -> Vec<Store> {
        self.markers
            .iter()
            .filter(|m| m.keyslot.is_none())
            .map(|m| m.at)
            .collect()
    }

    /// The keyslots the key file opens.
    pub fn opened_by_file(&self) -> &[u32] {
        match &self.key_file {
            KeyFile::Present { opens } => opens,
            _ => &[],
        }
    }

    /// The keyslot of the local key in force: the one the key file opens, a
    /// marked one first.
    pub fn local_slot(&self) -> Option<u32> {
        let opens = self.opened_by_file();
        let marked = self.marked();
        opens
            .iter()
            .copied()
            .find(|s| marked.contains(s))
            .or_else(|| opens.first().copied())
    }

    /// Every keyslot that belongs to a local key: marked, or opened by the file.
    pub fn local_slots(&self) -> Vec<u32> {
        let mut v = self.marked();
        for s in self.opened_by_file() {
            if !v.contains(s) {
                v.push(*s);
            }
        }
        v.sort_unstable();
        v
    }

    /// The mode the disk is in now, by what opens it: `None` when nothing of
    /// the policy does, or when both a local key and a binding do (a
    /// transition under way).
    pub fn mode(&self) -> Option<Mode> {
        match (self.local_slot().is_some(), self.bindings.as_slice()) {
            (true, []) => Some(Mode::Degraded),
            (false, [b]) if b.policy.threshold == 1 => Some(Mode::Tang),
            (false, [_]) => Some(Mode::Quorum),
            _ => None,
        }
    }
}

/// Reads where `hdr` (on `dev`) and `boot` stand. `recovery` is the keyslot the
/// recovery secret opened, when the caller has it. The key file is tried on
/// keyslots by this project's reader, within `limits`.
pub fn observe<R: Read + Seek>(
    hdr: &Header,
    dev: &mut R,
    boot: &BootDir,
    recovery: Option<u32>,
    limits: &Limits,
) -> Observed {
    let inv = inventory::inventory(hdr, dev);
    let records = record::records(hdr, dev);
    let markers = record::markers(hdr);
    let recovery = recovery.or_else(|| records.first().and_then(|f| f.keyslot));
    let mut bindings = Vec::new();
    let mut foreign = Vec::new();
    for b in &inv.bindings {
        match tang_policy(&b.jwe) {
            Some(policy) => bindings.push(PolicyBinding {
                keyslot: b.keyslot,
                store: b.store,
                policy,
                jwe: b.jwe.clone(),
            }),
            None => foreign.push(b.keyslot),
        }
    }
    let marked: Vec<u32> = markers.iter().filter_map(|m| m.keyslot).collect();
    // Keyslots a key file may open: the marked ones, then any that nothing else
    // explains (a keyslot whose marker a crash prevented).
    let mut candidates = marked.clone();
    candidates.extend(
        inv.unbound
            .iter()
            .copied()
            .filter(|s| Some(*s) != recovery && !marked.contains(s)),
    );
    let key_file = match keyfile::read(&boot.key()) {
        Ok(None) => KeyFile::Absent,
        Ok(Some(key)) => KeyFile::Present {
            opens: candidates
                .iter()
                .copied()
                .filter(|&s| latchkey_luks::unlock(hdr, dev, key.expose(), Some(s), limits).is_ok())
                .collect(),
        },
        Err(e) => KeyFile::Unreadable(e.to_string()),
    };
    let opened: &[u32] = match &key_file {
        KeyFile::Present { opens } => opens,
        _ => &[],
    };
    let unknown = inv
        .unbound
        .iter()
        .copied()
        .filter(|s| Some(*s) != recovery && !marked.contains(s) && !opened.contains(s))
        .collect();
    Observed {
        version: hdr.version(),
        luksmeta: hdr.version() == Version::Luks2 || hdr.luksmeta().is_some(),
        active: inv.active,
        recovery,
        records,
        markers,
        key_file,
        temp_left: keyfile::temp_left(boot),
        bindings,
        foreign,
        unknown,
        problems: inv.problems,
    }
}
