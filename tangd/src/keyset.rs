//! The keys in memory, with everything a request needs precomputed.
//!
//! A `KeySet` is built from one read of the key directory. It holds every key
//! file read (the thumbprint index: S1, S224, S256, S384 and S512 of each key,
//! active or hidden) and the [`Advert`] that `/adv` serves: the payload, its
//! signers, the signed default advertisement and a lazily filled cache of the
//! advertisement for each `/adv/{thp}` signing key. An `Advert` whose payload
//! and signers did not change is carried over to the next key set, signatures
//! and all.
//!
//! Which key does what follows tang exactly:
//! * an active key allowing `sign` and `verify` is advertised and signs;
//! * else an active key allowing `deriveKey` is advertised only;
//! * `/adv/{thp}` accepts any key allowed to `sign`, hidden ones included;
//! * without an advertisement nothing is served (500), as tang's `read_keys`
//!   fails without an active signing key.
//!
//! tangd is stricter in one point: an advertisement needs an exchange key as
//! well. A signing key alone is what a rotation half done looks like, and
//! clients bound to it could never recover.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use latchkey_proto::jwk::{Jwk, ThpHash};

use crate::keydir::Scan;

struct Entry {
    jwk: Jwk,
    name: String,
    hidden: bool,
}

/// Why a request cannot be served from this key set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// No advertisement (tang: no active signing key, 500).
    Broken,
    /// No key with that thumbprint, it cannot sign, or signing failed (404).
    NotFound,
}

/// Whether a read of the directory can be advertised as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// At least one active signing key and one active exchange key.
    Complete,
    /// No active key file at all: tang creates a pair.
    NoActive,
    /// Active keys, but no signing key or no exchange key among them.
    Partial { signing: bool, exchange: bool },
}

/// A signed advertisement, made once; `None` inside if signing failed.
type SignedOnce = Arc<OnceLock<Option<Arc<[u8]>>>>;

/// What `/adv` serves: a payload and the keys that sign it.
pub struct Advert {
    payload: Vec<u8>,
    signers: Vec<Jwk>,
    /// S256 thumbprints of the advertised keys.
    advertised: Vec<String>,
    /// The default advertisement; `None` if signing failed.
    signed: Option<Arc<[u8]>>,
    /// `/adv/{thp}` by the S256 thumbprint of the extra signer.
    per_key: Mutex<HashMap<String, SignedOnce>>,
}

impl Advert {
    fn new(payload: Vec<u8>, signers: Vec<Jwk>, advertised: Vec<String>) -> Advert {
        let mut adv = Advert {
            payload,
            signers,
            advertised,
            signed: None,
            per_key: Mutex::new(HashMap::new()),
        };
        adv.signed = adv.sign(None);
        adv
    }

    fn sign(&self, extra: Option<&Jwk>) -> Option<Arc<[u8]>> {
        let signers: Vec<&Jwk> = self.signers.iter().chain(extra).collect();
        latchkey_proto::jws::sign(&self.payload, &signers, &mut latchkey_sys::rng::os())
            .ok()
            .map(|s| Arc::from(s.into_bytes()))
    }

    fn same(&self, payload: &[u8], signers: &[String]) -> bool {
        self.payload == payload && self.signer_thumbprints() == signers
    }

    fn signer_thumbprints(&self) -> Vec<String> {
        self.signers
            .iter()
            .map(|k| k.thumbprint(ThpHash::S256))
            .collect()
    }

    fn slot(&self, key: &Jwk) -> SignedOnce {
        let mut m = self.per_key.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(key.thumbprint(ThpHash::S256)).or_default().clone()
    }
}

pub struct KeySet {
    entries: Vec<Entry>,
    index: HashMap<String, usize>,
    adv: Option<Arc<Advert>>,
    /// Said in the log line: why this set advertises what it does.
    note: Option<String>,
}

impl KeySet {
    /// Every key of `scan`, and no advertisement yet.
    pub fn from_scan(scan: Scan) -> KeySet {
        let entries: Vec<Entry> = scan
            .keys
            .into_iter()
            .map(|k| Entry {
                jwk: k.jwk,
                name: k.name,
                hidden: k.hidden,
            })
            .collect();
        let mut index = HashMap::new();
        // Active keys first, as tang searches them first.
        let order = entries
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.hidden)
            .chain(entries.iter().enumerate().filter(|(_, e)| e.hidden));
        for (i, e) in order {
            for h in ThpHash::ALL {
                index.entry(e.jwk.thumbprint(h)).or_insert(i);
            }
        }
        KeySet {
            entries,
            index,
            adv: None,
            note: None,
        }
    }

    /// A key set that serves nothing (the directory could not be read).
    pub fn empty() -> KeySet {
        KeySet::from_scan(Scan::default())
    }

    /// No key file at all, hidden or not.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn active(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| !e.hidden)
    }

    pub fn shape(&self) -> Shape {
        if self.active().next().is_none() {
            return Shape::NoActive;
        }
        let signing = self.active().any(|e| signs(&e.jwk));
        // As clevis picks it from the advertisement: a key that says it may derive keys.
        let exchange = self.active().any(|e| e.jwk.allows("deriveKey"));
        if signing && exchange {
            Shape::Complete
        } else {
            Shape::Partial { signing, exchange }
        }
    }

    /// Advertises the active keys, reusing `previous`'s signatures when it
    /// advertised the same keys with the same signers.
    pub fn advertise_own(&mut self, previous: Option<&KeySet>) {
        let mut signers = Vec::new();
        let mut advertised = Vec::new();
        for e in self.active() {
            if signs(&e.jwk) {
                signers.push(e.jwk.clone());
                advertised.push(&e.jwk);
            } else if permits(&e.jwk, "deriveKey") {
                advertised.push(&e.jwk);
            }
        }
        let keys: Vec<serde_json::Value> =
            advertised.iter().map(|k| k.public().to_value()).collect();
        let payload = serde_json::to_vec(&serde_json::json!({ "keys": keys })).unwrap_or_default();
        let thps: Vec<String> = advertised
            .iter()
            .map(|k| k.thumbprint(ThpHash::S256))
            .collect();
        let signer_thps: Vec<String> = signers
            .iter()
            .map(|k| k.thumbprint(ThpHash::S256))
            .collect();
        self.adv = match previous.and_then(|p| p.adv.as_ref()) {
            Some(prev) if prev.same(&payload, &signer_thps) => Some(prev.clone()),
            _ => Some(Arc::new(Advert::new(payload, signers, thps))),
        };
    }

    /// Keeps advertising what `previous` advertised, if every key of it is
    /// still in the directory (hidden counts: it still recovers). Returns
    /// whether it could.
    pub fn advertise_previous(&mut self, previous: &KeySet, note: String) -> bool {
        let Some(prev) = previous.adv.as_ref() else {
            return false;
        };
        if !prev.advertised.iter().all(|t| self.index.contains_key(t)) {
            return false;
        }
        self.adv = Some(prev.clone());
        self.note = Some(note);
        true
    }

    /// Says in the log line why nothing is advertised.
    pub fn set_note(&mut self, note: String) {
        self.note = Some(note);
    }

    /// Whether there is an advertisement; without one tang answers 500.
    pub fn usable(&self) -> bool {
        self.adv.is_some()
    }

    /// tang answers 404 when signing fails, 500 when there is nothing to sign with.
    pub fn default_adv(&self) -> Result<Arc<[u8]>, Unavailable> {
        let adv = self.adv.as_ref().ok_or(Unavailable::Broken)?;
        adv.signed.clone().ok_or(Unavailable::NotFound)
    }

    /// The advertisement for `/adv/{thp}` if it was signed already; `Err(None)`
    /// means it needs [`KeySet::sign_adv_for`] (a millisecond of signing).
    pub fn cached_adv_for(&self, thp: &str) -> Result<Arc<[u8]>, Option<Unavailable>> {
        let (adv, key) = self.signing_entry(thp).map_err(Some)?;
        match adv.slot(key).get() {
            Some(Some(signed)) => Ok(signed.clone()),
            Some(None) => Err(Some(Unavailable::NotFound)),
            None => Err(None),
        }
    }

    pub fn sign_adv_for(&self, thp: &str) -> Result<Arc<[u8]>, Unavailable> {
        let (adv, key) = self.signing_entry(thp)?;
        adv.slot(key)
            .get_or_init(|| adv.sign(Some(key)))
            .clone()
            .ok_or(Unavailable::NotFound)
    }

    fn signing_entry(&self, thp: &str) -> Result<(&Advert, &Jwk), Unavailable> {
        let adv = self.adv.as_deref().ok_or(Unavailable::Broken)?;
        match self.find(thp) {
            Some(k) if permits(k, "sign") => Ok((adv, k)),
            _ => Err(Unavailable::NotFound),
        }
    }

    /// Any key in the directory, active or hidden, by any of its five thumbprints.
    pub fn find(&self, thp: &str) -> Option<&Jwk> {
        self.index.get(thp).map(|&i| &self.entries[i].jwk)
    }

    /// S256 thumbprints of the advertised signing keys.
    pub fn signing_thumbprints(&self) -> Vec<String> {
        self.adv
            .as_ref()
            .map(|a| a.signer_thumbprints())
            .unwrap_or_default()
    }

    /// One line for the log: what is served now.
    pub fn describe(&self) -> String {
        let active: Vec<&str> = self.active().map(|e| e.name.as_str()).collect();
        let hidden = self.entries.len() - active.len();
        let state = match &self.adv {
            Some(a) if a.signed.is_some() => "serving",
            Some(_) => "NOT serving (signing the advertisement failed)",
            None => "NOT serving",
        };
        let note = self
            .note
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        format!("keys: {state}{note}; active {active:?}, {hidden} hidden")
    }
}

/// tang's signing keys: allowed to `sign` and to `verify`.
fn signs(jwk: &Jwk) -> bool {
    permits(jwk, "sign") && permits(jwk, "verify")
}

/// jose_jwk_prm(.., req = false, op), which tang uses to sort its keys: a key
/// that states no usage at all (no `key_ops`, no `use`) may do anything.
fn permits(jwk: &Jwk, op: &str) -> bool {
    !jwk.states_usage() || jwk.allows(op)
}
