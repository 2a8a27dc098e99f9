//! latchkey-tpm2: clevis's `tpm2` pin, talking to the TPM itself.
//!
//! ```text
//!   cli (latchkey encrypt/decrypt) ─┐          ┌─ clevis: seal / unseal / Unsealer
//!   agent (BootTpm, one per boot) ──┼─▶ latchkey-tpm2 ─ tpm: Tpm (retries, start-up, deadlines)
//!   latchkey-client (Unseal) ───────┘          ├─ command: the 10 commands, bytes in/out
//!                                              ├─ template: primaries as tpm2-tools makes them
//!                                              └─ transport: /dev/tpmrm0 (poll) │ swtpm (TCP)
//! ```
//!
//! No tpm2-tss, no tpm2-tools: the pin needs ten TPM commands (Startup, CreatePrimary,
//! Create, Load, StartAuthSession, PolicyPCR, Unseal, PCR_Read, GetCapability,
//! FlushContext), each a few lines of marshalling here, with every response read through
//! a bounded reader. A general marshaller (tpm2-protocol: 11,600 lines, Rust 1.95) would
//! be larger to audit than the commands themselves.
//!
//! Byte compatibility with clevis 19 (`clevis-encrypt-tpm2` + tpm2-tools 5):
//! - the primary is `tpm2_createprimary -C o -g HASH -G KEY` with tpm2-tools' default
//!   template for KEY ([`template`]), so a `jwk_priv` clevis made loads under ours;
//! - the sealed object has clevis's attributes and its PolicyPCR digest is computed as
//!   `tpm2_createpolicy --policy-pcr` computes it ([`alg::policy_pcr_digest`]);
//! - the sealed data is the JWK and a newline, as clevis's here-string seals it.
//!
//! Sessions are plain (no HMAC, no parameter encryption), as in clevis's tpm2-tools calls.
#![forbid(unsafe_code)]

pub mod alg;
pub mod clevis;
mod command;
pub mod error;
mod marshal;
pub mod rc;
pub mod tcti;
pub mod template;
mod tpm;
mod transport;

pub use clevis::{COMMAND_TIMEOUT, Unsealer, seal, seal_with, unseal, unseal_until};
#[doc(hidden)]
pub use command::parse_any_response;
pub use error::{Error, Result};
pub use tcti::Tcti;
pub use tpm::Tpm;
