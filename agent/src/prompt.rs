//! The console's method of the race: one prompt that takes the volume's passphrase or,
//! when its Tang servers are out of reach, the answers to its recovery codes
//! ([`crate::offline`] says how a line is told apart, and what is shown).
//!
//! ```text
//!  automatic recovery failed? ── yes ─▶ the codes, listed
//!                             └─ no ──▶ one line: an empty line shows them (and when
//!                                       it fails, the prompt is withdrawn and they are)
//!  prompt ◀─────────────────────────────────────────────────────────┐
//!    ├─ empty line ─▶ the codes, then each as a QR code in turn ─────┤
//!    ├─ an answer ──▶ progress, or the typo named ───────────────────┤
//!    │               └─ a binding recovered ─▶ its keyslot ─▶ Opened
//!    └─ a passphrase ─▶ every keyslot ─▶ Opened, or "No key available" (3 tries)
//! ```
//! Answers do not count as tries: a typo costs nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use latchkey_luks::{Limits, Unlocked, unlock};
use latchkey_proto::secret::Secret;

use crate::console::Answer;
use crate::engine::{Ctx, Opened, open, try_passphrase};
use crate::error::Error;
use crate::offline::{Offline, Typed};
use crate::volume::Volume;

/// Wrong console passphrases allowed before giving up, as cryptsetup's default.
const CONSOLE_TRIES: u32 = 3;

/// Longest key derivation for a passphrase typed at the console (which has
/// no deadline): thirty times cryptsetup's default iteration time.
const CONSOLE_KDF_TIME: Duration = Duration::from_secs(60);

/// How the prompt ended (`None` from [`run`]: it was withdrawn).
pub enum Outcome {
    /// A passphrase or the recovery codes opened a keyslot.
    Opened(Opened),
    /// No input ([`Error::NoInput`]), or too many wrong passphrases
    /// ([`Error::WrongPassphrases`]).
    GaveUp(Error),
}

/// Asks on the console until the volume opens, the person gives up, or the race is
/// `decided` elsewhere. `failed` is set once every automatic method has failed: the
/// recovery codes are listed then (at once if it is set already).
pub fn run(
    vol: &Volume,
    ctx: &Ctx,
    decided: &Arc<AtomicBool>,
    failed: &AtomicBool,
) -> Option<Outcome> {
    let console = ctx.console.as_ref()?;
    let disk = vol.label();
    let mut offline = Offline::new(vol.header.clevis_bindings(), &mut latchkey_sys::rng::os());
    let failed_now = || failed.load(Ordering::Relaxed);
    let (prompt, mut show) = if offline.is_empty() {
        (
            format!("Please enter passphrase for disk {disk}: "),
            Vec::new(),
        )
    } else if failed_now() {
        (answer_prompt(&disk), offline.list(&disk))
    } else {
        (answer_prompt(&disk), vec![offline.hint().to_owned()])
    };
    let mut listed = offline.is_empty() || failed_now();
    let mut wrong = 0;
    while wrong < CONSOLE_TRIES {
        // Until the codes are listed, the prompt also ends when the network gives up.
        let stop = || decided.load(Ordering::Relaxed) || (!listed && failed_now());
        let line = match console.ask_until(&std::mem::take(&mut show), &prompt, &stop) {
            Answer::Line(line) => line,
            Answer::Eof => return Some(Outcome::GaveUp(Error::NoInput)),
            Answer::Withdrawn if decided.load(Ordering::Relaxed) => return None,
            Answer::Withdrawn => {
                show = vec![
                    "No Tang server could be reached (a line being typed was dropped).".into(),
                ];
                show.extend(offline.list(&disk));
                listed = true;
                continue;
            }
        };
        let limits = ctx
            .limits
            .clone()
            .until(Instant::now() + CONSOLE_KDF_TIME)
            .cancelled_by(decided.clone());
        if !offline.is_empty() && line.is_empty() {
            show = if listed {
                offline.next_qr()
            } else {
                offline.list(&disk)
            };
            listed = true;
            continue;
        }
        if offline.takes(&line) {
            let (keyslot, what, passphrase) = match offline.answer(&line) {
                Typed::Again(lines) => {
                    show = lines;
                    continue;
                }
                Typed::Recovered {
                    keyslot,
                    what,
                    passphrase,
                } => (keyslot, what, passphrase),
            };
            match open_slot(vol, &passphrase, keyslot, &limits) {
                Ok(unlocked) => {
                    ctx.log.phase(&format!(
                        "key recovered for {} from recovery codes",
                        vol.name
                    ));
                    return Some(Outcome::Opened(Opened {
                        method: format!("recovery codes for {what}"),
                        unlocked,
                    }));
                }
                Err(_) if decided.load(Ordering::Relaxed) => return None,
                Err(e) => show = vec![format!("The recovered passphrase of {what}: {e}")],
            }
            continue;
        }
        match try_passphrase(vol, &line, &limits) {
            Ok(unlocked) => {
                return Some(Outcome::Opened(Opened {
                    method: "console passphrase".into(),
                    unlocked,
                }));
            }
            Err(_) if decided.load(Ordering::Relaxed) => return None,
            Err(e) => {
                wrong += 1;
                show = vec![format!("No key available with this passphrase ({e}).")];
            }
        }
    }
    if !show.is_empty() {
        console.say(&show.join("\n"));
    }
    Some(Outcome::GaveUp(Error::WrongPassphrases {
        tries: CONSOLE_TRIES,
    }))
}

fn answer_prompt(disk: &str) -> String {
    format!("Please enter passphrase for disk {disk}, or a recovery answer: ")
}

/// The recovered passphrase on the keyslot its binding is for.
fn open_slot(
    vol: &Volume,
    passphrase: &Secret,
    keyslot: u32,
    limits: &Limits,
) -> Result<Unlocked, Error> {
    unlock(
        &vol.header,
        &mut open(vol)?,
        passphrase.expose(),
        Some(keyslot),
        limits,
    )
    .map_err(|source| Error::Keyslot {
        slot: keyslot,
        source,
    })
}
