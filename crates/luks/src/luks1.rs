//! LUKS1: one 592-byte binary header with eight keyslots.

use crate::cipher::CipherSpec;
use crate::hash::Hash;
use crate::io::cstr;
use crate::model::{DataSize, Digest, Kdf, Keyslot, MAX_KEY_SIZE, Priority, Segment};
use crate::{Error, af};

pub(crate) const HEADER_LEN: usize = 592;
const KEY_ENABLED: u32 = 0x00AC_71F3;
const KEY_DISABLED: u32 = 0x0000_DEAD;
const SLOTS: usize = 8;
/// Largest AF material a LUKS1 keyslot may claim (4000 stripes of a 512-byte key is 2 MB).
const MAX_MATERIAL: u64 = 16 << 20;

/// A parsed LUKS1 header.
pub(crate) struct Luks1 {
    pub uuid: String,
    pub keyslots: Vec<Keyslot>,
    pub digest: Digest,
    pub segment: Segment,
    /// (offset, length) in bytes of all eight key material areas, disabled ones too.
    pub areas: Vec<(u64, u64)>,
    pub payload_offset: u64,
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

pub(crate) fn parse(h: &[u8]) -> Result<Luks1, Error> {
    let cipher_name = cstr(&h[8..40], "cipherName")?;
    let cipher_mode = cstr(&h[40..72], "cipherMode")?;
    let hash_spec = cstr(&h[72..104], "hashSpec")?;
    let payload_offset = u64::from(be32(&h[104..108]));
    let key_bytes = be32(&h[108..112]) as usize;
    if key_bytes == 0 || key_bytes > MAX_KEY_SIZE {
        return Err(Error::meta("keyBytes", format!("{key_bytes} out of range")));
    }
    let hash = Hash::from_name(&hash_spec)?;
    let encryption = format!("{cipher_name}-{cipher_mode}");
    // Refuse an unknown cipher at read time: nothing could be unlocked anyway.
    let spec = CipherSpec::from_parts(&cipher_name, &cipher_mode)?;
    if !spec.key_len_ok(key_bytes) {
        return Err(Error::UnsupportedCipher(format!(
            "{encryption} with a {key_bytes}-byte key"
        )));
    }
    let digest = Digest {
        keyslots: (0..SLOTS as u32).collect(),
        segments: vec![0],
        hash,
        iterations: be32(&h[164..168]),
        salt: h[132..164].to_vec(),
        value: h[112..132].to_vec(),
    };
    let uuid = cstr(&h[168..208], "uuid")?;

    let mut keyslots = Vec::new();
    let mut areas = Vec::new();
    for i in 0..SLOTS {
        let k = &h[208 + i * 48..208 + (i + 1) * 48];
        let field = |f: &str| format!("keyslot {i} {f}");
        let active = be32(&k[0..4]);
        let iterations = be32(&k[4..8]);
        let material_offset = u64::from(be32(&k[40..44])) * 512;
        let stripes = be32(&k[44..48]);
        if stripes == 0 {
            return Err(Error::meta(field("stripes"), "is 0"));
        }
        let len = af::material_len(key_bytes, stripes);
        if len > MAX_MATERIAL {
            return Err(Error::meta(
                field("stripes"),
                format!("{stripes} stripes is too much material"),
            ));
        }
        if material_offset < HEADER_LEN as u64
            || (payload_offset != 0 && material_offset + len > payload_offset * 512)
        {
            return Err(Error::meta(
                field("keyMaterialOffset"),
                "overlaps the header or the payload",
            ));
        }
        areas.push((material_offset, len));
        match active {
            KEY_DISABLED => continue,
            KEY_ENABLED => {}
            other => {
                return Err(Error::meta(
                    field("active"),
                    format!("invalid state {other:#010x}"),
                ));
            }
        }
        keyslots.push(Keyslot {
            id: i as u32,
            key_size: key_bytes,
            priority: Priority::Normal,
            kdf: Kdf::Pbkdf2 {
                hash,
                iterations,
                salt: k[8..40].to_vec(),
            },
            af_stripes: stripes,
            af_hash: hash,
            area_offset: material_offset,
            area_size: len,
            area_encryption: encryption.clone(),
            area_key_size: key_bytes,
        });
    }
    Ok(Luks1 {
        uuid,
        keyslots,
        digest,
        segment: Segment {
            offset: payload_offset * 512,
            size: DataSize::Dynamic,
            iv_tweak: 0,
            encryption,
            sector_size: 512,
            integrity: None,
        },
        areas,
        payload_offset,
    })
}
