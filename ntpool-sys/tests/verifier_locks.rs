//! Driver Verifier's IRQL and lock checks on the emulated kernel: each row of the check table
//! (`ntpool_sys::emulated::checks`) for `KeRaiseIrql`, `KeLowerIrql`, spin locks and fast mutexes,
//! triggered through the raw kernel interface, with its code and all four parameters.

mod common;

use core::mem::MaybeUninit;

use common::{assert_row, at_irql, stop};
use ntpool_sys::emulated::{Kernel, checks, current_thread, in_dpc_routine};
use ntpool_sys::{self as sys, FAST_MUTEX, KSPIN_LOCK};

fn mutex() -> Box<MaybeUninit<FAST_MUTEX>> {
    let mut mutex = Box::new(MaybeUninit::<FAST_MUTEX>::uninit());
    // SAFETY: a fresh structure that stays put in its box.
    unsafe { sys::ExInitializeFastMutex(mutex.as_mut_ptr()) };
    mutex
}

#[test]
fn raising_to_a_lower_irql_or_above_high_level() {
    // SAFETY: deliberately wrong (a "raise" to a lower level), on the emulated kernel.
    let bug_check = stop(&Kernel::new(), || at_irql(2, || unsafe { sys::KfRaiseIrql(1) }));
    assert_row(&bug_check, &checks::RAISE_TO_LOWER_IRQL, [0x30, 2, 1, 0]);
    // SAFETY: as above: 16 is no IRQL.
    let bug_check = stop(&Kernel::new(), || unsafe { sys::KfRaiseIrql(16) });
    assert_row(&bug_check, &checks::RAISE_TO_LOWER_IRQL, [0x30, 0, 16, 0]);
}

#[test]
fn lowering_to_a_higher_irql_or_below_dispatch_level_in_a_dpc_routine() {
    // SAFETY: deliberately wrong, on the emulated kernel.
    let bug_check = stop(&Kernel::new(), || unsafe { sys::KeLowerIrql(2) });
    assert_row(&bug_check, &checks::LOWER_TO_HIGHER_IRQL, [0x31, 0, 2, 0]);
    // SAFETY: as above: a DPC routine must return at DISPATCH_LEVEL.
    let bug_check = stop(&Kernel::new(), || in_dpc_routine(|| unsafe { sys::KeLowerIrql(0) }));
    assert_row(&bug_check, &checks::LOWER_TO_HIGHER_IRQL, [0x31, 2, 0, 1]);
}

#[test]
fn without_driver_verifier_the_x64_irql_routines_check_nothing() {
    Kernel::builder().driver_verifier(false).build().run(|| {
        // SAFETY: wrong, but unchecked on x64 without Driver Verifier (a write of CR8).
        let old = unsafe { sys::KfRaiseIrql(2) };
        // SAFETY: as above.
        unsafe { sys::KfRaiseIrql(1) };
        assert_eq!(sys::KeGetCurrentIrql(), 1);
        // SAFETY: back to PASSIVE_LEVEL.
        unsafe { sys::KeLowerIrql(old) };
    });
}

#[test]
fn spin_lock_routines_at_the_wrong_irql() {
    let mut lock: KSPIN_LOCK = 0;
    let address = &raw mut lock as u64;
    // SAFETY: deliberately wrong: the AtDpcLevel form at PASSIVE_LEVEL.
    let bug_check = stop(&Kernel::new(), || unsafe { sys::KeAcquireSpinLockAtDpcLevel(&raw mut lock) });
    assert_row(&bug_check, &checks::ACQUIRE_AT_DPC_LEVEL_BELOW_DISPATCH, [0x40, 0, address, 0]);
    let bug_check = stop(&Kernel::new(), || {
        // SAFETY: deliberately wrong: the raising form above DISPATCH_LEVEL.
        at_irql(sys::CLOCK_LEVEL, || unsafe { sys::KeAcquireSpinLockRaiseToDpc(&raw mut lock) })
    });
    assert_row(&bug_check, &checks::ACQUIRE_SPIN_LOCK_ABOVE_DISPATCH, [0x42, sys::CLOCK_LEVEL.into(), address, 0]);
    let bug_check = stop(&Kernel::new(), || {
        // SAFETY: held by this thread; deliberately released at APC_LEVEL.
        let old = unsafe { sys::KeAcquireSpinLockRaiseToDpc(&raw mut lock) };
        // SAFETY: as above.
        unsafe { sys::KeLowerIrql(1) };
        // SAFETY: as above.
        unsafe { sys::KeReleaseSpinLock(&raw mut lock, old) };
    });
    assert_row(&bug_check, &checks::RELEASE_SPIN_LOCK_NOT_AT_DISPATCH, [0x32, 1, address, 0]);
    lock = 0;
    let bug_check = stop(&Kernel::new(), || {
        // SAFETY: acquired at DISPATCH_LEVEL, deliberately released from PASSIVE_LEVEL.
        at_irql(2, || unsafe { sys::KeAcquireSpinLockAtDpcLevel(&raw mut lock) });
        // SAFETY: as above.
        unsafe { sys::KeReleaseSpinLockFromDpcLevel(&raw mut lock) };
    });
    assert_row(&bug_check, &checks::RELEASE_FROM_DPC_LEVEL_BELOW_DISPATCH, [0x41, 0, address, 0]);
}

#[test]
fn fast_mutex_routines_at_the_wrong_irql() {
    let mut mutex = mutex();
    let address = mutex.as_ptr() as u64;
    // SAFETY: deliberately wrong: a fast mutex at DISPATCH_LEVEL.
    let bug_check = stop(&Kernel::new(), || at_irql(2, || unsafe { sys::ExAcquireFastMutex(mutex.as_mut_ptr()) }));
    assert_row(&bug_check, &checks::ACQUIRE_FAST_MUTEX_ABOVE_APC, [0x33, 2, address, 0]);
    let bug_check = stop(&Kernel::new(), || {
        // SAFETY: acquired at PASSIVE_LEVEL, deliberately released at DISPATCH_LEVEL.
        unsafe { sys::ExAcquireFastMutex(mutex.as_mut_ptr()) };
        // SAFETY: as above.
        at_irql(2, || unsafe { sys::ExReleaseFastMutex(mutex.as_mut_ptr()) });
    });
    assert_row(&bug_check, &checks::RELEASE_FAST_MUTEX_NOT_AT_APC, [0x34, 2, address, 0]);
}

#[test]
fn a_lock_acquired_twice_by_its_holder_under_deadlock_detection() {
    let mut lock: KSPIN_LOCK = 0;
    let address = &raw mut lock as u64;
    let bug_check = stop(&Kernel::new(), || {
        // SAFETY: the second acquire is the deliberate violation.
        unsafe { sys::KeAcquireSpinLockRaiseToDpc(&raw mut lock) };
        // SAFETY: as above.
        unsafe { sys::KeAcquireSpinLockRaiseToDpc(&raw mut lock) };
    });
    assert_row(&bug_check, &checks::SELF_DEADLOCK, [0x1000, address, 0, 0]);
    let mut mutex = mutex();
    let bug_check = stop(&Kernel::new(), || {
        // SAFETY: as above.
        unsafe { sys::ExAcquireFastMutex(mutex.as_mut_ptr()) };
        // SAFETY: as above.
        unsafe { sys::ExAcquireFastMutex(mutex.as_mut_ptr()) };
    });
    assert_row(&bug_check, &checks::SELF_DEADLOCK, [0x1000, mutex.as_ptr() as u64, 0, 0]);
}

#[test]
fn a_lock_released_by_a_thread_that_does_not_hold_it_under_deadlock_detection() {
    let kernel = Kernel::new();
    let mut lock: KSPIN_LOCK = 0;
    let address = &raw mut lock as u64;
    let bug_check = stop(&kernel, || {
        // SAFETY: deliberately wrong: nobody holds the lock.
        at_irql(2, || unsafe { sys::KeReleaseSpinLockFromDpcLevel(&raw mut lock) })
    });
    assert_row(&bug_check, &checks::RELEASE_OF_UNACQUIRED, [0x1007, address, 0, 0]);
    // Another thread holds it.
    let handle = kernel.clone();
    let holder = std::thread::spawn(move || {
        handle.run(|| {
            // SAFETY: acquired by this thread and left held (the thread ends at DISPATCH_LEVEL).
            unsafe { sys::KeAcquireSpinLockRaiseToDpc(address as *mut KSPIN_LOCK) };
            current_thread()
        })
    })
    .join()
    .unwrap();
    assert_eq!(lock, holder);
    let bug_check = stop(&kernel, || {
        // SAFETY: deliberately wrong: another thread holds the lock.
        at_irql(2, || unsafe { sys::KeReleaseSpinLock(&raw mut lock, 2) })
    });
    assert_row(&bug_check, &checks::RELEASE_BY_OTHER_THREAD, [0x1004, address, holder, current_thread()]);
    let mut mutex = mutex();
    let bug_check = stop(&kernel, || {
        // SAFETY: deliberately wrong: a release of a fast mutex nobody holds, at APC_LEVEL.
        at_irql(1, || unsafe { sys::ExReleaseFastMutex(mutex.as_mut_ptr()) })
    });
    assert_row(&bug_check, &checks::RELEASE_OF_UNACQUIRED, [0x1007, mutex.as_ptr() as u64, 0, 0]);
    // Without deadlock detection the release goes through, as on Windows.
    let mut free: KSPIN_LOCK = 0;
    Kernel::builder().deadlock_detection(false).build().run(|| {
        // SAFETY: wrong, but unchecked: the lock is simply released.
        at_irql(2, || unsafe { sys::KeReleaseSpinLockFromDpcLevel(&raw mut free) });
    });
}
