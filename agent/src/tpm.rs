//! The TPM of tpm2 bindings, one for the whole boot: opened on first need (never when no
//! binding has a tpm2 pin), the device `TPM2TOOLS_TCTI` names or else `/dev/tpmrm0`, then
//! `/dev/tpm0`. Every failure is logged as it happens, since a binding that opens through
//! another share says nothing of this one; a TPM that is missing or never answers is
//! logged once, however many bindings meet it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use latchkey_proto::pin::{Tpm2Binding, Unseal};
use latchkey_proto::secret::Secret;
use latchkey_tpm2::{COMMAND_TIMEOUT, Unsealer};

use crate::kmsg_log::Log;

/// The boot's TPM, shared by every volume's race.
pub struct BootTpm {
    unsealer: Unsealer,
    log: Arc<Log>,
    said_unavailable: AtomicBool,
}

impl BootTpm {
    /// Nothing is opened yet.
    pub fn new(log: Arc<Log>) -> BootTpm {
        BootTpm {
            unsealer: Unsealer::from_env(COMMAND_TIMEOUT),
            log,
            said_unavailable: AtomicBool::new(false),
        }
    }
}

impl Unseal for BootTpm {
    fn unseal(
        &self,
        binding: &Tpm2Binding,
        deadline: Instant,
        stop: &AtomicBool,
    ) -> Result<Secret, String> {
        let what = binding.describe();
        let r = self.unsealer.unseal_until(binding, deadline, stop);
        match &r {
            Ok(_) => self.log.info(&format!("{what}: unsealed")),
            // The binding was decided without the TPM: nothing to report.
            Err(_) if stop.load(Ordering::Relaxed) => {}
            Err(e) => match self.unsealer.unavailable() {
                Some(_) => {
                    if !self.said_unavailable.swap(true, Ordering::Relaxed) {
                        self.log.warn(&format!("TPM: {e}"));
                    }
                }
                None => self.log.warn(&format!("{what}: {e}")),
            },
        }
        r
    }
}
