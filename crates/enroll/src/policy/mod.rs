//! A declarative unlock policy for a cluster node's root disk: how it opens
//! at the next boot, and the safe way from the state it is in to that one.
//!
//! ```text
//!   Tang URLs, mode, t ──▶ Record::choose ─────────────┐
//!   header + boot dir ───▶ state::observe ─▶ Observed ─┴▶ plan::plan ─▶ [Step]   (pure)
//!                                                                        │
//!                         apply::run (feature `cryptsetup`) ◀────────────┘
//!                           Session (keyslots, tokens, LUKSMeta) + keyfile (the boot dir)
//! ```
//!
//! Three modes:
//!
//! | mode | how the disk opens | in the header |
//! | --- | --- | --- |
//! | degraded | the local key file `nbde/local-boot.key` on the boot partition, no network | a keyslot for that key, marked as the local key |
//! | tang | any one of the Tang servers | one clevis binding: sss, t = 1, one tang pin per server |
//! | quorum | any t of the Tang servers | one clevis binding: sss, t of N |
//!
//! The request is recorded in the header too (the [`Record`]), so that a
//! reader with no other input (`latchkey nbde status`) knows what was asked
//! and whether the disk got there. Everything lives in the LUKS header, so
//! the initrd does not change when the policy does.
//!
//! A clevis binding whose pin tree is only Tang (a tang pin, or sss over tang
//! pins) belongs to the policy: apply replaces or removes it. Other bindings
//! (tpm2, nested sss) and keyslots without a token are never touched.

pub mod keyfile;
pub mod plan;
pub mod record;
pub mod state;

#[cfg(feature = "cryptsetup")]
pub mod apply;

use std::fmt;

use latchkey_proto::b64;
use latchkey_proto::jws::Advertisement;
use serde_json::{Value, json};

pub use plan::{Step, plan};
pub use record::Record;
pub use state::{KeyFile, Observed, PolicyBinding, observe};

/// Where the local key lives under the boot directory (`/boot`): the agent's
/// default `latchkey.key=/boot/nbde/local-boot.key`, read from the boot
/// partition at its root as `nbde/local-boot.key`.
pub const KEY_FILE: &str = "nbde/local-boot.key";

/// The fewest healthy Tang servers for which the automatic mode is `tang`.
pub const TANG_FROM: usize = 3;
/// The fewest healthy Tang servers for which the automatic mode is `quorum`.
pub const QUORUM_FROM: usize = 4;

/// How the disk opens at the next boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The local key file, no network.
    Degraded,
    /// Any one Tang server.
    Tang,
    /// Any t of the Tang servers.
    Quorum,
}

impl Mode {
    /// `degraded`, `tang` or `quorum`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Degraded => "degraded",
            Mode::Tang => "tang",
            Mode::Quorum => "quorum",
        }
    }

    /// The mode named `s`.
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "degraded" => Some(Mode::Degraded),
            "tang" => Some(Mode::Tang),
            "quorum" => Some(Mode::Quorum),
            _ => None,
        }
    }

    /// The automatic choice for `healthy` Tang servers.
    pub fn auto(healthy: usize) -> Mode {
        match healthy {
            n if n >= QUORUM_FROM => Mode::Quorum,
            n if n >= TANG_FROM => Mode::Tang,
            _ => Mode::Degraded,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The default threshold of a quorum over `n` servers: a majority.
pub fn majority(n: usize) -> u32 {
    u32::try_from(n / 2 + 1).unwrap_or(u32::MAX)
}

/// A request that cannot be a policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// The Tang policy of a clevis binding: any `threshold` of `urls` recover its
/// passphrase. A tang pin is a threshold of 1 over its one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TangPolicy {
    /// t.
    pub threshold: u32,
    /// The servers, in the order of the JWE.
    pub urls: Vec<String>,
}

impl TangPolicy {
    /// Same threshold and the same servers, in any order.
    pub fn same_as(&self, threshold: u32, urls: &[String]) -> bool {
        let mut a: Vec<&String> = self.urls.iter().collect();
        let mut b: Vec<&String> = urls.iter().collect();
        a.sort();
        b.sort();
        self.threshold == threshold && a == b
    }

    /// `sss t=2 over 3 Tang servers` / `tang http://a`.
    pub fn describe(&self) -> String {
        describe(self.threshold, &self.urls)
    }
}

/// `sss t=T of N Tang servers (URL, ...)`.
pub fn describe(threshold: u32, urls: &[String]) -> String {
    format!(
        "sss t={threshold} of {} Tang server{} ({})",
        urls.len(),
        if urls.len() == 1 { "" } else { "s" },
        urls.join(", ")
    )
}

/// The Tang policy of a compact JWE: a tang pin, or an sss pin whose every
/// child is a tang pin. `None` for anything else (tpm2, null, nested sss),
/// which the policy leaves alone.
pub fn tang_policy(jwe: &str) -> Option<TangPolicy> {
    let header = protected(jwe)?;
    let clevis = header.get("clevis")?;
    match clevis.get("pin")?.as_str()? {
        "tang" => Some(TangPolicy {
            threshold: 1,
            urls: vec![tang_url(clevis)?],
        }),
        "sss" => {
            let sss = clevis.get("sss")?;
            let threshold = u32::try_from(sss.get("t")?.as_u64()?).ok()?;
            let mut urls = Vec::new();
            for child in sss.get("jwe")?.as_array()? {
                let inner = protected(child.as_str()?)?;
                let inner = inner.get("clevis")?;
                if inner.get("pin")?.as_str()? != "tang" {
                    return None;
                }
                urls.push(tang_url(inner)?);
            }
            (!urls.is_empty()).then_some(TangPolicy { threshold, urls })
        }
        _ => None,
    }
}

/// The protected header of a compact JWE (all that clevis reads to list it).
fn protected(jwe: &str) -> Option<Value> {
    let first = jwe.split('.').next()?.trim();
    serde_json::from_slice(&b64::decode(first).ok()?).ok()
}

fn tang_url(clevis: &Value) -> Option<String> {
    Some(clevis.get("tang")?.get("url")?.as_str()?.to_owned())
}

/// A Tang server of the policy and the advertisement it gave, verified.
#[derive(Debug, Clone)]
pub struct Server {
    /// Its URL, as the cluster names it.
    pub url: String,
    /// Its advertisement, verified.
    pub adv: Advertisement,
}

/// The clevis sss config of a binding: any `threshold` of the servers at
/// `urls`. It names the servers only (as `clevis luks list` shows it), so the
/// journal that records it while a binding is replaced stays small.
pub fn sss_config(threshold: u32, urls: &[String]) -> String {
    let pins: Vec<Value> = urls.iter().map(|u| json!({"url": u})).collect();
    json!({"t": threshold, "pins": {"tang": pins}}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwe_with(header: &str) -> String {
        format!("{}..iv.ct.tag", b64::encode(header.as_bytes()))
    }

    fn tang(u: &str) -> String {
        jwe_with(&format!(
            r#"{{"alg":"ECDH-ES","enc":"A256GCM","clevis":{{"pin":"tang","tang":{{"url":"{u}"}}}}}}"#
        ))
    }

    fn sss(t: u32, children: &[String]) -> String {
        let list: Vec<String> = children.iter().map(|c| format!("\"{c}\"")).collect();
        jwe_with(&format!(
            r#"{{"alg":"dir","enc":"A256GCM","clevis":{{"pin":"sss","sss":{{"t":{t},"p":"x","jwe":[{}]}}}}}}"#,
            list.join(",")
        ))
    }

    #[test]
    fn automatic_mode_by_healthy_servers() {
        let modes: Vec<Mode> = (0..7).map(Mode::auto).collect();
        use Mode::*;
        assert_eq!(
            modes,
            [Degraded, Degraded, Degraded, Tang, Quorum, Quorum, Quorum]
        );
        let t: Vec<u32> = (1..8).map(majority).collect();
        assert_eq!(t, [1, 2, 2, 3, 3, 4, 4]);
        for m in [Degraded, Tang, Quorum] {
            assert_eq!(Mode::parse(m.name()), Some(m));
        }
        assert_eq!(Mode::parse("auto"), None);
    }

    #[test]
    fn tang_only_trees_are_policies() {
        let a = tang("http://a");
        assert_eq!(
            tang_policy(&a),
            Some(TangPolicy {
                threshold: 1,
                urls: vec!["http://a".into()]
            })
        );
        let q = sss(2, &[tang("http://a"), tang("http://b"), tang("http://c")]);
        let p = tang_policy(&q).unwrap();
        assert_eq!(p.threshold, 2);
        assert!(p.same_as(
            2,
            &["http://c".into(), "http://a".into(), "http://b".into()]
        ));
        assert!(!p.same_as(
            1,
            &["http://c".into(), "http://a".into(), "http://b".into()]
        ));
        assert!(!p.same_as(2, &["http://a".into(), "http://b".into()]));
        let tpm = jwe_with(r#"{"clevis":{"pin":"tpm2","tpm2":{}}}"#);
        assert_eq!(tang_policy(&sss(1, &[tang("http://a"), tpm.clone()])), None);
        assert_eq!(tang_policy(&tpm), None);
        assert_eq!(tang_policy(&sss(1, &[q])), None, "nested sss is not ours");
        assert_eq!(tang_policy(&sss(1, &[])), None);
        assert_eq!(tang_policy("garbage"), None);
    }

    #[test]
    fn sss_config_names_the_servers() {
        let cfg = sss_config(2, &["http://a".into(), "http://b".into()]);
        assert_eq!(
            cfg,
            r#"{"pins":{"tang":[{"url":"http://a"},{"url":"http://b"}]},"t":2}"#
        );
    }
}
