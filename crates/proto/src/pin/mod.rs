//! The clevis pin tree: tang, sss (nested to any depth), tpm2 and null.
//!
//! ```text
//!  encrypt(pin, config) ──► compact JWE    (EncryptIo fetches advertisements, seals in the TPM)
//!  Decryption::new(jwe) ──► requests() ─► caller POSTs them, concurrently
//!                           supply(id, reply) ──► status(): Pending | Done | Failed
//!                       └─► unseal_requests() ─► caller unseals them (Unseal), alongside
//!                           supply_unseal(id, unsealed)
//! ```

mod config;
mod describe;
mod null;
pub(crate) mod plan;
mod sss;
mod tang;
mod tpm2;

use rand_core::CryptoRng;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::jwe::Jwe;
use config::Config;

pub use describe::{describe, needs_network, tang_servers};
pub use plan::{Decryption, RecRequest, RequestId, Status, UnsealRequest};
pub use tpm2::{SealRequest, Sealed, Tpm2Binding, Unseal};

/// The side effects of encryption, supplied by the caller.
pub trait EncryptIo {
    /// GET `{url}/adv/` (or `/adv/{thp}`); returns the body.
    fn fetch_adv(&mut self, url: &str, thp: Option<&str>) -> Result<Vec<u8>, String>;
    /// Reads an advertisement file named in the config's `adv`.
    fn read_file(&mut self, path: &str) -> Result<Vec<u8>, String>;
    /// No `thp` and no `-y`: asks the operator to trust these S256 signing-key thumbprints
    /// for `url`.
    fn trust(&mut self, url: &str, thumbprints: &[String]) -> bool;
    /// Seals `req.data` in the TPM (the tpm2 pin). Without a TPM implementation, an error.
    fn tpm2_seal(&mut self, req: &SealRequest) -> Result<Sealed, String> {
        let _ = req;
        Err("this program was built without TPM support".into())
    }
}

/// `clevis encrypt PIN CONFIG [-y]` with CONFIG as the operator wrote it: returns the
/// compact JWE (no newline). sss makes its shares in the order of its `pins`, as clevis does.
pub fn encrypt_json<R: CryptoRng + ?Sized>(
    pin: &str,
    config: &str,
    plaintext: &[u8],
    yes: bool,
    io: &mut dyn EncryptIo,
    rng: &mut R,
) -> Result<String> {
    let config = Config::parse(config).map_err(|e| match e {
        Error::Json { reason, .. } => Error::Config {
            pin: pin.into(),
            reason: format!(
                "CONFIG is not JSON ({reason}); expected an object such as {}",
                example_config(pin)
            ),
        },
        other => other,
    })?;
    Ok(encrypt_jwe(pin, &config, plaintext, yes, io, rng)?.to_compact())
}

/// A CONFIG for `pin`, as the person typing one may need to see.
fn example_config(pin: &str) -> &'static str {
    match pin {
        "tang" => r#"{"url":"http://tang.example"}"#,
        "sss" => {
            r#"{"t":2,"pins":{"tang":[{"url":"http://a.example"},{"url":"http://b.example"}]}}"#
        }
        _ => "{}",
    }
}

/// [`encrypt_json`] with an already parsed CONFIG, whose objects come in sorted order.
pub fn encrypt<R: CryptoRng + ?Sized>(
    pin: &str,
    config: &Value,
    plaintext: &[u8],
    yes: bool,
    io: &mut dyn EncryptIo,
    rng: &mut R,
) -> Result<String> {
    let config = Config::from_value(config);
    Ok(encrypt_jwe(pin, &config, plaintext, yes, io, rng)?.to_compact())
}

pub(crate) fn encrypt_jwe<R: CryptoRng + ?Sized>(
    pin: &str,
    config: &Config,
    plaintext: &[u8],
    yes: bool,
    io: &mut dyn EncryptIo,
    rng: &mut R,
) -> Result<Jwe> {
    match pin {
        "tang" => tang::encrypt(&config.to_value(), plaintext, yes, io, rng),
        "sss" => sss::encrypt(config, plaintext, yes, io, rng),
        "null" => null::encrypt(&config.to_value(), plaintext, rng),
        "tpm2" => tpm2::encrypt(&config.to_value(), plaintext, io, rng),
        other => Err(Error::UnknownPin(other.into())),
    }
}
