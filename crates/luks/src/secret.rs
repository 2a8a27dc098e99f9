//! The volume key: no `Debug`, no `Display`, zeroized on drop.

use zeroize::Zeroizing;

/// The LUKS volume (master) key recovered from a keyslot.
///
/// It prints nothing, compares in constant time and is wiped when dropped.
/// [`VolumeKey::expose`] is the one way to the bytes, meant for the dm-crypt
/// table load.
pub struct VolumeKey(Zeroizing<Vec<u8>>);

impl VolumeKey {
    pub(crate) fn new(bytes: Zeroizing<Vec<u8>>) -> VolumeKey {
        VolumeKey(bytes)
    }

    /// The raw key bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Key length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the key is empty (never, for a key from a valid header).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Constant-time comparison with other key bytes.
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        self.0.len() == other.len() && bool::from(self.0.ct_eq(other))
    }
}
