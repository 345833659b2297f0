//! The pool's bookkeeping split in shards (one per thread inside a kernel): every count, report and
//! check is the same as with one table, whichever thread allocates or frees a block; a freed block
//! stays in quarantine for 4096 frees; and `NTPOOL_SPECIAL_POOL` turns special pool on for every
//! kernel a process builds.

mod common;

use std::sync::{Arc, Barrier, mpsc};

use common::{TAG, assert_row, block};
use ntpool_sys as sys;
use ntpool_sys::emulated::{Kernel, PoolKind, RawTag, checks};

fn free(block: sys::PVOID, tag: u32) {
    // SAFETY: a free the emulated kernel checks.
    unsafe { sys::ExFreePoolWithTag(block, tag) };
}

/// Runs `owner` on a thread inside `kernel`, then, while that thread is still inside it (so that it
/// keeps its own shard), `other` on a second thread inside it, handed what `owner` returned.
fn across_threads<T: Send + 'static, R: Send + 'static>(
    kernel: &Kernel,
    owner: impl FnOnce() -> T + Send + 'static,
    other: impl FnOnce(T) -> R + Send + 'static,
) -> R {
    let (made, take) = mpsc::channel();
    let (done, wait) = mpsc::channel::<()>();
    let first = kernel.clone();
    let owner = std::thread::spawn(move || {
        first.run(|| {
            made.send(owner()).expect("the test listens");
            wait.recv().expect("the test answers");
        })
    });
    let second = kernel.clone();
    let value = take.recv().expect("the owner made it");
    let result = std::thread::spawn(move || second.run(|| other(value))).join().expect("no panic");
    done.send(()).expect("the owner waits");
    owner.join().expect("no panic");
    result
}

#[test]
fn blocks_freed_by_another_thread_are_checked_and_counted_once() {
    let kernel = Kernel::new();
    let other = u32::from_le_bytes(*b"Othr");
    let (blocks, wrong_tag) = across_threads(
        &kernel,
        || (1..=300u64).map(|size| (block(sys::POOL_FLAG_NON_PAGED, size) as usize, size)).collect::<Vec<_>>(),
        move |blocks| {
            for &(address, _) in &blocks[..blocks.len() - 1] {
                if address != blocks[7].0 {
                    free(address as sys::PVOID, TAG);
                }
            }
            // The wrong tag is found in the other thread's shard too, and the block stays live.
            let stop = ntpool_sys::emulated::catch_bug_check(|| free(blocks[7].0 as sys::PVOID, other));
            (blocks, stop.expect_err("a bug check"))
        },
    );
    let wrong = blocks[7].0;
    assert_row(&wrong_tag, &checks::WRONG_TAG_ON_FREE, [0x0A, wrong as u64, TAG.into(), other.into()]);
    let outstanding: Vec<usize> = kernel.outstanding().iter().map(|a| a.address).collect();
    let mut expected = vec![wrong, blocks[299].0];
    expected.sort_unstable();
    assert_eq!(outstanding, expected);
    kernel.run(|| {
        free(wrong as sys::PVOID, TAG);
        free(blocks[299].0 as sys::PVOID, TAG);
    });
    let rows = kernel.pool_usage().rows;
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!((row.tag, row.pool, row.allocs, row.frees, row.bytes), (RawTag(TAG), PoolKind::NonPaged, 300, 300, 0));
    assert_eq!(kernel.allocation_calls(), 300);
    assert!(kernel.verify_unload().is_ok());
}

#[test]
fn a_free_on_another_thread_of_no_live_block_is_told_apart_across_shards() {
    let kernel = Kernel::new();
    let (double_free, interior, unknown, (freed, live)) = across_threads(
        &kernel,
        || {
            let freed = block(sys::POOL_FLAG_NON_PAGED, 40);
            free(freed, TAG);
            (freed as usize, block(sys::POOL_FLAG_NON_PAGED, 64) as usize)
        },
        |(freed, live)| {
            let stop = |address: usize| {
                ntpool_sys::emulated::catch_bug_check(|| free(address as sys::PVOID, TAG)).expect_err("a bug check")
            };
            let result = (stop(freed), stop(live + 8), stop(0x1234_5670), (freed, live));
            free(live as sys::PVOID, TAG);
            result
        },
    );
    let (freed, live) = (freed as u64, live as u64);
    let header = (u64::from(TAG) << 32) | (4 << 16); // 40 bytes and the header: 4 units of 16
    assert_row(&double_free, &checks::DOUBLE_FREE, [0x13, 0, freed - 16, header]);
    assert_row(&interior, &checks::FREE_AT_INTERIOR_ADDRESS, [0x16, 0, live + 8, 0]);
    assert_row(&unknown, &checks::FREE_OF_UNKNOWN_ADDRESS, [0x10, 0x1234_5670, 0, 0]);
    assert!(kernel.verify_unload().is_ok());
}

/// Eight threads allocate, hand blocks to each other and free them; the totals are exact.
#[test]
fn many_threads_on_one_kernel_keep_exact_counts() {
    const THREADS: usize = 8;
    const PAIRS: usize = 5000;
    let kernel = Kernel::new();
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..THREADS).map(|_| mpsc::channel::<usize>()).unzip();
    let handles: Vec<_> = receivers
        .into_iter()
        .enumerate()
        .map(|(thread, received)| {
            let (kernel, next) = (kernel.clone(), senders[(thread + 1) % THREADS].clone());
            std::thread::spawn(move || {
                kernel.run(|| {
                    for i in 0..PAIRS {
                        let own = block(sys::POOL_FLAG_NON_PAGED, (16 + i % 200) as u64);
                        if i % 3 == 0 {
                            // Freed by the next thread.
                            next.send(own as usize).expect("the next thread listens");
                        } else {
                            free(own, TAG);
                        }
                        while let Ok(theirs) = received.try_recv() {
                            free(theirs as sys::PVOID, TAG);
                        }
                    }
                    drop(next);
                    received
                })
            })
        })
        .collect();
    drop(senders);
    let left: Vec<mpsc::Receiver<usize>> = handles.into_iter().map(|h| h.join().expect("no panic")).collect();
    kernel.run(|| {
        for received in left {
            for theirs in received.iter() {
                free(theirs as sys::PVOID, TAG);
            }
        }
    });
    let total = (THREADS * PAIRS) as u64;
    assert_eq!(kernel.allocation_calls(), total);
    let row = &kernel.pool_usage().rows[0];
    assert_eq!((row.allocs, row.frees, row.bytes), (total, total, 0));
    let sites = kernel.allocation_sites();
    assert_eq!(sites.iter().map(|s| s.calls).sum::<u64>(), total);
    assert!(kernel.outstanding().is_empty());
    assert!(kernel.verify_unload().is_ok());
}

/// More threads inside one kernel at once than it has shards: the others share them.
#[test]
fn more_threads_than_shards_share_them() {
    const THREADS: usize = 80;
    let kernel = Kernel::new();
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (kernel, barrier) = (kernel.clone(), barrier.clone());
            std::thread::spawn(move || {
                kernel.run(|| {
                    let kept = block(sys::POOL_FLAG_PAGED, 24);
                    barrier.wait(); // every thread inside the kernel at once
                    for _ in 0..100 {
                        free(block(sys::POOL_FLAG_PAGED, 24), TAG);
                    }
                    kept as usize
                })
            })
        })
        .collect();
    let kept: Vec<usize> = handles.into_iter().map(|h| h.join().expect("no panic")).collect();
    assert_eq!(kernel.outstanding().len(), THREADS);
    kernel.run(|| kept.iter().for_each(|&b| free(b as sys::PVOID, TAG)));
    let row = &kernel.pool_usage().rows[0];
    assert_eq!(
        (row.pool, row.allocs, row.frees, row.bytes),
        (PoolKind::Paged, 101 * THREADS as u64, 101 * THREADS as u64, 0)
    );
    assert!(kernel.verify_unload().is_ok());
}

/// A freed block is not handed out again before 4096 more frees, and a second free of it within
/// them is a double free; the heap pool then reuses it (special pool may or may not, as its free
/// slots come).
#[test]
fn a_freed_block_stays_in_quarantine_for_4096_frees() {
    let mut kernels = vec![(Kernel::builder().no_special_pool().build(), true)];
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    kernels
        .push((Kernel::builder().special_pool(ntpool_sys::emulated::SpecialPoolAlignment::VerifyEnd).build(), false));
    for (kernel, reused) in kernels {
        kernel.run(|| {
            let first = block(sys::POOL_FLAG_NON_PAGED, 48);
            free(first, TAG);
            let mut frees = 0usize;
            while frees < 10_000 {
                let next = block(sys::POOL_FLAG_NON_PAGED, 48);
                if next == first {
                    assert!(frees >= 4096, "reused after {frees} frees");
                    free(next, TAG);
                    return;
                }
                free(next, TAG);
                frees += 1;
                if frees == 4095 {
                    let bug_check = common::stop(&kernel, || free(first, TAG));
                    assert_row(
                        &bug_check,
                        &checks::DOUBLE_FREE,
                        [0x13, 0, first as u64 - 16, (u64::from(TAG) << 32) | (4 << 16)],
                    );
                }
            }
            assert!(!reused, "the heap block was never reused");
        });
        assert!(kernel.verify_unload().is_ok());
    }
}

/// `fail_allocation(n)` numbers the requests of every thread together: exactly one fails.
#[test]
fn the_nth_request_fails_whichever_thread_makes_it() {
    let kernel = Kernel::builder().fail_allocation(150).build();
    let failed: usize = (0..4)
        .map(|_| {
            let kernel = kernel.clone();
            std::thread::spawn(move || {
                kernel.run(|| {
                    (0..100)
                        .filter(|_| {
                            // SAFETY: allocations at PASSIVE_LEVEL, freed at once when they succeed.
                            let b = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_NON_PAGED, 8, TAG) };
                            if !b.is_null() {
                                free(b, TAG);
                            }
                            b.is_null()
                        })
                        .count()
                })
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().expect("no panic"))
        .sum();
    assert_eq!(failed, 1);
    assert_eq!(kernel.allocation_calls(), 400);
    let sites = kernel.allocation_sites();
    assert_eq!((sites.iter().map(|s| s.calls).sum::<u64>(), sites.iter().map(|s| s.failed).sum::<u64>()), (400, 1));
}

/// `NTPOOL_SPECIAL_POOL=1` turns special pool on for every kernel of the process that does not
/// choose (checked in a child process, which the variable is given to), the default kernel
/// included; a kernel that chooses, or that emulates another pool's alignment, is left alone.
#[test]
fn the_environment_turns_special_pool_on_for_every_kernel() {
    const PROBE: &str = "NTPOOL_TEST_SPECIAL_POOL_PROBE";
    let ends_a_page = |kernel: Option<&Kernel>| {
        let allocate = || {
            let b = block(sys::POOL_FLAG_NON_PAGED, 24);
            free(b, TAG);
            (b as usize + 32) % 4096 == 0
        };
        kernel.map_or_else(allocate, |kernel| kernel.run(allocate))
    };
    if std::env::var_os(PROBE).is_some() {
        use ntpool_sys::emulated::PoolAlignment;
        assert!(ends_a_page(Some(&Kernel::new())), "Kernel::new()");
        assert!(ends_a_page(Some(&Kernel::builder().driver_name("x.sys").build())), "a builder");
        assert!(ends_a_page(None), "the default kernel");
        assert!(!ends_a_page(Some(&Kernel::builder().no_special_pool().build())), "no_special_pool");
        assert!(!ends_a_page(Some(&Kernel::builder().pool_alignment(PoolAlignment::Heap).build())), "Heap");
        return;
    }
    if cfg!(not(all(target_os = "linux", target_arch = "x86_64"))) {
        return;
    }
    let name = "the_environment_turns_special_pool_on_for_every_kernel";
    let output = std::process::Command::new(std::env::current_exe().expect("the test binary"))
        .args([name, "--exact", "--test-threads=1"])
        .env("NTPOOL_SPECIAL_POOL", "1")
        .env(PROBE, "1")
        .output()
        .expect("the test binary runs");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("1 passed"));
}
