//! A TPM reached through a [`Tcti`]: commands run one at a time, each within the command
//! timeout and the caller's deadline, with the retries and start-up a TPM may ask for.

use std::thread;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::alg::{Hash, PcrSelection};
use crate::command::{self, Auth, Cc, Primary, Reply};
use crate::error::{Error, Result};
use crate::marshal::Reader;
use crate::rc::{self, ResponseCode};
use crate::tcti::Tcti;
use crate::template::PrimaryKey;
use crate::transport::Transport;

/// How often a command the TPM asks to repeat (TPM_RC_RETRY, _YIELDED, _TESTING) is sent
/// again, and the pause before each.
const RETRIES: u32 = 10;
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// How long a flush may still take once the deadline has passed: a handle left loaded in
/// a TPM without a resource manager (/dev/tpm0, swtpm) stays there after this process,
/// taking one of its few object or session slots.
const FLUSH_GRACE: Duration = Duration::from_millis(500);

/// An open TPM.
pub struct Tpm {
    transport: Transport,
    timeout: Duration,
    deadline: Option<Instant>,
    /// Start-up or power-on was tried already (done at most once).
    started: bool,
}

impl Tpm {
    /// Opens the TPM `tcti` names; each command may take up to `timeout`.
    pub fn open(tcti: &Tcti, timeout: Duration) -> Result<Tpm> {
        Ok(Tpm {
            transport: Transport::open(tcti, timeout)?,
            timeout,
            deadline: None,
            started: false,
        })
    }

    /// No command starts after `deadline`, and none runs past it.
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = Some(deadline);
    }

    /// The TCTI in use, for messages.
    pub fn name(&self) -> String {
        self.transport.name()
    }

    fn command_timeout(&self, what: &'static str) -> Result<Duration> {
        match self.deadline {
            None => Ok(self.timeout),
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if what == Cc::FlushContext.name() {
                    return Ok(left.max(FLUSH_GRACE).min(self.timeout));
                }
                if left.is_zero() {
                    return Err(Error::Deadline(what));
                }
                Ok(left.min(self.timeout))
            }
        }
    }

    /// Sends `cmd`; a response code other than success comes back as `Err(rc)` inside Ok.
    fn exchange(&mut self, cc: Cc, cmd: &[u8]) -> Result<Vec<u8>> {
        let mut tries = 0;
        loop {
            let timeout = self.command_timeout(cc.name())?;
            let resp = self.transport.transact(cmd, cc.name(), timeout)?;
            let code = u32::from_be_bytes([resp[6], resp[7], resp[8], resp[9]]);
            let rc = ResponseCode(code);
            if code != 0 && rc.is_retryable() && tries < RETRIES {
                tries += 1;
                thread::sleep(RETRY_PAUSE);
                continue;
            }
            // A TPM that was never started (swtpm without startup-clear; a bare
            // /dev/tpm0 before the firmware ran): power on and start up once, then retry.
            if (code == rc::INITIALIZE || code == rc::FAILURE) && !self.started {
                self.started = true;
                if code == rc::FAILURE
                    && !self.transport.power_on(self.command_timeout("power on")?)?
                {
                    return Ok(resp);
                }
                let t = self.command_timeout(Cc::Startup.name())?;
                self.transport
                    .transact(&command::startup(), Cc::Startup.name(), t)?;
                continue;
            }
            return Ok(resp);
        }
    }

    /// Runs a command and returns its handles and parameters, or the TPM's refusal as
    /// [`Error::Tpm`].
    fn run<T>(
        &mut self,
        cc: Cc,
        cmd: &[u8],
        handles: usize,
        read: impl FnOnce(&[u32], Reader<'_>) -> Result<T>,
    ) -> Result<T> {
        let resp = self.exchange(cc, cmd)?;
        match command::reply(&resp, cc, handles)? {
            Reply::Ok { handles, params } => read(&handles, params),
            Reply::Refused(rc) => Err(refusal(cc, rc)),
        }
    }

    /// `tpm2_createprimary -C o -g hash -G key`.
    pub(crate) fn create_primary(&mut self, key: PrimaryKey, hash: Hash) -> Result<Primary> {
        let cmd = command::create_primary(key, hash);
        self.run(Cc::CreatePrimary, &cmd, 1, command::create_primary_reply)
    }

    /// The TPM2B_PUBLIC and the name of the primary that clevis's `key` and `hash` select,
    /// created and flushed again (`tpm2_createprimary -C o -g HASH -G KEY` then
    /// `tpm2_readpublic`).
    pub fn primary(&mut self, key: &str, hash: &str) -> Result<(Vec<u8>, Vec<u8>)> {
        let key = PrimaryKey::from_name(key, "key")?;
        let hash = Hash::from_name(hash, "hash")?;
        let p = self.create_primary(key, hash)?;
        self.flush(p.handle);
        Ok((p.public, p.name))
    }

    /// A sealed data object under `parent`: (TPM2B_PRIVATE, TPM2B_PUBLIC).
    pub(crate) fn create_sealed(
        &mut self,
        parent: u32,
        hash: Hash,
        policy: Option<&[u8]>,
        data: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        let cmd = Zeroizing::new(command::create_sealed(parent, hash, policy, data));
        self.run(Cc::Create, &cmd, 0, |_, p| command::create_sealed_reply(p))
    }

    pub(crate) fn load(&mut self, parent: u32, private: &[u8], public: &[u8]) -> Result<u32> {
        let cmd = command::load(parent, private, public)?;
        self.run(Cc::Load, &cmd, 1, |h, _| Ok(h[0]))
    }

    pub(crate) fn start_policy_session(&mut self, hash: Hash) -> Result<u32> {
        let mut nonce = vec![0u8; hash.size()];
        getrandom::fill(&mut nonce).map_err(|e| Error::Random(e.to_string()))?;
        let cmd = command::start_policy_session(hash, &nonce);
        self.run(Cc::StartAuthSession, &cmd, 1, |h, _| Ok(h[0]))
    }

    pub(crate) fn policy_pcr(&mut self, session: u32, pcrs: &PcrSelection) -> Result<()> {
        let cmd = command::policy_pcr(session, pcrs);
        self.run(Cc::PolicyPcr, &cmd, 0, |_, _| Ok(()))
    }

    pub(crate) fn unseal(&mut self, item: u32, auth: Auth) -> Result<Zeroizing<Vec<u8>>> {
        let cmd = command::unseal(item, auth);
        let resp = Zeroizing::new(self.exchange(Cc::Unseal, &cmd)?);
        match command::reply(&resp, Cc::Unseal, 0)? {
            Reply::Ok { params, .. } => Ok(Zeroizing::new(command::unseal_reply(params)?.to_vec())),
            Reply::Refused(rc) => Err(refusal(Cc::Unseal, rc)),
        }
    }

    /// The current values of `pcrs`, concatenated in ascending index order (what
    /// `tpm2_pcrread -o` writes).
    pub fn pcr_values(&mut self, pcrs: &PcrSelection) -> Result<Vec<u8>> {
        let mut want = pcrs.bits();
        let mut got = Vec::new();
        // A TPM answers at most eight PCRs per call, so 24 take at most three rounds; a
        // TPM that returns none of what is left has no such PCRs.
        for _ in 0..4 {
            if want == 0 {
                break;
            }
            let ask = PcrSelection::from_bits(pcrs.bank, want);
            let (bits, values) = self.run(Cc::PcrRead, &command::pcr_read(&ask), 0, |_, p| {
                command::pcr_read_reply(p, pcrs.bank)
            })?;
            if bits == 0 || bits & !want != 0 {
                break;
            }
            got.push((bits, values));
            want &= !bits;
        }
        if want != 0 {
            let missing = PcrSelection::from_bits(pcrs.bank, want);
            return Err(Error::Config(format!(
                "the TPM has no PCR {} (see tpm2_getcap pcrs)",
                missing.spec()
            )));
        }
        // Reassemble in index order.
        let size = pcrs.bank.size();
        let mut out = Vec::with_capacity(pcrs.ids().len() * size);
        for i in pcrs.ids() {
            for (bits, values) in &got {
                if bits & (1 << i) != 0 {
                    let k = (bits & ((1u32 << i) - 1)).count_ones() as usize;
                    out.extend_from_slice(&values[k * size..(k + 1) * size]);
                }
            }
        }
        Ok(out)
    }

    /// The PCR banks that have PCRs allocated, in the TPM's order (`tpm2_getcap pcrs`).
    pub fn active_banks(&mut self) -> Result<Vec<Hash>> {
        let banks = self.run(Cc::GetCapability, &command::get_pcr_banks(), 0, |_, p| {
            command::get_pcr_banks_reply(p)
        })?;
        Ok(banks
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .filter_map(|(id, _)| Hash::from_id(id))
            .collect())
    }

    /// Flushes a transient object or session; errors are ignored (the handle may be gone
    /// already, and there is nothing better to do).
    pub(crate) fn flush(&mut self, handle: u32) {
        let _ = self.run(Cc::FlushContext, &command::flush(handle), 0, |_, _| Ok(()));
    }
}

/// The error a refusal becomes: named where the reason is known.
fn refusal(cc: Cc, rc: ResponseCode) -> Error {
    const OBJECT_MEMORY: u32 = 0x902;
    const SESSION_MEMORY: u32 = 0x903;
    const MEMORY: u32 = 0x904;
    const LOCKOUT: u32 = 0x921;
    const FMT1: u32 = 0x080;
    match (cc, rc.base()) {
        (_, OBJECT_MEMORY | SESSION_MEMORY | MEMORY) => Error::Exhausted {
            command: cc.name(),
            rc,
        },
        (_, LOCKOUT) => Error::Lockout(rc),
        // AUTH_FAIL, BAD_AUTH, HIERARCHY on the owner handle.
        (Cc::CreatePrimary, b) if b == FMT1 | 0x0E || b == FMT1 | 0x22 || b == FMT1 | 0x05 => {
            Error::OwnerHierarchy(rc)
        }
        // INTEGRITY (another TPM's or a cleared TPM's blob), or a blob that does not fit
        // this parent at all.
        (Cc::Load, b) if b == FMT1 | 0x1F || b == FMT1 | 0x15 || b == FMT1 | 0x25 => {
            Error::ForeignObject(rc)
        }
        _ => Error::Tpm {
            command: cc.name(),
            rc,
        },
    }
}
