//! Allocation storm for the benchmarks, in Rust: a deterministic mix of `alloc`, `alloc_zeroed`, `realloc`
//! and `dealloc`, each reaching the global allocator through ten distinct non-inlined frames, timed inside
//! the program so start-up is excluded. Usage: alloc-storm-rust [N]; prints one line of counts and the loop
//! time without going through std's buffered stdout (which would allocate).

use std::alloc::Layout;
use std::hint::black_box;
use std::time::Instant;

// No #[global_allocator] here on purpose: with one defined in the main crate, rustc inlines it into every
// caller and the program never calls the `__rust_alloc` family out of line, unlike most Rust programs,
// which use the default allocator. The counts below are therefore the loop's own (the runtime's few
// allocations outside the loop are not included; bench/run measures them with a zero-length run).

const SLOTS: usize = 256;

struct Storm {
    rng: u64,
    slot: [*mut u8; SLOTS],
    size: [usize; SLOTS],
    allocs: u64,
    frees: u64,
    reallocs: u64,
    bytes: u64,
}

impl Storm {
    /// xorshift64*: deterministic, so every run makes the same calls.
    fn next(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(2685821657736338717)
    }
    fn pick_size(&mut self) -> usize {
        16 + (self.next() % 4081) as usize
    }
}

fn layout(n: usize) -> Layout {
    Layout::from_size_align(n, 8).unwrap()
}

#[inline(never)]
fn leaf_alloc(s: &mut Storm, i: usize) {
    let n = s.pick_size();
    let p = unsafe { std::alloc::alloc(layout(n)) };
    assert!(!p.is_null());
    unsafe { *p = i as u8 };
    s.slot[i] = p;
    s.size[i] = n;
    s.allocs += 1;
    s.bytes += n as u64;
}

#[inline(never)]
fn leaf_alloc_zeroed(s: &mut Storm, i: usize) {
    let n = s.pick_size();
    let p = unsafe { std::alloc::alloc_zeroed(layout(n)) };
    assert!(!p.is_null());
    s.slot[i] = p;
    s.size[i] = n;
    s.allocs += 1;
    s.bytes += n as u64;
}

#[inline(never)]
fn leaf_realloc(s: &mut Storm, i: usize) {
    let n = s.pick_size();
    let p = unsafe { std::alloc::realloc(s.slot[i], layout(s.size[i]), n) };
    assert!(!p.is_null());
    unsafe { *p.add(n - 1) = 1 };
    s.slot[i] = p;
    s.size[i] = n;
    s.reallocs += 1;
    s.bytes += n as u64;
}

#[inline(never)]
fn leaf_dealloc(s: &mut Storm, i: usize) {
    unsafe { std::alloc::dealloc(s.slot[i], layout(s.size[i])) };
    s.slot[i] = std::ptr::null_mut();
    s.frees += 1;
}

#[inline(never)]
fn op(s: &mut Storm, i: usize, kind: u32) {
    if s.slot[i].is_null() {
        if kind & 1 == 1 {
            leaf_alloc_zeroed(s, i)
        } else {
            leaf_alloc(s, i)
        }
    } else if kind % 3 == 0 {
        leaf_realloc(s, i)
    } else {
        leaf_dealloc(s, i)
    }
    black_box(());
}

// Ten distinct levels between the timed loop and the allocator; black_box after each call keeps it from
// becoming a tail jump, and the different arithmetic keeps the functions from being merged.
#[inline(never)]
fn level8(s: &mut Storm, i: usize, k: u32) { op(s, i, k.wrapping_add(8)); black_box(()); }
#[inline(never)]
fn level7(s: &mut Storm, i: usize, k: u32) { level8(s, i, k.wrapping_mul(7)); black_box(()); }
#[inline(never)]
fn level6(s: &mut Storm, i: usize, k: u32) { level7(s, i, k.wrapping_add(6)); black_box(()); }
#[inline(never)]
fn level5(s: &mut Storm, i: usize, k: u32) { level6(s, i, k ^ 5); black_box(()); }
#[inline(never)]
fn level4(s: &mut Storm, i: usize, k: u32) { level5(s, i, k.wrapping_mul(5)); black_box(()); }
#[inline(never)]
fn level3(s: &mut Storm, i: usize, k: u32) { level4(s, i, k.wrapping_add(3)); black_box(()); }
#[inline(never)]
fn level2(s: &mut Storm, i: usize, k: u32) { level3(s, i, k ^ 2); black_box(()); }
#[inline(never)]
fn level1(s: &mut Storm, i: usize, k: u32) { level2(s, i, k.wrapping_mul(3)); black_box(()); }

#[inline(never)]
fn step(s: &mut Storm) {
    let r = s.next();
    level1(s, (r % SLOTS as u64) as usize, (r >> 32) as u32);
    black_box(());
}

/// The timed region: n steps, then free what is still live so the program ends leak-free.
#[inline(never)]
fn run_storm(s: &mut Storm, n: u64) {
    for _ in 0..n {
        step(s);
    }
    for i in 0..SLOTS {
        if !s.slot[i].is_null() {
            leaf_dealloc(s, i);
        }
    }
    black_box(());
}

/// Formats into a fixed stack buffer: printing through std would allocate its stdout buffer, and the
/// benchmark compares allocator-call counts with what tracers see.
struct StackBuf {
    buf: [u8; 256],
    len: usize,
}

impl std::fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let b = s.as_bytes();
        if self.len + b.len() > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..self.len + b.len()].copy_from_slice(b);
        self.len += b.len();
        Ok(())
    }
}

fn main() {
    use std::fmt::Write as _;
    use std::io::Write as _;
    use std::os::fd::FromRawFd;

    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let mut s = Storm { rng: 0x9E3779B97F4A7C15, slot: [std::ptr::null_mut(); SLOTS], size: [0; SLOTS],
                         allocs: 0, frees: 0, reallocs: 0, bytes: 0 };

    let t0 = Instant::now();
    run_storm(&mut s, n);
    let secs = t0.elapsed().as_secs_f64();

    let (a, f, r, b) = (s.allocs, s.frees, s.reallocs, s.bytes);
    let mut line = StackBuf { buf: [0; 256], len: 0 };
    let _ = writeln!(line, "events={} seconds={:.6} allocs={} frees={} reallocs={} bytes={}", a + f + r, secs, a, f, r, b);
    // SAFETY: fd 1 stays open for the life of the process; ManuallyDrop keeps File from closing it.
    let mut out = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(1) });
    let _ = out.write_all(&line.buf[..line.len]);
}
