//! LUKS2 JSON metadata: keyslots, digests, segments, tokens and config.

use crate::hash::Hash;
use crate::model::{
    Argon2Variant, ClevisBinding, DataSize, Digest, DmFlags, Kdf, Keyslot, MAX_KEY_SIZE, Priority,
    Segment, Token,
};
use crate::{Error, af};
use base64::Engine;
use latchkey_proto::jwe::Jwe;
use serde_json::{Map, Value};

/// LUKS2 allows keyslots 0..32 and tokens 0..32.
const MAX_SLOTS: u32 = 32;

/// Everything from the JSON area that the header exposes.
pub(crate) struct Metadata {
    pub keyslots: Vec<Keyslot>,
    pub digests: Vec<Digest>,
    pub segments: Vec<(u32, Segment)>,
    pub tokens: Vec<Token>,
    pub bindings: Vec<ClevisBinding>,
    pub flags: DmFlags,
    pub requirements: Vec<String>,
}

/// Parse and check the JSON text of a header whose binary part declares
/// `hdr_size` bytes of metadata.
pub(crate) fn parse(text: &[u8], hdr_size: u64) -> Result<Metadata, Error> {
    let root: Value = serde_json::from_slice(text).map_err(|e| Error::Json(e.to_string()))?;
    let root = obj(&root, "(root)")?;

    let config = obj(get(root, "config", "")?, "config")?;
    let json_size = u64_str(get(config, "json_size", "config")?, "config.json_size")?;
    if json_size != hdr_size - 4096 {
        return Err(Error::meta(
            "config.json_size",
            format!("{json_size} does not match header size {hdr_size}"),
        ));
    }
    let keyslots_size = u64_str(
        get(config, "keyslots_size", "config")?,
        "config.keyslots_size",
    )?;
    let area_start = 2 * hdr_size;
    let area_end = area_start
        .checked_add(keyslots_size)
        .ok_or_else(|| Error::meta("config.keyslots_size", "overflows"))?;
    let mut flags = DmFlags::default();
    if let Some(list) = config.get("flags") {
        for f in arr(list, "config.flags")? {
            flags.set(str_(f, "config.flags")?);
        }
    }
    let mut requirements = Vec::new();
    if let Some(req) = config.get("requirements") {
        let req = obj(req, "config.requirements")?;
        if let Some(m) = req.get("mandatory") {
            for r in arr(m, "config.requirements.mandatory")? {
                requirements.push(str_(r, "config.requirements.mandatory")?.to_owned());
            }
        }
    }

    let mut keyslots = Vec::new();
    for (id, v) in numbered(root, "keyslots")? {
        let path = format!("keyslots.{id}");
        let ks = obj(v, &path)?;
        // Reencryption keyslots hold no key; cryptsetup skips them when unlocking.
        if str_(get(ks, "type", &path)?, &format!("{path}.type"))? != "luks2" {
            continue;
        }
        keyslots.push(keyslot(id, ks, &path, area_start, area_end)?);
    }

    let mut digests = Vec::new();
    for (id, v) in numbered(root, "digests")? {
        let path = format!("digests.{id}");
        let d = obj(v, &path)?;
        let kind = str_(get(d, "type", &path)?, &format!("{path}.type"))?;
        if kind != "pbkdf2" {
            return Err(Error::meta(
                format!("{path}.type"),
                format!("unsupported digest {kind:?}"),
            ));
        }
        let value = b64(get(d, "digest", &path)?, &format!("{path}.digest"))?;
        if value.is_empty() || value.len() > 64 {
            return Err(Error::meta(format!("{path}.digest"), "length out of range"));
        }
        digests.push(Digest {
            keyslots: id_list(get(d, "keyslots", &path)?, &format!("{path}.keyslots"))?,
            segments: id_list(get(d, "segments", &path)?, &format!("{path}.segments"))?,
            hash: Hash::from_name(str_(get(d, "hash", &path)?, &format!("{path}.hash"))?)?,
            iterations: u32_num(get(d, "iterations", &path)?, &format!("{path}.iterations"))?,
            salt: b64(get(d, "salt", &path)?, &format!("{path}.salt"))?,
            value,
        });
    }

    let mut segments = Vec::new();
    for (id, v) in numbered(root, "segments")? {
        let path = format!("segments.{id}");
        let s = obj(v, &path)?;
        if str_(get(s, "type", &path)?, &format!("{path}.type"))? != "crypt" {
            // linear segments appear only during reencryption, which is refused
            // through config.requirements; skip them here.
            continue;
        }
        let size = match str_(get(s, "size", &path)?, &format!("{path}.size"))? {
            "dynamic" => DataSize::Dynamic,
            _ => DataSize::Bytes(u64_str(get(s, "size", &path)?, &format!("{path}.size"))?),
        };
        let sector_size = u32_num(
            get(s, "sector_size", &path)?,
            &format!("{path}.sector_size"),
        )?;
        if !(512..=4096).contains(&sector_size) || !sector_size.is_power_of_two() {
            return Err(Error::meta(
                format!("{path}.sector_size"),
                format!("{sector_size} is not 512..4096"),
            ));
        }
        let integrity = match s.get("integrity") {
            Some(i) => {
                let i = obj(i, &format!("{path}.integrity"))?;
                Some(str_(get(i, "type", &path)?, &format!("{path}.integrity.type"))?.to_owned())
            }
            None => None,
        };
        segments.push((
            id,
            Segment {
                offset: u64_str(get(s, "offset", &path)?, &format!("{path}.offset"))?,
                size,
                iv_tweak: u64_str(get(s, "iv_tweak", &path)?, &format!("{path}.iv_tweak"))?,
                encryption: str_(get(s, "encryption", &path)?, &format!("{path}.encryption"))?
                    .to_owned(),
                sector_size,
                integrity,
            },
        ));
    }

    let mut tokens = Vec::new();
    let mut bindings = Vec::new();
    for (id, v) in numbered(root, "tokens")? {
        let path = format!("tokens.{id}");
        let t = obj(v, &path)?;
        let kind = str_(get(t, "type", &path)?, &format!("{path}.type"))?.to_owned();
        let slots = id_list(get(t, "keyslots", &path)?, &format!("{path}.keyslots"))?;
        if kind == "clevis" {
            // A token with no keyslot is an orphan that clevis itself ignores. A JWE
            // that does not parse is that binding's failure, not the header's.
            if !slots.is_empty() {
                let jwe = Jwe::from_json(get(t, "jwe", &path)?);
                for &keyslot in &slots {
                    bindings.push(ClevisBinding {
                        keyslot,
                        token_id: Some(id),
                        jwe: jwe.clone(),
                        source: crate::model::BindingSource::Luks2Token(id),
                    });
                }
            }
        }
        tokens.push(Token {
            id,
            kind,
            keyslots: slots,
            json: v.clone(),
        });
    }

    Ok(Metadata {
        keyslots,
        digests,
        segments,
        tokens,
        bindings,
        flags,
        requirements,
    })
}

fn keyslot(
    id: u32,
    ks: &Map<String, Value>,
    path: &str,
    area_start: u64,
    area_end: u64,
) -> Result<Keyslot, Error> {
    let p = |f: &str| format!("{path}.{f}");
    let key_size = u32_num(get(ks, "key_size", path)?, &p("key_size"))? as usize;
    if key_size == 0 || key_size > MAX_KEY_SIZE {
        return Err(Error::meta(
            p("key_size"),
            format!("{key_size} out of range"),
        ));
    }
    let priority = match ks.get("priority") {
        None => Priority::Normal,
        Some(v) => match u32_num(v, &p("priority"))? {
            0 => Priority::Ignore,
            1 => Priority::Normal,
            2 => Priority::High,
            n => return Err(Error::meta(p("priority"), format!("{n} is not 0, 1 or 2"))),
        },
    };

    let afp = p("af");
    let af_obj = obj(get(ks, "af", path)?, &afp)?;
    let af_type = str_(get(af_obj, "type", &afp)?, &format!("{afp}.type"))?;
    if af_type != "luks1" {
        return Err(Error::meta(
            format!("{afp}.type"),
            format!("unsupported {af_type:?}"),
        ));
    }
    let af_stripes = u32_num(get(af_obj, "stripes", &afp)?, &format!("{afp}.stripes"))?;
    if af_stripes == 0 {
        return Err(Error::meta(format!("{afp}.stripes"), "is 0"));
    }
    let af_hash = Hash::from_name(str_(get(af_obj, "hash", &afp)?, &format!("{afp}.hash"))?)?;

    let ap = p("area");
    let area = obj(get(ks, "area", path)?, &ap)?;
    let area_type = str_(get(area, "type", &ap)?, &format!("{ap}.type"))?;
    if area_type != "raw" {
        return Err(Error::meta(
            format!("{ap}.type"),
            format!("unsupported {area_type:?}"),
        ));
    }
    let area_offset = u64_str(get(area, "offset", &ap)?, &format!("{ap}.offset"))?;
    let area_size = u64_str(get(area, "size", &ap)?, &format!("{ap}.size"))?;
    let inside = area_offset >= area_start
        && area_offset
            .checked_add(area_size)
            .is_some_and(|end| end <= area_end);
    if !inside {
        return Err(Error::meta(
            &ap,
            format!(
                "{area_offset}+{area_size} lies outside the keyslots area {area_start}..{area_end}"
            ),
        ));
    }
    if af::material_len(key_size, af_stripes) > area_size {
        return Err(Error::meta(&ap, "too small for key_size × stripes"));
    }
    let area_encryption =
        str_(get(area, "encryption", &ap)?, &format!("{ap}.encryption"))?.to_owned();
    let area_key_size = u32_num(get(area, "key_size", &ap)?, &format!("{ap}.key_size"))? as usize;
    if area_key_size == 0 || area_key_size > MAX_KEY_SIZE {
        return Err(Error::meta(format!("{ap}.key_size"), "out of range"));
    }

    let kp = p("kdf");
    let kdf_obj = obj(get(ks, "kdf", path)?, &kp)?;
    let kdf_type = str_(get(kdf_obj, "type", &kp)?, &format!("{kp}.type"))?;
    let salt = b64(get(kdf_obj, "salt", &kp)?, &format!("{kp}.salt"))?;
    let kdf = match kdf_type {
        "pbkdf2" => Kdf::Pbkdf2 {
            hash: Hash::from_name(str_(get(kdf_obj, "hash", &kp)?, &format!("{kp}.hash"))?)?,
            iterations: u32_num(
                get(kdf_obj, "iterations", &kp)?,
                &format!("{kp}.iterations"),
            )?,
            salt,
        },
        "argon2i" | "argon2id" => Kdf::Argon2 {
            variant: if kdf_type == "argon2i" {
                Argon2Variant::I
            } else {
                Argon2Variant::Id
            },
            time: u32_num(get(kdf_obj, "time", &kp)?, &format!("{kp}.time"))?,
            memory_kib: u32_num(get(kdf_obj, "memory", &kp)?, &format!("{kp}.memory"))?,
            cpus: u32_num(get(kdf_obj, "cpus", &kp)?, &format!("{kp}.cpus"))?,
            salt,
        },
        other => {
            return Err(Error::UnsupportedKdf {
                slot: id,
                kdf: other.to_owned(),
            });
        }
    };
    Ok(Keyslot {
        id,
        key_size,
        priority,
        kdf,
        af_stripes,
        af_hash,
        area_offset,
        area_size,
        area_encryption,
        area_key_size,
    })
}

fn obj<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, Error> {
    v.as_object()
        .ok_or_else(|| Error::meta(path, "is not an object"))
}

fn arr<'a>(v: &'a Value, path: &str) -> Result<&'a Vec<Value>, Error> {
    v.as_array()
        .ok_or_else(|| Error::meta(path, "is not an array"))
}

fn get<'a>(m: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a Value, Error> {
    m.get(key).ok_or_else(|| {
        let full = if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        };
        Error::meta(full, "is missing")
    })
}

fn str_<'a>(v: &'a Value, path: &str) -> Result<&'a str, Error> {
    v.as_str()
        .ok_or_else(|| Error::meta(path, "is not a string"))
}

/// LUKS2 writes 64-bit quantities as decimal strings.
fn u64_str(v: &Value, path: &str) -> Result<u64, Error> {
    let s = str_(v, path)?;
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::meta(path, format!("{s:?} is not a decimal number")));
    }
    s.parse()
        .map_err(|_| Error::meta(path, format!("{s:?} is out of range")))
}

fn u32_num(v: &Value, path: &str) -> Result<u32, Error> {
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| Error::meta(path, "is not a 32-bit unsigned integer"))
}

fn b64(v: &Value, path: &str) -> Result<Vec<u8>, Error> {
    let s = str_(v, path)?;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|_| Error::meta(path, "is not base64"))
}

fn parse_id(s: &str, path: &str) -> Result<u32, Error> {
    let id = if !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse::<u32>().ok()
    } else {
        None
    };
    match id {
        Some(n) if n < MAX_SLOTS => Ok(n),
        _ => Err(Error::meta(
            path,
            format!("{s:?} is not a number below {MAX_SLOTS}"),
        )),
    }
}

/// The members of `root[section]`, keyed by decimal id, in numeric order.
fn numbered<'a>(
    root: &'a Map<String, Value>,
    section: &str,
) -> Result<Vec<(u32, &'a Value)>, Error> {
    let m = obj(get(root, section, "")?, section)?;
    let mut out = m
        .iter()
        .map(|(k, v)| Ok((parse_id(k, &format!("{section}.{k}"))?, v)))
        .collect::<Result<Vec<_>, Error>>()?;
    out.sort_by_key(|(id, _)| *id);
    Ok(out)
}

/// `["1","2"]` as cryptsetup writes keyslot and segment lists.
fn id_list(v: &Value, path: &str) -> Result<Vec<u32>, Error> {
    let items = arr(v, path)?;
    if items.len() > MAX_SLOTS as usize {
        return Err(Error::meta(path, "too many entries"));
    }
    items
        .iter()
        .map(|i| parse_id(str_(i, path)?, path))
        .collect()
}
