//! Telling the allocator that a large block of memory was just freed.
//!
//! The binary's allocator (mimalloc) keeps freed memory for a while before it returns it to the
//! operating system (its purge delay, 1 s by default), so that memory freed and soon wanted
//! again is not faulted back in, zeroed, page by page. That is right for the request path, which
//! allocates and frees the same sizes thousands of times a second: with the delay at 10 ms the
//! gateway took 11,000 page faults a second at full load and a tenth more CPU an event (README,
//! Benchmarks, **The allocator's purge delay**). It is wrong after a replay-store fold, which
//! frees an index of hundreds of megabytes just after allocating its successor: held for a
//! second, the old one doubles the resident memory. So the delay stays, and the places that free
//! much at once say so here; the binary decides what the allocator does about it.

use std::sync::OnceLock;

static RETURN_FREED: OnceLock<fn()> = OnceLock::new();

/// Sets what returns freed memory to the operating system at once (the binary: mimalloc's
/// `mi_collect(true)`). Only the first call counts.
pub fn set_return_freed(f: fn()) {
    let _ = RETURN_FREED.set(f);
}

/// Called just after a large block was freed (a replay-store fold's old index and sorted keys).
pub fn large_block_freed() {
    if let Some(f) = RETURN_FREED.get() {
        f();
    }
}
