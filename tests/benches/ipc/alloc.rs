//! The benchmark's global allocator: the system allocator, counting the
//! allocations each thread makes (per thread, so the actix thread's count is
//! the supervisor side's and no counter is shared between threads), and,
//! only while [`LiveBytes`] is on, the bytes allocated and not yet freed by
//! the whole process (for the memory workload; off, it costs one relaxed
//! load per call).

use std::alloc::{GlobalAlloc, Layout, System as SystemAlloc};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

/// Whether [`LIVE_BYTES`] and [`LIVE_ALLOCS`] follow allocations.
static TRACK_LIVE: AtomicBool = AtomicBool::new(false);
/// Bytes allocated minus bytes freed while tracking was on.
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
/// Allocations minus frees while tracking was on.
static LIVE_ALLOCS: AtomicI64 = AtomicI64::new(0);

/// The system allocator, counting allocations made by each thread.
struct CountingAlloc;

fn count_alloc() {
    // `try_with`: a thread being torn down may still allocate.
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

/// Adds `bytes` (and `allocs`) to the live totals, if they are tracked.
fn track(bytes: i64, allocs: i64) {
    if TRACK_LIVE.load(Ordering::Relaxed) {
        LIVE_BYTES.fetch_add(bytes, Ordering::Relaxed);
        LIVE_ALLOCS.fetch_add(allocs, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to the system allocator with the caller's
// arguments unchanged; the counters touch only a const-initialised
// thread-local `Cell` and static atomics (no allocation, no destructor, no lock).
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_alloc();
        track(layout.size() as i64, 1);
        // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
        unsafe { SystemAlloc.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_alloc();
        track(layout.size() as i64, 1);
        // SAFETY: as above.
        unsafe { SystemAlloc.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_alloc();
        track(new_size as i64 - layout.size() as i64, 0);
        // SAFETY: as above.
        unsafe { SystemAlloc.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        track(-(layout.size() as i64), -1);
        // SAFETY: as above.
        unsafe { SystemAlloc.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Allocations (and reallocations) made so far by the calling thread.
pub(crate) fn thread_allocs() -> u64 {
    ALLOCS.with(Cell::get)
}

/// Process-wide live-heap tracking, on while this guard lives. Only the
/// difference between two readings means anything: memory freed while it
/// is on that was allocated before counts as negative.
#[derive(Debug)]
pub(crate) struct LiveBytes(());

impl LiveBytes {
    /// Starts tracking. One guard at a time: the workloads run one after another.
    pub(crate) fn start() -> Self {
        TRACK_LIVE.store(true, Ordering::SeqCst);
        Self(())
    }

    /// Bytes allocated minus bytes freed since tracking started (the size
    /// asked for, without the allocator's own overhead).
    pub(crate) fn bytes(&self) -> i64 {
        LIVE_BYTES.load(Ordering::SeqCst)
    }

    /// Allocations minus frees since tracking started.
    pub(crate) fn allocs(&self) -> i64 {
        LIVE_ALLOCS.load(Ordering::SeqCst)
    }
}

impl Drop for LiveBytes {
    fn drop(&mut self) {
        TRACK_LIVE.store(false, Ordering::SeqCst);
        LIVE_BYTES.store(0, Ordering::SeqCst);
        LIVE_ALLOCS.store(0, Ordering::SeqCst);
    }
}
