//! Sector decryption of keyslot material: AES in XTS, CBC or ECB mode with
//! the IV generators dm-crypt offers (plain, plain64, essiv:HASH).
//!
//! Keyslot areas are always processed in 512-byte sectors numbered from 0 at
//! the start of the area, whatever the data segment's sector size; this is what
//! cryptsetup's `crypt_storage` does for LUKS1 and LUKS2 keyslots alike.

use crate::Error;
use crate::hash::Hash;
use aes::cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use aes::{Aes128, Aes192, Aes256, Block};
use zeroize::Zeroizing;

/// Sector size for keyslot material.
pub(crate) const SECTOR: usize = 512;

/// A parsed dm-crypt cipher specification such as `aes-xts-plain64`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CipherSpec {
    mode: Mode,
    iv: Iv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Xts,
    Cbc,
    Ecb,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Iv {
    None,
    Plain,
    Plain64,
    Essiv(Hash),
}

impl CipherSpec {
    /// Parse `cipher-mode-iv` (LUKS2 `encryption`) .
    pub(crate) fn parse(spec: &str) -> Result<CipherSpec, Error> {
        let unsupported = || Error::UnsupportedCipher(spec.to_owned());
        let (cipher, rest) = spec.split_once('-').ok_or_else(unsupported)?;
        Self::from_parts(cipher, rest).map_err(|_| unsupported())
    }

    /// Parse a LUKS1 `cipherName` and `cipherMode` pair.
    pub(crate) fn from_parts(cipher: &str, mode: &str) -> Result<CipherSpec, Error> {
        let unsupported = || Error::UnsupportedCipher(format!("{cipher}-{mode}"));
        if cipher != "aes" {
            return Err(unsupported());
        }
        let (mode_name, iv_name) = match mode.split_once('-') {
            Some((m, i)) => (m, Some(i)),
            None => (mode, None),
        };
        let mode = match mode_name {
            "xts" => Mode::Xts,
            "cbc" => Mode::Cbc,
            "ecb" => Mode::Ecb,
            _ => return Err(unsupported()),
        };
        let iv = match (mode, iv_name) {
            (Mode::Ecb, None) => Iv::None,
            (Mode::Ecb, Some(_)) | (_, None) => return Err(unsupported()),
            (_, Some("plain")) => Iv::Plain,
            (_, Some("plain64")) => Iv::Plain64,
            (_, Some(other)) => match other.strip_prefix("essiv:") {
                Some(h) => {
                    let h = Hash::from_name(h).map_err(|_| unsupported())?;
                    if !matches!(h.output_len(), 16 | 24 | 32) {
                        return Err(unsupported());
                    }
                    Iv::Essiv(h)
                }
                None => return Err(unsupported()),
            },
        };
        Ok(CipherSpec { mode, iv })
    }

    /// Whether `key_len` bytes is a valid key for this spec.
    pub(crate) fn key_len_ok(&self, key_len: usize) -> bool {
        match self.mode {
            Mode::Xts => matches!(key_len, 32 | 48 | 64),
            Mode::Cbc | Mode::Ecb => matches!(key_len, 16 | 24 | 32),
        }
    }

    /// Decrypt `buf` (a whole number of 512-byte sectors) in place, sector 0 first.
    pub(crate) fn decrypt_sectors(&self, key: &[u8], buf: &mut [u8]) -> Result<(), Error> {
        self.decrypt_units(key, buf, SECTOR, 0)
    }

    /// Decrypt `buf`, a whole number of `unit`-byte encryption sectors, in
    /// place. The first sector's IV is `first_iv`; each following sector's IV
    /// advances by `unit / 512`, because dm-crypt counts IVs in 512-byte
    /// sectors whatever the encryption sector size (no `iv_large_sectors`).
    pub(crate) fn decrypt_units(
        &self,
        key: &[u8],
        buf: &mut [u8],
        unit: usize,
        first_iv: u64,
    ) -> Result<(), Error> {
        if !self.key_len_ok(key.len()) || unit % SECTOR != 0 || buf.len() % unit != 0 {
            return Err(Error::UnsupportedCipher(format!(
                "{self:?} with a {}-byte key",
                key.len()
            )));
        }
        let (data_key, tweak_key) = match self.mode {
            Mode::Xts => key.split_at(key.len() / 2),
            Mode::Cbc | Mode::Ecb => (key, &[][..]),
        };
        let data = AesKey::new(data_key);
        let iv_cipher = match self.iv {
            Iv::Essiv(h) => {
                let mut salt = Zeroizing::new(vec![0u8; h.output_len()]);
                h.digest_into(&[key], &mut salt);
                Some(AesKey::new(&salt))
            }
            _ if self.mode == Mode::Xts => Some(AesKey::new(tweak_key)),
            _ => None,
        };
        let step = (unit / SECTOR) as u64;
        for (i, sector) in buf.chunks_exact_mut(unit).enumerate() {
            let n = first_iv.wrapping_add(i as u64 * step);
            let mut iv = [0u8; 16];
            match self.iv {
                Iv::None => {}
                Iv::Plain => iv[..4].copy_from_slice(&(n as u32).to_le_bytes()),
                Iv::Plain64 | Iv::Essiv(_) => iv[..8].copy_from_slice(&n.to_le_bytes()),
            }
            // ESSIV encrypts the sector number with the salt key; XTS encrypts it
            // with the second key half to get the initial tweak.
            if let Some(c) = &iv_cipher {
                c.encrypt(&mut iv);
            }
            match self.mode {
                Mode::Xts => xts_decrypt(&data, iv, sector),
                Mode::Cbc => cbc_decrypt(&data, iv, sector),
                Mode::Ecb => sector.chunks_exact_mut(16).for_each(|b| data.decrypt(b)),
            }
        }
        Ok(())
    }
}

fn xts_decrypt(data: &AesKey, mut tweak: [u8; 16], sector: &mut [u8]) {
    for block in sector.chunks_exact_mut(16) {
        xor16(block, &tweak);
        data.decrypt(block);
        xor16(block, &tweak);
        // Multiply the tweak by alpha in GF(2^128), little-endian convention.
        let carry = tweak[15] >> 7;
        for i in (1..16).rev() {
            tweak[i] = (tweak[i] << 1) | (tweak[i - 1] >> 7);
        }
        tweak[0] = (tweak[0] << 1) ^ (0x87 * carry);
    }
}

fn cbc_decrypt(data: &AesKey, mut prev: [u8; 16], sector: &mut [u8]) {
    for block in sector.chunks_exact_mut(16) {
        let mut this = [0u8; 16];
        this.copy_from_slice(block);
        data.decrypt(block);
        xor16(block, &prev);
        prev = this;
    }
}

fn xor16(a: &mut [u8], b: &[u8; 16]) {
    a.iter_mut().zip(b).for_each(|(x, y)| *x ^= y);
}

/// AES with a key length chosen at run time. The key schedules are wiped when dropped
/// (aes's `zeroize` feature, which the assertion below keeps on); they are boxed so that
/// moving an `AesKey` around leaves no copies of them behind.
enum AesKey {
    A128(Box<Aes128>),
    A192(Box<Aes192>),
    A256(Box<Aes256>),
}

// aes drops its key schedules unwiped unless its `zeroize` feature is on: stop the build
// if a dependency change turns it off.
const _: () = {
    fn wipes_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    let _ = wipes_on_drop::<Aes128>;
    let _ = wipes_on_drop::<Aes192>;
    let _ = wipes_on_drop::<Aes256>;
};

impl AesKey {
    /// `key` must be 16, 24 or 32 bytes (checked by `key_len_ok`).
    fn new(key: &[u8]) -> AesKey {
        match key.len() {
            16 => AesKey::A128(Box::new(Aes128::new_from_slice(key).expect("16-byte key"))),
            24 => AesKey::A192(Box::new(Aes192::new_from_slice(key).expect("24-byte key"))),
            _ => AesKey::A256(Box::new(Aes256::new_from_slice(key).expect("32-byte key"))),
        }
    }

    fn encrypt(&self, b: &mut [u8]) {
        let mut blk = Block::try_from(&*b).expect("16-byte block");
        match self {
            AesKey::A128(c) => c.encrypt_block(&mut blk),
            AesKey::A192(c) => c.encrypt_block(&mut blk),
            AesKey::A256(c) => c.encrypt_block(&mut blk),
        }
        b.copy_from_slice(&blk);
    }

    fn decrypt(&self, b: &mut [u8]) {
        let mut blk = Block::try_from(&*b).expect("16-byte block");
        match self {
            AesKey::A128(c) => c.decrypt_block(&mut blk),
            AesKey::A192(c) => c.decrypt_block(&mut blk),
            AesKey::A256(c) => c.decrypt_block(&mut blk),
        }
        b.copy_from_slice(&blk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use latchkey_testkit::unhex as hex;

    #[test]
    fn xts_ieee1619_vector_4() {
        // IEEE 1619-2007 XTS-AES-128 vector 4: data unit sequence number 0,
        // 512-byte unit; the first 32 bytes of plaintext and ciphertext.
        let key = hex("2718281828459045235360287471352631415926535897932384626433832795");
        let pt: Vec<u8> = (0..512u32).map(|i| i as u8).collect();
        let ct_head = hex("27a7479befa1d476489f308cd4cfa6e2a96e4bbe3208ff25287dd3819616e89c");
        // Encrypt with the decryptor's inverse is not available; instead check
        // that decrypting the known ciphertext prefix would need the whole unit.
        // So run the full unit: build ciphertext by encrypting with a reference
        // XTS written from the definition.
        let ct = xts_encrypt_ref(&key, 0, &pt);
        assert_eq!(&ct[..32], &ct_head[..]);
        let mut back = ct.clone();
        CipherSpec::parse("aes-xts-plain64")
            .unwrap()
            .decrypt_sectors(&key, &mut back)
            .unwrap();
        assert_eq!(back, pt);
    }

    fn xts_encrypt_ref(key: &[u8], sector: u64, pt: &[u8]) -> Vec<u8> {
        let k1 = AesKey::new(&key[..key.len() / 2]);
        let k2 = AesKey::new(&key[key.len() / 2..]);
        let mut t = [0u8; 16];
        t[..8].copy_from_slice(&sector.to_le_bytes());
        k2.encrypt(&mut t);
        let mut out = pt.to_vec();
        for b in out.chunks_exact_mut(16) {
            xor16(b, &t);
            k1.encrypt(b);
            xor16(b, &t);
            let carry = t[15] >> 7;
            for i in (1..16).rev() {
                t[i] = (t[i] << 1) | (t[i - 1] >> 7);
            }
            t[0] = (t[0] << 1) ^ (0x87 * carry);
        }
        out
    }

    #[test]
    fn parse_specs() {
        for ok in [
            "aes-xts-plain64",
            "aes-xts-plain",
            "aes-cbc-essiv:sha256",
            "aes-cbc-plain64",
            "aes-ecb",
        ] {
            CipherSpec::parse(ok).unwrap();
        }
        for bad in [
            "serpent-xts-plain64",
            "aes-xts",
            "aes-cbc-essiv:sha512",
            "aes-gcm-random",
            "aes",
            "",
        ] {
            assert!(CipherSpec::parse(bad).is_err(), "{bad}");
        }
    }
}
