//! The Windows kernel interface of ntpool, and nowhere else: the routines of `ntoskrnl.exe` (and,
//! with the `videoport` feature, of `videoprt.sys`) that ntpool and the sample drivers call, the
//! WDM and `video.h` structures they use, with the names and types of the WDK (as bound by
//! `wdk-sys`), and an emulation of them.
//!
//! There are two implementations behind the same names and signatures:
//!
//! * on a Windows target (`x86_64-pc-windows-msvc`, `aarch64-pc-windows-msvc`), the real kernel:
//!   `raw-dylib` imports from `ntoskrnl.exe` and `videoprt.sys`, the IRQL routines (which the WDK
//!   headers inline on x64 as reads and writes of CR8, and which ARM64's kernel exports), and the
//!   routines that not every Windows version exports (`ExAllocatePool2`, `ExAllocatePool3`, the
//!   `LOOKASIDE_LIST_EX` routines), looked up at run time with `MmGetSystemRoutineAddress`;
//! * everywhere else (and on Windows with the `emulated` feature), the [emulated kernel][emulated],
//!   which checks every call the way Driver Verifier does and reports a violation as a bug check with
//!   Microsoft's code and parameters.
//!
//! Nothing built on this crate knows which one it runs on; this crate's build script chooses, and
//! tells the crates that depend on it through its `links` metadata (`DEP_NTPOOL_SYS_EMULATED`).
//! The typed API is ntpool's, which re-exports this crate as `ntpool::sys` and its emulated kernel
//! as `ntpool::emulated`. Driver code may call these routines directly, for example to test how the
//! emulated verifier reacts to a misuse that a safe API makes impossible:
//!
//! ```
//! use ntpool_sys as sys;
//! # ntpool_sys::emulated::Kernel::new().run(|| {
//! let tag = u32::from_le_bytes(*b"Doc1");
//! // SAFETY: a plain allocation, freed below with the tag it was allocated with.
//! let p = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_NON_PAGED, 64, tag) };
//! assert!(!p.is_null());
//! // SAFETY: `p` came from ExAllocatePool2 with this tag and is not used afterwards.
//! unsafe { sys::ExFreePoolWithTag(p, tag) };
//! # });
//! ```
//!
//! On docs.rs, the Windows targets (`x86_64-pc-windows-msvc`, the default, and
//! `aarch64-pc-windows-msvc`) show the real kernel with every feature but `emulated`, which would
//! replace it; the Linux target (`x86_64-unknown-linux-gnu`) shows the emulated kernel,
//! `ntpool_sys::emulated`.
//!
#![cfg_attr(ntpool_emulated, doc = "[emulated]: crate::emulated")]
#![cfg_attr(
    not(ntpool_emulated),
    doc = "[emulated]: https://docs.rs/ntpool-sys/latest/x86_64-unknown-linux-gnu/ntpool_sys/emulated/"
)]
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![allow(non_camel_case_types, non_snake_case, non_upper_case_globals)]

#[cfg(ntpool_emulated)]
extern crate std;

use core::ffi::c_void;

/// An interrupt request level (`KIRQL`).
///
/// ```
/// let level: ntpool_sys::KIRQL = ntpool_sys::DISPATCH_LEVEL;
/// assert_eq!(level, 2);
/// ```
pub type KIRQL = u8;
/// `ULONG`.
///
/// ```
/// let tag: ntpool_sys::ULONG = u32::from_le_bytes(*b"Doc1");
/// assert_eq!(tag, 0x3163_6F44);
/// ```
pub type ULONG = u32;
/// `SIZE_T` (64 bits, as on x64).
///
/// ```
/// assert_eq!(core::mem::size_of::<ntpool_sys::SIZE_T>(), 8);
/// ```
pub type SIZE_T = u64;
/// `PVOID`.
///
/// ```
/// let block: ntpool_sys::PVOID = core::ptr::null_mut();
/// assert!(block.is_null()); // what a failed allocation returns
/// ```
pub type PVOID = *mut c_void;
/// `POOL_FLAGS`, the first parameter of `ExAllocatePool2`.
///
/// ```
/// let flags: ntpool_sys::POOL_FLAGS = ntpool_sys::POOL_FLAG_NON_PAGED | ntpool_sys::POOL_FLAG_CACHE_ALIGNED;
/// assert_eq!(flags, 0x48);
/// ```
pub type POOL_FLAGS = u64;
/// `POOL_TYPE`, the first parameter of the legacy `ExAllocatePool*` routines. A different type from
/// [`POOL_FLAGS`] on purpose: passing one where the other is expected does not compile.
///
/// ```
/// let pool_type: ntpool_sys::POOL_TYPE = ntpool_sys::NonPagedPoolNx;
/// assert_eq!(pool_type, 0x200);
/// ```
pub type POOL_TYPE = i32;
/// `KSPIN_LOCK` (a `ULONG_PTR`).
///
/// ```
/// let lock: ntpool_sys::KSPIN_LOCK = 0; // a released spin lock
/// assert_eq!(core::mem::size_of_val(&lock), 8);
/// ```
pub type KSPIN_LOCK = u64;
/// `NTSTATUS`.
///
/// ```
/// const STATUS_SUCCESS: ntpool_sys::NTSTATUS = 0;
/// assert!(STATUS_SUCCESS >= 0); // NT_SUCCESS
/// ```
pub type NTSTATUS = i32;

/// `PASSIVE_LEVEL`: threads run here; everything is allowed.
///
/// ```
/// assert_eq!(ntpool_sys::PASSIVE_LEVEL, 0);
/// ```
pub const PASSIVE_LEVEL: KIRQL = 0;
/// `APC_LEVEL`: asynchronous procedure calls are masked; paged memory is still usable.
///
/// ```
/// assert_eq!(ntpool_sys::APC_LEVEL, 1);
/// ```
pub const APC_LEVEL: KIRQL = 1;
/// `DISPATCH_LEVEL`: the scheduler is masked; page faults cannot be served, so paged memory must not
/// be touched, allocated or freed.
///
/// ```
/// assert_eq!(ntpool_sys::DISPATCH_LEVEL, 2);
/// ```
pub const DISPATCH_LEVEL: KIRQL = 2;
/// `PROFILE_LEVEL` on x64.
///
/// ```
/// assert_eq!(ntpool_sys::PROFILE_LEVEL, 15);
/// ```
pub const PROFILE_LEVEL: KIRQL = 15;
/// `CLOCK_LEVEL` on x64.
///
/// ```
/// assert_eq!(ntpool_sys::CLOCK_LEVEL, 13);
/// ```
pub const CLOCK_LEVEL: KIRQL = 13;
/// `IPI_LEVEL` on x64.
///
/// ```
/// assert_eq!(ntpool_sys::IPI_LEVEL, 14);
/// ```
pub const IPI_LEVEL: KIRQL = 14;
/// `POWER_LEVEL` on x64.
///
/// ```
/// assert_eq!(ntpool_sys::POWER_LEVEL, 14);
/// ```
pub const POWER_LEVEL: KIRQL = 14;
/// `HIGH_LEVEL`: every interrupt is masked. On x64 the IRQL is the task-priority register CR8,
/// which holds 0 to 15.
///
/// ```
/// assert_eq!(ntpool_sys::HIGH_LEVEL, 15);
/// ```
pub const HIGH_LEVEL: KIRQL = 15;

/// Charge the allocation to the current process's quota.
///
/// ```
/// assert_eq!(ntpool_sys::POOL_FLAG_USE_QUOTA, 0x1);
/// ```
pub const POOL_FLAG_USE_QUOTA: POOL_FLAGS = 0x1;
/// Do not zero the allocation.
///
/// ```
/// assert_eq!(ntpool_sys::POOL_FLAG_UNINITIALIZED, 0x2);
/// ```
pub const POOL_FLAG_UNINITIALIZED: POOL_FLAGS = 0x2;
/// Session pool.
///
/// ```
/// assert_eq!(ntpool_sys::POOL_FLAG_SESSION, 0x4);
/// ```
pub const POOL_FLAG_SESSION: POOL_FLAGS = 0x4;
/// Align the allocation on a processor cache line.
///
/// ```
/// assert_eq!(ntpool_sys::POOL_FLAG_CACHE_ALIGNED, 0x8);
/// ```
pub const POOL_FLAG_CACHE_ALIGNED: POOL_FLAGS = 0x8;
/// Raise an exception instead of returning NULL on failure (ntpool never sets it).
///
/// ```
/// assert_eq!(ntpool_sys::POOL_FLAG_RAISE_ON_FAILURE, 0x20);
/// ```
pub const POOL_FLAG_RAISE_ON_FAILURE: POOL_FLAGS = 0x20;
/// Non-paged, non-executable pool.
///
/// ```
/// assert_eq!(ntpool_sys::POOL_FLAG_NON_PAGED, 0x40);
/// ```
pub const POOL_FLAG_NON_PAGED: POOL_FLAGS = 0x40;
/// Non-paged, executable pool.
///
/// ```
/// assert_eq!(ntpool_sys::POOL_FLAG_NON_PAGED_EXECUTE, 0x80);
/// ```
pub const POOL_FLAG_NON_PAGED_EXECUTE: POOL_FLAGS = 0x80;
/// Paged pool.
///
/// ```
/// assert_eq!(ntpool_sys::POOL_FLAG_PAGED, 0x100);
/// ```
pub const POOL_FLAG_PAGED: POOL_FLAGS = 0x100;
/// Optional flag: allocate from special pool where Driver Verifier offers it.
///
/// ```
/// assert_eq!(ntpool_sys::POOL_FLAG_SPECIAL_POOL & ntpool_sys::POOL_FLAG_REQUIRED_MASK, 0); // optional
/// ```
pub const POOL_FLAG_SPECIAL_POOL: POOL_FLAGS = 0x1_0000_0000;
/// The required flags `ExAllocatePool2` understands; any other bit in the low 32 bits fails the call.
///
/// ```
/// assert_eq!(ntpool_sys::POOL_FLAG_REQUIRED_MASK, 0xFFFF_FFFF);
/// ```
pub const POOL_FLAG_REQUIRED_MASK: POOL_FLAGS = 0xFFFF_FFFF;
/// Every required flag this kernel version knows.
///
/// ```
/// assert_eq!(ntpool_sys::POOL_FLAG_REQUIRED_KNOWN, 0x1EF);
/// ```
pub const POOL_FLAG_REQUIRED_KNOWN: POOL_FLAGS = POOL_FLAG_USE_QUOTA
    | POOL_FLAG_UNINITIALIZED
    | POOL_FLAG_SESSION
    | POOL_FLAG_CACHE_ALIGNED
    | POOL_FLAG_RAISE_ON_FAILURE
    | POOL_FLAG_NON_PAGED
    | POOL_FLAG_NON_PAGED_EXECUTE
    | POOL_FLAG_PAGED;

/// `NonPagedPool` (executable).
///
/// ```
/// assert_eq!(ntpool_sys::NonPagedPool, 0);
/// ```
pub const NonPagedPool: POOL_TYPE = 0;
/// `NonPagedPoolExecute`, the same value as `NonPagedPool`.
///
/// ```
/// assert_eq!(ntpool_sys::NonPagedPoolExecute, ntpool_sys::NonPagedPool);
/// ```
pub const NonPagedPoolExecute: POOL_TYPE = 0;
/// `PagedPool`.
///
/// ```
/// assert_eq!(ntpool_sys::PagedPool, 1);
/// ```
pub const PagedPool: POOL_TYPE = 1;
/// `NonPagedPoolMustSucceed`: bug check 0xC2 / 0x9A on any use.
///
/// ```
/// assert_eq!(ntpool_sys::NonPagedPoolMustSucceed, 2);
/// ```
pub const NonPagedPoolMustSucceed: POOL_TYPE = 2;
/// `NonPagedPoolCacheAligned`.
///
/// ```
/// assert_eq!(ntpool_sys::NonPagedPoolCacheAligned, 4);
/// ```
pub const NonPagedPoolCacheAligned: POOL_TYPE = 4;
/// `PagedPoolCacheAligned`.
///
/// ```
/// assert_eq!(ntpool_sys::PagedPoolCacheAligned, 5);
/// ```
pub const PagedPoolCacheAligned: POOL_TYPE = 5;
/// `NonPagedPoolNx`, non-executable non-paged pool.
///
/// ```
/// assert_eq!(ntpool_sys::NonPagedPoolNx, 0x200);
/// ```
pub const NonPagedPoolNx: POOL_TYPE = 0x200;
/// `NonPagedPoolNxCacheAligned`.
///
/// ```
/// assert_eq!(ntpool_sys::NonPagedPoolNxCacheAligned, 0x204);
/// ```
pub const NonPagedPoolNxCacheAligned: POOL_TYPE = 0x204;

/// `POOL_QUOTA_FAIL_INSTEAD_OF_RAISE`: or-ed into the `POOL_TYPE` of `ExAllocatePoolWithQuotaTag`,
/// makes it return NULL instead of raising an exception when the pool or the quota is exhausted.
///
/// ```
/// assert_eq!(ntpool_sys::POOL_QUOTA_FAIL_INSTEAD_OF_RAISE, 8);
/// ```
pub const POOL_QUOTA_FAIL_INSTEAD_OF_RAISE: POOL_TYPE = 8;

/// The pool tag bit that marks a block as protected: it must be freed with `ExFreePoolWithTag` and
/// the same tag (including this bit).
///
/// ```
/// assert_eq!(ntpool_sys::PROTECTED_POOL, 0x8000_0000);
/// ```
pub const PROTECTED_POOL: ULONG = 0x8000_0000;

/// `DRIVER_VERIFIER_DETECTED_VIOLATION`.
///
/// ```
/// assert_eq!(ntpool_sys::DRIVER_VERIFIER_DETECTED_VIOLATION, 0xC4);
/// ```
pub const DRIVER_VERIFIER_DETECTED_VIOLATION: ULONG = 0xC4;
/// `BAD_POOL_CALLER`.
///
/// ```
/// assert_eq!(ntpool_sys::BAD_POOL_CALLER, 0xC2);
/// ```
pub const BAD_POOL_CALLER: ULONG = 0xC2;
/// `DRIVER_IRQL_NOT_LESS_OR_EQUAL`.
///
/// ```
/// assert_eq!(ntpool_sys::DRIVER_IRQL_NOT_LESS_OR_EQUAL, 0xD1);
/// ```
pub const DRIVER_IRQL_NOT_LESS_OR_EQUAL: ULONG = 0xD1;
/// `IRQL_NOT_GREATER_OR_EQUAL`: `KeRaiseIrql` to a lower level.
///
/// ```
/// assert_eq!(ntpool_sys::IRQL_NOT_GREATER_OR_EQUAL, 0x09);
/// ```
pub const IRQL_NOT_GREATER_OR_EQUAL: ULONG = 0x09;
/// `IRQL_NOT_LESS_OR_EQUAL`: `KeLowerIrql` to a higher level, or a page fault at `DISPATCH_LEVEL`.
///
/// ```
/// assert_eq!(ntpool_sys::IRQL_NOT_LESS_OR_EQUAL, 0x0A);
/// ```
pub const IRQL_NOT_LESS_OR_EQUAL: ULONG = 0x0A;
/// `SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION`.
///
/// ```
/// assert_eq!(ntpool_sys::SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION, 0xC1);
/// ```
pub const SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION: ULONG = 0xC1;
/// `PAGE_FAULT_BEYOND_END_OF_ALLOCATION`.
///
/// ```
/// assert_eq!(ntpool_sys::PAGE_FAULT_BEYOND_END_OF_ALLOCATION, 0xCD);
/// ```
pub const PAGE_FAULT_BEYOND_END_OF_ALLOCATION: ULONG = 0xCD;
/// `PAGE_FAULT_IN_FREED_SPECIAL_POOL`.
///
/// ```
/// assert_eq!(ntpool_sys::PAGE_FAULT_IN_FREED_SPECIAL_POOL, 0xCC);
/// ```
pub const PAGE_FAULT_IN_FREED_SPECIAL_POOL: ULONG = 0xCC;

/// The legacy `POOL_TYPE` that `ExAllocatePool2` flags stand for, for the `ExAllocatePoolWithTag`
/// fallback; `None` for flags the legacy routine cannot express (for example quota, which has its own
/// routine, or no pool at all).
///
/// ```
/// use ntpool_sys::{self as sys, pool_type_for_flags};
/// assert_eq!(pool_type_for_flags(sys::POOL_FLAG_NON_PAGED), Some(sys::NonPagedPoolNx));
/// assert_eq!(pool_type_for_flags(sys::POOL_FLAG_PAGED | sys::POOL_FLAG_CACHE_ALIGNED), Some(sys::PagedPoolCacheAligned));
/// assert_eq!(pool_type_for_flags(sys::POOL_FLAG_PAGED | sys::POOL_FLAG_USE_QUOTA), None);
/// ```
pub const fn pool_type_for_flags(flags: POOL_FLAGS) -> Option<POOL_TYPE> {
    let cache = flags & POOL_FLAG_CACHE_ALIGNED != 0;
    let kind = flags & (POOL_FLAG_PAGED | POOL_FLAG_NON_PAGED | POOL_FLAG_NON_PAGED_EXECUTE);
    if flags & !(POOL_FLAG_UNINITIALIZED | POOL_FLAG_CACHE_ALIGNED | POOL_FLAG_SPECIAL_POOL | kind) != 0 {
        return None;
    }
    match (kind, cache) {
        (POOL_FLAG_PAGED, false) => Some(PagedPool),
        (POOL_FLAG_PAGED, true) => Some(PagedPoolCacheAligned),
        (POOL_FLAG_NON_PAGED, false) => Some(NonPagedPoolNx),
        (POOL_FLAG_NON_PAGED, true) => Some(NonPagedPoolNxCacheAligned),
        (POOL_FLAG_NON_PAGED_EXECUTE, false) => Some(NonPagedPoolExecute),
        (POOL_FLAG_NON_PAGED_EXECUTE, true) => Some(NonPagedPoolCacheAligned),
        _ => None,
    }
}

/// Whether a legacy `POOL_TYPE` is paged (the low bit of the base type, as in the kernel).
///
/// ```
/// use ntpool_sys::{self as sys, pool_type_is_paged};
/// assert!(pool_type_is_paged(sys::PagedPoolCacheAligned));
/// assert!(!pool_type_is_paged(sys::NonPagedPoolNx));
/// ```
pub const fn pool_type_is_paged(pool_type: POOL_TYPE) -> bool {
    pool_type & 1 == 1
}

/// `ExAllocatePool2`'s contract implemented with the legacy routines, for kernels that do not export
/// `ExAllocatePool2` (Windows before 10 version 2004, Wine): the matching `POOL_TYPE`, NULL for a zero
/// tag or for flags the legacy routines cannot express, and zeroing unless `POOL_FLAG_UNINITIALIZED`
/// is set. `POOL_FLAG_USE_QUOTA` goes to `ExAllocatePoolWithQuotaTag` with
/// [`POOL_QUOTA_FAIL_INSTEAD_OF_RAISE`] (never the raising form), everything else to
/// `ExAllocatePoolWithTag`. Both kernel backends use this one function.
///
/// # Safety
/// As for `ExAllocatePool2`; `allocate_with_tag` must call `ExAllocatePoolWithTag` and
/// `allocate_with_quota_tag` `ExAllocatePoolWithQuotaTag`.
#[inline(always)]
pub(crate) unsafe fn allocate_pool2_with_legacy_routine(
    flags: POOL_FLAGS,
    size: SIZE_T,
    tag: ULONG,
    allocate_with_tag: impl FnOnce(POOL_TYPE, SIZE_T, ULONG) -> PVOID,
    allocate_with_quota_tag: impl FnOnce(POOL_TYPE, SIZE_T, ULONG) -> PVOID,
) -> PVOID {
    let unknown = flags & POOL_FLAG_REQUIRED_MASK & !POOL_FLAG_REQUIRED_KNOWN;
    let quota = flags & POOL_FLAG_USE_QUOTA != 0;
    let Some(pool_type) = pool_type_for_flags(flags & !(POOL_FLAG_USE_QUOTA | POOL_FLAG_RAISE_ON_FAILURE)) else {
        return core::ptr::null_mut();
    };
    if unknown != 0 || tag == 0 {
        return core::ptr::null_mut();
    }
    // POOL_FLAG_RAISE_ON_FAILURE: the legacy routines' raising forms (the quota routine without
    // POOL_QUOTA_FAIL_INSTEAD_OF_RAISE, ExAllocatePoolWithTag with POOL_RAISE_IF_ALLOCATION_FAILURE).
    let raise = flags & POOL_FLAG_RAISE_ON_FAILURE != 0;
    let block = if quota {
        allocate_with_quota_tag(pool_type | if raise { 0 } else { POOL_QUOTA_FAIL_INSTEAD_OF_RAISE }, size, tag)
    } else {
        allocate_with_tag(pool_type | if raise { POOL_RAISE_IF_ALLOCATION_FAILURE } else { 0 }, size, tag)
    };
    if !block.is_null() && flags & POOL_FLAG_UNINITIALIZED == 0 {
        // SAFETY: `block` is a fresh allocation of `size` bytes.
        unsafe { core::ptr::write_bytes(block.cast::<u8>(), 0, size as usize) };
    }
    block
}

/// `POOL_RAISE_IF_ALLOCATION_FAILURE`: or-ed into a `POOL_TYPE`, makes `ExAllocatePoolWithTag` raise
/// an exception instead of returning NULL when it fails.
///
/// ```
/// assert_eq!(ntpool_sys::POOL_RAISE_IF_ALLOCATION_FAILURE, 16);
/// ```
pub const POOL_RAISE_IF_ALLOCATION_FAILURE: POOL_TYPE = 16;

/// `KEVENT`, opaque: a `DISPATCHER_HEADER` (x64: 24 bytes).
#[repr(C)]
#[derive(Debug)]
pub struct KEVENT {
    /// The dispatcher header (type, state, wait list).
    pub Header: [u64; 3],
}

/// `EVENT_TYPE::SynchronizationEvent`.
pub const SynchronizationEvent: i32 = 1;

/// `FAST_MUTEX` (x64 layout, 56 bytes).
#[repr(C)]
#[derive(Debug)]
pub struct FAST_MUTEX {
    /// 1 when free (`FM_LOCK_BIT`).
    pub Count: i32,
    /// The owning thread.
    pub Owner: PVOID,
    /// How often an acquire had to wait.
    pub Contention: u32,
    /// The event waiters sleep on.
    pub Event: KEVENT,
    /// The IRQL to restore on release.
    pub OldIrql: u32,
}

/// `ExInitializeFastMutex` (inline in the WDK headers): free, no owner, its event initialized.
///
/// # Safety
/// `FastMutex` is valid for writes, not in use, and stays where it is while in use (its event's
/// wait list points to itself).
///
/// ```
/// use ntpool_sys as sys;
/// # ntpool_sys::emulated::Kernel::new().run(|| {
/// let mut mutex = core::mem::MaybeUninit::<sys::FAST_MUTEX>::uninit();
/// // SAFETY: a fresh, unused structure that does not move while in use below.
/// unsafe { sys::ExInitializeFastMutex(mutex.as_mut_ptr()) };
/// // SAFETY: initialized above; acquired and released at PASSIVE_LEVEL.
/// unsafe { sys::ExAcquireFastMutex(mutex.as_mut_ptr()) };
/// assert_eq!(sys::KeGetCurrentIrql(), sys::APC_LEVEL);
/// // SAFETY: held by this thread.
/// unsafe { sys::ExReleaseFastMutex(mutex.as_mut_ptr()) };
/// # });
/// ```
pub unsafe fn ExInitializeFastMutex(FastMutex: *mut FAST_MUTEX) {
    // SAFETY: the caller guarantees the structure is valid for writes.
    unsafe {
        FastMutex.write(FAST_MUTEX {
            Count: 1,
            Owner: core::ptr::null_mut(),
            Contention: 0,
            Event: KEVENT { Header: [0; 3] },
            OldIrql: 0,
        })
    };
    // SAFETY: the structure was just written.
    let event = unsafe { &raw mut (*FastMutex).Event };
    // SAFETY: the event is part of the structure, which does not move while in use.
    unsafe { KeInitializeEvent(event, SynchronizationEvent, 0) };
}

/// `KeInitializeSpinLock`: on x64, a store of zero (the WDK inlines it).
///
/// # Safety
/// `SpinLock` must be valid for writes and not held.
///
/// ```
/// use ntpool_sys::{self as sys, KSPIN_LOCK};
/// # ntpool_sys::emulated::Kernel::new().run(|| {
/// let mut lock: KSPIN_LOCK = u64::MAX;
/// // SAFETY: `lock` is a local, valid for writes, and nobody holds it.
/// unsafe { sys::KeInitializeSpinLock(&mut lock) };
/// assert_eq!(lock, 0);
/// // SAFETY: `lock` is initialized and outlives the acquisition.
/// let old = unsafe { sys::KeAcquireSpinLockRaiseToDpc(&mut lock) };
/// // SAFETY: this thread holds `lock`; `old` is what the acquire returned.
/// unsafe { sys::KeReleaseSpinLock(&mut lock, old) };
/// assert_eq!(lock, 0);
/// # });
/// ```
#[inline(always)]
pub unsafe fn KeInitializeSpinLock(SpinLock: *mut KSPIN_LOCK) {
    // SAFETY: the caller guarantees the pointer is valid for writes.
    unsafe { SpinLock.write(0) };
}

mod lookaside;
pub use lookaside::*;

mod inline;
pub use inline::*;

mod strings;
pub use strings::*;

mod pool_extended;
pub use pool_extended::*;

pub mod wdm;
pub use wdm::*;

#[cfg(ntpool_emulated)]
pub mod emulated;
#[cfg(ntpool_emulated)]
pub use emulated::dpc::{KeFlushQueuedDpcs, KeInitializeDpc, KeInsertQueueDpc, KeRemoveQueueDpc};
#[cfg(ntpool_emulated)]
pub use emulated::io::{
    DbgPrint, IoCreateDevice, IoCreateSymbolicLink, IoDeleteDevice, IoDeleteSymbolicLink, IoGetDeviceInterfaces,
    IofCompleteRequest, ObOpenObjectByPointer, RtlAddAccessAllowedAce, RtlCreateAcl, RtlCreateSecurityDescriptor,
    RtlSetDaclSecurityDescriptor, ZwClose, ZwSetSecurityObject,
};
#[cfg(ntpool_emulated)]
pub use emulated::irql::{KeGetCurrentIrql, KeLowerIrql, KfRaiseIrql};
#[cfg(ntpool_emulated)]
pub use emulated::lookaside::{
    ExDeleteLookasideListEx, ExDeleteNPagedLookasideList, ExDeletePagedLookasideList, ExInitializeLookasideListEx,
    ExInitializeNPagedLookasideList, ExInitializePagedLookasideList, ExQueryDepthSList, ExpInterlockedPopEntrySList,
    ExpInterlockedPushEntrySList, uses_lookaside_list_ex,
};
#[cfg(ntpool_emulated)]
pub use emulated::pool::{
    ExAllocatePool2, ExAllocatePool3, ExAllocatePoolWithQuotaTag, ExAllocatePoolWithTag, ExFreePool, ExFreePoolWithTag,
    uses_ex_allocate_pool2, uses_ex_allocate_pool3,
};
#[cfg(ntpool_emulated)]
pub use emulated::reports::KeBugCheckEx;
#[cfg(ntpool_emulated)]
pub use emulated::sync::{
    ExAcquireFastMutex, ExReleaseFastMutex, KeAcquireSpinLockAtDpcLevel, KeAcquireSpinLockRaiseToDpc,
    KeInitializeEvent, KeReleaseSpinLock, KeReleaseSpinLockFromDpcLevel,
};
#[cfg(ntpool_emulated)]
pub use emulated::timer::{KeCancelTimer, KeInitializeTimerEx, KeSetTimerEx};
#[cfg(ntpool_emulated)]
pub use emulated::work::{IoAllocateWorkItem, IoFreeWorkItem, IoQueueWorkItem, KeDelayExecutionThread};

mod deferred;
pub use deferred::*;

mod threads;
#[cfg(ntpool_emulated)]
pub use emulated::system_thread::{
    KeWaitForSingleObject, ObReferenceObjectByHandle, ObfDereferenceObject, PsCreateSystemThread,
    PsTerminateSystemThread,
};
pub use threads::*;

mod requests;
#[cfg(ntpool_emulated)]
pub use emulated::irp::{IoAllocateIrp, IoFreeIrp, IofCallDriver, KeSynchronizeExecution};
pub use requests::*;

#[cfg(not(ntpool_emulated))]
mod ntoskrnl_deferred;
#[cfg(not(ntpool_emulated))]
pub use ntoskrnl_deferred::*;

#[cfg(not(ntpool_emulated))]
mod ntoskrnl;
#[cfg(not(ntpool_emulated))]
pub use ntoskrnl::*;

#[cfg(feature = "videoport")]
mod videoprt;
#[cfg(feature = "videoport")]
pub use videoprt::*;

#[cfg(feature = "videoport-types")]
mod video;
#[cfg(feature = "videoport-types")]
pub use video::*;

/// Whether a byte of a pool tag is shown as itself: printable ASCII, 0x20 to 0x7E. A valid tag has
/// only such bytes (ntpool's `PoolTag` checks it), and poolmon shows any other byte of a tag as `.`.
///
/// ```
/// assert!(ntpool_sys::tag_byte_is_printable(b' ') && ntpool_sys::tag_byte_is_printable(b'~'));
/// assert!(!ntpool_sys::tag_byte_is_printable(0) && !ntpool_sys::tag_byte_is_printable(0x7F));
/// ```
pub const fn tag_byte_is_printable(byte: u8) -> bool {
    matches!(byte, 0x20..=0x7E)
}

/// Whether a tag has a letter or a digit among its bytes: Driver Verifier stops with bug check 0xC2 /
/// 0x9D on an allocation whose tag has none (ntpool's `PoolTag` refuses such a tag).
///
/// ```
/// assert!(ntpool_sys::tag_has_letter_or_digit(u32::from_le_bytes(*b"--1-")));
/// assert!(!ntpool_sys::tag_has_letter_or_digit(u32::from_le_bytes(*b"----")));
/// ```
pub const fn tag_has_letter_or_digit(tag: ULONG) -> bool {
    let bytes = tag.to_le_bytes();
    let mut i = 0;
    while i < 4 {
        if bytes[i].is_ascii_alphanumeric() {
            return true;
        }
        i += 1;
    }
    false
}

/// A tag as poolmon shows it: its four bytes in memory order, each printable byte
/// ([`tag_byte_is_printable`]) as itself and any other as `.`.
///
/// ```
/// assert_eq!(ntpool_sys::tag_text(u32::from_le_bytes(*b"Doc1")), ['D', 'o', 'c', '1']);
/// assert_eq!(ntpool_sys::tag_text(u32::from_le_bytes(*b"ab\0\n")), ['a', 'b', '.', '.']);
/// ```
pub const fn tag_text(tag: ULONG) -> [char; 4] {
    let bytes = tag.to_le_bytes();
    let mut text = ['.'; 4];
    let mut i = 0;
    while i < 4 {
        if tag_byte_is_printable(bytes[i]) {
            text[i] = bytes[i] as char;
        }
        i += 1;
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_flags_map_to_the_legacy_pool_types() {
        assert_eq!(pool_type_for_flags(POOL_FLAG_PAGED), Some(PagedPool));
        assert_eq!(pool_type_for_flags(POOL_FLAG_NON_PAGED), Some(NonPagedPoolNx));
        assert_eq!(pool_type_for_flags(POOL_FLAG_NON_PAGED_EXECUTE), Some(NonPagedPool));
        assert_eq!(
            pool_type_for_flags(POOL_FLAG_NON_PAGED | POOL_FLAG_CACHE_ALIGNED | POOL_FLAG_UNINITIALIZED),
            Some(NonPagedPoolNxCacheAligned)
        );
        assert_eq!(pool_type_for_flags(POOL_FLAG_PAGED | POOL_FLAG_CACHE_ALIGNED), Some(PagedPoolCacheAligned));
        assert_eq!(pool_type_for_flags(POOL_FLAG_PAGED | POOL_FLAG_NON_PAGED), None);
        assert_eq!(pool_type_for_flags(POOL_FLAG_PAGED | POOL_FLAG_USE_QUOTA), None);
        assert_eq!(pool_type_for_flags(0), None);
    }

    #[test]
    fn legacy_pool_types_know_whether_they_are_paged() {
        assert!(pool_type_is_paged(PagedPool));
        assert!(pool_type_is_paged(PagedPoolCacheAligned));
        assert!(!pool_type_is_paged(NonPagedPoolNx));
        assert!(!pool_type_is_paged(NonPagedPoolNxCacheAligned));
        assert!(!pool_type_is_paged(NonPagedPoolCacheAligned));
    }
}

/// The crate README's example, compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
