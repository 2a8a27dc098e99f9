//! The sss pin: Shamir sharing over child pins, nested to any depth.

use rand_core::CryptoRng;
use serde_json::{Value, json};

use super::EncryptIo;
use super::config::Config;
use crate::b64;
use crate::error::{Error, Result, invalid, missing, unsupported};
use crate::json;
use crate::jwe::Jwe;
use crate::sss::{Dealer, P_LEN};

const CFG: &str = "sss pin config";

/// `clevis encrypt sss CONFIG [-y]`. Children are encrypted in the order of the `pins`
/// object as written, each array in its order, as clevis does.
pub(crate) fn encrypt<R: CryptoRng + ?Sized>(
    config: &Config,
    plaintext: &[u8],
    yes: bool,
    io: &mut dyn EncryptIo,
    rng: &mut R,
) -> Result<Jwe> {
    if config.entries().is_none() {
        return Err(json::expected(
            CFG,
            "document",
            "a JSON object",
            &config.to_value(),
        ));
    }
    let t = match config.get("t") {
        None => 1,
        Some(v) => {
            let v = v.to_value();
            v.as_u64()
                .filter(|&t| t >= 1)
                .ok_or_else(|| json::expected(CFG, "t", "an integer ≥ 1", &v))? as usize
        }
    };
    let pins = config.get("pins").ok_or_else(|| missing(CFG, "pins"))?;
    let pins = pins
        .entries()
        .ok_or_else(|| json::expected(CFG, "pins", "an object of pin names", &pins.to_value()))?;
    let mut children = Vec::new();
    for (pin, cfgs) in pins {
        match cfgs {
            Config::Array(list) => children.extend(list.iter().map(|c| (pin.as_str(), c))),
            Config::Object(_) => children.push((pin.as_str(), cfgs)),
            Config::Scalar(v) => {
                return Err(json::expected(
                    CFG,
                    &format!("pins.{pin}"),
                    "a pin config (an object) or an array of them",
                    v,
                ));
            }
        }
    }
    if children.len() < t {
        return Err(Error::Config {
            pin: "sss".into(),
            reason: format!(
                "threshold {t} is more than the {} pins given",
                children.len()
            ),
        });
    }
    let dealer = Dealer::new(t, rng)?;
    let mut jwes = Vec::with_capacity(children.len());
    for (pin, cfg) in children {
        let share = dealer.share(rng);
        jwes.push(Value::String(
            super::encrypt_jwe(pin, cfg, share.expose(), yes, io, rng)?.to_compact(),
        ));
    }
    let header = json!({
        "alg": "dir",
        "enc": "A256GCM",
        "clevis": {"pin": "sss", "sss": {"jwe": jwes, "p": b64::encode(&dealer.prime()), "t": t}},
    });
    Jwe::encrypt(&header, &dealer.key(), plaintext, rng)
}

/// The parsed `clevis.sss` of a JWE.
pub(crate) struct Node {
    pub(crate) p: Vec<u8>,
    pub(crate) t: usize,
    pub(crate) children: Vec<String>,
}

const WHAT: &str = "JWE";

pub(crate) fn parse(jwe: &Jwe) -> Result<Node> {
    let h = &jwe.header;
    let alg = json::req_str(h, WHAT, "alg")?;
    if alg != "dir" {
        return Err(unsupported(WHAT, "alg", alg));
    }
    let p = b64::decode_named(json::req_str(h, WHAT, "clevis.sss.p")?, "JWE clevis.sss.p")?;
    if p.len() != P_LEN {
        return Err(invalid(
            WHAT,
            "clevis.sss.p",
            format!("{} bytes, expected {P_LEN}", p.len()),
        ));
    }
    let t = json::req(h, WHAT, "clevis.sss.t")?;
    let t = t
        .as_u64()
        .filter(|&t| t >= 1)
        .ok_or_else(|| json::expected(WHAT, "clevis.sss.t", "an integer ≥ 1", t))?
        as usize;
    let children = match json::req(h, WHAT, "clevis.sss.jwe")? {
        Value::Array(list) => list
            .iter()
            .map(|j| j.as_str().map(String::from))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| invalid(WHAT, "clevis.sss.jwe", "expected an array of strings"))?,
        v => {
            return Err(json::expected(
                WHAT,
                "clevis.sss.jwe",
                "an array of strings",
                v,
            ));
        }
    };
    Ok(Node { p, t, children })
}
