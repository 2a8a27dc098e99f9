//! JWE as clevis writes it: compact serialization, `A256GCM`, empty encrypted key, and the
//! flattened JSON of a LUKS2 clevis token.
//!
//! The AAD is the protected header's base64url text exactly as received, so [`Jwe`] keeps
//! that text and never re-serializes a parsed header.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use rand_core::CryptoRng;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::b64;
use crate::error::{Error, Result, invalid, missing, unsupported};
use crate::json;
use crate::secret::Secret;

const WHAT: &str = "JWE";
const PARTS: [&str; 5] = ["protected", "encrypted_key", "iv", "ciphertext", "tag"];
const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;
const KEY_LEN: usize = 32;

// The AES-GCM key schedule and GHASH key, and the Concat KDF's SHA-256 state (which
// hashes the shared secret), are wiped on drop only with the crates' `zeroize` features:
// stop the build if a dependency change turns them off.
const _: () = {
    fn wipes_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    let _ = wipes_on_drop::<Aes256Gcm>;
    let _ = wipes_on_drop::<Sha256>;
};

/// A parsed JWE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwe {
    /// The protected header's base64url text exactly as received: the AAD.
    pub protected_b64: String,
    /// The decoded protected header (a JSON object).
    pub header: Value,
    /// Always empty for clevis (`ECDH-ES` direct and `dir`).
    pub encrypted_key: Vec<u8>,
    /// The 12-byte GCM IV.
    pub iv: Vec<u8>,
    /// The ciphertext (as long as the plaintext).
    pub ciphertext: Vec<u8>,
    /// The 16-byte GCM tag.
    pub tag: Vec<u8>,
}

fn part(text: &str, name: &str) -> Result<Vec<u8>> {
    b64::decode_named(text, &format!("JWE {name}"))
}

impl Jwe {
    /// Parses the compact form, or flattened JSON (`{"ciphertext",…,"tag"}`, as in a LUKS2
    /// token's `jwe`, or the whole token `{"type":"clevis","jwe":{…}}`). Surrounding
    /// whitespace is ignored.
    pub fn parse(text: &str) -> Result<Jwe> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::Invalid {
                what: WHAT.into(),
                field: "text".into(),
                reason: "empty".into(),
            });
        }
        if text.starts_with('[') {
            if let Ok(v) = serde_json::from_str::<Value>(text) {
                return Err(Error::NotJwe {
                    found: format!("JSON that is {}", json::kind(&v)),
                });
            }
        }
        if text.starts_with('{') {
            let v = json::parse(text.as_bytes(), WHAT)?;
            if let Some(obj) = v.as_object() {
                if !obj.contains_key("protected") && !obj.contains_key("jwe") {
                    let mut names: Vec<&str> = obj.keys().map(String::as_str).take(6).collect();
                    if obj.len() > 5 {
                        names[5] = "…";
                    }
                    return Err(Error::NotJwe {
                        found: match names.is_empty() {
                            true => "an empty JSON object".into(),
                            false => format!("a JSON object with members {}", names.join(", ")),
                        },
                    });
                }
            }
            return Jwe::from_json(&v);
        }
        let parts: Vec<&str> = text.split('.').collect();
        // A compact JWE starts with the base64url of `{"`; text that does not
        // is something else, not a JWE cut short. It is described, not
        // quoted: it may be a secret piped here by mistake.
        if parts.len() < PARTS.len() && !text.starts_with("eyJ") {
            return Err(Error::NotJwe {
                found: match parts.len() {
                    1 => format!("{} bytes of text with no dots", text.len()),
                    n => format!("{} bytes of text in {n} dot-separated parts", text.len()),
                },
            });
        }
        if parts.len() < PARTS.len() {
            return Err(missing(WHAT, PARTS[parts.len()]));
        }
        if parts.len() > PARTS.len() {
            return Err(invalid(
                WHAT,
                "compact serialization",
                format!("{} parts, expected 5", parts.len()),
            ));
        }
        Jwe::from_parts(parts[0], parts[1], parts[2], parts[3], parts[4])
    }

    /// Builds a JWE from the flattened JSON serialization.
    pub fn from_json(v: &Value) -> Result<Jwe> {
        let obj = json::object(v, WHAT)?;
        if !obj.contains_key("protected") && obj.get("jwe").is_some_and(Value::is_object) {
            return Jwe::from_json(&obj["jwe"]);
        }
        for unsupported_member in ["aad", "header", "unprotected", "recipients"] {
            if obj.contains_key(unsupported_member) {
                return Err(unsupported(WHAT, unsupported_member, "present"));
            }
        }
        let get = |name: &str| json::req_str(v, WHAT, name);
        let ek = match obj.get("encrypted_key") {
            None => "",
            Some(_) => get("encrypted_key")?,
        };
        Jwe::from_parts(
            get("protected")?,
            ek,
            get("iv")?,
            get("ciphertext")?,
            get("tag")?,
        )
    }

    fn from_parts(protected: &str, ek: &str, iv: &str, ct: &str, tag: &str) -> Result<Jwe> {
        for (name, value) in [("protected", protected), ("iv", iv), ("tag", tag)] {
            if value.is_empty() {
                return Err(missing(WHAT, name));
            }
        }
        let header = json::parse(
            &part(protected, "protected header")?,
            "JWE protected header",
        )?;
        json::object(&header, "JWE protected header")?;
        Ok(Jwe {
            protected_b64: protected.to_string(),
            header,
            encrypted_key: part(ek, "encrypted_key")?,
            iv: part(iv, "iv")?,
            ciphertext: part(ct, "ciphertext")?,
            tag: part(tag, "tag")?,
        })
    }

    /// The compact serialization (no trailing newline).
    pub fn to_compact(&self) -> String {
        format!(
            "{}.{}.{}.{}.{}",
            self.protected_b64,
            b64::encode(&self.encrypted_key),
            b64::encode(&self.iv),
            b64::encode(&self.ciphertext),
            b64::encode(&self.tag)
        )
    }

    /// The flattened JSON serialization with sorted members, as `jose jwe fmt` writes it
    /// into a LUKS2 token (`encrypted_key` always present).
    pub fn to_flattened_json(&self) -> String {
        json::to_sorted(&self.to_flattened_value())
    }

    /// [`Jwe::to_flattened_json`] as a JSON value.
    pub fn to_flattened_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("ciphertext".into(), b64::encode(&self.ciphertext).into());
        m.insert(
            "encrypted_key".into(),
            b64::encode(&self.encrypted_key).into(),
        );
        m.insert("iv".into(), b64::encode(&self.iv).into());
        m.insert("protected".into(), self.protected_b64.clone().into());
        m.insert("tag".into(), b64::encode(&self.tag).into());
        Value::Object(m)
    }

    /// `clevis.pin` of the header.
    pub fn pin(&self) -> Result<&str> {
        json::req_str(&self.header, WHAT, "clevis.pin")
    }

    /// Encrypts `plaintext` under `cek` (32 bytes, A256GCM) with `header` (serialized as
    /// sorted compact JSON, which becomes the AAD) and a random IV.
    pub fn encrypt<R: CryptoRng + ?Sized>(
        header: &Value,
        cek: &Secret,
        plaintext: &[u8],
        rng: &mut R,
    ) -> Result<Jwe> {
        json::object(header, "JWE protected header")?;
        let cipher = Aes256Gcm::new_from_slice(cek.expose())
            .map_err(|_| invalid(WHAT, "key", "A256GCM needs a 32-byte key"))?;
        let protected_b64 = b64::encode(json::to_sorted(header).as_bytes());
        let mut iv = vec![0u8; IV_LEN];
        rng.fill_bytes(&mut iv);
        let nonce = Nonce::try_from(iv.as_slice()).map_err(|_| Error::DecryptFailed)?;
        let mut buf = plaintext.to_vec();
        let tag = cipher
            .encrypt_inout_detached(&nonce, protected_b64.as_bytes(), buf.as_mut_slice().into())
            .map_err(|_| invalid(WHAT, "plaintext", "too long"))?;
        Ok(Jwe {
            protected_b64,
            header: header.clone(),
            encrypted_key: Vec::new(),
            iv,
            ciphertext: buf,
            tag: tag.to_vec(),
        })
    }

    /// Decrypts with the content key. The plaintext is released only after the tag has
    /// verified; any authentication failure is the opaque [`Error::DecryptFailed`].
    pub fn decrypt(&self, cek: &Secret) -> Result<Secret> {
        let enc = json::req_str(&self.header, WHAT, "enc")?;
        if enc != "A256GCM" {
            return Err(unsupported(WHAT, "enc", enc));
        }
        if self.iv.len() != IV_LEN {
            return Err(invalid(
                WHAT,
                "iv",
                format!("{} bytes, A256GCM needs 12", self.iv.len()),
            ));
        }
        if self.tag.len() != TAG_LEN {
            return Err(invalid(
                WHAT,
                "tag",
                format!("{} bytes, A256GCM needs 16", self.tag.len()),
            ));
        }
        if cek.len() != KEY_LEN {
            return Err(Error::DecryptFailed);
        }
        let cipher = Aes256Gcm::new_from_slice(cek.expose()).map_err(|_| Error::DecryptFailed)?;
        let nonce = Nonce::try_from(self.iv.as_slice()).map_err(|_| Error::DecryptFailed)?;
        let tag = Tag::try_from(self.tag.as_slice()).map_err(|_| Error::DecryptFailed)?;
        // Decrypted in place inside a Secret, so nothing is left behind either way; the
        // caller sees the bytes only if the tag verified.
        let mut out = Secret::new(self.ciphertext.clone());
        cipher
            .decrypt_inout_detached(
                &nonce,
                self.protected_b64.as_bytes(),
                out.expose_mut().into(),
                &tag,
            )
            .map_err(|_| Error::DecryptFailed)?;
        Ok(out)
    }
}

/// The content key of `ECDH-ES` direct agreement with `A256GCM`: RFC 7518 §4.6 Concat KDF
/// with SHA-256, empty PartyUInfo/PartyVInfo (jose writes no `apu`/`apv`), 256 bits.
pub fn ecdh_es_cek(z: &Secret) -> Secret {
    let mut h = Sha256::new();
    h.update(1u32.to_be_bytes());
    h.update(z.expose());
    h.update(concat_kdf_other_info());
    // Straight into the Secret: `finalize()` would return the key in a stack temporary.
    let mut cek = Secret::new(vec![0; KEY_LEN]);
    let out = <&mut sha2::digest::Output<Sha256>>::try_from(cek.expose_mut())
        .expect("SHA-256 gives 32 bytes");
    h.finalize_into(out);
    cek
}

/// Concat KDF OtherInfo for `A256GCM`: AlgorithmID ‖ PartyUInfo ‖ PartyVInfo ‖ SuppPubInfo.
pub fn concat_kdf_other_info() -> Vec<u8> {
    let alg = b"A256GCM";
    let mut v = Vec::with_capacity(4 + alg.len() + 12);
    v.extend_from_slice(&(alg.len() as u32).to_be_bytes());
    v.extend_from_slice(alg);
    v.extend_from_slice(&0u32.to_be_bytes());
    v.extend_from_slice(&0u32.to_be_bytes());
    v.extend_from_slice(&256u32.to_be_bytes());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let mut rng = latchkey_sys::rng::os();
        let cek = Secret::new(vec![7; 32]);
        let header = serde_json::json!({"enc":"A256GCM","alg":"dir"});
        let jwe = Jwe::encrypt(&header, &cek, b"hello", &mut rng).unwrap();
        assert!(
            jwe.protected_b64.starts_with("eyJhbGciOiJkaXIi"),
            "sorted: alg first"
        );
        let again = Jwe::parse(&format!("\n {} \n", jwe.to_compact())).unwrap();
        assert_eq!(again, jwe);
        assert_eq!(Jwe::parse(&jwe.to_flattened_json()).unwrap(), jwe);
        assert_eq!(again.decrypt(&cek).unwrap().expose(), b"hello");
        let mut bad = jwe.clone();
        bad.tag[0] ^= 1;
        assert_eq!(bad.decrypt(&cek).err(), Some(Error::DecryptFailed));
        let mut bad = jwe.clone();
        bad.ciphertext[0] ^= 1;
        assert_eq!(bad.decrypt(&cek).err(), Some(Error::DecryptFailed));
        assert_eq!(
            jwe.decrypt(&Secret::new(vec![8; 32])).err(),
            Some(Error::DecryptFailed)
        );
    }

    #[test]
    fn missing_parts_are_named() {
        let e = Jwe::parse("eyJhIjoxfQ..AAAAAAAAAAAAAAAA.AA").unwrap_err();
        assert_eq!(e.to_string(), "JWE has no tag");
        let e = Jwe::parse("eyJhIjoxfQ..").unwrap_err();
        assert_eq!(e.to_string(), "JWE has no ciphertext");
        let e =
            Jwe::parse(r#"{"protected":"eyJhIjoxfQ","iv":"AAAA","ciphertext":""}"#).unwrap_err();
        assert_eq!(e.to_string(), "JWE has no tag");
        assert!(Jwe::parse("a.b.c.d.e.f").is_err());
    }

    #[test]
    fn other_info_matches_the_reference() {
        let hex: String = concat_kdf_other_info()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, "000000074132353647434d000000000000000000000100");
    }
}
