//! The keys in memory, with everything a request needs precomputed.
//!
//! A `KeySet` is built once per change of the key directory. It holds the
//! thumbprint index (S1, S224, S256, S384 and S512 of every key, active or
//! hidden), the signed default advertisement, and a lazily filled cache of the
//! advertisement for each `/adv/{thp}` signing key.
//!
//! Which key does what follows tang exactly:
//! * an active key allowing `sign` and `verify` is advertised and signs;
//! * else an active key allowing `deriveKey` is advertised only;
//! * `/adv/{thp}` accepts any key allowed to `sign`, hidden ones included;
//! * without an active signing key nothing is served (500), as tang's
//!   `read_keys` fails then.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use latchkey_proto::jwk::{Jwk, ThpHash};

use crate::keydir::Scan;
use crate::rng;

struct Entry {
    jwk: Jwk,
    name: String,
    hidden: bool,
    /// Signed advertisement for `/adv/{thp of this key}`; `None` if signing failed.
    adv: OnceLock<Option<Arc<[u8]>>>,
}

/// Why a request cannot be served from this key set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// No active signing key, or signing failed (tang: 500).
    Broken,
    /// No key with that thumbprint, or it cannot sign (404).
    NotFound,
}

pub struct KeySet {
    entries: Vec<Entry>,
    index: HashMap<String, usize>,
    payload: Vec<u8>,
    signers: Vec<usize>,
    /// The default advertisement; `None` if signing failed.
    default_adv: Option<Arc<[u8]>>,
}

impl KeySet {
    pub fn build(scan: Scan) -> KeySet {
        let entries: Vec<Entry> = scan
            .keys
            .into_iter()
            .map(|k| Entry {
                jwk: k.jwk,
                name: k.name,
                hidden: k.hidden,
                adv: OnceLock::new(),
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
        let mut signers = Vec::new();
        let mut advertised = Vec::new();
        for (i, e) in entries.iter().enumerate().filter(|(_, e)| !e.hidden) {
            if permits(&e.jwk, "sign") && permits(&e.jwk, "verify") {
                signers.push(i);
                advertised.push(i);
            } else if permits(&e.jwk, "deriveKey") {
                advertised.push(i);
            }
        }
        let keys: Vec<serde_json::Value> = advertised
            .iter()
            .map(|&i| entries[i].jwk.public().to_value())
            .collect();
        let payload = serde_json::to_vec(&serde_json::json!({ "keys": keys })).unwrap_or_default();
        let mut set = KeySet {
            entries,
            index,
            payload,
            signers,
            default_adv: None,
        };
        if !set.signers.is_empty() {
            set.default_adv = set.sign(None);
        }
        set
    }

    /// The active signing keys plus, for `/adv/{thp}`, the named one.
    fn sign(&self, extra: Option<usize>) -> Option<Arc<[u8]>> {
        let signers: Vec<&Jwk> = self
            .signers
            .iter()
            .chain(extra.as_ref())
            .map(|&i| &self.entries[i].jwk)
            .collect();
        latchkey_proto::jws::sign(&self.payload, &signers, &mut rng())
            .ok()
            .map(|s| Arc::from(s.into_bytes()))
    }

    /// tang serves nothing without an active signing key.
    pub fn usable(&self) -> bool {
        !self.signers.is_empty()
    }

    /// tang answers 404 when signing fails, 500 when there is nothing to sign with.
    pub fn default_adv(&self) -> Result<Arc<[u8]>, Unavailable> {
        if !self.usable() {
            return Err(Unavailable::Broken);
        }
        self.default_adv.clone().ok_or(Unavailable::NotFound)
    }

    /// The advertisement for `/adv/{thp}` if it was signed already; `Err(None)`
    /// means it needs [`KeySet::sign_adv_for`] (a millisecond of signing).
    pub fn cached_adv_for(&self, thp: &str) -> Result<Arc<[u8]>, Option<Unavailable>> {
        let i = self.signing_entry(thp).map_err(Some)?;
        match self.entries[i].adv.get() {
            Some(Some(adv)) => Ok(adv.clone()),
            Some(None) => Err(Some(Unavailable::NotFound)),
            None => Err(None),
        }
    }

    pub fn sign_adv_for(&self, thp: &str) -> Result<Arc<[u8]>, Unavailable> {
        let i = self.signing_entry(thp)?;
        self.entries[i]
            .adv
            .get_or_init(|| self.sign(Some(i)))
            .clone()
            .ok_or(Unavailable::NotFound)
    }

    fn signing_entry(&self, thp: &str) -> Result<usize, Unavailable> {
        if !self.usable() {
            return Err(Unavailable::Broken);
        }
        match self.index.get(thp) {
            Some(&i) if permits(&self.entries[i].jwk, "sign") => Ok(i),
            _ => Err(Unavailable::NotFound),
        }
    }

    /// Any key, active or hidden, by any of its five thumbprints.
    pub fn find(&self, thp: &str) -> Option<&Jwk> {
        self.index.get(thp).map(|&i| &self.entries[i].jwk)
    }

    /// S256 thumbprints of the advertised signing keys.
    pub fn signing_thumbprints(&self) -> Vec<String> {
        self.signers
            .iter()
            .map(|&i| self.entries[i].jwk.thumbprint(ThpHash::S256))
            .collect()
    }

    /// One line for the log: what is served now.
    pub fn describe(&self) -> String {
        let active: Vec<&str> = self
            .entries
            .iter()
            .filter(|e| !e.hidden)
            .map(|e| e.name.as_str())
            .collect();
        let hidden = self.entries.len() - active.len();
        let state = match (self.usable(), self.default_adv.is_some()) {
            (true, true) => "serving",
            (true, false) => "NOT serving (signing the advertisement failed)",
            (false, _) => "NOT serving (no active signing key)",
        };
        format!("keys: {state}; active {active:?}, {hidden} hidden")
    }
}

/// jose_jwk_prm(.., req = false, op), which tang uses to sort its keys: a key
/// that states no usage at all (no `key_ops`, no `use`) may do anything.
fn permits(jwk: &Jwk, op: &str) -> bool {
    !jwk.states_usage() || jwk.allows(op)
}

/// The current key set, swapped whole when the directory changes.
pub struct KeyStore(RwLock<Arc<KeySet>>);

impl KeyStore {
    pub fn new(set: KeySet) -> KeyStore {
        KeyStore(RwLock::new(Arc::new(set)))
    }

    pub fn current(&self) -> Arc<KeySet> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn replace(&self, set: KeySet) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
    }
}
