//! Carrying out a plan on a device: every header change through [`Session`]
//! (libcryptsetup, this crate's LUKSMeta writer), every file change through
//! [`keyfile`](super::keyfile).
//!
//! ```text
//!   settle ─▶ unlock (recovery secret) ─▶ observe ─▶ plan ─▶ step, step, … ─▶ observe ─▶ plan = []?
//! ```
//!
//! Each step is one or two commits, ordered so that a crash between any two
//! leaves what [`observe`](super::observe) recognises, and the next plan
//! carries on from there:
//!
//! ```text
//!   local keyslot, LUKS2   add keyslot L ─▶ marker token names L      (crash between: the file opens an
//!                                                                      unmarked keyslot; the plan marks it)
//!   local keyslot, LUKS1   marker entry L ─▶ add keyslot L            (crash between: a marker of an inactive
//!                                                                      keyslot; the plan drops it)
//!   remove a local keyslot kill L ─▶ drop its marker                  (crash between: a stale marker)
//! ```

use std::fs::File;
use std::path::PathBuf;

use latchkey_luks::{Limits, Version};
use latchkey_proto::Secret;

use super::keyfile::{self, BootDir, FileError};
use super::plan::{Step, Target, plan};
use super::record::{self, LOCAL_UUID, MARKER_DATA, RECORD_UUID};
use super::state::{Observed, observe};
use super::{Record, Server, sss_config};
use crate::inventory::Store;
use crate::luksmeta::{self, Change};
use crate::session::{Request, Session, Settled};

/// Why a policy could not be applied. A variant raised before the first step
/// means nothing was changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A header change failed.
    #[error(transparent)]
    Header(#[from] crate::Error),
    /// A change of the key file failed.
    #[error(transparent)]
    File(#[from] FileError),
    /// The recovery secret opens no keyslot.
    #[error("{}: the recovery secret opens no keyslot", device.display())]
    WrongRecovery {
        /// The device.
        device: PathBuf,
    },
    /// The recovery secret opens a keyslot the policy manages.
    #[error(
        "{}: the recovery secret opens keyslot {slot}, which {what}; give the secret of a \
         passphrase keyslot of its own", device.display()
    )]
    Recovery {
        /// The device.
        device: PathBuf,
        /// The keyslot it opens.
        slot: u32,
        /// What else the keyslot is.
        what: &'static str,
    },
    /// A step did not have the effect it must have.
    #[error("{}: {what}", device.display())]
    Check {
        /// The device.
        device: PathBuf,
        /// What is wrong.
        what: String,
    },
}

/// What to apply.
#[derive(Debug, Clone)]
pub struct Policy<'a> {
    /// The request.
    pub record: &'a Record,
    /// tang and quorum: the servers to bind (verified advertisements).
    pub servers: &'a [Server],
    /// Where the boot partition is mounted.
    pub boot: &'a BootDir,
    /// How much memory a keyslot's key derivation may take while observing.
    pub limits: Limits,
}

/// What [`apply`] did, or in a dry run would do.
#[derive(Debug)]
pub struct Outcome {
    /// What settling interrupted `latchkey luks` changes did.
    pub settled: Vec<Settled>,
    /// The steps, in order: carried out, or planned in a dry run.
    pub steps: Vec<Step>,
    /// Where the disk stands now.
    pub state: Observed,
}

/// Brings the device of `s` to `policy`, with `recovery` (a passphrase of a
/// keyslot of its own) to add keyslots. `done` is called after each step. A
/// dry run changes nothing and returns the plan; neither does a run whose
/// recovery secret opens nothing (it is tried before anything is written).
pub fn apply(
    s: &mut Session<'_>,
    recovery: &Secret,
    policy: &Policy<'_>,
    dry_run: bool,
    done: &mut dyn FnMut(&Step),
) -> Result<Outcome, Error> {
    let slot = s.unlock(recovery).map_err(|e| match e {
        crate::Error::WrongPassphrase { device } => Error::WrongRecovery { device },
        e => e.into(),
    })?;
    let settled = if dry_run { Vec::new() } else { s.settle()? };
    let first = look(s, slot, policy)?;
    check_recovery(s, &first, slot)?;
    let target = Target {
        record: policy.record,
        recovery: slot,
        servers: policy.servers,
    };
    let steps = plan(&first, &target);
    if dry_run {
        return Ok(Outcome {
            settled,
            steps,
            state: first,
        });
    }
    for step in &steps {
        run(s, step, policy)?;
        done(step);
    }
    let state = look(s, slot, policy)?;
    let left = plan(&state, &target);
    if !left.is_empty() {
        let left: Vec<String> = left.iter().map(|st| st.describe(policy.boot)).collect();
        return Err(Error::Check {
            device: s.path().to_path_buf(),
            what: format!(
                "the policy is not in force after applying it; still to do: {}",
                left.join("; ")
            ),
        });
    }
    Ok(Outcome {
        settled,
        steps,
        state,
    })
}

/// Observes the device as it is on disk now.
fn look(s: &Session<'_>, recovery: u32, policy: &Policy<'_>) -> Result<Observed, Error> {
    let hdr = s.header()?;
    let mut f = File::open(s.path()).map_err(|source| crate::Error::Io {
        device: s.path().to_path_buf(),
        what: "reading the header".into(),
        source,
    })?;
    Ok(observe(
        &hdr,
        &mut f,
        policy.boot,
        Some(recovery),
        &policy.limits,
    ))
}

fn check_recovery(s: &Session<'_>, o: &Observed, slot: u32) -> Result<(), Error> {
    let what = if o.bindings.iter().any(|b| b.keyslot == slot) || o.foreign.contains(&slot) {
        "holds a clevis binding"
    } else if o.marked().contains(&slot) {
        "is marked as the local boot key's"
    } else {
        return Ok(());
    };
    Err(Error::Recovery {
        device: s.path().to_path_buf(),
        slot,
        what,
    })
}

const MAX_TOKENS: u32 = 32;

fn free_token(s: &mut Session<'_>) -> Result<u32, Error> {
    (0..MAX_TOKENS)
        .find(|id| s.dev.token(*id).is_none())
        .ok_or_else(|| {
            crate::Error::NoRoom {
                device: s.path().to_path_buf(),
                what: "all 32 LUKS2 token ids are in use".into(),
            }
            .into()
        })
}

/// LUKS1: applies `changes` to the LUKSMeta header as it is now.
fn commit(s: &Session<'_>, changes: &[(usize, Change<'_>)]) -> Result<(), Error> {
    let lm = s
        .header()?
        .luksmeta()
        .cloned()
        .ok_or_else(|| crate::Error::NoLuksMeta {
            device: s.path().to_path_buf(),
        })?;
    for (slot, change) in changes {
        let e = &lm.entries[*slot];
        let ours = [RECORD_UUID, LOCAL_UUID].contains(&e.uuid);
        if matches!(change, Change::Put(..)) && !e.is_empty() && !ours {
            return Err(crate::Error::NoRoom {
                device: s.path().to_path_buf(),
                what: format!("LUKSMeta slot {slot} already holds data of another kind"),
            }
            .into());
        }
    }
    luksmeta::commit(&s.dev, &lm, changes)?;
    Ok(())
}

fn run(s: &mut Session<'_>, step: &Step, policy: &Policy<'_>) -> Result<(), Error> {
    let luks2 = s.dev.version() == Version::Luks2;
    match step {
        Step::Settle(_) => {
            s.settle()?;
        }
        Step::InitLuksMeta => {
            s.init_luksmeta()?;
        }
        Step::WriteRecord {
            record,
            recovery,
            replaces,
        } => {
            if luks2 {
                let id = match replaces.first() {
                    Some(Store::Token(id)) => *id,
                    _ => free_token(s)?,
                };
                s.dev
                    .set_token(id, &record.to_token(*recovery).to_string())?;
                for at in replaces {
                    if let Store::Token(other) = at {
                        if *other != id {
                            s.dev.remove_token(*other)?;
                        }
                    }
                }
            } else {
                let data = record.to_value().to_string();
                let mut changes = vec![(
                    *recovery as usize,
                    Change::Put(RECORD_UUID, data.as_bytes()),
                )];
                for at in replaces {
                    if let Store::LuksMeta(i) = at {
                        if i != recovery {
                            changes.push((*i as usize, Change::Wipe));
                        }
                    }
                }
                commit(s, &changes)?;
            }
        }
        Step::DropMarker(at) => drop_marker(s, *at)?,
        Step::RemoveLocalSlot { keyslot, .. } => {
            let markers: Vec<Store> = record::markers(&s.header()?)
                .into_iter()
                .filter(|m| m.keyslot == Some(*keyslot))
                .map(|m| m.at)
                .collect();
            s.dev.kill_keyslot(*keyslot)?;
            for at in markers {
                drop_marker(s, at)?;
            }
        }
        Step::WriteKeyFile => keyfile::install(policy.boot, &keyfile::new_key())?,
        Step::AddLocalSlot { .. } => {
            let key = key_file(s, policy.boot)?;
            let slot = s.free_keyslot(None, None, "for the local boot key")?;
            if luks2 {
                s.add_and_check(slot, &key)?;
                mark(s, slot)?;
            } else {
                mark(s, slot)?;
                s.add_and_check(slot, &key)?;
            }
            // The file as it is on disk now opens the keyslot.
            let again = key_file(s, policy.boot)?;
            if !s.dev.opens(slot, again.expose()) {
                return Err(Error::Check {
                    device: s.path().to_path_buf(),
                    what: format!(
                        "{} does not open keyslot {slot}, which was just added for it",
                        policy.boot.key().display()
                    ),
                });
            }
        }
        Step::MarkLocalSlot { keyslot } => mark(s, *keyslot)?,
        Step::Bind {
            threshold, urls, ..
        } => {
            let req = Request {
                keyslot: None,
                token: None,
                pin: "sss".into(),
                config: sss_config(*threshold, urls),
                init_luksmeta: true,
            };
            s.bind(&req)?;
        }
        Step::Rebind {
            keyslot,
            threshold,
            urls,
            ..
        } => {
            s.rebind(*keyslot, "sss", &sss_config(*threshold, urls))?;
        }
        Step::Unbind { keyslot, .. } => s.unbind(*keyslot, false)?,
        Step::RemoveKeyFile => keyfile::remove(policy.boot)?,
        Step::RemoveTemp => keyfile::remove_temp(policy.boot)?,
    }
    Ok(())
}

/// The key file as it is on disk now; an error if there is none.
fn key_file(s: &Session<'_>, boot: &BootDir) -> Result<Secret, Error> {
    keyfile::read(&boot.key())?.ok_or_else(|| Error::Check {
        device: s.path().to_path_buf(),
        what: format!("{} is missing", boot.key().display()),
    })
}

fn mark(s: &mut Session<'_>, slot: u32) -> Result<(), Error> {
    if s.dev.version() == Version::Luks2 {
        let id = free_token(s)?;
        s.dev
            .set_token(id, &record::marker_token(slot).to_string())?;
        Ok(())
    } else {
        commit(s, &[(slot as usize, Change::Put(LOCAL_UUID, MARKER_DATA))])
    }
}

fn drop_marker(s: &mut Session<'_>, at: Store) -> Result<(), Error> {
    match at {
        Store::Token(id) => s.dev.remove_token(id)?,
        Store::LuksMeta(i) => commit(s, &[(i as usize, Change::Wipe)])?,
    }
    Ok(())
}
