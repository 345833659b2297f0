//! Allocate + free pairs per second on the emulated kernel, against the system allocator.
//!
//! `cargo xtask bench` runs this program (built with `cargo bench --no-run`) in two ways:
//!
//! * `throughput time <config> <threads> <pairs> <rounds>`: `rounds` rounds of `pairs` pairs on each of
//!   `threads` threads; prints the median wall-clock nanoseconds per pair (all threads together)
//!   and the fastest and slowest round;
//! * `throughput count <config> <pairs>`: exactly `pairs` pairs on one thread, for
//!   `valgrind --tool=callgrind`, which counts the instructions (two runs with different `pairs`
//!   give the instructions of one pair, without the start-up).
//!
//! A pair is a 64-byte block allocated, written and freed: `NonPagedBox::<[u64; 8], _>::try_new` and
//! its drop through ntpool (the kernel zeroes the block first, as `ExAllocatePool2` does), or
//! `malloc`, a write and `free`. Configurations: `malloc`; `verifier-off` (the emulated kernel without
//! Driver Verifier's checks: still the kernel's own checks and the bookkeeping); `tracking` (the
//! default kernel: Driver Verifier's checks and pool tracking); `special-pool` (tracking plus special
//! pool, `VerifyEnd`: pages of its own per block, a guard page, the slack checked at free).
//!
//! One more "configuration" is not a pair but the floor under special pool's: `mprotect`, one
//! `mprotect(PROT_NONE)` of a page already touched, the cheapest kind (it extends an inaccessible
//! range next to it, so no mapping is split). Special pool makes one per free, since a freed block's
//! page must be inaccessible before the free returns (timed only: callgrind does not see the
//! kernel's instructions).

use std::hint::black_box;
use std::time::Instant;

use ntpool::emulated::{Kernel, SpecialPoolAlignment};
use ntpool::{NonPagedBox, Passive};

ntpool::pool_tag!(struct BenchTag = b"NpBn");

/// The block of one pair.
type Block = [u64; 8];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` (without arguments, or with `--bench`) runs nothing: the measurements are run
    // by `cargo xtask bench` with their parameters.
    let words: Vec<&str> = args.iter().map(String::as_str).filter(|a| !a.starts_with("--")).collect();
    match words.as_slice() {
        ["time", config, threads, pairs, rounds] => {
            let (threads, pairs, rounds) = (number(threads), number(pairs), number(rounds));
            let mut per_pair: Vec<f64> = (0..rounds).map(|_| round(config, threads, pairs)).collect();
            per_pair.sort_by(f64::total_cmp);
            let median = per_pair[per_pair.len() / 2];
            println!("median_ns_per_pair {median:.2} min {:.2} max {:.2}", per_pair[0], per_pair[per_pair.len() - 1]);
        }
        ["count", config, pairs] => {
            let mut run = runner(config);
            run(number(pairs));
        }
        [] => eprintln!("throughput: nothing to do; `cargo xtask bench` runs the measurements"),
        _ => {
            eprintln!("usage: throughput time <config> <threads> <pairs> <rounds> | count <config> <pairs>");
            std::process::exit(2);
        }
    }
}

fn number(text: &str) -> usize {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// One round: `pairs` pairs on each of `threads` threads at once; nanoseconds per pair.
fn round(config: &str, threads: usize, pairs: usize) -> f64 {
    let barrier = std::sync::Barrier::new(threads + 1);
    let kernel = kernel(config);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let (barrier, kernel, config) = (&barrier, kernel.clone(), config);
            scope.spawn(move || {
                let mut run =
                    if config == "mprotect" { protections(pairs + pairs / 16) } else { runner_on(config, kernel) };
                run(pairs / 16); // warm up: caches, the pool's tables, the quarantine
                barrier.wait();
                run(pairs);
                barrier.wait();
            });
        }
        barrier.wait();
        let started = Instant::now();
        barrier.wait();
        started.elapsed().as_nanos() as f64 / (threads * pairs) as f64
    })
}

fn kernel(config: &str) -> Option<Kernel> {
    match config {
        "malloc" => None,
        // Without special pool whatever NTPOOL_SPECIAL_POOL says (the configuration is the bench's).
        "verifier-off" => Some(Kernel::builder().driver_verifier(false).no_special_pool().build()),
        "tracking" => Some(Kernel::builder().no_special_pool().build()),
        "special-pool" => Some(Kernel::builder().special_pool(SpecialPoolAlignment::VerifyEnd).build()),
        "mprotect" => None,
        _ => panic!("unknown configuration {config}: malloc, verifier-off, tracking, special-pool or mprotect"),
    }
}

fn runner(config: &str) -> Box<dyn FnMut(usize)> {
    runner_on(config, kernel(config))
}

/// A function that runs `n` pairs of `config`.
fn runner_on(config: &str, kernel: Option<Kernel>) -> Box<dyn FnMut(usize)> {
    match kernel {
        None => {
            assert_eq!(config, "malloc");
            Box::new(malloc_pairs)
        }
        Some(kernel) => Box::new(move |n| kernel.run(|| ntpool_pairs(n))),
    }
}

#[inline(never)]
fn ntpool_pairs(n: usize) {
    // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    let passive = unsafe { Passive::assume() };
    for i in 0..n {
        let block = NonPagedBox::<Block, BenchTag>::try_new(&passive, [i as u64; 8]).expect("enough memory");
        black_box(&block);
    }
}

#[inline(never)]
fn malloc_pairs(n: usize) {
    for i in 0..n {
        // SAFETY: a plain allocation of a block's size, checked, written, and freed once.
        let block = unsafe { libc::malloc(size_of::<Block>()) }.cast::<Block>();
        assert!(!block.is_null(), "enough memory");
        // SAFETY: `block` is a fresh allocation of a `Block`'s size, aligned by malloc for any type.
        unsafe { block.write([i as u64; 8]) };
        black_box(block);
        // SAFETY: allocated above, freed once.
        unsafe { libc::free(block.cast()) };
    }
}

/// A function that makes the next `n` of `pages` touched pages inaccessible, one `mprotect` each, in
/// order: each one extends the inaccessible range before it. The pages are mapped and touched here,
/// before any call is timed, and unmapped when the function is dropped.
fn protections(pages: usize) -> Box<dyn FnMut(usize)> {
    const PAGE: usize = 4096;
    let len = pages * PAGE;
    // SAFETY: an anonymous private mapping; no existing memory is affected.
    let base = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(base, libc::MAP_FAILED, "mmap of {len} bytes");
    // SAFETY: the mapping just made, read-write, `len` bytes.
    unsafe { base.cast::<u8>().write_bytes(1, len) };
    let region = Region { base: base as usize, len };
    let mut next = 0;
    Box::new(move |n| {
        // The whole mapping moves into the function (a closure would otherwise take only the field
        // it reads, and the mapping would be unmapped when this function returns).
        let region = &region;
        for _ in 0..n {
            assert!(next < pages, "more protections than pages");
            let page = (region.base + next * PAGE) as *mut libc::c_void;
            // SAFETY: a page of the mapping `region` owns, which nothing refers to.
            let done = unsafe { libc::mprotect(page, PAGE, libc::PROT_NONE) };
            assert_eq!(done, 0, "mprotect");
            next += 1;
        }
    })
}

/// A mapping, unmapped on drop.
struct Region {
    base: usize,
    len: usize,
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the mapping made by `protections`, which nothing refers to any more.
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.len) };
    }
}
