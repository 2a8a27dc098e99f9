//! JSON Web Keys (RFC 7517) as tang and clevis use them: EC on P-256/P-384/P-521 and `oct`.
//!
//! A [`Jwk`] keeps every public member it was given (so a key re-serializes as jose would,
//! sorted and complete) and holds the private `d`/`k` in a [`Secret`].

use rand_core::CryptoRng;
use serde_json::{Map, Value};
use sha1::Sha1;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};
use zeroize::Zeroize;

use crate::b64;
use crate::curve::{Curve, EcBackend, EcPoint, RustCrypto, random_scalar};
use crate::error::{Error, Result, invalid, unsupported};
use crate::json;
use crate::secret::Secret;

/// The RFC 7638 thumbprint hashes, by jose's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThpHash {
    /// SHA-1 (27 characters; older clevis kids).
    S1,
    /// SHA-224.
    S224,
    /// SHA-256 (43 characters; the default).
    S256,
    /// SHA-384.
    S384,
    /// SHA-512.
    S512,
}

impl ThpHash {
    /// All five, in the order tang tries them.
    pub const ALL: [ThpHash; 5] = [
        ThpHash::S1,
        ThpHash::S224,
        ThpHash::S256,
        ThpHash::S384,
        ThpHash::S512,
    ];

    /// jose's name (`S256`).
    pub fn name(self) -> &'static str {
        match self {
            ThpHash::S1 => "S1",
            ThpHash::S224 => "S224",
            ThpHash::S256 => "S256",
            ThpHash::S384 => "S384",
            ThpHash::S512 => "S512",
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            ThpHash::S1 => Sha1::digest(data).to_vec(),
            ThpHash::S224 => Sha224::digest(data).to_vec(),
            ThpHash::S256 => Sha256::digest(data).to_vec(),
            ThpHash::S384 => Sha384::digest(data).to_vec(),
            ThpHash::S512 => Sha512::digest(data).to_vec(),
        }
    }
}

#[derive(Clone)]
enum Material {
    Ec { point: EcPoint, d: Option<Secret> },
    Oct { k: Option<Secret> },
}

/// A JWK. Private material never shows in `Debug`.
#[derive(Clone)]
pub struct Jwk {
    /// Every member except `d` and `k`, as given.
    public: Map<String, Value>,
    material: Material,
}

impl core::fmt::Debug for Jwk {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Jwk")
            .field("kty", &self.kty())
            .field("crv", &self.curve().map(Curve::name))
            .field("alg", &self.alg())
            .field("private", &self.is_private())
            .finish()
    }
}

const WHAT: &str = "JWK";

/// Writes into a buffer of the right size, from the front.
struct Cursor<'a>(&'a mut [u8]);

impl<'a> Cursor<'a> {
    /// The next `n` bytes, to be filled by the caller.
    fn take(&mut self, n: usize) -> &'a mut [u8] {
        let (head, tail) = core::mem::take(&mut self.0).split_at_mut(n);
        self.0 = tail;
        head
    }

    fn put(&mut self, bytes: &[u8]) {
        self.take(bytes.len()).copy_from_slice(bytes);
    }
}

/// Wipes the text of the private members (`d`, `k`) of a JSON object.
fn wipe_private_members(v: &mut Value) {
    if let Some(obj) = v.as_object_mut() {
        for name in ["d", "k"] {
            if let Some(Value::String(s)) = obj.get_mut(name) {
                s.zeroize();
            }
        }
    }
}

/// The operations a private key may do that its public half cannot (jose's `jose_jwk_pub`).
const PRIVATE_OPS: [&str; 3] = ["sign", "decrypt", "unwrapKey"];

impl Jwk {
    /// Parses JWK text. The private member's text, which serde_json holds in a plain
    /// `String`, is wiped before the parsed JSON is dropped.
    pub fn parse(text: &[u8]) -> Result<Jwk> {
        let mut v = json::parse(text, WHAT)?;
        let jwk = Jwk::from_value(&v);
        wipe_private_members(&mut v);
        jwk
    }

    /// Builds a key from a JSON value. A caller whose value holds `d` or `k` should wipe
    /// it afterwards, as [`Jwk::parse`] does.
    pub fn from_value(v: &Value) -> Result<Jwk> {
        let obj = json::object(v, WHAT)?;
        let kty = json::req_str(v, WHAT, "kty")?;
        if let Some(a) = obj.get("alg") {
            a.as_str()
                .ok_or_else(|| json::expected(WHAT, "alg", "a string", a))?;
        }
        if let Some(ops) = obj.get("key_ops") {
            let ok = ops
                .as_array()
                .is_some_and(|a| a.iter().all(Value::is_string));
            if !ok {
                return Err(json::expected(WHAT, "key_ops", "an array of strings", ops));
            }
        }
        let private_name = match kty {
            "EC" => "d",
            "oct" => "k",
            other => return Err(unsupported(WHAT, "kty", other)),
        };
        // Never cloned, so no unwiped copy of the private member is made here.
        let public: Map<String, Value> = obj
            .iter()
            .filter(|(name, _)| name.as_str() != private_name)
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        let private = |name: &str| -> Result<Option<Secret>> {
            obj.get(name)
                .map(|_| b64::decode_secret(json::req_str(v, WHAT, name)?, &format!("JWK {name}")))
                .transpose()
        };
        let material = match kty {
            "EC" => {
                let crv_name = json::req_str(v, WHAT, "crv")?;
                let crv =
                    Curve::from_name(crv_name).ok_or_else(|| unsupported(WHAT, "crv", crv_name))?;
                let width = |name: &str, len: usize| -> Result<()> {
                    if len != crv.width() {
                        return Err(invalid(
                            WHAT,
                            name,
                            format!("{len} bytes, {} needs {}", crv.name(), crv.width()),
                        ));
                    }
                    Ok(())
                };
                let coord = |name: &str| -> Result<Vec<u8>> {
                    let bytes =
                        b64::decode_named(json::req_str(v, WHAT, name)?, &format!("JWK {name}"))?;
                    width(name, bytes.len())?;
                    Ok(bytes)
                };
                let point = EcPoint::new(crv, coord("x")?, coord("y")?)?;
                let d = private("d")?;
                if let Some(d) = &d {
                    width("d", d.len())?;
                }
                Material::Ec { point, d }
            }
            _ => Material::Oct { k: private("k")? },
        };
        Ok(Jwk { public, material })
    }

    /// The key as JSON, private members included. Serialize it with sorted keys to get what
    /// `jose jwk gen` writes. The private member is then a plain `String` that nothing
    /// wipes: for a private key's text, use [`Jwk::to_private_json`].
    pub fn to_value(&self) -> Value {
        let mut m = self.public.clone();
        match &self.material {
            Material::Ec { d: Some(d), .. } => {
                m.insert("d".into(), Value::String(b64::encode(d.expose())));
            }
            Material::Oct { k: Some(k) } => {
                m.insert("k".into(), Value::String(b64::encode(k.expose())));
            }
            _ => {}
        }
        Value::Object(m)
    }

    /// Sorted compact JSON of the full key (private members included), wiped on drop:
    /// the content of a tang key file, without its trailing newline. Written member by
    /// member into one buffer of the exact size, the private member encoded straight into
    /// it, so that no copy of it is left anywhere.
    pub fn to_private_json(&self) -> Secret {
        let (name, secret) = match &self.material {
            Material::Ec { d: Some(d), .. } => ("d", d),
            Material::Oct { k: Some(k) } => ("k", k),
            _ => {
                return Secret::new(
                    json::to_sorted(&Value::Object(self.public.clone())).into_bytes(),
                );
            }
        };
        // Sorted as serde_json sorts a map's keys (byte order); `public` has no `name`.
        let mut members: Vec<(&str, Option<String>)> = self
            .public
            .iter()
            .map(|(k, v)| (k.as_str(), Some(json::to_sorted(v))))
            .collect();
        let at = members.partition_point(|(k, _)| *k < name);
        members.insert(at, (name, None));
        let key_json = |k: &str| json::to_sorted(&Value::String(k.into()));
        let value_len = |v: &Option<String>| match v {
            Some(v) => v.len(),
            None => 2 + b64::encoded_len(secret.len()),
        };
        let len = 2
            + (members.len() - 1)
            + members
                .iter()
                .map(|(k, v)| key_json(k).len() + 1 + value_len(v))
                .sum::<usize>();
        let mut out = Secret::new(vec![0; len]);
        let mut w = Cursor(out.expose_mut());
        w.put(b"{");
        for (i, (k, v)) in members.iter().enumerate() {
            if i > 0 {
                w.put(b",");
            }
            w.put(key_json(k).as_bytes());
            w.put(b":");
            match v {
                Some(v) => w.put(v.as_bytes()),
                None => {
                    w.put(b"\"");
                    b64::encode_into(secret.expose(), w.take(b64::encoded_len(secret.len())));
                    w.put(b"\"");
                }
            }
        }
        w.put(b"}");
        debug_assert!(w.0.is_empty(), "to_private_json counted wrong");
        out
    }

    /// The public half: `d`/`k` dropped and private operations (`sign`, `decrypt`,
    /// `unwrapKey`) removed from `key_ops`, as `jose_jwk_pub` does (so tang's signing key
    /// advertises `["verify"]`).
    pub fn public(&self) -> Jwk {
        let mut public = self.public.clone();
        if let Some(Value::Array(ops)) = public.get_mut("key_ops") {
            ops.retain(|o| !o.as_str().is_some_and(|o| PRIVATE_OPS.contains(&o)));
        }
        let material = match &self.material {
            Material::Ec { point, .. } => Material::Ec {
                point: point.clone(),
                d: None,
            },
            Material::Oct { .. } => Material::Oct { k: None },
        };
        Jwk { public, material }
    }

    /// Drops the `alg` and `key_ops` members (clevis does this to the exchange key).
    pub fn without_alg_and_ops(&self) -> Jwk {
        let mut k = self.clone();
        k.public.remove("alg");
        k.public.remove("key_ops");
        k
    }

    /// The RFC 7638 thumbprint, base64url.
    pub fn thumbprint(&self, hash: ThpHash) -> String {
        b64::encode(&self.thumbprint_digest(hash))
    }

    /// The RFC 7638 thumbprint as the digest's bytes.
    pub fn thumbprint_digest(&self, hash: ThpHash) -> Vec<u8> {
        let mut m = Map::new();
        match &self.material {
            Material::Ec { .. } => {
                for name in ["crv", "kty", "x", "y"] {
                    m.insert(
                        name.into(),
                        self.public.get(name).cloned().unwrap_or(Value::Null),
                    );
                }
            }
            Material::Oct { k } => {
                m.insert("kty".into(), Value::String("oct".into()));
                if let Some(k) = k {
                    m.insert("k".into(), Value::String(b64::encode(k.expose())));
                }
            }
        }
        let mut v = Value::Object(m);
        let mut text = json::to_sorted(&v);
        let digest = hash.digest(text.as_bytes());
        // An oct key's thumbprint covers `k`.
        wipe_private_members(&mut v);
        text.zeroize();
        digest
    }

    /// True if any of the hashes in `hashes` gives `thp`.
    pub fn matches_thumbprint(&self, thp: &str, hashes: &[ThpHash]) -> bool {
        hashes.iter().any(|&h| self.thumbprint(h) == thp)
    }

    /// `kty`.
    pub fn kty(&self) -> &str {
        self.public.get("kty").and_then(Value::as_str).unwrap_or("")
    }

    /// `alg`, if present.
    pub fn alg(&self) -> Option<&str> {
        self.public.get("alg").and_then(Value::as_str)
    }

    /// `key_ops`, if present.
    pub fn key_ops(&self) -> Option<Vec<String>> {
        let ops = self.public.get("key_ops")?.as_array()?;
        Some(
            ops.iter()
                .filter_map(|o| o.as_str().map(String::from))
                .collect(),
        )
    }

    /// Whether `key_ops` or `use` explicitly allow `op` (jose's `jose_jwk_prm` with
    /// `req = true`: a key that states no usage allows nothing, which is how clevis picks
    /// the `verify` and `deriveKey` keys of an advertisement).
    pub fn allows(&self, op: &str) -> bool {
        let by_ops = self
            .key_ops()
            .is_some_and(|ops| ops.iter().any(|o| o == op));
        let by_use = match self.public.get("use").and_then(Value::as_str) {
            Some("sig") => matches!(op, "sign" | "verify"),
            Some("enc") => matches!(
                op,
                "encrypt" | "decrypt" | "wrapKey" | "unwrapKey" | "deriveKey" | "deriveBits"
            ),
            _ => false,
        };
        by_ops || by_use
    }

    /// Whether the key states any usage restriction (`key_ops` or `use`).
    pub fn states_usage(&self) -> bool {
        self.public.contains_key("key_ops") || self.public.contains_key("use")
    }

    /// The curve of an EC key.
    pub fn curve(&self) -> Option<Curve> {
        self.point().map(|p| p.crv)
    }

    /// The public point of an EC key.
    pub fn point(&self) -> Option<&EcPoint> {
        match &self.material {
            Material::Ec { point, .. } => Some(point),
            Material::Oct { .. } => None,
        }
    }

    /// The private scalar `d` of an EC key.
    pub fn d(&self) -> Option<&Secret> {
        match &self.material {
            Material::Ec { d, .. } => d.as_ref(),
            Material::Oct { .. } => None,
        }
    }

    /// The symmetric key `k` of an `oct` key.
    pub fn k(&self) -> Option<&Secret> {
        match &self.material {
            Material::Oct { k } => k.as_ref(),
            Material::Ec { .. } => None,
        }
    }

    /// Whether the key holds private material.
    pub fn is_private(&self) -> bool {
        self.d().is_some() || self.k().is_some()
    }

    /// A new EC key: `{"alg", "crv", "d", "key_ops", "kty":"EC", "x", "y"}` as `jose jwk gen`
    /// makes them (tangd: `ES512` with `["sign","verify"]`, `ECMR` with `["deriveKey"]`).
    pub fn generate<R: CryptoRng + ?Sized>(
        crv: Curve,
        alg: &str,
        key_ops: &[&str],
        rng: &mut R,
    ) -> Jwk {
        let d = random_scalar(crv, rng);
        // A fresh scalar in [1, n) always gives a valid non-identity point.
        let point = RustCrypto.mul_base(crv, &d).expect("d·G of a valid scalar");
        let mut jwk = Jwk::from_point(&point);
        jwk.public.insert("alg".into(), Value::String(alg.into()));
        let ops = key_ops.iter().map(|o| Value::String((*o).into())).collect();
        jwk.public.insert("key_ops".into(), Value::Array(ops));
        jwk.material = Material::Ec { point, d: Some(d) };
        jwk
    }

    /// The bare public JWK `{"crv","kty":"EC","x","y"}` of a point.
    pub fn from_point(point: &EcPoint) -> Jwk {
        let mut m = Map::new();
        m.insert("crv".into(), Value::String(point.crv.name().into()));
        m.insert("kty".into(), Value::String("EC".into()));
        m.insert("x".into(), Value::String(b64::encode(&point.x)));
        m.insert("y".into(), Value::String(b64::encode(&point.y)));
        Jwk {
            public: m,
            material: Material::Ec {
                point: point.clone(),
                d: None,
            },
        }
    }

    /// A symmetric key `{"alg","k","key_ops","kty":"oct"}` (the null pin's A256GCM key).
    pub fn from_oct(k: &Secret, alg: &str, key_ops: &[&str]) -> Jwk {
        let mut m = Map::new();
        m.insert("alg".into(), Value::String(alg.into()));
        let ops = key_ops.iter().map(|o| Value::String((*o).into())).collect();
        m.insert("key_ops".into(), Value::Array(ops));
        m.insert("kty".into(), Value::String("oct".into()));
        Jwk {
            public: m,
            material: Material::Oct { k: Some(k.clone()) },
        }
    }

    /// The point, or an error naming what is missing (for EC-only operations).
    pub(crate) fn require_point(&self, what: &str) -> Result<&EcPoint> {
        self.point().ok_or_else(|| Error::Unsupported {
            what: what.into(),
            field: "kty".into(),
            value: self.kty().into(),
        })
    }

    /// The private scalar, or `KeyUse`.
    pub(crate) fn require_d(&self, op: &str) -> Result<&Secret> {
        self.d()
            .ok_or_else(|| Error::KeyUse(format!("{op} (no private key d)")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_sys::wipecheck::Watch;

    #[test]
    fn private_json_is_what_jose_writes() {
        let mut rng = latchkey_sys::rng::os();
        let keys = [
            Jwk::parse(ECMR.as_bytes()).unwrap(),
            Jwk::generate(Curve::P256, "ES256", &["sign", "verify"], &mut rng),
            Jwk::from_oct(&Secret::from_slice(&[7; 32]), "A256GCM", &["encrypt"]),
            Jwk::parse(ECMR.as_bytes()).unwrap().public(),
        ];
        for k in keys {
            let text = k.to_private_json();
            assert_eq!(text.expose(), json::to_sorted(&k.to_value()).as_bytes());
            let back = Jwk::parse(text.expose()).unwrap();
            assert!(back.to_private_json().ct_eq(&text));
        }
        assert_eq!(
            Jwk::parse(ECMR.as_bytes())
                .unwrap()
                .to_private_json()
                .expose(),
            ECMR.as_bytes()
        );
    }

    #[test]
    fn private_key_text_leaves_no_copy_in_freed_memory() {
        let key = Jwk::generate(
            Curve::P521,
            "ECMR",
            &["deriveKey"],
            &mut latchkey_sys::rng::os(),
        );
        let text = key.to_private_json();
        let d = key.d().unwrap().expose().to_vec();
        let d_b64 = b64::encode(&d);
        // A d of the wrong width and one that is not base64: the error paths.
        let short = String::from_utf8(text.expose().to_vec())
            .unwrap()
            .replace(&d_b64, &d_b64[..84]);
        let broken = String::from_utf8(text.expose().to_vec())
            .unwrap()
            .replace(&d_b64, &format!("{}!", &d_b64[..87]));
        for needle in [&d[..32], &d_b64.as_bytes()[..32]] {
            let watch = Watch::new(needle);
            let parsed = Jwk::parse(text.expose()).unwrap();
            assert!(parsed.to_private_json().ct_eq(&text));
            assert_eq!(
                parsed.thumbprint(ThpHash::S256),
                key.thumbprint(ThpHash::S256)
            );
            drop(parsed);
            assert!(Jwk::parse(short.as_bytes()).is_err());
            assert!(Jwk::parse(broken.as_bytes()).is_err());
            assert_eq!(watch.freed_copies(), 0, "freed blocks held d");
        }
    }

    const ECMR: &str = r#"{"alg":"ECMR","crv":"P-521","d":"AfDeiyfq4l7Du-M25g4VSw9MxNbI82CzLN9zCgiYuEYFS7gr1tzktmYI-koQ58BYK_8mRh1CxNoIQwRbNUrpoWvy","key_ops":["deriveKey"],"kty":"EC","x":"AGcCtIRgCKuSvxZOfvOluSj2IdF9rdKeeErnxDRsGKp7yU5vyWY4N8Z9z-YTYx_X65gcAmZnUlcFEHjE7iSUS5aC","y":"AOeBqgDtp88rWlGfnHF79CJVfytrkLoUHVefDY7CRYlP2aR_p2lUpNFOmkjJW6swoOMy2K9Pqkzvp_cBwz_sp2BR"}"#;

    #[test]
    fn thumbprints_of_the_tang_db_exchange_key() {
        let k = Jwk::parse(ECMR.as_bytes()).unwrap();
        assert_eq!(
            k.thumbprint(ThpHash::S256),
            "Hk_gGBVF5MTLuXfJvfnQYraEqI_SWT33ykzPmp6Ejrw"
        );
        assert_eq!(k.thumbprint(ThpHash::S1), "0C-N825zucXqVFZnZV8ftjbmDIs");
        let lens: Vec<usize> = ThpHash::ALL
            .iter()
            .map(|&h| k.thumbprint(h).len())
            .collect();
        assert_eq!(lens, [27, 38, 43, 64, 86]);
        // alg and key_ops do not take part
        assert_eq!(
            k.public().without_alg_and_ops().thumbprint(ThpHash::S256),
            k.thumbprint(ThpHash::S256)
        );
    }

    #[test]
    fn round_trip_and_public() {
        let k = Jwk::parse(ECMR.as_bytes()).unwrap();
        assert_eq!(json::to_sorted(&k.to_value()), ECMR);
        assert!(k.is_private() && k.allows("deriveKey") && !k.allows("sign"));
        let p = k.public();
        assert!(!p.is_private());
        assert!(!json::to_sorted(&p.to_value()).contains("\"d\""));
        assert!(!format!("{k:?}").contains("AfDe"));
    }

    #[test]
    fn public_drops_private_ops() {
        let mut rng = latchkey_sys::rng::os();
        let k = Jwk::generate(Curve::P521, "ES512", &["sign", "verify"], &mut rng);
        assert_eq!(k.public().key_ops().unwrap(), ["verify"]);
        assert_eq!(k.d().unwrap().len(), 66);
    }

    #[test]
    fn errors_name_the_field() {
        let e = Jwk::parse(br#"{"kty":"EC","crv":"P-521","x":"AA"}"#).unwrap_err();
        assert!(e.to_string().contains("x"), "{e}");
        let e = Jwk::parse(br#"{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}"#).unwrap_err();
        assert!(e.to_string().contains("has an invalid x"), "{e}");
        let e = Jwk::parse(br#"{"kty":"RSA"}"#).unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }), "{e}");
        let e = Jwk::parse(br#"{"kty":"EC","crv":"P-192"}"#).unwrap_err();
        assert!(e.to_string().contains("P-192"), "{e}");
        let e = Jwk::parse(br#"{"crv":"P-521"}"#).unwrap_err();
        assert_eq!(e.to_string(), "JWK has no kty");
    }
}
