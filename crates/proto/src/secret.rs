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
