//! Synchronization: spin locks (they exclude for real, between the threads that entered a kernel)
//! and fast mutexes, with the IRQL changes and Driver Verifier's checks (each a row of
//! [`checks`](super::checks): the IRQL of every acquire and release, and with deadlock detection a
//! lock acquired twice or released by a thread that does not hold it); and events, as far as fast
//! mutexes use them.
#![allow(non_snake_case)]

use std::sync::atomic::{AtomicU64, Ordering};

use super::checks::{self, Check};
use super::irql::{lower_irql, raise_irql};
use super::state::{State, current};
use super::thread::{current_irql, set_irql, thread_id};
use crate::{APC_LEVEL, DISPATCH_LEVEL, KIRQL, KSPIN_LOCK};

/// Raises `check` when Driver Verifier runs; whether it did.
fn verify(state: &State, check: &Check, parameters: [u64; 4]) -> bool {
    if state.config.verifier {
        checks::raise(state, check, parameters);
    }
    state.config.verifier
}

/// A thread that acquires a lock it holds: with Driver Verifier's deadlock detection, 0xC4 /
/// 0x1000. Without it Windows spins (a spin lock) or waits (a fast mutex) for good; the emulation
/// panics instead of hanging the test, and says so: this is the one violation it reports with a
/// plain panic, because Windows reports none.
fn self_deadlock(state: &State, lock: usize, what: &str) {
    if state.config.deadlock_detection() {
        checks::raise(state, &checks::SELF_DEADLOCK, [0x1000, lock as u64, 0, 0]);
        return;
    }
    panic!(
        "deadlock: this thread acquired a {what} it already holds (Windows hangs here; Driver Verifier's deadlock detection reports 0xC4 / 0x1000)"
    );
}

/// A release by a thread that does not hold the lock (`holder` 0: nobody does): with deadlock
/// detection 0xC4 / 0x1007 or 0x1004. Returns whether the release goes on (as on Windows without the
/// check, which releases whatever the lock's state).
fn release_by_non_holder(state: &State, lock: usize, holder: u64) -> bool {
    if !state.config.deadlock_detection() {
        return true;
    }
    if holder == 0 {
        checks::raise(state, &checks::RELEASE_OF_UNACQUIRED, [0x1007, lock as u64, 0, 0]);
    } else {
        checks::raise(state, &checks::RELEASE_BY_OTHER_THREAD, [0x1004, lock as u64, holder, thread_id()]);
    }
    false
}

/// # Safety
/// `lock` points to an initialized `KSPIN_LOCK` that stays valid while held.
pub(crate) unsafe fn acquire_spin_lock(lock: *mut KSPIN_LOCK, raise: bool) -> KIRQL {
    let irql = current_irql();
    let address = lock as u64;
    if raise && irql > DISPATCH_LEVEL {
        let state = current();
        let parameters = [0x42, irql.into(), address, 0];
        if verify(&state, &checks::ACQUIRE_SPIN_LOCK_ABOVE_DISPATCH, parameters) {
            return irql;
        }
    }
    if !raise && irql < DISPATCH_LEVEL {
        let state = current();
        let parameters = [0x40, irql.into(), address, 0];
        if verify(&state, &checks::ACQUIRE_AT_DPC_LEVEL_BELOW_DISPATCH, parameters) {
            return irql;
        }
    }
    let owner = thread_id();
    // SAFETY: a KSPIN_LOCK is an aligned 64-bit word that only the spin-lock routines touch, and
    // the caller guarantees it is valid.
    let word = unsafe { AtomicU64::from_ptr(lock) };
    if word.load(Ordering::Relaxed) == owner {
        self_deadlock(&current(), lock as usize, "spin lock");
        return irql;
    }
    let old = if raise { raise_irql(DISPATCH_LEVEL) } else { irql };
    while word.compare_exchange_weak(0, owner, Ordering::Acquire, Ordering::Relaxed).is_err() {
        std::thread::yield_now();
    }
    old
}

/// # Safety
/// `lock` is a valid `KSPIN_LOCK`, held by this thread.
pub(crate) unsafe fn release_spin_lock(lock: *mut KSPIN_LOCK, new_irql: Option<KIRQL>) {
    let irql = current_irql();
    let address = lock as u64;
    match new_irql {
        Some(_) if irql != DISPATCH_LEVEL => {
            let parameters = [0x32, irql.into(), address, 0];
            if verify(&current(), &checks::RELEASE_SPIN_LOCK_NOT_AT_DISPATCH, parameters) {
                return;
            }
        }
        None if irql < DISPATCH_LEVEL => {
            let parameters = [0x41, irql.into(), address, 0];
            if verify(&current(), &checks::RELEASE_FROM_DPC_LEVEL_BELOW_DISPATCH, parameters) {
                return;
            }
        }
        _ => {}
    }
    // SAFETY: as in `acquire_spin_lock`.
    let word = unsafe { AtomicU64::from_ptr(lock) };
    let holder = word.load(Ordering::Relaxed);
    if holder != thread_id() && !release_by_non_holder(&current(), lock as usize, holder) {
        return;
    }
    word.store(0, Ordering::Release);
    if let Some(irql) = new_irql {
        lower_irql(irql);
    }
}

/// # Safety
/// `mutex` was initialized with `ExInitializeFastMutex` and stays valid while held.
pub(crate) unsafe fn acquire_fast_mutex(mutex: *mut crate::FAST_MUTEX) {
    let old = current_irql();
    if old > APC_LEVEL {
        let parameters = [0x33, old.into(), mutex as u64, 0];
        if verify(&current(), &checks::ACQUIRE_FAST_MUTEX_ABOVE_APC, parameters) {
            return;
        }
    }
    let owner = thread_id();
    // SAFETY: forwarded contract.
    let (count, owner_word) = unsafe { fast_mutex_words(mutex) };
    if owner_word.load(Ordering::Relaxed) == owner {
        self_deadlock(&current(), mutex as usize, "fast mutex");
        return;
    }
    set_irql(APC_LEVEL);
    while count.compare_exchange_weak(1, 0, Ordering::Acquire, Ordering::Relaxed).is_err() {
        std::thread::yield_now();
    }
    owner_word.store(owner, Ordering::Relaxed);
    // SAFETY: the mutex is held by this thread; `OldIrql` is its to write.
    unsafe { (*mutex).OldIrql = u32::from(old) };
}

/// # Safety
/// `mutex` was initialized with `ExInitializeFastMutex`; the calling thread holds it.
pub(crate) unsafe fn release_fast_mutex(mutex: *mut crate::FAST_MUTEX) {
    let irql = current_irql();
    if irql != APC_LEVEL {
        let parameters = [0x34, irql.into(), mutex as u64, 0];
        if verify(&current(), &checks::RELEASE_FAST_MUTEX_NOT_AT_APC, parameters) {
            return;
        }
    }
    // SAFETY: forwarded contract.
    let (count, owner_word) = unsafe { fast_mutex_words(mutex) };
    let holder = owner_word.load(Ordering::Relaxed);
    if holder != thread_id() && !release_by_non_holder(&current(), mutex as usize, holder) {
        return;
    }
    // SAFETY: the mutex is valid; its `OldIrql` was written by the acquire.
    let old = unsafe { (*mutex).OldIrql } as KIRQL;
    owner_word.store(0, Ordering::Relaxed);
    count.store(1, Ordering::Release);
    lower_irql(old);
}

/// The words of a `FAST_MUTEX` the emulation synchronizes on: `Count` (1 when free) and `Owner`.
///
/// # Safety
/// `mutex` points to an initialized `FAST_MUTEX` that outlives the returned references and is only
/// touched through the fast-mutex routines.
unsafe fn fast_mutex_words<'a>(mutex: *mut crate::FAST_MUTEX) -> (&'a core::sync::atomic::AtomicI32, &'a AtomicU64) {
    // SAFETY: the caller guarantees `mutex` is valid.
    let count = unsafe { &raw mut (*mutex).Count };
    // SAFETY: as above.
    let owner = unsafe { &raw mut (*mutex).Owner }.cast::<u64>();
    // SAFETY: an aligned 32-bit word, touched only atomically by the fast-mutex routines.
    let count = unsafe { core::sync::atomic::AtomicI32::from_ptr(count) };
    // SAFETY: an aligned pointer-sized word, as above.
    let owner = unsafe { AtomicU64::from_ptr(owner) };
    (count, owner)
}

/// `KeAcquireSpinLockRaiseToDpc`.
///
/// # Safety
/// `SpinLock` must point to an initialized spin lock that stays valid until released.
///
/// ```
/// use ntpool_sys::{self as sys, KSPIN_LOCK};
/// # ntpool_sys::emulated::Kernel::new().run(|| {
/// let mut lock: KSPIN_LOCK = 0;
/// // SAFETY: `lock` is initialized (zero) and outlives the acquisition.
/// let old = unsafe { sys::KeAcquireSpinLockRaiseToDpc(&mut lock) };
/// assert_eq!((old, sys::KeGetCurrentIrql()), (sys::PASSIVE_LEVEL, sys::DISPATCH_LEVEL));
/// // SAFETY: this thread holds `lock`; `old` is what the acquire returned.
/// unsafe { sys::KeReleaseSpinLock(&mut lock, old) };
/// # });
/// ```
pub unsafe fn KeAcquireSpinLockRaiseToDpc(SpinLock: *mut KSPIN_LOCK) -> KIRQL {
    // SAFETY: forwarded contract.
    unsafe { acquire_spin_lock(SpinLock, true) }
}

/// `KeReleaseSpinLock`.
///
/// # Safety
/// The lock must be held by this thread; `NewIrql` is what the acquire returned.
///
/// ```
/// use ntpool_sys::{self as sys, KSPIN_LOCK};
/// # ntpool_sys::emulated::Kernel::new().run(|| {
/// let mut lock: KSPIN_LOCK = 0;
/// // SAFETY: `lock` is initialized (zero) and outlives the acquisition.
/// let old = unsafe { sys::KeAcquireSpinLockRaiseToDpc(&mut lock) };
/// assert_ne!(lock, 0); // held
/// // SAFETY: this thread holds `lock`; `old` is what the acquire returned.
/// unsafe { sys::KeReleaseSpinLock(&mut lock, old) };
/// assert_eq!((lock, sys::KeGetCurrentIrql()), (0, sys::PASSIVE_LEVEL));
/// # });
/// ```
pub unsafe fn KeReleaseSpinLock(SpinLock: *mut KSPIN_LOCK, NewIrql: KIRQL) {
    // SAFETY: forwarded contract.
    unsafe { release_spin_lock(SpinLock, Some(NewIrql)) };
}

/// `KeAcquireSpinLockAtDpcLevel`.
///
/// # Safety
/// As for [`KeAcquireSpinLockRaiseToDpc`], and the IRQL must be `DISPATCH_LEVEL`.
///
/// ```
/// use ntpool_sys::{self as sys, KSPIN_LOCK};
/// # ntpool_sys::emulated::Kernel::new().run(|| {
/// let mut lock: KSPIN_LOCK = 0;
/// // SAFETY: DISPATCH_LEVEL is above the current PASSIVE_LEVEL; lowered again below.
/// let old = unsafe { sys::KfRaiseIrql(sys::DISPATCH_LEVEL) };
/// // SAFETY: the IRQL is DISPATCH_LEVEL; `lock` is initialized and outlives the acquisition.
/// unsafe { sys::KeAcquireSpinLockAtDpcLevel(&mut lock) };
/// assert_ne!(lock, 0); // held, and the IRQL did not change
/// assert_eq!(sys::KeGetCurrentIrql(), sys::DISPATCH_LEVEL);
/// // SAFETY: this thread holds `lock`, acquired at DISPATCH_LEVEL.
/// unsafe { sys::KeReleaseSpinLockFromDpcLevel(&mut lock) };
/// // SAFETY: back to what KfRaiseIrql returned.
/// unsafe { sys::KeLowerIrql(old) };
/// # });
/// ```
pub unsafe fn KeAcquireSpinLockAtDpcLevel(SpinLock: *mut KSPIN_LOCK) {
    // SAFETY: forwarded contract.
    unsafe { acquire_spin_lock(SpinLock, false) };
}

/// `KeReleaseSpinLockFromDpcLevel`.
///
/// # Safety
/// The lock must be held by this thread, acquired at `DISPATCH_LEVEL`.
///
/// ```
/// use ntpool_sys::{self as sys, KSPIN_LOCK};
/// # ntpool_sys::emulated::Kernel::new().run(|| {
/// let mut lock: KSPIN_LOCK = 0;
/// // SAFETY: DISPATCH_LEVEL is above the current PASSIVE_LEVEL; lowered again below.
/// let old = unsafe { sys::KfRaiseIrql(sys::DISPATCH_LEVEL) };
/// // SAFETY: the IRQL is DISPATCH_LEVEL; `lock` is initialized and outlives the acquisition.
/// unsafe { sys::KeAcquireSpinLockAtDpcLevel(&mut lock) };
/// // SAFETY: this thread holds `lock`, acquired at DISPATCH_LEVEL.
/// unsafe { sys::KeReleaseSpinLockFromDpcLevel(&mut lock) };
/// // Released, and still at DISPATCH_LEVEL.
/// assert_eq!((lock, sys::KeGetCurrentIrql()), (0, sys::DISPATCH_LEVEL));
/// // SAFETY: back to what KfRaiseIrql returned.
/// unsafe { sys::KeLowerIrql(old) };
/// # });
/// ```
pub unsafe fn KeReleaseSpinLockFromDpcLevel(SpinLock: *mut KSPIN_LOCK) {
    // SAFETY: forwarded contract.
    unsafe { release_spin_lock(SpinLock, None) };
}

/// `KeInitializeEvent`: on the emulated kernel, events only serve fast mutexes, which do not wait on
/// them; the header is cleared.
///
/// # Safety
/// `Event` is valid for writes.
///
/// ```
/// let mut event = ntpool_sys::KEVENT { Header: [1; 3] };
/// // SAFETY: a valid event structure.
/// unsafe { ntpool_sys::KeInitializeEvent(&mut event, ntpool_sys::SynchronizationEvent, 0) };
/// assert_eq!(event.Header, [0; 3]);
/// ```
pub unsafe fn KeInitializeEvent(Event: *mut crate::KEVENT, _Type: i32, _State: u8) {
    // SAFETY: the caller guarantees the event is valid for writes.
    unsafe { (*Event).Header = [0; 3] };
}

/// `ExAcquireFastMutex`: raises to `APC_LEVEL` and acquires, waiting (yielding) while another thread
/// holds it.
///
/// # Safety
/// `FastMutex` was initialized with `ExInitializeFastMutex` and stays valid while held; the IRQL is at
/// most `APC_LEVEL`.
///
/// ```
/// # ntpool_sys::emulated::Kernel::new().run(|| {
/// let mut mutex = core::mem::MaybeUninit::<ntpool_sys::FAST_MUTEX>::uninit();
/// // SAFETY: a fresh structure that stays put.
/// unsafe { ntpool_sys::ExInitializeFastMutex(mutex.as_mut_ptr()) };
/// // SAFETY: initialized, at PASSIVE_LEVEL.
/// unsafe { ntpool_sys::ExAcquireFastMutex(mutex.as_mut_ptr()) };
/// // SAFETY: held by this thread.
/// unsafe { ntpool_sys::ExReleaseFastMutex(mutex.as_mut_ptr()) };
/// assert_eq!(ntpool_sys::KeGetCurrentIrql(), 0);
/// # });
/// ```
pub unsafe fn ExAcquireFastMutex(FastMutex: *mut crate::FAST_MUTEX) {
    // SAFETY: forwarded contract.
    unsafe { acquire_fast_mutex(FastMutex) };
}

/// `ExReleaseFastMutex`: releases and returns to the IRQL the acquire raised from.
///
/// # Safety
/// The calling thread holds `FastMutex`.
///
/// ```
/// # ntpool_sys::emulated::Kernel::new().run(|| {
/// let mut mutex = core::mem::MaybeUninit::<ntpool_sys::FAST_MUTEX>::uninit();
/// // SAFETY: a fresh structure that stays put.
/// unsafe { ntpool_sys::ExInitializeFastMutex(mutex.as_mut_ptr()) };
/// // SAFETY: initialized, at PASSIVE_LEVEL.
/// unsafe { ntpool_sys::ExAcquireFastMutex(mutex.as_mut_ptr()) };
/// // SAFETY: held by this thread.
/// unsafe { ntpool_sys::ExReleaseFastMutex(mutex.as_mut_ptr()) };
/// # });
/// ```
pub unsafe fn ExReleaseFastMutex(FastMutex: *mut crate::FAST_MUTEX) {
    // SAFETY: forwarded contract.
    unsafe { release_fast_mutex(FastMutex) };
}
