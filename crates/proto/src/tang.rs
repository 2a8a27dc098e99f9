//! The McCallum-Relyea exchange: the client's blinding and the server's `/rec` reply.
//!
//! ```text
//!  encrypt (offline):  C = c·G (epk), K = c·S                  S = s·G: server ECMR key
//!  decrypt:            X = C + e·G ──POST /rec/{kid}──► Y = s·X
//!                      K = Y − e·S = s·C                 (tang::exchange / tang::rec)
//! ```
//!
//! K's x coordinate is the ECDH-ES shared secret Z of the tang pin.

use std::sync::OnceLock;

use rand_core::CryptoRng;
use serde_json::{Map, Value};

use crate::b64;
use crate::curve::{Curve, EcBackend, EcPoint, random_scalar};
use crate::error::{Error, Result, unsupported};
use crate::json;
use crate::jwk::{Jwk, ThpHash};
use crate::secret::Secret;

/// The Content-Type of `/rec` requests and replies (tang does not check it).
pub const REC_CONTENT_TYPE: &str = "application/jwk+json";

/// Why tang refuses a `/rec` request; [`ExchangeError::status`] is the HTTP status tang 11
/// gives for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    /// The body is not a JSON object (an empty body included). 400.
    #[error("request body is not a JSON object")]
    NotJson,
    /// The request JWK states `key_ops`/`use` that do not allow `deriveKey`. 403.
    #[error("request key does not allow deriveKey")]
    RequestKeyOps,
    /// `kty` missing or not `EC`, or `alg` present and not `ECMR`. 400.
    #[error("request key: {0}")]
    BadRequestKey(String),
    /// The key database is empty. 500.
    #[error("no keys")]
    NoKeys,
    /// No key (active or hidden) has this thumbprint under any hash. 404.
    #[error("no key with thumbprint {0}")]
    UnknownKid(String),
    /// The key named by the kid is not an ECMR exchange key with a private part. 403.
    #[error("key {0} cannot deriveKey")]
    NotExchangeKey(String),
    /// The request point is not on the server key's curve, or invalid. 400.
    #[error("exchange failed: {0}")]
    Exchange(String),
}

impl ExchangeError {
    /// The HTTP status tang answers with.
    pub fn status(&self) -> u16 {
        match self {
            ExchangeError::NotJson
            | ExchangeError::BadRequestKey(_)
            | ExchangeError::Exchange(_) => 400,
            ExchangeError::RequestKeyOps | ExchangeError::NotExchangeKey(_) => 403,
            ExchangeError::UnknownKid(_) => 404,
            ExchangeError::NoKeys => 500,
        }
    }
}

/// Checks the request as tang does before it looks at any key.
fn check_request(body: &[u8]) -> Result<Value, ExchangeError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| ExchangeError::NotJson)?;
    let obj = match &v {
        Value::Object(o) => o,
        // jansson accepts a top-level array; jose's permission check then fails on it.
        Value::Array(_) => return Err(ExchangeError::RequestKeyOps),
        _ => return Err(ExchangeError::NotJson),
    };
    // jose_jwk_prm(req = false): a key that states no usage may derive.
    let use_ = obj.get("use");
    let ops = obj.get("key_ops");
    if use_.is_some() || ops.is_some() {
        let by_ops = ops
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|o| o == "deriveKey"));
        let by_use = use_ == Some(&Value::String("enc".into()));
        let bad_types = use_.is_some_and(|u| !u.is_string()) || ops.is_some_and(|o| !o.is_array());
        if bad_types || !(by_ops || by_use) {
            return Err(ExchangeError::RequestKeyOps);
        }
    }
    match obj.get("kty") {
        Some(Value::String(k)) if k == "EC" => {}
        Some(Value::String(k)) => {
            return Err(ExchangeError::BadRequestKey(format!("kty {k:?} is not EC")));
        }
        _ => return Err(ExchangeError::BadRequestKey("no kty".into())),
    }
    match obj.get("alg") {
        None => {}
        Some(Value::String(a)) if a == "ECMR" => {}
        Some(a) => return Err(ExchangeError::BadRequestKey(format!("alg {a} is not ECMR"))),
    }
    Ok(v)
}

/// The key among `keys` (active and hidden) whose S1, S224, S256, S384 or S512 thumbprint
/// is `thp`, as tang looks up `/rec/{kid}` and `/adv/{thp}`.
pub fn find_key<'a>(keys: &'a [Jwk], thp: &str) -> Option<&'a Jwk> {
    keys.iter()
        .find(|k| k.matches_thumbprint(thp, &ThpHash::ALL))
}

/// tang's whole `POST /rec/{kid}` handler over a key database (`keys`: every key, active
/// and hidden), with tang's order of checks. Returns the reply body.
pub fn rec(
    keys: &[Jwk],
    kid: &str,
    body: &[u8],
    backend: &dyn EcBackend,
) -> Result<Vec<u8>, ExchangeError> {
    let request = check_request(body)?;
    if keys.is_empty() {
        return Err(ExchangeError::NoKeys);
    }
    let key = find_key(keys, kid).ok_or_else(|| ExchangeError::UnknownKid(kid.into()))?;
    exchange_checked(key, &request, backend)
}

/// The exchange with one server key: validates the request as tang does, then answers
/// `Y = s·X` as `{"alg":"ECMR","crv","key_ops":["deriveKey"],"kty":"EC","x","y"}`
/// (sorted compact, no newline).
pub fn exchange(
    server_key: &Jwk,
    request_body: &[u8],
    backend: &dyn EcBackend,
) -> Result<Vec<u8>, ExchangeError> {
    let request = check_request(request_body)?;
    exchange_checked(server_key, &request, backend)
}

fn exchange_checked(
    key: &Jwk,
    request: &Value,
    backend: &dyn EcBackend,
) -> Result<Vec<u8>, ExchangeError> {
    let thp = || key.thumbprint(ThpHash::S256);
    if !key.allows("deriveKey") || key.alg().is_some_and(|a| a != "ECMR") {
        return Err(ExchangeError::NotExchangeKey(thp()));
    }
    let (Some(s), Some(server)) = (key.d(), key.point()) else {
        return Err(ExchangeError::NotExchangeKey(thp()));
    };
    let x = Jwk::from_value(request).map_err(|e| ExchangeError::Exchange(e.to_string()))?;
    let x = x
        .point()
        .ok_or_else(|| ExchangeError::Exchange("not an EC key".into()))?;
    if x.crv != server.crv {
        return Err(ExchangeError::Exchange(format!(
            "request is on {}, the key on {}",
            x.crv.name(),
            server.crv.name()
        )));
    }
    let y = backend
        .mul(server.crv, s, x)
        .map_err(|e| ExchangeError::Exchange(e.to_string()))?;
    let mut reply = point_json(&y);
    reply.insert("alg".into(), Value::String("ECMR".into()));
    reply.insert(
        "key_ops".into(),
        Value::Array(vec![Value::String("deriveKey".into())]),
    );
    Ok(json::to_sorted(&Value::Object(reply)).into_bytes())
}

fn point_json(p: &EcPoint) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("crv".into(), Value::String(p.crv.name().into()));
    m.insert("kty".into(), Value::String("EC".into()));
    m.insert("x".into(), Value::String(b64::encode(&p.x)));
    m.insert("y".into(), Value::String(b64::encode(&p.y)));
    m
}

/// Encryption: draws c, returns `(C = c·G, Z)` where Z is the x coordinate of `K = c·S`.
pub fn encrypt_point<R: CryptoRng + ?Sized>(
    server: &EcPoint,
    backend: &dyn EcBackend,
    rng: &mut R,
) -> Result<(EcPoint, Secret)> {
    backend.validate(server)?;
    let c = random_scalar(server.crv, rng);
    let big_c = backend.mul_base(server.crv, &c)?;
    let k = backend.mul(server.crv, &c, server)?;
    Ok((big_c, Secret::from_slice(&k.x)))
}

/// The client's side of one exchange: the ephemeral e, the JWE's `epk` (C) and the server's
/// key (S). Its two scalar multiplications, `e·G` for the request and `e·S` for the reply,
/// are independent: each runs on the first call that needs it, on whichever thread makes
/// that call, and is kept. A caller with spare cores can compute `e·S` ([`Blinding::prepare`])
/// while the request body is built or the request is in flight.
pub struct Blinding {
    crv: Curve,
    e: Secret,
    epk: EcPoint,
    server: EcPoint,
    x: OnceLock<Result<EcPoint>>,
    es: OnceLock<Result<EcPoint>>,
}

/// The `/rec` request body for the point X: sorted compact
/// `{"alg":"ECMR","crv","kty":"EC","x","y"}` plus `\n`, byte for byte what clevis sends.
pub fn request_body(x: &EcPoint) -> Vec<u8> {
    let mut req = point_json(x);
    req.insert("alg".into(), Value::String("ECMR".into()));
    let mut body = json::to_sorted(&Value::Object(req)).into_bytes();
    body.push(b'\n');
    body
}

/// Reads a `/rec` reply as clevis does: `kty` EC, the curve `crv` of the request, a valid
/// point. Returns Y.
pub fn parse_reply(reply: &[u8], crv: Curve) -> Result<EcPoint> {
    const WHAT: &str = "tang reply";
    let v = json::parse(reply, WHAT)?;
    let kty = json::req_str(&v, WHAT, "kty")?;
    if kty != "EC" {
        return Err(unsupported(WHAT, "kty", kty));
    }
    let got = json::req_str(&v, WHAT, "crv")?;
    if got != crv.name() {
        return Err(Error::InvalidPoint(format!(
            "reply is on {got}, expected {}",
            crv.name()
        )));
    }
    let y = Jwk::from_value(&v)?;
    Ok(y.require_point(WHAT)?.clone())
}

/// Blinds the JWE's `epk` (C) with a fresh ephemeral e: returns the `/rec` request body
/// (`X = C + e·G` as sorted compact `{"alg":"ECMR","crv","kty","x","y"}` plus `\n`, byte for
/// byte what clevis sends) and the state to unblind the reply.
pub fn blind<R: CryptoRng + ?Sized>(
    epk: &EcPoint,
    server: &EcPoint,
    backend: &dyn EcBackend,
    rng: &mut R,
) -> Result<(Vec<u8>, Blinding)> {
    blind_with(epk, server, random_scalar(epk.crv, rng), backend)
}

/// [`blind`] with a given e (it must be fresh and uniformly random; this entry point exists
/// for test vectors).
pub fn blind_with(
    epk: &EcPoint,
    server: &EcPoint,
    e: Secret,
    backend: &dyn EcBackend,
) -> Result<(Vec<u8>, Blinding)> {
    let b = Blinding::with(epk, server, e, backend)?;
    Ok((b.body(backend)?, b))
}

impl Blinding {
    /// Checks both points and draws e; no multiplication yet.
    pub fn new<R: CryptoRng + ?Sized>(
        epk: &EcPoint,
        server: &EcPoint,
        backend: &dyn EcBackend,
        rng: &mut R,
    ) -> Result<Blinding> {
        Blinding::with(epk, server, random_scalar(epk.crv, rng), backend)
    }

    /// [`Blinding::new`] with a given e (one drawn earlier, e.g. kept in a recovery state
    /// file; it must have been fresh and uniformly random when drawn).
    pub fn with(
        epk: &EcPoint,
        server: &EcPoint,
        e: Secret,
        backend: &dyn EcBackend,
    ) -> Result<Blinding> {
        if epk.crv != server.crv {
            return Err(Error::InvalidPoint(format!(
                "epk is on {}, the server key on {}",
                epk.crv.name(),
                server.crv.name()
            )));
        }
        backend.validate(epk)?;
        backend.validate(server)?;
        Ok(Blinding {
            crv: epk.crv,
            e,
            epk: epk.clone(),
            server: server.clone(),
            x: OnceLock::new(),
            es: OnceLock::new(),
        })
    }

    /// The blinded request point `X = C + e·G` (computed on the first call).
    pub fn request_point(&self, backend: &dyn EcBackend) -> Result<EcPoint> {
        self.x
            .get_or_init(|| {
                let big_e = backend.mul_base(self.crv, &self.e)?;
                backend.add(&self.epk, &big_e)
            })
            .clone()
    }

    /// The `/rec` request body: [`request_body`] of [`Blinding::request_point`].
    pub fn body(&self, backend: &dyn EcBackend) -> Result<Vec<u8>> {
        Ok(request_body(&self.request_point(backend)?))
    }

    /// The server's exchange key S.
    pub fn server(&self) -> &EcPoint {
        &self.server
    }

    /// The ephemeral e, for a recovery state file that must outlive this process.
    pub(crate) fn ephemeral(&self) -> &Secret {
        &self.e
    }

    /// Computes `e·S` now, so that [`Blinding::unblind`] finds it ready.
    pub fn prepare(&self, backend: &dyn EcBackend) {
        self.es(backend);
    }

    fn es(&self, backend: &dyn EcBackend) -> &Result<EcPoint> {
        self.es
            .get_or_init(|| backend.mul(self.crv, &self.e, &self.server))
    }

    /// Checks the server's reply Y (`kty` EC, same curve, valid point) and returns Z, the x
    /// coordinate of `K = Y − e·S`.
    pub fn unblind(&self, reply: &[u8], backend: &dyn EcBackend) -> Result<Secret> {
        self.unblind_point(&parse_reply(reply, self.crv)?, backend)
    }

    /// [`Blinding::unblind`] of Y as a point (it must be on the request's curve). The
    /// subtraction of `e·S` is the backend's constant-time arithmetic.
    pub fn unblind_point(&self, y: &EcPoint, backend: &dyn EcBackend) -> Result<Secret> {
        if y.crv != self.crv {
            return Err(Error::InvalidPoint(format!(
                "reply is on {}, expected {}",
                y.crv.name(),
                self.crv.name()
            )));
        }
        let es = self.es(backend).as_ref().map_err(Clone::clone)?;
        let k = backend.sub(y, es)?;
        Ok(Secret::from_slice(&k.x))
    }
}
