//! The tang pin: encryption against a verified advertisement, and the decryption leaf that
//! becomes one `/rec` request.

use std::sync::Arc;

use rand_core::CryptoRng;
use serde_json::{Value, json};

use super::EncryptIo;
use crate::curve::{EcPoint, RustCrypto};
use crate::error::{Error, Result, missing, unsupported};
use crate::json;
use crate::jwe::{Jwe, ecdh_es_cek};
use crate::jwk::{Jwk, ThpHash};
use crate::jws::{self, Advertisement};
use crate::secret::Secret;
use crate::tang::{self, Blinding};

const CFG: &str = "tang pin config";

/// Where the advertisement comes from, and whether it is trusted already.
fn advertisement(
    config: &Value,
    url: &str,
    thp: Option<&str>,
    io: &mut dyn EncryptIo,
) -> Result<(Vec<u8>, bool)> {
    match config.get("adv") {
        Some(Value::Object(_)) => Ok((json::to_sorted(&config["adv"]).into_bytes(), true)),
        Some(Value::String(path)) => {
            let body = io.read_file(path).map_err(|reason| Error::Io {
                what: format!("{CFG} adv"),
                reason,
            })?;
            Ok((body, true))
        }
        Some(v) => Err(json::expected(
            CFG,
            "adv",
            "an advertisement (an object) or the name of a file holding one",
            v,
        )),
        None => {
            let what = format!("{url}/adv/{}", thp.unwrap_or(""));
            let body = io
                .fetch_adv(url, thp)
                .map_err(|reason| Error::Io { what, reason })?;
            Ok((body, false))
        }
    }
}

/// The trust step of `clevis encrypt tang`.
fn check_trust(
    adv: &Advertisement,
    url: &str,
    thp: Option<&str>,
    preloaded: bool,
    yes: bool,
    io: &mut dyn EncryptIo,
) -> Result<()> {
    let signers = adv.signing_keys();
    match thp {
        Some(thp) => {
            if !signers
                .iter()
                .any(|k| k.matches_thumbprint(thp, &[ThpHash::S256, ThpHash::S1]))
            {
                return Err(Error::Untrusted {
                    url: url.into(),
                    reason: format!("trusted JWK {thp} did not sign the advertisement"),
                });
            }
        }
        None if preloaded || yes => {}
        None => {
            let thps: Vec<String> = signers
                .iter()
                .map(|k| k.thumbprint(ThpHash::S256))
                .collect();
            if !io.trust(url, &thps) {
                return Err(Error::Untrusted {
                    url: url.into(),
                    reason: "the operator declined the signing keys".into(),
                });
            }
        }
    }
    Ok(())
}

/// `clevis encrypt tang CONFIG [-y]`.
pub(crate) fn encrypt<R: CryptoRng + ?Sized>(
    config: &Value,
    plaintext: &[u8],
    yes: bool,
    io: &mut dyn EncryptIo,
    rng: &mut R,
) -> Result<Jwe> {
    json::object(config, CFG)?;
    let url = json::req_str(config, CFG, "url")?;
    let thp = match config.get("thp") {
        None => None,
        Some(Value::String(t)) => Some(t.as_str()),
        Some(v) => return Err(json::expected(CFG, "thp", "a string", v)),
    };
    let (body, preloaded) = advertisement(config, url, thp, io)?;
    let adv = jws::verify_advertisement(&body).map_err(|e| {
        // Name where it came from: inside sss it is one of several.
        let from = match config.get("adv") {
            Some(Value::String(path)) => format!("the advertisement in {path}"),
            Some(_) => format!("{CFG} adv"),
            None => format!("the advertisement from {url}/adv/{}", thp.unwrap_or("")),
        };
        match e {
            Error::BadSignature(m) => Error::BadSignature(format!("{from}: {m}")),
            e => Error::Io {
                what: from,
                reason: format!("not a Tang advertisement (a JWS as GET /adv returns): {e}"),
            },
        }
    })?;
    check_trust(&adv, url, thp, preloaded, yes, io)?;
    let server = adv
        .exchange_keys()
        .first()
        .map(|k| k.without_alg_and_ops())
        .ok_or_else(|| {
            Error::KeyUse(format!(
                "deriveKey: the advertisement of {url} has no exchange key"
            ))
        })?;
    let kid = server.thumbprint(ThpHash::S256);
    let s = server.require_point("tang exchange key")?;
    let (c, z) = tang::encrypt_point(s, &RustCrypto, rng)?;
    let cek = ecdh_es_cek(&z);
    let header = json!({
        "alg": "ECDH-ES",
        "enc": "A256GCM",
        "clevis": {"pin": "tang", "tang": {"adv": adv.payload_value(), "url": url}},
        "epk": Jwk::from_point(&c).to_value(),
        "kid": kid,
    });
    Jwe::encrypt(&header, &cek, plaintext, rng)
}

/// A tang leaf waiting for its `/rec` reply.
pub(crate) struct Leaf {
    pub(crate) jwe: Jwe,
    pub(crate) url: String,
    /// The JWE's `kid` (S256 or S1 thumbprint of the server's exchange key).
    pub(crate) kid: String,
    pub(crate) rec_url: String,
    /// Shared with the request handed out, which may compute on other threads.
    pub(crate) blinding: Arc<Blinding>,
}

const WHAT: &str = "JWE";

/// Checks a tang JWE as `clevis-decrypt-tang` does and takes its blinding's e from
/// `ephemeral` (the multiplications wait until the request body or the reply needs them).
pub(crate) fn leaf(jwe: &Jwe, ephemeral: &mut super::plan::Ephemerals<'_>) -> Result<Leaf> {
    let h = &jwe.header;
    let alg = json::req_str(h, WHAT, "alg")?;
    if alg != "ECDH-ES" {
        return Err(unsupported(WHAT, "alg", alg));
    }
    let epk = Jwk::from_value(json::req(h, WHAT, "epk")?)?;
    let kid = json::req_str(h, WHAT, "kid")?;
    let adv = json::req(h, WHAT, "clevis.tang.adv")?;
    let url = json::req_str(h, WHAT, "clevis.tang.url")?;
    let keys = match adv.get("keys") {
        Some(Value::Array(keys)) => keys,
        Some(v) => return Err(json::expected(WHAT, "clevis.tang.adv.keys", "an array", v)),
        None => return Err(missing(WHAT, "clevis.tang.adv.keys")),
    };
    let keys = keys
        .iter()
        .map(Jwk::from_value)
        .collect::<Result<Vec<_>>>()?;
    let server = [ThpHash::S256, ThpHash::S1]
        .iter()
        .find_map(|&h| keys.iter().find(|k| k.thumbprint(h) == kid))
        .ok_or_else(|| Error::KidNotInAdvertisement(kid.into()))?;
    let c: &EcPoint = epk.require_point("JWE epk")?;
    let s = server.require_point("tang exchange key")?;
    let blinding = Blinding::with(c, s, ephemeral(c.crv)?, &RustCrypto)?;
    Ok(Leaf {
        jwe: jwe.clone(),
        url: url.into(),
        kid: kid.into(),
        rec_url: format!("{url}/rec/{kid}"),
        blinding: Arc::new(blinding),
    })
}

impl Leaf {
    /// Turns the server's reply into the plaintext of this JWE.
    pub(crate) fn finish(&self, reply: &[u8]) -> Result<Secret> {
        let z = self.blinding.unblind(reply, &RustCrypto)?;
        self.jwe.decrypt(&ecdh_es_cek(&z))
    }

    /// [`Leaf::finish`] with the reply as a point Y (a recovery answer code).
    pub(crate) fn finish_point(&self, y: &EcPoint) -> Result<Secret> {
        let z = self.blinding.unblind_point(y, &RustCrypto)?;
        self.jwe.decrypt(&ecdh_es_cek(&z))
    }
}
