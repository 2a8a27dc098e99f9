//! LUKS1: a binding is LUKSMeta entry N of clevis's UUID beside active keyslot
//! N. LUKSMeta writes are atomic over several entries (see `luksmeta`), which
//! is what lets a binding move between keyslots in one step. Each numbered
//! step is one write; J is a journal entry.
//!
//! ```text
//!   bind N           1 entry N := JWE (keyslot N inactive: nobody reads it)  2 add N
//!   unbind S         1 kill S  2 wipe entry S
//!   rebind S via T   1 entry T := J(stage)  2 add T
//!                    3 entry T := new JWE, entry S := J(move)  4 kill S  5 add S
//!                    6 entry S := new JWE, entry T := J(clean)  7 kill T  8 wipe entry T
//! ```
//!
//! A clevis entry of an inactive keyslot is never part of a change in
//! progress, so it is wiped on sight (as clevis's bind does).

use latchkey_luks::CLEVIS_UUID;
use latchkey_luks::luksmeta::LuksMeta;

use crate::Error;
use crate::inventory::Store;
use crate::journal::{self, Journal, Op, Phase};
use crate::luksmeta::{self, Change};
use crate::session::{Bound, Request, Session, Settled};

/// The LUKSMeta header now, or `None` if the device has none.
fn current(s: &Session<'_>) -> Result<Option<LuksMeta>, Error> {
    Ok(s.header()?.luksmeta().cloned())
}

fn no_room(s: &Session<'_>, lm: &LuksMeta, need: usize) -> Error {
    Error::NoRoom {
        device: s.path().to_path_buf(),
        what: format!(
            "the LUKSMeta area ({} bytes) has no room for {need} more bytes of binding data",
            lm.area.len
        ),
    }
}

/// Entry `slot` must be empty to take new data.
fn entry_free(s: &Session<'_>, lm: &LuksMeta, slot: u32) -> Result<(), Error> {
    if lm.entries[slot as usize].is_empty() {
        Ok(())
    } else {
        Err(Error::NoRoom {
            device: s.path().to_path_buf(),
            what: format!("LUKSMeta slot {slot} already holds data of another kind"),
        })
    }
}

pub(crate) fn bind(s: &mut Session<'_>, req: &Request) -> Result<Bound, Error> {
    let lm = match current(s)? {
        Some(lm) => Some(lm),
        None if req.init_luksmeta => None,
        None => {
            return Err(Error::NoLuksMeta {
                device: s.path().to_path_buf(),
            });
        }
    };
    let slot = s.free_keyslot(req.keyslot, None, "for the new binding")?;
    let area = s.header()?.luksmeta_area().ok_or_else(|| Error::NoRoom {
        device: s.path().to_path_buf(),
        what: "the gap between the keyslots and the data has no room for LUKSMeta".into(),
    })?;
    let planned = lm.clone().unwrap_or_else(|| LuksMeta::empty(area));
    entry_free(s, &planned, slot)?;
    let new = s.new_binding(&req.pin, &req.config)?;
    let put = [(slot as usize, Change::Put(CLEVIS_UUID, new.jwe.as_bytes()))];
    if !luksmeta::fits(&planned, &put) {
        return Err(no_room(s, &planned, new.jwe.len()));
    }
    let lm = match lm {
        Some(lm) => lm,
        None => luksmeta::init(&s.dev, area)?,
    };
    let staged = luksmeta::commit(&s.dev, &lm, &put)?;
    if let Err(e) = s.add_and_check(slot, &new.passphrase) {
        if s.dev.in_use(slot) {
            let _ = s.dev.kill_keyslot(slot);
        }
        let _ = luksmeta::commit(&s.dev, &staged, &[(slot as usize, Change::Wipe)]);
        return Err(e);
    }
    Ok(Bound {
        keyslot: slot,
        store: Store::LuksMeta(slot),
        verified: new.verified,
    })
}

pub(crate) fn unbind(s: &mut Session<'_>, slot: u32) -> Result<(), Error> {
    s.dev.kill_keyslot(slot)?;
    let lm = current(s)?.expect("a bound LUKS1 device has LUKSMeta");
    luksmeta::commit(&s.dev, &lm, &[(slot as usize, Change::Wipe)])?;
    Ok(())
}

pub(crate) fn rebind(
    s: &mut Session<'_>,
    slot: u32,
    pin: &str,
    config: &str,
) -> Result<Bound, Error> {
    let lm = current(s)?.expect("a bound LUKS1 device has LUKSMeta");
    let temp = s.free_keyslot(
        None,
        Some(slot),
        "a temporary one, while the binding is replaced",
    )?;
    entry_free(s, &lm, temp)?;
    let new = s.new_binding(pin, config)?;
    let mut j = s.journal(Op::Rebind, slot, pin, config);
    j.temp = Some(temp);
    j.jwe_tag = Some(new.tag());
    let jwe = new.jwe.as_bytes();
    let record = |phase| {
        let mut j = j.clone();
        j.phase = Some(phase);
        j.to_bytes()
    };
    let (stage, moving, clean) = (
        record(Phase::Stage),
        record(Phase::Move),
        record(Phase::Clean),
    );
    let (t, sl) = (temp as usize, slot as usize);
    let step1 = [(t, Change::Put(journal::UUID, &stage))];
    let step3 = [
        (t, Change::Put(CLEVIS_UUID, jwe)),
        (sl, Change::Put(journal::UUID, &moving)),
    ];
    let step6 = [
        (sl, Change::Put(CLEVIS_UUID, jwe)),
        (t, Change::Put(journal::UUID, &clean)),
    ];
    // Check every step's room before the first write.
    let mut sim = lm.clone();
    for step in [&step1[..], &step3[..], &step6[..]] {
        if !luksmeta::fits(&sim, step) {
            return Err(no_room(s, &sim, jwe.len() + stage.len()));
        }
        sim = simulate(&sim, step);
    }

    let lm = luksmeta::commit(&s.dev, &lm, &step1)?;
    if let Err(e) = s.add_and_check(temp, &new.passphrase) {
        if s.dev.in_use(temp) {
            let _ = s.dev.kill_keyslot(temp);
        }
        let _ = luksmeta::commit(&s.dev, &lm, &[(t, Change::Wipe)]);
        return Err(e);
    }
    // From here on a failure leaves the journal for a re-run to finish.
    let lm = luksmeta::commit(&s.dev, &lm, &step3)?;
    s.dev.kill_keyslot(slot)?;
    s.add_and_check(slot, &new.passphrase)?;
    let lm = luksmeta::commit(&s.dev, &lm, &step6)?;
    s.dev.kill_keyslot(temp)?;
    luksmeta::commit(&s.dev, &lm, &[(t, Change::Wipe)])?;
    Ok(Bound {
        keyslot: slot,
        store: Store::LuksMeta(slot),
        verified: new.verified,
    })
}

/// The header `step` would leave, with placeholder data offsets (for room checks).
fn simulate(lm: &LuksMeta, step: &[(usize, Change<'_>)]) -> LuksMeta {
    let mut next = lm.clone();
    let mut taken = Vec::new();
    for (slot, change) in step {
        next.entries[*slot] = match change {
            Change::Put(uuid, data) => {
                let off = lm.allocate(data.len(), &taken).unwrap_or(0);
                taken.push((off, data.len() as u32));
                latchkey_luks::luksmeta::Entry::new(*uuid, off, data)
            }
            Change::Wipe => Default::default(),
        };
    }
    next
}

pub(crate) fn settle(s: &mut Session<'_>) -> Result<Vec<Settled>, Error> {
    let mut done = Vec::new();
    let Some(lm) = current(s)? else {
        return Ok(done);
    };
    for i in 0..lm.entries.len() {
        let lm = current(s)?.expect("still there");
        if lm.entries[i].uuid != journal::UUID {
            continue;
        }
        let mut reader = s.dev.file();
        let data = lm.read_data(&mut reader, i).ok();
        let Some(j) = data.as_deref().and_then(Journal::from_bytes) else {
            return Err(Error::Interrupted {
                device: s.path().to_path_buf(),
                what: format!("LUKSMeta slot {i}"),
                reason: "it holds a latchkey journal that cannot be read".into(),
            });
        };
        done.push(settle_rebind(s, &lm, i as u32, &j)?);
    }
    let lm = current(s)?.expect("still there");
    for (i, e) in lm.entries.iter().enumerate() {
        if e.uuid == CLEVIS_UUID && !s.dev.in_use(i as u32) {
            let lm = current(s)?.expect("still there");
            luksmeta::commit(&s.dev, &lm, &[(i, Change::Wipe)])?;
            done.push(Settled::StaleEntryWiped(i as u32));
        }
    }
    Ok(done)
}

fn settle_rebind(
    s: &mut Session<'_>,
    lm: &LuksMeta,
    at: u32,
    j: &Journal,
) -> Result<Settled, Error> {
    let Some(temp) = j.temp.filter(|_| j.op == Op::Rebind) else {
        return Err(s.interrupted(j, "its journal names no temporary keyslot"));
    };
    let t = temp as usize;
    match j.phase {
        Some(Phase::Stage) if at == temp => {
            if s.dev.in_use(temp) {
                s.dev.kill_keyslot(temp)?;
            }
            luksmeta::commit(&s.dev, lm, &[(t, Change::Wipe)])?;
            Ok(Settled::Undone(j.clone()))
        }
        Some(Phase::Move) if at == j.keyslot => {
            let mut reader = s.dev.file();
            let jwe = (lm.entries[t].uuid == CLEVIS_UUID)
                .then(|| lm.read_data(&mut reader, t).ok())
                .flatten()
                .and_then(|d| String::from_utf8(d).ok())
                .filter(|jwe| Some(journal::jwe_tag(jwe.trim())) == j.jwe_tag.as_deref())
                .ok_or_else(|| {
                    s.interrupted(j, format!("LUKSMeta slot {temp} does not hold its new JWE"))
                })?;
            s.restore_rebound_keyslot(j, temp, jwe.trim())?;
            let slot = j.keyslot;
            let mut clean = j.clone();
            clean.phase = Some(Phase::Clean);
            let clean = clean.to_bytes();
            let lm = luksmeta::commit(
                &s.dev,
                lm,
                &[
                    (
                        slot as usize,
                        Change::Put(CLEVIS_UUID, jwe.trim().as_bytes()),
                    ),
                    (t, Change::Put(journal::UUID, &clean)),
                ],
            )?;
            if s.dev.in_use(temp) {
                s.dev.kill_keyslot(temp)?;
            }
            luksmeta::commit(&s.dev, &lm, &[(t, Change::Wipe)])?;
            Ok(Settled::Finished(j.clone()))
        }
        Some(Phase::Clean) if at == temp => {
            if s.dev.in_use(temp) {
                s.dev.kill_keyslot(temp)?;
            }
            luksmeta::commit(&s.dev, lm, &[(t, Change::Wipe)])?;
            Ok(Settled::Finished(j.clone()))
        }
        _ => Err(s.interrupted(
            j,
            format!("its journal sits in LUKSMeta slot {at}, which does not match its phase"),
        )),
    }
}
