//! The journal: what a multi-step header change records before its first
//! write, so that a re-run after a crash knows which keyslot was being added
//! and finishes or undoes it.
//!
//! ```text
//!   LUKS2: a token {"type":"latchkey-journal","keyslots":[], …record…}
//!   LUKS1: a LUKSMeta entry of type JOURNAL_UUID holding the record
//! ```
//!
//! clevis ignores both (it reads `clevis` tokens and entries of its own UUID
//! only), so a binding stays usable by clevis and by the agent while a journal
//! exists. The record never holds a secret: the new JWE is named by its
//! authentication tag, which is unique to one encryption.

use serde_json::{Map, Value, json};

/// The LUKS2 token type of a journal.
pub const TOKEN_TYPE: &str = "latchkey-journal";

/// The LUKSMeta type of a journal entry (a UUID of this project's own, as
/// luksmeta(8) asks of each kind of data).
pub const UUID: [u8; 16] = [
    0x6b, 0x3c, 0x2a, 0x51, 0x0e, 0x94, 0x4d, 0x2f, 0x9c, 0x61, 0x3e, 0xd8, 0x57, 0x10, 0xa4, 0xb9,
];

/// Which operation wrote the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A new binding on `keyslot`.
    Bind,
    /// Removing the binding of `keyslot`.
    Unbind,
    /// Replacing the binding of `keyslot` (regen, edit), through `temp`.
    Rebind,
}

impl Op {
    /// The name written in the record.
    pub fn name(self) -> &'static str {
        match self {
            Op::Bind => "bind",
            Op::Unbind => "unbind",
            Op::Rebind => "rebind",
        }
    }
}

/// Where a LUKS1 rebind stood when its entry was last written (LUKS2 reads
/// the same from its clevis token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The temporary keyslot is being added; undo by removing it.
    Stage,
    /// The binding has moved to the temporary keyslot; the target is being remade.
    Move,
    /// The target is bound again; the temporary keyslot is being removed.
    Clean,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Stage => "stage",
            Phase::Move => "move",
            Phase::Clean => "clean",
        }
    }
}

/// One journal record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Journal {
    /// The operation.
    pub op: Op,
    /// The keyslot the operation is about.
    pub keyslot: u32,
    /// The temporary keyslot of a rebind.
    pub temp: Option<u32>,
    /// LUKS2: the clevis token id the binding has, or will have.
    pub token: Option<u32>,
    /// The authentication tag (base64url) of the new JWE.
    pub jwe_tag: Option<String>,
    /// LUKS1 rebind: how far it got.
    pub phase: Option<Phase>,
    /// The pin of the new binding.
    pub pin: String,
    /// The config of the new binding, as given.
    pub config: String,
}

impl Journal {
    /// The record as JSON members (the LUKS2 token adds `type` and `keyslots`).
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("op".into(), json!(self.op.name()));
        m.insert("keyslot".into(), json!(self.keyslot.to_string()));
        if let Some(t) = self.temp {
            m.insert("temp".into(), json!(t.to_string()));
        }
        if let Some(t) = self.token {
            m.insert("token".into(), json!(t.to_string()));
        }
        if let Some(t) = &self.jwe_tag {
            m.insert("jwe_tag".into(), json!(t));
        }
        if let Some(p) = self.phase {
            m.insert("phase".into(), json!(p.name()));
        }
        m.insert("pin".into(), json!(self.pin));
        m.insert("config".into(), json!(self.config));
        Value::Object(m)
    }

    /// The LUKS2 token holding this record.
    pub fn to_token(&self) -> Value {
        let mut v = self.to_value();
        if let Value::Object(m) = &mut v {
            m.insert("type".into(), json!(TOKEN_TYPE));
            m.insert("keyslots".into(), json!([]));
        }
        v
    }

    /// Reads a record (from a token or a LUKSMeta entry); `None` if malformed.
    pub fn from_value(v: &Value) -> Option<Journal> {
        let num = |k: &str| -> Option<Option<u32>> {
            match v.get(k) {
                None => Some(None),
                Some(x) => Some(Some(x.as_str()?.parse().ok()?)),
            }
        };
        let op = match v.get("op")?.as_str()? {
            "bind" => Op::Bind,
            "unbind" => Op::Unbind,
            "rebind" => Op::Rebind,
            _ => return None,
        };
        let phase = match v.get("phase").map(Value::as_str) {
            None => None,
            Some(Some("stage")) => Some(Phase::Stage),
            Some(Some("move")) => Some(Phase::Move),
            Some(Some("clean")) => Some(Phase::Clean),
            Some(_) => return None,
        };
        Some(Journal {
            op,
            keyslot: num("keyslot")??,
            temp: num("temp")?,
            token: num("token")?,
            jwe_tag: match v.get("jwe_tag") {
                None => None,
                Some(t) => Some(t.as_str()?.to_owned()),
            },
            phase,
            pin: v.get("pin")?.as_str()?.to_owned(),
            config: v.get("config")?.as_str()?.to_owned(),
        })
    }

    /// The record as LUKSMeta entry data.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_value().to_string().into_bytes()
    }

    /// Reads LUKSMeta entry data.
    pub fn from_bytes(b: &[u8]) -> Option<Journal> {
        Journal::from_value(&serde_json::from_slice(b).ok()?)
    }

    /// One line for people: `an interrupted rebind of keyslot 1 (through keyslot 2)`.
    pub fn describe(&self) -> String {
        let through = self
            .temp
            .map(|t| format!(" (through keyslot {t})"))
            .unwrap_or_default();
        format!(
            "an interrupted {} of keyslot {}{through}",
            self.op.name(),
            self.keyslot
        )
    }
}

/// The authentication tag of a compact JWE (its last part).
pub fn jwe_tag(compact: &str) -> &str {
    compact.rsplit('.').next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_token_and_bytes() {
        let j = Journal {
            op: Op::Rebind,
            keyslot: 1,
            temp: Some(2),
            token: Some(0),
            jwe_tag: Some("tag".into()),
            phase: Some(Phase::Move),
            pin: "tang".into(),
            config: r#"{"url":"http://a"}"#.into(),
        };
        let t = j.to_token();
        assert_eq!(t["type"], TOKEN_TYPE);
        assert_eq!(t["keyslots"], json!([]));
        assert_eq!(Journal::from_value(&t), Some(j.clone()));
        assert_eq!(Journal::from_bytes(&j.to_bytes()), Some(j));
        assert_eq!(Journal::from_bytes(b"{\"op\":\"x\"}"), None);
        assert_eq!(jwe_tag("a..b.c.TAG"), "TAG");
    }
}
