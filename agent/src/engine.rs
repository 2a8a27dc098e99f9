//! One volume's race: every clevis binding at once, the console after the
//! prompt delay, and the first passphrase that opens a keyslot wins.
//!
//! ```text
//!   binding 0 ──▶ (network) ──▶ Tang/sss ──▶ passphrase ──▶ keyslot ─┐
//!   binding 1 ──▶ ...                                                ├─▶ first Opened wins
//!   console (after prompt delay, or when all else failed) ───────────┘
//! ```
//! Workers are detached threads: once a winner is known nobody waits for
//! the others, whose sockets die with the process.

use std::fs::File;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use latchkey_client::{Options, Retry};
use latchkey_luks::{BindingSource, ClevisBinding, Limits, Unlocked, unlock};
use latchkey_proto::jwe::Jwe;
use latchkey_proto::pin;
use latchkey_proto::secret::Secret;

use crate::console::Console;
use crate::kmsg_log::Log;
use crate::volumes::Volume;

/// Wrong console passphrases allowed before giving up, as cryptsetup's default.
const CONSOLE_TRIES: u32 = 3;

/// Brings the network up once, for whichever binding needs it first.
pub struct NetGate {
    state: Mutex<NetState>,
    cv: Condvar,
    bring_up: Box<dyn Fn() -> Result<(), String> + Send + Sync>,
}

enum NetState {
    Idle,
    Busy,
    Done(Result<(), String>),
}

impl NetGate {
    /// `bring_up` runs at most once.
    pub fn new(bring_up: Box<dyn Fn() -> Result<(), String> + Send + Sync>) -> NetGate {
        NetGate {
            state: Mutex::new(NetState::Idle),
            cv: Condvar::new(),
            bring_up,
        }
    }

    /// Waits for the network, bringing it up if nobody has yet.
    pub fn ensure(&self) -> Result<(), String> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match &*st {
                NetState::Done(r) => return r.clone(),
                NetState::Busy => st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner()),
                NetState::Idle => {
                    *st = NetState::Busy;
                    drop(st);
                    let r = (self.bring_up)();
                    st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                    *st = NetState::Done(r);
                    self.cv.notify_all();
                }
            }
        }
    }
}

/// What every volume's race shares.
pub struct Ctx {
    /// The log.
    pub log: Arc<Log>,
    /// The network, brought up on first need.
    pub net: NetGate,
    /// When automatic methods give up.
    pub deadline: Instant,
    /// Per-request timeout.
    pub timeout: Duration,
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

enum Event {
    Opened(Opened),
    Failed(String),
    ConsoleGaveUp(String),
}

/// `clevis token 0 (keyslot 1)` or `LUKSMeta slot 2`.
pub fn binding_name(b: &ClevisBinding) -> String {
    match b.source {
        BindingSource::Luks2Token(t) => format!("clevis token {t} (keyslot {})", b.keyslot),
        _ => format!("clevis LUKSMeta slot {}", b.keyslot),
    }
}

/// Tries `key` on every keyslot of `vol`.
pub fn try_passphrase(vol: &Volume, key: &Secret, limits: &Limits) -> Result<Unlocked, String> {
    let mut f =
        File::open(&vol.path).map_err(|e| format!("opening {}: {e}", vol.path.display()))?;
    unlock(&vol.header, &mut f, key.expose(), None, limits).map_err(|e| e.to_string())
}

fn recover(vol: &Volume, b: &ClevisBinding, ctx: &Ctx) -> Result<Opened, String> {
    let jwe = Jwe::parse(&b.jwe).map_err(|e| e.to_string())?;
    if pin::needs_network(&jwe.header) {
        ctx.net.ensure().map_err(|e| format!("network: {e}"))?;
    }
    let remaining = ctx.deadline.saturating_duration_since(Instant::now());
    let opts = Options {
        connect_timeout: ctx.timeout,
        timeout: ctx.timeout,
        deadline: remaining,
        retry: Retry {
            retries: 4,
            initial: Duration::from_millis(250),
            max: Duration::from_secs(2),
        },
        rewrite: None,
    };
    let pass = latchkey_client::decrypt(&jwe, &opts).map_err(|e| e.to_string())?;
    let method = binding_name(b);
    ctx.log
        .phase(&format!("key recovered for {} from {method}", vol.name));
    let mut f =
        File::open(&vol.path).map_err(|e| format!("opening {}: {e}", vol.path.display()))?;
    let unlocked = unlock(
        &vol.header,
        &mut f,
        pass.expose(),
        Some(b.keyslot),
        &ctx.limits,
    )
    .map_err(|e| format!("keyslot {}: {e}", b.keyslot))?;
    Ok(Opened { method, unlocked })
}

fn spawn_console(vol: Arc<Volume>, ctx: Arc<Ctx>, tx: Sender<Event>) {
    thread::spawn(move || {
        let Some(console) = &ctx.console else { return };
        let prompt = format!("Please enter passphrase for disk {}: ", vol.label());
        for _ in 0..CONSOLE_TRIES {
            let Some(pass) = console.ask(&prompt) else {
                let _ = tx.send(Event::ConsoleGaveUp("console: no input".into()));
                return;
            };
            match try_passphrase(&vol, &pass, &ctx.limits) {
                Ok(unlocked) => {
                    let _ = tx.send(Event::Opened(Opened {
                        method: "console passphrase".into(),
                        unlocked,
                    }));
                    return;
                }
                Err(e) => console.say(&format!("No key available with this passphrase ({e}).")),
            }
        }
        let _ = tx.send(Event::ConsoleGaveUp(format!(
            "console: {CONSOLE_TRIES} wrong passphrases"
        )));
    });
}

/// Runs the race for `vol`. On failure, returns one line per method tried.
pub fn race(vol: Arc<Volume>, ctx: Arc<Ctx>) -> Result<Opened, Vec<String>> {
    let (tx, rx) = mpsc::channel();
    let bindings = vol.header.clevis_bindings().to_vec();
    let mut pending = bindings.len();
    for b in bindings {
        let (vol, ctx, tx) = (vol.clone(), ctx.clone(), tx.clone());
        thread::spawn(move || {
            let ev = match recover(&vol, &b, &ctx) {
                Ok(o) => Event::Opened(o),
                Err(e) => Event::Failed(format!("{}: {e}", binding_name(&b))),
            };
            let _ = tx.send(ev);
        });
    }
    let mut reasons = Vec::new();
    if pending == 0 {
        reasons.push("no clevis binding in the LUKS header".to_owned());
    }
    let mut prompting = false;
    loop {
        let now = Instant::now();
        if !prompting && ctx.console.is_some() && (pending == 0 || now >= ctx.prompt_at) {
            prompting = true;
            if pending == 0 {
                report(&ctx.log, &vol, &reasons);
            }
            spawn_console(vol.clone(), ctx.clone(), tx.clone());
        }
        if !prompting && (pending == 0 || now >= ctx.deadline) {
            if pending > 0 {
                reasons.push(format!(
                    "deadline reached with {pending} binding(s) still unanswered"
                ));
            }
            return Err(reasons);
        }
        let wake = if prompting {
            Duration::from_secs(3600)
        } else {
            ctx.deadline
                .min(ctx.prompt_at)
                .saturating_duration_since(now)
                .max(Duration::from_millis(10))
        };
        match rx.recv_timeout(wake) {
            Ok(Event::Opened(o)) => return Ok(o),
            Ok(Event::Failed(why)) => {
                ctx.log.warn(&format!("{}: {why}", vol.name));
                reasons.push(why);
                pending -= 1;
            }
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
pub fn report(log: &Log, vol: &Volume, reasons: &[String]) {
    log.error(&format!("could not open {} automatically:", vol.label()));
    for r in reasons {
        log.error(&format!("  {r}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn network_comes_up_once_for_many_waiters() {
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let gate = Arc::new(NetGate::new(Box::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(50));
            Err("no carrier on eth0".into())
        })));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let g = gate.clone();
                thread::spawn(move || g.ensure())
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), Err("no carrier on eth0".to_owned()));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
