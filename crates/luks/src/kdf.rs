//! Passphrase to keyslot-area key: PBKDF2 or Argon2 with the header's costs,
//! bounded by the caller's [`Limits`].
//!
//! The costs come from the disk, so they are hostile input: PBKDF2 stops
//! when told to; Argon2, which cannot be interrupted, runs one at a time in
//! the process and is not started when this machine could not finish it
//! before the deadline.

use std::sync::{Mutex, MutexGuard, OnceLock, TryLockError};
use std::time::{Duration, Instant};

use crate::model::{Argon2Variant, Kdf};
use crate::unlock::{ARGON2_MAX_MEMORY_KIB, Stop};
use crate::{Error, Limits};
use zeroize::Zeroizing;

/// Held while an Argon2 derivation runs: each may take half of the memory
/// available, so two at once could exhaust it (with memory locked, that
/// aborts the process).
static ARGON2_TURN: Mutex<()> = Mutex::new(());

/// How often a caller waiting for its Argon2 turn looks at its limits.
const TURN_POLL: Duration = Duration::from_millis(10);

/// Derive `len` bytes for keyslot `slot`.
pub(crate) fn derive(
    kdf: &Kdf,
    slot: u32,
    passphrase: &[u8],
    len: usize,
    limits: &Limits,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    limits.check(slot)?;
    let mut out = Zeroizing::new(vec![0u8; len]);
    match kdf {
        Kdf::Pbkdf2 {
            hash,
            iterations,
            salt,
        } => {
            if *iterations == 0 {
                return Err(Error::Kdf {
                    slot,
                    reason: "PBKDF2 iteration count is 0".into(),
                });
            }
            hash.pbkdf2(passphrase, salt, *iterations, &mut out, &|| {
                limits.stop().is_some()
            })
            .map_err(|_| Error::KdfStopped {
                slot,
                reason: limits.stop().unwrap_or(Stop::Deadline),
            })?;
        }
        Kdf::Argon2 {
            variant,
            time,
            memory_kib,
            cpus,
            salt,
        } => {
            let limit_kib = limits.max_memory_kib.min(ARGON2_MAX_MEMORY_KIB);
            if u64::from(*memory_kib) > limit_kib {
                return Err(Error::MemoryLimit {
                    slot,
                    needed_kib: u64::from(*memory_kib),
                    limit_kib,
                });
            }
            let kdf_err = |e: argon2::Error| Error::Kdf {
                slot,
                reason: e.to_string(),
            };
            let params =
                argon2::Params::new(*memory_kib, *time, *cpus, Some(len)).map_err(kdf_err)?;
            let algorithm = match variant {
                Argon2Variant::I => argon2::Algorithm::Argon2i,
                Argon2Variant::Id => argon2::Algorithm::Argon2id,
            };
            let _turn = argon2_turn(slot, limits)?;
            if let Some(left) = limits.time_left() {
                let estimate = argon2_estimate(*time, *memory_kib, *cpus);
                if estimate > left {
                    return Err(Error::KdfTooSlow {
                        slot,
                        passes: *time,
                        memory_kib: *memory_kib,
                        estimate,
                        left,
                    });
                }
            }
            #[cfg(test)]
            tests::ARGON2_RUNNING.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let r = argon2::Argon2::new(algorithm, argon2::Version::V0x13, params)
                .hash_password_into(passphrase, salt, &mut out)
                .map_err(kdf_err);
            #[cfg(test)]
            tests::ARGON2_RUNNING.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            r?;
        }
    }
    Ok(out)
}

/// Waits for the process's Argon2 turn, giving up when `limits` say stop.
fn argon2_turn(slot: u32, limits: &Limits) -> Result<MutexGuard<'static, ()>, Error> {
    loop {
        match ARGON2_TURN.try_lock() {
            Ok(turn) => return Ok(turn),
            // A derivation that panicked left nothing behind that matters.
            Err(TryLockError::Poisoned(p)) => return Ok(p.into_inner()),
            Err(TryLockError::WouldBlock) => {}
        }
        limits.check(slot)?;
        std::thread::sleep(TURN_POLL);
    }
}

/// Time Argon2 with these costs would take here: its work (passes × 1 KiB
/// blocks) at the speed measured once per process, lanes in parallel up to
/// the number of CPUs.
fn argon2_estimate(passes: u32, memory_kib: u32, lanes: u32) -> Duration {
    let threads = if cfg!(feature = "parallel") {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        1
    };
    let parallel = (lanes as usize).clamp(1, threads) as f64;
    let work = f64::from(passes) * f64::from(memory_kib);
    Duration::from_secs_f64((work * seconds_per_block() / parallel).min(1e9))
}

/// Blocks of the calibration run: 4 MiB, a few milliseconds on a PC.
const CALIBRATION_KIB: u32 = 4096;

/// Seconds per block and pass of one-lane Argon2 on this machine, measured
/// on first use (under the Argon2 turn, so nothing else distorts it).
fn seconds_per_block() -> f64 {
    static SPEED: OnceLock<f64> = OnceLock::new();
    *SPEED.get_or_init(|| {
        let params = argon2::Params::new(CALIBRATION_KIB, 1, 1, Some(32))
            .expect("fixed, valid Argon2 parameters");
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = [0u8; 32];
        let start = Instant::now();
        // Fixed inputs; the result is thrown away.
        let _ = argon.hash_password_into(b"calibration", b"latchkey-calibration", &mut out);
        start.elapsed().as_secs_f64() / f64::from(CALIBRATION_KIB)
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::hash::Hash;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// Argon2 derivations running right now (test builds only).
    pub(crate) static ARGON2_RUNNING: AtomicUsize = AtomicUsize::new(0);

    fn pbkdf2(iterations: u32) -> Kdf {
        Kdf::Pbkdf2 {
            hash: Hash::Sha256,
            iterations,
            salt: vec![7; 32],
        }
    }

    fn argon2(time: u32, memory_kib: u32) -> Kdf {
        Kdf::Argon2 {
            variant: Argon2Variant::Id,
            time,
            memory_kib,
            cpus: 1,
            salt: vec![9; 32],
        }
    }

    /// A header asking for four billion PBKDF2 rounds (hours of work) costs
    /// no more than the time to its deadline.
    #[test]
    fn pbkdf2_stops_at_the_deadline() {
        let start = Instant::now();
        let limits = Limits::new(1 << 20).until(start + Duration::from_millis(200));
        let e = derive(&pbkdf2(4_000_000_000), 2, b"pass", 32, &limits).unwrap_err();
        let took = start.elapsed();
        println!("4e9 rounds stopped after {took:?}");
        assert!(
            matches!(
                e,
                Error::KdfStopped {
                    slot: 2,
                    reason: Stop::Deadline
                }
            ),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            "keyslot 2: key derivation stopped at the deadline"
        );
    }

    #[test]
    fn pbkdf2_stops_when_cancelled() {
        let flag = Arc::new(AtomicBool::new(false));
        let limits = Limits::new(1 << 20).cancelled_by(flag.clone());
        let worker = std::thread::spawn(move || derive(&pbkdf2(u32::MAX), 0, b"p", 32, &limits));
        std::thread::sleep(Duration::from_millis(50));
        flag.store(true, Ordering::Relaxed);
        let e = worker.join().unwrap().unwrap_err();
        assert!(
            matches!(
                e,
                Error::KdfStopped {
                    reason: Stop::Cancelled,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn argon2_that_cannot_finish_is_not_started() {
        let start = Instant::now();
        let limits = Limits::new(1 << 20).until(start + Duration::from_secs(30));
        let e = derive(&argon2(4_000_000_000, 1024), 1, b"p", 32, &limits).unwrap_err();
        println!("{e} (decided after {:?})", start.elapsed());
        assert!(
            matches!(
                e,
                Error::KdfTooSlow {
                    slot: 1,
                    passes: 4_000_000_000,
                    ..
                }
            ),
            "{e}"
        );
        // Without a deadline there is nothing to compare with: a cheap one runs.
        assert!(derive(&argon2(1, 64), 1, b"p", 32, &Limits::new(1 << 20)).is_ok());
    }

    #[test]
    fn argon2_memory_is_capped_by_the_limit_and_by_cryptsetup() {
        let e = derive(&argon2(1, 2048), 0, b"p", 32, &Limits::new(1024)).unwrap_err();
        assert!(
            matches!(
                e,
                Error::MemoryLimit {
                    needed_kib: 2048,
                    limit_kib: 1024,
                    ..
                }
            ),
            "{e}"
        );
        let e = derive(&argon2(1, u32::MAX), 0, b"p", 32, &Limits::new(u64::MAX)).unwrap_err();
        assert!(
            matches!(
                e,
                Error::MemoryLimit {
                    limit_kib: ARGON2_MAX_MEMORY_KIB,
                    ..
                }
            ),
            "{e}"
        );
    }

    /// Four threads derive at once; never more than one Argon2 runs.
    #[test]
    fn argon2_runs_one_at_a_time() {
        let peak = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (peak, stop) = (peak.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(ARGON2_RUNNING.load(Ordering::SeqCst), Ordering::Relaxed);
                    std::hint::spin_loop();
                }
            })
        };
        let workers: Vec<_> = (0..4)
            .map(|i| {
                std::thread::spawn(move || {
                    derive(&argon2(2, 8192), i, b"p", 32, &Limits::new(1 << 20)).unwrap()
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        watcher.join().unwrap();
        assert_eq!(peak.load(Ordering::Relaxed), 1);
    }

    /// A caller waiting for its turn behind a long derivation leaves at its
    /// own deadline.
    #[test]
    fn waiting_for_the_argon2_turn_ends_at_the_deadline() {
        let turn = ARGON2_TURN.lock().unwrap();
        let limits = Limits::new(1 << 20).until(Instant::now() + Duration::from_millis(100));
        let e = derive(&argon2(1, 64), 5, b"p", 32, &limits).unwrap_err();
        drop(turn);
        assert!(
            matches!(
                e,
                Error::KdfStopped {
                    slot: 5,
                    reason: Stop::Deadline
                }
            ),
            "{e}"
        );
    }
}
