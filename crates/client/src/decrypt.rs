//! Runs a `pin::Decryption` plan: every Tang request at once, one thread each, which also
//! builds the request's body, and the TPM unseals (tpm2 pins) on one more thread, through
//! the caller's [`Unseal`]; answers are fed to the plan as they arrive, and the first
//! verdict wins.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use latchkey_proto::jwe::Jwe;
use latchkey_proto::pin::{Decryption, RequestId, Status, Unseal};
use latchkey_proto::secret::Secret;

use crate::time::Deadline;
use crate::transport::{self, Request};
use crate::{Cancel, Error, Options};

/// Recovers the plaintext of a clevis JWE (tang, sss, null, nested; tpm2 with
/// [`decrypt_with`]), drawing the ephemeral keys from the OS.
///
/// All Tang requests go out concurrently; as soon as the pin tree is satisfied (or can no
/// longer be) the outstanding ones are cancelled. `opts.timeout` bounds each request and
/// `opts.budget` the whole call. On failure the error lists every URL and its fate.
pub fn decrypt(jwe: &Jwe, opts: &Options) -> Result<Secret, Error> {
    decrypt_with(jwe, opts, None)
}

/// [`decrypt`], with the TPM steps of tpm2 pins done by `tpm` (latchkey-tpm2's
/// `Unsealer`). Without it, a tpm2 binding fails as unsupported by this program.
pub fn decrypt_with(
    jwe: &Jwe,
    opts: &Options,
    tpm: Option<Arc<dyn Unseal>>,
) -> Result<Secret, Error> {
    decrypt_until(jwe, opts, tpm, None, opts.deadline())
}

/// Brings the network up, or says why it cannot; called by each Tang request before it
/// connects, so that a caller who owns the network (the initrd agent) brings it up only
/// when a Tang request is really made, and TPM steps never wait for it.
pub type NetworkGate = Arc<dyn Fn() -> Result<(), NetworkDown> + Send + Sync>;

/// Why a [`NetworkGate`] could not bring the network up: the caller's own error, kept
/// whole (shared, since every waiting request reports the same one).
#[derive(Debug, Clone)]
pub struct NetworkDown(pub Arc<dyn std::error::Error + Send + Sync>);

impl std::fmt::Display for NetworkDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// [`decrypt_with`], ending at the caller's `deadline` rather than `opts.budget` from now,
/// each Tang request first passing `network` when given.
pub fn decrypt_until(
    jwe: &Jwe,
    opts: &Options,
    tpm: Option<Arc<dyn Unseal>>,
    network: Option<NetworkGate>,
    deadline: Deadline,
) -> Result<Secret, Error> {
    let mut rng = latchkey_sys::rng::os();
    let plan = Decryption::new(jwe, &mut rng)?;
    drive_gated(plan, opts, tpm, network, deadline)
}

/// Most a `decrypt` command reads: more than any clevis JWE (a 3-server sss one is about
/// 6 KiB) or whole LUKS2 token.
pub const MAX_JWE_INPUT: usize = 1 << 20;

/// The `decrypt` command of both binaries: the JWE on stdin (compact, flattened JSON or a
/// whole LUKS2 token, at most [`MAX_JWE_INPUT`] bytes, read into a [`Secret`]), recovered
/// with [`decrypt_with`], its plaintext written to stdout and flushed.
pub fn decrypt_stdin(opts: &Options, tpm: Option<Arc<dyn Unseal>>) -> Result<(), Error> {
    let input = |reason: String| Error::Input { reason };
    let raw = Secret::read_bounded(&mut std::io::stdin().lock(), MAX_JWE_INPUT)
        .map_err(|e| input(format!("reading stdin: {e}")))?;
    let text = std::str::from_utf8(raw.expose())
        .map_err(|_| input("the JWE on stdin is not UTF-8 text".into()))?;
    if text.trim().is_empty() {
        return Err(input("no JWE on stdin".into()));
    }
    let secret = decrypt_with(&Jwe::parse(text)?, opts, tpm)?;
    let mut out = std::io::stdout().lock();
    out.write_all(secret.expose())
        .and_then(|()| out.flush())
        .map_err(Error::Output)
}

/// What a worker hands back.
enum Answer {
    Rec(Result<Vec<u8>, Error>),
    Unsealed(Result<Secret, String>),
}

/// The fate of a request still outstanding at the deadline.
const UNANSWERED: &str = "no reply before the deadline";

/// Why a tpm2 binding fails in a program that has no TPM access.
const NO_TPM: &str = "this program was built without TPM support";

/// How long a decision waits for a TPM step under way to reach its next command and
/// flush what it loaded: a TPM without a resource manager (/dev/tpm0, swtpm) would keep
/// those objects after this process, in its few slots.
const UNSEAL_WIND_DOWN: Duration = Duration::from_secs(1);

/// Stops the TPM steps once the decryption is decided, and gives the one under way
/// [`UNSEAL_WIND_DOWN`] to clean up.
struct UnsealWindDown {
    stop: Arc<AtomicBool>,
    /// Disconnected when the TPM thread has ended.
    done: Option<mpsc::Receiver<()>>,
}

impl Drop for UnsealWindDown {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(done) = &self.done {
            let _ = done.recv_timeout(UNSEAL_WIND_DOWN);
        }
    }
}

/// Stack of a request's thread: a TCP exchange (TLS perhaps) and a P-521
/// multiplication. The agent runs with memory locked, where a whole stack
/// is resident; the 2 MiB default would be most of its memory.
const REQUEST_STACK: usize = 512 * 1024;

struct Outstanding {
    url: String,
    cancel: Cancel,
}

/// Drives an already-built plan to its end (or `deadline`), with `tpm` for its unseals.
pub fn drive(
    plan: Decryption,
    opts: &Options,
    tpm: Option<Arc<dyn Unseal>>,
    deadline: Deadline,
) -> Result<Secret, Error> {
    drive_gated(plan, opts, tpm, None, deadline)
}

fn drive_gated(
    mut plan: Decryption,
    opts: &Options,
    tpm: Option<Arc<dyn Unseal>>,
    network: Option<NetworkGate>,
    deadline: Deadline,
) -> Result<Secret, Error> {
    let start = Instant::now();
    // Workers stop a little after the driver gives up, so a request cut short by the overall
    // deadline is reported as such rather than as its own timeout; the driver cancels them.
    let worker_deadline = deadline.extended(Duration::from_millis(250));
    let (tx, rx) = mpsc::channel::<(RequestId, Answer)>();
    // Each transient failure a request is retrying after, for the report should the
    // deadline come first (a few per request: its retries are bounded).
    let (note_tx, notes) = mpsc::channel::<(RequestId, String)>();
    let mut outstanding: HashMap<RequestId, Outstanding> = HashMap::new();
    let mut outcomes: Vec<(RequestId, String, Option<String>)> = Vec::new();
    let requests = plan.requests();
    for req in &requests {
        let cancel = Cancel::new();
        let rec_url = opts.url(&req.rec_url);
        outstanding.insert(
            req.id,
            Outstanding {
                url: req.url.clone(),
                cancel: cancel.clone(),
            },
        );
        outcomes.push((req.id, req.url.clone(), None));
        let report = tx.clone();
        let note = note_tx.clone();
        let opts = opts.clone();
        let req = req.clone();
        let network = network.clone();
        let (id, url) = (req.id, req.url.clone());
        let started = thread::Builder::new()
            .name(format!("tang {}", req.url))
            .stack_size(REQUEST_STACK)
            .spawn(move || {
                // The body's e·G first: its CPU time overlaps the wait for the network.
                let body = req.body().map_err(Error::from);
                let online = match &network {
                    Some(gate) => gate().map_err(|cause| Error::Network {
                        url: req.url.clone(),
                        cause,
                    }),
                    None => Ok(()),
                };
                let body = online.and(body);
                let result = body.and_then(|body| {
                    let r = Request {
                        method: "POST",
                        url: &rec_url,
                        body: Some(("application/jwk+json", &body)),
                    };
                    let mut failed = |e: &Error| {
                        let _ = note.send((req.id, e.detail(&rec_url)));
                    };
                    transport::send(&r, &opts, &cancel, worker_deadline, &mut failed)
                });
                // The receiver is gone once a verdict is reached; the result is moot then.
                let _ = report.send((req.id, Answer::Rec(result)));
            });
        if let Err(e) = started {
            let source = std::io::Error::new(e.kind(), format!("starting a thread: {e}"));
            let _ = tx.send((id, Answer::Rec(Err(Error::Io { url, source }))));
        }
    }
    // The TPM steps need no network: one thread runs them in turn (a TPM does one
    // command at a time anyway) while the Tang requests are out.
    let unseals = plan.unseal_requests();
    let mut wind_down = UnsealWindDown {
        stop: Arc::new(AtomicBool::new(false)),
        done: None,
    };
    if !unseals.is_empty() {
        for req in &unseals {
            let what = req.binding.describe();
            outstanding.insert(
                req.id,
                Outstanding {
                    url: what.clone(),
                    cancel: Cancel::new(),
                },
            );
            outcomes.push((req.id, what, None));
        }
        let report = tx.clone();
        let ids: Vec<RequestId> = unseals.iter().map(|r| r.id).collect();
        let stop = wind_down.stop.clone();
        let (done_tx, done) = mpsc::channel::<()>();
        wind_down.done = Some(done);
        let started = thread::Builder::new()
            .name("tpm2 unseal".into())
            .stack_size(REQUEST_STACK)
            .spawn(move || {
                let _done = done_tx;
                for req in unseals {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let result = match &tpm {
                        Some(t) => t.unseal(&req.binding, worker_deadline.instant(), &stop),
                        None => Err(NO_TPM.to_owned()),
                    };
                    if report.send((req.id, Answer::Unsealed(result))).is_err() {
                        return;
                    }
                }
            });
        if let Err(e) = started {
            for id in ids {
                let _ = tx.send((id, Answer::Unsealed(Err(format!("starting a thread: {e}")))));
            }
        }
    }
    // Each request costs two scalar multiplications: e·G for its body (on its worker, while
    // the network comes up) and e·S to unblind the reply. This thread computes the e·S terms,
    // in request order, while the servers work, so replies find them ready.
    let mut to_prepare = requests.into_iter();
    drop(tx);

    // One line per server or binding and fate: a missing TPM is said once, however many
    // tpm2 bindings met it.
    let report = |outcomes: &[(RequestId, String, Option<String>)], unfinished: &str| {
        let mut lines: Vec<(String, String)> = Vec::new();
        for (_, url, what) in outcomes {
            let line = (
                url.clone(),
                what.clone().unwrap_or_else(|| unfinished.to_owned()),
            );
            if !lines.contains(&line) {
                lines.push(line);
            }
        }
        lines
    };
    let cancel_all = |outstanding: &HashMap<RequestId, Outstanding>| {
        for o in outstanding.values() {
            o.cancel.cancel();
        }
    };
    loop {
        match plan.status() {
            Status::Pending => {}
            Status::Done(secret) => {
                cancel_all(&outstanding);
                return Ok(secret);
            }
            Status::Failed(err) => {
                cancel_all(&outstanding);
                let outcomes = report(&outcomes, "not needed");
                return Err(Error::Failed {
                    reason: err.to_string(),
                    outcomes,
                });
            }
        }
        let left = deadline.remaining(Instant::now());
        let received = match rx.try_recv() {
            Ok(reply) => Ok(reply),
            Err(mpsc::TryRecvError::Disconnected) => Err(mpsc::RecvTimeoutError::Disconnected),
            Err(mpsc::TryRecvError::Empty) if !left.is_zero() => {
                if let Some(req) = to_prepare.next() {
                    req.prepare();
                    continue;
                }
                rx.recv_timeout(left)
            }
            Err(mpsc::TryRecvError::Empty) => Err(mpsc::RecvTimeoutError::Timeout),
        };
        match received {
            Ok((id, answer)) => {
                let Some(o) = outstanding.remove(&id) else {
                    continue;
                };
                let what = match &answer {
                    Answer::Rec(Ok(_)) => "replied".to_owned(),
                    Answer::Rec(Err(e)) => e.detail(&o.url),
                    Answer::Unsealed(Ok(_)) => "unsealed".to_owned(),
                    Answer::Unsealed(Err(e)) => e.clone(),
                };
                if let Some(slot) = outcomes.iter_mut().find(|(i, _, _)| *i == id) {
                    slot.2 = Some(what.clone());
                }
                match answer {
                    Answer::Rec(result) => plan.supply(id, result.map_err(|_| what)),
                    Answer::Unsealed(result) => plan.supply_unseal(id, result),
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                cancel_all(&outstanding);
                // The latest note of each request wins.
                let last: HashMap<RequestId, String> = notes.try_iter().collect();
                for (id, _, what) in &mut outcomes {
                    if let (None, Some(l)) = (&what, last.get(id)) {
                        *what = Some(format!("{UNANSWERED} (last: {l})"));
                    }
                }
                let outcomes = report(&outcomes, UNANSWERED);
                return Err(Error::Deadline {
                    after: deadline.remaining(start),
                    outcomes,
                });
            }
            // Every worker answered and the plan is still pending: it wants nothing more.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let outcomes = report(&outcomes, "no reply");
                let reason = "the pin tree was not satisfied by the replies".to_owned();
                return Err(Error::Failed { reason, outcomes });
            }
        }
    }
}
