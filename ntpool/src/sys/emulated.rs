//! The kernel interface on the emulated kernel: the same routines as `ntoskrnl.rs`, each one a call
//! into [`crate::emulated`], where the checks and the bookkeeping live.

use super::{KIRQL, KSPIN_LOCK, POOL_FLAGS, POOL_TYPE, PVOID, SIZE_T, ULONG};
use crate::emulated::kernel;

/// Whether allocations go to `ExAllocatePool2` (true) or to the `ExAllocatePoolWithTag` fallback
/// (false); on the emulated kernel, as configured with
/// [`KernelBuilder::ex_allocate_pool2`](crate::emulated::KernelBuilder::ex_allocate_pool2).
///
/// ```
/// use ntpool::emulated::Kernel;
/// assert!(Kernel::new().run(ntpool::sys::uses_ex_allocate_pool2));
/// let old_windows = Kernel::builder().ex_allocate_pool2(false).build();
/// assert!(!old_windows.run(ntpool::sys::uses_ex_allocate_pool2));
/// ```
pub fn uses_ex_allocate_pool2() -> bool {
    kernel::exports_ex_allocate_pool2()
}

/// `ExAllocatePool2`, or its fallback through `ExAllocatePoolWithTag` where the emulated kernel is
/// configured as a Windows version that lacks it.
///
/// # Safety
/// As for `ExAllocatePool2`. The emulated kernel checks the IRQL and the arguments and bug-checks
/// as Driver Verifier does.
///
/// ```
/// use ntpool::sys;
/// # ntpool::emulated::Kernel::new().run(|| {
/// let tag = u32::from_le_bytes(*b"Doc1");
/// // SAFETY: a plain allocation at PASSIVE_LEVEL, freed below with its tag.
/// let p = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_PAGED, 16, tag) };
/// assert!(!p.is_null());
/// // SAFETY: `p` points to 16 bytes that ExAllocatePool2 zeroed (no POOL_FLAG_UNINITIALIZED).
/// assert_eq!(unsafe { p.cast::<[u8; 16]>().read() }, [0; 16]);
/// // SAFETY: `p` came from ExAllocatePool2 with this tag and is not used afterwards.
/// unsafe { sys::ExFreePoolWithTag(p, tag) };
/// # });
/// ```
#[track_caller]
pub unsafe fn ExAllocatePool2(Flags: POOL_FLAGS, NumberOfBytes: SIZE_T, Tag: ULONG) -> PVOID {
    let site = core::panic::Location::caller();
    if kernel::exports_ex_allocate_pool2() {
        return kernel::allocate_pool2(Flags, NumberOfBytes, Tag, site);
    }
    // SAFETY: forwarded contract; the same fallback as on the real kernel.
    unsafe {
        super::allocate_pool2_with_legacy_routine(
            Flags,
            NumberOfBytes,
            Tag,
            |pool_type, size, tag| kernel::allocate_pool_with_tag(pool_type, size, tag, site),
            |pool_type, size, tag| kernel::allocate_pool_with_quota_tag(pool_type, size, tag, site),
        )
    }
}

/// `ExAllocatePoolWithTag`.
///
/// # Safety
/// As for `ExAllocatePoolWithTag`.
///
/// ```
/// use ntpool::emulated::Kernel;
/// use ntpool::sys;
/// let kernel = Kernel::new();
/// kernel.run(|| {
///     let tag = u32::from_le_bytes(*b"Doc1");
///     // SAFETY: a plain allocation at PASSIVE_LEVEL, freed below with its tag.
///     let p = unsafe { sys::ExAllocatePoolWithTag(sys::NonPagedPoolNx, 32, tag) };
///     assert!(!p.is_null());
///     assert_eq!(kernel.outstanding()[0].routine, "ExAllocatePoolWithTag");
///     // SAFETY: `p` came from ExAllocatePoolWithTag with this tag and is not used afterwards.
///     unsafe { sys::ExFreePoolWithTag(p, tag) };
/// });
/// assert!(kernel.verify_unload().is_ok());
/// ```
#[track_caller]
pub unsafe fn ExAllocatePoolWithTag(PoolType: POOL_TYPE, NumberOfBytes: SIZE_T, Tag: ULONG) -> PVOID {
    kernel::allocate_pool_with_tag(PoolType, NumberOfBytes, Tag, core::panic::Location::caller())
}

/// `ExFreePoolWithTag`.
///
/// # Safety
/// As for `ExFreePoolWithTag`. The emulated kernel bug-checks on a wrong tag, an unknown address,
/// a double free or a bad IRQL, and never touches memory it did not hand out.
///
/// ```
/// use ntpool::emulated::Kernel;
/// use ntpool::sys;
/// let kernel = Kernel::new();
/// kernel.run(|| {
///     let tag = u32::from_le_bytes(*b"Doc1");
///     // SAFETY: a plain allocation at PASSIVE_LEVEL, freed below with its tag.
///     let p = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_NON_PAGED, 8, tag) };
///     assert_eq!(kernel.outstanding().len(), 1);
///     // SAFETY: `p` came from ExAllocatePool2 with this tag and is not used afterwards.
///     unsafe { sys::ExFreePoolWithTag(p, tag) };
/// });
/// assert!(kernel.outstanding().is_empty());
/// assert_eq!(kernel.pool_usage().rows[0].frees, 1);
/// ```
pub unsafe fn ExFreePoolWithTag(P: PVOID, Tag: ULONG) {
    kernel::free_pool(P, Some(Tag));
}

/// `ExFreePool`.
///
/// # Safety
/// As for `ExFreePool`.
///
/// ```
/// use ntpool::emulated::Kernel;
/// use ntpool::sys;
/// let kernel = Kernel::new();
/// kernel.run(|| {
///     // SAFETY: a plain allocation at PASSIVE_LEVEL, freed below.
///     let p = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_NON_PAGED, 8, u32::from_le_bytes(*b"Doc1")) };
///     // SAFETY: `p` came from ExAllocatePool2, is not protected, and is not used afterwards.
///     unsafe { sys::ExFreePool(p) };
/// });
/// assert!(kernel.verify_unload().is_ok());
/// ```
pub unsafe fn ExFreePool(P: PVOID) {
    kernel::free_pool(P, None);
}

/// `KeGetCurrentIrql`: the calling thread's emulated IRQL.
///
/// ```
/// # ntpool::emulated::Kernel::new().run(|| {
/// assert_eq!(ntpool::sys::KeGetCurrentIrql(), ntpool::sys::PASSIVE_LEVEL);
/// # });
/// ```
pub fn KeGetCurrentIrql() -> KIRQL {
    kernel::current_irql()
}

/// `KfRaiseIrql`. Returns the previous IRQL.
///
/// # Safety
/// As for `KeRaiseIrql`.
///
/// ```
/// use ntpool::sys;
/// # ntpool::emulated::Kernel::new().run(|| {
/// // SAFETY: DISPATCH_LEVEL is above the current PASSIVE_LEVEL; lowered again below.
/// let old = unsafe { sys::KfRaiseIrql(sys::DISPATCH_LEVEL) };
/// assert_eq!((old, sys::KeGetCurrentIrql()), (sys::PASSIVE_LEVEL, sys::DISPATCH_LEVEL));
/// // SAFETY: back to what KfRaiseIrql returned.
/// unsafe { sys::KeLowerIrql(old) };
/// assert_eq!(sys::KeGetCurrentIrql(), sys::PASSIVE_LEVEL);
/// # });
/// ```
pub unsafe fn KfRaiseIrql(NewIrql: KIRQL) -> KIRQL {
    kernel::raise_irql(NewIrql)
}

/// `KeLowerIrql`.
///
/// # Safety
/// As for `KeLowerIrql`.
///
/// ```
/// use ntpool::emulated::catch_bug_check;
/// use ntpool::sys;
/// # ntpool::emulated::Kernel::new().run(|| {
/// // SAFETY: APC_LEVEL is above the current PASSIVE_LEVEL; lowered again below.
/// let old = unsafe { sys::KfRaiseIrql(sys::APC_LEVEL) };
/// // SAFETY: back to what KfRaiseIrql returned.
/// unsafe { sys::KeLowerIrql(old) };
/// assert_eq!(sys::KeGetCurrentIrql(), sys::PASSIVE_LEVEL);
///
/// // "Lowering" to a higher IRQL is a bug check: 0xC4 / 0x31 under Driver Verifier.
/// let bug_check = catch_bug_check(|| {
///     // SAFETY: a deliberate violation that the emulated kernel reports.
///     unsafe { sys::KeLowerIrql(sys::DISPATCH_LEVEL) }
/// })
/// .unwrap_err();
/// assert_eq!((bug_check.code, bug_check.parameters[0]), (sys::DRIVER_VERIFIER_DETECTED_VIOLATION, 0x31));
/// # });
/// ```
pub unsafe fn KeLowerIrql(NewIrql: KIRQL) {
    kernel::lower_irql(NewIrql);
}

/// `KeAcquireSpinLockRaiseToDpc`.
///
/// # Safety
/// `SpinLock` must point to an initialized spin lock that stays valid until released.
///
/// ```
/// use ntpool::sys::{self, KSPIN_LOCK};
/// # ntpool::emulated::Kernel::new().run(|| {
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
    unsafe { kernel::acquire_spin_lock(SpinLock, true) }
}

/// `KeReleaseSpinLock`.
///
/// # Safety
/// The lock must be held by this thread; `NewIrql` is what the acquire returned.
///
/// ```
/// use ntpool::sys::{self, KSPIN_LOCK};
/// # ntpool::emulated::Kernel::new().run(|| {
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
    unsafe { kernel::release_spin_lock(SpinLock, Some(NewIrql)) };
}

/// `KeAcquireSpinLockAtDpcLevel`.
///
/// # Safety
/// As for [`KeAcquireSpinLockRaiseToDpc`], and the IRQL must be `DISPATCH_LEVEL`.
///
/// ```
/// use ntpool::sys::{self, KSPIN_LOCK};
/// # ntpool::emulated::Kernel::new().run(|| {
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
    unsafe { kernel::acquire_spin_lock(SpinLock, false) };
}

/// `KeReleaseSpinLockFromDpcLevel`.
///
/// # Safety
/// The lock must be held by this thread, acquired at `DISPATCH_LEVEL`.
///
/// ```
/// use ntpool::sys::{self, KSPIN_LOCK};
/// # ntpool::emulated::Kernel::new().run(|| {
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
    unsafe { kernel::release_spin_lock(SpinLock, None) };
}

/// `KeBugCheckEx`: on the emulated kernel, a panic carrying a
/// [`BugCheck`](crate::emulated::BugCheck) that tests can catch and inspect.
///
/// # Safety
/// Always safe on the emulated kernel; `unsafe` to match the real routine.
///
/// ```
/// use ntpool::emulated::{catch_bug_check, Kernel};
/// use ntpool::sys;
/// let bug_check = Kernel::new()
///     .run(|| {
///         catch_bug_check(|| {
///             // SAFETY: always safe on the emulated kernel; the panic is caught.
///             unsafe { sys::KeBugCheckEx(sys::BAD_POOL_CALLER, 0x0A, 1, 2, 3) }
///         })
///     })
///     .unwrap_err();
/// assert_eq!(bug_check.code, sys::BAD_POOL_CALLER);
/// assert_eq!(bug_check.parameters, [0x0A, 1, 2, 3]);
/// assert_eq!(bug_check.name(), "BAD_POOL_CALLER");
/// ```
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

/// `KeInitializeEvent`: on the emulated kernel, events only serve fast mutexes, which do not wait on
/// them; the header is cleared.
///
/// # Safety
/// `Event` is valid for writes.
///
/// ```
/// let mut event = ntpool::sys::KEVENT { Header: [1; 3] };
/// // SAFETY: a valid event structure.
/// unsafe { ntpool::sys::KeInitializeEvent(&mut event, ntpool::sys::SynchronizationEvent, 0) };
/// assert_eq!(event.Header, [0; 3]);
/// ```
pub unsafe fn KeInitializeEvent(Event: *mut super::KEVENT, _Type: i32, _State: u8) {
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
/// # ntpool::emulated::Kernel::new().run(|| {
/// let mut mutex = core::mem::MaybeUninit::<ntpool::sys::FAST_MUTEX>::uninit();
/// // SAFETY: a fresh structure that stays put.
/// unsafe { ntpool::sys::ExInitializeFastMutex(mutex.as_mut_ptr()) };
/// // SAFETY: initialized, at PASSIVE_LEVEL.
/// unsafe { ntpool::sys::ExAcquireFastMutex(mutex.as_mut_ptr()) };
/// // SAFETY: held by this thread.
/// unsafe { ntpool::sys::ExReleaseFastMutex(mutex.as_mut_ptr()) };
/// assert_eq!(ntpool::sys::KeGetCurrentIrql(), 0);
/// # });
/// ```
pub unsafe fn ExAcquireFastMutex(FastMutex: *mut super::FAST_MUTEX) {
    // SAFETY: forwarded contract.
    unsafe { kernel::acquire_fast_mutex(FastMutex) };
}

/// `ExReleaseFastMutex`: releases and returns to the IRQL the acquire raised from.
///
/// # Safety
/// The calling thread holds `FastMutex`.
///
/// ```
/// # ntpool::emulated::Kernel::new().run(|| {
/// let mut mutex = core::mem::MaybeUninit::<ntpool::sys::FAST_MUTEX>::uninit();
/// // SAFETY: a fresh structure that stays put.
/// unsafe { ntpool::sys::ExInitializeFastMutex(mutex.as_mut_ptr()) };
/// // SAFETY: initialized, at PASSIVE_LEVEL.
/// unsafe { ntpool::sys::ExAcquireFastMutex(mutex.as_mut_ptr()) };
/// // SAFETY: held by this thread.
/// unsafe { ntpool::sys::ExReleaseFastMutex(mutex.as_mut_ptr()) };
/// # });
/// ```
pub unsafe fn ExReleaseFastMutex(FastMutex: *mut super::FAST_MUTEX) {
    // SAFETY: forwarded contract.
    unsafe { kernel::release_fast_mutex(FastMutex) };
}

/// `ExAllocatePoolWithQuotaTag`: as `ExAllocatePoolWithTag`, charged to the current process's pool
/// quota ([`in_process`](crate::emulated::in_process) picks the process). With
/// `POOL_QUOTA_FAIL_INSTEAD_OF_RAISE` in `PoolType` a failure returns NULL; without it the emulated
/// routine raises, which no Rust code catches: bug check 0x1E.
///
/// # Safety
/// As for `ExAllocatePoolWithQuotaTag`.
///
/// ```
/// use ntpool::emulated::Kernel;
/// use ntpool::sys;
/// let kernel = Kernel::new();
/// kernel.run(|| {
///     let tag = u32::from_le_bytes(*b"Doc1");
///     let pool_type = sys::PagedPool | sys::POOL_QUOTA_FAIL_INSTEAD_OF_RAISE;
///     // SAFETY: a plain allocation at PASSIVE_LEVEL, freed below with its tag.
///     let p = unsafe { sys::ExAllocatePoolWithQuotaTag(pool_type, 32, tag) };
///     assert_eq!(kernel.quota_charges()[0].paged, 32);
///     // SAFETY: `p` came from ExAllocatePoolWithQuotaTag with this tag and is not used afterwards.
///     unsafe { sys::ExFreePoolWithTag(p, tag) };
/// });
/// assert_eq!(kernel.quota_charges()[0].paged, 0);
/// ```
#[track_caller]
pub unsafe fn ExAllocatePoolWithQuotaTag(PoolType: POOL_TYPE, NumberOfBytes: SIZE_T, Tag: ULONG) -> PVOID {
    kernel::allocate_pool_with_quota_tag(PoolType, NumberOfBytes, Tag, core::panic::Location::caller())
}

/// `ExpInterlockedPopEntrySList`.
///
/// # Safety
/// `ListHead` is a valid, initialized `SLIST_HEADER`.
///
/// ```
/// use ntpool::sys::{self, SLIST_ENTRY, SLIST_HEADER};
/// let mut head = SLIST_HEADER { Alignment: 0, Region: 0 };
/// let mut entry = SLIST_ENTRY { Next: core::ptr::null_mut() };
/// // SAFETY: a valid header and a free, aligned entry that outlives its time on the list.
/// unsafe { sys::ExpInterlockedPushEntrySList(&mut head, &mut entry) };
/// // SAFETY: a valid header.
/// assert_eq!(unsafe { sys::ExQueryDepthSList(&mut head) }, 1);
/// // SAFETY: as above.
/// assert_eq!(unsafe { sys::ExpInterlockedPopEntrySList(&mut head) }, &raw mut entry);
/// ```
pub unsafe fn ExpInterlockedPopEntrySList(ListHead: *mut super::SLIST_HEADER) -> *mut super::SLIST_ENTRY {
    // SAFETY: forwarded contract.
    unsafe { crate::emulated::lookaside::pop_entry(ListHead) }
}

/// `ExpInterlockedPushEntrySList`. Returns the previous first entry.
///
/// # Safety
/// `ListHead` is a valid `SLIST_HEADER`; `ListEntry` is valid, 16-byte aligned and on no list.
///
/// ```
/// use ntpool::sys::{self, SLIST_ENTRY, SLIST_HEADER};
/// let mut head = SLIST_HEADER { Alignment: 0, Region: 0 };
/// let mut entry = SLIST_ENTRY { Next: core::ptr::null_mut() };
/// // SAFETY: a valid header and a free, aligned entry.
/// assert!(unsafe { sys::ExpInterlockedPushEntrySList(&mut head, &mut entry) }.is_null());
/// ```
pub unsafe fn ExpInterlockedPushEntrySList(
    ListHead: *mut super::SLIST_HEADER,
    ListEntry: *mut super::SLIST_ENTRY,
) -> *mut super::SLIST_ENTRY {
    // SAFETY: forwarded contract.
    unsafe { crate::emulated::lookaside::push_entry(ListHead, ListEntry) }
}

/// `ExQueryDepthSList`: the number of entries on the list.
///
/// # Safety
/// `ListHead` is a valid `SLIST_HEADER`.
///
/// ```
/// let mut head = ntpool::sys::SLIST_HEADER { Alignment: 0, Region: 0 };
/// // SAFETY: a valid header.
/// assert_eq!(unsafe { ntpool::sys::ExQueryDepthSList(&mut head) }, 0);
/// ```
pub unsafe fn ExQueryDepthSList(ListHead: *mut super::SLIST_HEADER) -> u16 {
    // SAFETY: forwarded contract.
    unsafe { crate::emulated::lookaside::depth(ListHead) }
}

/// Whether the kernel exports `ExInitializeLookasideListEx` and `ExDeleteLookasideListEx`; on the
/// emulated kernel, as configured with
/// [`KernelBuilder::lookaside_list_ex`](crate::emulated::KernelBuilder::lookaside_list_ex).
///
/// ```
/// use ntpool::emulated::Kernel;
/// assert!(Kernel::new().run(ntpool::sys::uses_lookaside_list_ex));
/// let wine = Kernel::builder().lookaside_list_ex(false).build();
/// assert!(!wine.run(ntpool::sys::uses_lookaside_list_ex));
/// ```
pub fn uses_lookaside_list_ex() -> bool {
    kernel::current().config.lookaside_list_ex
}

/// `STATUS_PROCEDURE_NOT_FOUND`.
const STATUS_PROCEDURE_NOT_FOUND: super::NTSTATUS = 0xC000_007A_u32 as i32;
/// `STATUS_INVALID_PARAMETER_4`.
const STATUS_INVALID_PARAMETER_4: super::NTSTATUS = 0xC000_00F2_u32 as i32;

/// `ExInitializeLookasideListEx`; `STATUS_PROCEDURE_NOT_FOUND` on a kernel configured without it,
/// `STATUS_INVALID_PARAMETER_4` for a pool type that is neither paged nor non-paged.
///
/// # Safety
/// As for `ExInitializeLookasideListEx`: `Lookaside` is valid, non-paged, 16-byte aligned, and stays
/// put until deleted.
///
/// ```
/// use ntpool::sys;
/// let kernel = ntpool::emulated::Kernel::new();
/// kernel.run(|| {
///     let mut list = core::mem::MaybeUninit::<sys::LOOKASIDE_LIST_EX>::uninit();
///     let tag = u32::from_le_bytes(*b"Doc1");
///     // SAFETY: a list that stays put until deleted below.
///     let status = unsafe {
///         sys::ExInitializeLookasideListEx(list.as_mut_ptr(), None, None, sys::NonPagedPoolNx, 0, 24, tag, 0)
///     };
///     assert_eq!(status, 0);
///     // SAFETY: initialized above, deleted once.
///     unsafe { sys::ExDeleteLookasideListEx(list.as_mut_ptr()) };
/// });
/// assert!(kernel.verify_unload().is_ok());
/// ```
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub unsafe fn ExInitializeLookasideListEx(
    Lookaside: *mut super::LOOKASIDE_LIST_EX,
    Allocate: super::PALLOCATE_FUNCTION_EX,
    Free: super::PFREE_FUNCTION_EX,
    PoolType: POOL_TYPE,
    _Flags: ULONG,
    Size: SIZE_T,
    Tag: ULONG,
    _Depth: u16,
) -> super::NTSTATUS {
    if !uses_lookaside_list_ex() {
        return STATUS_PROCEDURE_NOT_FOUND;
    }
    let base = PoolType & !(0x200 | 4);
    if !(0..=1).contains(&base) || PoolType & !(0x200 | 4 | 1) != 0 {
        return STATUS_INVALID_PARAMETER_4;
    }
    let site = core::panic::Location::caller();
    // SAFETY: forwarded contract.
    unsafe { crate::emulated::lookaside::initialize_ex(Lookaside.cast(), Allocate, Free, PoolType, Size, Tag, site) };
    0
}

/// `ExDeleteLookasideListEx`: frees the entries the list holds through its free callback.
///
/// # Safety
/// `Lookaside` was initialized with `ExInitializeLookasideListEx` and is deleted once; a second
/// delete is bug check 0x139 / 3 (a corrupted `LIST_ENTRY`), as on Windows.
///
/// ```
/// use ntpool::emulated::catch_bug_check;
/// use ntpool::sys;
/// # ntpool::emulated::Kernel::new().run(|| {
/// let mut list = core::mem::MaybeUninit::<sys::LOOKASIDE_LIST_EX>::uninit();
/// // SAFETY: a list that stays put until deleted below.
/// unsafe { sys::ExInitializeLookasideListEx(list.as_mut_ptr(), None, None, sys::PagedPool, 0, 16, 0x31636F44, 0) };
/// // SAFETY: initialized above.
/// unsafe { sys::ExDeleteLookasideListEx(list.as_mut_ptr()) };
/// // SAFETY: a deliberate second delete, which the emulated kernel reports.
/// let stop = catch_bug_check(|| unsafe { sys::ExDeleteLookasideListEx(list.as_mut_ptr()) }).unwrap_err();
/// assert_eq!((stop.code, stop.parameters[0]), (0x139, 3));
/// # });
/// ```
pub unsafe fn ExDeleteLookasideListEx(Lookaside: *mut super::LOOKASIDE_LIST_EX) {
    // SAFETY: forwarded contract.
    unsafe { crate::emulated::lookaside::delete(Lookaside.cast(), true) };
}

/// `ExInitializeNPagedLookasideList` (x64: a non-paged list, `Flags` or-ed into the pool type, for
/// example `POOL_NX_ALLOCATION`).
///
/// # Safety
/// `Lookaside` is valid, non-paged, aligned, and stays put until deleted.
///
/// ```
/// use ntpool::sys;
/// let kernel = ntpool::emulated::Kernel::new();
/// kernel.run(|| {
///     let mut list = core::mem::MaybeUninit::<sys::NPAGED_LOOKASIDE_LIST>::uninit();
///     // SAFETY: a list that stays put until deleted below.
///     unsafe { sys::ExInitializeNPagedLookasideList(list.as_mut_ptr(), None, None, 0x200, 32, 0x31636F44, 0) };
///     // SAFETY: initialized above, deleted once.
///     unsafe { sys::ExDeleteNPagedLookasideList(list.as_mut_ptr()) };
/// });
/// assert!(kernel.verify_unload().is_ok());
/// ```
#[track_caller]
pub unsafe fn ExInitializeNPagedLookasideList(
    Lookaside: *mut super::NPAGED_LOOKASIDE_LIST,
    Allocate: super::PALLOCATE_FUNCTION,
    Free: super::PFREE_FUNCTION,
    Flags: ULONG,
    Size: SIZE_T,
    Tag: ULONG,
    _Depth: u16,
) {
    let site = core::panic::Location::caller();
    let pool_type = super::NonPagedPool | Flags as POOL_TYPE;
    // SAFETY: forwarded contract.
    unsafe {
        crate::emulated::lookaside::initialize_legacy(
            Lookaside.cast(),
            "ExInitializeNPagedLookasideList",
            Allocate,
            Free,
            pool_type,
            Size,
            Tag,
            site,
        )
    };
}

/// `ExDeleteNPagedLookasideList`.
///
/// # Safety
/// As for [`ExDeleteLookasideListEx`], for a list of `ExInitializeNPagedLookasideList`.
///
/// ```
/// // See `ExInitializeNPagedLookasideList`.
/// let _ = ntpool::sys::ExDeleteNPagedLookasideList;
/// ```
pub unsafe fn ExDeleteNPagedLookasideList(Lookaside: *mut super::NPAGED_LOOKASIDE_LIST) {
    // SAFETY: forwarded contract.
    unsafe { crate::emulated::lookaside::delete(Lookaside.cast(), false) };
}

/// `ExInitializePagedLookasideList`.
///
/// # Safety
/// `Lookaside` is valid, non-paged, aligned, and stays put until deleted.
///
/// ```
/// use ntpool::sys;
/// let kernel = ntpool::emulated::Kernel::new();
/// kernel.run(|| {
///     let mut list = core::mem::MaybeUninit::<sys::PAGED_LOOKASIDE_LIST>::uninit();
///     // SAFETY: a list that stays put until deleted below.
///     unsafe { sys::ExInitializePagedLookasideList(list.as_mut_ptr(), None, None, 0, 32, 0x31636F44, 0) };
///     // SAFETY: initialized above, deleted once.
///     unsafe { sys::ExDeletePagedLookasideList(list.as_mut_ptr()) };
/// });
/// assert!(kernel.verify_unload().is_ok());
/// ```
#[track_caller]
pub unsafe fn ExInitializePagedLookasideList(
    Lookaside: *mut super::PAGED_LOOKASIDE_LIST,
    Allocate: super::PALLOCATE_FUNCTION,
    Free: super::PFREE_FUNCTION,
    Flags: ULONG,
    Size: SIZE_T,
    Tag: ULONG,
    _Depth: u16,
) {
    let site = core::panic::Location::caller();
    let pool_type = super::PagedPool | Flags as POOL_TYPE;
    // SAFETY: forwarded contract.
    unsafe {
        crate::emulated::lookaside::initialize_legacy(
            Lookaside.cast(),
            "ExInitializePagedLookasideList",
            Allocate,
            Free,
            pool_type,
            Size,
            Tag,
            site,
        )
    };
}

/// `ExDeletePagedLookasideList`.
///
/// # Safety
/// As for [`ExDeleteLookasideListEx`], for a list of `ExInitializePagedLookasideList`.
///
/// ```
/// // See `ExInitializePagedLookasideList`.
/// let _ = ntpool::sys::ExDeletePagedLookasideList;
/// ```
pub unsafe fn ExDeletePagedLookasideList(Lookaside: *mut super::PAGED_LOOKASIDE_LIST) {
    // SAFETY: forwarded contract.
    unsafe { crate::emulated::lookaside::delete(Lookaside.cast(), false) };
}
