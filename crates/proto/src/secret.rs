//! Secret bytes: passphrases, private scalars, CEKs, Shamir shares.
//!
//! No `Debug` or `Display`, zeroized on drop, compared in constant time. Getting at the bytes
//! is the explicit [`Secret::expose`].

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

/// Heap bytes that never print and are wiped when dropped.
#[derive(Clone, Default)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Takes ownership of the bytes (they are wiped when the `Secret` drops).
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(Zeroizing::new(bytes))
    }

    /// Copies a slice into a new secret.
    pub fn from_slice(bytes: &[u8]) -> Secret {
        Secret::new(bytes.to_vec())
    }

    /// All of `r`, up to `limit` bytes. The buffer is wiped, and so is each buffer it
    /// outgrows (doubling from 16 KiB): `read_to_end` would hand those back to the
    /// allocator with part of the secret still in them. More than `limit` bytes is an
    /// [`std::io::ErrorKind::InvalidData`] error.
    pub fn read_bounded(r: &mut impl std::io::Read, limit: usize) -> std::io::Result<Secret> {
        use std::io::{Error, ErrorKind};
        /// The first buffer: room for any usual JWE or passphrase, so that nothing grows.
        const FIRST: usize = 16 << 10;
        let mut buf = Zeroizing::new(vec![0u8; FIRST.min(limit + 1)]);
        let mut len = 0;
        loop {
            if len == buf.len() {
                if len > limit {
                    return Err(Error::new(
                        ErrorKind::InvalidData,
                        format!("more than {limit} bytes"),
                    ));
                }
                let mut bigger = Zeroizing::new(vec![0u8; (2 * len).min(limit + 1)]);
                bigger[..len].copy_from_slice(&buf[..len]);
                buf = bigger;
            }
            match r.read(&mut buf[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // Moved out, not copied: the Zeroizing left behind holds an empty Vec.
        let mut bytes = std::mem::take(&mut *buf);
        bytes.truncate(len);
        Ok(Secret::new(bytes))
    }

    /// The secret bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The secret bytes, writable (for in-place decryption).
    pub(crate) fn expose_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }

    /// Length in bytes (not secret).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Constant-time equality (lengths are not secret).
    pub fn ct_eq(&self, other: &Secret) -> bool {
        self.0.len() == other.0.len() && bool::from(self.0.as_slice().ct_eq(other.0.as_slice()))
    }

    /// Wipes the contents now and leaves the secret empty.
    pub fn wipe(&mut self) {
        self.0.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_sys::wipecheck::Watch;

    const LIMIT: usize = 1 << 20;
    const FIRST: usize = 16 << 10;

    #[test]
    fn a_reader_is_read_whole_up_to_the_limit() {
        for len in [0, 1, FIRST - 1, FIRST, FIRST + 1, 5 * FIRST + 3, LIMIT] {
            let input: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let got = Secret::read_bounded(&mut &input[..], LIMIT).unwrap();
            assert_eq!(got.expose(), &input[..], "{len} bytes");
        }
        let over = vec![b'x'; LIMIT + 1];
        let e = Secret::read_bounded(&mut &over[..], LIMIT).err().unwrap();
        assert_eq!(e.to_string(), format!("more than {LIMIT} bytes"));
    }

    #[test]
    fn reading_leaves_no_copy_of_the_secret_in_freed_memory() {
        // A secret large enough to make the buffer grow several times.
        let needle = b"wipe-check: a secret read from a pipe";
        let mut input = vec![b's'; 20 * FIRST];
        input[..needle.len()].copy_from_slice(needle);
        let watch = Watch::new(needle);
        let got = Secret::read_bounded(&mut &input[..], LIMIT).unwrap();
        assert_eq!(got.expose(), &input[..]);
        drop(got);
        assert_eq!(
            watch.freed_copies(),
            0,
            "freed buffers still held the secret"
        );
    }

    #[test]
    fn compares_and_exposes() {
        let a = Secret::new(b"abc".to_vec());
        assert!(a.ct_eq(&Secret::from_slice(b"abc")));
        assert!(!a.ct_eq(&Secret::from_slice(b"abd")));
        assert!(!a.ct_eq(&Secret::from_slice(b"ab")));
        assert_eq!(a.expose(), b"abc");
        let mut b = a.clone();
        b.wipe();
        assert!(b.is_empty());
        assert_eq!(a.len(), 3);
    }
}
