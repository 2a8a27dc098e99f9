//! Knobs of a request or a decryption, and the cancel handle.

use std::fmt;
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::Trust;
use crate::time::{Backoff, Deadline};

/// Rewrites a URL before it is used (tests point bindings at local servers with it).
pub type UrlRewrite = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// Timeouts, retries and the budget of a call.
#[derive(Clone)]
pub struct Options {
    /// Limit for establishing one TCP connection (each resolved address in turn).
    pub connect_timeout: Duration,
    /// Limit for one attempt: connect, send, and the complete reply.
    pub timeout: Duration,
    /// Limit for each call, retries and backoff included, counted from its start
    /// (the `*_until` functions take an absolute [`Deadline`] instead).
    pub budget: Duration,
    /// How often and how patiently to try again after a transient failure.
    pub retry: Retry,
    /// Applied to every URL before connecting; `None` in normal use.
    pub rewrite: Option<UrlRewrite>,
    /// How a host name in a URL becomes addresses.
    pub resolver: Resolver,
    /// Which server certificates `https://` accepts.
    pub trust: Trust,
}

/// How host names in URLs are resolved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Resolver {
    /// The C library's `getaddrinfo` (nsswitch, systemd-resolved, mDNS, ...),
    /// for a running system.
    #[default]
    System,
    /// [`crate::dns`]: `/etc/hosts`, then A and AAAA at once from the
    /// name servers of `/etc/resolv.conf`, each query bounded and all of it
    /// within the request's deadline; for the initrd, where musl's resolver
    /// waits by its own clock and gives up on a name whose AAAA query is
    /// refused even when its A query was answered.
    Stub,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            budget: Duration::from_secs(30),
            retry: Retry::default(),
            rewrite: None,
            resolver: Resolver::System,
            trust: Trust::System,
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("budget", &self.budget)
            .field("retry", &self.retry)
            .field("rewrite", &self.rewrite.as_ref().map(|_| ".."))
            .field("resolver", &self.resolver)
            .field("trust", &self.trust)
            .finish()
    }
}

impl Options {
    /// Each request may take `timeout` (connecting included), each call `budget`,
    /// with up to `retries` retries after a transient failure ([`Retry::default`]'s pauses).
    pub fn new(timeout: Duration, budget: Duration, retries: u32) -> Options {
        Options {
            connect_timeout: timeout,
            timeout,
            budget,
            retry: Retry {
                retries,
                ..Retry::default()
            },
            resolver: Resolver::System,
            rewrite: None,
            trust: Trust::System,
        }
    }

    /// The same, resolving host names with `resolver`.
    pub fn with_resolver(mut self, resolver: Resolver) -> Options {
        self.resolver = resolver;
        self
    }

    /// The same, checking `https://` servers' certificates as `trust` says.
    pub fn with_trust(mut self, trust: Trust) -> Options {
        self.trust = trust;
        self
    }

    /// The same, pausing between retries by `backoff`.
    pub fn with_backoff(mut self, backoff: Backoff) -> Options {
        self.retry.backoff = backoff;
        self
    }

    /// The deadline of a call starting now: [`Options::budget`] from now.
    pub fn deadline(&self) -> Deadline {
        Deadline::after(Instant::now(), self.budget)
    }

    pub(crate) fn url(&self, url: &str) -> String {
        match &self.rewrite {
            Some(f) => f(url),
            None => url.to_owned(),
        }
    }
}

/// Bounded retries, paused by a [`Backoff`] (without jitter unless set).
#[derive(Clone, Debug, PartialEq)]
pub struct Retry {
    /// Attempts after the first one.
    pub retries: u32,
    /// The pauses between attempts: doubling from 250 ms up to 2 s by default.
    pub backoff: Backoff,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            retries: 3,
            backoff: Backoff::new(Duration::from_millis(250), 2, Duration::from_secs(2)),
        }
    }
}

impl Retry {
    /// No retries at all.
    pub const NONE: Retry = Retry {
        retries: 0,
        backoff: Backoff::new(Duration::ZERO, 2, Duration::ZERO),
    };
}

/// Abandons a request from another thread: wakes its backoff sleep and shuts down
/// its socket so a blocked read returns at once.
#[derive(Clone, Default)]
pub struct Cancel(Arc<(Mutex<CancelState>, Condvar)>);

#[derive(Default)]
struct CancelState {
    cancelled: bool,
    stream: Option<TcpStream>,
}

impl Cancel {
    /// A fresh handle, not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stops the request; idempotent.
    pub fn cancel(&self) {
        let mut state = self.0.0.lock().unwrap_or_else(PoisonError::into_inner);
        state.cancelled = true;
        if let Some(s) = state.stream.take() {
            // The socket may already be closed; nothing else to do then.
            let _ = s.shutdown(Shutdown::Both);
        }
        self.0.1.notify_all();
    }

    /// Whether `cancel` was called.
    pub fn is_cancelled(&self) -> bool {
        self.0
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .cancelled
    }

    /// Remembers the connection so `cancel` can shut it down; false if already cancelled.
    pub(crate) fn register(&self, tcp: &TcpStream) -> bool {
        let mut state = self.0.0.lock().unwrap_or_else(PoisonError::into_inner);
        if state.cancelled {
            return false;
        }
        state.stream = tcp.try_clone().ok();
        true
    }

    pub(crate) fn unregister(&self) {
        self.0
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stream = None;
    }

    /// Sleeps until `until` or until cancelled; false if cancelled.
    pub(crate) fn sleep_until(&self, until: Instant) -> bool {
        let (lock, cv) = &*self.0;
        let mut state = lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if state.cancelled {
                return false;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            state = cv
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_wakes_a_sleeper() {
        let c = Cancel::new();
        let c2 = c.clone();
        let t =
            std::thread::spawn(move || c2.sleep_until(Instant::now() + Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(20));
        let start = Instant::now();
        c.cancel();
        assert!(!t.join().unwrap());
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(c.is_cancelled());
    }
}
