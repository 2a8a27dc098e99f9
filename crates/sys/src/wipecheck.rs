//! A global allocator for tests that checks what the rest of the code promises: that no
//! secret is ever handed back to the allocator unwiped. Each block freed (or left behind by
//! a `realloc`) while a [`Watch`] is armed is searched for the watched bytes.
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: latchkey_sys::wipecheck::WipeCheck = latchkey_sys::wipecheck::WipeCheck;
//!
//! let watch = Watch::new(b"a secret the test uses");
//! ... code under test ...
//! assert_eq!(watch.freed_copies(), 0);
//! ```
//!
//! Built only with the `wipe-check` feature, which only dev-dependencies turn on.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Longest needle a [`Watch`] takes.
pub const MAX_NEEDLE: usize = 64;

static ARMED: AtomicBool = AtomicBool::new(false);
static NEEDLE_LEN: AtomicUsize = AtomicUsize::new(0);
static NEEDLE: [AtomicU8; MAX_NEEDLE] = [const { AtomicU8::new(0) }; MAX_NEEDLE];
static HITS: AtomicUsize = AtomicUsize::new(0);
/// One watch at a time (tests in one binary run on several threads).
static ONE_WATCH: Mutex<()> = Mutex::new(());

/// The system allocator, plus the search of freed blocks.
#[derive(Debug)]
pub struct WipeCheck;

// SAFETY: every call is forwarded to `System` with the caller's arguments unchanged; the
// only addition reads a block the caller still owns, before it is released.
unsafe impl GlobalAlloc for WipeCheck {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is `System.alloc`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ARMED.load(Ordering::Acquire) {
            // SAFETY: `ptr` was allocated by this allocator with `layout`, so it points to
            // `layout.size()` bytes that stay valid until `System.dealloc` below.
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            if contains_needle(block) {
                HITS.fetch_add(1, Ordering::AcqRel);
            }
        }
        // SAFETY: the caller's contract for `dealloc` is `System.dealloc`'s.
        unsafe { System.dealloc(ptr, layout) }
    }
    // `realloc` keeps the default: allocate, copy, then `dealloc` the old block, so the
    // copy a growing buffer leaves behind is searched too.
}

fn contains_needle(block: &[u8]) -> bool {
    let n = NEEDLE_LEN.load(Ordering::Acquire);
    if n == 0 || block.len() < n {
        return false;
    }
    let first = NEEDLE[0].load(Ordering::Relaxed);
    block.windows(n).any(|w| {
        w[0] == first
            && w.iter()
                .zip(&NEEDLE[..n])
                .all(|(b, c)| *b == c.load(Ordering::Relaxed))
    })
}

/// Counts the freed blocks that contain the needle, from `new` until it drops.
#[derive(Debug)]
pub struct Watch {
    _one: MutexGuard<'static, ()>,
}

impl Watch {
    /// Starts watching for `needle` (8 to [`MAX_NEEDLE`] bytes: short ones match by chance).
    pub fn new(needle: &[u8]) -> Watch {
        assert!(
            (8..=MAX_NEEDLE).contains(&needle.len()),
            "needle of {} bytes",
            needle.len()
        );
        let one = ONE_WATCH.lock().unwrap_or_else(|e| e.into_inner());
        for (slot, b) in NEEDLE.iter().zip(needle) {
            slot.store(*b, Ordering::Relaxed);
        }
        NEEDLE_LEN.store(needle.len(), Ordering::Release);
        HITS.store(0, Ordering::Release);
        ARMED.store(true, Ordering::Release);
        Watch { _one: one }
    }

    /// Freed blocks that held the needle so far.
    pub fn freed_copies(&self) -> usize {
        HITS.load(Ordering::Acquire)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        ARMED.store(false, Ordering::Release);
        NEEDLE_LEN.store(0, Ordering::Release);
    }
}
