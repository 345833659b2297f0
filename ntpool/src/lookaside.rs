//! [`LookasideList`]: a typed kernel lookaside list (`LOOKASIDE_LIST_EX`) of fixed-size entries of
//! one pool and one tag, handing out owning [`LookasideBox`]es that go back to the list on drop.

use core::alloc::Layout;
use core::cell::UnsafeCell;
use core::fmt;
use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::ptr::NonNull;

use crate::alloc::{self, AllocError};
use crate::boxed::{NonPagedBox, PoolBox};
use crate::irql::Allows;
use crate::pool::{NonPagedPool, NonPagedPoolType, PoolType};
use crate::release::{Release, sealed};
use crate::safe::DispatchSafe;
use crate::sys::{self, GENERAL_LOOKASIDE_POOL, LookasideCallbacks, POOL_TYPE, PVOID, SIZE_T, ULONG};
use crate::tag::{PoolTag, Tag, TagSource};

/// Room for any of the three list structures: `LOOKASIDE_LIST_EX` (0x60 bytes),
/// `NPAGED_LOOKASIDE_LIST` and `PAGED_LOOKASIDE_LIST` (0x80 bytes, cache aligned: on 64 bytes on x64,
/// 128 on ARM64). Each starts with the `GENERAL_LOOKASIDE_POOL` fields.
#[cfg_attr(not(target_arch = "aarch64"), repr(C, align(64)))]
#[cfg_attr(target_arch = "aarch64", repr(C, align(128)))]
struct RawList(UnsafeCell<MaybeUninit<[u8; 0x80]>>);

// Room and alignment for the largest of the three, on every architecture.
const _: () = assert!(
    size_of::<RawList>() >= size_of::<sys::NPAGED_LOOKASIDE_LIST>()
        && align_of::<RawList>() >= align_of::<sys::NPAGED_LOOKASIDE_LIST>()
        && align_of::<RawList>() >= align_of::<sys::LOOKASIDE_LIST_EX>()
);

/// `POOL_NX_ALLOCATION`: the `Flags` of `ExInitializeNPagedLookasideList` that makes its entries
/// no-execute (the pool type becomes `NonPagedPoolNx`).
const POOL_NX_ALLOCATION: ULONG = 0x200;

/// The alignment of every pool block below a page on x64, and so of every entry.
const ENTRY_ALIGN: usize = 16;

/// A kernel lookaside list of `T`-sized entries in pool `P`, tagged `G`: a cache of free blocks that
/// makes allocating and freeing fixed-size objects cheap, at up to `DISPATCH_LEVEL` for a non-paged
/// pool. The tag is a [`Tag`] type ([`LookasideList::try_new`]), or a [`PoolTag`] known only at run
/// time ([`LookasideList::try_new_with_tag`]), which the list stores.
///
/// * The `LOOKASIDE_LIST_EX` lives in a non-paged, cache-aligned block of its own (tagged `G`), so it
///   never moves after it is initialized, while the `LookasideList` value itself moves freely.
/// * [`LookasideList::try_alloc`] hands out a [`LookasideBox`] that borrows the list: it goes back to
///   the list when dropped (`ExFreeToLookasideListEx`), and the list cannot be dropped (deleted) or
///   moved while one is out.
/// * Dropping the list deletes it (`ExDeleteLookasideListEx`), which frees the entries it keeps.
///   Keep it in the driver's state and drop it before `DriverUnload` returns: a list left behind is
///   bug check 0xC7 (0xCE without Driver Verifier) under the emulated kernel's [`verify_unload`][verify_unload].
/// * The kernel's allocate and free callbacks are ntpool's: every entry is allocated through ntpool
///   with tag `G` and freed with `ExFreePoolWithTag` and tag `G`.
/// * Where the kernel lacks `ExInitializeLookasideListEx` (Wine), the list is an
///   `NPAGED_LOOKASIDE_LIST` or `PAGED_LOOKASIDE_LIST` instead, with the same behaviour, but for
///   one thing: the free callback of those lists is not given the list, so with a run-time tag the
///   entries the list still keeps when it is deleted are freed with `ExFreePool`, as the kernel's
///   default callback frees them (entries going back to the pool while the list lives are freed with
///   `ExFreePoolWithTag` and the tag all the same).
/// * IRQL: allocating and freeing entries needs a token that allows `P`; an entry of a paged list is
///   not [`DispatchSafe`] and cannot be dropped at `DISPATCH_LEVEL`, a non-paged one can.
///
/// `T` must be aligned on at most 16 bytes (the pool's alignment) and smaller than 4 GiB.
///
/// ```
/// use ntpool::{LookasideList, Passive, SpinLock};
/// ntpool::pool_tag!(struct Irps = b"NpIr");
///
/// #[derive(ntpool::DispatchSafe)]
/// struct Context { sequence: u64, bytes: u32 }
///
/// let kernel = ntpool::emulated::Kernel::new();
/// kernel.run(|| {
///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
///     let mut passive = unsafe { Passive::assume() };
///     let contexts = LookasideList::<Context, Irps>::try_new(&passive)?;
///     let context = contexts.try_alloc(&passive, Context { sequence: 1, bytes: 512 })?;
///     let pending = SpinLock::new(None);
///     pending.with(&mut passive, context, |_dispatch, slot, context| *slot = Some(context));
///     // At DISPATCH_LEVEL, under the lock: the entry goes back to the list.
///     pending.with(&mut passive, (), |_dispatch, slot, ()| drop(slot.take()));
///     let again = contexts.try_alloc(&passive, Context { sequence: 2, bytes: 64 })?;
///     assert_eq!(contexts.statistics().allocate_misses, 1); // the second came from the list
///     drop(again);
///     Ok::<(), ntpool::AllocError>(())
/// })?; // the list is deleted here, and the entries it kept are freed with their tag
/// assert!(kernel.verify_unload().is_ok());
/// # Ok::<(), ntpool::AllocError>(())
/// ```
///
/// # Invariants
/// `raw` holds a list of the kind `callbacks` names, initialized with this type's callbacks for
/// entries of [`LookasideList::ENTRY_SIZE`] bytes of pool `P` tagged with `raw`'s own tag (`G`'s,
/// or the run-time tag it stores), and not deleted; every entry on it is such a block.
///
#[cfg_attr(ntpool_emulated, doc = "[verify_unload]: crate::emulated::Kernel::verify_unload")]
#[cfg_attr(
    not(ntpool_emulated),
    doc = "[verify_unload]: https://docs.rs/ntpool/latest/x86_64-unknown-linux-gnu/ntpool/emulated/struct.Kernel.html#method.verify_unload"
)]
pub struct LookasideList<T, G: TagSource, P: PoolType = NonPagedPool> {
    raw: NonPagedBox<RawList, G>,
    callbacks: LookasideCallbacks,
    _marker: PhantomData<(fn() -> T, P)>,
}

// SAFETY: the kernel list is made for concurrent use (interlocked SList, atomically bumped counters);
// entries carry `T`s between threads, hence `T: Send`.
unsafe impl<T: Send, G: TagSource, P: PoolType> Sync for LookasideList<T, G, P> {}
// SAFETY: as above; the list structure stays in its block when the value moves.
unsafe impl<T: Send, G: TagSource, P: PoolType> Send for LookasideList<T, G, P> {}
// SAFETY: a non-paged list owns only non-paged memory (its structure and the free entries, which hold
// no `T`), and deleting it is allowed at DISPATCH_LEVEL.
unsafe impl<T, G: TagSource, P: NonPagedPoolType> DispatchSafe for LookasideList<T, G, P> {}

/// A lookaside list's counters, as the kernel keeps them in the list.
///
/// ```
/// let s = ntpool::LookasideStatistics::default();
/// assert_eq!(s.total_allocates - s.allocate_misses, 0); // served from the list
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LookasideStatistics {
    /// Allocations (`TotalAllocates`).
    pub total_allocates: u32,
    /// Allocations the list had no free entry for (`AllocateMisses`): the pool served them.
    pub allocate_misses: u32,
    /// Frees (`TotalFrees`).
    pub total_frees: u32,
    /// Frees the list did not keep (`FreeMisses`): the entry went back to the pool.
    pub free_misses: u32,
    /// Free entries the list holds now.
    pub free_entries: u16,
    /// How many it keeps at most right now (`Depth`, adjusted by the kernel).
    pub depth: u16,
}

impl<T, G: TagSource, P: PoolType> LookasideList<T, G, P> {
    /// The size of each entry: `T`'s, at least an `SLIST_ENTRY` (16 bytes).
    ///
    /// ```
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// assert_eq!(ntpool::LookasideList::<u8, Doc>::ENTRY_SIZE, 16);
    /// assert_eq!(ntpool::LookasideList::<[u64; 5], Doc>::ENTRY_SIZE, 40);
    /// ```
    pub const ENTRY_SIZE: usize = {
        assert!(align_of::<T>() <= ENTRY_ALIGN, "lookaside entries are aligned on 16 bytes at most");
        assert!(size_of::<T>() <= u32::MAX as usize, "lookaside entries are smaller than 4 GiB");
        if size_of::<T>() < size_of::<sys::SLIST_ENTRY>() { size_of::<sys::SLIST_ENTRY>() } else { size_of::<T>() }
    };
}

impl<T, G: Tag, P: PoolType> LookasideList<T, G, P> {
    /// Allocates the list structure (non-paged, tagged `G`) and initializes the list:
    /// `ExInitializeLookasideListEx`, or on kernels without it `ExInitializeNPagedLookasideList` /
    /// `ExInitializePagedLookasideList`. Fails only when the structure cannot be allocated or the
    /// kernel refuses the list.
    ///
    /// ```
    /// use ntpool::{LookasideList, PagedPool, Passive};
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // Wine has no ExInitializeLookasideListEx: the legacy routines serve.
    /// let wine = ntpool::emulated::Kernel::builder().lookaside_list_ex(false).build();
    /// wine.run(|| {
    ///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    ///     let passive = unsafe { Passive::assume() };
    ///     let names = LookasideList::<[u16; 32], Doc, PagedPool>::try_new(&passive).unwrap();
    ///     let name = names.try_alloc(&passive, [0; 32]).unwrap();
    ///     assert_eq!(name.get(&passive).len(), 32);
    /// });
    /// assert!(wine.verify_unload().is_ok());
    /// ```
    #[cfg_attr(ntpool_emulated, track_caller)]
    pub fn try_new<I: Allows<P> + Allows<NonPagedPool>>(token: &I) -> Result<Self, AllocError> {
        LookasideList::try_new_in(token, G::default())
    }

    /// The allocate and free callbacks this type gives `ExInitializeLookasideListEx`: the allocate
    /// callback returns an uninitialized block of pool `P` tagged `G`, allocated through ntpool's
    /// allocation path (the list's pool type and tag are ignored), or null; the free callback frees
    /// the entry with `ExFreePoolWithTag` and tag `G`. Both ignore the list argument.
    ///
    /// For a `LOOKASIDE_LIST_EX` managed by hand that should allocate as this type's lists do (the
    /// benchmark of `cargo xtask bench` compares such a list with this type). The callbacks do not
    /// depend on `T`.
    ///
    /// ```
    /// use ntpool::LookasideList;
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// let kernel = ntpool::emulated::Kernel::new();
    /// kernel.run(|| {
    ///     let (allocate, free) = LookasideList::<u64, Doc>::ex_callbacks();
    ///     let (allocate, free) = (allocate.unwrap(), free.unwrap());
    ///     let tag = u32::from_le_bytes(*b"Doc1");
    ///     // SAFETY: PASSIVE_LEVEL allows non-paged pool; the callbacks do not use the list.
    ///     let entry = unsafe { allocate(ntpool::sys::NonPagedPoolNx, 16, tag, core::ptr::null_mut()) };
    ///     assert!(!entry.is_null());
    ///     // SAFETY: allocated above by the allocate callback, not used afterwards.
    ///     unsafe { free(entry, core::ptr::null_mut()) };
    /// });
    /// assert!(kernel.verify_unload().is_ok());
    /// let usage = kernel.pool_usage();
    /// let row = usage.rows.iter().find(|row| row.tag.to_string() == "Doc1").unwrap();
    /// assert_eq!((row.allocs, row.frees), (1, 1)); // allocated and freed with tag Doc1
    /// ```
    pub const fn ex_callbacks() -> (sys::PALLOCATE_FUNCTION_EX, sys::PFREE_FUNCTION_EX) {
        Self::ex_callbacks_of_the_list()
    }
}

impl<T, P: PoolType> LookasideList<T, PoolTag, P> {
    /// Allocates the list structure (non-paged) and initializes the list, as
    /// [`LookasideList::try_new`] does, with `tag`, a tag known only at run time, for the structure
    /// and every entry. The list stores the tag; entries are allocated with it and freed with
    /// `ExFreePoolWithTag` and it (see [`LookasideList`] for the one exception, on kernels without
    /// `ExInitializeLookasideListEx`).
    ///
    /// ```
    /// use ntpool::{LookasideList, Passive, PoolTag};
    /// let kernel = ntpool::emulated::Kernel::new();
    /// kernel.run(|| {
    ///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    ///     let passive = unsafe { Passive::assume() };
    ///     let tag = PoolTag::from_raw(u32::from_le_bytes(*b"Req7")).unwrap(); // say, from a request
    ///     let list = LookasideList::<u64, PoolTag>::try_new_with_tag(&passive, tag).unwrap();
    ///     let entry = list.try_alloc(&passive, 41).unwrap();
    ///     assert_eq!(*entry + 1, 42);
    ///     assert!(kernel.outstanding().iter().all(|block| block.tag.to_string() == "Req7"));
    /// }); // the entry went back to the list, which was deleted: the entry freed with its tag
    /// assert!(kernel.verify_unload().is_ok());
    /// let usage = kernel.pool_usage();
    /// assert_eq!((usage.rows[0].tag.to_string().as_str(), usage.rows[0].allocs, usage.rows[0].frees), ("Req7", 2, 2));
    /// ```
    #[cfg_attr(ntpool_emulated, track_caller)]
    pub fn try_new_with_tag<I: Allows<P> + Allows<NonPagedPool>>(token: &I, tag: PoolTag) -> Result<Self, AllocError> {
        LookasideList::try_new_in(token, tag)
    }
}

impl<T, G: TagSource, P: PoolType> LookasideList<T, G, P> {
    /// A list whose structure and entries are tagged with `tag`: [`LookasideList::try_new`] and
    /// [`LookasideList::try_new_with_tag`].
    #[cfg_attr(ntpool_emulated, track_caller)]
    fn try_new_in<I: Allows<P> + Allows<NonPagedPool>>(token: &I, tag: G) -> Result<Self, AllocError> {
        let raw = NonPagedBox::try_new_in(token, tag, RawList(UnsafeCell::new(MaybeUninit::zeroed())))?;
        let list = raw.0.get();
        let size = Self::ENTRY_SIZE as SIZE_T;
        let tag = raw.tag().to_ulong();
        let pool_type = sys::pool_type_for_flags(P::FLAGS).ok_or(AllocError)?;
        let callbacks = if sys::uses_lookaside_list_ex() {
            let (allocate, free) = Self::ex_callbacks_of_the_list();
            // SAFETY: the structure is in its own non-paged, cache-aligned block, which does not
            // move until it is freed after `ExDeleteLookasideListEx` (`Drop`); the callbacks are this
            // type's.
            let status =
                unsafe { sys::ExInitializeLookasideListEx(list.cast(), allocate, free, pool_type, 0, size, tag, 0) };
            if status < 0 {
                return Err(AllocError);
            }
            LookasideCallbacks::Ex
        } else if P::PAGED {
            // SAFETY: as above; the token allows paged pool, so the IRQL is at most APC_LEVEL.
            unsafe {
                sys::ExInitializePagedLookasideList(
                    list.cast(),
                    Some(allocate_entry::<G, P>),
                    Some(free_entry::<G>),
                    0,
                    size,
                    tag,
                    0,
                )
            };
            LookasideCallbacks::Legacy
        } else {
            // Any no-execute pool type (`NonPagedPoolNx`, or its cache-aligned form) keeps the bit.
            let flags = if pool_type & sys::NonPagedPoolNx != 0 { POOL_NX_ALLOCATION } else { 0 };
            // SAFETY: as above.
            unsafe {
                sys::ExInitializeNPagedLookasideList(
                    list.cast(),
                    Some(allocate_entry::<G, P>),
                    Some(free_entry::<G>),
                    flags,
                    size,
                    tag,
                    0,
                )
            };
            LookasideCallbacks::Legacy
        };
        // INVARIANT: initialized above with this type's callbacks, size, pool and tag.
        Ok(LookasideList { raw, callbacks, _marker: PhantomData })
    }

    /// The allocate and free callbacks of this type's `LOOKASIDE_LIST_EX`s: for a [`Tag`] type,
    /// [`LookasideList::ex_callbacks`]; for a run-time [`PoolTag`], the same but that both take the
    /// list's tag (the free callback reads it from the list).
    const fn ex_callbacks_of_the_list() -> (sys::PALLOCATE_FUNCTION_EX, sys::PFREE_FUNCTION_EX) {
        (Some(allocate_entry_ex::<G, P>), Some(free_entry_ex::<G>))
    }

    /// The list's `GENERAL_LOOKASIDE_POOL` fields.
    fn header(&self) -> *mut GENERAL_LOOKASIDE_POOL {
        self.raw.0.get().cast()
    }

    /// Takes an entry from the list (or from the pool when the list has none) and moves `value`
    /// into it. The entry is not zeroed before: it may be a recycled one.
    ///
    /// ```
    /// use ntpool::{LookasideList, Passive};
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { Passive::assume() };
    /// let list = LookasideList::<u64, Doc>::try_new(&passive).unwrap();
    /// let mut entry = list.try_alloc(&passive, 41).unwrap();
    /// *entry += 1; // non-paged: dereferences
    /// assert_eq!(*entry, 42);
    /// # });
    /// ```
    #[cfg_attr(ntpool_emulated, track_caller)]
    pub fn try_alloc<'a>(&'a self, _token: &impl Allows<P>, value: T) -> Result<LookasideBox<'a, T, G, P>, AllocError> {
        // The list's allocate callback (`allocate_entry`, which `allocate_entry_ex` forwards to),
        // called directly: the list holds this type's callbacks whatever its kind (invariant).
        let miss = |pool, size, tag| {
            // SAFETY: the callback's contract: called with the list's pool type, entry size and tag.
            unsafe { allocate_entry::<G, P>(pool, size, tag) }
        };
        // SAFETY: the list is initialized and not deleted (invariant), the token allows pool `P`, and
        // `miss` is what the list's allocate callback does.
        let entry = unsafe { sys::allocate_from_lookaside(self.header(), miss) };
        let entry = NonNull::new(entry.cast::<T>()).ok_or(AllocError)?;
        // SAFETY: an entry is a block of `ENTRY_SIZE >= size_of::<T>()` bytes, 16-byte aligned
        // (`align_of::<T>() <= 16`), owned by the caller of the allocate routine.
        unsafe { entry.write(value) };
        // SAFETY: an entry of this list, holding a valid `T`.
        Ok(unsafe { PoolBox::from_parts(entry, self) })
    }

    /// The list's counters.
    ///
    /// ```
    /// use ntpool::{LookasideList, Passive};
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { Passive::assume() };
    /// let list = LookasideList::<u32, Doc>::try_new(&passive).unwrap();
    /// drop(list.try_alloc(&passive, 1).unwrap());
    /// let s = list.statistics();
    /// assert_eq!((s.total_allocates, s.total_frees, s.free_entries), (1, 1, 1)); // kept for reuse
    /// # });
    /// ```
    pub fn statistics(&self) -> LookasideStatistics {
        let list = self.header();
        let read = |field: *mut u32| {
            // SAFETY: the list is live (invariant); its counters are aligned `ULONG`s that the inline
            // routines only ever access atomically (`sys::lookaside`'s `bump`), as here.
            unsafe { core::sync::atomic::AtomicU32::from_ptr(field) }.load(core::sync::atomic::Ordering::Relaxed)
        };
        LookasideStatistics {
            total_allocates: read(sys::lookaside_field!(list, TotalAllocates: u32)),
            allocate_misses: read(sys::lookaside_field!(list, AllocateMisses: u32)),
            total_frees: read(sys::lookaside_field!(list, TotalFrees: u32)),
            free_misses: read(sys::lookaside_field!(list, FreeMisses: u32)),
            // SAFETY: as above; the list head is an SLIST_HEADER.
            free_entries: unsafe { sys::ExQueryDepthSList(sys::lookaside_field!(list, ListHead: sys::SLIST_HEADER)) },
            // SAFETY: as above; `Depth` is an aligned `USHORT` that the inline free routine reads
            // volatile and only the kernel writes.
            depth: unsafe { sys::lookaside_field!(list, Depth: u16).read_volatile() },
        }
    }
}

impl<T, G: TagSource, P: PoolType> Drop for LookasideList<T, G, P> {
    fn drop(&mut self) {
        // A paged list's delete frees paged entries: not at DISPATCH_LEVEL (a paged list is not
        // `DispatchSafe`, so it never gets there; this is the backstop).
        alloc::check_free_irql::<P>(self.header().cast());
        let list = self.raw.0.get();
        match (self.callbacks, P::PAGED) {
            // SAFETY: initialized with ExInitializeLookasideListEx and deleted once, here; no entry is
            // out (they borrow the list).
            (LookasideCallbacks::Ex, _) => unsafe { sys::ExDeleteLookasideListEx(list.cast()) },
            // SAFETY: as above, with ExInitializePagedLookasideList.
            (LookasideCallbacks::Legacy, true) => unsafe { sys::ExDeletePagedLookasideList(list.cast()) },
            // SAFETY: as above, with ExInitializeNPagedLookasideList.
            (LookasideCallbacks::Legacy, false) => unsafe { sys::ExDeleteNPagedLookasideList(list.cast()) },
        }
    }
}

impl<T, G: TagSource, P: PoolType> fmt::Debug for LookasideList<T, G, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LookasideList")
            .field("tag", &self.raw.tag())
            .field("pool", &P::NAME)
            .field("statistics", &self.statistics())
            .finish()
    }
}

/// The layout ntpool allocates an entry of `size` bytes with.
fn entry_layout(size: SIZE_T) -> Option<Layout> {
    Layout::from_size_align(usize::try_from(size).ok()?, ENTRY_ALIGN).ok()
}

/// The tag an entry of a list tagged `G` is allocated with: `G`'s for a [`Tag`] type; for a run-time
/// [`PoolTag`], the list's, which the kernel passes the allocate callback (`list_tag`, the tag the list
/// was initialized with); `None` if that is not a valid tag.
fn entry_tag<G: TagSource>(list_tag: ULONG) -> Option<PoolTag> {
    match G::TYPE_TAG {
        Some(tag) => Some(tag),
        None => PoolTag::from_raw(list_tag).ok(),
    }
}

/// Frees an entry with `ExFreePoolWithTag` and `tag`.
///
/// # Safety
/// `buffer` is an entry that `allocate_entry` allocated with `tag`, and nobody uses it any more.
#[inline(never)]
unsafe fn free_tagged_entry(buffer: PVOID, tag: PoolTag) {
    // SAFETY: the caller's contract.
    unsafe { sys::ExFreePoolWithTag(buffer, tag.to_ulong()) };
}

/// ntpool's callbacks for the kernel, with the ABI `$abi` (see `sys::lookaside`).
macro_rules! entry_callbacks {
    ($abi:literal) => {
        /// The allocate callback of a legacy list: an uninitialized block of pool `P` tagged `G` (for a
        /// run-time tag, the list's: `tag`), through ntpool's allocation path.
        #[inline(never)]
        unsafe extern $abi fn allocate_entry<G: TagSource, P: PoolType>(
            _pool: POOL_TYPE,
            size: SIZE_T,
            tag: ULONG,
        ) -> PVOID {
            let Some(layout) = entry_layout(size) else { return core::ptr::null_mut() };
            let Some(tag) = entry_tag::<G>(tag) else { return core::ptr::null_mut() };
            alloc::allocate::<P>(layout, false, tag).map_or(core::ptr::null_mut(), |block| block.as_ptr().cast())
        }

        /// The allocate callback of a `LOOKASIDE_LIST_EX`.
        unsafe extern $abi fn allocate_entry_ex<G: TagSource, P: PoolType>(
            pool: POOL_TYPE,
            size: SIZE_T,
            tag: ULONG,
            _list: *mut sys::LOOKASIDE_LIST_EX,
        ) -> PVOID {
            // SAFETY: the same callback without the list, which it does not need.
            unsafe { allocate_entry::<G, P>(pool, size, tag) }
        }

        /// The free callback of a legacy list: `ExFreePoolWithTag` with tag `G`. A legacy list does not
        /// pass its free callback the list, so for a run-time tag the callback cannot know it: it
        /// frees with `ExFreePool`, as the kernel's default callback does.
        unsafe extern $abi fn free_entry<G: TagSource>(buffer: PVOID) {
            match G::TYPE_TAG {
                // SAFETY: the kernel passes an entry of the list, which `allocate_entry` allocated
                // with tag `G` and nobody uses any more.
                Some(tag) => unsafe { free_tagged_entry(buffer, tag) },
                // SAFETY: as above; `ExFreePool` frees a block of any tag but a protected one, which
                // a `PoolTag` never is.
                None => unsafe { sys::ExFreePool(buffer) },
            }
        }

        /// The free callback of a `LOOKASIDE_LIST_EX`: `ExFreePoolWithTag` with tag `G` (for a
        /// run-time tag, the list's).
        unsafe extern $abi fn free_entry_ex<G: TagSource>(buffer: PVOID, list: *mut sys::LOOKASIDE_LIST_EX) {
            let tag = match G::TYPE_TAG {
                Some(tag) => Some(tag),
                // SAFETY: the kernel passes the live list the entry belongs to (null only by a caller
                // of `ex_callbacks`, which exists for `Tag` types alone); its tag was written when it
                // was initialized, and only read since.
                None if !list.is_null() => unsafe { PoolTag::from_raw((*list).L.Tag) }.ok(),
                None => None,
            };
            match tag {
                // SAFETY: the kernel passes an entry of the list, which `allocate_entry` allocated
                // with the list's tag and nobody uses any more.
                Some(tag) => unsafe { free_tagged_entry(buffer, tag) },
                // SAFETY: as above; not a protected tag.
                None => unsafe { sys::ExFreePool(buffer) },
            }
        }
    };
}
#[cfg(ntpool_emulated)]
entry_callbacks!("system-unwind");
#[cfg(not(ntpool_emulated))]
entry_callbacks!("system");

/// An entry of a [`LookasideList`] holding a `T`: dropping it drops the `T` and gives the entry back
/// to the list (`ExFreeToLookasideListEx`). It borrows the list, so it cannot outlive it.
///
/// For a non-paged list it dereferences and is [`DispatchSafe`] (when `T` is): it may be used and
/// dropped at `DISPATCH_LEVEL`. For a paged list it is reached with a token ([`LookasideBox::get`])
/// and cannot enter code at `DISPATCH_LEVEL`.
///
/// ```
/// use ntpool::{LookasideList, PagedPool, Passive};
/// ntpool::pool_tag!(struct Doc = b"Doc1");
/// # ntpool::emulated::Kernel::new().run(|| {
/// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
/// let passive = unsafe { Passive::assume() };
/// let list = LookasideList::<[u8; 64], Doc, PagedPool>::try_new(&passive).unwrap();
/// let mut entry = list.try_alloc(&passive, [0; 64]).unwrap();
/// entry.get_mut(&passive)[0] = 1; // paged: through a token
/// assert_eq!(entry.get(&passive)[0], 1);
/// # });
/// ```
///
/// It is a [`PoolBox`] whose owner is the list: the box's invariant, with an entry of that list (at
/// least an `SLIST_ENTRY`, 16-byte aligned) holding the `T`.
pub type LookasideBox<'a, T, G, P = NonPagedPool> = PoolBox<T, &'a LookasideList<T, G, P>, P>;

impl<T, G: TagSource, P: PoolType> sealed::Sealed for &LookasideList<T, G, P> {}

// SAFETY: an entry goes back to the list it came from (`ExFreeToLookasideListEx`), which is live for
// as long as it is borrowed; a list of a non-paged pool is non-paged and takes entries back at
// DISPATCH_LEVEL.
unsafe impl<T, G: TagSource, P: PoolType> Release<P> for &LookasideList<T, G, P> {
    unsafe fn release(self, data: NonNull<u8>, _layout: Layout) {
        // What the list's free callback does, with the list's tag.
        let tag = self.raw.tag();
        let miss = |entry| {
            // SAFETY: an entry of this list, allocated by `allocate_entry` with the list's tag, given up.
            unsafe { free_tagged_entry(entry, tag) }
        };
        // SAFETY: an entry of `self`, which is live (it is borrowed), given up (the caller's
        // contract, which also says the IRQL allows pool `P`); `miss` is what the list's free
        // callback does.
        unsafe { sys::free_to_lookaside(self.header(), data.as_ptr().cast(), miss) };
    }
}
