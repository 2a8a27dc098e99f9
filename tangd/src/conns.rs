//! Who is connected: each connection's address and whether it is idle, so
//! that one address cannot take every slot and a full server makes room by
//! closing the connection idle the longest instead of leaving new clients in
//! the backlog.
//!
//! ```text
//! accept ──▶ Conns::admit(addr) ──▶ Slot (idle) ──first byte──▶ busy ──response──▶ idle ─┐
//!                 │ full: evict the oldest idle (of this address, or of all)             │
//!                 ▼                                                                      │
//!            Slot::evicted() wakes that connection, which closes ◀──────────────────────┘
//! ```
//!
//! Idle means waiting for the first byte of a request: a new connection or a
//! kept-alive one between requests. A connection that is reading a request or
//! answering one is never closed to make room; its deadlines bound it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// `idle` of a busy slot.
const BUSY: u64 = 0;
/// `idle` of a slot chosen to make room; its connection closes.
const EVICTED: u64 = u64::MAX;

/// Where a connection comes from, as far as the cap per address goes: an IPv4
/// address, or the /64 of an IPv6 address (one host's usual allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Origin {
    V4(u32),
    V6(u64),
}

impl Origin {
    fn of(ip: IpAddr) -> Origin {
        match ip {
            IpAddr::V4(a) => Origin::V4(a.into()),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => Origin::V4(v4.into()),
                None => Origin::V6((u128::from(a) >> 64) as u64),
            },
        }
    }
}

/// One connection's entry.
pub struct Slot {
    id: u64,
    origin: Origin,
    /// [`BUSY`], [`EVICTED`], or when it went idle (a sequence number: smaller is older).
    idle: AtomicU64,
    evict: Notify,
}

impl Slot {
    /// The first byte of a request arrived. False if the slot was just taken
    /// to make room: then the connection must close without answering.
    pub fn busy(&self) -> bool {
        let mut cur = self.idle.load(Ordering::Acquire);
        loop {
            if cur == EVICTED {
                return false;
            }
            match self
                .idle
                .compare_exchange(cur, BUSY, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
    }

    /// Resolves once this connection has been chosen to make room.
    pub async fn evicted(&self) {
        loop {
            let notified = self.evict.notified();
            if self.idle.load(Ordering::Acquire) == EVICTED {
                return;
            }
            notified.await;
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once.
    pub max: usize,
    /// Connections open at once from one address (an IPv6 /64).
    pub per_address: usize,
}

/// What became of a new connection.
pub enum Admit {
    /// Serve it; `evicted` idle connections were closed to make room.
    Yes { slot: Arc<Slot>, evicted: bool },
    /// Its address has `per_address` connections, all busy: close it.
    AddressFull,
}

pub struct Conns {
    limits: Limits,
    inner: Mutex<Inner>,
    /// A connection closed or went idle: a full server may accept again.
    room: Notify,
    /// Accept loops waiting on `room`. Waking them takes a lock, so it is done
    /// only when one waits, not after every request.
    waiting: AtomicUsize,
    clock: AtomicU64,
}

#[derive(Default)]
struct Inner {
    slots: HashMap<u64, Arc<Slot>>,
    by_origin: HashMap<Origin, Vec<u64>>,
    next_id: u64,
}

impl Conns {
    pub fn new(limits: Limits) -> Conns {
        Conns {
            limits: Limits {
                max: limits.max.max(1),
                per_address: limits.per_address.max(1),
            },
            inner: Mutex::new(Inner::default()),
            room: Notify::new(),
            waiting: AtomicUsize::new(0),
            clock: AtomicU64::new(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    pub fn len(&self) -> usize {
        self.lock().slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until a new connection could be admitted: a slot is free, or an
    /// idle connection could be closed for it. Until then clients wait in
    /// the kernel's backlog.
    pub async fn wait_for_room(&self) {
        if self.has_room() {
            return;
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        loop {
            let notified = self.room.notified();
            if self.has_room() {
                break;
            }
            notified.await;
        }
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }

    fn has_room(&self) -> bool {
        let inner = self.lock();
        inner.slots.len() < self.limits.max || oldest_idle(inner.slots.values()).is_some()
    }

    fn wake(&self) {
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.room.notify_waiters();
        }
    }

    /// Registers a connection from `ip`, closing idle ones if its address or
    /// the whole server is at its limit.
    pub fn admit(&self, ip: IpAddr) -> Admit {
        let origin = Origin::of(ip);
        let mut inner = self.lock();
        let mut evicted = false;
        let same = inner.by_origin.get(&origin).map_or(0, Vec::len);
        if same >= self.limits.per_address {
            let victim = {
                let ids = inner
                    .by_origin
                    .get(&origin)
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                oldest_idle(ids.iter().filter_map(|id| inner.slots.get(id)))
            };
            match victim.and_then(|v| evict(&mut inner, &v)) {
                Some(()) => evicted = true,
                None => return Admit::AddressFull,
            }
        }
        while inner.slots.len() >= self.limits.max {
            let Some(victim) = oldest_idle(inner.slots.values()) else {
                break;
            };
            if evict(&mut inner, &victim).is_some() {
                evicted = true;
            }
        }
        inner.next_id += 1;
        let slot = Arc::new(Slot {
            id: inner.next_id,
            origin,
            idle: AtomicU64::new(self.tick()),
            evict: Notify::new(),
        });
        inner.slots.insert(slot.id, slot.clone());
        inner.by_origin.entry(origin).or_default().push(slot.id);
        Admit::Yes { slot, evicted }
    }

    /// The connection answered a request and waits for the next one.
    pub fn idle(&self, slot: &Slot) {
        let _ = slot
            .idle
            .compare_exchange(BUSY, self.tick(), Ordering::SeqCst, Ordering::SeqCst);
        self.wake();
    }

    /// The connection closed.
    pub fn release(&self, slot: &Slot) {
        let mut inner = self.lock();
        forget(&mut inner, slot);
        drop(inner);
        self.wake();
    }
}

/// The idle slot that went idle first.
fn oldest_idle<'a>(slots: impl Iterator<Item = &'a Arc<Slot>>) -> Option<Arc<Slot>> {
    slots
        .filter(|s| !matches!(s.idle.load(Ordering::SeqCst), BUSY | EVICTED))
        .min_by_key(|s| s.idle.load(Ordering::SeqCst))
        .cloned()
}

/// Takes `victim`'s slot if it is still idle, and tells its connection to close.
fn evict(inner: &mut Inner, victim: &Slot) -> Option<()> {
    let seen = victim.idle.load(Ordering::Acquire);
    if matches!(seen, BUSY | EVICTED) {
        return None;
    }
    victim
        .idle
        .compare_exchange(seen, EVICTED, Ordering::AcqRel, Ordering::Acquire)
        .ok()?;
    forget(inner, victim);
    victim.evict.notify_one();
    Some(())
}

fn forget(inner: &mut Inner, slot: &Slot) {
    if inner.slots.remove(&slot.id).is_some() {
        if let Some(ids) = inner.by_origin.get_mut(&slot.origin) {
            ids.retain(|&i| i != slot.id);
            if ids.is_empty() {
                inner.by_origin.remove(&slot.origin);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn slot(a: Admit) -> Arc<Slot> {
        match a {
            Admit::Yes { slot, .. } => slot,
            Admit::AddressFull => panic!("refused"),
        }
    }

    #[test]
    fn an_address_at_its_cap_loses_its_oldest_idle_connection() {
        let c = Conns::new(Limits {
            max: 100,
            per_address: 2,
        });
        let a = slot(c.admit(ip("10.0.0.1")));
        let b = slot(c.admit(ip("10.0.0.1")));
        let other = slot(c.admit(ip("10.0.0.2")));
        let Admit::Yes {
            slot: third,
            evicted: true,
        } = c.admit(ip("10.0.0.1"))
        else {
            panic!("no room made");
        };
        assert!(!a.busy(), "the oldest idle one was taken");
        assert!(b.busy());
        assert!(other.busy());
        assert_eq!(c.len(), 3);
        // b is busy now: the third connection is the one to go next.
        assert!(matches!(
            c.admit(ip("10.0.0.1")),
            Admit::Yes { evicted: true, .. }
        ));
        assert!(!third.busy());
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn busy_connections_are_never_taken() {
        let c = Conns::new(Limits {
            max: 100,
            per_address: 1,
        });
        let a = slot(c.admit(ip("10.0.0.1")));
        assert!(a.busy());
        assert!(matches!(c.admit(ip("10.0.0.1")), Admit::AddressFull));
        c.idle(&a);
        assert!(matches!(
            c.admit(ip("10.0.0.1")),
            Admit::Yes { evicted: true, .. }
        ));
        assert!(!a.busy());
    }

    #[test]
    fn a_full_server_closes_the_oldest_idle_connection() {
        let c = Conns::new(Limits {
            max: 3,
            per_address: 10,
        });
        let a = slot(c.admit(ip("10.0.0.1")));
        let b = slot(c.admit(ip("10.0.0.1")));
        let d = slot(c.admit(ip("10.0.0.1")));
        assert!(a.busy());
        c.idle(&a); // a is now the newest idle one; b the oldest
        let e = slot(c.admit(ip("10.0.0.9")));
        assert!(!b.busy());
        assert!(d.busy() && e.busy());
        assert_eq!(c.len(), 3);
        c.release(&b);
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn ipv6_addresses_share_their_64() {
        assert_eq!(
            Origin::of(ip("2001:db8::1")),
            Origin::of(ip("2001:db8::ffff:1"))
        );
        assert_ne!(
            Origin::of(ip("2001:db8::1")),
            Origin::of(ip("2001:db8:0:1::1"))
        );
        assert_eq!(
            Origin::of(ip("::ffff:10.0.0.1")),
            Origin::of(ip("10.0.0.1"))
        );
    }
}
