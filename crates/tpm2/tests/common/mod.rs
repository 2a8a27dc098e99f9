//! What more than one of latchkey-tpm2's test files needs.

use latchkey_proto::pin::Tpm2Binding;

/// A binding whose sealed objects are empty: for TPMs that fail before loading anything.
pub fn hollow_binding() -> Tpm2Binding {
    Tpm2Binding {
        hash: "sha256".into(),
        key: "ecc".into(),
        pcr_bank: None,
        pcr_ids: vec![],
        jwk_pub: vec![0, 0],
        jwk_priv: vec![0, 0],
    }
}
