//! The Tang side: a request code in, an answer code out, through tang's own `/rec`
//! exchange (over HTTP, or straight from a key directory).

use super::{AnswerCode, RecoveryError, RequestCode};
use crate::curve::{Curve, EcBackend, RustCrypto};
use crate::jwk::{Jwk, ThpHash};
use crate::tang;

/// A key `/rec` would use for an exchange: EC, allows `deriveKey`, `alg` ECMR or none.
fn is_exchange_key(k: &Jwk) -> bool {
    k.point().is_some() && k.allows("deriveKey") && k.alg().is_none_or(|a| a == "ECMR")
}

impl RequestCode {
    /// The `/rec/{kid}` body for X, as clevis would send it.
    pub fn rec_body(&self) -> Vec<u8> {
        tang::request_body(self.point())
    }

    /// The exchange key among `keys` that the code's key tag names. `server` (a URL or
    /// a key directory) is for the message when none or several match.
    pub fn resolve<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a Jwk>,
        server: &str,
    ) -> Result<&'a Jwk, RecoveryError> {
        let found: Vec<&Jwk> = keys
            .into_iter()
            .filter(|k| is_exchange_key(k) && self.names_key(k))
            .collect();
        match found.as_slice() {
            [one] => Ok(one),
            [] => Err(RecoveryError::UnknownKey {
                server: server.into(),
            }),
            many => Err(RecoveryError::AmbiguousKey {
                server: server.into(),
                candidates: many.iter().map(|k| k.thumbprint(ThpHash::S256)).collect(),
            }),
        }
    }

    /// The answer code from a `/rec` reply body (checked as clevis checks it: an EC point
    /// of P-521, on the curve).
    pub fn answer_from_reply(&self, reply: &[u8]) -> Result<AnswerCode, RecoveryError> {
        let y = tang::parse_reply(reply, Curve::P521)
            .map_err(|e| RecoveryError::Exchange(format!("unusable reply: {e}")))?;
        RustCrypto
            .validate(&y)
            .map_err(|e| RecoveryError::Exchange(format!("unusable reply: {e}")))?;
        Ok(AnswerCode::new(&y, self))
    }
}

/// Answers a request code from a key database (`keys`: every key, hidden ones included)
/// with tang's `/rec` handler, [`tang::rec`]. The key is the one the code's tag names,
/// or `kid` (any of the five thumbprints) when given. `server` names the database in
/// messages.
pub fn answer_from_keys(
    code: &RequestCode,
    keys: &[Jwk],
    kid: Option<&str>,
    server: &str,
    backend: &dyn EcBackend,
) -> Result<AnswerCode, RecoveryError> {
    let kid = match kid {
        Some(kid) => {
            tang::find_key(keys, kid).ok_or_else(|| RecoveryError::UnknownKid {
                server: server.into(),
                kid: kid.into(),
            })?;
            kid.to_owned()
        }
        None => code.resolve(keys, server)?.thumbprint(ThpHash::S256),
    };
    let reply = tang::rec(keys, &kid, &code.rec_body(), backend)
        .map_err(|e| RecoveryError::Exchange(e.to_string()))?;
    code.answer_from_reply(&reply)
}
