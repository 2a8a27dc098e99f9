//! Object templates: the storage primary `tpm2_createprimary -C o -g HASH -G KEY` makes
//! with tpm2-tools' defaults, and the sealed data object `tpm2_create` makes for clevis.
//!
//! A primary is derived from the owner seed and its template, so the template must be
//! byte for byte what tpm2-tools sends, or the sealed object will not load under it.
//! tpm2-tools 5 (`lib/tpm2_alg_util.c`, `tools/tpm2_createprimary.c`) uses, for a KEY
//! without `:scheme:symmetric` parts: attributes restricted|decrypt|fixedtpm|fixedparent|
//! sensitivedataorigin|userwithauth, an empty authPolicy and unique, no signing scheme,
//! no KDF, AES-128-CFB as the parent's symmetric key for `rsa*`/`ecc*`, and for `aes*`
//! a symmetric key whose mode is NULL.

use crate::alg::Hash;
use crate::error::{Error, Result};
use crate::marshal::Writer;

/// TPMA_OBJECT bits.
pub(crate) mod attr {
    pub const FIXED_TPM: u32 = 0x0000_0002;
    pub const FIXED_PARENT: u32 = 0x0000_0010;
    pub const SENSITIVE_DATA_ORIGIN: u32 = 0x0000_0020;
    pub const USER_WITH_AUTH: u32 = 0x0000_0040;
    pub const ADMIN_WITH_POLICY: u32 = 0x0000_0080;
    pub const NO_DA: u32 = 0x0000_0400;
    pub const RESTRICTED: u32 = 0x0001_0000;
    pub const DECRYPT: u32 = 0x0002_0000;
}

const ALG_RSA: u16 = 0x0001;
const ALG_AES: u16 = 0x0006;
const ALG_KEYEDHASH: u16 = 0x0008;
const ALG_NULL: u16 = 0x0010;
const ALG_ECC: u16 = 0x0023;
const ALG_SYMCIPHER: u16 = 0x0025;
const ALG_CFB: u16 = 0x0043;

const PRIMARY_ATTRS: u32 = attr::RESTRICTED
    | attr::DECRYPT
    | attr::FIXED_TPM
    | attr::FIXED_PARENT
    | attr::SENSITIVE_DATA_ORIGIN
    | attr::USER_WITH_AUTH;

/// The `key` of a clevis tpm2 binding: the algorithm of the storage primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrimaryKey {
    /// `rsa`, `rsa1024`..`rsa4096`: RSA of this many bits.
    Rsa(u16),
    /// `ecc`, `ecc256`, `ecc_nist_p384`, ...: a NIST curve (TPM_ECC_CURVE).
    Ecc(u16),
    /// `aes`, `aes128`..`aes256`: a symmetric storage key of this many bits.
    Aes(u16),
}

const SUPPORTED: &str = "ecc, ecc192, ecc224, ecc256, ecc384, ecc521, ecc_nist_pNNN, rsa, \
                         rsa1024, rsa2048, rsa3072, rsa4096, aes, aes128, aes192, aes256";

impl PrimaryKey {
    /// Parses a tpm2-tools object algorithm as clevis passes it to `-G`; `field` names the
    /// config or header member for the error.
    pub fn from_name(name: &str, field: &'static str) -> Result<PrimaryKey> {
        let unsupported = || Error::Unsupported {
            field,
            value: name.into(),
            supported: SUPPORTED,
        };
        if let Some(bits) = name.strip_prefix("rsa") {
            return match bits {
                "" => Ok(PrimaryKey::Rsa(2048)),
                "1024" | "2048" | "3072" | "4096" => {
                    Ok(PrimaryKey::Rsa(bits.parse().map_err(|_| unsupported())?))
                }
                _ => Err(unsupported()),
            };
        }
        if let Some(curve) = name.strip_prefix("ecc") {
            let curve = curve.strip_prefix("_nist_p").unwrap_or(curve);
            let id = match curve {
                "" | "256" => 0x0003,
                "192" => 0x0001,
                "224" => 0x0002,
                "384" => 0x0004,
                "521" => 0x0005,
                _ => return Err(unsupported()),
            };
            return Ok(PrimaryKey::Ecc(id));
        }
        match name {
            "aes" | "aes128" => Ok(PrimaryKey::Aes(128)),
            "aes192" => Ok(PrimaryKey::Aes(192)),
            "aes256" => Ok(PrimaryKey::Aes(256)),
            _ => Err(unsupported()),
        }
    }

    /// TPMT_PUBLIC of the primary, with `name_alg` as its nameAlg (clevis's `hash`).
    pub(crate) fn template(self, name_alg: Hash, w: &mut Writer) {
        let ty = match self {
            PrimaryKey::Rsa(_) => ALG_RSA,
            PrimaryKey::Ecc(_) => ALG_ECC,
            PrimaryKey::Aes(_) => ALG_SYMCIPHER,
        };
        w.u16(ty).u16(name_alg.id()).u32(PRIMARY_ATTRS).tpm2b(&[]);
        match self {
            PrimaryKey::Rsa(bits) => {
                // symmetric, scheme, keyBits, exponent (0: the default 2^16+1); unique.
                w.u16(ALG_AES).u16(128).u16(ALG_CFB).u16(ALG_NULL);
                w.u16(bits).u32(0).tpm2b(&[]);
            }
            PrimaryKey::Ecc(curve) => {
                // symmetric, scheme, curveID, kdf; unique: an empty point.
                w.u16(ALG_AES).u16(128).u16(ALG_CFB).u16(ALG_NULL);
                w.u16(curve).u16(ALG_NULL).tpm2b(&[]).tpm2b(&[]);
            }
            PrimaryKey::Aes(bits) => {
                // tpm2-tools gives a symmetric object's key no mode unless told.
                w.u16(ALG_AES).u16(bits).u16(ALG_NULL).tpm2b(&[]);
            }
        }
    }
}

/// TPMT_PUBLIC of the sealed JWK, as clevis makes it with `tpm2_create -g HASH -a
/// fixedtpm|fixedparent|noda|adminwithpolicy[|userwithauth] [-L policy] -i-`: a keyedhash
/// object without scheme, usable with the policy when there is one and with an empty
/// password otherwise.
pub(crate) fn sealed(name_alg: Hash, policy: Option<&[u8]>, w: &mut Writer) {
    let mut attrs = attr::FIXED_TPM | attr::FIXED_PARENT | attr::NO_DA | attr::ADMIN_WITH_POLICY;
    if policy.is_none() {
        attrs |= attr::USER_WITH_AUTH;
    }
    w.u16(ALG_KEYEDHASH).u16(name_alg.id()).u32(attrs);
    w.tpm2b(policy.unwrap_or(&[]));
    w.u16(ALG_NULL).tpm2b(&[]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(w: &Writer) -> String {
        w.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn key_names() {
        let k = |n| PrimaryKey::from_name(n, "key").unwrap();
        assert_eq!(k("ecc"), PrimaryKey::Ecc(3));
        assert_eq!(k("ecc_nist_p384"), PrimaryKey::Ecc(4));
        assert_eq!(k("rsa"), PrimaryKey::Rsa(2048));
        assert_eq!(k("rsa3072"), PrimaryKey::Rsa(3072));
        assert_eq!(k("aes"), PrimaryKey::Aes(128));
        for bad in [
            "symcipher",
            "keyedhash",
            "rsa:null:aes128cfb",
            "ecc_sm2",
            "rsa512",
            "",
        ] {
            let e = PrimaryKey::from_name(bad, "clevis.tpm2.key").unwrap_err();
            assert!(e.to_string().contains("clevis.tpm2.key"), "{e}");
        }
    }

    /// The sealed object's public area without the TPM-computed unique, as in the
    /// `jwk_pub` clevis wrote: `002e 0008 000b 000004d2 0000 0010 0020 <unique>`.
    #[test]
    fn sealed_template_matches_clevis() {
        let mut w = Writer::default();
        sealed(Hash::Sha256, None, &mut w);
        assert_eq!(hex(&w), "0008000b000004d2000000100000");
        let mut w = Writer::default();
        sealed(Hash::Sha256, Some(&[0xAA; 32]), &mut w);
        assert!(hex(&w).starts_with("0008000b000004920020aaaa"));
    }
}
