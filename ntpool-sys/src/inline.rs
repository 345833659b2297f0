//! The routines `wdm.h` inlines on x64 over the lookaside structures, above both kernels: they call
//! the exported routines by their WDK names, whichever kernel provides them.
//!
//! `ExAllocateFromLookasideListEx` and `ExFreeToLookasideListEx` (like their `NPAGED_LOOKASIDE_LIST`
//! counterparts) are `FORCEINLINE` in `wdm.h` on x64: a driver compiles them into itself. ntpool does
//! the same in [`ExAllocateFromLookasideListEx`] and [`ExFreeToLookasideListEx`], on top of the
//! exported `ExpInterlockedPopEntrySList`, `ExpInterlockedPushEntrySList` and `ExQueryDepthSList`.

use core::sync::atomic::{AtomicU32, Ordering};

use super::{
    GENERAL_LOOKASIDE_POOL, LOOKASIDE_ALLOCATE, LOOKASIDE_FREE, LookasideCallbacks, POOL_TYPE, PVOID, SIZE_T,
    SLIST_HEADER, ULONG, lookaside_field,
};

/// Adds one to a lookaside counter, as `wdm.h` does (`Lookaside->L.TotalAllocates += 1`): a plain,
/// not interlocked increment of an aligned `ULONG` (`inc dword ptr [...]`). The counters are
/// statistics the kernel reads to adjust the depth; two processors bumping one at once may lose an
/// increment, on Windows as here. The read and the write are each atomic (relaxed), so that the
/// race is not undefined behaviour, and compile to the same single instruction without a `lock`
/// prefix.
///
/// # Safety
/// `counter` points to a counter of a live lookaside list.
#[inline(always)]
unsafe fn bump(counter: *mut ULONG) {
    // SAFETY: an aligned `ULONG` of a live list, only ever accessed atomically.
    let counter = unsafe { AtomicU32::from_ptr(counter) };
    counter.store(counter.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
}

/// `ExAllocateFromLookasideListEx` (and `ExAllocateFromNPagedLookasideList` for
/// [`LookasideCallbacks::Legacy`]) as `wdm.h` inlines it on x64: pop a free entry, else count a miss
/// and call the list's allocate callback.
///
/// # Safety
/// `Lookaside` is an initialized, not deleted list of the kind `callbacks` names, and the IRQL
/// allows its pool.
///
/// ```
/// // See `ntpool::LookasideList`, which is built on this.
/// let _ = ntpool_sys::ExAllocateFromLookasideListEx;
/// ```
#[cfg_attr(ntpool_emulated, track_caller)]
#[inline(always)]
pub unsafe fn ExAllocateFromLookasideListEx(
    Lookaside: *mut GENERAL_LOOKASIDE_POOL,
    callbacks: LookasideCallbacks,
) -> PVOID {
    let miss = |pool_type, size, tag| {
        // SAFETY: the list is live (caller).
        let allocate = unsafe { lookaside_field!(Lookaside, Allocate: LOOKASIDE_ALLOCATE).read() };
        match callbacks {
            LookasideCallbacks::Ex => {
                // SAFETY: the union holds the callback of the kind the caller names.
                let Some(allocate) = (unsafe { allocate.AllocateEx }) else { return core::ptr::null_mut() };
                // SAFETY: the list's own callback, with the list's parameters.
                unsafe { allocate(pool_type, size, tag, Lookaside.cast()) }
            }
            LookasideCallbacks::Legacy => {
                // SAFETY: as above.
                let Some(allocate) = (unsafe { allocate.Allocate }) else { return core::ptr::null_mut() };
                // SAFETY: as above.
                unsafe { allocate(pool_type, size, tag) }
            }
        }
    };
    // SAFETY: forwarded contract; `miss` calls the list's own callback.
    unsafe { allocate_from_lookaside(Lookaside, miss) }
}

/// The inline allocate routine with the miss given as `miss` (called with the list's pool type,
/// entry size and tag): for a list whose allocate callback is `miss`'s function, which it then calls
/// directly instead of through the list (one indirect call, and the test of the list's kind, less).
///
/// # Safety
/// As for [`ExAllocateFromLookasideListEx`]; `miss` does what the list's allocate callback does.
#[cfg_attr(ntpool_emulated, track_caller)]
#[inline(always)]
#[doc(hidden)]
pub unsafe fn allocate_from_lookaside(
    Lookaside: *mut GENERAL_LOOKASIDE_POOL,
    miss: impl FnOnce(POOL_TYPE, SIZE_T, ULONG) -> PVOID,
) -> PVOID {
    // SAFETY: the list is live (caller).
    unsafe { bump(lookaside_field!(Lookaside, TotalAllocates: ULONG)) };
    // SAFETY: as above; its list head is an SLIST_HEADER.
    let entry = unsafe { super::ExpInterlockedPopEntrySList(lookaside_field!(Lookaside, ListHead: SLIST_HEADER)) };
    if !entry.is_null() {
        return entry.cast();
    }
    // SAFETY: as above.
    unsafe { bump(lookaside_field!(Lookaside, AllocateMisses: ULONG)) };
    // SAFETY: as above.
    let pool_type = unsafe { lookaside_field!(Lookaside, Type: POOL_TYPE).read() };
    // SAFETY: as above.
    let size = unsafe { lookaside_field!(Lookaside, Size: ULONG).read() };
    // SAFETY: as above.
    let tag = unsafe { lookaside_field!(Lookaside, Tag: ULONG).read() };
    miss(pool_type, size.into(), tag)
}

/// `ExFreeToLookasideListEx` (and `ExFreeToNPagedLookasideList` for [`LookasideCallbacks::Legacy`])
/// as `wdm.h` inlines it on x64: keep the entry if the list holds fewer than `Depth`, else count a
/// miss and give it to the list's free callback.
///
/// # Safety
/// `Lookaside` is an initialized, not deleted list of the kind `callbacks` names; `Entry` came from
/// [`ExAllocateFromLookasideListEx`] on it and is not used afterwards; the IRQL allows its pool.
///
/// ```
/// // See `ntpool::LookasideList`, which is built on this.
/// let _ = ntpool_sys::ExFreeToLookasideListEx;
/// ```
#[inline(always)]
pub unsafe fn ExFreeToLookasideListEx(
    Lookaside: *mut GENERAL_LOOKASIDE_POOL,
    Entry: PVOID,
    callbacks: LookasideCallbacks,
) {
    let miss = |entry| {
        // SAFETY: the list is live (caller).
        let free = unsafe { lookaside_field!(Lookaside, Free: LOOKASIDE_FREE).read() };
        match callbacks {
            LookasideCallbacks::Ex => {
                // SAFETY: the union holds the callback of the kind the caller names.
                if let Some(free) = unsafe { free.FreeEx } {
                    // SAFETY: the list's own callback, for an entry of the list.
                    unsafe { free(entry, Lookaside.cast()) };
                }
            }
            LookasideCallbacks::Legacy => {
                // SAFETY: as above.
                if let Some(free) = unsafe { free.Free } {
                    // SAFETY: as above.
                    unsafe { free(entry) };
                }
            }
        }
    };
    // SAFETY: forwarded contract; `miss` calls the list's own callback.
    unsafe { free_to_lookaside(Lookaside, Entry, miss) }
}

/// The inline free routine with the miss given as `miss` (called with the entry): for a list whose
/// free callback is `miss`'s function, which it then calls directly instead of through the list.
///
/// # Safety
/// As for [`ExFreeToLookasideListEx`]; `miss` does what the list's free callback does.
#[inline(always)]
#[doc(hidden)]
pub unsafe fn free_to_lookaside(Lookaside: *mut GENERAL_LOOKASIDE_POOL, Entry: PVOID, miss: impl FnOnce(PVOID)) {
    // SAFETY: the list is live (caller).
    unsafe { bump(lookaside_field!(Lookaside, TotalFrees: ULONG)) };
    // SAFETY: as above.
    let depth = unsafe { super::ExQueryDepthSList(lookaside_field!(Lookaside, ListHead: SLIST_HEADER)) };
    // SAFETY: as above; `Depth` is only written by the kernel, a 16-bit read is atomic on x64.
    let limit = unsafe { lookaside_field!(Lookaside, Depth: u16).read_volatile() };
    if depth < limit {
        // SAFETY: the entry is at least an SLIST_ENTRY and 16-byte aligned (pool memory), and the
        // caller gives it up.
        unsafe {
            super::ExpInterlockedPushEntrySList(lookaside_field!(Lookaside, ListHead: SLIST_HEADER), Entry.cast())
        };
        return;
    }
    // SAFETY: as above.
    unsafe { bump(lookaside_field!(Lookaside, FreeMisses: ULONG)) };
    miss(Entry);
}
