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
                let mut run = runner_on(config, kernel);
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
        _ => panic!("unknown configuration {config}: malloc, verifier-off, tracking or special-pool"),
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
