//! What a header holds, seen as clevis sees it plus what clevis does not
//! look at: bindings per keyslot, and the leftovers of interrupted changes.
//!
//! ```text
//!   Header (latchkey-luks) ──▶ binding_of(slot)    clevis's lookup, for list/pass/report
//!        + device           ──▶ inventory()        bindings, journals, orphans
//! ```
//!
//! clevis finds a LUKS2 slot's token by reading `cryptsetup luksDump`: the
//! token line just above the first `Keyslot: N` line. So a slot is bound to
//! the first token (by id) that names it, and only if that token is a
//! `clevis` one and names the slot first. LUKS1 uses LUKSMeta entry N
//! whatever the state of keyslot N.

use std::io::{Read, Seek};

use latchkey_luks::luksmeta::LuksMeta;
use latchkey_luks::{CLEVIS_UUID, Header, Version};
use latchkey_proto::jwe::Jwe;

use crate::journal::{self, Journal};

/// Where a binding or a journal is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// LUKS2 token id.
    Token(u32),
    /// LUKS1 LUKSMeta entry (same number as the keyslot).
    LuksMeta(u32),
}

impl Store {
    /// `token 3` or `LUKSMeta slot 2`.
    pub fn name(self) -> String {
        match self {
            Store::Token(t) => format!("token {t}"),
            Store::LuksMeta(s) => format!("LUKSMeta slot {s}"),
        }
    }
}

/// A clevis binding of an active keyslot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The keyslot.
    pub keyslot: u32,
    /// Where the JWE is.
    pub store: Store,
    /// The JWE, compact.
    pub jwe: String,
}

/// Something left in the header that is not a working binding.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// A clevis token that names no keyslot (its keyslot was removed, as an
    /// interrupted `clevis luks unbind` leaves it).
    OrphanToken {
        /// Token id.
        token: u32,
    },
    /// A clevis LUKSMeta entry whose keyslot is not active.
    StaleEntry {
        /// Entry and keyslot number.
        slot: u32,
    },
    /// A latchkey journal: an operation that did not finish.
    Interrupted {
        /// Where the journal is.
        at: Store,
        /// Its record.
        journal: Journal,
    },
    /// A latchkey journal that cannot be read.
    UnreadableJournal {
        /// Where it is.
        at: Store,
    },
}

impl Problem {
    /// One line for people, with what fixes it.
    pub fn describe(&self) -> String {
        match self {
            Problem::OrphanToken { token } => format!(
                "clevis token {token} names no keyslot (left by an interrupted unbind); \
                 `latchkey luks bind` or `regen` removes it"
            ),
            Problem::StaleEntry { slot } => format!(
                "LUKSMeta slot {slot} holds a clevis JWE but keyslot {slot} is not active; \
                 `latchkey luks bind` or `regen` wipes it"
            ),
            Problem::Interrupted { at, journal } => format!(
                "{} is {}; run the same latchkey luks command again to finish or undo it",
                at.name(),
                journal.describe()
            ),
            Problem::UnreadableJournal { at } => {
                format!("{} holds a latchkey journal that cannot be read", at.name())
            }
        }
    }
}

/// Everything about the bindings of one header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    /// LUKS1 or LUKS2.
    pub version: Version,
    /// Active keyslots.
    pub active: Vec<u32>,
    /// The clevis bindings of active keyslots, by keyslot.
    pub bindings: Vec<Binding>,
    /// Active keyslots with no binding (a passphrase, another unlocker, or a
    /// keyslot an interrupted clevis bind left behind: nothing tells them apart).
    pub unbound: Vec<u32>,
    /// Leftovers of interrupted changes.
    pub problems: Vec<Problem>,
}

/// The compact JWE and store of `slot`'s binding by clevis's rules (see the
/// module doc); LUKS1 entries are read from `dev`.
pub fn binding_of<R: Read + Seek>(hdr: &Header, dev: &mut R, slot: u32) -> Option<(Store, String)> {
    match hdr.version() {
        Version::Luks2 => {
            let token = hdr.tokens().iter().find(|t| t.keyslots.contains(&slot))?;
            if token.kind != "clevis" || token.keyslots.first() != Some(&slot) {
                return None;
            }
            let jwe = Jwe::from_json(token.json.get("jwe")?).ok()?.to_compact();
            Some((Store::Token(token.id), jwe))
        }
        Version::Luks1 => {
            let lm = hdr.luksmeta()?;
            let i = slot as usize;
            if lm.entries.get(i)?.uuid != CLEVIS_UUID {
                return None;
            }
            let data = lm.read_data(dev, i).ok()?;
            let jwe = String::from_utf8(data).ok()?;
            Some((Store::LuksMeta(slot), jwe.trim().to_owned()))
        }
    }
}

/// The bindings, journals and leftovers of `hdr` (LUKSMeta data read from `dev`).
pub fn inventory<R: Read + Seek>(hdr: &Header, dev: &mut R) -> Inventory {
    let active: Vec<u32> = hdr.keyslots().iter().map(|k| k.id).collect();
    let mut bindings = Vec::new();
    for &slot in &active {
        if let Some((store, jwe)) = binding_of(hdr, dev, slot) {
            bindings.push(Binding {
                keyslot: slot,
                store,
                jwe,
            });
        }
    }
    let unbound = active
        .iter()
        .copied()
        .filter(|s| !bindings.iter().any(|b| b.keyslot == *s))
        .collect();
    let mut problems = Vec::new();
    for t in hdr.tokens() {
        if t.kind == "clevis" && t.keyslots.is_empty() {
            problems.push(Problem::OrphanToken { token: t.id });
        } else if t.kind == journal::TOKEN_TYPE {
            let at = Store::Token(t.id);
            problems.push(match Journal::from_value(&t.json) {
                Some(journal) => Problem::Interrupted { at, journal },
                None => Problem::UnreadableJournal { at },
            });
        }
    }
    if let Some(lm) = hdr.luksmeta() {
        problems.extend(luksmeta_problems(lm, &active, dev));
    }
    Inventory {
        version: hdr.version(),
        active,
        bindings,
        unbound,
        problems,
    }
}

fn luksmeta_problems<R: Read + Seek>(lm: &LuksMeta, active: &[u32], dev: &mut R) -> Vec<Problem> {
    let mut out = Vec::new();
    for (i, e) in lm.entries.iter().enumerate() {
        let slot = i as u32;
        if e.uuid == CLEVIS_UUID && !active.contains(&slot) {
            out.push(Problem::StaleEntry { slot });
        } else if e.uuid == journal::UUID {
            let at = Store::LuksMeta(slot);
            out.push(
                match lm
                    .read_data(dev, i)
                    .ok()
                    .and_then(|d| Journal::from_bytes(&d))
                {
                    Some(journal) => Problem::Interrupted { at, journal },
                    None => Problem::UnreadableJournal { at },
                },
            );
        }
    }
    out
}
