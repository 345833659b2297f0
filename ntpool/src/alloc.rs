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
use crate::pool::{NonPagedPoolType, PagedPool, PoolType};
use crate::safe::DispatchSafe;
use crate::sys::{self, POOL_FLAG_UNINITIALIZED};
use crate::tag::{PoolTag, Tag, TagSource};

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
/// `APC_LEVEL`, stop with bug check 0xC2 / 0x09 (`BAD_POOL_CALLER`: current IRQL, pool type,
/// address), instead of letting the drop take a page fault at raised IRQL and crash somewhere less
/// clear. That is the kernel's own code for a free at an invalid IRQL, the one a kernel without
/// Driver Verifier shows; the backstop is not Driver Verifier and cannot know whether it runs, so it
/// does not claim its 0xC4 / 0x11 (see docs/verifier.md).
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
            // SAFETY: a deliberate stop, with the kernel's code and parameters for this violation.
            unsafe { sys::KeBugCheckEx(sys::BAD_POOL_CALLER, 0x09, irql.into(), pool_type as usize, address as usize) }
        }
    }
    #[cfg(not(feature = "irql-backstop"))]
    let _ = (address, P::PAGED);
}

/// An [`allocator_api2`] allocator with a tag: `allocator_api2`'s `Vec`, `Box` and friends on stable
/// Rust, and hashbrown's `HashMap` and `HashSet`, each block freed with `ExFreePoolWithTag` and its
/// tag.
///
/// * **Non-paged**: it is made for a non-paged pool `P` (the default is
///   [`NonPagedPool`](crate::NonPagedPool)) from a token that allows the pool
///   (`IRQL <= DISPATCH_LEVEL`), and it is [`DispatchSafe`] but not [`HighSafe`](crate::HighSafe):
///   collections using it cannot reach code above `DISPATCH_LEVEL`, where they could neither grow
///   nor be dropped.
/// * **Tagged at compile time or at run time**: with a [`Tag`] type ([`PoolAllocator::new`]) the
///   allocator is zero-sized, and a `Vec` with it is as wide as one with the global allocator; with
///   a [`PoolTag`] known only at run time ([`PoolAllocator::with_tag`]) it stores the tag.
/// * **Both allocator-api2 versions**: it implements allocator-api2 0.4's `Allocator`
///   (re-exported as `ntpool::allocator_api2`) and, with the feature `allocator-api2-02`, 0.2's,
///   which hashbrown's collections take (re-exported as `ntpool::allocator_api2_02`; the feature
///   `hashbrown` turns it on and re-exports hashbrown as `ntpool::hashbrown`). Both are the same two
///   functions: one allocation path, one free.
///
/// ```
/// use ntpool::allocator_api2::vec::Vec; // the version ntpool implements, re-exported
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
///
/// A hashbrown map in non-paged pool (feature `hashbrown`):
///
/// ```
/// use ntpool::hashbrown::{DefaultHashBuilder, HashMap};
/// use ntpool::{Passive, PoolAllocator};
/// ntpool::pool_tag!(struct Doc = b"Doc1");
/// # ntpool::emulated::Kernel::new().run(|| {
/// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
/// let passive = unsafe { Passive::assume() };
/// let mut devices = HashMap::with_hasher_in(DefaultHashBuilder::default(), PoolAllocator::<Doc>::new(&passive));
/// devices.try_reserve(1)?;
/// devices.insert(7_u32, "disk");
/// assert_eq!(devices.get(&7), Some(&"disk"));
/// # Ok::<(), ntpool::hashbrown::TryReserveError>(())
/// # }).unwrap();
/// ```
///
/// # Out of memory: reserve, then push
///
/// The allocator never panics or bug-checks: when the pool has no block, it returns an error. But
/// a collection's infallible methods cannot return one: `Vec::push`, `insert`, `extend`,
/// `with_capacity_in` and the like, when they must grow and the allocation fails, call
/// `handle_alloc_error`, which in `no_std` code panics, and a driver's panic handler is a bug check
/// (wdk-panic's is 0x52504E43, `RPNC`): **an infallible `push` that runs out of pool brings the
/// machine down.** In a driver, grow with the fallible methods first, `try_reserve` (on `Vec`,
/// `HashMap` and `HashSet` alike), and then `push` or `insert`, which do not allocate once there is
/// room:
///
/// ```
/// use allocator_api2::vec::Vec;
/// use ntpool::{AllocError, Passive, PoolAllocator};
/// ntpool::pool_tag!(struct Doc = b"Doc1");
///
/// fn record(log: &mut Vec<u64, PoolAllocator<Doc>>, event: u64) -> Result<(), AllocError> {
///     log.try_reserve(1).map_err(|_| AllocError)?; // fails here, with an error, when the pool is out
///     log.push(event); // cannot fail now: there is room
///     Ok(())
/// }
/// # ntpool::emulated::Kernel::new().run(|| {
/// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
/// let passive = unsafe { Passive::assume() };
/// let mut log = Vec::new_in(PoolAllocator::<Doc>::new(&passive));
/// record(&mut log, 1)?;
/// assert_eq!(log, [1]);
/// # Ok::<(), AllocError>(())
/// # }).unwrap();
/// ```
///
/// The same for a hashbrown map or set: `try_reserve(1)`, then `insert`. hashbrown's
/// `HashMap::try_insert` is no fallible allocation: it fails when the key is already there, and
/// otherwise allocates as `insert` does.
///
/// ```
/// use ntpool::hashbrown::{DefaultHashBuilder, HashSet};
/// use ntpool::{AllocError, Passive, PoolAllocator};
/// ntpool::pool_tag!(struct Doc = b"Doc1");
///
/// fn open(handles: &mut HashSet<u32, DefaultHashBuilder, PoolAllocator<Doc>>, handle: u32) -> Result<bool, AllocError> {
///     handles.try_reserve(1).map_err(|_| AllocError)?;
///     Ok(handles.insert(handle)) // cannot grow now
/// }
/// # ntpool::emulated::Kernel::new().run(|| {
/// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
/// let passive = unsafe { Passive::assume() };
/// let mut handles = HashSet::with_hasher_in(DefaultHashBuilder::default(), PoolAllocator::<Doc>::new(&passive));
/// assert!(open(&mut handles, 4)?);
/// # Ok::<(), AllocError>(())
/// # }).unwrap();
/// ```
///
/// # No allocator of paged pool
///
/// A collection hands out plain references to its memory, which could then be read at
/// `DISPATCH_LEVEL`. So a paged allocator cannot be had on its own: `PoolAllocator<G, PagedPool>`
/// has no public constructor, and it is neither `Copy` nor `Clone` (nor `Default`). It exists only
/// inside a [`Paged`](crate::Paged) collection ([`PagedVec`](crate::PagedVec), ...), whose contents
/// are reached only through a token; what borrows it there (`vec.allocator()`) borrows that token
/// too.
///
/// # Invariants
/// A `PoolAllocator<G, P>` of a paged pool `P` was made by [`Paged`](crate::Paged) for the
/// collection it lives in, and is never handed out by value.
pub struct PoolAllocator<G: TagSource, P: PoolType = crate::NonPagedPool> {
    /// Zero-sized for a [`Tag`] type; the tag itself for a run-time [`PoolTag`].
    tag: G,
    _pool: PhantomData<P>,
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
        PoolAllocator { tag: G::default(), _pool: PhantomData }
    }
}

impl<P: NonPagedPoolType> PoolAllocator<PoolTag, P> {
    /// The allocator with a tag known only at run time, for code whose token allows pool `P`. It
    /// stores the tag (four bytes).
    ///
    /// ```
    /// use allocator_api2::vec::Vec;
    /// use ntpool::{Passive, PoolAllocator, PoolTag};
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { Passive::assume() };
    /// let tag = PoolTag::from_raw(u32::from_le_bytes(*b"Req7")).unwrap(); // say, from a request
    /// let mut v = Vec::new_in(PoolAllocator::<PoolTag>::with_tag(&passive, tag));
    /// v.try_reserve(1).unwrap();
    /// v.push(1_u8);
    /// assert_eq!(v.allocator().tag().to_string(), "Req7");
    /// # });
    /// ```
    pub fn with_tag(_token: &impl Allows<P>, tag: PoolTag) -> Self {
        PoolAllocator { tag, _pool: PhantomData }
    }
}

impl<G: TagSource> PoolAllocator<G, PagedPool> {
    /// The allocator of paged pool that a [`Paged`](crate::Paged) collection is made with, for it
    /// alone.
    ///
    /// # Safety
    /// The allocator goes into one collection that a `Paged` owns, and is never handed out by value.
    pub(crate) unsafe fn for_paged_collection(tag: G) -> Self {
        // INVARIANT: the caller's guarantee.
        PoolAllocator { tag, _pool: PhantomData }
    }
}

impl<G: TagSource, P: PoolType> PoolAllocator<G, P> {
    /// The tag every block is allocated and freed with.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// assert_eq!(ntpool::PoolAllocator::<Doc>::new(&passive).tag().to_string(), "Doc1");
    /// # });
    /// ```
    pub fn tag(&self) -> PoolTag {
        self.tag.tag()
    }

    /// A block for `layout`, zeroed or not, with the allocator's tag: `allocate` and
    /// `allocate_zeroed` of both allocator-api2 versions.
    #[cfg_attr(ntpool_emulated, track_caller)]
    #[inline(always)]
    fn allocate_block(&self, layout: Layout, zeroed: bool) -> Result<NonNull<[u8]>, AllocError> {
        let block = allocate::<P>(layout, zeroed, self.tag.tag())?;
        Ok(NonNull::slice_from_raw_parts(block, layout.size()))
    }

    /// Frees a block with the allocator's tag, after the run-time backstop for a paged pool:
    /// `deallocate` of both allocator-api2 versions.
    ///
    /// # Safety
    /// `block` came from `allocate_block(layout, _)` of this allocator (or one with the same tag and
    /// pool) and is not used afterwards.
    #[inline(always)]
    unsafe fn deallocate_block(&self, block: NonNull<u8>, layout: Layout) {
        check_free_irql::<P>(block.as_ptr());
        // SAFETY: the caller's contract: a block `allocate::<P>` made for `layout` and this tag. The
        // IRQL allows pool `P`: a non-paged allocator is not `HighSafe`, a paged one is reached only
        // through a token, and the backstop above checks it.
        unsafe { free(block, layout, self.tag.tag()) }
    }
}

impl<G: TagSource, P: NonPagedPoolType> Clone for PoolAllocator<G, P> {
    fn clone(&self) -> Self {
        *self
    }
}
// Not for a paged pool: see "No allocator of paged pool".
impl<G: TagSource, P: NonPagedPoolType> Copy for PoolAllocator<G, P> {}

impl<G: TagSource, P: PoolType> core::fmt::Debug for PoolAllocator<G, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "PoolAllocator({}, {})", self.tag.tag(), P::NAME)
    }
}

// SAFETY: the allocator is non-paged; it owns nothing (its tag is plain data).
unsafe impl<G: TagSource, P: NonPagedPoolType> DispatchSafe for PoolAllocator<G, P> {}

/// `PoolAllocator`'s `Allocator` impl for one allocator-api2 version, the same for each: every
/// method is one call to `allocate_block` or `deallocate_block`.
macro_rules! allocator_api2_impl {
    ($api:ident) => {
        // SAFETY: blocks come from `allocate` and go back to `free` with the same layout, pool and tag,
        // as the trait requires of callers; a block stays valid until freed; every copy of a
        // (non-paged) allocator has the same tag and pool, so it frees what any other allocated.
        unsafe impl<G: TagSource, P: PoolType> $api::alloc::Allocator for PoolAllocator<G, P> {
            #[cfg_attr(ntpool_emulated, track_caller)]
            fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, $api::alloc::AllocError> {
                self.allocate_block(layout, false).map_err(|AllocError| $api::alloc::AllocError)
            }

            #[cfg_attr(ntpool_emulated, track_caller)]
            fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, $api::alloc::AllocError> {
                self.allocate_block(layout, true).map_err(|AllocError| $api::alloc::AllocError)
            }

            unsafe fn deallocate(&self, block: NonNull<u8>, layout: Layout) {
                // SAFETY: the trait's contract: `block` was allocated by this allocator (or a copy)
                // with `layout`, and is not used afterwards.
                unsafe { self.deallocate_block(block, layout) }
            }
        }
    };
}

allocator_api2_impl!(allocator_api2);
#[cfg(feature = "allocator-api2-02")]
allocator_api2_impl!(allocator_api2_02);

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

// SAFETY: a map owns its keys, values, hasher and allocator, and reaches nothing else; hashing and
// comparing run the keys' own code, on `DispatchSafe` keys.
#[cfg(feature = "hashbrown")]
unsafe impl<K, V, S, A> DispatchSafe for hashbrown::HashMap<K, V, S, A>
where
    K: DispatchSafe,
    V: DispatchSafe,
    S: DispatchSafe,
    A: allocator_api2_02::alloc::Allocator + DispatchSafe,
{
}
// SAFETY: as for the map: a set owns its elements, hasher and allocator.
#[cfg(feature = "hashbrown")]
unsafe impl<T, S, A> DispatchSafe for hashbrown::HashSet<T, S, A>
where
    T: DispatchSafe,
    S: DispatchSafe,
    A: allocator_api2_02::alloc::Allocator + DispatchSafe,
{
}
// SAFETY: hashbrown's default hash builder is seeds, plain data that owns and reaches no memory.
#[cfg(feature = "hashbrown")]
unsafe impl DispatchSafe for hashbrown::DefaultHashBuilder {}

/// A `#[global_allocator]` over a non-paged pool with a tag, for drivers that use `alloc`'s `Box`,
/// `Vec` or `String` (or crates that do). Any alignment is honoured, and `alloc_zeroed` is
/// `ExAllocatePool2`'s own zeroing.
///
/// ntpool never registers it: a library must not choose the driver's global allocator. The global
/// allocator takes no token, so the IRQL rules do not reach `alloc`'s collections: use them at or
/// below `DISPATCH_LEVEL` only (see "What is out of reach" in the crate docs).
///
/// Its tag is a [`Tag`] type, never a run-time [`PoolTag`]: a global allocator is a `static` built
/// with no argument ([`GlobalPoolAllocator::new`] is a `const fn`), before any tag could be known.
/// For a tag known only at run time, use [`PoolAllocator::with_tag`] with allocator-api2's
/// collections, or the `try_new_with_tag` constructors of the boxes.
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
