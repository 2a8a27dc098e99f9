//! The tpm2 pin: a random A256GCM key sealed in the TPM, the JWE encrypted `dir` under it.
//!
//! The TPM work is the caller's ([`super::EncryptIo::tpm2_seal`] and [`Unseal`]); this
//! module knows the clevis side: the config, the `clevis.tpm2` header, the sealed JWK.
//!
//! ```text
//!  header: {"alg":"dir","enc":"A256GCM","clevis":{"pin":"tpm2","tpm2":{
//!            "hash","key",["pcr_bank","pcr_ids"],"jwk_pub","jwk_priv"}}}
//!  sealed: {"alg":"A256GCM","k":…,"key_ops":["encrypt","decrypt"],"kty":"oct"}\n
//! ```
//!
//! clevis-pin-tpm2 (the Rust rewrite that clevis runs when installed) adds authorized
//! policies (`policy_pubkey_path`, `policy_ref`, `policy_path`, pin `tpm2plus`): they need
//! a signed policy file from /boot and are refused with a message saying so.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use rand_core::CryptoRng;
use serde_json::{Map, Value, json};

use super::EncryptIo;
use crate::b64;
use crate::error::{Error, Result, invalid, missing, unsupported};
use crate::json;
use crate::jwe::Jwe;
use crate::jwk::Jwk;
use crate::secret::Secret;

const CFG: &str = "tpm2 pin config";
const WHAT: &str = "JWE";

/// Members of clevis-pin-tpm2's authorized policies, which this implementation refuses.
const AUTHORIZED_POLICY: [&str; 3] = ["policy_pubkey_path", "policy_ref", "policy_path"];

/// A clevis tpm2 binding, as its JWE header states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tpm2Binding {
    /// `hash`: the name algorithm of the primary and the sealed object (tpm2-tools name).
    pub hash: String,
    /// `key`: the primary's algorithm (`ecc`, `rsa`, ...).
    pub key: String,
    /// `pcr_bank`, when PCRs are bound.
    pub pcr_bank: Option<String>,
    /// `pcr_ids`; empty when no PCR policy binds the object.
    pub pcr_ids: Vec<u8>,
    /// `jwk_pub`: the sealed object's TPM2B_PUBLIC.
    pub jwk_pub: Vec<u8>,
    /// `jwk_priv`: its TPM2B_PRIVATE.
    pub jwk_priv: Vec<u8>,
}

impl Tpm2Binding {
    /// `tpm2 (sha256:0,7)`, or `tpm2 (no PCR policy)`: how messages name the binding.
    pub fn describe(&self) -> String {
        match &self.pcr_bank {
            Some(bank) if !self.pcr_ids.is_empty() => {
                format!("tpm2 ({bank}:{})", join_ids(&self.pcr_ids))
            }
            _ => "tpm2 (no PCR policy)".into(),
        }
    }
}

/// What to seal in the TPM for `clevis encrypt tpm2`.
pub struct SealRequest {
    /// Name algorithm of the primary and the object (`hash`, default `sha256`).
    pub hash: String,
    /// The primary's algorithm (`key`, default `ecc`).
    pub key: String,
    /// The PCR bank of the policy; `None` with PCRs: the TPM's first active bank.
    pub pcr_bank: Option<String>,
    /// PCRs the policy binds; empty: no policy (the object opens with an empty password).
    pub pcr_ids: Vec<u8>,
    /// `pcr_digest`: the PCR values to seal to (concatenated, as `tpm2_pcrread -o`
    /// writes them) instead of the current ones.
    pub pcr_digest: Option<Vec<u8>>,
    /// The bytes to seal: the JWK and a newline, as clevis seals it.
    pub data: Secret,
}

/// What sealing returns.
#[derive(Debug, Clone)]
pub struct Sealed {
    /// TPM2B_PUBLIC of the sealed object.
    pub jwk_pub: Vec<u8>,
    /// TPM2B_PRIVATE of the sealed object.
    pub jwk_priv: Vec<u8>,
    /// The PCR bank used, when PCRs are bound.
    pub pcr_bank: Option<String>,
}

/// Unseals the key of a tpm2 binding: the TPM step of a decryption, performed by whoever
/// owns the TPM (latchkey-tpm2). It may block up to `deadline`; once `stop` is set (the
/// decryption was decided without it) it gives up at its next step, cleaning up in the
/// TPM what it started there.
pub trait Unseal: Send + Sync {
    /// The unsealed bytes (a JWK, perhaps followed by a newline), or why not.
    fn unseal(
        &self,
        binding: &Tpm2Binding,
        deadline: Instant,
        stop: &AtomicBool,
    ) -> Result<Secret, String>;
}

fn join_ids(ids: &[u8]) -> String {
    ids.iter().map(u8::to_string).collect::<Vec<_>>().join(",")
}

/// PCR ids as clevis takes them: `"0,7"` (spaces ignored), `["0","7"]` or `[0,7]`.
/// Returns the ids and the text clevis writes into the header for them.
fn pcr_ids(v: &Value, what: &str, field: &str) -> Result<(Vec<u8>, String)> {
    let items: Vec<String> = match v {
        Value::String(s) => {
            let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
            if s.is_empty() {
                return Ok((Vec::new(), s));
            }
            s.split(',').map(String::from).collect()
        }
        Value::Array(a) => a
            .iter()
            .map(|x| match x {
                Value::String(s) => Some(s.trim().to_owned()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect::<Option<_>>()
            .ok_or_else(|| invalid(what, field, "not an array of PCR numbers"))?,
        _ => return Err(invalid(what, field, "neither a string nor an array")),
    };
    let ids = items
        .iter()
        .map(|s| s.parse::<u8>().ok().filter(|&i| i < 24))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| {
            invalid(
                what,
                field,
                format!("{:?}: PCRs are 0 to 23", items.join(",")),
            )
        })?;
    Ok((ids, items.join(",")))
}

fn opt_str<'a>(v: &'a Value, what: &str, field: &str) -> Result<Option<&'a str>> {
    match v.get(field) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(what, field, "not a string")),
    }
}

/// `clevis encrypt tpm2 CONFIG`.
pub(crate) fn encrypt<R: CryptoRng + ?Sized>(
    config: &Value,
    plaintext: &[u8],
    io: &mut dyn EncryptIo,
    rng: &mut R,
) -> Result<Jwe> {
    json::object(config, CFG)?;
    if let Some(f) = AUTHORIZED_POLICY.iter().find(|f| config.get(**f).is_some()) {
        return Err(Error::Config {
            pin: "tpm2".into(),
            reason: format!("{f}: authorized (signed) policies are not supported"),
        });
    }
    let hash = opt_str(config, CFG, "hash")?.unwrap_or("sha256");
    let key = opt_str(config, CFG, "key")?.unwrap_or("ecc");
    let pcr_bank = opt_str(config, CFG, "pcr_bank")?;
    let (ids, ids_text) = match config.get("pcr_ids") {
        None => (Vec::new(), String::new()),
        Some(v) => pcr_ids(v, CFG, "pcr_ids")?,
    };
    let pcr_digest = match opt_str(config, CFG, "pcr_digest")? {
        None => None,
        Some(_) if ids.is_empty() => {
            return Err(invalid(CFG, "pcr_digest", "given without pcr_ids"));
        }
        Some(d) => Some(b64::decode_named(d, "tpm2 pin config pcr_digest")?),
    };

    let mut k = vec![0u8; 32];
    rng.fill_bytes(&mut k);
    let k = Secret::new(k);
    let jwk = Jwk::from_oct(&k, "A256GCM", &["encrypt", "decrypt"]).to_private_json();
    // clevis feeds the JWK to tpm2_create from a here-string, which adds a newline.
    let mut data = jwk.expose().to_vec();
    data.push(b'\n');
    let req = SealRequest {
        hash: hash.into(),
        key: key.into(),
        pcr_bank: pcr_bank.map(String::from),
        pcr_ids: ids.clone(),
        pcr_digest,
        data: Secret::new(data),
    };
    let sealed = io.tpm2_seal(&req).map_err(|reason| Error::Tpm {
        binding: if ids.is_empty() {
            "tpm2 (no PCR policy)".into()
        } else {
            format!(
                "tpm2 ({}:{ids_text})",
                pcr_bank.unwrap_or("first active bank")
            )
        },
        reason,
    })?;
    let mut tpm2 = Map::new();
    tpm2.insert("hash".into(), hash.into());
    tpm2.insert("key".into(), key.into());
    if !ids.is_empty() {
        let bank = sealed
            .pcr_bank
            .clone()
            .or_else(|| pcr_bank.map(String::from))
            .ok_or_else(|| missing("TPM seal result", "pcr_bank"))?;
        tpm2.insert("pcr_bank".into(), bank.into());
        tpm2.insert("pcr_ids".into(), ids_text.into());
    }
    tpm2.insert("jwk_pub".into(), b64::encode(&sealed.jwk_pub).into());
    tpm2.insert("jwk_priv".into(), b64::encode(&sealed.jwk_priv).into());
    let header = json!({
        "alg": "dir",
        "enc": "A256GCM",
        "clevis": {"pin": "tpm2", "tpm2": Value::Object(tpm2)},
    });
    Jwe::encrypt(&header, &k, plaintext, rng)
}

/// A tpm2 leaf waiting for its unseal.
pub(crate) struct Leaf {
    pub(crate) jwe: Jwe,
    pub(crate) binding: Arc<Tpm2Binding>,
}

/// Reads `clevis.tpm2` as `clevis-decrypt-tpm2` does.
pub(crate) fn leaf(jwe: &Jwe) -> Result<Leaf> {
    let h = &jwe.header;
    let alg = json::req_str(h, WHAT, "alg")?;
    if alg != "dir" {
        return Err(unsupported(WHAT, "alg", alg));
    }
    let t = json::req(h, WHAT, "clevis.tpm2")?;
    json::object(t, "JWE clevis.tpm2")?;
    if let Some(f) = AUTHORIZED_POLICY.iter().find(|f| t.get(**f).is_some()) {
        return Err(unsupported(
            WHAT,
            &format!("clevis.tpm2.{f}"),
            "an authorized (signed) policy of clevis-pin-tpm2",
        ));
    }
    let s = |f: &str| json::req_str(h, WHAT, &format!("clevis.tpm2.{f}"));
    let blob = |f: &str| b64::decode_named(s(f)?, &format!("JWE clevis.tpm2.{f}"));
    let (pcr_ids, _) = match t.get("pcr_ids") {
        None => (Vec::new(), String::new()),
        Some(v) => pcr_ids(v, WHAT, "clevis.tpm2.pcr_ids")?,
    };
    let pcr_bank = if pcr_ids.is_empty() {
        None
    } else {
        Some(s("pcr_bank")?.to_owned())
    };
    Ok(Leaf {
        jwe: jwe.clone(),
        binding: Arc::new(Tpm2Binding {
            hash: s("hash")?.into(),
            key: s("key")?.into(),
            pcr_bank,
            pcr_ids,
            jwk_pub: blob("jwk_pub")?,
            jwk_priv: blob("jwk_priv")?,
        }),
    })
}

impl Leaf {
    /// Decrypts with the unsealed JWK (`jose jwe dec -k-` in clevis): an `oct` key,
    /// without the trailing newline clevis seals.
    pub(crate) fn finish(&self, unsealed: &Secret) -> Result<Secret> {
        let text = unsealed.expose();
        let end = text
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(0, |i| i + 1);
        let jwk = Jwk::parse(&text[..end]).map_err(|_| Error::Invalid {
            what: "unsealed key".into(),
            field: "document".into(),
            reason: "not a JWK".into(),
        })?;
        if jwk.kty() != "oct" {
            return Err(unsupported("unsealed key", "kty", jwk.kty()));
        }
        if let Some(alg) = jwk.alg().filter(|a| *a != "A256GCM") {
            return Err(unsupported("unsealed key", "alg", alg));
        }
        let k = jwk.k().ok_or_else(|| missing("unsealed key", "k"))?;
        self.jwe.decrypt(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcr_ids_as_clevis_takes_them() {
        let p = |v: Value| pcr_ids(&v, CFG, "pcr_ids");
        assert_eq!(p(json!("0, 7")).unwrap(), (vec![0, 7], "0,7".into()));
        assert_eq!(p(json!(["7", "0"])).unwrap(), (vec![7, 0], "7,0".into()));
        assert_eq!(p(json!([1, 2])).unwrap(), (vec![1, 2], "1,2".into()));
        assert_eq!(p(json!("")).unwrap(), (vec![], String::new()));
        for bad in [
            json!("24"),
            json!("a"),
            json!("1,,2"),
            json!([true]),
            json!(7),
        ] {
            assert!(p(bad).is_err());
        }
    }
}
