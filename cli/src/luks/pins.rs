//! The pins at the edge: Tang client options for the `luks` commands, and (in
//! the companion) what a binding session needs to encrypt and decrypt: Tang
//! servers and the TPM, as `latchkey encrypt` and `decrypt` reach them.

use std::time::Duration;

use latchkey_client::Options;
use latchkey_proto::Secret;
use latchkey_proto::jwe::Jwe;

/// One Tang request may take 10 s, a whole recovery 30 s, as `latchkey decrypt`.
pub fn options() -> Options {
    crate::decrypt::tang_options(Duration::from_secs(10), Duration::from_secs(30), 3)
}

/// `clevis decrypt` of a compact JWE: Tang over the network, tpm2 through the
/// TPM that TPM2TOOLS_TCTI names.
pub fn decrypt(jwe: &str, opts: &Options) -> anyhow::Result<Secret> {
    let jwe = Jwe::parse(jwe)?;
    Ok(latchkey_client::decrypt_with(
        &jwe,
        opts,
        Some(crate::tpm::unsealer()),
    )?)
}

/// Whether the config names an advertisement (`"adv"`, a file or the JSON
/// itself) somewhere in its tree: clevis then encrypts without asking the server.
#[cfg(feature = "cryptsetup")]
pub fn offline(config: &str) -> bool {
    fn walk(v: &serde_json::Value, depth: u32) -> bool {
        if depth > 16 {
            return false;
        }
        match v {
            serde_json::Value::Object(m) => {
                m.contains_key("adv") || m.values().any(|c| walk(c, depth + 1))
            }
            serde_json::Value::Array(a) => a.iter().any(|c| walk(c, depth + 1)),
            _ => false,
        }
    }
    serde_json::from_str(config).is_ok_and(|v| walk(&v, 0))
}

/// `clevis encrypt PIN CONFIG` of `secret` for a binding session, trusting
/// advertisements without asking when `yes`.
#[cfg(feature = "cryptsetup")]
pub(crate) fn encrypt(
    pin: &str,
    config: &str,
    secret: &Secret,
    yes: bool,
    opts: &Options,
) -> Result<String, String> {
    let mut io = crate::encrypt::Io { opts: opts.clone() };
    latchkey_proto::pin::encrypt_json(
        pin,
        config,
        secret.expose(),
        yes,
        &mut io,
        &mut latchkey_sys::rng::os(),
    )
    .map_err(|e| e.to_string())
}

/// The pins for `latchkey_enroll::Session`: Tang over the network, trust
/// prompts on the terminal unless `yes`.
#[cfg(feature = "cryptsetup")]
pub struct Pins {
    /// Trust advertisements without asking (`-y`; regen and edit always do).
    pub yes: bool,
    /// Client options.
    pub opts: Options,
    /// Warnings to show the operator.
    pub warnings: Vec<String>,
}

#[cfg(feature = "cryptsetup")]
impl latchkey_enroll::Pins for Pins {
    fn encrypt(&mut self, pin: &str, config: &str, secret: &Secret) -> Result<String, String> {
        encrypt(pin, config, secret, self.yes, &self.opts)
    }

    fn decrypt(&mut self, jwe: &str) -> Result<Secret, String> {
        decrypt(jwe, &self.opts).map_err(|e| format!("{e:#}"))
    }

    fn accept_unverified(&mut self, pin: &str, config: &str, why: &str) -> Result<(), String> {
        if offline(config) {
            self.warnings.push(format!(
                "the new {pin} binding could not be checked by decrypting it ({why}); it was \
                 made from the advertisement in the config, so check it with `latchkey luks pass` \
                 where its servers answer"
            ));
            Ok(())
        } else {
            Err(why.to_owned())
        }
    }
}
