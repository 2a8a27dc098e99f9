//! One volume's race: the local key, every clevis binding at once, the
//! console after the prompt delay; the first passphrase that opens a
//! keyslot wins.
//!
//! ```text
//!   local key ──▶ (boot partition, once) ──▶ keyslots ───────────────┐
//!   binding 0 ──▶ Tang (network, once) ∥ TPM (once) ──▶ passphrase ──▶ keyslot ─┤
//!   binding 1 ──▶ ...                                                      ├─▶ first Opened wins
//!   console (after prompt delay, or when all else failed) ─────────────────┘
//! ```
//! Every automatic method is bounded by the deadline, key derivations
//! included ([`latchkey_luks::Limits`]). Once the race is decided the
//! losers are told: their derivations stop and a console prompt is
//! withdrawn, so the next volume's prompt gets the console. Workers are
//! detached threads; nobody waits for them.

use std::fs::File;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use latchkey_client::time::{Backoff, Deadline, RetryPolicy, XorShift};
use latchkey_client::{KeyslotError, Options, Recover, open_keyslot};
use latchkey_luks::{ClevisBinding, Limits, Unlocked, unlock};
use latchkey_proto::pin::{self, Unseal};
use latchkey_proto::secret::Secret;

use crate::console::Console;
use crate::error::{Attempt, Error, Method};
use crate::kmsg_log::Log;
use crate::net::NetError;
use crate::prompt;
use crate::volume::Volume;

/// How long after the deadline a race still listens: methods bounded by the
/// deadline end at that moment too, and their own account of it (which
/// keyslot, which server) is better than "unanswered".
const REPORT_GRACE: Duration = Duration::from_millis(200);

/// Brings the network up for whichever binding needs it first; the others
/// wait. A failed bring-up (no carrier yet, no DHCP answer) is tried again
/// after a backoff while the deadline allows, so a link that comes up late
/// is still used; its last error is final only once time is up.
pub struct NetGate {
    state: Mutex<NetState>,
    cv: Condvar,
    bring_up: Box<dyn Fn() -> Result<(), NetError> + Send + Sync>,
    deadline: Deadline,
    backoff: Backoff,
    log: Arc<Log>,
}

enum NetState {
    Idle,
    Busy,
    Done(Result<(), Arc<NetError>>),
}

impl NetGate {
    /// The pause between bring-up attempts: each attempt already waits for
    /// carrier and DHCP, so this is only a breather.
    pub fn backoff() -> Backoff {
        Backoff::new(Duration::from_millis(500), 2, Duration::from_secs(5)).with_jitter(0.25)
    }

    /// `bring_up` is called until it succeeds or `deadline` passes.
    pub fn new(
        bring_up: Box<dyn Fn() -> Result<(), NetError> + Send + Sync>,
        deadline: Deadline,
        backoff: Backoff,
        log: Arc<Log>,
    ) -> NetGate {
        NetGate {
            state: Mutex::new(NetState::Idle),
            cv: Condvar::new(),
            bring_up,
            deadline,
            backoff,
            log,
        }
    }

    /// Waits for the network, bringing it up if nobody has yet.
    pub fn ensure(&self) -> Result<(), Arc<NetError>> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match &*st {
                NetState::Done(r) => return r.clone(),
                NetState::Busy => st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner()),
                NetState::Idle => {
                    *st = NetState::Busy;
                    drop(st);
                    let r = self.attempts();
                    st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                    *st = NetState::Done(r);
                    self.cv.notify_all();
                }
            }
        }
    }

    fn attempts(&self) -> Result<(), Arc<NetError>> {
        let mut policy = RetryPolicy::new(self.backoff.clone(), None, self.deadline);
        let mut jitter = XorShift::new(self.log.elapsed().subsec_nanos() | 1);
        let mut last = NetError::NotTried;
        while policy.start(Instant::now()) {
            match (self.bring_up)() {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
            let Some(at) = policy.after_failure(Instant::now(), &mut jitter) else {
                break;
            };
            self.log.info(&format!(
                "network: {last}; trying again in {:.1}s",
                at.saturating_duration_since(Instant::now()).as_secs_f64()
            ));
            thread::sleep(at.saturating_duration_since(Instant::now()));
        }
        Err(Arc::new(last))
    }
}

/// The local key, loaded once for every volume by whichever race asks
/// first (the others wait for that load, inside their own deadlines).
pub struct LocalKey {
    cell: OnceLock<Result<Option<Arc<Secret>>, Arc<Error>>>,
    load: Box<dyn Fn() -> Result<Option<Secret>, Error> + Send + Sync>,
}

impl LocalKey {
    /// A key that `load` reads on first need; `Ok(None)` means there is none.
    pub fn new(load: Box<dyn Fn() -> Result<Option<Secret>, Error> + Send + Sync>) -> LocalKey {
        LocalKey {
            cell: OnceLock::new(),
            load,
        }
    }

    /// True once the key is known to be missing: a race starts no thread for it.
    pub fn is_absent(&self) -> bool {
        matches!(self.cell.get(), Some(Ok(None)))
    }

    /// The key, loading it if nobody has yet.
    pub fn get(&self) -> Result<Option<Arc<Secret>>, Arc<Error>> {
        self.cell
            .get_or_init(|| (self.load)().map(|k| k.map(Arc::new)).map_err(Arc::new))
            .clone()
    }
}

/// What every volume's race shares.
pub struct Ctx {
    /// The log.
    pub log: Arc<Log>,
    /// The network, brought up on first need.
    pub net: NetGate,
    /// The local key file of degraded mode, read on first need.
    pub local_key: LocalKey,
    /// The TPM of tpm2 pins, opened on first need.
    pub tpm: Arc<dyn Unseal>,
    /// When automatic methods give up.
    pub deadline: Deadline,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Which certificates `https://` Tang servers may show.
    pub trust: latchkey_client::Trust,
    /// When the console prompt joins the race.
    pub prompt_at: Instant,
    /// The console, if a person may be there.
    pub console: Option<Console>,
    /// KDF memory limit.
    pub limits: Limits,
}

/// The winning method and what it opened.
pub struct Opened {
    /// How it was opened, for the log.
    pub method: String,
    /// The keyslot, volume key and dm parameters.
    pub unlocked: Unlocked,
}

impl Opened {
    /// The method and the keyslot, for the log.
    pub fn how(&self) -> String {
        method_and_keyslot(&self.method, self.unlocked.keyslot)
    }
}

/// `clevis token 0 (keyslot 1)` as it is (a binding names its keyslot),
/// `keyslot 0, local key`.
fn method_and_keyslot(method: &str, slot: u32) -> String {
    if method.contains(&format!("(keyslot {slot})")) {
        method.to_owned()
    } else {
        format!("keyslot {slot}, {method}")
    }
}

enum Event {
    Opened(Opened),
    Failed(Attempt),
    /// A method with nothing to try (no local key file).
    Absent,
    ConsoleGaveUp(Attempt),
}

/// Stack of the agent's worker threads. Memory is locked as it is touched,
/// so what a thread uses of its stack stays resident until it ends. The
/// deepest work (serde_json at its nesting limit, a pin tree nested as deep
/// as a LUKS2 token allows) takes a fraction of this.
pub const WORKER_STACK: usize = 512 * 1024;

/// A worker thread builder: named, with [`WORKER_STACK`].
pub fn worker(name: impl Into<String>) -> thread::Builder {
    thread::Builder::new()
        .name(name.into())
        .stack_size(WORKER_STACK)
}

/// Runs one method of the race on its own thread; what it reports (if
/// anything) goes to `tx`.
fn spawn_method(
    tx: Sender<Event>,
    method: Method,
    run: impl FnOnce() -> Option<Event> + Send + 'static,
) {
    let report = tx.clone();
    let started = worker(method.to_string()).spawn(move || {
        if let Some(ev) = run() {
            // The race may be over; then nobody listens.
            let _ = report.send(ev);
        }
    });
    if let Err(e) = started {
        let _ = tx.send(Event::Failed(Attempt::of(method, Error::Thread(e))));
    }
}

/// Tries `key` on every keyslot of `vol`, within `limits`.
pub fn try_passphrase(vol: &Volume, key: &Secret, limits: &Limits) -> Result<Unlocked, Error> {
    unlock(&vol.header, &mut open(vol)?, key.expose(), None, limits).map_err(Error::Unlock)
}

/// The volume's device or image, for reading keyslots.
pub(crate) fn open(vol: &Volume) -> Result<File, Error> {
    File::open(&vol.path).map_err(|source| Error::Open {
        path: vol.path.clone(),
        source,
    })
}

fn recover(
    vol: &Volume,
    b: &ClevisBinding,
    ctx: &Arc<Ctx>,
    limits: &Limits,
) -> Result<Opened, Error> {
    let jwe = b.jwe.as_ref().map_err(|e| Error::Jwe(e.clone()))?;
    let opts = Options::new(ctx.timeout, ctx.deadline.remaining(Instant::now()), 4)
        .with_resolver(latchkey_client::Resolver::Stub)
        .with_trust(ctx.trust.clone());
    // Tang requests wait for the network, which the first of them brings up; the TPM
    // steps of the same binding go ahead meanwhile, and a binding without Tang never
    // touches the network.
    let network: Option<latchkey_client::NetworkGate> =
        pin::needs_network(&jwe.header).then(|| {
            let ctx = ctx.clone();
            Arc::new(move || {
                ctx.net
                    .ensure()
                    .map_err(|e| latchkey_client::NetworkDown(e))
            }) as _
        });
    let how = Recover {
        opts: &opts,
        tpm: Some(ctx.tpm.clone()),
        network,
        deadline: ctx.deadline,
    };
    let method = b.to_string();
    let recovered = || {
        ctx.log
            .phase(&format!("key recovered for {} from {method}", vol.name))
    };
    let unlocked = open_keyslot(
        jwe,
        b.keyslot,
        &vol.header,
        how,
        limits,
        || File::open(&vol.path),
        recovered,
    )
    .map_err(|e| match e {
        KeyslotError::Recover(e) => Error::Recover(e),
        KeyslotError::Device(source) => Error::Open {
            path: vol.path.clone(),
            source,
        },
        KeyslotError::Keyslot { slot, source } => Error::Keyslot { slot, source },
    })?;
    Ok(Opened { method, unlocked })
}

fn spawn_local_key(vol: Arc<Volume>, ctx: Arc<Ctx>, limits: Limits, tx: Sender<Event>) {
    spawn_method(tx, Method::LocalKey, move || {
        let failed = |e| Event::Failed(Attempt::of(Method::LocalKey, e));
        Some(match ctx.local_key.get() {
            Ok(None) => Event::Absent,
            Err(e) => failed(Error::LocalKey(e)),
            Ok(Some(key)) => match try_passphrase(&vol, &key, &limits) {
                Ok(unlocked) => {
                    ctx.log.phase(&format!(
                        "local key opened keyslot {} of {}",
                        unlocked.keyslot, vol.name
                    ));
                    Event::Opened(Opened {
                        method: "local key".into(),
                        unlocked,
                    })
                }
                Err(e) => failed(e),
            },
        })
    });
}

fn spawn_console(
    vol: Arc<Volume>,
    ctx: Arc<Ctx>,
    decided: Arc<AtomicBool>,
    failed: Arc<AtomicBool>,
    tx: Sender<Event>,
) {
    spawn_method(tx, Method::Console, move || {
        Some(match prompt::run(&vol, &ctx, &decided, &failed)? {
            prompt::Outcome::Opened(o) => Event::Opened(o),
            prompt::Outcome::GaveUp(e) => Event::ConsoleGaveUp(Attempt::of(Method::Console, e)),
        })
    });
}

/// Set when a race returns, however it returns: its losers stop.
struct Decided(Arc<AtomicBool>);

impl Drop for Decided {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Runs the race for `vol`. On failure, returns what was tried and why it failed.
pub fn race(vol: Arc<Volume>, ctx: Arc<Ctx>) -> Result<Opened, Vec<Attempt>> {
    let decided = Decided(Arc::new(AtomicBool::new(false)));
    let automatic = ctx
        .limits
        .clone()
        .until(ctx.deadline.instant())
        .cancelled_by(decided.0.clone());
    let (tx, rx) = mpsc::channel();
    let local = !ctx.local_key.is_absent();
    if local {
        spawn_local_key(vol.clone(), ctx.clone(), automatic.clone(), tx.clone());
    }
    let bindings = vol.header.clevis_bindings().len();
    let mut pending = usize::from(local) + bindings;
    let mut reasons: Vec<Attempt> = Vec::new();
    if bindings == 0 {
        reasons.push(Error::NoBinding.into());
    }
    for (i, b) in vol.header.clevis_bindings().iter().enumerate() {
        let (vol, ctx, limits) = (vol.clone(), ctx.clone(), automatic.clone());
        let method = Method::Binding(b.to_string());
        spawn_method(tx.clone(), method.clone(), move || {
            let binding = vol.header.clevis_bindings().get(i)?;
            Some(match recover(&vol, binding, &ctx, &limits) {
                Ok(o) => Event::Opened(o),
                Err(e) => Event::Failed(Attempt::of(method, e)),
            })
        });
    }
    let mut prompting = false;
    // Set once every automatic method has failed: the console lists the recovery codes.
    let failed = Arc::new(AtomicBool::new(false));
    loop {
        failed.store(pending == 0, Ordering::Relaxed);
        let now = Instant::now();
        if !prompting && ctx.console.is_some() && (pending == 0 || now >= ctx.prompt_at) {
            prompting = true;
            if pending == 0 {
                report(&ctx.log, &vol, &reasons);
            }
            spawn_console(
                vol.clone(),
                ctx.clone(),
                decided.0.clone(),
                failed.clone(),
                tx.clone(),
            );
        }
        let closed = ctx.deadline.extended(REPORT_GRACE).instant();
        if !prompting && (pending == 0 || now >= closed) {
            if pending > 0 {
                reasons.push(Error::Unanswered { pending }.into());
            }
            return Err(reasons);
        }
        let wake = if prompting {
            Duration::from_secs(3600)
        } else {
            let next = match ctx.console {
                Some(_) => closed.min(ctx.prompt_at),
                None => closed,
            };
            next.saturating_duration_since(now)
                .max(Duration::from_millis(10))
        };
        match rx.recv_timeout(wake) {
            Ok(Event::Opened(o)) => return Ok(o),
            Ok(Event::Failed(why)) => {
                ctx.log.warn(&format!("{}: {why}", vol.name));
                reasons.push(why);
                pending -= 1;
            }
            Ok(Event::Absent) => pending -= 1,
            Ok(Event::ConsoleGaveUp(why)) => {
                reasons.push(why);
                return Err(reasons);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Err(reasons),
        }
    }
}

/// Prints why a volume did not open: to the log and the console.
pub fn report(log: &Log, vol: &Volume, reasons: &[Attempt]) {
    log.error(&format!("could not open {} automatically:", vol.label()));
    for r in reasons {
        log.error(&format!("  {r}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    use latchkey_proto::jwe::Jwe;

    fn gate(fails: u32, budget: Duration, calls: Arc<AtomicU32>) -> (Arc<NetGate>, Arc<Log>) {
        let log = Arc::new(Log::memory(Instant::now(), false));
        let bring_up = Box::new(move || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(20));
            if n < fails {
                Err(NetError::NoCarrier(vec![format!(
                    "eth0 (attempt {})",
                    n + 1
                )]))
            } else {
                Ok(())
            }
        });
        let backoff = Backoff::new(Duration::from_millis(30), 2, Duration::from_millis(100));
        let deadline = Deadline::after(Instant::now(), budget);
        (
            Arc::new(NetGate::new(bring_up, deadline, backoff, log.clone())),
            log,
        )
    }

    #[test]
    fn the_log_names_the_keyslot_once() {
        assert_eq!(
            method_and_keyslot("clevis token 0 (keyslot 1)", 1),
            "clevis token 0 (keyslot 1)"
        );
        assert_eq!(method_and_keyslot("local key", 0), "keyslot 0, local key");
        assert_eq!(
            method_and_keyslot("recovery codes for clevis token 2 (keyslot 3)", 3),
            "recovery codes for clevis token 2 (keyslot 3)"
        );
        // Another keyslot named in the method is not this one.
        assert_eq!(
            method_and_keyslot("clevis token 0 (keyslot 1)", 2),
            "keyslot 2, clevis token 0 (keyslot 1)"
        );
    }

    #[test]
    fn a_local_key_is_absent_only_once_read_and_missing() {
        let missing = LocalKey::new(Box::new(|| Ok(None)));
        assert!(!missing.is_absent(), "not known before it is read");
        assert!(missing.get().unwrap().is_none());
        assert!(missing.is_absent());
        let key = LocalKey::new(Box::new(|| Ok(Some(Secret::new(b"a key".to_vec())))));
        assert_eq!(key.get().unwrap().unwrap().expose(), b"a key");
        assert!(!key.is_absent());
        let unreadable = LocalKey::new(Box::new(|| Err(Error::NoBinding)));
        assert!(unreadable.get().is_err());
        assert!(
            !unreadable.is_absent(),
            "an unreadable key is reported by its race"
        );
    }

    #[test]
    fn network_comes_up_once_for_many_waiters_after_failures() {
        let calls = Arc::new(AtomicU32::new(0));
        let (gate, log) = gate(2, Duration::from_secs(30), calls.clone());
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let g = gate.clone();
                thread::spawn(move || g.ensure())
            })
            .collect();
        for h in handles {
            assert!(h.join().unwrap().is_ok());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3, "two failures, then up");
        assert!(gate.ensure().is_ok());
        assert_eq!(calls.load(Ordering::SeqCst), 3, "up is final");
        let retries = log
            .lines()
            .iter()
            .filter(|(_, l)| l.contains("trying again in"))
            .count();
        assert_eq!(retries, 2, "{:?}", log.lines());
    }

    #[test]
    fn network_failure_is_final_only_at_the_deadline() {
        let calls = Arc::new(AtomicU32::new(0));
        let (gate, _) = gate(u32::MAX, Duration::from_millis(400), calls.clone());
        let start = Instant::now();
        let e = gate.ensure().unwrap_err().to_string();
        let n = calls.load(Ordering::SeqCst);
        println!("{n} attempts in {:?}: {e}", start.elapsed());
        assert!(e.starts_with("no carrier on eth0 (attempt "), "{e}");
        // 20 ms attempts with 30, 60, 100, 100 ms pauses fit four to six
        // times in 400 ms; never an unbounded number.
        assert!((2..=12).contains(&n), "{n} attempts");
        assert_eq!(gate.ensure().unwrap_err().to_string(), e);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            n,
            "no attempt after the deadline"
        );
    }

    /// The deepest work a worker does on hostile input fits in its stack: a
    /// pin tree nested as deep as a 3 MiB token allows, parsed and planned,
    /// and JSON at serde_json's nesting limit.
    #[test]
    fn worker_stack_holds_the_deepest_input() {
        struct NoIo;
        impl latchkey_proto::pin::EncryptIo for NoIo {
            fn fetch_adv(&mut self, _: &str, _: Option<&str>) -> Result<Vec<u8>, String> {
                Err("offline".into())
            }
            fn read_file(&mut self, _: &str) -> Result<Vec<u8>, String> {
                Err("offline".into())
            }
            fn trust(&mut self, _: &str, _: &[String]) -> bool {
                false
            }
        }
        let mut rng = latchkey_sys::rng::os();
        let (mut pin, mut config) = ("null".to_owned(), "{}".to_owned());
        let mut depth = 0;
        let jwe = loop {
            let text = latchkey_proto::pin::encrypt_json(
                &pin, &config, b"deep", true, &mut NoIo, &mut rng,
            )
            .unwrap();
            if text.len() > 3 << 20 {
                break text;
            }
            config = format!(r#"{{"t":1,"pins":{{"{pin}":{config}}}}}"#);
            pin = "sss".into();
            depth += 1;
        };
        println!("{depth} levels of sss, {} bytes", jwe.len());
        let done = worker("deep")
            .spawn(move || {
                let nested = format!("{}{}", "[".repeat(127), "]".repeat(127));
                assert!(serde_json::from_str::<serde_json::Value>(&nested).is_ok());
                let jwe = Jwe::parse(&jwe).unwrap();
                let mut rng = latchkey_sys::rng::os();
                let plan = latchkey_proto::pin::Decryption::new(&jwe, &mut rng).unwrap();
                matches!(plan.status(), latchkey_proto::pin::Status::Done(s) if s.expose() == b"deep")
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(done);
    }

    /// A veth whose far end comes up only after the first attempt gave up
    /// waiting for carrier: a later attempt, before the deadline, gets the
    /// DHCP lease.
    #[test]
    fn root_network_that_comes_up_late_is_used() {
        use crate::net::plan::{Iface, Method, Plan, Step};
        use crate::net::testnet::*;
        let t = "root_network_that_comes_up_late_is_used";
        if !enter(t) {
            return;
        }
        let dir = scratch(t);
        let peers = PeerNs::new();
        ip("link add lkl0 type veth peer name lkl1");
        peers.take("lkl1");
        peers.ip("addr add 10.88.7.1/24 dev lkl1");
        let Some(_server) = udhcpd_in(&dir, "lkl1", 7, Some(&peers)) else {
            return;
        };
        let later = peers.ip_after(Duration::from_millis(2500), "link set lkl1 up");
        let plan = Plan {
            steps: vec![Step {
                iface: Iface::Name("lkl0".into()),
                method: Method::Dhcp,
            }],
            nameservers: vec![],
            hostname: None,
            ..Plan::default()
        };
        let opts = crate::net::Options {
            resolv_conf: dir.join("resolv.conf"),
            carrier_timeout: Duration::from_secs(1),
            ..crate::net::Options::default()
        };
        let log = Arc::new(Log::memory(Instant::now(), true));
        let deadline = Deadline::after(Instant::now(), Duration::from_secs(30));
        let attempts = Arc::new(AtomicU32::new(0));
        let bring_up = {
            let (log, attempts) = (log.clone(), attempts.clone());
            Box::new(move || {
                attempts.fetch_add(1, Ordering::SeqCst);
                crate::net::bring_up(&plan, &opts, deadline, &mut XorShift::new(11), &log)
                    .map(|_| ())
            })
        };
        let gate = NetGate::new(bring_up, deadline, NetGate::backoff(), log.clone());
        let r = gate.ensure();
        later.join().unwrap();
        for (_, l) in log.lines() {
            println!("{l}");
        }
        assert!(r.is_ok(), "{r:?}");
        assert!(attempts.load(Ordering::SeqCst) >= 2);
        assert!(
            log.lines()
                .iter()
                .any(|(_, l)| l.contains("no carrier on lkl0") && l.contains("trying again")),
            "{:?}",
            log.lines()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
