//! [`Header`]: a LUKS1 or LUKS2 header read from a device.

use crate::luks2::binary;
use crate::luks2::json;
use crate::model::{
    ClevisBinding, CopyState, DataSize, Digest, DmFlags, DmParams, HeaderCopy, HeaderHealth,
    Keyslot, Segment, Token, Version,
};
use crate::{Error, io::read_at, luks1, luksmeta};
use std::io::{Read, Seek};

/// A parsed LUKS header: identity, keyslots, the data segment, and the clevis
/// bindings stored with it. Holds no secret.
#[derive(Debug, Clone)]
pub struct Header {
    version: Version,
    uuid: String,
    label: Option<String>,
    subsystem: Option<String>,
    health: HeaderHealth,
    keyslots: Vec<Keyslot>,
    pub(crate) digests: Vec<Digest>,
    segments: Vec<(u32, Segment)>,
    flags: DmFlags,
    requirements: Vec<String>,
    tokens: Vec<Token>,
    bindings: Vec<ClevisBinding>,
    luksmeta_area: Option<luksmeta::Area>,
    luksmeta: Option<luksmeta::LuksMeta>,
}

impl Header {
    /// Read and verify the header at the start of `dev`.
    ///
    /// LUKS2: both binary headers are checked and the valid one with the
    /// higher seqid is used ([`Header::health`] says which). LUKS1: the
    /// header, then LUKSMeta if present.
    pub fn read<R: Read + Seek>(dev: &mut R) -> Result<Header, Error> {
        let start = read_at(dev, 0, 8, "LUKS magic");
        let v1 = matches!(&start, Ok(b) if &b[..6] == binary::MAGIC_PRIMARY && b[6..8] == [0, 1]);
        if v1 {
            return Self::read_luks1(dev);
        }
        if let Ok(b) = &start {
            let version = u16::from_be_bytes([b[6], b[7]]);
            if &b[..6] == binary::MAGIC_PRIMARY && version != 2 {
                return Err(Error::UnsupportedVersion(version));
            }
        }
        Self::read_luks2(dev)
    }

    /// Read a header from a byte buffer (e.g. a header backup file).
    pub fn from_bytes(bytes: &[u8]) -> Result<Header, Error> {
        Self::read(&mut std::io::Cursor::new(bytes))
    }

    fn read_luks2<R: Read + Seek>(dev: &mut R) -> Result<Header, Error> {
        let chosen = binary::read_both(dev, &|c| json::parse(&c.json, c.hdr_size))?;
        let (c, mut m) = (chosen.copy, chosen.parsed);
        // A token may outlive its keyslot (luksKillSlot leaves it); such a
        // binding cannot open anything.
        m.bindings
            .retain(|b| m.keyslots.iter().any(|k| k.id == b.keyslot));
        let nonempty = |s: String| if s.is_empty() { None } else { Some(s) };
        Ok(Header {
            version: Version::Luks2,
            uuid: c.uuid,
            label: nonempty(c.label),
            subsystem: nonempty(c.subsystem),
            health: chosen.health,
            keyslots: m.keyslots,
            digests: m.digests,
            segments: m.segments,
            flags: m.flags,
            requirements: m.requirements,
            tokens: m.tokens,
            bindings: m.bindings,
            luksmeta_area: None,
            luksmeta: None,
        })
    }

    fn read_luks1<R: Read + Seek>(dev: &mut R) -> Result<Header, Error> {
        let raw = read_at(dev, 0, luks1::HEADER_LEN as u64, "LUKS1 header")?;
        let h = luks1::parse(&raw)?;
        let luksmeta_area = luksmeta::Area::of(&h.areas, h.payload_offset);
        let lm = luksmeta::read_header(dev, luksmeta_area)?;
        let mut bindings = match &lm {
            Some(lm) => luksmeta::clevis_bindings(dev, lm)?,
            None => Vec::new(),
        };
        bindings.retain(|b| h.keyslots.iter().any(|k| k.id == b.keyslot));
        Ok(Header {
            version: Version::Luks1,
            uuid: h.uuid,
            label: None,
            subsystem: None,
            // LUKS1 has one header and no sequence id.
            health: HeaderHealth {
                used: HeaderCopy::Primary,
                primary: CopyState::Valid { seqid: 0 },
                secondary: CopyState::Absent,
            },
            keyslots: h.keyslots,
            digests: vec![h.digest],
            segments: vec![(0, h.segment)],
            flags: DmFlags::default(),
            requirements: Vec::new(),
            tokens: Vec::new(),
            bindings,
            luksmeta_area,
            luksmeta: lm,
        })
    }

    /// LUKS1 or LUKS2.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Volume UUID as written in the header (with dashes).
    pub fn uuid(&self) -> &str {
        &self.uuid
    }

    /// LUKS2 label, if set.
    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }

    /// LUKS2 subsystem, if set.
    pub fn subsystem(&self) -> Option<&str> {
        self.subsystem.as_deref()
    }

    /// Which header copy was used and the state of both.
    pub fn health(&self) -> &HeaderHealth {
        &self.health
    }

    /// Active keyslots, by number.
    pub fn keyslots(&self) -> &[Keyslot] {
        &self.keyslots
    }

    /// One active keyslot.
    pub fn keyslot(&self, id: u32) -> Option<&Keyslot> {
        self.keyslots.iter().find(|k| k.id == id)
    }

    /// Volume key digests.
    pub fn digests(&self) -> &[Digest] {
        &self.digests
    }

    /// Crypt segments by id (LUKS1 has exactly one, id 0).
    pub fn segments(&self) -> &[(u32, Segment)] {
        &self.segments
    }

    /// Activation flags from LUKS2 `config.flags`.
    pub fn flags(&self) -> DmFlags {
        self.flags
    }

    /// LUKS2 `config.requirements.mandatory` (e.g. `online-reencrypt`).
    pub fn requirements(&self) -> &[String] {
        &self.requirements
    }

    /// All LUKS2 tokens, of any type.
    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    /// Clevis bindings (LUKS2 tokens or LUKSMeta slots), each tied to an active keyslot.
    pub fn clevis_bindings(&self) -> &[ClevisBinding] {
        &self.bindings
    }

    /// LUKS1: the LUKSMeta header, if the device is initialized for it. Its
    /// entries include those of inactive keyslots and of other UUIDs.
    pub fn luksmeta(&self) -> Option<&luksmeta::LuksMeta> {
        self.luksmeta.as_ref()
    }

    /// LUKS1: where LUKSMeta lives (or would, once initialized); `None` for LUKS2
    /// or when the gap before the payload is too small.
    pub fn luksmeta_area(&self) -> Option<luksmeta::Area> {
        self.luksmeta_area
    }

    /// The clevis binding of one keyslot, if any.
    pub fn clevis_binding_for(&self, keyslot: u32) -> Option<&ClevisBinding> {
        self.bindings.iter().find(|b| b.keyslot == keyslot)
    }

    /// The segment a digest covers (the lowest id it lists).
    pub(crate) fn segment_for(&self, digest: &Digest) -> Option<&Segment> {
        let mut ids = digest.segments.clone();
        ids.sort_unstable();
        ids.iter()
            .find_map(|id| self.segments.iter().find(|(s, _)| s == id).map(|(_, s)| s))
    }

    /// dm-crypt parameters for `segment` with a key of `key_size` bytes.
    pub(crate) fn dm_params(&self, segment: &Segment, key_size: usize) -> DmParams {
        DmParams {
            cipher: segment.encryption.clone(),
            key_size,
            iv_offset: segment.iv_tweak,
            offset_sectors: segment.offset / 512,
            size: segment.size,
            sector_size: segment.sector_size,
            flags: self.flags,
            uuid: self.uuid.clone(),
            label: self.label.clone(),
            version: self.version,
        }
    }
}

impl DataSize {
    /// Size in 512-byte sectors, given the device length in bytes for `Dynamic`.
    pub fn sectors(self, offset_bytes: u64, device_bytes: u64) -> u64 {
        match self {
            DataSize::Dynamic => device_bytes.saturating_sub(offset_bytes) / 512,
            DataSize::Bytes(b) => b / 512,
        }
    }
}
