//! The kernel interface on the emulated kernel: the same routines as `ntoskrnl.rs`, each one a call
//! into [`crate::emulated`], where the checks and the bookkeeping live.

use super::{KIRQL, KSPIN_LOCK, POOL_FLAGS, POOL_TYPE, PVOID, SIZE_T, ULONG};
use crate::emulated::kernel;

/// Whether allocations go to `ExAllocatePool2` (true) or to the `ExAllocatePoolWithTag` fallback
/// (false); on the emulated kernel, as configured with
/// [`KernelBuilder::ex_allocate_pool2`](crate::emulated::KernelBuilder::ex_allocate_pool2).
pub fn uses_ex_allocate_pool2() -> bool {
    kernel::exports_ex_allocate_pool2()
}

/// `ExAllocatePool2`, or its fallback through `ExAllocatePoolWithTag` where the emulated kernel is
/// configured as a Windows version that lacks it.
///
/// # Safety
/// As for `ExAllocatePool2`. The emulated kernel checks the IRQL and the arguments and bug-checks
/// as Driver Verifier does.
#[track_caller]
pub unsafe fn ExAllocatePool2(Flags: POOL_FLAGS, NumberOfBytes: SIZE_T, Tag: ULONG) -> PVOID {
    let site = core::panic::Location::caller();
    if kernel::exports_ex_allocate_pool2() {
        return kernel::allocate_pool2(Flags, NumberOfBytes, Tag, site);
    }
    // SAFETY: forwarded contract; the same fallback as on the real kernel.
    unsafe {
        super::allocate_pool2_with_legacy_routine(Flags, NumberOfBytes, Tag, |pool_type, size, tag| {
            kernel::allocate_pool_with_tag(pool_type, size, tag, site)
        })
    }
}

/// `ExAllocatePoolWithTag`.
///
/// # Safety
/// As for `ExAllocatePoolWithTag`.
#[track_caller]
pub unsafe fn ExAllocatePoolWithTag(PoolType: POOL_TYPE, NumberOfBytes: SIZE_T, Tag: ULONG) -> PVOID {
    kernel::allocate_pool_with_tag(PoolType, NumberOfBytes, Tag, core::panic::Location::caller())
}

/// `ExFreePoolWithTag`.
///
/// # Safety
/// As for `ExFreePoolWithTag`. The emulated kernel bug-checks on a wrong tag, an unknown address,
/// a double free or a bad IRQL, and never touches memory it did not hand out.
pub unsafe fn ExFreePoolWithTag(P: PVOID, Tag: ULONG) {
    kernel::free_pool(P, Some(Tag));
}

/// `ExFreePool`.
///
/// # Safety
/// As for `ExFreePool`.
pub unsafe fn ExFreePool(P: PVOID) {
    kernel::free_pool(P, None);
}

/// `KeGetCurrentIrql`: the calling thread's emulated IRQL.
pub fn KeGetCurrentIrql() -> KIRQL {
    kernel::current_irql()
}

/// `KfRaiseIrql`. Returns the previous IRQL.
///
/// # Safety
/// As for `KeRaiseIrql`.
pub unsafe fn KfRaiseIrql(NewIrql: KIRQL) -> KIRQL {
    kernel::raise_irql(NewIrql)
}

/// `KeLowerIrql`.
///
/// # Safety
/// As for `KeLowerIrql`.
pub unsafe fn KeLowerIrql(NewIrql: KIRQL) {
    kernel::lower_irql(NewIrql);
}

/// `KeAcquireSpinLockRaiseToDpc`.
///
/// # Safety
/// `SpinLock` must point to an initialized spin lock that stays valid until released.
pub unsafe fn KeAcquireSpinLockRaiseToDpc(SpinLock: *mut KSPIN_LOCK) -> KIRQL {
    // SAFETY: forwarded contract.
    unsafe { kernel::acquire_spin_lock(SpinLock, true) }
}

/// `KeReleaseSpinLock`.
///
/// # Safety
/// The lock must be held by this thread; `NewIrql` is what the acquire returned.
pub unsafe fn KeReleaseSpinLock(SpinLock: *mut KSPIN_LOCK, NewIrql: KIRQL) {
    // SAFETY: forwarded contract.
    unsafe { kernel::release_spin_lock(SpinLock, Some(NewIrql)) };
}

/// `KeAcquireSpinLockAtDpcLevel`.
///
/// # Safety
/// As for [`KeAcquireSpinLockRaiseToDpc`], and the IRQL must be `DISPATCH_LEVEL`.
pub unsafe fn KeAcquireSpinLockAtDpcLevel(SpinLock: *mut KSPIN_LOCK) {
    // SAFETY: forwarded contract.
    unsafe { kernel::acquire_spin_lock(SpinLock, false) };
}

/// `KeReleaseSpinLockFromDpcLevel`.
///
/// # Safety
/// The lock must be held by this thread, acquired at `DISPATCH_LEVEL`.
pub unsafe fn KeReleaseSpinLockFromDpcLevel(SpinLock: *mut KSPIN_LOCK) {
    // SAFETY: forwarded contract.
    unsafe { kernel::release_spin_lock(SpinLock, None) };
}

/// `KeBugCheckEx`: on the emulated kernel, a panic carrying a
/// [`BugCheck`](crate::emulated::BugCheck) that tests can catch and inspect.
///
/// # Safety
/// Always safe on the emulated kernel; `unsafe` to match the real routine.
pub unsafe fn KeBugCheckEx(
    BugCheckCode: ULONG,
    BugCheckParameter1: usize,
    BugCheckParameter2: usize,
    BugCheckParameter3: usize,
    BugCheckParameter4: usize,
) -> ! {
    kernel::bug_check_now(
        BugCheckCode,
        [BugCheckParameter1 as u64, BugCheckParameter2 as u64, BugCheckParameter3 as u64, BugCheckParameter4 as u64],
    )
}
