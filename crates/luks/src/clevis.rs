//! Clevis bindings: the flattened JWE in a LUKS2 token, made compact.

use crate::Error;
use serde_json::Value;

/// Largest JWE accepted from a token (the whole JSON area is at most 4 MiB).
const MAX_JWE: usize = 4 << 20;

/// `protected.encrypted_key.iv.ciphertext.tag` from the flattened JWE object of
/// LUKS2 token `token`, as `jose jwe fmt -c` prints it.
pub fn compact_from_flattened(jwe: &Value, token: u32) -> Result<String, Error> {
    let bad = |problem: String| Error::ClevisBinding {
        source_name: format!("token {token}"),
        problem,
    };
    let m = jwe
        .as_object()
        .ok_or_else(|| bad("jwe is not an object".into()))?;
    // An unprotected header or AAD cannot travel in the compact form.
    for extra in ["header", "unprotected", "aad", "recipients"] {
        if m.contains_key(extra) {
            return Err(bad(format!(
                "jwe has a {extra:?} member, which a compact JWE cannot carry"
            )));
        }
    }
    let mut parts = Vec::with_capacity(5);
    for (name, required) in [
        ("protected", true),
        ("encrypted_key", false),
        ("iv", true),
        ("ciphertext", true),
        ("tag", true),
    ] {
        let part = match m.get(name) {
            Some(v) => v
                .as_str()
                .ok_or_else(|| bad(format!("jwe.{name} is not a string")))?,
            None if required => return Err(bad(format!("jwe has no {name}"))),
            None => "",
        };
        if !part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad(format!("jwe.{name} is not base64url")));
        }
        parts.push(part);
    }
    let compact = parts.join(".");
    if compact.len() > MAX_JWE {
        return Err(bad("jwe too long".into()));
    }
    Ok(compact)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_parts_and_defaults_encrypted_key() {
        let v: Value =
            serde_json::from_str(r#"{"ciphertext":"C","iv":"I","protected":"P","tag":"T"}"#)
                .unwrap();
        assert_eq!(compact_from_flattened(&v, 0).unwrap(), "P..I.C.T");
    }

    #[test]
    fn rejects_bad_members() {
        for s in [
            r#"{"ciphertext":"C","iv":"I","tag":"T"}"#,
            r#"{"ciphertext":"C","iv":"I","protected":"P","tag":"T","header":{}}"#,
            r#"{"ciphertext":"C.x","iv":"I","protected":"P","tag":"T"}"#,
            r#"{"ciphertext":1,"iv":"I","protected":"P","tag":"T"}"#,
            r#"[]"#,
        ] {
            let v: Value = serde_json::from_str(s).unwrap();
            assert!(compact_from_flattened(&v, 3).is_err(), "{s}");
        }
    }
}
