//! clevis's tpm2 pin on a [`Tpm`]: what `clevis-encrypt-tpm2` and `clevis-decrypt-tpm2`
//! do with tpm2-tools, in the same TPM commands.
//!
//! ```text
//!  seal:   CreatePrimary(owner, HASH, KEY) ─ [PCR_Read] ─ Create(sealed JWK, policy) ─ Flush
//!  unseal: CreatePrimary ─ Load(jwk_priv, jwk_pub) ─ Flush(primary)
//!          ─ [StartAuthSession(policy, HASH) ─ PolicyPCR(bank:ids)] ─ Unseal ─ Flush
//! ```
//!
//! The policy session uses the object's name algorithm, which is what makes its digest
//! comparable with the object's authPolicy. (clevis 19's `tpm2_unseal -p pcr:…` always
//! opens a SHA-256 session, so clevis cannot unseal its own `"hash":"sha1"` JWEs with
//! PCRs; latchkey can.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use latchkey_proto::pin::{SealRequest, Sealed, Tpm2Binding, Unseal};
use latchkey_proto::secret::Secret;
use zeroize::Zeroizing;

use crate::alg::{Hash, PcrSelection, policy_pcr_digest};
use crate::command::{Auth, MAX_SEALED};
use crate::error::{Error, Result};
use crate::tcti::Tcti;
use crate::template::PrimaryKey;
use crate::tpm::Tpm;

/// Runs `f` and then flushes every handle it pushed, whatever the outcome: the TPM
/// (without a resource manager) would keep them loaded otherwise.
fn with_handles<T>(
    tpm: &mut Tpm,
    f: impl FnOnce(&mut Tpm, &mut Vec<u32>) -> Result<T>,
) -> Result<T> {
    let mut handles = Vec::new();
    let out = f(tpm, &mut handles);
    for h in handles.into_iter().rev() {
        tpm.flush(h);
    }
    out
}

/// The unsealed bytes of a clevis tpm2 binding (the JWK, with clevis's newline).
pub fn unseal(tpm: &mut Tpm, b: &Tpm2Binding) -> Result<Zeroizing<Vec<u8>>> {
    unseal_until(tpm, b, &AtomicBool::new(false))
}

/// [`unseal`], given up between two TPM commands once `stop` is set (the key was
/// recovered another way); what was loaded by then is flushed all the same.
pub fn unseal_until(
    tpm: &mut Tpm,
    b: &Tpm2Binding,
    stop: &AtomicBool,
) -> Result<Zeroizing<Vec<u8>>> {
    let go_on = |next: &'static str| {
        if stop.load(Ordering::Relaxed) {
            return Err(Error::Stopped(next));
        }
        Ok(())
    };
    let hash = Hash::from_name(&b.hash, "clevis.tpm2.hash")?;
    let key = PrimaryKey::from_name(&b.key, "clevis.tpm2.key")?;
    let pcrs = match (&b.pcr_bank, b.pcr_ids.is_empty()) {
        (_, true) => None,
        (Some(bank), false) => Some(PcrSelection::new(
            Hash::from_name(bank, "clevis.tpm2.pcr_bank")?,
            &b.pcr_ids,
        )?),
        (None, false) => return Err(Error::Config("clevis.tpm2.pcr_ids without pcr_bank".into())),
    };
    with_handles(tpm, |tpm, handles| {
        go_on("TPM2_CreatePrimary")?;
        let primary = tpm.create_primary(key, hash)?.handle;
        handles.push(primary);
        go_on("TPM2_Load")?;
        let item = tpm.load(primary, &b.jwk_priv, &b.jwk_pub)?;
        handles.push(item);
        // The primary is not needed any more; free its slot before the session's.
        tpm.flush(primary);
        handles.retain(|&h| h != primary);
        let Some(pcrs) = pcrs else {
            go_on("TPM2_Unseal")?;
            return tpm.unseal(item, Auth::Password);
        };
        go_on("TPM2_StartAuthSession")?;
        let session = tpm.start_policy_session(hash)?;
        handles.push(session);
        tpm.policy_pcr(session, &pcrs)?;
        go_on("TPM2_Unseal")?;
        tpm.unseal(item, Auth::Policy(session))
            .map_err(|e| match e {
                Error::Tpm { rc, .. } if rc.is_policy_fail() => {
                    Error::PcrMismatch { pcrs: pcrs.spec() }
                }
                other => other,
            })
    })
}

/// Seals `req.data` as `clevis encrypt tpm2` does.
pub fn seal(tpm: &mut Tpm, req: &SealRequest) -> Result<Sealed> {
    let hash = Hash::from_name(&req.hash, "hash")?;
    let key = PrimaryKey::from_name(&req.key, "key")?;
    if req.data.len() > MAX_SEALED {
        return Err(Error::Config(format!(
            "{} bytes to seal, a TPM seals at most {MAX_SEALED}",
            req.data.len()
        )));
    }
    let pcrs = if req.pcr_ids.is_empty() {
        None
    } else {
        let bank = match &req.pcr_bank {
            Some(b) => Hash::from_name(b, "pcr_bank")?,
            // clevis 21: the first bank that has PCRs allocated.
            None => *tpm
                .active_banks()?
                .first()
                .ok_or_else(|| Error::Config("the TPM has no active PCR bank".into()))?,
        };
        Some(PcrSelection::new(bank, &req.pcr_ids)?)
    };
    let policy = match &pcrs {
        None => None,
        Some(sel) => {
            // Read even with pcr_digest given: it checks the bank and PCRs exist, as
            // clevis does.
            let current = tpm.pcr_values(sel)?;
            let values = match &req.pcr_digest {
                None => current,
                Some(d) if d.len() == current.len() => d.clone(),
                Some(d) => {
                    return Err(Error::Config(format!(
                        "pcr_digest is {} bytes, {} needs {}",
                        d.len(),
                        sel.spec(),
                        current.len()
                    )));
                }
            };
            Some(policy_pcr_digest(hash, sel, &values))
        }
    };
    let (jwk_priv, jwk_pub) = with_handles(tpm, |tpm, handles| {
        let primary = tpm.create_primary(key, hash)?.handle;
        handles.push(primary);
        tpm.create_sealed(primary, hash, policy.as_deref(), req.data.expose())
    })?;
    Ok(Sealed {
        jwk_pub,
        jwk_priv,
        pcr_bank: pcrs.map(|p| p.bank.name().to_owned()),
    })
}

/// The longest one TPM command may take by default: an RSA primary on a slow TPM takes
/// seconds.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The TPM side of decryption for [`latchkey_proto::pin::Unseal`], one for every binding
/// of a run: the TPM is opened on first need and kept open; a TPM that is not there (or
/// never answers) is found once, and later bindings get that verdict at once. Bindings
/// take turns, as a TPM runs one command at a time anyway.
pub struct Unsealer {
    tcti: Result<Tcti>,
    timeout: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    tpm: Option<Tpm>,
    unavailable: Option<String>,
}

impl Unsealer {
    /// Each TPM command may take up to `timeout` (and none runs past the caller's deadline).
    pub fn new(tcti: Tcti, timeout: Duration) -> Unsealer {
        Unsealer {
            tcti: Ok(tcti),
            timeout,
            state: Mutex::default(),
        }
    }

    /// The TPM `TPM2TOOLS_TCTI` names (the default devices when unset). A malformed
    /// variable fails the tpm2 bindings only, when one is met.
    pub fn from_env(timeout: Duration) -> Unsealer {
        Unsealer {
            tcti: Tcti::from_env(),
            timeout,
            state: Mutex::default(),
        }
    }

    /// Unseals `binding` before `deadline`, giving up between two commands once `stop`
    /// is set.
    pub fn unseal_until(
        &self,
        binding: &Tpm2Binding,
        deadline: Instant,
        stop: &AtomicBool,
    ) -> Result<Secret, String> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = &st.unavailable {
            return Err(e.clone());
        }
        let tpm = match st.tpm.take() {
            Some(tpm) => tpm,
            None => match self.open() {
                Ok(tpm) => tpm,
                Err(e) => return Err(self.judge(&mut st, &e)),
            },
        };
        let tpm = st.tpm.insert(tpm);
        tpm.set_deadline(deadline);
        match unseal_until(tpm, binding, stop) {
            Ok(bytes) => Ok(Secret::from_slice(&bytes)),
            Err(e) => {
                if e.breaks_transport() {
                    st.tpm = None;
                }
                Err(self.judge(&mut st, &e))
            }
        }
    }

    /// Why the TPM cannot be used for the rest of the run, once that is known.
    pub fn unavailable(&self) -> Option<String> {
        let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.unavailable.clone()
    }

    fn open(&self) -> Result<Tpm> {
        let tcti = self.tcti.as_ref().map_err(|e| match e {
            Error::Tcti(m) => Error::Tcti(m.clone()),
            other => Error::Config(other.to_string()),
        })?;
        Tpm::open(tcti, self.timeout)
    }

    /// The message for `e`, remembered for later bindings when the TPM is not there or
    /// let a command run out its whole timeout (not merely the caller's deadline).
    fn judge(&self, st: &mut State, e: &Error) -> String {
        let msg = e.to_string();
        let hopeless = match e {
            Error::Timeout { after, .. } => *after >= self.timeout,
            e => e.is_unavailable(),
        };
        if hopeless {
            st.unavailable = Some(msg.clone());
        }
        msg
    }
}

impl Unseal for Unsealer {
    fn unseal(
        &self,
        binding: &Tpm2Binding,
        deadline: Instant,
        stop: &AtomicBool,
    ) -> Result<Secret, String> {
        self.unseal_until(binding, deadline, stop)
    }
}

/// Opens the TPM and seals: the tpm2 side of [`latchkey_proto::pin::EncryptIo`].
pub fn seal_with(tcti: &Tcti, timeout: Duration, req: &SealRequest) -> Result<Sealed> {
    let mut tpm = Tpm::open(tcti, timeout)?;
    seal(&mut tpm, req)
}
