//! The null pin (testing only): the A256GCM key is in the header itself, or absent when the
//! JWE was made with `{"fail":true}`.

use rand_core::CryptoRng;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::json;
use crate::jwe::Jwe;
use crate::jwk::Jwk;
use crate::secret::Secret;

/// `clevis encrypt null CONFIG`.
pub(crate) fn encrypt<R: CryptoRng + ?Sized>(
    config: &Value,
    plaintext: &[u8],
    rng: &mut R,
) -> Result<Jwe> {
    let fail = match config.get("fail") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => return Err(json::expected("null pin config", "fail", "a boolean", v)),
    };
    let mut k = vec![0u8; 32];
    rng.fill_bytes(&mut k);
    let k = Secret::new(k);
    let body = if fail {
        json!({})
    } else {
        json!({ "jwk": Jwk::from_oct(&k, "A256GCM", &["encrypt", "decrypt"]).to_value() })
    };
    let header = json!({"alg": "dir", "enc": "A256GCM", "clevis": {"pin": "null", "null": body}});
    Jwe::encrypt(&header, &k, plaintext, rng)
}

/// Decrypts a null-pin JWE.
pub(crate) fn decrypt(jwe: &Jwe) -> Result<Secret> {
    let Some(jwk) = jwe.header.pointer("/clevis/null/jwk") else {
        return Err(Error::NullFail);
    };
    let jwk = Jwk::from_value(jwk)?;
    let k = jwk
        .k()
        .ok_or_else(|| crate::error::missing("JWE", "clevis.null.jwk.k"))?;
    jwe.decrypt(k)
}
