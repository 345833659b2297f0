//! Lookaside lists and interlocked singly linked lists (`SLIST`) on the emulated kernel.
//!
//! The routines fill in the list structures as Windows does (depth 4 to start with, at most 256,
//! the callbacks, type, tag and size), keep a record of every list initialized and not deleted (for
//! the unload check: bug check 0xCE), and free the entries a list still holds through its free
//! callback when it is deleted. Deleting a list twice (or one never initialized) unlinks a
//! `LIST_ENTRY` that is not in the kernel's list: Windows' list integrity check stops with bug check
//! 0x139 (`KERNEL_SECURITY_CHECK_FAILURE`), parameter 1 = 3 (`FAST_FAIL_CORRUPT_LIST_ENTRY`).

use std::collections::{BTreeMap, HashSet};
use std::panic::Location;
use std::sync::Mutex;

use super::kernel::{self, current};
use crate::sys::{
    self, GENERAL_LOOKASIDE_POOL, LOOKASIDE_ALLOCATE, LOOKASIDE_FREE, PALLOCATE_FUNCTION, PALLOCATE_FUNCTION_EX,
    PFREE_FUNCTION, PFREE_FUNCTION_EX, POOL_TYPE, PVOID, SIZE_T, SLIST_ENTRY, SLIST_HEADER, ULONG,
};

/// `KERNEL_SECURITY_CHECK_FAILURE`.
pub(crate) const KERNEL_SECURITY_CHECK_FAILURE: ULONG = 0x139;
/// `FAST_FAIL_CORRUPT_LIST_ENTRY`: parameter 1 of bug check 0x139 for a corrupted `LIST_ENTRY`.
pub(crate) const FAST_FAIL_CORRUPT_LIST_ENTRY: u64 = 3;
/// `DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS`.
pub(crate) const DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS: ULONG = 0xCE;
/// `ExMinimumLookasideDepth`: the depth a new list starts with.
const MINIMUM_DEPTH: u16 = 4;
/// The most entries a list ever keeps (`MAXIMUM_LOOKASIDE_DEPTH`).
const MAXIMUM_DEPTH: u16 = 256;

/// One lookaside list the driver initialized and has not deleted.
#[derive(Clone, Debug)]
pub(crate) struct ListRecord {
    pub(crate) routine: &'static str,
    pub(crate) tag: ULONG,
    pub(crate) pool_type: POOL_TYPE,
    pub(crate) size: usize,
    pub(crate) site: &'static Location<'static>,
}

/// The lists of one emulated kernel.
#[derive(Debug, Default)]
pub(crate) struct Lists {
    /// Initialized and not deleted, by address.
    pub(crate) live: BTreeMap<usize, ListRecord>,
    /// Deleted (and not initialized again).
    deleted: HashSet<usize>,
}

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
    kernel::allocate_pool_with_tag(pool_type, size, tag, Location::caller())
}

/// The default free callback: `ExFreePool`.
unsafe extern "system-unwind" fn default_free(buffer: PVOID) {
    kernel::free_pool(buffer, None);
}

/// The default allocate callback of a `LOOKASIDE_LIST_EX`.
unsafe extern "system-unwind" fn default_allocate_ex(
    pool_type: POOL_TYPE,
    size: SIZE_T,
    tag: ULONG,
    _list: *mut sys::LOOKASIDE_LIST_EX,
) -> PVOID {
    kernel::allocate_pool_with_tag(pool_type, size, tag, Location::caller())
}

/// The default free callback of a `LOOKASIDE_LIST_EX`.
unsafe extern "system-unwind" fn default_free_ex(buffer: PVOID, _list: *mut sys::LOOKASIDE_LIST_EX) {
    kernel::free_pool(buffer, None);
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
    let size = (size as usize).max(size_of::<SLIST_ENTRY>());
    let list_entry = sys::LIST_ENTRY { Flink: core::ptr::null_mut(), Blink: core::ptr::null_mut() };
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
    unsafe { entry.write(sys::LIST_ENTRY { Flink: entry, Blink: entry }) };
    let state = current();
    let mut lists = state.lookaside.lock().unwrap_or_else(|p| p.into_inner());
    lists.deleted.remove(&(list as usize));
    lists.live.insert(list as usize, ListRecord { routine, tag, pool_type, size, site });
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
/// (`Ex` tells which one). A list that is not live is bug check 0x139 / 3.
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
        known
    };
    if !known {
        // The list's LIST_ENTRY is not in the kernel's list: RemoveEntryList's integrity check fails
        // (parameters 2 and 3 are a trap frame and an exception record, which the emulation has not).
        kernel::bug_check_now(KERNEL_SECURITY_CHECK_FAILURE, [FAST_FAIL_CORRUPT_LIST_ENTRY, 0, 0, 0]);
    }
    loop {
        // SAFETY: the list is valid (caller); its head is an SLIST_HEADER.
        let entry = unsafe { pop_entry(sys::lookaside_field!(list, ListHead: SLIST_HEADER)) };
        if entry.is_null() {
            break;
        }
        // SAFETY: as above.
        let free = unsafe { sys::lookaside_field!(list, Free: LOOKASIDE_FREE).read() };
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
