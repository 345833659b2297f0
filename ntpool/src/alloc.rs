//! Raw tagged allocation by `Layout`, shared by [`PoolBox`](crate::PoolBox) and
//! [`PoolAllocator`], and the `allocator_api2` allocator.
//!
//! Alignment: ntpool hands out a block aligned for its `Layout` on every kernel, and trusts no
//! promise it does not check. Windows aligns every block on 16 bytes (`MEMORY_ALLOCATION_ALIGNMENT`
//! on x64), a block of a page or more on a page, and a cache-aligned block on a cache line; Wine's
//! pool, a heap, keeps only the first. Where the data sits in the kernel's block depends only on the
//! layout ([`Placement`]), so the free finds the kernel's own address the way the allocation put it:
//! * **At the start** of the kernel's block, for an alignment of 16 bytes or less. The allocation
//!   checks the address (one test on the path taken anyway); a block that breaks even
//!   `MEMORY_ALLOCATION_ALIGNMENT` for this layout is freed and the allocation fails with
//!   [`AllocError`].
//! * **At the start if it is a page**, for a block of a page or more aligned on more than 16 bytes
//!   and less than a page: Windows starts it on a page. Where the kernel did not, that block is
//!   freed and the data goes inside a larger one, at an address that is never a page start, so the
//!   free tells the two apart by the address alone.
//! * **Inside** a block `align` bytes larger, for every other layout (more than 16 bytes below a
//!   page, a page or more above it): the aligned address is handed out and the address the kernel
//!   returned is kept in the eight bytes just below it.

use core::alloc::Layout;
use core::marker::PhantomData;
use core::ptr::NonNull;

use crate::irql::Allows;
use crate::options::Extended;
use crate::pool::{NonPagedPoolType, PoolType};
use crate::safe::DispatchSafe;
use crate::sys::{self, POOL_FLAG_UNINITIALIZED};
use crate::tag::{PoolTag, Tag};

/// An allocation failed: the pool had no block of that size (or the size was too large to express).
/// Nothing was allocated, and nothing panicked or bug-checked.
///
/// ```
/// let error = ntpool::AllocError;
/// assert_eq!(error.to_string(), "pool allocation failed");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AllocError;

impl core::fmt::Display for AllocError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("pool allocation failed")
    }
}

impl core::error::Error for AllocError {}

crate::safe::plain!(AllocError);

const PAGE_SIZE: usize = 4096;

/// `MEMORY_ALLOCATION_ALIGNMENT` on x64: the alignment every kernel promises for every block, and
/// the most that a block's own start is trusted with (after a check).
const KERNEL_ALIGN: usize = 16;

/// Where the data of a layout sits in the kernel's block (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Placement {
    /// At the start of the kernel's block.
    Start,
    /// At the start if that is a page; elsewhere inside a larger block, never at a page start.
    StartIfPage,
    /// Inside a larger block, with the kernel's address just below it.
    Inside,
}

impl Placement {
    /// Where a layout's data sits. A zero-sized layout has no block at all.
    pub(crate) const fn of(layout: Layout) -> Self {
        let align = layout.align();
        if align <= KERNEL_ALIGN {
            Placement::Start
        } else if layout.size() >= PAGE_SIZE && align < PAGE_SIZE {
            Placement::StartIfPage
        } else {
            Placement::Inside
        }
    }
}

/// Whether `data`, handed out by [`allocate`] for `layout`, is the start of the kernel's block:
/// the address that `ExFreePoolWithTag` takes.
#[inline(always)]
pub(crate) fn starts_kernel_block(data: NonNull<u8>, layout: Layout) -> bool {
    layout.size() != 0
        && match Placement::of(layout) {
            Placement::Start => true,
            Placement::StartIfPage => data.addr().get() % PAGE_SIZE == 0,
            Placement::Inside => false,
        }
}

/// Allocates a block for `layout` from pool `P` with `tag`, zeroed unless `zeroed` is false.
/// A zero-sized layout allocates nothing and gets a dangling, aligned pointer.
///
/// The caller must hold a token that allows pool `P` (every public caller takes one).
#[cfg_attr(ntpool_emulated, track_caller)]
#[inline]
pub(crate) fn allocate<P: PoolType>(layout: Layout, zeroed: bool, tag: PoolTag) -> Result<NonNull<u8>, AllocError> {
    allocate_with_flags::<P>(layout, if zeroed { 0 } else { POOL_FLAG_UNINITIALIZED }, Extended::NONE, tag)
}

/// [`allocate`] with `extra` flags besides the pool's: `POOL_FLAG_UNINITIALIZED`, and
/// `POOL_FLAG_USE_QUOTA` for a block charged to the current process (the caller then holds a token
/// below `DISPATCH_LEVEL`). Quota is only charged for a block that is really allocated: a zero-sized
/// layout allocates nothing. With `extended` parameters (a priority, a NUMA node) the block comes
/// from `ExAllocatePool3`, else from `ExAllocatePool2`.
#[cfg_attr(ntpool_emulated, track_caller)]
#[inline]
pub(crate) fn allocate_with_flags<P: PoolType>(
    layout: Layout,
    extra: sys::POOL_FLAGS,
    extended: Extended,
    tag: PoolTag,
) -> Result<NonNull<u8>, AllocError> {
    if layout.size() == 0 {
        // A non-null pointer aligned for `layout`, with no provenance: nothing is read or written
        // through it.
        return NonNull::new(core::ptr::without_provenance_mut(layout.align())).ok_or(AllocError);
    }
    let flags = P::FLAGS | extra;
    if Placement::of(layout) != Placement::Start {
        return allocate_placed(layout, flags, extended, tag);
    }
    let block = kernel_allocate(flags, extended, layout.size(), tag)?;
    // `align` is a power of two.
    if block.addr().get() & (layout.align() - 1) == 0 { Ok(block) } else { Err(refuse(block, tag)) }
}

/// [`allocate_with_flags`] for the layouts whose data does not simply start the kernel's block
/// ([`Placement::StartIfPage`], [`Placement::Inside`]): out of line, so that the common path stays
/// small enough to inline and its alignment check folds away wherever the layout is known.
#[inline(never)]
#[cfg_attr(ntpool_emulated, track_caller)]
fn allocate_placed(
    layout: Layout,
    flags: sys::POOL_FLAGS,
    extended: Extended,
    tag: PoolTag,
) -> Result<NonNull<u8>, AllocError> {
    if Placement::of(layout) == Placement::StartIfPage {
        let block = kernel_allocate(flags, extended, layout.size(), tag)?;
        if block.addr().get() % PAGE_SIZE == 0 {
            return Ok(block);
        }
        // SAFETY: the kernel's own block, just allocated with this tag and not handed out.
        unsafe { sys::ExFreePoolWithTag(block.as_ptr().cast(), tag.to_ulong()) };
        return allocate_inside(layout, flags, extended, tag, true);
    }
    allocate_inside(layout, flags, extended, tag, false)
}

/// `ExAllocatePool2` for `size` bytes (not zero), or `ExAllocatePool3` with the `extended` parameters.
#[cfg_attr(ntpool_emulated, track_caller)]
#[inline(always)]
fn kernel_allocate(
    flags: sys::POOL_FLAGS,
    extended: Extended,
    size: usize,
    tag: PoolTag,
) -> Result<NonNull<u8>, AllocError> {
    let block = if extended.is_none() {
        // SAFETY: the caller holds a token proving the IRQL allows the pool in `flags`; the size is
        // not zero and the tag is valid (a `PoolTag`).
        unsafe { sys::ExAllocatePool2(flags, size as u64, tag.to_ulong()) }
    } else {
        let (parameters, count) = extended.parameters();
        // SAFETY: as above; `parameters` holds `count` parameters and outlives the call.
        unsafe { sys::ExAllocatePool3(flags, size as u64, tag.to_ulong(), parameters.as_ptr(), count) }
    };
    NonNull::new(block.cast::<u8>()).ok_or(AllocError)
}

/// Frees a block whose address breaks the kernel's `MEMORY_ALLOCATION_ALIGNMENT` for the layout
/// asked for: the block is never handed out, and the allocation fails.
#[inline(always)]
fn refuse(block: NonNull<u8>, tag: PoolTag) -> AllocError {
    // SAFETY: the kernel's own block, just allocated with this tag and not handed out.
    unsafe { sys::ExFreePoolWithTag(block.as_ptr().cast(), tag.to_ulong()) };
    AllocError
}

/// Allocates `layout` inside a larger block ([`Placement::Inside`]), at an address that is not a
/// page start when `off_page` is set ([`Placement::StartIfPage`], where a page start means the
/// kernel's own block).
#[cfg_attr(ntpool_emulated, track_caller)]
fn allocate_inside(
    layout: Layout,
    flags: sys::POOL_FLAGS,
    extended: Extended,
    tag: PoolTag,
    off_page: bool,
) -> Result<NonNull<u8>, AllocError> {
    let align = layout.align();
    let extra = if off_page { align.checked_mul(2).ok_or(AllocError)? } else { align };
    let block = kernel_allocate(flags, extended, layout.size().checked_add(extra).ok_or(AllocError)?, tag)?;
    let address = block.addr().get();
    if address % align_of::<*mut u8>() != 0 {
        // Not even room for an aligned header below the data.
        return Err(refuse(block, tag));
    }
    // In `[8, align]`: `address` is a multiple of 8, and `align` (more than 16) of 16.
    let mut offset = align - address % align;
    if off_page && (address + offset) % PAGE_SIZE == 0 {
        // `align` is less than a page here, so one more step leaves the page start.
        offset += align;
    }
    // SAFETY: `offset <= extra`, and `size + extra` bytes were allocated: the aligned data of
    // `layout.size()` bytes fits. `offset >= 8` and the data is aligned on more than 8 bytes, so the
    // eight bytes below it are inside the allocation and aligned for a pointer.
    let data = unsafe { block.add(offset) };
    // SAFETY: as above, the header slot is inside the block and aligned.
    let header = unsafe { data.cast::<*mut u8>().sub(1) };
    // SAFETY: as above.
    unsafe { header.write(block.as_ptr()) };
    Ok(data)
}

/// Frees a block that [`allocate`] returned for the same `layout`, pool and tag.
///
/// # Safety
/// `block` came from `allocate::<P>(layout, _, tag)` and is not used afterwards; the IRQL allows
/// freeing pool `P`.
#[inline]
pub(crate) unsafe fn free(block: NonNull<u8>, layout: Layout, tag: PoolTag) {
    if layout.size() == 0 {
        return;
    }
    let original = if starts_kernel_block(block, layout) {
        block.as_ptr()
    } else {
        // SAFETY: `allocate` put the data inside the kernel's block and wrote the block's address
        // just below it, inside the block.
        let header = unsafe { block.cast::<*mut u8>().sub(1) };
        // SAFETY: as above.
        unsafe { header.read() }
    };
    // SAFETY: `original` is what ExAllocatePool2 returned, with this tag; the caller does not use
    // the block again.
    unsafe { sys::ExFreePoolWithTag(original.cast(), tag.to_ulong()) };
}

/// The run-time backstop for paged memory (the `irql-backstop` feature, on by default): before a
/// paged block is dropped and freed, read the IRQL (one read of CR8 on x64) and, above
/// `APC_LEVEL`, stop with bug check 0xC4 / 0x11 exactly as Driver Verifier would, instead of letting
/// the kernel take a page fault at raised IRQL and crash somewhere less clear.
///
/// The type system already rules this out in safe code; the backstop catches what it cannot see:
/// `unsafe` code, tokens assumed at the wrong IRQL, and `static`s with interior mutability.
#[inline(always)]
pub(crate) fn check_free_irql<P: PoolType>(address: *const u8) {
    #[cfg(feature = "irql-backstop")]
    if P::PAGED {
        let irql = sys::KeGetCurrentIrql();
        if irql > sys::APC_LEVEL {
            let pool_type = sys::pool_type_for_flags(P::FLAGS).unwrap_or(sys::PagedPool);
            // SAFETY: a deliberate stop, with Driver Verifier's parameters for this violation.
            unsafe {
                sys::KeBugCheckEx(
                    sys::DRIVER_VERIFIER_DETECTED_VIOLATION,
                    0x11,
                    irql.into(),
                    pool_type as usize,
                    address as usize,
                )
            }
        }
    }
    #[cfg(not(feature = "irql-backstop"))]
    let _ = address;
}

/// An [`allocator_api2`] allocator over a non-paged pool with a tag: `allocator_api2`'s `Vec`, `Box`
/// and friends on stable Rust, each freed with `ExFreePoolWithTag` and its tag.
///
/// It is made from a token that allows the pool (`IRQL <= DISPATCH_LEVEL`), and it is
/// [`DispatchSafe`] but not [`HighSafe`](crate::HighSafe): collections using it cannot reach code
/// above `DISPATCH_LEVEL`, where they could neither grow nor be dropped.
///
/// Paged pool has no allocator: a collection hands out plain references to its memory, which could
/// then be read at `DISPATCH_LEVEL`. Paged data lives in a [`PagedBox`](crate::PagedBox), whose
/// contents are only reachable with a token.
///
/// ```
/// use allocator_api2::vec::Vec;
/// use ntpool::{NonPagedPool, Passive, PoolAllocator};
/// ntpool::pool_tag!(struct Doc = b"Doc1");
/// # ntpool::emulated::Kernel::new().run(|| {
/// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
/// let passive = unsafe { Passive::assume() };
/// let mut v = Vec::new_in(PoolAllocator::<Doc, NonPagedPool>::new(&passive));
/// v.try_reserve(3).unwrap();
/// v.extend([1, 2, 3]);
/// assert_eq!(v.iter().sum::<u32>(), 6);
/// # });
/// ```
pub struct PoolAllocator<G: Tag, P: NonPagedPoolType = crate::NonPagedPool> {
    _marker: PhantomData<(G, P)>,
}

impl<G: Tag, P: NonPagedPoolType> PoolAllocator<G, P> {
    /// The allocator, for code whose token allows pool `P`.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let _alloc = ntpool::PoolAllocator::<Doc>::new(&passive);
    /// # });
    /// ```
    pub fn new(_token: &impl Allows<P>) -> Self {
        PoolAllocator { _marker: PhantomData }
    }
}

impl<G: Tag, P: NonPagedPoolType> Clone for PoolAllocator<G, P> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<G: Tag, P: NonPagedPoolType> Copy for PoolAllocator<G, P> {}

impl<G: Tag, P: NonPagedPoolType> core::fmt::Debug for PoolAllocator<G, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "PoolAllocator({}, {})", G::TAG, P::NAME)
    }
}

// SAFETY: the allocator is non-paged; it owns nothing.
unsafe impl<G: Tag, P: NonPagedPoolType> DispatchSafe for PoolAllocator<G, P> {}

// SAFETY: blocks come from `allocate` and go back to `free` with the same layout, pool and tag, as the
// trait requires of callers; a block stays valid until freed; the allocator is a zero-sized value, so
// every copy frees what any other allocated.
unsafe impl<G: Tag, P: NonPagedPoolType> allocator_api2::alloc::Allocator for PoolAllocator<G, P> {
    #[cfg_attr(ntpool_emulated, track_caller)]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, allocator_api2::alloc::AllocError> {
        let block = allocate::<P>(layout, false, G::TAG).map_err(|AllocError| allocator_api2::alloc::AllocError)?;
        Ok(NonNull::slice_from_raw_parts(block, layout.size()))
    }

    #[cfg_attr(ntpool_emulated, track_caller)]
    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, allocator_api2::alloc::AllocError> {
        let block = allocate::<P>(layout, true, G::TAG).map_err(|AllocError| allocator_api2::alloc::AllocError)?;
        Ok(NonNull::slice_from_raw_parts(block, layout.size()))
    }

    unsafe fn deallocate(&self, block: NonNull<u8>, layout: Layout) {
        // SAFETY: the trait's contract: `block` was allocated by this allocator with `layout`.
        unsafe { free(block, layout, G::TAG) }
    }
}

// SAFETY: a vector owns its elements and its allocator, and reaches nothing else.
unsafe impl<T: DispatchSafe, A: allocator_api2::alloc::Allocator + DispatchSafe> DispatchSafe
    for allocator_api2::vec::Vec<T, A>
{
}
// SAFETY: a box owns its content and its allocator.
unsafe impl<T: DispatchSafe + ?Sized, A: allocator_api2::alloc::Allocator + DispatchSafe> DispatchSafe
    for allocator_api2::boxed::Box<T, A>
{
}

/// A `#[global_allocator]` over a non-paged pool with a tag, for drivers that use `alloc`'s `Box`,
/// `Vec` or `String` (or crates that do). Any alignment is honoured, and `alloc_zeroed` is
/// `ExAllocatePool2`'s own zeroing.
///
/// ntpool never registers it: a library must not choose the driver's global allocator. The global
/// allocator takes no token, so the IRQL rules do not reach `alloc`'s collections: use them at or
/// below `DISPATCH_LEVEL` only (see "What is out of reach" in the crate docs).
///
/// ```
/// use core::alloc::{GlobalAlloc, Layout};
/// ntpool::pool_tag!(struct Global = b"Glob");
/// static ALLOCATOR: ntpool::GlobalPoolAllocator<Global> = ntpool::GlobalPoolAllocator::new();
/// # ntpool::emulated::Kernel::new().run(|| {
/// let layout = Layout::from_size_align(100, 64).unwrap();
/// // SAFETY: a non-zero layout, freed below with the same layout.
/// let block = unsafe { ALLOCATOR.alloc_zeroed(layout) };
/// assert!(!block.is_null() && block as usize % 64 == 0);
/// // SAFETY: allocated above with this layout.
/// unsafe { ALLOCATOR.dealloc(block, layout) };
/// # });
/// ```
pub struct GlobalPoolAllocator<G: Tag, P: NonPagedPoolType = crate::NonPagedPool> {
    _marker: PhantomData<(G, P)>,
}

impl<G: Tag, P: NonPagedPoolType> GlobalPoolAllocator<G, P> {
    /// The allocator, to put in a `#[global_allocator]` static.
    ///
    /// ```
    /// ntpool::pool_tag!(struct Global = b"Glob");
    /// static ALLOCATOR: ntpool::GlobalPoolAllocator<Global> = ntpool::GlobalPoolAllocator::new();
    /// ```
    pub const fn new() -> Self {
        GlobalPoolAllocator { _marker: PhantomData }
    }
}

impl<G: Tag, P: NonPagedPoolType> Default for GlobalPoolAllocator<G, P> {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: blocks come from `allocate` and go back to `free` with the layout the caller passes back,
// as `GlobalAlloc` requires; failures are null, never a panic.
unsafe impl<G: Tag, P: NonPagedPoolType> core::alloc::GlobalAlloc for GlobalPoolAllocator<G, P> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        allocate::<P>(layout, false, G::TAG).map_or(core::ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        allocate::<P>(layout, true, G::TAG).map_or(core::ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        if let Some(block) = NonNull::new(block) {
            // SAFETY: the trait's contract: `block` came from this allocator with `layout`.
            unsafe { free(block, layout, G::TAG) }
        }
    }
}
