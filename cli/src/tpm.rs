//! The TPM for tpm2 pins: the one `TPM2TOOLS_TCTI` names, as for clevis (default
//! `/dev/tpmrm0`, then `/dev/tpm0`).

use std::sync::Arc;

use latchkey_proto::pin::{SealRequest, Sealed, Unseal};
use latchkey_tpm2::{COMMAND_TIMEOUT, Tcti, Unsealer};

/// What decryption unseals tpm2 bindings with.
pub fn unsealer() -> Arc<dyn Unseal> {
    Arc::new(Unsealer::from_env(COMMAND_TIMEOUT))
}

/// `clevis encrypt tpm2`'s TPM work.
pub fn seal(req: &SealRequest) -> Result<Sealed, String> {
    let tcti = Tcti::from_env().map_err(|e| e.to_string())?;
    latchkey_tpm2::seal_with(&tcti, COMMAND_TIMEOUT, req).map_err(|e| e.to_string())
}
