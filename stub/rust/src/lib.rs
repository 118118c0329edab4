//! A global allocator wrapper that reports each allocation and deallocation to
//! rsprof's `memtrace` module through a marker function the tracer breaks on.
//!
//! ```ignore
//! use rsprof_stub::RsprofAllocator;
//! use std::alloc::System;
//!
//! #[global_allocator]
//! static RSPROF_ALLOCATOR: RsprofAllocator<System> = RsprofAllocator { allocator: System {} };
//! ```
//!
//! Events passed to the marker (the C ABI is shared with the C stub in `stub/c`):
//!
//! | event | meaning | `size`, `align` | `ptr` |
//! |---|---|---|---|
//! | 0 ([`EVENT_ALLOC`]) | a block was allocated (reported after the allocation) | the requested layout | the new block, or null on failure |
//! | 1 ([`EVENT_DEALLOC`]) | a block is about to be freed (reported before freeing) | the block's layout | the block |
//!
//! `alloc_zeroed` is reported as an allocation. `realloc` is reported as a
//! deallocation of the old block (before the call) followed by an allocation of
//! the new one (after it); if the reallocation fails the old block is still live,
//! so it is reported as allocated again with its old layout.

#![no_std]

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicUsize, Ordering};

/// Marker event: a block was allocated; reported after the allocation.
pub const EVENT_ALLOC: usize = 0;
/// Marker event: a block is about to be freed; reported before freeing.
pub const EVENT_DEALLOC: usize = 1;

/// Where the marker hands its calls while rsprof's in-process recorder runs in the program: 0, or the
/// recorder's `rsprof_recorder_marker(event, size, align, ptr, marker)`. Only the tracer writes it
/// (`rsprof-collector --capture inprocess`); the marker then stops nothing and the recorder records the call.
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static __rsprof_memtrace_hook: AtomicUsize = AtomicUsize::new(0);

/// The function rsprof's `memtrace` module sets its breakpoint on.
///
/// It does nothing but return `ptr`; it exists so that a tracer can read its
/// arguments at its first instruction. It is exported unmangled with the C ABI,
/// never inlined, and its arguments pass through `black_box`, so every call
/// survives optimisation in release builds.
#[no_mangle]
#[inline(never)]
pub extern "C" fn __rsprof_memtrace_event(
    event: usize,
    size: usize,
    align: usize,
    ptr: *mut u8,
) -> *mut u8 {
    #[cfg(test)]
    tests::record(event, size, align, ptr);
    let hook = __rsprof_memtrace_hook.load(Ordering::Acquire);
    if hook != 0 {
        // SAFETY: only the tracer sets the hook, to the recorder's function of this signature.
        let f: extern "C" fn(usize, usize, usize, *mut u8, usize) -> *mut u8 =
            unsafe { core::mem::transmute(hook) };
        // black_box after the call: never a tail call, so the marker's frame stays between the two.
        return core::hint::black_box(f(
            event,
            size,
            align,
            ptr,
            __rsprof_memtrace_event as *const () as usize,
        ));
    }
    core::hint::black_box((event, size, align));
    core::hint::black_box(ptr)
}

/// Wraps any global allocator and reports every allocation and deallocation to
/// [`__rsprof_memtrace_event`].
pub struct RsprofAllocator<A: GlobalAlloc> {
    /// The allocator that does the work.
    pub allocator: A,
}

impl<A: GlobalAlloc> RsprofAllocator<A> {
    /// Wraps `allocator`.
    pub const fn new(allocator: A) -> Self {
        RsprofAllocator { allocator }
    }
}

unsafe impl<A: GlobalAlloc> GlobalAlloc for RsprofAllocator<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = self.allocator.alloc(layout);
        __rsprof_memtrace_event(EVENT_ALLOC, layout.size(), layout.align(), ptr)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let ptr = __rsprof_memtrace_event(EVENT_DEALLOC, layout.size(), layout.align(), ptr);
        self.allocator.dealloc(ptr, layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = self.allocator.alloc_zeroed(layout);
        __rsprof_memtrace_event(EVENT_ALLOC, layout.size(), layout.align(), ptr)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // The old block is reported freed before the call: once realloc has
        // returned, another thread may already have been handed the old address.
        let old = __rsprof_memtrace_event(EVENT_DEALLOC, layout.size(), layout.align(), ptr);
        let new = self.allocator.realloc(old, layout, new_size);
        if new.is_null() {
            // A failed realloc leaves the old block in place.
            __rsprof_memtrace_event(EVENT_ALLOC, layout.size(), layout.align(), old);
            return new;
        }
        __rsprof_memtrace_event(EVENT_ALLOC, new_size, layout.align(), new)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::alloc::System;
    use std::cell::RefCell;
    use std::vec::Vec;

    std::thread_local! {
        /// Marker calls made by this test thread, in order (tests run on separate threads).
        static EVENTS: RefCell<Vec<(usize, usize, usize, usize)>> = const { RefCell::new(Vec::new()) };
    }

    /// Called by the marker in test builds so the tests can see what it was told.
    pub(super) fn record(event: usize, size: usize, align: usize, ptr: *mut u8) {
        EVENTS.with(|e| e.borrow_mut().push((event, size, align, ptr as usize)));
    }

    fn take_events() -> Vec<(usize, usize, usize, usize)> {
        EVENTS.with(|e| core::mem::take(&mut *e.borrow_mut()))
    }

    /// Counts the calls the wrapper makes into the allocator it wraps, as an
    /// independent record to compare the marker's effects with.
    struct Counting {
        allocs: AtomicUsize,
        deallocs: AtomicUsize,
        reallocs: AtomicUsize,
    }

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            self.allocs.fetch_add(1, Ordering::Relaxed);
            System.alloc(layout)
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            self.deallocs.fetch_add(1, Ordering::Relaxed);
            System.dealloc(ptr, layout)
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            self.reallocs.fetch_add(1, Ordering::Relaxed);
            System.realloc(ptr, layout, new_size)
        }
    }

    #[test]
    fn marker_returns_its_pointer() {
        let mut x = 7u8;
        let p: *mut u8 = &mut x;
        take_events();
        assert_eq!(__rsprof_memtrace_event(EVENT_ALLOC, 1, 1, p), p);
        assert!(__rsprof_memtrace_event(EVENT_DEALLOC, 0, 0, core::ptr::null_mut()).is_null());
        assert_eq!(
            take_events(),
            [(EVENT_ALLOC, 1, 1, p as usize), (EVENT_DEALLOC, 0, 0, 0)]
        );
    }

    #[test]
    fn wrapper_forwards_every_call() {
        let a = RsprofAllocator {
            allocator: Counting {
                allocs: AtomicUsize::new(0),
                deallocs: AtomicUsize::new(0),
                reallocs: AtomicUsize::new(0),
            },
        };
        let layout = Layout::from_size_align(24, 8).unwrap();
        take_events();
        let (p, q, z);
        unsafe {
            p = a.alloc(layout);
            assert!(!p.is_null());
            p.write_bytes(0xab, 24);
            q = a.realloc(p, layout, 4096);
            assert!(!q.is_null());
            let bytes: Vec<u8> = (0..24).map(|i| *q.add(i)).collect();
            assert!(
                bytes.iter().all(|&b| b == 0xab),
                "realloc must keep the contents"
            );
            a.dealloc(q, Layout::from_size_align(4096, 8).unwrap());
            z = a.alloc_zeroed(Layout::from_size_align(64, 16).unwrap());
            assert_eq!(z as usize % 16, 0);
            assert!((0..64).all(|i| *z.add(i) == 0));
            a.dealloc(z, Layout::from_size_align(64, 16).unwrap());
        }
        let (p, q, z) = (p as usize, q as usize, z as usize);
        assert_eq!(
            take_events(),
            [
                (EVENT_ALLOC, 24, 8, p),
                (EVENT_DEALLOC, 24, 8, p),
                (EVENT_ALLOC, 4096, 8, q),
                (EVENT_DEALLOC, 4096, 8, q),
                (EVENT_ALLOC, 64, 16, z),
                (EVENT_DEALLOC, 64, 16, z),
            ]
        );
        // alloc_zeroed falls back to alloc in the default GlobalAlloc method.
        assert_eq!(a.allocator.allocs.load(Ordering::Relaxed), 2);
        assert_eq!(a.allocator.reallocs.load(Ordering::Relaxed), 1);
        assert_eq!(a.allocator.deallocs.load(Ordering::Relaxed), 2);
    }
}
