//! The lookaside list and interlocked singly linked list (`SLIST`) structures of the WDK, x64 layout,
//! and the inline routines `wdm.h` builds on them.
//!
//! `ExAllocateFromLookasideListEx` and `ExFreeToLookasideListEx` (like their `NPAGED_LOOKASIDE_LIST`
//! counterparts) are `FORCEINLINE` in `wdm.h` on x64: a driver compiles them into itself. ntpool does
//! the same in [`ExAllocateFromLookasideListEx`] and [`ExFreeToLookasideListEx`], on top of the
//! exported `ExpInterlockedPopEntrySList`, `ExpInterlockedPushEntrySList` and `ExQueryDepthSList`.

use core::sync::atomic::{AtomicU32, Ordering};

use super::{POOL_TYPE, PVOID, SIZE_T, ULONG};

/// `LIST_ENTRY`.
///
/// ```
/// assert_eq!(core::mem::size_of::<ntpool_sys::LIST_ENTRY>(), 16);
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LIST_ENTRY {
    /// The next entry.
    pub Flink: *mut LIST_ENTRY,
    /// The previous entry.
    pub Blink: *mut LIST_ENTRY,
}

/// `SLIST_ENTRY` (x64: 16-byte aligned, one pointer).
///
/// ```
/// assert_eq!(core::mem::align_of::<ntpool_sys::SLIST_ENTRY>(), 16);
/// ```
#[repr(C, align(16))]
#[derive(Debug)]
pub struct SLIST_ENTRY {
    /// The next entry.
    pub Next: *mut SLIST_ENTRY,
}

/// `SLIST_HEADER` (x64): two `ULONGLONG`s, 16-byte aligned. The depth is the low 16 bits of
/// `Alignment` (`HeaderX64.Depth`); the rest is the kernel's to encode.
///
/// ```
/// assert_eq!(core::mem::size_of::<ntpool_sys::SLIST_HEADER>(), 16);
/// ```
#[repr(C, align(16))]
#[derive(Debug)]
pub struct SLIST_HEADER {
    /// Depth (bits 0-15) and sequence.
    pub Alignment: u64,
    /// The first entry (and header type).
    pub Region: u64,
}

/// The callback types, with the ABI `$abi`.
macro_rules! callback_types {
    ($abi:literal) => {
        /// `PALLOCATE_FUNCTION`: the allocate callback of `NPAGED_LOOKASIDE_LIST` / `PAGED_LOOKASIDE_LIST`.
        pub type PALLOCATE_FUNCTION =
            Option<unsafe extern $abi fn(PoolType: POOL_TYPE, NumberOfBytes: SIZE_T, Tag: ULONG) -> PVOID>;
        /// `PFREE_FUNCTION`: the free callback of `NPAGED_LOOKASIDE_LIST` / `PAGED_LOOKASIDE_LIST`.
        pub type PFREE_FUNCTION = Option<unsafe extern $abi fn(Buffer: PVOID)>;
        /// `PALLOCATE_FUNCTION_EX`: the allocate callback of `LOOKASIDE_LIST_EX`.
        pub type PALLOCATE_FUNCTION_EX = Option<
            unsafe extern $abi fn(
                PoolType: POOL_TYPE,
                NumberOfBytes: SIZE_T,
                Tag: ULONG,
                Lookaside: *mut LOOKASIDE_LIST_EX,
            ) -> PVOID,
        >;
        /// `PFREE_FUNCTION_EX`: the free callback of `LOOKASIDE_LIST_EX`.
        pub type PFREE_FUNCTION_EX = Option<unsafe extern $abi fn(Buffer: PVOID, Lookaside: *mut LOOKASIDE_LIST_EX)>;
    };
}
// On the emulated kernel the callbacks are `extern "system-unwind"` (on x64 the same calling
// convention as `extern "system"`), so that a bug check (a panic) raised inside one unwinds through
// it to the test that catches it. A kernel build aborts on panic: plain `extern "system"`.
#[cfg(ntpool_emulated)]
callback_types!("system-unwind");
#[cfg(not(ntpool_emulated))]
callback_types!("system");

/// The `AllocateEx` / `Allocate` union of a lookaside list.
#[repr(C)]
#[derive(Clone, Copy)]
pub union LOOKASIDE_ALLOCATE {
    /// `LOOKASIDE_LIST_EX`'s callback.
    pub AllocateEx: PALLOCATE_FUNCTION_EX,
    /// The legacy lists' callback.
    pub Allocate: PALLOCATE_FUNCTION,
}

/// The `FreeEx` / `Free` union of a lookaside list.
#[repr(C)]
#[derive(Clone, Copy)]
pub union LOOKASIDE_FREE {
    /// `LOOKASIDE_LIST_EX`'s callback.
    pub FreeEx: PFREE_FUNCTION_EX,
    /// The legacy lists' callback.
    pub Free: PFREE_FUNCTION,
}

/// `GENERAL_LOOKASIDE_POOL` (x64: 0x60 bytes). The unions of counters (`AllocateMisses` /
/// `AllocateHits`, ...) are given their first name.
///
/// ```
/// assert_eq!(core::mem::size_of::<ntpool_sys::GENERAL_LOOKASIDE_POOL>(), 0x60);
/// ```
#[repr(C)]
pub struct GENERAL_LOOKASIDE_POOL {
    /// The free entries.
    pub ListHead: SLIST_HEADER,
    /// How many free entries the list keeps at most right now (the kernel adjusts it).
    pub Depth: u16,
    /// The most it may ever keep.
    pub MaximumDepth: u16,
    /// Allocations from the list.
    pub TotalAllocates: ULONG,
    /// Allocations the list could not serve (the allocate callback did).
    pub AllocateMisses: ULONG,
    /// Frees to the list.
    pub TotalFrees: ULONG,
    /// Frees the list did not keep (the free callback freed the entry).
    pub FreeMisses: ULONG,
    /// The entries' pool.
    pub Type: POOL_TYPE,
    /// The entries' tag.
    pub Tag: ULONG,
    /// The entries' size.
    pub Size: ULONG,
    /// The allocate callback.
    pub Allocate: LOOKASIDE_ALLOCATE,
    /// The free callback.
    pub Free: LOOKASIDE_FREE,
    /// The kernel's list of lookaside lists.
    pub ListEntry: LIST_ENTRY,
    /// The kernel's bookkeeping for depth adjustment.
    pub LastTotalAllocates: ULONG,
    /// As above.
    pub LastAllocateMisses: ULONG,
    /// Reserved.
    pub Future: [ULONG; 2],
}

/// `GENERAL_LOOKASIDE`: the same fields as [`GENERAL_LOOKASIDE_POOL`], aligned on a cache line
/// (x64: 0x80 bytes).
///
/// ```
/// assert_eq!(core::mem::size_of::<ntpool_sys::GENERAL_LOOKASIDE>(), 0x80);
/// ```
#[repr(C, align(64))]
pub struct GENERAL_LOOKASIDE {
    /// The fields.
    pub L: GENERAL_LOOKASIDE_POOL,
}

/// `LOOKASIDE_LIST_EX` (Vista and later).
///
/// ```
/// assert_eq!(core::mem::size_of::<ntpool_sys::LOOKASIDE_LIST_EX>(), 0x60);
/// ```
#[repr(C)]
pub struct LOOKASIDE_LIST_EX {
    /// The list.
    pub L: GENERAL_LOOKASIDE_POOL,
}

/// `NPAGED_LOOKASIDE_LIST` (x64: no lock field).
///
/// ```
/// assert_eq!(core::mem::size_of::<ntpool_sys::NPAGED_LOOKASIDE_LIST>(), 0x80);
/// ```
#[repr(C, align(64))]
pub struct NPAGED_LOOKASIDE_LIST {
    /// The list.
    pub L: GENERAL_LOOKASIDE,
}

/// `PAGED_LOOKASIDE_LIST` (x64: no lock field).
///
/// ```
/// assert_eq!(core::mem::size_of::<ntpool_sys::PAGED_LOOKASIDE_LIST>(), 0x80);
/// ```
#[repr(C, align(64))]
pub struct PAGED_LOOKASIDE_LIST {
    /// The list.
    pub L: GENERAL_LOOKASIDE,
}

/// The list a `GENERAL_LOOKASIDE_POOL` pointer stands for in the inline routines below: the Ex
/// callbacks (`LOOKASIDE_LIST_EX`) or the legacy ones (`NPAGED_LOOKASIDE_LIST`, `PAGED_LOOKASIDE_LIST`).
///
/// ```
/// assert_ne!(ntpool_sys::LookasideCallbacks::Ex, ntpool_sys::LookasideCallbacks::Legacy);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookasideCallbacks {
    /// `AllocateEx` / `FreeEx`, which also receive the list.
    Ex,
    /// `Allocate` / `Free`.
    Legacy,
}

/// A pointer to field `$field` (of type `$type`) of the `GENERAL_LOOKASIDE_POOL` at `$list`,
/// computed without dereferencing it. For ntpool's lookaside lists, which read the counters as the
/// inline routines here write them.
#[doc(hidden)]
#[macro_export]
macro_rules! __lookaside_field {
    ($list:expr, $field:ident: $type:ty) => {
        $list.wrapping_byte_add(core::mem::offset_of!($crate::GENERAL_LOOKASIDE_POOL, $field)).cast::<$type>()
    };
}
#[doc(hidden)]
pub use __lookaside_field as lookaside_field;

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
