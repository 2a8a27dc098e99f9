//! LUKSMeta (luksmeta 9): clevis JWEs stored in the gap between the LUKS1
//! keyslot areas and the payload.
//!
//! ```text
//! | LUKS1 hdr | 8 key material areas | LUKSMeta hdr, 4 KiB blocks… | payload
//!                                    ^ end of last area, rounded up to 4096
//! ```

use crate::Error;
use crate::crc32c::crc32c;
use crate::io::read_at;
use crate::model::{BindingSource, ClevisBinding};
use std::io::{Read, Seek};

const ALIGN: u64 = 4096;
const MAGIC: &[u8; 8] = b"LUKSMETA";
const HEADER_LEN: usize = 16 + 8 * 32;
/// The UUID clevis saves its JWEs under.
pub const CLEVIS_UUID: [u8; 16] = [
    0xcb, 0x6e, 0x89, 0x04, 0x81, 0xff, 0x40, 0xda, 0xa8, 0x4a, 0x07, 0xab, 0x9a, 0xb5, 0x71, 0x5e,
];

/// The clevis bindings in the LUKSMeta area, if the device has one.
///
/// `areas` are the (offset, length) of all eight key material areas;
/// `payload_offset` is in 512-byte sectors. No LUKSMeta magic means no
/// bindings; a LUKSMeta header or clevis slot that fails its checksum is an error.
pub(crate) fn read<R: Read + Seek>(
    dev: &mut R,
    areas: &[(u64, u64)],
    payload_offset: u64,
) -> Result<Vec<ClevisBinding>, Error> {
    let end = areas.iter().map(|(o, l)| o + l).max().unwrap_or(0);
    let start = end.div_ceil(ALIGN) * ALIGN;
    let payload = payload_offset * 512;
    if payload <= start {
        return Ok(Vec::new());
    }
    let hole = (payload - start) / ALIGN * ALIGN;
    if hole < HEADER_LEN as u64 {
        return Ok(Vec::new());
    }
    let mut h = match read_at(dev, start, HEADER_LEN as u64, "LUKSMeta header") {
        Ok(h) => h,
        // A device cut short before the payload cannot hold LUKSMeta.
        Err(Error::Truncated { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    if &h[..8] != MAGIC {
        return Ok(Vec::new());
    }
    let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let version = be32(&h[8..12]);
    if version != 1 {
        return Err(Error::ClevisBinding {
            source_name: "LUKSMeta header".into(),
            problem: format!("unsupported version {version}"),
        });
    }
    let stored = be32(&h[12..16]);
    h[12..16].fill(0);
    if crc32c(&h) != stored {
        return Err(Error::LuksMetaChecksum {
            what: "header".into(),
        });
    }
    let mut out = Vec::new();
    for slot in 0..8u32 {
        let e = &h[16 + slot as usize * 32..16 + (slot as usize + 1) * 32];
        if e[..16] != CLEVIS_UUID {
            continue;
        }
        let (offset, length, crc) = (
            u64::from(be32(&e[16..20])),
            u64::from(be32(&e[20..24])),
            be32(&e[24..28]),
        );
        let name = || format!("LUKSMeta slot {slot}");
        if offset < ALIGN || offset.checked_add(length).is_none_or(|x| x > hole) {
            return Err(Error::ClevisBinding {
                source_name: name(),
                problem: format!("data {offset}+{length} lies outside the {hole}-byte area"),
            });
        }
        let data = read_at(dev, start + offset, length, "LUKSMeta slot data")?;
        if crc32c(&data) != crc {
            return Err(Error::LuksMetaChecksum {
                what: format!("slot {slot}"),
            });
        }
        let jwe = String::from_utf8(data).map_err(|_| Error::ClevisBinding {
            source_name: name(),
            problem: "JWE is not text".into(),
        })?;
        out.push(ClevisBinding {
            keyslot: slot,
            token_id: None,
            jwe: jwe.trim().to_owned(),
            source: BindingSource::LuksMeta(slot),
        });
    }
    Ok(out)
}
