//! JWS in the JSON serializations, as Tang advertisements use them.
//!
//! Tang answers `GET /adv` with a flattened JWS (one signing key) or a general one (several,
//! or `/adv/{thp}`), ECDSA with raw `R‖S` signatures. What counts as verified is what clevis
//! checks (`jose jws ver -a` over the payload's `verify` keys): every key of the payload that
//! allows `verify` must validate at least one signature, and there must be such a key.
//! Signatures by keys that are not in the payload are ignored, which is how a rotated key
//! vouches for its successor in `adv-tang-db-rot-by-rotated-sig-thp.json`.

use rand_core::CryptoRng;
use serde_json::{Map, Value};

use crate::b64;
use crate::curve::Curve;
use crate::error::{Error, Result, missing};
use crate::json;
use crate::jwk::{Jwk, ThpHash};

/// A verified advertisement.
#[derive(Debug, Clone)]
pub struct Advertisement {
    /// The decoded payload bytes, `{"keys":[…]}` as the server wrote them.
    pub payload: Vec<u8>,
    /// The payload's keys in their order.
    pub keys: Vec<Jwk>,
}

impl Advertisement {
    /// The payload as JSON (what clevis stores in `clevis.tang.adv`).
    pub fn payload_value(&self) -> Value {
        // verify_advertisement already parsed it.
        serde_json::from_slice(&self.payload).unwrap_or(Value::Null)
    }

    /// Keys that allow `deriveKey`: the ECMR exchange keys.
    pub fn exchange_keys(&self) -> Vec<&Jwk> {
        self.keys.iter().filter(|k| k.allows("deriveKey")).collect()
    }

    /// Keys that allow `verify`: the signing keys, each of which signed the advertisement.
    pub fn signing_keys(&self) -> Vec<&Jwk> {
        self.keys.iter().filter(|k| k.allows("verify")).collect()
    }

    /// The key with this thumbprint under any of S1…S512.
    pub fn find_by_thumbprint(&self, thp: &str) -> Option<&Jwk> {
        self.keys
            .iter()
            .find(|k| k.matches_thumbprint(thp, &ThpHash::ALL))
    }
}

const WHAT: &str = "JWS";

struct Sig {
    alg: String,
    signing_input: Vec<u8>,
    signature: Vec<u8>,
}

fn parse_sig(obj: &Value, payload_b64: &str, what: &str) -> Result<Sig> {
    let protected = json::req_str(obj, what, "protected")?;
    let header = json::parse(
        &b64::decode_named(protected, "JWS protected header")?,
        "JWS protected header",
    )?;
    json::object(&header, "JWS protected header")?;
    let alg = match json::get(&header, "alg").or_else(|| json::get(obj, "header.alg")) {
        Some(Value::String(a)) => a.clone(),
        Some(v) => return Err(json::expected(what, "alg", "a string", v)),
        None => return Err(missing(what, "alg")),
    };
    let signature = b64::decode_named(json::req_str(obj, what, "signature")?, "JWS signature")?;
    let signing_input = format!("{protected}.{payload_b64}").into_bytes();
    Ok(Sig {
        alg,
        signing_input,
        signature,
    })
}

fn alg_curve(alg: &str) -> Option<Curve> {
    Curve::ALL.into_iter().find(|c| c.jws_alg() == alg)
}

/// Whether `sig` verifies with `key` (EC key of the algorithm's curve, `alg` compatible).
fn verifies(key: &Jwk, sig: &Sig) -> bool {
    let Some(point) = key.point() else {
        return false;
    };
    if alg_curve(&sig.alg) != Some(point.crv) || key.alg().is_some_and(|a| a != sig.alg) {
        return false;
    }
    use ::p256::ecdsa::signature::Verifier as _;
    let sec1 = point.to_sec1();
    macro_rules! check {
        ($m:ident) => {{
            let Ok(vk) = ::$m::ecdsa::VerifyingKey::from_sec1_bytes(&sec1) else {
                return false;
            };
            let Ok(s) = ::$m::ecdsa::Signature::from_slice(&sig.signature) else {
                return false;
            };
            vk.verify(&sig.signing_input, &s).is_ok()
        }};
    }
    match point.crv {
        Curve::P256 => check!(p256),
        Curve::P384 => check!(p384),
        Curve::P521 => check!(p521),
    }
}

/// Verifies a Tang advertisement (flattened or general JWS JSON) and returns its keys.
pub fn verify_advertisement(body: &[u8]) -> Result<Advertisement> {
    let jws = json::parse(body, WHAT)?;
    json::object(&jws, WHAT)?;
    let payload_b64 = json::req_str(&jws, WHAT, "payload")?;
    let sigs = match jws.get("signatures") {
        Some(Value::Array(list)) => list
            .iter()
            .map(|s| parse_sig(s, payload_b64, "JWS signature"))
            .collect::<Result<Vec<_>>>()?,
        Some(v) => return Err(json::expected(WHAT, "signatures", "an array", v)),
        None => vec![parse_sig(&jws, payload_b64, WHAT)?],
    };
    if sigs.is_empty() {
        return Err(missing(WHAT, "signatures"));
    }
    let payload = b64::decode_named(payload_b64, "JWS payload")?;
    let pv = json::parse(&payload, "advertisement payload")?;
    let keys = match json::req(&pv, "advertisement payload", "keys")? {
        Value::Array(list) => list
            .iter()
            .map(Jwk::from_value)
            .collect::<Result<Vec<_>>>()?,
        v => {
            return Err(json::expected(
                "advertisement payload",
                "keys",
                "an array",
                v,
            ));
        }
    };
    let adv = Advertisement { payload, keys };
    let verify_keys = adv.signing_keys();
    if verify_keys.is_empty() {
        return Err(Error::BadSignature(
            "the payload has no key allowed to verify".into(),
        ));
    }
    for key in verify_keys {
        if !sigs.iter().any(|s| verifies(key, s)) {
            return Err(Error::BadSignature(format!(
                "key {} signed nothing",
                key.thumbprint(ThpHash::S256)
            )));
        }
    }
    Ok(adv)
}

/// Signs `payload` with each signer: one signer gives a flattened JWS, several a general
/// one. Protected header `{"alg":"ES512","cty":"jwk-set+json"}` (alg from each key's curve),
/// raw `R‖S` signatures, sorted compact JSON.
pub fn sign<R: CryptoRng + ?Sized>(
    payload: &[u8],
    signers: &[&Jwk],
    rng: &mut R,
) -> Result<String> {
    if signers.is_empty() {
        return Err(Error::KeyUse("sign (no signing key given)".into()));
    }
    let payload_b64 = b64::encode(payload);
    let mut sigs = Vec::with_capacity(signers.len());
    for key in signers {
        if key.states_usage() && !key.allows("sign") {
            return Err(Error::KeyUse("sign (key_ops lacks sign)".into()));
        }
        let point = key.require_point("JWS signing key")?;
        let d = key.require_d("sign")?;
        let alg = point.crv.jws_alg();
        if key.alg().is_some_and(|a| a != alg) {
            return Err(Error::KeyUse(format!(
                "sign with {alg} (key alg is {:?})",
                key.alg()
            )));
        }
        let protected =
            b64::encode(format!(r#"{{"alg":"{alg}","cty":"jwk-set+json"}}"#).as_bytes());
        let input = format!("{protected}.{payload_b64}");
        use ::p256::ecdsa::signature::RandomizedSigner as _;
        macro_rules! sign_with {
            ($m:ident) => {{
                let sk = ::$m::ecdsa::SigningKey::from_slice(d.expose())
                    .map_err(|_| Error::InvalidScalar("not a valid signing key".into()))?;
                let s: ::$m::ecdsa::Signature = sk.sign_with_rng(rng, input.as_bytes());
                s.to_bytes().to_vec()
            }};
        }
        let raw = match point.crv {
            Curve::P256 => sign_with!(p256),
            Curve::P384 => sign_with!(p384),
            Curve::P521 => sign_with!(p521),
        };
        let mut m = Map::new();
        m.insert("protected".into(), Value::String(protected));
        m.insert("signature".into(), Value::String(b64::encode(&raw)));
        sigs.push(m);
    }
    let mut out = Map::new();
    out.insert("payload".into(), Value::String(payload_b64));
    if sigs.len() == 1 {
        out.extend(sigs.pop().into_iter().flatten());
    } else {
        out.insert(
            "signatures".into(),
            Value::Array(sigs.into_iter().map(Value::Object).collect()),
        );
    }
    Ok(json::to_sorted(&Value::Object(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_then_verify_all_curves() {
        let mut rng = latchkey_sys::rng::os();
        for crv in Curve::ALL {
            let k = Jwk::generate(crv, crv.jws_alg(), &["sign", "verify"], &mut rng);
            let x = Jwk::generate(crv, "ECMR", &["deriveKey"], &mut rng);
            let payload = format!(
                r#"{{"keys":[{},{}]}}"#,
                json::to_sorted(&k.public().to_value()),
                json::to_sorted(&x.public().to_value())
            );
            let body = sign(payload.as_bytes(), &[&k], &mut rng).unwrap();
            let adv = verify_advertisement(body.as_bytes()).unwrap();
            assert_eq!(adv.exchange_keys().len(), 1);
            assert_eq!(adv.signing_keys().len(), 1);
            // two signers -> general
            let body2 = sign(payload.as_bytes(), &[&k, &k], &mut rng).unwrap();
            assert!(body2.contains("\"signatures\""));
            verify_advertisement(body2.as_bytes()).unwrap();
            // a signature by a key outside the payload does not count
            let other = Jwk::generate(crv, crv.jws_alg(), &["sign", "verify"], &mut rng);
            let body3 = sign(payload.as_bytes(), &[&other], &mut rng).unwrap();
            assert!(matches!(
                verify_advertisement(body3.as_bytes()),
                Err(Error::BadSignature(_))
            ));
        }
    }

    #[test]
    fn es512_signature_is_raw_132_bytes() {
        let mut rng = latchkey_sys::rng::os();
        let k = Jwk::generate(Curve::P521, "ES512", &["sign", "verify"], &mut rng);
        let body = sign(b"{}", &[&k], &mut rng).unwrap();
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v["protected"],
            "eyJhbGciOiJFUzUxMiIsImN0eSI6Imp3ay1zZXQranNvbiJ9"
        );
        assert_eq!(
            b64::decode(v["signature"].as_str().unwrap()).unwrap().len(),
            132
        );
    }
}
