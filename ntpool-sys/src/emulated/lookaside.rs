//! Lookaside lists and interlocked singly linked lists (`SLIST`) on the emulated kernel.
//!
//! The routines fill in the list structures as Windows does (depth 4 to start with, at most 256,
//! the callbacks, type, tag and size), keep a record of every list initialized and not deleted (for
//! the unload check: bug check 0xC7 with Driver Verifier, 0xCE without), and free the entries a list
//! still holds through its free callback when it is deleted. Driver Verifier checks each call
//! ([`checks`](super::checks)): a live list initialized again (0xC4 / 0xCA), a list deleted that is
//! not initialized (0xC4 / 0xCB), entries smaller than an `SLIST_ENTRY` (0xC4 / 0xCD); a free of
//! the pool block that holds a live list is 0xC4 / 0xCC ([`free`](super::free)). Without it, a second
//! initialization goes unnoticed, small entries are rounded up, and deleting a list twice (or one
//! never initialized) unlinks a `LIST_ENTRY` that is not in the kernel's list: Windows' list
//! integrity check stops with bug check 0x139 (`KERNEL_SECURITY_CHECK_FAILURE`), parameter 1 = 3
//! (`FAST_FAIL_CORRUPT_LIST_ENTRY`).

#![allow(non_snake_case)]

use std::panic::Location;
use std::sync::Mutex;

use super::checks;
use super::pool;
use super::reports::ListRecord;
use super::state::current;
use crate::{
    GENERAL_LOOKASIDE_POOL, LOOKASIDE_ALLOCATE, LOOKASIDE_FREE, PALLOCATE_FUNCTION, PALLOCATE_FUNCTION_EX,
    PFREE_FUNCTION, PFREE_FUNCTION_EX, POOL_TYPE, PVOID, SIZE_T, SLIST_ENTRY, SLIST_HEADER, ULONG,
};

/// The smallest entry a lookaside list takes: an `SLIST_ENTRY` (16 bytes on x64), which a free
/// entry holds.
const MINIMUM_BLOCK_SIZE: usize = size_of::<SLIST_ENTRY>();
/// `FAST_FAIL_CORRUPT_LIST_ENTRY`: parameter 1 of bug check 0x139 for a corrupted `LIST_ENTRY`.
pub(crate) const FAST_FAIL_CORRUPT_LIST_ENTRY: u64 = 3;
/// `ExMinimumLookasideDepth`: the depth a new list starts with.
const MINIMUM_DEPTH: u16 = 4;
/// The most entries a list ever keeps (`MAXIMUM_LOOKASIDE_DEPTH`).
const MAXIMUM_DEPTH: u16 = 256;

/// Every `SLIST` operation of every emulated kernel is serialized by this lock (the real kernel
/// uses a 128-bit compare-exchange).
static SLIST_LOCK: Mutex<()> = Mutex::new(());

fn slist_lock() -> std::sync::MutexGuard<'static, ()> {
    SLIST_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The emulated header encoding: `Alignment` holds the depth in bits 0-15 (as on x64) and a
/// sequence number above; `Region` holds the first entry.
///
/// # Safety
/// `head` is a valid `SLIST_HEADER`, and the caller holds [`SLIST_LOCK`].
unsafe fn push(head: *mut SLIST_HEADER, entry: *mut SLIST_ENTRY) -> *mut SLIST_ENTRY {
    // SAFETY: the caller guarantees the header is valid and serialized.
    let header = unsafe { &mut *head };
    let first = header.Region as *mut SLIST_ENTRY;
    // SAFETY: the entry is valid for writes (the caller's contract of ExpInterlockedPushEntrySList).
    unsafe { (*entry).Next = first };
    header.Region = entry as u64;
    let depth = (header.Alignment & 0xFFFF).wrapping_add(1) & 0xFFFF;
    let sequence = (header.Alignment >> 16).wrapping_add(1) << 16;
    header.Alignment = sequence | depth;
    first
}

/// # Safety
/// As for [`push`].
unsafe fn pop(head: *mut SLIST_HEADER) -> *mut SLIST_ENTRY {
    // SAFETY: the caller guarantees the header is valid and serialized.
    let header = unsafe { &mut *head };
    let first = header.Region as *mut SLIST_ENTRY;
    if first.is_null() {
        return first;
    }
    // SAFETY: entries on the list are valid until popped.
    header.Region = unsafe { (*first).Next } as u64;
    let depth = (header.Alignment & 0xFFFF).wrapping_sub(1) & 0xFFFF;
    let sequence = (header.Alignment >> 16).wrapping_add(1) << 16;
    header.Alignment = sequence | depth;
    first
}

/// # Safety
/// `head` is a valid `SLIST_HEADER`; `entry` is valid for writes, 16-byte aligned, and not on a list.
pub(crate) unsafe fn push_entry(head: *mut SLIST_HEADER, entry: *mut SLIST_ENTRY) -> *mut SLIST_ENTRY {
    let _lock = slist_lock();
    // SAFETY: forwarded contract; the lock is held.
    unsafe { push(head, entry) }
}

/// # Safety
/// `head` is a valid `SLIST_HEADER`.
pub(crate) unsafe fn pop_entry(head: *mut SLIST_HEADER) -> *mut SLIST_ENTRY {
    let _lock = slist_lock();
    // SAFETY: forwarded contract; the lock is held.
    unsafe { pop(head) }
}

/// # Safety
/// `head` is a valid `SLIST_HEADER`.
pub(crate) unsafe fn depth(head: *mut SLIST_HEADER) -> u16 {
    let _lock = slist_lock();
    // SAFETY: forwarded contract; the lock is held.
    (unsafe { (*head).Alignment } & 0xFFFF) as u16
}

/// The default allocate callback (a list initialized without one): `ExAllocatePoolWithTag`.
unsafe extern "system-unwind" fn default_allocate(pool_type: POOL_TYPE, size: SIZE_T, tag: ULONG) -> PVOID {
    pool::allocate_pool_with_tag(pool_type, size, tag, Location::caller())
}

/// The default free callback: `ExFreePool`.
unsafe extern "system-unwind" fn default_free(buffer: PVOID) {
    pool::free_pool(buffer, None);
}

/// The default allocate callback of a `LOOKASIDE_LIST_EX`.
unsafe extern "system-unwind" fn default_allocate_ex(
    pool_type: POOL_TYPE,
    size: SIZE_T,
    tag: ULONG,
    _list: *mut crate::LOOKASIDE_LIST_EX,
) -> PVOID {
    pool::allocate_pool_with_tag(pool_type, size, tag, Location::caller())
}

/// The default free callback of a `LOOKASIDE_LIST_EX`.
unsafe extern "system-unwind" fn default_free_ex(buffer: PVOID, _list: *mut crate::LOOKASIDE_LIST_EX) {
    pool::free_pool(buffer, None);
}

/// Fills in a list and records it.
///
/// # Safety
/// `list` is valid for writes and stays put until deleted.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn initialize(
    list: *mut GENERAL_LOOKASIDE_POOL,
    routine: &'static str,
    allocate: LOOKASIDE_ALLOCATE,
    free: LOOKASIDE_FREE,
    pool_type: POOL_TYPE,
    size: SIZE_T,
    tag: ULONG,
    site: &'static Location<'static>,
) {
    let state = current();
    if state.config.verifier {
        let live = state.lookaside.lock().unwrap_or_else(|p| p.into_inner()).live.contains_key(&(list as usize));
        if live {
            checks::raise(&state, &checks::LOOKASIDE_REINITIALIZED, [0xCA, list as u64, 0, 0]);
            return;
        }
        if (size as usize) < MINIMUM_BLOCK_SIZE {
            let parameters = [0xCD, list as u64, size, MINIMUM_BLOCK_SIZE as u64];
            checks::raise(&state, &checks::LOOKASIDE_BLOCK_TOO_SMALL, parameters);
            return;
        }
    }
    // Without Driver Verifier a small block size is rounded up to hold the list's link.
    let size = (size as usize).max(MINIMUM_BLOCK_SIZE);
    let list_entry = crate::LIST_ENTRY { Flink: core::ptr::null_mut(), Blink: core::ptr::null_mut() };
    // SAFETY: the caller guarantees the list is valid for writes.
    unsafe {
        list.write(GENERAL_LOOKASIDE_POOL {
            ListHead: SLIST_HEADER { Alignment: 0, Region: 0 },
            Depth: MINIMUM_DEPTH,
            MaximumDepth: MAXIMUM_DEPTH,
            TotalAllocates: 0,
            AllocateMisses: 0,
            TotalFrees: 0,
            FreeMisses: 0,
            Type: pool_type,
            Tag: tag,
            Size: size as ULONG,
            Allocate: allocate,
            Free: free,
            ListEntry: list_entry,
            LastTotalAllocates: 0,
            LastAllocateMisses: 0,
            Future: [0; 2],
        })
    };
    // SAFETY: just written; the kernel links the list into its list of lookaside lists.
    let entry = unsafe { &raw mut (*list).ListEntry };
    // SAFETY: as above.
    unsafe { entry.write(crate::LIST_ENTRY { Flink: entry, Blink: entry }) };
    let mut lists = state.lookaside.lock().unwrap_or_else(|p| p.into_inner());
    lists.deleted.remove(&(list as usize));
    lists.live.insert(list as usize, ListRecord { routine, tag, pool_type, size, site });
    state.live_lists.store(lists.live.len(), core::sync::atomic::Ordering::Relaxed);
}

/// `ExInitializeLookasideListEx` / `ExInitializeNPagedLookasideList` / `ExInitializePagedLookasideList`
/// with default callbacks where none is given.
///
/// # Safety
/// As for [`initialize`].
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn initialize_legacy(
    list: *mut GENERAL_LOOKASIDE_POOL,
    routine: &'static str,
    allocate: PALLOCATE_FUNCTION,
    free: PFREE_FUNCTION,
    pool_type: POOL_TYPE,
    size: SIZE_T,
    tag: ULONG,
    site: &'static Location<'static>,
) {
    let allocate = LOOKASIDE_ALLOCATE { Allocate: allocate.or(Some(default_allocate)) };
    let free = LOOKASIDE_FREE { Free: free.or(Some(default_free)) };
    // SAFETY: forwarded contract.
    unsafe { initialize(list, routine, allocate, free, pool_type, size, tag, site) };
}

/// As [`initialize_legacy`], for `LOOKASIDE_LIST_EX`.
///
/// # Safety
/// As for [`initialize`].
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn initialize_ex(
    list: *mut GENERAL_LOOKASIDE_POOL,
    allocate: PALLOCATE_FUNCTION_EX,
    free: PFREE_FUNCTION_EX,
    pool_type: POOL_TYPE,
    size: SIZE_T,
    tag: ULONG,
    site: &'static Location<'static>,
) {
    let allocate = LOOKASIDE_ALLOCATE { AllocateEx: allocate.or(Some(default_allocate_ex)) };
    let free = LOOKASIDE_FREE { FreeEx: free.or(Some(default_free_ex)) };
    // SAFETY: forwarded contract.
    unsafe { initialize(list, "ExInitializeLookasideListEx", allocate, free, pool_type, size, tag, site) };
}

/// Deletes a list: forgets its record and frees every entry it holds through its free callback
/// (`Ex` tells which one). A list that is not live is bug check 0xC4 / 0xCB with Driver Verifier,
/// 0x139 / 3 without.
///
/// # Safety
/// `list` is valid for reads and writes.
pub(crate) unsafe fn delete(list: *mut GENERAL_LOOKASIDE_POOL, ex: bool) {
    let state = current();
    let known = {
        let mut lists = state.lookaside.lock().unwrap_or_else(|p| p.into_inner());
        let known = lists.live.remove(&(list as usize)).is_some();
        if known {
            lists.deleted.insert(list as usize);
        }
        state.live_lists.store(lists.live.len(), core::sync::atomic::Ordering::Relaxed);
        known
    };
    if !known {
        if state.config.verifier {
            checks::raise(&state, &checks::LOOKASIDE_NOT_INITIALIZED, [0xCB, list as u64, 0, 0]);
        } else {
            // The list's LIST_ENTRY is not in the kernel's list: RemoveEntryList's integrity check
            // fails (parameters 2 and 3 are a trap frame and an exception record, which the emulation
            // has not).
            let parameters = [FAST_FAIL_CORRUPT_LIST_ENTRY, 0, 0, 0];
            checks::raise(&state, &checks::LIST_ENTRY_CORRUPTED, parameters);
        }
        return;
    }
    loop {
        // SAFETY: the list is valid (caller); its head is an SLIST_HEADER.
        let entry = unsafe { pop_entry(crate::lookaside_field!(list, ListHead: SLIST_HEADER)) };
        if entry.is_null() {
            break;
        }
        // SAFETY: as above.
        let free = unsafe { crate::lookaside_field!(list, Free: LOOKASIDE_FREE).read() };
        if ex {
            // SAFETY: a LOOKASIDE_LIST_EX holds FreeEx.
            if let Some(free) = unsafe { free.FreeEx } {
                // SAFETY: an entry of the list, given to the list's own callback.
                unsafe { free(entry.cast(), list.cast()) };
            }
        // SAFETY: a legacy list holds Free.
        } else if let Some(free) = unsafe { free.Free } {
            // SAFETY: as above.
            unsafe { free(entry.cast()) };
        }
    }
}

/// `ExpInterlockedPopEntrySList`.
///
/// # Safety
/// `ListHead` is a valid, initialized `SLIST_HEADER`.
///
/// ```
/// use ntpool_sys::{self as sys, SLIST_ENTRY, SLIST_HEADER};
/// let mut head = SLIST_HEADER { Alignment: 0, Region: 0 };
/// let mut entry = SLIST_ENTRY { Next: core::ptr::null_mut() };
/// // SAFETY: a valid header and a free, aligned entry that outlives its time on the list.
/// unsafe { sys::ExpInterlockedPushEntrySList(&mut head, &mut entry) };
/// // SAFETY: a valid header.
/// assert_eq!(unsafe { sys::ExQueryDepthSList(&mut head) }, 1);
/// // SAFETY: as above.
/// assert_eq!(unsafe { sys::ExpInterlockedPopEntrySList(&mut head) }, &raw mut entry);
/// ```
pub unsafe fn ExpInterlockedPopEntrySList(ListHead: *mut crate::SLIST_HEADER) -> *mut crate::SLIST_ENTRY {
    // SAFETY: forwarded contract.
    unsafe { pop_entry(ListHead) }
}

/// `ExpInterlockedPushEntrySList`. Returns the previous first entry.
///
/// # Safety
/// `ListHead` is a valid `SLIST_HEADER`; `ListEntry` is valid, 16-byte aligned and on no list.
///
/// ```
/// use ntpool_sys::{self as sys, SLIST_ENTRY, SLIST_HEADER};
/// let mut head = SLIST_HEADER { Alignment: 0, Region: 0 };
/// let mut entry = SLIST_ENTRY { Next: core::ptr::null_mut() };
/// // SAFETY: a valid header and a free, aligned entry.
/// assert!(unsafe { sys::ExpInterlockedPushEntrySList(&mut head, &mut entry) }.is_null());
/// ```
pub unsafe fn ExpInterlockedPushEntrySList(
    ListHead: *mut crate::SLIST_HEADER,
    ListEntry: *mut crate::SLIST_ENTRY,
) -> *mut crate::SLIST_ENTRY {
    // SAFETY: forwarded contract.
    unsafe { push_entry(ListHead, ListEntry) }
}

/// `ExQueryDepthSList`: the number of entries on the list.
///
/// # Safety
/// `ListHead` is a valid `SLIST_HEADER`.
///
/// ```
/// let mut head = ntpool_sys::SLIST_HEADER { Alignment: 0, Region: 0 };
/// // SAFETY: a valid header.
/// assert_eq!(unsafe { ntpool_sys::ExQueryDepthSList(&mut head) }, 0);
/// ```
pub unsafe fn ExQueryDepthSList(ListHead: *mut crate::SLIST_HEADER) -> u16 {
    // SAFETY: forwarded contract.
    unsafe { depth(ListHead) }
}

/// Whether the kernel exports `ExInitializeLookasideListEx` and `ExDeleteLookasideListEx`; on the
/// emulated kernel, as configured with
/// [`KernelBuilder::lookaside_list_ex`](super::KernelBuilder::lookaside_list_ex).
///
/// ```
/// use ntpool_sys::emulated::Kernel;
/// assert!(Kernel::new().run(ntpool_sys::uses_lookaside_list_ex));
/// let wine = Kernel::builder().lookaside_list_ex(false).build();
/// assert!(!wine.run(ntpool_sys::uses_lookaside_list_ex));
/// ```
pub fn uses_lookaside_list_ex() -> bool {
    current().config.lookaside_list_ex
}

/// `STATUS_PROCEDURE_NOT_FOUND`.
const STATUS_PROCEDURE_NOT_FOUND: crate::NTSTATUS = 0xC000_007A_u32 as i32;
/// `STATUS_INVALID_PARAMETER_4`.
const STATUS_INVALID_PARAMETER_4: crate::NTSTATUS = 0xC000_00F2_u32 as i32;

/// `ExInitializeLookasideListEx`; `STATUS_PROCEDURE_NOT_FOUND` on a kernel configured without it,
/// `STATUS_INVALID_PARAMETER_4` for a pool type that is neither paged nor non-paged.
///
/// # Safety
/// As for `ExInitializeLookasideListEx`: `Lookaside` is valid, non-paged, 16-byte aligned, and stays
/// put until deleted.
///
/// ```
/// use ntpool_sys as sys;
/// let kernel = ntpool_sys::emulated::Kernel::new();
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
    Lookaside: *mut crate::LOOKASIDE_LIST_EX,
    Allocate: crate::PALLOCATE_FUNCTION_EX,
    Free: crate::PFREE_FUNCTION_EX,
    PoolType: POOL_TYPE,
    _Flags: ULONG,
    Size: SIZE_T,
    Tag: ULONG,
    _Depth: u16,
) -> crate::NTSTATUS {
    if !uses_lookaside_list_ex() {
        return STATUS_PROCEDURE_NOT_FOUND;
    }
    let base = PoolType & !(0x200 | 4);
    if !(0..=1).contains(&base) || PoolType & !(0x200 | 4 | 1) != 0 {
        return STATUS_INVALID_PARAMETER_4;
    }
    let site = core::panic::Location::caller();
    // SAFETY: forwarded contract.
    unsafe { initialize_ex(Lookaside.cast(), Allocate, Free, PoolType, Size, Tag, site) };
    0
}

/// `ExDeleteLookasideListEx`: frees the entries the list holds through its free callback.
///
/// # Safety
/// `Lookaside` was initialized with `ExInitializeLookasideListEx` and is deleted once; a second
/// delete is bug check 0xC4 / 0xCB (an uninitialized list) with Driver Verifier, 0x139 / 3 (a
/// corrupted `LIST_ENTRY`) without, as on Windows.
///
/// ```
/// use ntpool_sys::emulated::{catch_bug_check, Kernel};
/// use ntpool_sys as sys;
/// # Kernel::builder().driver_verifier(false).build().run(|| {
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
pub unsafe fn ExDeleteLookasideListEx(Lookaside: *mut crate::LOOKASIDE_LIST_EX) {
    // SAFETY: forwarded contract.
    unsafe { delete(Lookaside.cast(), true) };
}

/// `ExInitializeNPagedLookasideList` (x64: a non-paged list, `Flags` or-ed into the pool type, for
/// example `POOL_NX_ALLOCATION`).
///
/// # Safety
/// `Lookaside` is valid, non-paged, aligned, and stays put until deleted.
///
/// ```
/// use ntpool_sys as sys;
/// let kernel = ntpool_sys::emulated::Kernel::new();
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
    Lookaside: *mut crate::NPAGED_LOOKASIDE_LIST,
    Allocate: crate::PALLOCATE_FUNCTION,
    Free: crate::PFREE_FUNCTION,
    Flags: ULONG,
    Size: SIZE_T,
    Tag: ULONG,
    _Depth: u16,
) {
    let site = core::panic::Location::caller();
    let pool_type = crate::NonPagedPool | Flags as POOL_TYPE;
    // SAFETY: forwarded contract.
    unsafe {
        initialize_legacy(
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
/// let _ = ntpool_sys::ExDeleteNPagedLookasideList;
/// ```
pub unsafe fn ExDeleteNPagedLookasideList(Lookaside: *mut crate::NPAGED_LOOKASIDE_LIST) {
    // SAFETY: forwarded contract.
    unsafe { delete(Lookaside.cast(), false) };
}

/// `ExInitializePagedLookasideList`.
///
/// # Safety
/// `Lookaside` is valid, non-paged, aligned, and stays put until deleted.
///
/// ```
/// use ntpool_sys as sys;
/// let kernel = ntpool_sys::emulated::Kernel::new();
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
    Lookaside: *mut crate::PAGED_LOOKASIDE_LIST,
    Allocate: crate::PALLOCATE_FUNCTION,
    Free: crate::PFREE_FUNCTION,
    Flags: ULONG,
    Size: SIZE_T,
    Tag: ULONG,
    _Depth: u16,
) {
    let site = core::panic::Location::caller();
    let pool_type = crate::PagedPool | Flags as POOL_TYPE;
    // SAFETY: forwarded contract.
    unsafe {
        initialize_legacy(
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
/// let _ = ntpool_sys::ExDeletePagedLookasideList;
/// ```
pub unsafe fn ExDeletePagedLookasideList(Lookaside: *mut crate::PAGED_LOOKASIDE_LIST) {
    // SAFETY: forwarded contract.
    unsafe { delete(Lookaside.cast(), false) };
}
