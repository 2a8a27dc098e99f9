//! Time budgets as small values: an absolute [`Deadline`], an exponential
//! [`Backoff`] with jitter from an injected source, and a [`RetryPolicy`]
//! that combines both. Nothing here reads the clock: callers pass `now`, so
//! every schedule is testable without sleeping.
//!
//! One deadline is passed down from whoever sets it (the agent's boot
//! deadline, a command's `--deadline`) through the decryption to each
//! request and to the network bring-up; every wait is capped by it.

use std::time::{Duration, Instant};

/// A point in time after which work must stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline {
    at: Instant,
}

impl Deadline {
    /// The deadline `budget` after `now`.
    pub fn after(now: Instant, budget: Duration) -> Deadline {
        Deadline { at: now + budget }
    }

    /// The deadline at `at`.
    pub fn at(at: Instant) -> Deadline {
        Deadline { at }
    }

    /// Time left at `now` (zero once passed).
    pub fn remaining(&self, now: Instant) -> Duration {
        self.at.saturating_duration_since(now)
    }

    /// True once `now` has reached the deadline.
    pub fn expired(&self, now: Instant) -> bool {
        now >= self.at
    }

    /// `d`, shortened so that it ends no later than the deadline.
    pub fn cap(&self, now: Instant, d: Duration) -> Duration {
        d.min(self.remaining(now))
    }

    /// The earlier of two deadlines.
    pub fn min(self, other: Deadline) -> Deadline {
        if other.at < self.at { other } else { self }
    }

    /// The deadline `grace` later.
    pub fn extended(self, grace: Duration) -> Deadline {
        Deadline {
            at: self.at + grace,
        }
    }

    /// The moment itself, for interfaces that take an `Instant`.
    pub fn instant(&self) -> Instant {
        self.at
    }
}

/// A source of jitter: uniformly distributed `u32`s.
pub trait Jitter {
    /// The next value.
    fn next_u32(&mut self) -> u32;
}

/// No jitter: always the midpoint, so delays are exact.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoJitter;

impl Jitter for NoJitter {
    fn next_u32(&mut self) -> u32 {
        1 << 31
    }
}

/// A xorshift32 generator: plenty for spreading retries of many machines
/// that booted together; not for secrets.
#[derive(Clone, Copy, Debug)]
pub struct XorShift(u32);

impl XorShift {
    /// A generator from `seed` (zero is replaced, since xorshift would stay at zero).
    pub fn new(seed: u32) -> XorShift {
        XorShift(if seed == 0 { 0x9e37_79b9 } else { seed })
    }
}

impl Jitter for XorShift {
    fn next_u32(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }
}

/// Exponential backoff: `base`, `base*factor`, … up to `max`, each spread
/// by ±`jitter` (a fraction, 0.0 to 1.0) and never above `max`.
#[derive(Clone, Debug, PartialEq)]
pub struct Backoff {
    base: Duration,
    factor: u32,
    max: Duration,
    jitter: f64,
    attempt: u32,
}

impl Backoff {
    /// A backoff without jitter.
    pub const fn new(base: Duration, factor: u32, max: Duration) -> Backoff {
        Backoff {
            base,
            factor: if factor == 0 { 1 } else { factor },
            max,
            jitter: 0.0,
            attempt: 0,
        }
    }

    /// Sets the jitter fraction (clamped to 0.0..=1.0).
    pub fn with_jitter(mut self, fraction: f64) -> Backoff {
        self.jitter = fraction.clamp(0.0, 1.0);
        self
    }

    /// How many delays were handed out since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Starts over at `base`.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The next delay.
    pub fn next_delay(&mut self, jitter: &mut dyn Jitter) -> Duration {
        let mult = self.factor.checked_pow(self.attempt).unwrap_or(u32::MAX);
        self.attempt = self.attempt.saturating_add(1);
        let nominal = self
            .base
            .checked_mul(mult)
            .unwrap_or(self.max)
            .min(self.max);
        if self.jitter == 0.0 {
            return nominal;
        }
        // r in [-1, 1): the spread around the nominal delay.
        let r = f64::from(jitter.next_u32()) / f64::from(1u32 << 31) - 1.0;
        let d = nominal.as_secs_f64() * (1.0 + self.jitter * r);
        Duration::from_secs_f64(d.max(0.0)).min(self.max)
    }
}

/// Retries with a backoff, a maximum number of attempts and a deadline.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    backoff: Backoff,
    max_attempts: Option<u32>,
    deadline: Deadline,
    attempts: u32,
}

impl RetryPolicy {
    /// A policy allowing `max_attempts` tries (`None`: unlimited) before `deadline`.
    pub fn new(backoff: Backoff, max_attempts: Option<u32>, deadline: Deadline) -> RetryPolicy {
        RetryPolicy {
            backoff,
            max_attempts,
            deadline,
            attempts: 0,
        }
    }

    /// Tries made so far (calls to [`RetryPolicy::start`]).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Records a try starting at `now`; `false` when no try may start (the
    /// deadline passed or the attempts are used up).
    pub fn start(&mut self, now: Instant) -> bool {
        if self.deadline.expired(now) || self.max_attempts.is_some_and(|m| self.attempts >= m) {
            return false;
        }
        self.attempts += 1;
        true
    }

    /// After a failed try at `now`: when the next one should start, or
    /// `None` if it could not start before the deadline or none is left.
    pub fn after_failure(&mut self, now: Instant, jitter: &mut dyn Jitter) -> Option<Instant> {
        if self.max_attempts.is_some_and(|m| self.attempts >= m) {
            return None;
        }
        let at = now + self.backoff.next_delay(jitter);
        (!self.deadline.expired(at)).then_some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Vec<u32>);
    impl Jitter for Fixed {
        fn next_u32(&mut self) -> u32 {
            self.0.remove(0)
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn deadline_arithmetic() {
        let t0 = Instant::now();
        let d = Deadline::after(t0, ms(1000));
        assert_eq!(d.remaining(t0), ms(1000));
        assert_eq!(d.remaining(t0 + ms(400)), ms(600));
        assert_eq!(d.remaining(t0 + ms(2000)), Duration::ZERO);
        assert!(!d.expired(t0 + ms(999)) && d.expired(t0 + ms(1000)));
        assert_eq!(d.cap(t0 + ms(800), ms(5000)), ms(200));
        assert_eq!(d.cap(t0, ms(5)), ms(5));
        assert_eq!(
            d.min(Deadline::after(t0, ms(10))),
            Deadline::after(t0, ms(10))
        );
    }

    #[test]
    fn exponential_growth_is_capped() {
        let mut b = Backoff::new(ms(100), 2, ms(1000));
        let got: Vec<_> = (0..7).map(|_| b.next_delay(&mut NoJitter)).collect();
        assert_eq!(
            got,
            vec![
                ms(100),
                ms(200),
                ms(400),
                ms(800),
                ms(1000),
                ms(1000),
                ms(1000)
            ]
        );
        b.reset();
        assert_eq!(b.next_delay(&mut NoJitter), ms(100));
        let mut b = Backoff::new(ms(100), 2, ms(1000));
        for _ in 0..100 {
            assert!(b.next_delay(&mut NoJitter) <= ms(1000));
        }
    }

    #[test]
    fn jitter_spreads_within_bounds() {
        let mut b = Backoff::new(ms(1000), 1, ms(5000)).with_jitter(0.5);
        // Extremes of the source map to -50% and (within rounding) +50%.
        assert_eq!(b.next_delay(&mut Fixed(vec![0])), ms(500));
        let hi = b.next_delay(&mut Fixed(vec![u32::MAX]));
        assert!(hi > ms(1499) && hi <= ms(1500), "{hi:?}");
        let mut rng = XorShift::new(42);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let d = b.next_delay(&mut rng);
            assert!(d >= ms(500) && d <= ms(1500));
            seen.insert(d.as_millis() / 100);
        }
        assert!(
            seen.len() >= 8,
            "xorshift jitter covers the range: {seen:?}"
        );
    }

    #[test]
    fn retry_policy_stops_at_attempts_and_deadline() {
        let t0 = Instant::now();
        let mut p = RetryPolicy::new(
            Backoff::new(ms(100), 2, ms(10_000)),
            Some(3),
            Deadline::after(t0, ms(10_000)),
        );
        assert!(p.start(t0));
        assert_eq!(p.after_failure(t0, &mut NoJitter), Some(t0 + ms(100)));
        assert!(p.start(t0 + ms(100)));
        assert_eq!(
            p.after_failure(t0 + ms(100), &mut NoJitter),
            Some(t0 + ms(300))
        );
        assert!(p.start(t0 + ms(300)));
        assert_eq!(p.after_failure(t0 + ms(300), &mut NoJitter), None);
        assert!(!p.start(t0 + ms(400)));
        assert_eq!(p.attempts(), 3);

        let mut p = RetryPolicy::new(
            Backoff::new(ms(400), 2, ms(10_000)),
            None,
            Deadline::after(t0, ms(1000)),
        );
        assert!(p.start(t0));
        assert_eq!(p.after_failure(t0, &mut NoJitter), Some(t0 + ms(400)));
        assert!(p.start(t0 + ms(400)));
        // The next try would start at 1200 ms, past the deadline.
        assert_eq!(p.after_failure(t0 + ms(400), &mut NoJitter), None);
        assert!(!p.start(t0 + ms(1000)));
    }
}
