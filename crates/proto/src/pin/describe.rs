//! Reading a pin tree without decrypting it: what `luks check` and the agent
//! print, and whether recovery needs the network.

use serde_json::Value;

use crate::jwe::Jwe;

/// Nesting deeper than this is not walked (clevis has no limit; real trees
/// are two or three levels deep).
const MAX_DEPTH: u32 = 16;

/// A node of the tree, as far as the header tells.
enum Node {
    Tang { url: String, kid: String },
    Tpm2(String),
    Sss { t: String, children: Vec<Node> },
    Other(String),
}

fn node(header: &Value, depth: u32) -> Node {
    let clevis = &header["clevis"];
    match clevis["pin"].as_str() {
        Some("tang") => Node::Tang {
            url: clevis["tang"]["url"]
                .as_str()
                .unwrap_or("(no url)")
                .to_owned(),
            kid: header["kid"].as_str().unwrap_or("").to_owned(),
        },
        Some("tpm2") => Node::Tpm2(
            match (
                clevis["tpm2"]["pcr_bank"].as_str(),
                clevis["tpm2"]["pcr_ids"].as_str(),
            ) {
                (Some(bank), Some(ids)) if !ids.is_empty() => format!("tpm2 {bank}:{ids}"),
                _ => "tpm2".to_owned(),
            },
        ),
        Some("sss") if depth < MAX_DEPTH => Node::Sss {
            t: clevis["sss"]["t"].to_string(),
            children: clevis["sss"]["jwe"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|j| match Jwe::parse(j) {
                    Ok(inner) => node(&inner.header, depth + 1),
                    Err(e) => Node::Other(format!("unreadable ({e})")),
                })
                .collect(),
        },
        Some(pin) => Node::Other(pin.to_owned()),
        None => Node::Other("no clevis.pin".to_owned()),
    }
}

fn text(n: &Node) -> String {
    match n {
        Node::Tang { url, .. } => format!("tang {url}"),
        Node::Tpm2(text) => text.clone(),
        Node::Sss { t, children } => {
            format!(
                "sss {t} of [{}]",
                children.iter().map(text).collect::<Vec<_>>().join(", ")
            )
        }
        Node::Other(s) => s.clone(),
    }
}

fn servers(n: &Node, out: &mut Vec<(String, String)>) {
    match n {
        Node::Tang { url, kid } => out.push((url.clone(), kid.clone())),
        Node::Sss { children, .. } => children.iter().for_each(|c| servers(c, out)),
        Node::Tpm2(_) | Node::Other(_) => {}
    }
}

/// One line for a JWE header's pin tree: `tang http://a`,
/// `sss 2 of [tang http://a, tang http://b, null]`.
pub fn describe(header: &Value) -> String {
    text(&node(header, 0))
}

/// Every Tang server of the tree as `(url, kid)`, in tree order.
pub fn tang_servers(header: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    servers(&node(header, 0), &mut out);
    out
}

/// True unless every leaf is `null` or `tpm2`: recovery then needs no network.
pub fn needs_network(header: &Value) -> bool {
    fn walk(n: &Node) -> bool {
        match n {
            Node::Tang { .. } => true,
            Node::Tpm2(_) => false,
            Node::Sss { children, .. } => children.iter().any(walk),
            Node::Other(pin) => pin != "null",
        }
    }
    walk(&node(header, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(path: &str) -> Value {
        let text =
            std::fs::read_to_string(format!("{}/tests/data/{path}", env!("CARGO_MANIFEST_DIR")))
                .unwrap();
        Jwe::parse(&text).unwrap().header
    }

    #[test]
    fn trees_of_the_clevis_samples() {
        let nested = header("jwe/sss-nested.jwe");
        assert_eq!(
            describe(&nested),
            "sss 2 of [tang http://127.0.0.1:18081, sss 1 of [tang http://127.0.0.1:18082, tang http://127.0.0.1:18083]]"
        );
        let urls: Vec<String> = tang_servers(&nested).into_iter().map(|(u, _)| u).collect();
        assert_eq!(
            urls,
            [
                "http://127.0.0.1:18081",
                "http://127.0.0.1:18082",
                "http://127.0.0.1:18083"
            ]
        );
        assert!(tang_servers(&nested).iter().all(|(_, kid)| kid.len() == 43));
        assert!(needs_network(&nested));
        let null = header("jwe/sss-2of3-null.jwe");
        assert_eq!(describe(&null), "sss 2 of [null, null, null]");
        assert!(!needs_network(&null));
        assert!(tang_servers(&null).is_empty());
    }
}
