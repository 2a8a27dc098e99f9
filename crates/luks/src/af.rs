//! The LUKS anti-forensic splitter, merge direction (LUKS1 spec, section 2.4).

use crate::hash::Hash;
use zeroize::Zeroizing;

/// Bytes of AF material for a key of `key_len` bytes split into `stripes`,
/// rounded up to whole 512-byte sectors as it is stored.
pub(crate) fn material_len(key_len: usize, stripes: u32) -> u64 {
    let raw = key_len as u64 * u64::from(stripes);
    raw.div_ceil(512) * 512
}

/// Merge `stripes` stripes of `key_len` bytes from `material` into the key.
///
/// The caller guarantees `material.len() >= key_len * stripes` and `stripes >= 1`.
pub(crate) fn merge(
    material: &[u8],
    key_len: usize,
    stripes: u32,
    hash: Hash,
) -> Zeroizing<Vec<u8>> {
    let mut buf = Zeroizing::new(vec![0u8; key_len]);
    let stripes = stripes as usize;
    for stripe in material.chunks_exact(key_len).take(stripes - 1) {
        buf.iter_mut().zip(stripe).for_each(|(b, s)| *b ^= s);
        diffuse(&mut buf, hash);
    }
    let last = &material[(stripes - 1) * key_len..stripes * key_len];
    buf.iter_mut().zip(last).for_each(|(b, s)| *b ^= s);
    buf
}

/// Replace each digest-sized block `i` of `buf` with H(be32(i) || block); a
/// short last block keeps only as many bytes of its hash.
fn diffuse(buf: &mut [u8], hash: Hash) {
    let ds = hash.output_len();
    let mut out = Zeroizing::new([0u8; 64]);
    for (i, block) in buf.chunks_mut(ds).enumerate() {
        hash.digest_into(&[&(i as u32).to_be_bytes(), block], &mut out[..ds]);
        let n = block.len();
        block.copy_from_slice(&out[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Split as cryptsetup's AF_split does, with fixed "random" stripes.
    fn split(key: &[u8], stripes: u32, hash: Hash) -> Vec<u8> {
        let n = key.len();
        let mut out = Vec::new();
        let mut buf = vec![0u8; n];
        for s in 0..stripes - 1 {
            let stripe: Vec<u8> = (0..n).map(|i| (i as u32 * 7 + s * 13) as u8).collect();
            buf.iter_mut().zip(&stripe).for_each(|(b, x)| *b ^= x);
            diffuse(&mut buf, hash);
            out.extend_from_slice(&stripe);
        }
        out.extend(buf.iter().zip(key).map(|(b, k)| b ^ k));
        out
    }

    #[test]
    fn split_then_merge_round_trips() {
        for (hash, len) in [
            (Hash::Sha256, 64),
            (Hash::Sha1, 32),
            (Hash::Sha512, 48),
            (Hash::Sha256, 33),
        ] {
            let key: Vec<u8> = (0..len as u8).collect();
            let m = split(&key, 10, hash);
            assert_eq!(&merge(&m, len, 10, hash)[..], &key[..]);
            assert_ne!(&merge(&m, len, 10, Hash::Ripemd160)[..], &key[..]);
        }
    }

    #[test]
    fn material_is_sector_rounded() {
        assert_eq!(material_len(64, 4000), 256_000);
        assert_eq!(material_len(32, 4000), 128_000);
        assert_eq!(material_len(16, 1), 512);
    }
}
