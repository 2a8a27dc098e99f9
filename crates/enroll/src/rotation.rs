//! Which Tang keys a binding was made with that its servers no longer
//! advertise (`clevis luks report`): the keys in each tang node's
//! `clevis.tang.adv`, by S256 thumbprint, against the server's current `/adv`.

use latchkey_proto::jwe::Jwe;
use latchkey_proto::jwk::{Jwk, ThpHash};
use latchkey_proto::jws::Advertisement;
use serde_json::Value;

/// Nesting deeper than this is not followed.
const MAX_DEPTH: u32 = 16;

/// A tang node of a binding's pin tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TangNode {
    /// `clevis.tang.url`.
    pub url: String,
    /// The advertised keys the JWE was made with (`clevis.tang.adv.keys`).
    pub keys: Vec<Value>,
}

/// Every tang node of the tree, depth first in the order of the JWE (as
/// clevis's report walks it).
pub fn tang_nodes(jwe: &str) -> Vec<TangNode> {
    let mut out = Vec::new();
    walk(jwe, 0, &mut out);
    out
}

fn walk(jwe: &str, depth: u32, out: &mut Vec<TangNode>) {
    if depth > MAX_DEPTH {
        return;
    }
    let Ok(jwe) = Jwe::parse(jwe) else { return };
    let clevis = &jwe.header["clevis"];
    match clevis["pin"].as_str() {
        Some("tang") => out.push(TangNode {
            url: clevis["tang"]["url"].as_str().unwrap_or("").to_owned(),
            keys: clevis["tang"]["adv"]["keys"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        }),
        Some("sss") => {
            for inner in clevis["sss"]["jwe"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                walk(inner, depth + 1, out);
            }
        }
        _ => {}
    }
}

/// The S256 thumbprints of `node`'s keys that `current` does not advertise, in
/// the node's order; a key that cannot be read counts as gone, by its position.
pub fn rotated(node: &TangNode, current: &Advertisement) -> Vec<String> {
    let now: Vec<String> = current
        .keys
        .iter()
        .map(|k| k.thumbprint(ThpHash::S256))
        .collect();
    node.keys
        .iter()
        .enumerate()
        .filter_map(|(i, k)| match Jwk::from_value(k) {
            Ok(k) => {
                let thp = k.thumbprint(ThpHash::S256);
                (!now.contains(&thp)).then_some(thp)
            }
            Err(_) => Some(format!("(unreadable key #{i})")),
        })
        .collect()
}
