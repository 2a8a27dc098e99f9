//! Hash algorithms by their tpm2-tools names, and PCR selections.

use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};

use crate::error::{Error, Result};
use crate::marshal::Writer;

/// A TPM hash algorithm this crate can also compute in software (policy digests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    /// `sha1` (TPM_ALG_SHA1).
    Sha1,
    /// `sha256`.
    Sha256,
    /// `sha384`.
    Sha384,
    /// `sha512`.
    Sha512,
}

impl Hash {
    const ALL: [Hash; 4] = [Hash::Sha1, Hash::Sha256, Hash::Sha384, Hash::Sha512];

    /// From a tpm2-tools name (`sha256`, also `SHA256` and `sha-256` as clevis-pin-tpm2
    /// accepts them); `field` names the config or header member for the error.
    pub fn from_name(name: &str, field: &'static str) -> Result<Hash> {
        let n = name.to_ascii_lowercase().replace('-', "");
        Hash::ALL
            .into_iter()
            .find(|h| h.name() == n)
            .ok_or_else(|| Error::Unsupported {
                field,
                value: name.into(),
                supported: "sha1, sha256, sha384, sha512",
            })
    }

    /// From a TPM_ALG_ID.
    pub fn from_id(id: u16) -> Option<Hash> {
        Hash::ALL.into_iter().find(|h| h.id() == id)
    }

    /// The tpm2-tools name.
    pub fn name(self) -> &'static str {
        match self {
            Hash::Sha1 => "sha1",
            Hash::Sha256 => "sha256",
            Hash::Sha384 => "sha384",
            Hash::Sha512 => "sha512",
        }
    }

    /// TPM_ALG_ID.
    pub fn id(self) -> u16 {
        match self {
            Hash::Sha1 => 0x0004,
            Hash::Sha256 => 0x000B,
            Hash::Sha384 => 0x000C,
            Hash::Sha512 => 0x000D,
        }
    }

    /// Digest size in bytes.
    pub fn size(self) -> usize {
        match self {
            Hash::Sha1 => 20,
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }

    /// The digest of the concatenation of `parts`.
    pub fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            d.finalize().to_vec()
        }
        match self {
            Hash::Sha1 => run::<Sha1>(parts),
            Hash::Sha256 => run::<Sha256>(parts),
            Hash::Sha384 => run::<Sha384>(parts),
            Hash::Sha512 => run::<Sha512>(parts),
        }
    }
}

/// PCRs a policy covers: one bank, indices 0..=23 (the PC client's PCRs, which is what
/// tpm2-tools' three-byte selection addresses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcrSelection {
    /// The bank.
    pub bank: Hash,
    bits: u32,
}

/// How many PCRs a selection can name.
pub const PCR_COUNT: u8 = 24;

impl PcrSelection {
    /// A selection of `ids`; the order and repeats do not matter (the TPM sorts them).
    pub fn new(bank: Hash, ids: &[u8]) -> Result<PcrSelection> {
        let mut bits = 0u32;
        for &i in ids {
            if i >= PCR_COUNT {
                return Err(Error::Config(format!(
                    "PCR {i} is out of range (0 to {})",
                    PCR_COUNT - 1
                )));
            }
            bits |= 1 << i;
        }
        if bits == 0 {
            return Err(Error::Config("no PCR selected".into()));
        }
        Ok(PcrSelection { bank, bits })
    }

    /// The selected indices, ascending: the order in which the TPM hashes their values.
    pub fn ids(&self) -> Vec<u8> {
        (0..PCR_COUNT)
            .filter(|i| self.bits & (1 << i) != 0)
            .collect()
    }

    pub(crate) fn bits(&self) -> u32 {
        self.bits
    }

    pub(crate) fn from_bits(bank: Hash, bits: u32) -> PcrSelection {
        PcrSelection { bank, bits }
    }

    /// TPML_PCR_SELECTION with this one bank, `sizeofSelect` 3 as tpm2-tools sends it.
    /// The policy digest covers these bytes, so they must not vary.
    pub(crate) fn marshal(&self, w: &mut Writer) {
        w.u32(1).u16(self.bank.id()).u8(3);
        w.bytes(&self.bits.to_le_bytes()[..3]);
    }

    /// `sha256:0,7`, as tpm2-tools and clevis write it.
    pub fn spec(&self) -> String {
        let ids: Vec<String> = self.ids().iter().map(u8::to_string).collect();
        format!("{}:{}", self.bank.name(), ids.join(","))
    }
}

/// TPM_CC_PolicyPCR, hashed into the policy digest.
const CC_POLICY_PCR: u32 = 0x0000_017F;

/// The policy digest `TPM2_PolicyPCR(pcrs)` leaves in a fresh session whose hash is
/// `session`, for the PCR values `values` (concatenated in ascending index order): what
/// `tpm2_createpolicy --policy-pcr` computes, and what the TPM recomputes at unseal time.
pub fn policy_pcr_digest(session: Hash, pcrs: &PcrSelection, values: &[u8]) -> Vec<u8> {
    let mut sel = Writer::default();
    pcrs.marshal(&mut sel);
    let zero = vec![0u8; session.size()];
    let pcr_digest = session.digest(&[values]);
    session.digest(&[&zero, &CC_POLICY_PCR.to_be_bytes(), &sel.0, &pcr_digest])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_selections() {
        assert_eq!(Hash::from_name("SHA256", "hash").unwrap(), Hash::Sha256);
        assert_eq!(Hash::from_name("sha-384", "hash").unwrap(), Hash::Sha384);
        let e = Hash::from_name("sm3_256", "clevis.tpm2.hash").unwrap_err();
        assert!(e.to_string().contains("clevis.tpm2.hash"), "{e}");
        let s = PcrSelection::new(Hash::Sha256, &[7, 0, 7, 23]).unwrap();
        assert_eq!(s.ids(), [0, 7, 23]);
        assert_eq!(s.spec(), "sha256:0,7,23");
        let mut w = Writer::default();
        s.marshal(&mut w);
        assert_eq!(w.0, [0, 0, 0, 1, 0, 0x0B, 3, 0x81, 0, 0x80]);
        assert!(PcrSelection::new(Hash::Sha1, &[24]).is_err());
        assert!(PcrSelection::new(Hash::Sha1, &[]).is_err());
    }

    use latchkey_testkit::hex;

    /// Made by tpm2-tools 5.4 against swtpm 0.7.1:
    /// `tpm2_createpolicy -g sha256 --policy-pcr -l sha256:7 -f z32 -L pol` with z32 the
    /// 32 zero bytes of a fresh PCR 7, and `-g sha1 -l sha256:0,7 -f a64` with 64 `a`s.
    #[test]
    fn policy_digest_matches_tpm2_tools() {
        let s = PcrSelection::new(Hash::Sha256, &[7]).unwrap();
        assert_eq!(
            hex(&policy_pcr_digest(Hash::Sha256, &s, &[0u8; 32])),
            "8b5682d81b29435d08d79278150611dc7e5923b2fefcce684a09577b40130a8b"
        );
        let s = PcrSelection::new(Hash::Sha256, &[7, 0]).unwrap();
        assert_eq!(
            hex(&policy_pcr_digest(Hash::Sha1, &s, &[b'a'; 64])),
            "606abd75c1b0f2848099961aa9c760c0731ca1ad"
        );
    }
}
