//! The two LUKS2 binary headers: magic, checksum, and which copy to trust.

use crate::Error;
use crate::hash::Hash;
use crate::io::{cstr, read_at};
use crate::model::{CopyState, HeaderCopy, HeaderHealth};
use std::io::{Read, Seek};

pub(crate) const MAGIC_PRIMARY: &[u8; 6] = b"LUKS\xba\xbe";
pub(crate) const MAGIC_SECONDARY: &[u8; 6] = b"SKUL\xba\xbe";
const BINARY_SIZE: u64 = 4096;
const CSUM_OFFSET: usize = 448;
const CSUM_LEN: usize = 64;

/// Every metadata size LUKS2 allows (16 KiB to 4 MiB); the secondary header
/// sits at one of these offsets.
pub(crate) const HDR_SIZES: [u64; 9] = [
    0x4000, 0x8000, 0x1_0000, 0x2_0000, 0x4_0000, 0x8_0000, 0x10_0000, 0x20_0000, 0x40_0000,
];

/// One verified header copy.
pub(crate) struct Copy {
    pub seqid: u64,
    pub hdr_size: u64,
    pub label: String,
    pub uuid: String,
    pub subsystem: String,
    /// The JSON text, without its NUL padding.
    pub json: Vec<u8>,
}

/// The chosen copy, what `parse` made of its JSON, and the state of both.
pub(crate) struct Chosen<T> {
    pub copy: Copy,
    pub parsed: T,
    pub health: HeaderHealth,
}

/// Read both copies and pick the valid one with the highest seqid (the
/// primary on a tie), as cryptsetup does before repairing the other.
///
/// `parse` reads the JSON of a copy; a copy whose JSON it rejects counts as
/// damaged, so the other copy is tried.
pub(crate) fn read_both<R: Read + Seek, T>(
    dev: &mut R,
    parse: &dyn Fn(&Copy) -> Result<T, Error>,
) -> Result<Chosen<T>, Error> {
    let check = |c: Copy| parse(&c).map(|t| (c, t));
    let primary = read_copy(dev, 0, MAGIC_PRIMARY).and_then(check);
    // With a good primary the secondary is where it says; otherwise look at
    // every allowed offset.
    let secondary = match &primary {
        Ok((p, _)) => read_copy(dev, p.hdr_size, MAGIC_SECONDARY).and_then(check),
        Err(_) => {
            let mut found = Err(Error::NotLuks);
            for off in HDR_SIZES {
                match read_copy(dev, off, MAGIC_SECONDARY) {
                    Err(Error::NotLuks | Error::Truncated { .. }) => continue,
                    other => {
                        found = other.and_then(check);
                        break;
                    }
                }
            }
            found
        }
    };
    // Per copy, NotLuks means its magic is missing, not the whole device's.
    let why = |e: &Error| match e {
        Error::NotLuks => "no LUKS2 magic".to_owned(),
        e => e.to_string(),
    };
    let state = |r: &Result<(Copy, T), Error>| match r {
        Ok((c, _)) => CopyState::Valid { seqid: c.seqid },
        Err(e) => CopyState::Damaged { reason: why(e) },
    };
    let (ps, ss) = (state(&primary), state(&secondary));
    let (used, (copy, parsed)) = match (primary, secondary) {
        (Ok(p), Ok(s)) if s.0.seqid > p.0.seqid => (HeaderCopy::Secondary, s),
        (Ok(p), _) => (HeaderCopy::Primary, p),
        (Err(_), Ok(s)) => (HeaderCopy::Secondary, s),
        (Err(Error::NotLuks), Err(Error::NotLuks)) => return Err(Error::NotLuks),
        (Err(p), Err(s)) => {
            return Err(Error::NoValidHeader {
                primary: why(&p),
                secondary: why(&s),
            });
        }
    };
    Ok(Chosen {
        copy,
        parsed,
        health: HeaderHealth {
            used,
            primary: ps,
            secondary: ss,
        },
    })
}

/// Read and verify the copy at `offset`. A wrong magic is `NotLuks`.
fn read_copy<R: Read + Seek>(dev: &mut R, offset: u64, magic: &[u8; 6]) -> Result<Copy, Error> {
    let bin = read_at(dev, offset, BINARY_SIZE, "LUKS2 binary header")?;
    if &bin[..6] != magic {
        return Err(Error::NotLuks);
    }
    let version = u16::from_be_bytes([bin[6], bin[7]]);
    if version != 2 {
        return Err(Error::UnsupportedVersion(version));
    }
    let hdr_size = be64(&bin[8..16]);
    if !HDR_SIZES.contains(&hdr_size) {
        return Err(Error::meta(
            "hdr_size",
            format!("{hdr_size} is not an allowed LUKS2 header size"),
        ));
    }
    let hdr_offset = be64(&bin[256..264]);
    if hdr_offset != offset {
        return Err(Error::meta(
            "hdr_offset",
            format!("{hdr_offset} but the header is at {offset}"),
        ));
    }
    let alg_name = cstr(&bin[72..104], "checksum_alg")?;
    let alg = Hash::from_name(&alg_name)?;
    let mut whole = bin;
    whole.extend(read_at(
        dev,
        offset + BINARY_SIZE,
        hdr_size - BINARY_SIZE,
        "LUKS2 JSON area",
    )?);
    let mut stored = [0u8; CSUM_LEN];
    stored.copy_from_slice(&whole[CSUM_OFFSET..CSUM_OFFSET + CSUM_LEN]);
    whole[CSUM_OFFSET..CSUM_OFFSET + CSUM_LEN].fill(0);
    let mut computed = [0u8; CSUM_LEN];
    alg.digest_into(&[&whole], &mut computed[..alg.output_len()]);
    if computed[..alg.output_len()] != stored[..alg.output_len()] {
        return Err(Error::meta("csum", format!("{alg_name} checksum mismatch")));
    }
    let json_area = &whole[BINARY_SIZE as usize..];
    let json_len = json_area
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(json_area.len());
    Ok(Copy {
        seqid: be64(&whole[16..24]),
        hdr_size,
        label: cstr(&whole[24..72], "label")?,
        uuid: cstr(&whole[168..208], "uuid")?,
        subsystem: cstr(&whole[208..256], "subsystem")?,
        json: json_area[..json_len].to_vec(),
    })
}

pub(crate) fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}
