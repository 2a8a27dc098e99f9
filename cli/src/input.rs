//! Reading stdin with a bound, and turning a LUKS2 token into the JWE inside it.

use std::io::Read;

use anyhow::{Context, Result, bail};
use latchkey_proto::secret::Secret;

/// More than any clevis JWE (a 3-server sss one is about 6 KiB) or LUKS secret.
const LIMIT: u64 = 1 << 20;

/// All of stdin, kept in a wiping buffer since it may be a secret.
pub fn stdin() -> Result<Secret> {
    let mut buf = Vec::new();
    std::io::stdin()
        .lock()
        .take(LIMIT + 1)
        .read_to_end(&mut buf)
        .context("reading stdin")?;
    let buf = Secret::new(buf);
    if buf.len() as u64 > LIMIT {
        bail!("stdin is larger than {LIMIT} bytes");
    }
    Ok(buf)
}

/// The JWE text of `input`: compact or flattened JSON as is, and for a whole LUKS2 token
/// (`{"type":"clevis","keyslots":[..],"jwe":{..}}`, as `cryptsetup token export` prints
/// it) the flattened JWE in its `jwe` member.
pub fn jwe_text(input: &[u8]) -> Result<String> {
    let text = std::str::from_utf8(input).context("the JWE on stdin is not UTF-8 text")?;
    let text = text.trim();
    if text.is_empty() {
        bail!("no JWE on stdin");
    }
    if text.starts_with('{') {
        if let Ok(serde_json::Value::Object(token)) = serde_json::from_str(text) {
            if let Some(jwe) = token.get("jwe").filter(|_| token.contains_key("keyslots")) {
                return Ok(jwe.to_string());
            }
        }
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_unwrapped_and_the_rest_passes_through() {
        let token = r#" {"type":"clevis","keyslots":["1"],"jwe":{"ciphertext":"c","encrypted_key":"","iv":"i","protected":"p","tag":"t"}}
"#;
        let jwe: serde_json::Value =
            serde_json::from_str(&jwe_text(token.as_bytes()).unwrap()).unwrap();
        assert_eq!(jwe["protected"], "p");
        assert_eq!(jwe_text(b"\n a.b.c.d.e \n").unwrap(), "a.b.c.d.e");
        assert_eq!(
            jwe_text(br#"{"protected":"p"}"#).unwrap(),
            r#"{"protected":"p"}"#
        );
        assert!(jwe_text(b"  \n").is_err());
        assert!(jwe_text(&[0xff, 0xfe]).is_err());
    }
}
