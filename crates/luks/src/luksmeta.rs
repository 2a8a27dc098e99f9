//! LUKSMeta (luksmeta 9): clevis JWEs stored in the gap between the LUKS1
//! keyslot areas and the payload. One model of the format, for readers and
//! writers: where the area lies, its 272-byte header, and how data blocks
//! are placed. Nothing here writes; a writer encodes with [`LuksMeta::encode`].
//!
//! ```text
//! | LUKS1 hdr | 8 key material areas | LUKSMeta hdr, 4 KiB blocks… | payload
//!                                    ^ end of last area, rounded up to 4096
//! ```
//!
//! Header, at the start of the area, all integers big-endian:
//! `magic[8] = "LUKSMETA"`, `version u32 = 1`, `crc32c u32` (of the 272
//! bytes with this field zeroed), then eight entries of `uuid[16]` (all zero:
//! empty), `offset u32` (bytes from the area start), `length u32`,
//! `crc32c u32` of the data, `reserved u32`. Entry i belongs to LUKS keyslot
//! i by convention only; data blocks start 4096-aligned, first fit from 4096.

use crate::Error;
use crate::crc32c;
use crate::io::read_at;
use crate::model::{BindingSource, ClevisBinding};
use latchkey_proto::jwe::Jwe;
use std::io::{Read, Seek};

/// Alignment of the area and of every data block.
pub const ALIGN: u64 = 4096;
/// Size of the LUKSMeta header.
pub const HEADER_LEN: usize = 16 + SLOTS * 32;
/// Entries in the header, one per LUKS1 keyslot.
pub const SLOTS: usize = 8;
const MAGIC: &[u8; 8] = b"LUKSMETA";
const VERSION: u32 = 1;
/// Largest entry this reader loads (the default area holds 24 KiB of data).
pub const MAX_DATA: u64 = 4 << 20;

/// The UUID clevis saves its JWEs under.
pub const CLEVIS_UUID: [u8; 16] = [
    0xcb, 0x6e, 0x89, 0x04, 0x81, 0xff, 0x40, 0xda, 0xa8, 0x4a, 0x07, 0xab, 0x9a, 0xb5, 0x71, 0x5e,
];

/// CRC32C (Castagnoli), as LUKSMeta computes it over its header and data.
pub fn checksum(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

/// The LUKSMeta area of a LUKS1 device: from the end of the last key material
/// area (rounded up to 4096) to the payload (the length rounded down to 4096).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Area {
    /// Byte offset of the area (and of the LUKSMeta header) on the device.
    pub offset: u64,
    /// Usable length in bytes.
    pub len: u64,
}

impl Area {
    /// The area for these key material areas `(offset, length)` and a payload
    /// offset in 512-byte sectors; `None` when there is no room for a header.
    pub fn of(areas: &[(u64, u64)], payload_offset: u64) -> Option<Area> {
        let end = areas.iter().map(|(o, l)| o + l).max().unwrap_or(0);
        let offset = end.div_ceil(ALIGN) * ALIGN;
        let payload = payload_offset.checked_mul(512)?;
        let len = payload.checked_sub(offset)? / ALIGN * ALIGN;
        (len >= ALIGN).then_some(Area { offset, len })
    }
}

/// One header entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Entry {
    /// Type of the data; all zero means the entry is empty.
    pub uuid: [u8; 16],
    /// Bytes from the start of the area.
    pub offset: u32,
    /// Bytes of data.
    pub length: u32,
    /// CRC32C of the data.
    pub crc32c: u32,
}

impl Entry {
    /// No data.
    pub fn is_empty(&self) -> bool {
        self.uuid == [0; 16]
    }

    /// An entry for `data` of type `uuid` stored at `offset`.
    pub fn new(uuid: [u8; 16], offset: u32, data: &[u8]) -> Entry {
        Entry {
            uuid,
            offset,
            length: u32::try_from(data.len()).unwrap_or(u32::MAX),
            crc32c: checksum(data),
        }
    }

    fn end(&self) -> u64 {
        u64::from(self.offset) + u64::from(self.length)
    }
}

/// A LUKSMeta header: the area it describes and its eight entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LuksMeta {
    /// Where the area lies.
    pub area: Area,
    /// Entry i, by convention for LUKS keyslot i.
    pub entries: [Entry; SLOTS],
}

impl LuksMeta {
    /// A freshly initialized header: every entry empty.
    pub fn empty(area: Area) -> LuksMeta {
        LuksMeta {
            area,
            entries: [Entry::default(); SLOTS],
        }
    }

    /// Parses the header bytes read at `area.offset`. `Ok(None)` when there is no
    /// LUKSMeta magic; an error for a bad version, checksum or entry.
    pub fn parse(area: Area, h: &[u8]) -> Result<Option<LuksMeta>, Error> {
        if h.len() < HEADER_LEN || &h[..8] != MAGIC {
            return Ok(None);
        }
        let mut h = h[..HEADER_LEN].to_vec();
        let version = be32(&h[8..12]);
        if version != VERSION {
            return Err(Error::ClevisBinding {
                source_name: "LUKSMeta header".into(),
                problem: format!("unsupported version {version}"),
            });
        }
        let stored = be32(&h[12..16]);
        h[12..16].fill(0);
        if checksum(&h) != stored {
            return Err(Error::LuksMetaChecksum {
                what: "header".into(),
            });
        }
        let mut entries = [Entry::default(); SLOTS];
        for (i, e) in entries.iter_mut().enumerate() {
            let raw = &h[16 + i * 32..16 + (i + 1) * 32];
            let mut uuid = [0u8; 16];
            uuid.copy_from_slice(&raw[..16]);
            *e = Entry {
                uuid,
                offset: be32(&raw[16..20]),
                length: be32(&raw[20..24]),
                crc32c: be32(&raw[24..28]),
            };
            if !e.is_empty()
                && (u64::from(e.offset) < ALIGN
                    || e.end() > area.len
                    || u64::from(e.length) > MAX_DATA)
            {
                return Err(Error::ClevisBinding {
                    source_name: format!("LUKSMeta slot {i}"),
                    problem: format!(
                        "data {}+{} lies outside the {}-byte area",
                        e.offset, e.length, area.len
                    ),
                });
            }
        }
        Ok(Some(LuksMeta { area, entries }))
    }

    /// The 272 header bytes, checksum included, as luksmeta writes them.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..8].copy_from_slice(MAGIC);
        h[8..12].copy_from_slice(&VERSION.to_be_bytes());
        for (i, e) in self.entries.iter().enumerate() {
            let raw = &mut h[16 + i * 32..16 + (i + 1) * 32];
            raw[..16].copy_from_slice(&e.uuid);
            raw[16..20].copy_from_slice(&e.offset.to_be_bytes());
            raw[20..24].copy_from_slice(&e.length.to_be_bytes());
            raw[24..28].copy_from_slice(&e.crc32c.to_be_bytes());
        }
        let crc = checksum(&h);
        h[12..16].copy_from_slice(&crc.to_be_bytes());
        h
    }

    /// The first 4096-aligned offset (from 4096 on) where `len` bytes overlap no
    /// entry's data and none of `taken` (offset, length), as luksmeta places data.
    pub fn allocate(&self, len: usize, taken: &[(u32, u32)]) -> Option<u32> {
        let len = u64::try_from(len).ok()?;
        let busy: Vec<(u64, u64)> = self
            .entries
            .iter()
            .filter(|e| !e.is_empty())
            .map(|e| (u64::from(e.offset), e.end()))
            .chain(
                taken
                    .iter()
                    .map(|&(o, l)| (u64::from(o), u64::from(o) + u64::from(l))),
            )
            .collect();
        let mut off = ALIGN;
        while off + len <= self.area.len {
            let end = off + len.max(1);
            if busy.iter().all(|&(s, e)| end <= s || e <= off) {
                return u32::try_from(off).ok();
            }
            off += ALIGN;
        }
        None
    }

    /// Reads and checks the data of entry `slot` (empty for an empty entry).
    pub fn read_data<R: Read + Seek>(&self, dev: &mut R, slot: usize) -> Result<Vec<u8>, Error> {
        let e = self.entries.get(slot).ok_or_else(|| Error::ClevisBinding {
            source_name: format!("LUKSMeta slot {slot}"),
            problem: "no such slot".into(),
        })?;
        if e.is_empty() {
            return Ok(Vec::new());
        }
        let data = read_at(
            dev,
            self.area.offset + u64::from(e.offset),
            u64::from(e.length),
            "LUKSMeta slot data",
        )?;
        if checksum(&data) != e.crc32c {
            return Err(Error::LuksMetaChecksum {
                what: format!("slot {slot}"),
            });
        }
        Ok(data)
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The LUKSMeta header of a LUKS1 device, if it has one, with its area.
pub(crate) fn read_header<R: Read + Seek>(
    dev: &mut R,
    area: Option<Area>,
) -> Result<Option<LuksMeta>, Error> {
    let Some(area) = area else { return Ok(None) };
    match read_at(dev, area.offset, HEADER_LEN as u64, "LUKSMeta header") {
        Ok(h) => LuksMeta::parse(area, &h),
        // A device cut short before the payload cannot hold LUKSMeta.
        Err(Error::Truncated { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The clevis bindings of a LUKSMeta header; a clevis entry that fails its
/// checksum is an error.
pub(crate) fn clevis_bindings<R: Read + Seek>(
    dev: &mut R,
    lm: &LuksMeta,
) -> Result<Vec<ClevisBinding>, Error> {
    let mut out = Vec::new();
    for (slot, e) in lm.entries.iter().enumerate() {
        if e.uuid != CLEVIS_UUID {
            continue;
        }
        let data = lm.read_data(dev, slot)?;
        let jwe = String::from_utf8(data).map_err(|_| Error::ClevisBinding {
            source_name: format!("LUKSMeta slot {slot}"),
            problem: "JWE is not text".into(),
        })?;
        out.push(ClevisBinding {
            keyslot: slot as u32,
            token_id: None,
            jwe: Jwe::parse(&jwe),
            source: BindingSource::LuksMeta(slot as u32),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AREA: Area = Area {
        offset: 2_068_480,
        len: 28_672,
    };

    #[test]
    fn area_of_the_default_luks1_layout() {
        // Eight 512-bit keyslots of 4000 stripes (250 sectors, 4 KiB aligned) and a
        // payload at 4096 sectors, as cryptsetup 2.6 lays out LUKS1.
        let areas: Vec<(u64, u64)> = (0..8u64).map(|i| ((8 + i * 504) * 512, 256_000)).collect();
        assert_eq!(Area::of(&areas, 4096), Some(AREA));
        assert_eq!(Area::of(&areas, 4040), None);
    }

    #[test]
    fn encode_parse_round_trip_and_checksum() {
        let mut lm = LuksMeta::empty(AREA);
        lm.entries[1] = Entry::new(CLEVIS_UUID, 4096, b"jwe");
        let bytes = lm.encode();
        assert_eq!(LuksMeta::parse(AREA, &bytes).unwrap(), Some(lm));
        let mut bad = bytes;
        bad[20] ^= 1;
        assert!(matches!(
            LuksMeta::parse(AREA, &bad),
            Err(Error::LuksMetaChecksum { .. })
        ));
        assert_eq!(LuksMeta::parse(AREA, &[0u8; HEADER_LEN]).unwrap(), None);
    }

    #[test]
    fn data_outside_the_area_is_refused() {
        let mut lm = LuksMeta::empty(AREA);
        lm.entries[2] = Entry::new(CLEVIS_UUID, 28_000, &[0u8; 1000]);
        assert!(LuksMeta::parse(AREA, &lm.encode()).is_err());
    }

    #[test]
    fn allocation_is_first_fit_on_4k_blocks() {
        let mut lm = LuksMeta::empty(AREA);
        assert_eq!(lm.allocate(1308, &[]), Some(4096));
        lm.entries[1] = Entry::new(CLEVIS_UUID, 4096, &[0u8; 1308]);
        assert_eq!(lm.allocate(5580, &[]), Some(8192));
        lm.entries[2] = Entry::new(CLEVIS_UUID, 8192, &[0u8; 5580]);
        assert_eq!(lm.allocate(100, &[]), Some(16384));
        assert_eq!(lm.allocate(100, &[(16384, 100)]), Some(20480));
        // The default area ends at 28 KiB.
        assert_eq!(lm.allocate(12288, &[]), Some(16384));
        assert_eq!(lm.allocate(12289, &[]), None);
        lm.entries[1] = Entry::default();
        assert_eq!(lm.allocate(4096, &[]), Some(4096));
    }
}
