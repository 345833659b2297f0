//! Synchronization: spin locks (they exclude for real, between the threads that entered a kernel)
//! and fast mutexes, with the IRQL changes and the checks of the real routines; and events, as far
//! as fast mutexes use them.
#![allow(non_snake_case)]

use std::sync::atomic::{AtomicU64, Ordering};

use super::irql::{lower_irql, raise_irql};
use super::state::{bug_check, current};
use super::thread::{current_irql, set_irql, thread_id};
use crate::{APC_LEVEL, DISPATCH_LEVEL, DRIVER_VERIFIER_DETECTED_VIOLATION, KIRQL, KSPIN_LOCK};

/// # Safety
/// `lock` points to an initialized `KSPIN_LOCK` that stays valid while held.
pub(crate) unsafe fn acquire_spin_lock(lock: *mut KSPIN_LOCK, raise: bool) -> KIRQL {
    let old = if raise { raise_irql(DISPATCH_LEVEL) } else { current_irql() };
    if !raise && old != DISPATCH_LEVEL {
        let state = current();
        if state.config.verifier {
            // Driver Verifier: 0xC4 / 0x40, KeAcquireSpinLockAtDpcLevel below DISPATCH_LEVEL.
            bug_check(&state, DRIVER_VERIFIER_DETECTED_VIOLATION, [0x40, old.into(), 0, 0]);
        }
    }
    let owner = thread_id();
    // SAFETY: a KSPIN_LOCK is an aligned 64-bit word that only the spin-lock routines touch, and
    // the caller guarantees it is valid.
    let word = unsafe { AtomicU64::from_ptr(lock) };
    loop {
        match word.compare_exchange_weak(0, owner, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => return old,
            Err(current_owner) if current_owner == owner => {
                panic!("deadlock: this thread acquired a spin lock it already holds");
            }
            Err(_) => std::thread::yield_now(),
        }
    }
}

/// # Safety
/// `lock` is held by this thread.
pub(crate) unsafe fn release_spin_lock(lock: *mut KSPIN_LOCK, new_irql: Option<KIRQL>) {
    // SAFETY: as in `acquire_spin_lock`.
    let word = unsafe { AtomicU64::from_ptr(lock) };
    let owner = thread_id();
    if word.load(Ordering::Relaxed) != owner {
        panic!("a spin lock was released by a thread that does not hold it");
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
        panic!("ExAcquireFastMutex at IRQL {old}: a fast mutex needs IRQL <= APC_LEVEL");
    }
    let owner = thread_id();
    // SAFETY: forwarded contract.
    let (count, owner_word) = unsafe { fast_mutex_words(mutex) };
    if owner_word.load(Ordering::Relaxed) == owner {
        panic!("deadlock: this thread acquired a fast mutex it already holds");
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
/// The calling thread holds `mutex`.
pub(crate) unsafe fn release_fast_mutex(mutex: *mut crate::FAST_MUTEX) {
    let owner = thread_id();
    // SAFETY: forwarded contract.
    let (count, owner_word) = unsafe { fast_mutex_words(mutex) };
    if owner_word.load(Ordering::Relaxed) != owner {
        panic!("a fast mutex was released by a thread that does not hold it");
    }
    // SAFETY: held by this thread.
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
