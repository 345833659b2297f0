//! Pairs of functions for `cargo xtask bench`: each operation once through ntpool and once written
//! by hand against the kernel interface (`ntpool::sys`: the WDK's routines under the WDK's names),
//! doing the same work with the same checks.
//!
//! The driver never calls them. They are exported (`ntpool_bench_<pair>_ntpool` and
//! `ntpool_bench_<pair>_raw`) so that the linker keeps them in the release `.sys`, where `cargo
//! xtask bench` finds them through the export table and compares their machine code. Exports of a
//! driver are only read when another driver imports from it, so they change nothing in how this one
//! loads or runs. Each one runs at `PASSIVE_LEVEL`: ntpool's side takes the caller's [`Passive`]
//! token, by value (a zero-sized argument, which Rust's calling convention passes in no register,
//! so both sides receive their other arguments alike); the hand-written side is `unsafe` and asks
//! for it in its "Safety" section.
//!
//! Both sides allocate through the same `ntpool::sys::ExAllocatePool2` (which calls the kernel's
//! `ExAllocatePool2` where it is exported and `ExAllocatePoolWithTag` elsewhere) and free with the
//! imported `ExFreePoolWithTag`: what is compared is what ntpool adds around those calls.
//!
//! A side that calls functions of the image through pointers held in its data exports them as a
//! null-terminated table, `ntpool_bench_<pair>_<side>_indirect`, which its own code uses and which
//! the bench follows: the raw `lookaside` side's [`RAW_LOOKASIDE_CALLBACKS`].
//!
//! The pairs of the routines the kernel calls (a DPC, a work item) are in `routines.rs`.
//!
//! The host tests (`tests/bench_pairs.rs`) run every pair on the emulated kernel and check that both
//! sides make the same pool calls and return the same results.

mod routines;

pub use routines::*;

use core::alloc::Layout;
use core::cell::UnsafeCell;
use core::ptr::NonNull;

use allocator_api2::alloc::{AllocError, Allocator};
use allocator_api2::vec::Vec;
use ntpool::sys::{self, GENERAL_LOOKASIDE_POOL, KSPIN_LOCK, LOOKASIDE_LIST_EX};
use ntpool::{LookasideList, NonPagedBox, PagedBox, Passive, PoolAllocator, SpinLock};

ntpool::pool_tag! {
    /// The tag of every benchmark allocation.
    pub struct BenchTag = b"NpBn";
}

/// [`BenchTag`] as the `ULONG` the raw side passes.
const BENCH_TAG: u32 = u32::from_le_bytes(*b"NpBn");

/// A zeroed non-paged block for a `T` (at most 16-byte aligned), tagged [`BenchTag`], as the raw
/// sides allocate their kernel structures: `ExAllocatePool2`. `None` when the pool refuses.
///
/// # Safety
/// Call at `PASSIVE_LEVEL`.
unsafe fn raw_block<T>() -> Option<NonNull<T>> {
    const { assert!(align_of::<T>() <= 16 && size_of::<T>() > 0) };
    // SAFETY: PASSIVE_LEVEL (the caller) allows non-paged pool; a non-zero size and a valid tag.
    let block = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_NON_PAGED, size_of::<T>() as u64, BENCH_TAG) };
    NonNull::new(block.cast())
}

/// Paged pool, through ntpool: a `PagedBox<u64>` made with `value` and dropped. Returns whether the
/// allocation succeeded.
///
#[unsafe(no_mangle)]
#[inline(never)]
pub fn ntpool_bench_paged_box_ntpool(passive: Passive, value: u64) -> bool {
    PagedBox::<u64, BenchTag>::try_new(&passive, value).is_ok()
}

/// Paged pool, by hand: the allocation ([`raw_u64`]), the IRQL checked before the free as ntpool's
/// `irql-backstop` feature (on by default) does, `ExFreePoolWithTag`.
///
/// # Safety
/// Call at `PASSIVE_LEVEL`.
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe fn ntpool_bench_paged_box_raw(value: u64) -> bool {
    // SAFETY: PASSIVE_LEVEL allows paged pool.
    let Some(block) = (unsafe { raw_u64(sys::POOL_FLAG_PAGED, value) }) else { return false };
    let irql = sys::KeGetCurrentIrql();
    if irql > sys::APC_LEVEL {
        // SAFETY: a deliberate stop: the kernel's 0xC2 / 0x09 (a free at an invalid IRQL).
        unsafe { sys::KeBugCheckEx(sys::BAD_POOL_CALLER, 0x09, irql.into(), sys::PagedPool as usize, block as usize) }
    }
    // SAFETY: allocated with this tag, not used afterwards; the IRQL allows the free.
    unsafe { sys::ExFreePoolWithTag(block.cast(), BENCH_TAG) };
    true
}

/// The allocation both raw box sides make by hand: `ExAllocatePool2` (zeroed) for a `u64` with
/// `flags`, its address checked for the `u64`'s alignment (a block that breaks the kernel's promise
/// is freed, and the allocation fails), `value` written. `None` when the allocation failed.
///
/// # Safety
/// The IRQL allows the pool in `flags`.
#[inline(always)]
unsafe fn raw_u64(flags: sys::POOL_FLAGS, value: u64) -> Option<*mut u64> {
    // SAFETY: the caller's IRQL allows the pool; a non-zero size and a valid tag.
    let block = unsafe { sys::ExAllocatePool2(flags, 8, BENCH_TAG) }.cast::<u64>();
    if block.is_null() {
        return None;
    }
    if !block.is_aligned() {
        // SAFETY: allocated above with this tag, never used.
        unsafe { sys::ExFreePoolWithTag(block.cast(), BENCH_TAG) };
        return None;
    }
    // SAFETY: a fresh block of 8 bytes, aligned for a `u64` (checked).
    unsafe { block.write(value) };
    Some(block)
}

/// Non-paged pool, through ntpool: a `NonPagedBox<u64>` made with `value` and dropped.
///
#[unsafe(no_mangle)]
#[inline(never)]
pub fn ntpool_bench_non_paged_box_ntpool(passive: Passive, value: u64) -> bool {
    NonPagedBox::<u64, BenchTag>::try_new(&passive, value).is_ok()
}

/// Non-paged pool, by hand: the allocation ([`raw_u64`]), `ExFreePoolWithTag`.
///
/// # Safety
/// Call at `PASSIVE_LEVEL`.
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe fn ntpool_bench_non_paged_box_raw(value: u64) -> bool {
    // SAFETY: PASSIVE_LEVEL allows non-paged pool.
    let Some(block) = (unsafe { raw_u64(sys::POOL_FLAG_NON_PAGED, value) }) else { return false };
    // SAFETY: allocated with this tag, not used afterwards.
    unsafe { sys::ExFreePoolWithTag(block.cast(), BENCH_TAG) };
    true
}

/// An allocator-api2 `Vec<u32>` in non-paged pool through ntpool's [`PoolAllocator`]: `count`
/// pushes, each after `try_reserve(1)`, so that the vector grows (reallocates) on the way. Returns
/// the length, or 0 when an allocation failed.
///
#[unsafe(no_mangle)]
#[inline(never)]
pub fn ntpool_bench_vec_push_ntpool(passive: Passive, count: u32) -> usize {
    push(Vec::new_in(PoolAllocator::<BenchTag>::new(&passive)), count)
}

/// The same `Vec` code with a hand-written allocator ([`RawAllocator`]).
///
/// # Safety
/// Call at `PASSIVE_LEVEL`.
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe fn ntpool_bench_vec_push_raw(count: u32) -> usize {
    push(Vec::new_in(RawAllocator), count)
}

/// The work of the `vec_push` pair, the same for both allocators.
#[inline(always)]
fn push<A: Allocator>(mut vector: Vec<u32, A>, count: u32) -> usize {
    for value in 0..count {
        if vector.try_reserve(1).is_err() {
            return 0;
        }
        vector.push(value);
    }
    vector.len()
}

/// A minimal correct `allocator_api2` allocator written against the kernel interface: non-paged,
/// uninitialized blocks (as `Vec` asks for them), zero-sized requests answered without the kernel
/// (which bug-checks on them), alignments above the kernel's 16 bytes refused rather than arranged,
/// and every block's address checked for its layout (a block that breaks the kernel's promise is
/// freed, and the allocation fails).
#[derive(Clone, Copy)]
pub struct RawAllocator;

// SAFETY: blocks come from ExAllocatePool2 and go back to ExFreePoolWithTag with the same tag;
// zero-sized ones are dangling and never reach the kernel; every block handed out is aligned for its
// layout (checked).
unsafe impl Allocator for RawAllocator {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if layout.size() == 0 {
            let dangling = NonNull::new(core::ptr::without_provenance_mut(layout.align())).ok_or(AllocError)?;
            return Ok(NonNull::slice_from_raw_parts(dangling, 0));
        }
        if layout.align() > 16 {
            return Err(AllocError);
        }
        let flags = sys::POOL_FLAG_NON_PAGED | sys::POOL_FLAG_UNINITIALIZED;
        // SAFETY: the benchmark runs at PASSIVE_LEVEL; a non-zero size and a valid tag.
        let block = unsafe { sys::ExAllocatePool2(flags, layout.size() as u64, BENCH_TAG) };
        let block = NonNull::new(block.cast::<u8>()).ok_or(AllocError)?;
        if block.addr().get() % layout.align() != 0 {
            // SAFETY: allocated above with this tag, never handed out.
            unsafe { sys::ExFreePoolWithTag(block.as_ptr().cast(), BENCH_TAG) };
            return Err(AllocError);
        }
        Ok(NonNull::slice_from_raw_parts(block, layout.size()))
    }

    unsafe fn deallocate(&self, block: NonNull<u8>, layout: Layout) {
        if layout.size() != 0 {
            // SAFETY: the trait's contract: `block` came from `allocate` with this layout.
            unsafe { sys::ExFreePoolWithTag(block.as_ptr().cast(), BENCH_TAG) };
        }
    }
}

/// The lock of the `spin_lock` pair's ntpool side.
static NTPOOL_LOCKED: SpinLock<u64> = SpinLock::new(0);

/// A spin-lock region through ntpool: [`SpinLock::with`] adds `value` to the protected total at
/// `DISPATCH_LEVEL` (with the region's `Dispatch` token) and returns the new total.
///
#[unsafe(no_mangle)]
#[inline(never)]
pub fn ntpool_bench_spin_lock_ntpool(mut passive: Passive, value: u64) -> u64 {
    NTPOOL_LOCKED.with(&mut passive, value, |_dispatch, total, value| {
        *total += value;
        *total
    })
}

/// A `KSPIN_LOCK` and the total it protects, for the raw side.
struct RawLocked {
    lock: UnsafeCell<KSPIN_LOCK>,
    total: UnsafeCell<u64>,
}

// SAFETY: `total` is only touched with `lock` held.
unsafe impl Sync for RawLocked {}

static RAW_LOCKED: RawLocked = RawLocked { lock: UnsafeCell::new(0), total: UnsafeCell::new(0) };

/// The same region by hand: `KeAcquireSpinLockRaiseToDpc`, the addition, `KeReleaseSpinLock`.
///
/// # Safety
/// Call at `PASSIVE_LEVEL`.
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe fn ntpool_bench_spin_lock_raw(value: u64) -> u64 {
    // SAFETY: a released spin lock in non-paged memory (a static); IRQL below DISPATCH_LEVEL.
    let old = unsafe { sys::KeAcquireSpinLockRaiseToDpc(RAW_LOCKED.lock.get()) };
    // SAFETY: the lock is held, so this is the only reference to the total.
    let total = unsafe { &mut *RAW_LOCKED.total.get() };
    *total += value;
    let result = *total;
    // SAFETY: held by this thread; `old` is what the acquire returned.
    unsafe { sys::KeReleaseSpinLock(RAW_LOCKED.lock.get(), old) };
    result
}

/// A pointer to field `$field` (of type `$type`) of the `GENERAL_LOOKASIDE_POOL` at `$list`,
/// computed without dereferencing it.
macro_rules! field {
    ($list:expr, $field:ident: $type:ty) => {
        $list.wrapping_byte_add(core::mem::offset_of!(GENERAL_LOOKASIDE_POOL, $field)).cast::<$type>()
    };
}

/// The list of the `lookaside` pair's ntpool side: `u64` entries in non-paged pool, tagged
/// [`BenchTag`].
pub type BenchLookasideList = LookasideList<u64, BenchTag>;

/// A lookaside entry through ntpool: [`LookasideList::try_alloc`] with `value` and the entry's drop,
/// which gives it back to the list. Returns whether the allocation succeeded.
///
#[unsafe(no_mangle)]
#[inline(never)]
pub fn ntpool_bench_lookaside_ntpool(passive: Passive, list: &BenchLookasideList, value: u64) -> bool {
    list.try_alloc(&passive, value).is_ok()
}

/// The same by hand on a `LOOKASIDE_LIST_EX`, as `wdm.h` inlines `ExAllocateFromLookasideListEx` and
/// `ExFreeToLookasideListEx` on x64: count the allocation, pop a free entry, else count a miss and
/// call the list's allocate callback; write the value; count the free, push the entry back if the
/// list holds fewer than `Depth`, else count a miss and call the free callback. The counters are
/// bumped as `wdm.h` bumps them: not interlocked (see [`bump`]). The callbacks are called through
/// the list's pointers, as `wdm.h` does; on a [`RawLookasideList`] they are ntpool's
/// ([`RAW_LOOKASIDE_CALLBACKS`]), the ones the ntpool side calls directly.
///
/// # Safety
/// Call at `PASSIVE_LEVEL`, with a list initialized by `ExInitializeLookasideListEx` for non-paged
/// entries of at least 8 bytes (such as [`RawLookasideList`]'s).
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe fn ntpool_bench_lookaside_raw(list: *mut LOOKASIDE_LIST_EX, value: u64) -> bool {
    // A LOOKASIDE_LIST_EX is its GENERAL_LOOKASIDE_POOL fields.
    let fields = list.cast::<GENERAL_LOOKASIDE_POOL>();
    let head = field!(fields, ListHead: sys::SLIST_HEADER);
    // ExAllocateFromLookasideListEx.
    // SAFETY: a counter of the live list (the caller's).
    unsafe { bump(field!(fields, TotalAllocates: u32)) };
    // SAFETY: the list's SLIST_HEADER.
    let mut entry = unsafe { sys::ExpInterlockedPopEntrySList(head) }.cast::<core::ffi::c_void>();
    if entry.is_null() {
        // SAFETY: a counter of the live list.
        unsafe { bump(field!(fields, AllocateMisses: u32)) };
        // SAFETY: the list's fields, set by ExInitializeLookasideListEx.
        let pool_type = unsafe { field!(fields, Type: sys::POOL_TYPE).read() };
        // SAFETY: as above.
        let size = unsafe { field!(fields, Size: u32).read() };
        // SAFETY: as above.
        let tag = unsafe { field!(fields, Tag: u32).read() };
        // SAFETY: as above.
        let allocate = unsafe { field!(fields, Allocate: sys::LOOKASIDE_ALLOCATE).read() };
        // SAFETY: a LOOKASIDE_LIST_EX's union holds `AllocateEx`.
        let Some(allocate) = (unsafe { allocate.AllocateEx }) else { return false };
        // SAFETY: the list's own callback with the list's parameters, at PASSIVE_LEVEL.
        entry = unsafe { allocate(pool_type, size.into(), tag, list) };
        if entry.is_null() {
            return false;
        }
    }
    // SAFETY: an entry of at least 8 bytes, 16-byte aligned, owned until it is freed below.
    unsafe { entry.cast::<u64>().write(value) };
    // ExFreeToLookasideListEx.
    // SAFETY: a counter of the live list.
    unsafe { bump(field!(fields, TotalFrees: u32)) };
    // SAFETY: the list's SLIST_HEADER.
    let depth = unsafe { sys::ExQueryDepthSList(head) };
    // SAFETY: `Depth` is a 16-bit field of the live list that only the kernel writes.
    let limit = unsafe { field!(fields, Depth: u16).read_volatile() };
    if depth < limit {
        // SAFETY: the entry is 16-byte aligned and at least an SLIST_ENTRY, and given up here.
        unsafe { sys::ExpInterlockedPushEntrySList(head, entry.cast()) };
    } else {
        // SAFETY: a counter of the live list.
        unsafe { bump(field!(fields, FreeMisses: u32)) };
        // SAFETY: the list's fields, set by ExInitializeLookasideListEx.
        let free = unsafe { field!(fields, Free: sys::LOOKASIDE_FREE).read() };
        // SAFETY: a LOOKASIDE_LIST_EX's union holds `FreeEx`.
        if let Some(free) = unsafe { free.FreeEx } {
            // SAFETY: the list's own callback, for an entry of the list that is not used afterwards.
            unsafe { free(entry, list) };
        }
    }
    true
}

/// `Lookaside->L.Counter += 1` as `wdm.h` writes it: not interlocked. The load and the store are
/// each atomic, so that a concurrent bump is a lost count and not undefined behaviour; together
/// they compile to one `inc` of the memory word.
///
/// # Safety
/// `counter` is a counter of a live lookaside list.
#[inline(always)]
unsafe fn bump(counter: *mut u32) {
    // SAFETY: an aligned `ULONG` of a live list, only ever accessed atomically.
    let counter = unsafe { core::sync::atomic::AtomicU32::from_ptr(counter) };
    counter.store(
        counter.load(core::sync::atomic::Ordering::Relaxed).wrapping_add(1),
        core::sync::atomic::Ordering::Relaxed,
    );
}

/// The functions the `lookaside` pair's raw side calls through the pointers of its list: the
/// callbacks a [`BenchLookasideList`] installs ([`LookasideList::ex_callbacks`]), so that both sides
/// allocate and free their entries the same way (ntpool's allocation path, non-paged, tagged
/// [`BenchTag`]; `ExFreePoolWithTag` with that tag). [`RawLookasideList::new`] installs them from
/// this table.
///
/// Exported as `ntpool_bench_lookaside_raw_indirect` for `cargo xtask bench`, which reads the
/// pointers from the image (up to the null [`end`](Self::end)) and counts the functions as reached
/// by the raw side: the ntpool side calls the same callbacks directly, so they are counted on
/// neither side.
#[repr(C)]
pub struct RawLookasideCallbacks {
    /// `AllocateEx`.
    pub allocate: sys::PALLOCATE_FUNCTION_EX,
    /// `FreeEx`.
    pub free: sys::PFREE_FUNCTION_EX,
    /// The end of the table: null.
    pub end: Option<fn()>,
}

/// See [`RawLookasideCallbacks`].
#[unsafe(export_name = "ntpool_bench_lookaside_raw_indirect")]
pub static RAW_LOOKASIDE_CALLBACKS: RawLookasideCallbacks = {
    let (allocate, free) = BenchLookasideList::ex_callbacks();
    RawLookasideCallbacks { allocate, free, end: None }
};

/// The `lookaside` pair's raw list: a `LOOKASIDE_LIST_EX` in non-paged pool (tag [`BenchTag`]),
/// initialized by `ExInitializeLookasideListEx` for `u64` entries (16 bytes, an `SLIST_ENTRY`) of
/// `NonPagedPoolNx` tagged [`BenchTag`] with the callbacks of [`RAW_LOOKASIDE_CALLBACKS`] (those of
/// a [`BenchLookasideList`]), deleted and freed on drop. The driver never makes one; the host tests
/// do.
pub struct RawLookasideList(NonNull<LOOKASIDE_LIST_EX>);

impl RawLookasideList {
    /// Allocates and initializes the list; `None` when the pool or the kernel refuses.
    ///
    /// # Safety
    /// Call at `PASSIVE_LEVEL`, on a kernel that exports `ExInitializeLookasideListEx`.
    pub unsafe fn new() -> Option<Self> {
        // SAFETY: the caller runs at PASSIVE_LEVEL.
        let list = unsafe { raw_block::<LOOKASIDE_LIST_EX>() }?;
        let entry = size_of::<sys::SLIST_ENTRY>() as u64;
        // SAFETY: a fresh non-paged block, 16-byte aligned, that stays put until `drop` deletes the
        // list and frees it.
        let status = unsafe {
            sys::ExInitializeLookasideListEx(
                list.as_ptr(),
                RAW_LOOKASIDE_CALLBACKS.allocate,
                RAW_LOOKASIDE_CALLBACKS.free,
                sys::NonPagedPoolNx,
                0,
                entry,
                BENCH_TAG,
                0,
            )
        };
        if status < 0 {
            // SAFETY: allocated above with this tag, never initialized as a list.
            unsafe { sys::ExFreePoolWithTag(list.as_ptr().cast(), BENCH_TAG) };
            return None;
        }
        Some(RawLookasideList(list))
    }

    /// The list, for [`ntpool_bench_lookaside_raw`].
    pub fn as_ptr(&self) -> *mut LOOKASIDE_LIST_EX {
        self.0.as_ptr()
    }
}

impl Drop for RawLookasideList {
    fn drop(&mut self) {
        // SAFETY: initialized in `new`, deleted once, here; the block is freed after the list.
        unsafe { sys::ExDeleteLookasideListEx(self.0.as_ptr()) };
        // SAFETY: allocated in `new` with this tag, no longer a list.
        unsafe { sys::ExFreePoolWithTag(self.0.as_ptr().cast(), BENCH_TAG) };
    }
}
