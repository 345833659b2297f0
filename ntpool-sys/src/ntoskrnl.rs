//! The real kernel: imports from `ntoskrnl.exe` (the pool's, and the I/O manager's and the run-time
//! library's that the sample drivers call), plus the IRQL routines: on x64 the WDK headers inline them
//! as reads and writes of CR8, which ntpool does too; ARM64 has no such register, and `wdm.h` declares
//! them there as routines the kernel exports (`KeGetCurrentIrql`, `KfRaiseIrql`, and `KfLowerIrql`,
//! which its `KeLowerIrql` macro calls), which ntpool imports.
//!
//! Imports are declared `raw-dylib`, so no import library is needed to link the driver, and
//! `+verbatim` so that the import names `ntoskrnl.exe` itself. `ExAllocatePool2` and `ExAllocatePool3`
//! are deliberately *not* imported: Windows before 10 version 2004 does not export them, and a driver
//! that imports them fails to load there. They are resolved with `MmGetSystemRoutineAddress` instead;
//! `ExAllocatePoolWithTag` stands in for `ExAllocatePool2` where it is missing, and `ExAllocatePool2`
//! (without the extended parameters) for `ExAllocatePool3`.

use core::sync::atomic::{AtomicUsize, Ordering};

use super::{
    ACCESS_MASK, BOOLEAN, CCHAR, DEVICE_TYPE, DRIVER_OBJECT, GUID, HANDLE, KIRQL, KPROCESSOR_MODE, KSPIN_LOCK,
    NTSTATUS, PASSIVE_LEVEL, PDEVICE_OBJECT, PIRP, POOL_EXTENDED_PARAMETER, POOL_FLAGS, POOL_TYPE, PVOID,
    SECURITY_INFORMATION, SIZE_T, ULONG, UNICODE_STRING, UnicodeLiteral, routine_names,
};

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("ntpool's real-kernel backend supports x86_64 and aarch64 Windows drivers only");

#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "system" {
    /// `ExAllocatePoolWithTag`: the allocator of every Windows version, used where
    /// `ExAllocatePool2` is not exported. It does not zero the block.
    pub fn ExAllocatePoolWithTag(PoolType: POOL_TYPE, NumberOfBytes: SIZE_T, Tag: ULONG) -> PVOID;
    /// `ExFreePoolWithTag`.
    pub fn ExFreePoolWithTag(P: PVOID, Tag: ULONG);
    /// `ExFreePool`.
    pub fn ExFreePool(P: PVOID);
    /// `KeAcquireSpinLockRaiseToDpc`.
    pub fn KeAcquireSpinLockRaiseToDpc(SpinLock: *mut KSPIN_LOCK) -> KIRQL;
    /// `KeReleaseSpinLock`.
    pub fn KeReleaseSpinLock(SpinLock: *mut KSPIN_LOCK, NewIrql: KIRQL);
    /// `KeAcquireSpinLockAtDpcLevel`.
    pub fn KeAcquireSpinLockAtDpcLevel(SpinLock: *mut KSPIN_LOCK);
    /// `KeReleaseSpinLockFromDpcLevel`.
    pub fn KeReleaseSpinLockFromDpcLevel(SpinLock: *mut KSPIN_LOCK);
    /// `KeInitializeEvent`.
    pub fn KeInitializeEvent(Event: *mut super::KEVENT, Type: i32, State: u8);
    /// `ExAcquireFastMutex`: raises to `APC_LEVEL` and acquires.
    pub fn ExAcquireFastMutex(FastMutex: *mut super::FAST_MUTEX);
    /// `ExReleaseFastMutex`: releases and restores the IRQL.
    pub fn ExReleaseFastMutex(FastMutex: *mut super::FAST_MUTEX);
    /// `KeBugCheckEx`.
    pub fn KeBugCheckEx(
        BugCheckCode: ULONG,
        BugCheckParameter1: usize,
        BugCheckParameter2: usize,
        BugCheckParameter3: usize,
        BugCheckParameter4: usize,
    ) -> !;
    fn MmGetSystemRoutineAddress(SystemRoutineName: *const UNICODE_STRING) -> PVOID;
    /// `ExAllocatePoolWithQuotaTag`: charges the current process. ntpool always passes
    /// `POOL_QUOTA_FAIL_INSTEAD_OF_RAISE`.
    pub fn ExAllocatePoolWithQuotaTag(PoolType: POOL_TYPE, NumberOfBytes: SIZE_T, Tag: ULONG) -> PVOID;
    /// `ExpInterlockedPopEntrySList` (`InterlockedPopEntrySList` on x64).
    pub fn ExpInterlockedPopEntrySList(ListHead: *mut super::SLIST_HEADER) -> *mut super::SLIST_ENTRY;
    /// `ExpInterlockedPushEntrySList` (`InterlockedPushEntrySList` on x64).
    pub fn ExpInterlockedPushEntrySList(
        ListHead: *mut super::SLIST_HEADER,
        ListEntry: *mut super::SLIST_ENTRY,
    ) -> *mut super::SLIST_ENTRY;
    /// `ExQueryDepthSList`.
    pub fn ExQueryDepthSList(ListHead: *mut super::SLIST_HEADER) -> u16;
    /// `ExInitializeNPagedLookasideList`.
    pub fn ExInitializeNPagedLookasideList(
        Lookaside: *mut super::NPAGED_LOOKASIDE_LIST,
        Allocate: super::PALLOCATE_FUNCTION,
        Free: super::PFREE_FUNCTION,
        Flags: ULONG,
        Size: SIZE_T,
        Tag: ULONG,
        Depth: u16,
    );
    /// `ExDeleteNPagedLookasideList`.
    pub fn ExDeleteNPagedLookasideList(Lookaside: *mut super::NPAGED_LOOKASIDE_LIST);
    /// `ExInitializePagedLookasideList`.
    pub fn ExInitializePagedLookasideList(
        Lookaside: *mut super::PAGED_LOOKASIDE_LIST,
        Allocate: super::PALLOCATE_FUNCTION,
        Free: super::PFREE_FUNCTION,
        Flags: ULONG,
        Size: SIZE_T,
        Tag: ULONG,
        Depth: u16,
    );
    /// `ExDeletePagedLookasideList`.
    pub fn ExDeletePagedLookasideList(Lookaside: *mut super::PAGED_LOOKASIDE_LIST);
    /// `IoCreateDevice`.
    pub fn IoCreateDevice(
        DriverObject: *mut DRIVER_OBJECT,
        DeviceExtensionSize: ULONG,
        DeviceName: *mut UNICODE_STRING,
        DeviceType: DEVICE_TYPE,
        DeviceCharacteristics: ULONG,
        Exclusive: BOOLEAN,
        DeviceObject: *mut PDEVICE_OBJECT,
    ) -> NTSTATUS;
    /// `IoDeleteDevice`.
    pub fn IoDeleteDevice(DeviceObject: PDEVICE_OBJECT);
    /// `IoCreateSymbolicLink`.
    pub fn IoCreateSymbolicLink(SymbolicLinkName: *mut UNICODE_STRING, DeviceName: *mut UNICODE_STRING) -> NTSTATUS;
    /// `IoDeleteSymbolicLink`.
    pub fn IoDeleteSymbolicLink(SymbolicLinkName: *mut UNICODE_STRING) -> NTSTATUS;
    /// `IofCompleteRequest`.
    pub fn IofCompleteRequest(Irp: PIRP, PriorityBoost: CCHAR);
    /// `RtlCreateSecurityDescriptor`.
    pub fn RtlCreateSecurityDescriptor(SecurityDescriptor: PVOID, Revision: ULONG) -> NTSTATUS;
    /// `RtlCreateAcl`.
    pub fn RtlCreateAcl(Acl: PVOID, AclLength: ULONG, AclRevision: ULONG) -> NTSTATUS;
    /// `RtlAddAccessAllowedAce`.
    pub fn RtlAddAccessAllowedAce(Acl: PVOID, AceRevision: ULONG, AccessMask: ACCESS_MASK, Sid: PVOID) -> NTSTATUS;
    /// `RtlSetDaclSecurityDescriptor`.
    pub fn RtlSetDaclSecurityDescriptor(
        SecurityDescriptor: PVOID,
        DaclPresent: BOOLEAN,
        Dacl: PVOID,
        DaclDefaulted: BOOLEAN,
    ) -> NTSTATUS;
    /// `ObOpenObjectByPointer`.
    pub fn ObOpenObjectByPointer(
        Object: PVOID,
        HandleAttributes: ULONG,
        PassedAccessState: PVOID,
        DesiredAccess: ACCESS_MASK,
        ObjectType: PVOID,
        AccessMode: KPROCESSOR_MODE,
        Handle: *mut HANDLE,
    ) -> NTSTATUS;
    /// `ZwSetSecurityObject`.
    pub fn ZwSetSecurityObject(
        Handle: HANDLE,
        SecurityInformation: SECURITY_INFORMATION,
        SecurityDescriptor: PVOID,
    ) -> NTSTATUS;
    /// `ZwClose`.
    pub fn ZwClose(Handle: HANDLE) -> NTSTATUS;
    /// `IoGetDeviceInterfaces`.
    pub fn IoGetDeviceInterfaces(
        InterfaceClassGuid: *const GUID,
        PhysicalDeviceObject: PDEVICE_OBJECT,
        Flags: ULONG,
        SymbolicLinkList: *mut *mut u16,
    ) -> NTSTATUS;
}

#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "C" {
    /// `DbgPrint` (variadic, C calling convention): prints `Format` with its arguments to the kernel
    /// debugger.
    ///
    /// ```
    /// #[cfg(windows)]
    /// // SAFETY: a NUL-terminated format that consumes one NUL-terminated string.
    /// unsafe { ntpool_sys::DbgPrint(c"%s".as_ptr().cast(), c"hello\n".as_ptr()) };
    /// ```
    pub fn DbgPrint(Format: *const u8, ...) -> u32;
}

type ExInitializeLookasideListExFn = unsafe extern "system" fn(
    *mut super::LOOKASIDE_LIST_EX,
    super::PALLOCATE_FUNCTION_EX,
    super::PFREE_FUNCTION_EX,
    POOL_TYPE,
    ULONG,
    SIZE_T,
    ULONG,
    u16,
) -> NTSTATUS;
type ExDeleteLookasideListExFn = unsafe extern "system" fn(*mut super::LOOKASIDE_LIST_EX);

/// `STATUS_PROCEDURE_NOT_FOUND`.
const STATUS_PROCEDURE_NOT_FOUND: NTSTATUS = 0xC000_007A_u32 as i32;

/// Whether the running kernel exports `ExInitializeLookasideListEx` and `ExDeleteLookasideListEx`
/// (Vista and later; not Wine). Resolves them if that has not happened yet and the IRQL allows it.
pub fn uses_lookaside_list_ex() -> bool {
    resolve(&EX_INITIALIZE_LOOKASIDE_LIST_EX, routine_names::EX_INITIALIZE_LOOKASIDE_LIST_EX).is_some()
        && resolve(&EX_DELETE_LOOKASIDE_LIST_EX, routine_names::EX_DELETE_LOOKASIDE_LIST_EX).is_some()
}

/// `ExInitializeLookasideListEx`, resolved at run time; `STATUS_PROCEDURE_NOT_FOUND` where the kernel
/// does not export it (see [`uses_lookaside_list_ex`]).
///
/// # Safety
/// As for `ExInitializeLookasideListEx`: `Lookaside` is non-paged, 16-byte aligned, and stays put
/// until deleted.
#[allow(clippy::too_many_arguments)]
pub unsafe fn ExInitializeLookasideListEx(
    Lookaside: *mut super::LOOKASIDE_LIST_EX,
    Allocate: super::PALLOCATE_FUNCTION_EX,
    Free: super::PFREE_FUNCTION_EX,
    PoolType: POOL_TYPE,
    Flags: ULONG,
    Size: SIZE_T,
    Tag: ULONG,
    Depth: u16,
) -> NTSTATUS {
    // The delete routine is looked up here too (at the initialization's IRQL, which
    // `MmGetSystemRoutineAddress` needs to be PASSIVE_LEVEL), so that a list is never initialized
    // that `ExDeleteLookasideListEx` could not delete later, at any IRQL.
    let delete = resolve(&EX_DELETE_LOOKASIDE_LIST_EX, routine_names::EX_DELETE_LOOKASIDE_LIST_EX);
    let initialize = resolve(&EX_INITIALIZE_LOOKASIDE_LIST_EX, routine_names::EX_INITIALIZE_LOOKASIDE_LIST_EX);
    let (Some(address), Some(_)) = (initialize, delete) else {
        return STATUS_PROCEDURE_NOT_FOUND;
    };
    // SAFETY: the address MmGetSystemRoutineAddress returned for this routine, with its signature.
    let routine = unsafe { core::mem::transmute::<usize, ExInitializeLookasideListExFn>(address) };
    // SAFETY: the caller upholds the routine's contract.
    unsafe { routine(Lookaside, Allocate, Free, PoolType, Flags, Size, Tag, Depth) }
}

/// `ExDeleteLookasideListEx`, resolved at run time by [`ExInitializeLookasideListEx`], which
/// initializes no list unless both routines are there (so nothing is left to do where it is absent).
///
/// # Safety
/// As for `ExDeleteLookasideListEx`: an initialized list, deleted once.
pub unsafe fn ExDeleteLookasideListEx(Lookaside: *mut super::LOOKASIDE_LIST_EX) {
    if let Some(address) = resolve(&EX_DELETE_LOOKASIDE_LIST_EX, routine_names::EX_DELETE_LOOKASIDE_LIST_EX) {
        // SAFETY: the address MmGetSystemRoutineAddress returned for this routine, with its signature.
        let routine = unsafe { core::mem::transmute::<usize, ExDeleteLookasideListExFn>(address) };
        // SAFETY: the caller upholds the routine's contract.
        unsafe { routine(Lookaside) }
    }
}

type ExAllocatePool2Fn = unsafe extern "system" fn(POOL_FLAGS, SIZE_T, ULONG) -> PVOID;

/// The state of a run-time lookup: [`UNRESOLVED`], [`ABSENT`], or the routine's address.
const UNRESOLVED: usize = 0;
const ABSENT: usize = 1;

/// `ExAllocatePool2`, looked up at run time.
static EX_ALLOCATE_POOL2: AtomicUsize = AtomicUsize::new(UNRESOLVED);
/// `ExAllocatePool3`, looked up at run time.
static EX_ALLOCATE_POOL3: AtomicUsize = AtomicUsize::new(UNRESOLVED);
/// `ExInitializeLookasideListEx` and `ExDeleteLookasideListEx` (Vista), looked up at run time: a kernel
/// that lacks them (Wine) gets the `NPAGED_LOOKASIDE_LIST` / `PAGED_LOOKASIDE_LIST` routines instead.
static EX_INITIALIZE_LOOKASIDE_LIST_EX: AtomicUsize = AtomicUsize::new(UNRESOLVED);
static EX_DELETE_LOOKASIDE_LIST_EX: AtomicUsize = AtomicUsize::new(UNRESOLVED);

/// Looks a routine up once, at `PASSIVE_LEVEL` as `MmGetSystemRoutineAddress` requires, and caches
/// the answer in `cache`. Until a lookup at `PASSIVE_LEVEL` has happened, callers get `None`.
fn resolve(cache: &AtomicUsize, name: UnicodeLiteral) -> Option<usize> {
    let mut address = cache.load(Ordering::Acquire);
    if address == UNRESOLVED {
        if KeGetCurrentIrql() != PASSIVE_LEVEL {
            return None;
        }
        let name = super::unicode(name);
        // SAFETY: `name` is a valid UNICODE_STRING for the duration of the call, and the current
        // IRQL is PASSIVE_LEVEL (checked above).
        let routine = unsafe { MmGetSystemRoutineAddress(&name) };
        address = if routine.is_null() { ABSENT } else { routine as usize };
        cache.store(address, Ordering::Release);
    }
    (address != ABSENT).then_some(address)
}

/// `ExAllocatePool2`, where the running kernel exports it.
fn ex_allocate_pool2() -> Option<ExAllocatePool2Fn> {
    let address = resolve(&EX_ALLOCATE_POOL2, routine_names::EX_ALLOCATE_POOL2)?;
    // SAFETY: `address` is what MmGetSystemRoutineAddress returned for "ExAllocatePool2", whose
    // signature is `PVOID ExAllocatePool2(POOL_FLAGS, SIZE_T, ULONG)` with the system ABI.
    Some(unsafe { core::mem::transmute::<usize, ExAllocatePool2Fn>(address) })
}

/// Whether allocations go to `ExAllocatePool2` (true) or to the `ExAllocatePoolWithTag` fallback
/// (false). Resolves the routine if that has not happened yet and the IRQL allows it.
pub fn uses_ex_allocate_pool2() -> bool {
    ex_allocate_pool2().is_some()
}

/// `ExAllocatePool2` where the running kernel exports it; elsewhere the same contract implemented
/// with `ExAllocatePoolWithTag` and the matching `POOL_TYPE`: the block is zeroed unless
/// `POOL_FLAG_UNINITIALIZED` is set, and flags the legacy routine cannot express fail with NULL.
///
/// # Safety
/// As for `ExAllocatePool2`: the IRQL must allow the requested pool.
pub unsafe fn ExAllocatePool2(Flags: POOL_FLAGS, NumberOfBytes: SIZE_T, Tag: ULONG) -> PVOID {
    if let Some(routine) = ex_allocate_pool2() {
        // SAFETY: the caller upholds ExAllocatePool2's contract.
        return unsafe { routine(Flags, NumberOfBytes, Tag) };
    }
    let allocate_with_tag = |pool_type, size, tag| {
        // SAFETY: the caller upholds ExAllocatePool2's IRQL contract, which is the legacy routine's.
        unsafe { ExAllocatePoolWithTag(pool_type, size, tag) }
    };
    let allocate_with_quota_tag = |pool_type, size, tag| {
        // SAFETY: as above; the pool type carries POOL_QUOTA_FAIL_INSTEAD_OF_RAISE, so the routine
        // returns NULL instead of raising.
        unsafe { ExAllocatePoolWithQuotaTag(pool_type, size, tag) }
    };
    // SAFETY: the caller upholds ExAllocatePool2's contract.
    unsafe {
        super::allocate_pool2_with_legacy_routine(Flags, NumberOfBytes, Tag, allocate_with_tag, allocate_with_quota_tag)
    }
}

type ExAllocatePool3Fn =
    unsafe extern "system" fn(POOL_FLAGS, SIZE_T, ULONG, *const POOL_EXTENDED_PARAMETER, ULONG) -> PVOID;

/// `ExAllocatePool3`, where the running kernel exports it.
fn ex_allocate_pool3() -> Option<ExAllocatePool3Fn> {
    let address = resolve(&EX_ALLOCATE_POOL3, routine_names::EX_ALLOCATE_POOL3)?;
    // SAFETY: `address` is what MmGetSystemRoutineAddress returned for "ExAllocatePool3", whose
    // signature is `PVOID ExAllocatePool3(POOL_FLAGS, SIZE_T, ULONG, PCPOOL_EXTENDED_PARAMETER,
    // ULONG)` with the system ABI.
    Some(unsafe { core::mem::transmute::<usize, ExAllocatePool3Fn>(address) })
}

/// Whether [`ExAllocatePool3`] goes to the kernel's `ExAllocatePool3` (true) or to [`ExAllocatePool2`]
/// without the extended parameters (false). Resolves the routine if that has not happened yet and the
/// IRQL allows it.
pub fn uses_ex_allocate_pool3() -> bool {
    ex_allocate_pool3().is_some()
}

/// `ExAllocatePool3` where the running kernel exports it (Windows 10 version 2004 and later);
/// elsewhere [`ExAllocatePool2`] without the parameters when they can be dropped (priorities and NUMA
/// nodes, see [`pool3_fallback_allowed`](crate::pool3_fallback_allowed) for what is lost), else NULL.
///
/// # Safety
/// As for `ExAllocatePool3`: the IRQL must allow the requested pool; `ExtendedParameters` points to
/// `ExtendedParametersCount` parameters.
pub unsafe fn ExAllocatePool3(
    Flags: POOL_FLAGS,
    NumberOfBytes: SIZE_T,
    Tag: ULONG,
    ExtendedParameters: *const POOL_EXTENDED_PARAMETER,
    ExtendedParametersCount: ULONG,
) -> PVOID {
    if let Some(routine) = ex_allocate_pool3() {
        // SAFETY: the caller upholds ExAllocatePool3's contract.
        return unsafe { routine(Flags, NumberOfBytes, Tag, ExtendedParameters, ExtendedParametersCount) };
    }
    let allocate_pool2 = || {
        // SAFETY: the caller upholds ExAllocatePool3's contract, which includes ExAllocatePool2's.
        unsafe { ExAllocatePool2(Flags, NumberOfBytes, Tag) }
    };
    // SAFETY: the caller passes `ExtendedParametersCount` readable parameters.
    unsafe { super::allocate_pool3_with_pool2(ExtendedParameters, ExtendedParametersCount, allocate_pool2) }
}

/// `KeGetCurrentIrql`: on x64, a read of CR8.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn KeGetCurrentIrql() -> KIRQL {
    let irql: u64;
    // SAFETY: reading CR8 is allowed in kernel mode and has no side effects.
    unsafe {
        core::arch::asm!("mov {}, cr8", out(reg) irql, options(nomem, nostack, preserves_flags));
    }
    irql as KIRQL
}

/// `KfRaiseIrql`: on x64, a write of CR8. Returns the previous IRQL.
///
/// # Safety
/// `NewIrql` must not be below the current IRQL, and the caller must lower it again.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub unsafe fn KfRaiseIrql(NewIrql: KIRQL) -> KIRQL {
    let old = KeGetCurrentIrql();
    // SAFETY: the caller raises (never lowers) and restores the IRQL later. No `nomem`: memory
    // accesses must not be moved across an IRQL change.
    unsafe {
        core::arch::asm!("mov cr8, {}", in(reg) NewIrql as u64, options(nostack, preserves_flags));
    }
    old
}

/// `KeLowerIrql`: on x64, a write of CR8.
///
/// # Safety
/// `NewIrql` must be the value a matching raise returned.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub unsafe fn KeLowerIrql(NewIrql: KIRQL) {
    // SAFETY: the caller restores an IRQL saved by a matching raise. No `nomem`, as above.
    unsafe {
        core::arch::asm!("mov cr8, {}", in(reg) NewIrql as u64, options(nostack, preserves_flags));
    }
}

/// The IRQL routines ARM64's `wdm.h` declares as exported (`NTHALAPI`; the kernel itself exports them,
/// the HAL being part of it), imported under their own names.
#[cfg(target_arch = "aarch64")]
mod arm64_irql {
    use crate::KIRQL;

    #[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
    unsafe extern "system" {
        pub(super) fn KeGetCurrentIrql() -> KIRQL;
        pub(super) fn KfRaiseIrql(NewIrql: KIRQL) -> KIRQL;
        pub(super) fn KfLowerIrql(NewIrql: KIRQL);
    }
}

/// `KeGetCurrentIrql`: on ARM64, the kernel's exported routine.
#[cfg(target_arch = "aarch64")]
#[inline(always)]
pub fn KeGetCurrentIrql() -> KIRQL {
    // SAFETY: callable at any IRQL, no arguments, no side effects.
    unsafe { arm64_irql::KeGetCurrentIrql() }
}

/// `KfRaiseIrql`: on ARM64, the kernel's exported routine. Returns the previous IRQL.
///
/// # Safety
/// `NewIrql` must not be below the current IRQL, and the caller must lower it again.
#[cfg(target_arch = "aarch64")]
#[inline(always)]
pub unsafe fn KfRaiseIrql(NewIrql: KIRQL) -> KIRQL {
    // SAFETY: the caller raises (never lowers) and restores the IRQL later.
    unsafe { arm64_irql::KfRaiseIrql(NewIrql) }
}

/// `KeLowerIrql`: on ARM64, `wdm.h`'s macro for the kernel's exported `KfLowerIrql`.
///
/// # Safety
/// `NewIrql` must be the value a matching raise returned.
#[cfg(target_arch = "aarch64")]
#[inline(always)]
pub unsafe fn KeLowerIrql(NewIrql: KIRQL) {
    // SAFETY: the caller restores an IRQL saved by a matching raise.
    unsafe { arm64_irql::KfLowerIrql(NewIrql) }
}
