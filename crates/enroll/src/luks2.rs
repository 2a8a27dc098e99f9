//! LUKS2: a binding is a `clevis` token naming one keyslot. Each numbered step
//! below is one libcryptsetup commit; the journal J is a `latchkey-journal`
//! token. After every step some truthful binding (a token whose JWE opens the
//! keyslot it names) exists for the policy being changed.
//!
//! ```text
//!   bind N (token K)     1 J  2 add N  3 K→N  4 −J
//!   unbind S (token K)   1 J  2 kill S (K names nothing)  3 −K  4 −J
//!   rebind S via T       1 J  2 add T  3 K→T (new JWE)  4 kill S  5 add S
//!                        6 K→S  7 kill T  8 −J
//! ```
//!
//! A re-run reads J: before K holds the new JWE (its tag is in J) the change is
//! undone by removing the keyslot J names; after, it is finished.

use latchkey_proto::Secret;
use latchkey_proto::jwe::Jwe;
use serde_json::Value;

use crate::Error;
use crate::inventory::Store;
use crate::journal::{self, Journal, Op};
use crate::session::{Bound, Request, Session, Settled};

const MAX_TOKENS: u32 = 32;

/// The token of a binding, as clevis writes it: `cryptsetup token import` of
/// `{"type":"clevis","keyslots":["N"],"jwe":FLAT}`, FLAT the flattened JWE with
/// sorted members as `jose jwe fmt` prints it. libcryptsetup keeps this order.
pub(crate) fn clevis_token(slot: u32, flat_jwe: &Value) -> String {
    format!(r#"{{"type":"clevis","keyslots":["{slot}"],"jwe":{flat_jwe}}}"#)
}

/// Keyslots the token names, as numbers.
fn keyslots(token: &Value) -> Vec<u32> {
    token["keyslots"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str()?.parse().ok())
        .collect()
}

fn tag(token: &Value) -> Option<&str> {
    token["jwe"]["tag"].as_str()
}

/// The clevis token whose first keyslot is `slot` (the caller checked that it exists).
fn token_of(s: &mut Session<'_>, slot: u32) -> u32 {
    (0..MAX_TOKENS)
        .find(|id| {
            s.dev
                .token(*id)
                .is_some_and(|t| keyslots(&t).first() == Some(&slot))
        })
        .expect("the caller checked the binding")
}

fn free_token(s: &mut Session<'_>, except: &[u32]) -> Result<u32, Error> {
    (0..MAX_TOKENS)
        .find(|id| !except.contains(id) && s.dev.token(*id).is_none())
        .ok_or_else(|| Error::NoRoom {
            device: s.path().to_path_buf(),
            what: "all 32 LUKS2 token ids are in use".into(),
        })
}

/// No token names `slot`.
fn untokened(s: &mut Session<'_>, slot: u32) -> bool {
    (0..MAX_TOKENS).all(|id| {
        s.dev
            .token(id)
            .is_none_or(|t| !keyslots(&t).contains(&slot))
    })
}

pub(crate) fn bind(s: &mut Session<'_>, req: &Request) -> Result<Bound, Error> {
    let slot = s.free_keyslot(req.keyslot, None, "for the new binding")?;
    let token = match req.token {
        Some(t) if t >= MAX_TOKENS || s.dev.token(t).is_some() => {
            return Err(Error::TokenInUse {
                device: s.path().to_path_buf(),
                token: t,
            });
        }
        Some(t) => t,
        None => free_token(s, &[])?,
    };
    let jid = free_token(s, &[token])?;
    let new = s.new_binding(&req.pin, &req.config)?;
    let mut j = s.journal(Op::Bind, slot, &req.pin, &req.config);
    j.token = Some(token);
    j.jwe_tag = Some(new.tag());

    s.dev.set_token(jid, &j.to_token().to_string())?;
    let undo = |s: &mut Session<'_>, e: Error| {
        if s.dev.in_use(slot) {
            let _ = s.dev.kill_keyslot(slot);
        }
        let _ = s.dev.remove_token(jid);
        e
    };
    if let Err(e) = s.add_and_check(slot, &new.passphrase) {
        return Err(undo(s, e));
    }
    if let Err(e) = s.dev.set_token(token, &new.token(slot)) {
        return Err(undo(s, e));
    }
    s.dev.remove_token(jid)?;
    Ok(Bound {
        keyslot: slot,
        store: Store::Token(token),
        verified: new.verified,
    })
}

pub(crate) fn unbind(s: &mut Session<'_>, slot: u32) -> Result<(), Error> {
    let token = token_of(s, slot);
    let jid = free_token(s, &[token])?;
    let mut j = s.journal(Op::Unbind, slot, "", "");
    j.token = Some(token);
    s.dev.set_token(jid, &j.to_token().to_string())?;
    s.dev.kill_keyslot(slot)?;
    // A token clevis wrote names one keyslot; one naming others too keeps them.
    if s.dev.token(token).is_some_and(|t| keyslots(&t).is_empty()) {
        s.dev.remove_token(token)?;
    }
    s.dev.remove_token(jid)
}

pub(crate) fn rebind(
    s: &mut Session<'_>,
    slot: u32,
    pin: &str,
    config: &str,
) -> Result<Bound, Error> {
    let token = token_of(s, slot);
    let temp = s.free_keyslot(
        None,
        Some(slot),
        "a temporary one, while the binding is replaced",
    )?;
    let jid = free_token(s, &[token])?;
    let new = s.new_binding(pin, config)?;
    let mut j = s.journal(Op::Rebind, slot, pin, config);
    j.temp = Some(temp);
    j.token = Some(token);
    j.jwe_tag = Some(new.tag());

    s.dev.set_token(jid, &j.to_token().to_string())?;
    if let Err(e) = s.add_and_check(temp, &new.passphrase) {
        if s.dev.in_use(temp) {
            let _ = s.dev.kill_keyslot(temp);
        }
        let _ = s.dev.remove_token(jid);
        return Err(e);
    }
    if let Err(e) = s.dev.set_token(token, &new.token(temp)) {
        let _ = s.dev.kill_keyslot(temp);
        let _ = s.dev.remove_token(jid);
        return Err(e);
    }
    // From here on the binding lives in the temporary keyslot; a failure leaves
    // the journal for a re-run to finish.
    s.dev.kill_keyslot(slot)?;
    s.add_and_check(slot, &new.passphrase)?;
    s.dev.set_token(token, &new.token(slot))?;
    s.dev.kill_keyslot(temp)?;
    s.dev.remove_token(jid)?;
    Ok(Bound {
        keyslot: slot,
        store: Store::Token(token),
        verified: new.verified,
    })
}

pub(crate) fn settle(s: &mut Session<'_>) -> Result<Vec<Settled>, Error> {
    let mut done = Vec::new();
    for id in 0..MAX_TOKENS {
        let Some(t) = s.dev.token(id) else { continue };
        if t["type"] != journal::TOKEN_TYPE {
            continue;
        }
        let Some(j) = Journal::from_value(&t) else {
            return Err(Error::Interrupted {
                device: s.path().to_path_buf(),
                what: format!("token {id}"),
                reason: "it holds a latchkey journal that cannot be read; remove it with \
                         `cryptsetup token remove --token-id ID` once the bindings are checked"
                    .into(),
            });
        };
        done.push(match j.op {
            Op::Bind => settle_bind(s, &j)?,
            Op::Unbind => settle_unbind(s, &j)?,
            Op::Rebind => settle_rebind(s, &j)?,
        });
        s.dev.remove_token(id)?;
    }
    for id in 0..MAX_TOKENS {
        if let Some(t) = s.dev.token(id) {
            if t["type"] == "clevis" && keyslots(&t).is_empty() {
                s.dev.remove_token(id)?;
                done.push(Settled::OrphanTokenRemoved(id));
            }
        }
    }
    Ok(done)
}

fn settle_bind(s: &mut Session<'_>, j: &Journal) -> Result<Settled, Error> {
    let token = j.token.map(|id| s.dev.token(id));
    let made = matches!(&token, Some(Some(t))
        if t["type"] == "clevis" && keyslots(t) == [j.keyslot] && tag(t) == j.jwe_tag.as_deref());
    if made {
        return Ok(Settled::Finished(j.clone()));
    }
    if s.dev.in_use(j.keyslot) && untokened(s, j.keyslot) {
        s.dev.kill_keyslot(j.keyslot)?;
    }
    Ok(Settled::Undone(j.clone()))
}

fn settle_unbind(s: &mut Session<'_>, j: &Journal) -> Result<Settled, Error> {
    if let Some(id) = j.token {
        if let Some(t) = s.dev.token(id) {
            let names = keyslots(&t);
            if t["type"] == "clevis" && names.first().is_none_or(|&k| k == j.keyslot) {
                if s.dev.in_use(j.keyslot) {
                    s.dev.kill_keyslot(j.keyslot)?;
                }
                if s.dev.token(id).is_some_and(|t| keyslots(&t).is_empty()) {
                    s.dev.remove_token(id)?;
                }
            }
        }
    }
    Ok(Settled::Finished(j.clone()))
}

fn settle_rebind(s: &mut Session<'_>, j: &Journal) -> Result<Settled, Error> {
    let (Some(temp), Some(id)) = (j.temp, j.token) else {
        return Err(s.interrupted(j, "its journal names no temporary keyslot or token"));
    };
    let token = s.dev.token(id).filter(|t| t["type"] == "clevis");
    let holds_new = token
        .as_ref()
        .is_some_and(|t| tag(t) == j.jwe_tag.as_deref());
    if !holds_new {
        // Steps 1-2: the binding was never moved; drop the temporary keyslot.
        if s.dev.in_use(temp) && untokened(s, temp) {
            s.dev.kill_keyslot(temp)?;
        }
        return Ok(Settled::Undone(j.clone()));
    }
    let token = token.expect("checked above");
    let names = keyslots(&token);
    if names == [temp] {
        let jwe = Jwe::from_json(&token["jwe"])
            .map_err(|e| s.interrupted(j, format!("clevis binding in token {id}: {e}")))?
            .to_compact();
        s.restore_rebound_keyslot(j, temp, &jwe)?;
        s.dev
            .set_token(id, &clevis_token(j.keyslot, &token["jwe"]))?;
    } else if names != [j.keyslot] {
        return Err(s.interrupted(j, format!("token {id} names keyslots {names:?}")));
    }
    if s.dev.in_use(temp) && untokened(s, temp) {
        s.dev.kill_keyslot(temp)?;
    }
    Ok(Settled::Finished(j.clone()))
}

/// The passphrase that LUKS2 token `id` names in the kernel keyring, and the
/// keyslots the token is assigned to (what `cryptsetup --token-id ID` uses).
pub(crate) fn keyring_passphrase(
    s: &mut Session<'_>,
    id: u32,
) -> Result<(Secret, Vec<u32>), Error> {
    let device = s.path().to_path_buf();
    let bad = |reason: String| Error::ExistingToken {
        device: device.clone(),
        token: id,
        reason,
    };
    let Some(token) = s.dev.token(id) else {
        return Err(bad("there is no such token".into()));
    };
    if token["type"] != "luks2-keyring" {
        return Err(bad(format!(
            "it is a {} token; -e takes a luks2-keyring token (cryptsetup token add --key-description)",
            token["type"]
        )));
    }
    let Some(description) = token["key_description"].as_str() else {
        return Err(bad("it has no key_description".into()));
    };
    let slots = keyslots(&token);
    if slots.is_empty() {
        return Err(bad("it is assigned to no keyslot".into()));
    }
    let mut key =
        latchkey_sys::keyring::read_user_key(description).map_err(|source| Error::Keyring {
            device: device.clone(),
            token: id,
            source,
        })?;
    // Moved, not copied: the buffer left behind is empty.
    Ok((Secret::new(std::mem::take(&mut *key)), slots))
}
