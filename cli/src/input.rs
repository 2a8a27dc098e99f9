//! Reading stdin with a bound, and turning a LUKS2 token into the JWE inside it.

use std::io::{ErrorKind, Read};

use anyhow::{Context, Result, bail};
use latchkey_proto::secret::Secret;
use zeroize::Zeroizing;

/// More than any clevis JWE (a 3-server sss one is about 6 KiB) or LUKS secret.
const LIMIT: usize = 1 << 20;

/// The first buffer: room for any usual JWE or secret, so that nothing has to grow.
const FIRST: usize = 16 << 10;

/// All of stdin, kept in a wiping buffer since it may be a secret.
pub fn stdin() -> Result<Secret> {
    read_bounded(&mut std::io::stdin().lock(), LIMIT)
}

/// All of `r` up to `limit` bytes. The buffer is wiped, and so is each buffer it outgrows
/// (doubling from [`FIRST`]): `read_to_end` would hand those back to the allocator with
/// the secret still in them.
fn read_bounded(r: &mut impl Read, limit: usize) -> Result<Secret> {
    let mut buf = Zeroizing::new(vec![0u8; FIRST.min(limit + 1)]);
    let mut len = 0;
    loop {
        if len == buf.len() {
            if len > limit {
                bail!("stdin is larger than {limit} bytes");
            }
            let mut bigger = Zeroizing::new(vec![0u8; (2 * len).min(limit + 1)]);
            bigger[..len].copy_from_slice(&buf[..len]);
            buf = bigger;
        }
        match r.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("reading stdin"),
        }
    }
    // Moved out, not copied: the Zeroizing left behind holds an empty Vec.
    let mut bytes = std::mem::take(&mut *buf);
    bytes.truncate(len);
    Ok(Secret::new(bytes))
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
    use latchkey_sys::wipecheck::Watch;

    #[test]
    fn stdin_is_read_whole_up_to_the_limit() {
        for len in [0, 1, FIRST - 1, FIRST, FIRST + 1, 5 * FIRST + 3, LIMIT] {
            let input: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let got = read_bounded(&mut &input[..], LIMIT).unwrap();
            assert_eq!(got.expose(), &input[..], "{len} bytes");
        }
        let over = vec![b'x'; LIMIT + 1];
        let e = read_bounded(&mut &over[..], LIMIT).err().unwrap();
        assert_eq!(e.to_string(), format!("stdin is larger than {LIMIT} bytes"));
    }

    #[test]
    fn stdin_leaves_no_copy_of_a_secret_in_freed_memory() {
        // A secret large enough to make the buffer grow several times.
        let needle = b"wipe-check: a secret read from stdin";
        let mut input = vec![b's'; 20 * FIRST];
        input[..needle.len()].copy_from_slice(needle);
        let watch = Watch::new(needle);
        let got = read_bounded(&mut &input[..], LIMIT).unwrap();
        assert_eq!(got.expose(), &input[..]);
        drop(got);
        assert_eq!(
            watch.freed_copies(),
            0,
            "freed buffers still held the secret"
        );
    }

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
