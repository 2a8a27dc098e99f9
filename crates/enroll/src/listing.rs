//! The policy of a binding as `clevis luks list` prints it, byte for byte.
//!
//! clevis does not store the configuration it was given; `list` rebuilds one
//! from the JWE header: only `url` for tang; for sss `{"t":N,"pins":{…}}` with
//! the tang children first, then tpm2, then the last nested sss, whatever the
//! original order; other pins as `unknown pin 'NAME'` at the top and dropped
//! inside sss. Values are pasted as text, not JSON-escaped, and inside sss every
//! `'` is removed. This module repeats those rules exactly, so scripts that
//! parse the line (and `regen`, which rebinds with it) see the same thing.

use latchkey_proto::b64;
use serde_json::Value;

/// Nesting deeper than this is not followed (each level is a whole JWE).
const MAX_DEPTH: u32 = 16;

/// `PIN 'CONFIG'` for a compact JWE, as `clevis luks list` prints after `N: `;
/// `None` when clevis would skip the slot (no readable header or pin).
pub fn describe(jwe: &str) -> Option<String> {
    describe_at(jwe, 0)
}

/// The pin name and the config text of [`describe`], split as `regen` splits them.
pub fn pin_and_config(jwe: &str) -> Option<(String, String)> {
    let line = describe(jwe)?;
    let (pin, rest) = line.split_once(' ')?;
    Some((pin.to_owned(), rest.replace('\'', "")))
}

fn describe_at(jwe: &str, depth: u32) -> Option<String> {
    if depth > MAX_DEPTH {
        return None;
    }
    // `read -d .` takes the text up to the first dot: the protected header.
    let protected = jwe.split('.').next()?.trim();
    let header: Value = serde_json::from_slice(&b64::decode(protected).ok()?).ok()?;
    let pin = header.get("clevis")?.get("pin")?.as_str()?;
    let content = header["clevis"].get(pin)?;
    if content.is_null() {
        return None;
    }
    Some(match pin {
        "tang" => format!(
            "tang '{{\"url\":\"{}\"}}'",
            content.get("url").and_then(Value::as_str).unwrap_or("")
        ),
        "tpm2" => {
            let fields: Vec<String> = ["hash", "key", "pcr_bank", "pcr_ids", "pcr_digest"]
                .iter()
                .filter_map(|k| {
                    let v = content.get(*k)?.as_str()?;
                    Some(format!("\"{k}\":\"{v}\""))
                })
                .collect();
            format!("tpm2 '{{{}}}'", fields.join(","))
        }
        "sss" => format!("sss '{}'", sss(content, depth)),
        other => format!("unknown pin '{other}'"),
    })
}

fn sss(content: &Value, depth: u32) -> String {
    let mut tang = Vec::new();
    let mut tpm2 = Vec::new();
    let mut nested = None;
    for inner in content
        .get("jwe")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let Some(line) = describe_at(inner, depth + 1) else {
            continue;
        };
        // `read -r pin cfg`: the first word, then the rest without surrounding blanks.
        let (pin, cfg) = match line.split_once(' ') {
            Some((p, c)) => (p, c.trim_matches([' ', '\t'])),
            None => (line.as_str(), ""),
        };
        match pin {
            "tang" => tang.push(cfg.replace('\'', "")),
            "tpm2" => tpm2.push(cfg.replace('\'', "")),
            "sss" => nested = Some(cfg.replace('\'', "")),
            _ => {}
        }
    }
    let mut groups = Vec::new();
    if !tang.is_empty() {
        groups.push(format!("\"tang\":[{}]", tang.join(",")));
    }
    if !tpm2.is_empty() {
        groups.push(format!("\"tpm2\":[{}]", tpm2.join(",")));
    }
    if let Some(n) = nested {
        groups.push(format!("\"sss\":{n}"));
    }
    format!(
        "{{\"t\":{},\"pins\":{{{}}}}}",
        threshold(content.get("t")),
        groups.join(",")
    )
}

/// `printf %d` of the JSON text of `t`.
fn threshold(t: Option<&Value>) -> i64 {
    match t {
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwe_with(header: &str) -> String {
        format!("{}..iv.ct.tag", b64::encode(header.as_bytes()))
    }

    #[test]
    fn tang_prints_only_the_url_unescaped() {
        let j = jwe_with(r#"{"clevis":{"pin":"tang","tang":{"url":"http://a b","adv":{}}}}"#);
        assert_eq!(describe(&j).unwrap(), r#"tang '{"url":"http://a b"}'"#);
        assert_eq!(
            pin_and_config(&j).unwrap(),
            ("tang".into(), r#"{"url":"http://a b"}"#.into())
        );
    }

    #[test]
    fn sss_groups_tang_then_tpm2_then_the_last_sss() {
        let t = |u: &str| {
            jwe_with(&format!(
                r#"{{"clevis":{{"pin":"tang","tang":{{"url":"{u}"}}}}}}"#
            ))
        };
        let null = jwe_with(r#"{"clevis":{"pin":"null","null":{}}}"#);
        let tpm = jwe_with(
            r#"{"clevis":{"pin":"tpm2","tpm2":{"pcr_ids":"7","hash":"sha256","key":"ecc"}}}"#,
        );
        let inner = |u: &str| {
            jwe_with(&format!(
                r#"{{"clevis":{{"pin":"sss","sss":{{"t":1,"jwe":["{}"]}}}}}}"#,
                t(u)
            ))
        };
        let outer = jwe_with(&format!(
            r#"{{"clevis":{{"pin":"sss","sss":{{"t":2,"jwe":["{}","{}","{}","{}","{}","{}"]}}}}}}"#,
            inner("http://x"),
            t("http://a'q"),
            null,
            tpm,
            inner("http://y"),
            t("http://b")
        ));
        assert_eq!(
            describe(&outer).unwrap(),
            r#"sss '{"t":2,"pins":{"tang":[{"url":"http://aq"},{"url":"http://b"}],"tpm2":[{"hash":"sha256","key":"ecc","pcr_ids":"7"}],"sss":{"t":1,"pins":{"tang":[{"url":"http://y"}]}}}}'"#
        );
    }

    #[test]
    fn nesting_is_bounded() {
        // Each level wraps the one below (4/3 larger each time); past MAX_DEPTH
        // the walk stops.
        let mut jwe = jwe_with(r#"{"clevis":{"pin":"tang","tang":{"url":"http://deep"}}}"#);
        for _ in 0..MAX_DEPTH + 4 {
            jwe = jwe_with(&format!(
                r#"{{"clevis":{{"pin":"sss","sss":{{"t":1,"jwe":["{jwe}"]}}}}}}"#
            ));
        }
        let line = describe(&jwe).unwrap();
        assert!(line.starts_with(r#"sss '{"t":1,"pins":{"sss":"#), "{line}");
        assert!(!line.contains("http://deep"), "cut off at the depth limit");
        assert!(crate::rotation::tang_nodes(&jwe).is_empty());
    }

    #[test]
    fn other_pins_and_garbage() {
        assert_eq!(
            describe(&jwe_with(r#"{"clevis":{"pin":"null","null":{}}}"#)).unwrap(),
            "unknown pin 'null'"
        );
        assert_eq!(describe(&jwe_with(r#"{"clevis":{"pin":"null"}}"#)), None);
        assert_eq!(describe(&jwe_with("not json")), None);
        assert_eq!(describe("!!!.a.b.c.d"), None);
        assert_eq!(
            describe(&jwe_with(r#"{"clevis":{"pin":"sss","sss":{"t":1}}}"#)).unwrap(),
            r#"sss '{"t":1,"pins":{}}'"#
        );
    }
}
