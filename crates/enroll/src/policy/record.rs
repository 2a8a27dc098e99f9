//! What the header says about the policy besides clevis bindings: the
//! request ([`Record`]) and which keyslot belongs to the local key (the
//! marker).
//!
//! ```text
//!   LUKS2: token {"type":"latchkey-nbde","keyslots":["R"],"mode":…,"tang":[…],"threshold":…}
//!          token {"type":"latchkey-local-key","keyslots":["L"]}
//!   LUKS1: LUKSMeta entry R of RECORD_UUID holding {"mode":…,"tang":[…],"threshold":…}
//!          LUKSMeta entry L of LOCAL_UUID holding {"type":"latchkey-local-key"}
//! ```
//!
//! R is the keyslot the recovery secret opens (it never changes with the
//! policy), L the local key's. clevis reads only `clevis` tokens and entries
//! of its own UUID, and finds no token of its type above either keyslot, so
//! it lists neither; the agent reads clevis bindings only. A marker lets
//! `apply` remove the local key's keyslot even when the key file is gone
//! (someone who copied it could still open the disk otherwise).

use std::io::{Read, Seek};

use latchkey_luks::{Header, Version};
use serde_json::{Value, json};

use super::{Invalid, Mode, majority};
use crate::inventory::Store;

/// LUKS2 token type of the record.
pub const RECORD_TOKEN: &str = "latchkey-nbde";
/// LUKS2 token type of the local key's marker.
pub const LOCAL_TOKEN: &str = "latchkey-local-key";
/// LUKSMeta type of the record (a UUID of this project's own).
pub const RECORD_UUID: [u8; 16] = [
    0xf5, 0x3e, 0xb0, 0x33, 0xd0, 0xcf, 0x42, 0x75, 0xa2, 0x68, 0xfb, 0xbe, 0xa9, 0x4c, 0x5f, 0xd0,
];
/// LUKSMeta type of the local key's marker.
pub const LOCAL_UUID: [u8; 16] = [
    0x14, 0x8b, 0xaa, 0xfb, 0x1e, 0x74, 0x4f, 0x19, 0xb0, 0x9f, 0x39, 0xfa, 0x57, 0xbf, 0x92, 0xb8,
];

/// The most Tang servers a policy names (each is one share and one request
/// at boot; a LUKS2 token holds 32 KiB of JSON at most by default).
pub const MAX_SERVERS: usize = 16;

/// What `apply` was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The mode.
    pub mode: Mode,
    /// The healthy Tang servers the cluster named, in its order.
    pub tang: Vec<String>,
    /// t: 1 for tang, the quorum's for quorum, none for degraded.
    pub threshold: Option<u32>,
}

impl Record {
    /// The policy for `mode` (`None`: automatic, by the number of servers) over
    /// `tang`, with `threshold` for a quorum (default a majority). A
    /// threshold with a mode other than quorum is refused; with the automatic
    /// mode it applies only if that comes out as quorum.
    pub fn choose(
        mode: Option<Mode>,
        tang: &[String],
        threshold: Option<u32>,
    ) -> Result<Record, Invalid> {
        if tang.len() > MAX_SERVERS {
            return Err(Invalid(format!(
                "{} Tang servers given; at most {MAX_SERVERS}",
                tang.len()
            )));
        }
        for (i, u) in tang.iter().enumerate() {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(Invalid(format!(
                    "--tang {u:?}: expected an http:// or https:// URL"
                )));
            }
            if tang[..i].contains(u) {
                return Err(Invalid(format!("--tang {u} is given twice")));
            }
        }
        let explicit = mode.is_some();
        let mode = mode.unwrap_or_else(|| Mode::auto(tang.len()));
        let n = tang.len();
        let threshold = match mode {
            Mode::Degraded | Mode::Tang if explicit && threshold.is_some() => {
                return Err(Invalid(format!(
                    "--threshold applies to quorum mode, not {mode}"
                )));
            }
            Mode::Degraded => None,
            Mode::Tang | Mode::Quorum if n == 0 => {
                return Err(Invalid(format!(
                    "{mode} mode needs at least one --tang URL"
                )));
            }
            Mode::Tang => Some(1),
            Mode::Quorum => {
                let t = threshold.unwrap_or_else(|| majority(n));
                if t == 0 || t as usize > n {
                    return Err(Invalid(format!(
                        "--threshold {t}: a quorum of {n} Tang server{} needs 1 to {n}",
                        if n == 1 { "" } else { "s" }
                    )));
                }
                Some(t)
            }
        };
        Ok(Record {
            mode,
            tang: tang.to_vec(),
            threshold,
        })
    }

    /// `quorum, t=3 of 4 Tang servers` / `degraded`.
    pub fn describe(&self) -> String {
        match (self.mode, self.threshold) {
            (Mode::Degraded, _) => "degraded (local boot key)".into(),
            (m, Some(t)) => format!("{m}, t={t} of {} Tang servers", self.tang.len()),
            (m, None) => m.to_string(),
        }
    }

    /// The record's own members.
    pub fn to_value(&self) -> Value {
        json!({"mode": self.mode.name(), "tang": self.tang, "threshold": self.threshold})
    }

    /// The LUKS2 token, beside recovery keyslot `recovery`.
    pub fn to_token(&self, recovery: u32) -> Value {
        let mut v = self.to_value();
        v["type"] = json!(RECORD_TOKEN);
        v["keyslots"] = json!([recovery.to_string()]);
        v
    }

    /// Reads a record (a token or a LUKSMeta entry's JSON); `None` if malformed.
    pub fn from_value(v: &Value) -> Option<Record> {
        let tang = v
            .get("tang")?
            .as_array()?
            .iter()
            .map(|u| u.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()?;
        let threshold = match v.get("threshold") {
            None | Some(Value::Null) => None,
            Some(t) => Some(u32::try_from(t.as_u64()?).ok()?),
        };
        Some(Record {
            mode: Mode::parse(v.get("mode")?.as_str()?)?,
            tang,
            threshold,
        })
    }
}

/// The LUKS2 token of the local key's marker for keyslot `slot`.
pub fn marker_token(slot: u32) -> Value {
    json!({"type": LOCAL_TOKEN, "keyslots": [slot.to_string()]})
}

/// The LUKSMeta data of a local key's marker.
pub const MARKER_DATA: &[u8] = br#"{"type":"latchkey-local-key"}"#;

/// A record found in the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Where it is.
    pub at: Store,
    /// The keyslot it stands beside (the recovery keyslot), if it names one.
    pub keyslot: Option<u32>,
    /// Its content; `None` if it cannot be read.
    pub record: Option<Record>,
}

/// A local key marker found in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    /// Where it is.
    pub at: Store,
    /// The keyslot it marks, if that keyslot is active (else the marker is stale).
    pub keyslot: Option<u32>,
}

/// The records in `hdr` (normally one), LUKSMeta data read from `dev`.
pub fn records<R: Read + Seek>(hdr: &Header, dev: &mut R) -> Vec<Found> {
    match hdr.version() {
        Version::Luks2 => hdr
            .tokens()
            .iter()
            .filter(|t| t.kind == RECORD_TOKEN)
            .map(|t| Found {
                at: Store::Token(t.id),
                keyslot: t.keyslots.first().copied(),
                record: Record::from_value(&t.json),
            })
            .collect(),
        Version::Luks1 => luksmeta_entries(hdr, RECORD_UUID)
            .into_iter()
            .map(|i| Found {
                at: Store::LuksMeta(i),
                keyslot: Some(i),
                record: hdr
                    .luksmeta()
                    .and_then(|lm| lm.read_data(dev, i as usize).ok())
                    .and_then(|d| serde_json::from_slice(&d).ok())
                    .and_then(|v| Record::from_value(&v)),
            })
            .collect(),
    }
}

/// The local key markers in `hdr`.
pub fn markers(hdr: &Header) -> Vec<Marker> {
    let active = |s: u32| hdr.keyslot(s).is_some();
    match hdr.version() {
        Version::Luks2 => hdr
            .tokens()
            .iter()
            .filter(|t| t.kind == LOCAL_TOKEN)
            .map(|t| Marker {
                at: Store::Token(t.id),
                keyslot: t.keyslots.first().copied().filter(|&s| active(s)),
            })
            .collect(),
        Version::Luks1 => luksmeta_entries(hdr, LOCAL_UUID)
            .into_iter()
            .map(|i| Marker {
                at: Store::LuksMeta(i),
                keyslot: Some(i).filter(|&s| active(s)),
            })
            .collect(),
    }
}

fn luksmeta_entries(hdr: &Header, uuid: [u8; 16]) -> Vec<u32> {
    hdr.luksmeta()
        .map(|lm| {
            (0..lm.entries.len() as u32)
                .filter(|&i| lm.entries[i as usize].uuid == uuid)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("http://tang{i}:7500")).collect()
    }

    #[test]
    fn choose_follows_the_production_policy() {
        let m = |n| Record::choose(None, &urls(n), None).unwrap();
        assert_eq!(m(0).mode, Mode::Degraded);
        assert_eq!(m(2).mode, Mode::Degraded);
        assert_eq!(m(2).threshold, None);
        assert_eq!((m(3).mode, m(3).threshold), (Mode::Tang, Some(1)));
        assert_eq!((m(4).mode, m(4).threshold), (Mode::Quorum, Some(3)));
        assert_eq!((m(5).mode, m(5).threshold), (Mode::Quorum, Some(3)));
        assert_eq!((m(6).mode, m(6).threshold), (Mode::Quorum, Some(4)));
        let r = Record::choose(None, &urls(5), Some(2)).unwrap();
        assert_eq!(r.threshold, Some(2));
        // The automatic mode takes a threshold only when it comes out as quorum.
        assert_eq!(
            Record::choose(None, &urls(2), Some(2)).unwrap().mode,
            Mode::Degraded
        );
        let r = Record::choose(Some(Mode::Quorum), &urls(2), None).unwrap();
        assert_eq!(r.threshold, Some(2));
        let r = Record::choose(Some(Mode::Tang), &urls(1), None).unwrap();
        assert_eq!((r.mode, r.threshold), (Mode::Tang, Some(1)));
    }

    #[test]
    fn choose_refuses_what_cannot_be_a_policy() {
        let e = |m, u: &[String], t| Record::choose(m, u, t).unwrap_err().0;
        assert!(e(None, &urls(4), Some(5)).contains("needs 1 to 4"));
        assert!(e(None, &urls(4), Some(0)).contains("needs 1 to 4"));
        assert!(e(Some(Mode::Tang), &urls(3), Some(2)).contains("quorum mode, not tang"));
        assert!(e(Some(Mode::Quorum), &[], None).contains("at least one"));
        assert!(e(Some(Mode::Tang), &[], None).contains("at least one"));
        let twice = vec!["http://a".to_string(), "http://a".to_string()];
        assert!(e(None, &twice, None).contains("given twice"));
        assert!(e(None, &["tang.example".to_string()], None).contains("http://"));
        assert!(e(None, &urls(MAX_SERVERS + 1), None).contains("at most"));
    }

    #[test]
    fn record_round_trips() {
        let r = Record::choose(None, &urls(4), None).unwrap();
        let t = r.to_token(0);
        assert_eq!(t["type"], RECORD_TOKEN);
        assert_eq!(t["keyslots"], json!(["0"]));
        assert_eq!(Record::from_value(&t), Some(r.clone()));
        assert_eq!(Record::from_value(&r.to_value()), Some(r));
        let d = Record::choose(None, &[], None).unwrap();
        assert_eq!(Record::from_value(&d.to_value()), Some(d));
        assert_eq!(Record::from_value(&json!({"mode": "x", "tang": []})), None);
        assert_eq!(
            serde_json::from_slice::<Value>(MARKER_DATA).unwrap()["type"],
            LOCAL_TOKEN
        );
        assert_eq!(marker_token(3)["keyslots"], json!(["3"]));
    }
}
