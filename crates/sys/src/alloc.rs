//! The agent's global allocator.
//!
//! musl's allocator gives freed memory back to the kernel at once. In the
//! agent, which allocates and frees small buffers all the time, that costs an
//! `munmap` (and a TLB flush) per free and a page fault per new allocation:
//! under an emulated CPU, a tenth of the agent's run (`bench/profile-agent`).
//! [`PoolAllocator`] serves blocks below [`LARGE`] from a TLSF pool (rlsf)
//! that keeps what it has mapped. Large blocks, such as an Argon2 keyslot's
//! memory, still come from the C library and go back to the kernel when freed.
//!
//! Nothing here zeroes memory: secrets are wiped by their own types on drop,
//! whichever allocator holds them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;

/// Blocks of this size and larger bypass the pool.
pub const LARGE: usize = 128 * 1024;

/// Small blocks from a pool that is never unmapped, large ones from the
/// system allocator.
pub struct PoolAllocator {
    pool: rlsf::SmallGlobalTlsf,
}

impl PoolAllocator {
    /// An empty allocator; the pool maps memory as it is needed.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            pool: rlsf::SmallGlobalTlsf::new(),
        }
    }
}

impl Default for PoolAllocator {
    fn default() -> Self {
        Self::new()
    }
}

const fn is_large(size: usize) -> bool {
    size >= LARGE
}

// SAFETY: every block is allocated and freed by the same allocator, chosen by
// its size, which `dealloc` and `realloc` receive unchanged from the caller.
// Both allocators meet GlobalAlloc's contract themselves. The functions are not
// inlined, so that link-time optimisation does not copy the pool's code into
// every place that drops a Vec.
unsafe impl GlobalAlloc for PoolAllocator {
    #[inline(never)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout is passed on unchanged.
        unsafe {
            if is_large(layout.size()) {
                System.alloc(layout)
            } else {
                self.pool.alloc(layout)
            }
        }
    }

    #[inline(never)]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`; a pool block is zeroed over its whole size.
        unsafe {
            if is_large(layout.size()) {
                System.alloc_zeroed(layout)
            } else {
                let block = self.pool.alloc(layout);
                if !block.is_null() {
                    ptr::write_bytes(block, 0, layout.size());
                }
                block
            }
        }
    }

    #[inline(never)]
    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        // SAFETY: `block` came from the allocator its size selects.
        unsafe {
            if is_large(layout.size()) {
                System.dealloc(block, layout);
            } else {
                self.pool.dealloc(block, layout);
            }
        }
    }

    #[inline(never)]
    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: within one allocator, its own realloc; across the boundary,
        // a new block of the new size, the common prefix copied, the old
        // block freed by the allocator that made it.
        unsafe {
            match (is_large(layout.size()), is_large(new_size)) {
                (true, true) => System.realloc(block, layout, new_size),
                (false, false) => self.pool.realloc(block, layout, new_size),
                _ => {
                    let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
                    let new = self.alloc(new_layout);
                    if !new.is_null() {
                        ptr::copy_nonoverlapping(block, new, layout.size().min(new_size));
                        self.dealloc(block, layout);
                    }
                    new
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block of `size` bytes aligned to `align`, every byte `byte`.
    fn filled(a: &PoolAllocator, size: usize, align: usize, byte: u8) -> (*mut u8, Layout) {
        let layout = Layout::from_size_align(size, align).unwrap();
        // SAFETY: a non-zero size.
        let block = unsafe { a.alloc(layout) };
        assert!(!block.is_null(), "{size} bytes aligned {align}");
        assert_eq!(block as usize % align, 0, "{size} bytes aligned {align}");
        // SAFETY: within the block just allocated.
        unsafe { ptr::write_bytes(block, byte, size) };
        (block, layout)
    }

    fn all(block: *const u8, len: usize, byte: u8) -> bool {
        // SAFETY: the callers' blocks hold at least `len` bytes.
        unsafe { std::slice::from_raw_parts(block, len) }
            .iter()
            .all(|&b| b == byte)
    }

    fn free(a: &PoolAllocator, block: *mut u8, layout: Layout) {
        // SAFETY: the callers pass a block of `a` with the layout it was made with.
        unsafe { a.dealloc(block, layout) }
    }

    fn resize(a: &PoolAllocator, block: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        // SAFETY: as in `free`; `size` is not zero.
        unsafe { a.realloc(block, layout, size) }
    }

    #[test]
    fn small_and_large_blocks_of_any_alignment_do_not_overlap() {
        let a = PoolAllocator::new();
        let shapes = [
            (1, 1),
            (24, 8),
            (4096, 4096),
            (LARGE - 1, 16),
            (LARGE, 64),
            (3 * LARGE, 4096),
            (100, 256),
        ];
        let blocks: Vec<_> = (1..)
            .zip(shapes)
            .map(|(byte, (size, align))| (filled(&a, size, align, byte), byte))
            .collect();
        for ((block, layout), byte) in blocks {
            assert!(
                all(block, layout.size(), byte),
                "{layout:?} was overwritten"
            );
            free(&a, block, layout);
        }
    }

    #[test]
    fn realloc_keeps_the_contents_within_and_across_the_pool_boundary() {
        let a = PoolAllocator::new();
        let (mut block, mut layout) = filled(&a, 16, 8, 0x5a);
        for size in [
            1000,
            LARGE - 8,
            LARGE + 8,
            4 * LARGE,
            LARGE,
            LARGE - 1,
            64,
            8,
        ] {
            let kept = layout.size().min(size);
            block = resize(&a, block, layout, size);
            assert!(!block.is_null(), "realloc to {size}");
            assert!(all(block, kept, 0x5a), "contents lost in realloc to {size}");
            // SAFETY: within the block of `size` bytes.
            unsafe { ptr::write_bytes(block, 0x5a, size) };
            layout = Layout::from_size_align(size, 8).unwrap();
        }
        free(&a, block, layout);
    }

    #[test]
    fn zeroed_blocks_are_zero_even_where_a_freed_block_was() {
        let a = PoolAllocator::new();
        for size in [64, 4000, 2 * LARGE] {
            let (block, layout) = filled(&a, size, 8, 0xff);
            free(&a, block, layout);
            // SAFETY: a non-zero size.
            let zeroed = unsafe { a.alloc_zeroed(layout) };
            assert!(all(zeroed, size, 0), "{size} bytes not zeroed");
            free(&a, zeroed, layout);
        }
    }

    #[test]
    fn a_freed_small_block_is_reused_rather_than_unmapped() {
        let a = PoolAllocator::new();
        let (first, layout) = filled(&a, 512, 8, 1);
        free(&a, first, layout);
        let (again, _) = filled(&a, 512, 8, 2);
        assert_eq!(
            first, again,
            "the pool should hand the freed block out again"
        );
        free(&a, again, layout);
    }

    #[test]
    fn threads_allocate_and_free_at_once() {
        static A: PoolAllocator = PoolAllocator::new();
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..2000usize {
                        let size = 1 + (i * 37 + usize::from(t) * 101) % 3000;
                        let (block, layout) = filled(&A, size, 8, t);
                        assert!(all(block, size, t));
                        free(&A, block, layout);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}
