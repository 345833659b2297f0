//! IRQL tokens, regions and spin locks on the emulated kernel: the levels each region runs at, the
//! run-time backstop, and spin locks shared by threads.

use ntpool::emulated::{Kernel, catch_bug_check};
use ntpool::sys::{self, APC_LEVEL, DISPATCH_LEVEL, PASSIVE_LEVEL};
use ntpool::{AnyIrql, CurrentIrql, HighIrql, NonPagedBox, PagedBox, Passive, SpinLock};

ntpool::pool_tag!(struct Irq = b"Irq1");

#[test]
fn each_region_runs_at_its_level_and_restores_the_previous_one() {
    Kernel::new().run(|| {
        // SAFETY: a fresh emulated thread runs at PASSIVE_LEVEL, and this is its only token.
        let mut passive = unsafe { Passive::assume() };
        let lock = SpinLock::new(0u8);
        let seen = passive.raise_to_apc(|apc| {
            let in_apc = sys::KeGetCurrentIrql();
            let in_lock = lock.with(apc, (), |dispatch, _, ()| {
                let in_lock = sys::KeGetCurrentIrql();
                let in_high = dispatch.raise_above_dispatch(HighIrql::PROFILE, (), |_, ()| sys::KeGetCurrentIrql());
                (in_lock, in_high, sys::KeGetCurrentIrql())
            });
            (in_apc, in_lock, sys::KeGetCurrentIrql())
        });
        assert_eq!(seen, (APC_LEVEL, (DISPATCH_LEVEL, sys::PROFILE_LEVEL, DISPATCH_LEVEL), APC_LEVEL));
        assert_eq!(sys::KeGetCurrentIrql(), PASSIVE_LEVEL);
    });
}

#[test]
fn a_spin_lock_acquired_at_dispatch_level_stays_at_dispatch_level() {
    Kernel::new().run(|| {
        // SAFETY: as above.
        let mut passive = unsafe { Passive::assume() };
        let lock = SpinLock::new(1u32);
        let inner = passive.raise_to_dispatch(&lock, |dispatch, lock| {
            lock.with(dispatch, (), |_, value, ()| {
                *value += 1;
                sys::KeGetCurrentIrql()
            })
        });
        assert_eq!(inner, DISPATCH_LEVEL);
        assert_eq!(lock.into_inner(), 2);
    });
}

#[test]
fn any_irql_hands_out_the_token_of_the_current_level() {
    Kernel::new().run(|| {
        // SAFETY: this thread holds no other token.
        let mut any = unsafe { AnyIrql::assume() };
        assert!(matches!(any.current(), CurrentIrql::Passive(_)));
        let CurrentIrql::Passive(passive) = any.current() else { unreachable!() };
        let levels = passive.raise_to_apc(|apc| {
            let at_dispatch = apc.raise_to_dispatch((), |_, ()| {
                // A helper that does not know its IRQL checks it at run time.
                // SAFETY: the region's token is not used while `inner` lives.
                let mut inner = unsafe { AnyIrql::assume() };
                matches!(inner.current(), CurrentIrql::Dispatch(_))
            });
            (sys::KeGetCurrentIrql(), at_dispatch)
        });
        assert_eq!(levels, (APC_LEVEL, true));
    });
}

#[test]
fn assuming_a_token_at_the_wrong_irql_is_caught_on_the_emulated_kernel() {
    Kernel::new().run(|| {
        // SAFETY: as above.
        let mut passive = unsafe { Passive::assume() };
        let caught = passive.raise_to_dispatch((), |_, ()| {
            std::panic::catch_unwind(|| {
                // SAFETY: deliberately wrong: the emulated kernel must refuse it.
                unsafe { Passive::assume() };
            })
        });
        let message = caught.unwrap_err().downcast::<String>().unwrap();
        assert_eq!(*message, "ntpool: Passive::assume() at IRQL 2");
    });
}

#[test]
fn the_backstop_stops_a_paged_free_at_dispatch_level_that_unsafe_code_arranged() {
    let kernel = Kernel::new();
    kernel.run(|| {
        // SAFETY: as above.
        let mut passive = unsafe { Passive::assume() };
        let raw = PagedBox::into_raw(PagedBox::<u64, Irq>::try_new(&passive, 7).unwrap());
        let bug_check = catch_bug_check(|| {
            passive.raise_to_dispatch(raw, |_, raw| {
                // SAFETY: deliberately wrong: `raw` is a paged box, rebuilt and dropped at
                // DISPATCH_LEVEL, which the types forbid and only `unsafe` code can arrange.
                drop(unsafe { PagedBox::<u64, Irq>::from_raw(raw) });
            })
        })
        .unwrap_err();
        // The kernel's own code for a free at an invalid IRQL: the backstop is not Driver Verifier.
        assert_eq!(bug_check.code, sys::BAD_POOL_CALLER);
        assert_eq!(
            bug_check.parameters,
            [0x09, u64::from(DISPATCH_LEVEL), sys::PagedPool as u64, raw as u64],
            "{bug_check}"
        );
        // Stopped before anything was freed or dropped; the region unwound to PASSIVE_LEVEL.
        assert_eq!(sys::KeGetCurrentIrql(), PASSIVE_LEVEL);
        assert_eq!(kernel.outstanding().len(), 1);
        // SAFETY: `raw` is still the live box from `into_raw`, now at PASSIVE_LEVEL.
        drop(unsafe { PagedBox::<u64, Irq>::from_raw(raw) });
    });
    kernel.verify_unload().unwrap();
}

#[test]
fn each_thread_has_its_own_irql_and_spin_locks_exclude_each_other() {
    const THREADS: usize = 4;
    const ROUNDS: u64 = 2_000;
    let kernel = Kernel::new();
    let shared = SpinLock::new((0u64, false));
    on_threads(&kernel, THREADS, |passive| {
        for round in 0..ROUNDS {
            assert_eq!(sys::KeGetCurrentIrql(), PASSIVE_LEVEL);
            let item = NonPagedBox::<u64, Irq>::try_new(passive, round).unwrap();
            let paged = PagedBox::<u64, Irq>::try_new(passive, round).unwrap();
            shared.with(passive, item, |_, (count, busy), item| {
                // Nobody else is inside: the lock excludes.
                assert!(!*busy);
                *busy = true;
                *count += 1 + *item - *item;
                std::thread::yield_now();
                *busy = false;
                // `item` is non-paged: freed here, at DISPATCH_LEVEL.
            });
            assert_eq!(*paged.get(passive), round);
        }
    });
    let count = kernel.run(|| {
        // SAFETY: the test's main thread runs at PASSIVE_LEVEL and uses no other token.
        let mut passive = unsafe { Passive::assume() };
        shared.with(&mut passive, (), |_, (count, _), ()| *count)
    });
    assert_eq!(count, THREADS as u64 * ROUNDS);
    kernel.verify_unload().unwrap();
    let usage = kernel.pool_usage();
    let total: u64 = usage.rows.iter().map(|row| row.allocs).sum();
    assert_eq!(total, 2 * THREADS as u64 * ROUNDS, "{usage}");
    assert!(usage.rows.iter().all(|row| row.allocs == row.frees && row.bytes == 0), "{usage}");
}

#[test]
fn a_fast_mutex_raises_to_apc_level_and_excludes_threads_while_paged_data_stays_usable() {
    const THREADS: usize = 4;
    const ROUNDS: u64 = 500;
    ntpool::pool_tag!(struct Fm = b"Fmx1");
    let kernel = Kernel::new();
    let shared = kernel.run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let passive = unsafe { Passive::assume() };
        let counts = PagedBox::<[u64; 2], Fm>::try_new(&passive, [0, 0]).unwrap();
        ntpool::FastMutex::<_, Fm>::try_new(&passive, counts).unwrap()
    });
    on_threads(&kernel, THREADS, |passive| {
        for _ in 0..ROUNDS {
            shared.lock(passive, |apc, counts| {
                assert_eq!(sys::KeGetCurrentIrql(), APC_LEVEL);
                let counts = counts.get_mut(apc);
                // Both halves move together only if nobody else is inside.
                assert_eq!(counts[0], counts[1]);
                counts[0] += 1;
                std::thread::yield_now();
                counts[1] += 1;
            });
            assert_eq!(sys::KeGetCurrentIrql(), PASSIVE_LEVEL);
        }
    });
    let counts = kernel.run(|| {
        // SAFETY: the test's main thread runs at PASSIVE_LEVEL and uses no other token.
        let passive = unsafe { Passive::assume() };
        *shared.into_inner().get(&passive)
    });
    assert_eq!(counts, [THREADS as u64 * ROUNDS; 2]);
    kernel.verify_unload().unwrap();
}

/// Runs `work` on `threads` new threads, each entering `kernel` at PASSIVE_LEVEL with its own token,
/// and waits for them all.
fn on_threads(kernel: &Kernel, threads: usize, work: impl Fn(&mut Passive) + Send + Sync) {
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                kernel.run(|| {
                    // SAFETY: a new emulated thread runs at PASSIVE_LEVEL; this is its only token.
                    let mut passive = unsafe { Passive::assume() };
                    work(&mut passive);
                })
            });
        }
    });
}
