//! The lookaside list and interlocked singly linked list (`SLIST`) structures of the WDK, in the
//! layout of x64 and ARM64: the same fields at the same offsets on both, except that the cache-aligned
//! structures (`GENERAL_LOOKASIDE`, `NPAGED_LOOKASIDE_LIST`, `PAGED_LOOKASIDE_LIST`) are aligned on
//! `SYSTEM_CACHE_ALIGNMENT_SIZE`, 64 bytes on x64 and 128 on ARM64 (the same 0x80 bytes in size), and
//! `SLIST_HEADER`'s bits are named differently (`HeaderX64` / `HeaderArm64`) around the same depth.
//! The inline routines `wdm.h` builds on them are in `inline.rs`, above both kernels.

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

/// `SLIST_ENTRY` (64-bit Windows: 16-byte aligned, one pointer).
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

/// `SLIST_HEADER` (64-bit Windows): two `ULONGLONG`s, 16-byte aligned. The depth is the low 16 bits of
/// `Alignment` on both x64 (`HeaderX64.Depth`) and ARM64 (`HeaderArm64.Depth`, followed by the 48-bit
/// sequence; the first entry is in `Region`); the rest is the kernel's to encode.
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

/// `SYSTEM_CACHE_ALIGNMENT_SIZE`: the alignment of the cache-aligned structures (`DECLSPEC_CACHEALIGN`),
/// 64 bytes on x64 and 128 on ARM64.
///
/// ```
/// assert!(ntpool_sys::SYSTEM_CACHE_ALIGNMENT_SIZE == 64 || ntpool_sys::SYSTEM_CACHE_ALIGNMENT_SIZE == 128);
/// ```
pub const SYSTEM_CACHE_ALIGNMENT_SIZE: usize = if cfg!(target_arch = "aarch64") { 128 } else { 64 };

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
/// (`SYSTEM_CACHE_ALIGNMENT_SIZE`: 64 bytes on x64, 128 on ARM64; 0x80 bytes on both).
///
/// ```
/// assert_eq!(core::mem::size_of::<ntpool_sys::GENERAL_LOOKASIDE>(), 0x80);
/// assert_eq!(core::mem::align_of::<ntpool_sys::GENERAL_LOOKASIDE>(), ntpool_sys::SYSTEM_CACHE_ALIGNMENT_SIZE);
/// ```
#[cfg_attr(not(target_arch = "aarch64"), repr(C, align(64)))]
#[cfg_attr(target_arch = "aarch64", repr(C, align(128)))]
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

/// `NPAGED_LOOKASIDE_LIST` (64-bit Windows: no lock field), cache aligned.
///
/// ```
/// assert_eq!(core::mem::size_of::<ntpool_sys::NPAGED_LOOKASIDE_LIST>(), 0x80);
/// ```
#[cfg_attr(not(target_arch = "aarch64"), repr(C, align(64)))]
#[cfg_attr(target_arch = "aarch64", repr(C, align(128)))]
pub struct NPAGED_LOOKASIDE_LIST {
    /// The list.
    pub L: GENERAL_LOOKASIDE,
}

/// `PAGED_LOOKASIDE_LIST` (64-bit Windows: no lock field), cache aligned.
///
/// ```
/// assert_eq!(core::mem::size_of::<ntpool_sys::PAGED_LOOKASIDE_LIST>(), 0x80);
/// ```
#[cfg_attr(not(target_arch = "aarch64"), repr(C, align(64)))]
#[cfg_attr(target_arch = "aarch64", repr(C, align(128)))]
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
