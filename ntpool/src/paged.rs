//! [`Paged`]: an allocator-api2 or hashbrown collection in paged pool, reached only through a token,
//! as a [`PagedBox`](crate::PagedBox)'s content is.
//!
//! A collection over an allocator hands out plain references to its memory (`&v[0]` is a `&u32`,
//! which may enter a `DISPATCH_LEVEL` region), so the collection itself must never be in reach
//! without a token. `Paged` owns the collection and hands it out only with [`Paged::get`] /
//! [`Paged::get_mut`], whose reference borrows a `Passive` or `Apc` token: while it lives, the IRQL
//! cannot be raised. The allocator of paged pool inside it exists nowhere else: it has no public
//! constructor and is neither `Clone` nor `Default`, so no collection over paged pool can be built
//! outside a `Paged` (see [`PoolAllocator`]'s "No allocator of paged pool"). A `Paged` is not
//! [`DispatchSafe`](crate::DispatchSafe), and its drop runs the run-time backstop before the
//! collection drops its elements and frees its blocks.

use core::mem::ManuallyDrop;

use crate::alloc::{self, PoolAllocator};
use crate::irql::Allows;
use crate::pool::PagedPool;
use crate::tag::{PoolTag, Tag, TagSource};

mod sealed {
    /// Keeps [`PagedCollection`](super::PagedCollection) to the collections `Paged` knows.
    pub trait Sealed {}
}

/// A collection that a [`Paged`] can hold: allocator-api2's `Vec` and (feature `hashbrown`)
/// hashbrown's `HashMap` and `HashSet`, each over the paged [`PoolAllocator`] that only a `Paged`
/// makes. Sealed: `Paged` must know that nothing in the collection's API hands the allocator out by
/// value.
pub trait PagedCollection: sealed::Sealed {
    /// Where the collection's tag comes from: a [`Tag`] type or a run-time [`PoolTag`].
    type Tag: TagSource;

    /// An empty collection over `allocator`.
    #[doc(hidden)]
    fn new_in(allocator: PoolAllocator<Self::Tag, PagedPool>) -> Self;

    /// The collection's allocator.
    #[doc(hidden)]
    fn pool_allocator(&self) -> &PoolAllocator<Self::Tag, PagedPool>;

    /// The address of the collection's block, if it shows one (for the backstop's bug check), else
    /// null.
    #[doc(hidden)]
    fn block(&self) -> *const u8;
}

/// A collection `C` in paged pool, reached only through a `Passive` or `Apc` token.
///
/// * Made with [`Paged::new`] (a tag type) or [`Paged::with_tag`] (a run-time tag), empty: it
///   allocates when it grows, through [`Paged::get_mut`], with a token.
/// * Reached with [`Paged::get`] / [`Paged::get_mut`] only; each reference borrows the token, so no
///   region that raises the IRQL can start while it lives.
/// * Not [`DispatchSafe`](crate::DispatchSafe): it can neither enter nor be dropped in code at
///   `DISPATCH_LEVEL`; if `unsafe` code gets it dropped there anyway, the backstop stops with bug
///   check 0xC2 / 0x09 (the kernel's code for a free at a bad IRQL) before an element is touched.
/// * Every block is freed with `ExFreePoolWithTag` and the collection's tag.
///
/// Out of memory: as for every collection over a [`PoolAllocator`], an infallible `push` or `insert`
/// that cannot grow ends in a bug check; `try_reserve` first (see "Out of memory: reserve, then
/// push" there).
///
/// ```
/// use ntpool::{PagedVec, Passive};
/// ntpool::pool_tag!(struct Log = b"Log1");
/// # ntpool::emulated::Kernel::new().run(|| {
/// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
/// let passive = unsafe { Passive::assume() };
/// let mut log = PagedVec::<u64, Log>::new(&passive);
/// let entries = log.get_mut(&passive);
/// entries.try_reserve(2).map_err(|_| ntpool::AllocError)?;
/// entries.extend([1, 2]);
/// assert_eq!(log.get(&passive).iter().sum::<u64>(), 3);
/// # Ok::<(), ntpool::AllocError>(())
/// # }).unwrap();
/// ```
///
/// # Invariants
/// `collection` was made by `PagedCollection::new_in` with an allocator made for it alone, and is
/// handed out by reference only; it is dropped only by `Paged`'s drop.
pub struct Paged<C: PagedCollection> {
    /// Dropped by `Paged`'s drop after the backstop, and only then: a backstop that stops (on the
    /// emulated kernel, a bug check that unwinds) leaves it alone.
    collection: ManuallyDrop<C>,
}

/// allocator-api2's `Vec` in paged pool, reached only through a token; see [`Paged`].
///
/// ```
/// use ntpool::{PagedVec, Passive};
/// ntpool::pool_tag!(struct Names = b"Nam1");
/// # ntpool::emulated::Kernel::new().run(|| {
/// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
/// let passive = unsafe { Passive::assume() };
/// let mut names = PagedVec::<u8, Names>::new(&passive);
/// names.get_mut(&passive).try_reserve(3).map_err(|_| ntpool::AllocError)?;
/// names.get_mut(&passive).extend_from_slice(b"dev");
/// assert_eq!(names.get(&passive).as_slice(), b"dev");
/// # Ok::<(), ntpool::AllocError>(())
/// # }).unwrap();
/// ```
pub type PagedVec<T, G> = Paged<allocator_api2::vec::Vec<T, PoolAllocator<G, PagedPool>>>;

/// hashbrown's `HashMap` in paged pool, reached only through a token; see [`Paged`].
///
/// ```
/// use ntpool::{PagedHashMap, Passive};
/// ntpool::pool_tag!(struct Names = b"Nam1");
/// # ntpool::emulated::Kernel::new().run(|| {
/// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
/// let passive = unsafe { Passive::assume() };
/// let mut names = PagedHashMap::<u32, &str, Names>::new(&passive);
/// let map = names.get_mut(&passive);
/// map.try_reserve(1)?;
/// map.insert(1, "disk");
/// assert_eq!(names.get(&passive).get(&1), Some(&"disk"));
/// # Ok::<(), ntpool::hashbrown::TryReserveError>(())
/// # }).unwrap();
/// ```
#[cfg(feature = "hashbrown")]
#[cfg_attr(docsrs, doc(cfg(feature = "hashbrown")))]
pub type PagedHashMap<K, V, G, S = hashbrown::DefaultHashBuilder> =
    Paged<hashbrown::HashMap<K, V, S, PoolAllocator<G, PagedPool>>>;

/// hashbrown's `HashSet` in paged pool, reached only through a token; see [`Paged`].
///
/// ```
/// use ntpool::{PagedHashSet, Passive};
/// ntpool::pool_tag!(struct Seen = b"Seen");
/// # ntpool::emulated::Kernel::new().run(|| {
/// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
/// let passive = unsafe { Passive::assume() };
/// let mut seen = PagedHashSet::<u64, Seen>::new(&passive);
/// seen.get_mut(&passive).try_reserve(1)?;
/// assert!(seen.get_mut(&passive).insert(9));
/// assert!(seen.get(&passive).contains(&9));
/// # Ok::<(), ntpool::hashbrown::TryReserveError>(())
/// # }).unwrap();
/// ```
#[cfg(feature = "hashbrown")]
#[cfg_attr(docsrs, doc(cfg(feature = "hashbrown")))]
pub type PagedHashSet<T, G, S = hashbrown::DefaultHashBuilder> =
    Paged<hashbrown::HashSet<T, S, PoolAllocator<G, PagedPool>>>;

impl<C: PagedCollection> Paged<C> {
    /// The collection made over a paged allocator with `tag`, which nothing else ever holds.
    fn make(tag: C::Tag) -> Self {
        // SAFETY: the allocator goes into this one collection, which the `Paged` owns; `Paged` hands
        // the collection out by reference only, and a sealed `PagedCollection` gives the allocator
        // out by reference only.
        let allocator = unsafe { PoolAllocator::for_paged_collection(tag) };
        // INVARIANT: made by `new_in` with an allocator made for it alone.
        Paged { collection: ManuallyDrop::new(C::new_in(allocator)) }
    }

    /// The collection, reached with a `Passive` or `Apc` token; the reference borrows the token, so
    /// the IRQL cannot be raised while it lives.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let v = ntpool::PagedVec::<u32, Doc>::new(&passive);
    /// assert!(v.get(&passive).is_empty());
    /// # });
    /// ```
    pub fn get<'a, I: Allows<PagedPool>>(&'a self, _token: &'a I) -> &'a C {
        &self.collection
    }

    /// The collection, mutably; see [`Paged::get`]. Growing it allocates paged pool with the
    /// collection's tag.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let mut v = ntpool::PagedVec::<u32, Doc>::new(&passive);
    /// v.get_mut(&passive).try_reserve(1).unwrap();
    /// v.get_mut(&passive).push(5);
    /// assert_eq!(v.get(&passive)[0], 5);
    /// # });
    /// ```
    pub fn get_mut<'a, I: Allows<PagedPool>>(&'a mut self, _token: &'a I) -> &'a mut C {
        &mut self.collection
    }

    /// The tag every block of the collection is allocated and freed with.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// assert_eq!(ntpool::PagedVec::<u32, Doc>::new(&passive).tag().to_string(), "Doc1");
    /// # });
    /// ```
    pub fn tag(&self) -> PoolTag {
        self.collection.pool_allocator().tag()
    }
}

impl<C: PagedCollection<Tag: Tag>> Paged<C> {
    /// An empty collection in paged pool, tagged with the [`Tag`] type; it allocates nothing until
    /// it grows.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let v = ntpool::PagedVec::<u32, Doc>::new(&passive);
    /// assert_eq!(v.get(&passive).capacity(), 0);
    /// # });
    /// ```
    pub fn new(_token: &impl Allows<PagedPool>) -> Self {
        Paged::make(C::Tag::default())
    }
}

impl<C: PagedCollection<Tag = PoolTag>> Paged<C> {
    /// An empty collection in paged pool, tagged with `tag`, known only at run time (the allocator
    /// stores it).
    ///
    /// ```
    /// use ntpool::{PagedVec, PoolTag};
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let v = PagedVec::<u32, PoolTag>::with_tag(&passive, PoolTag::new(*b"Req7"));
    /// assert_eq!(v.tag().to_string(), "Req7");
    /// # });
    /// ```
    pub fn with_tag(_token: &impl Allows<PagedPool>, tag: PoolTag) -> Self {
        Paged::make(tag)
    }
}

impl<C: PagedCollection> Drop for Paged<C> {
    fn drop(&mut self) {
        alloc::check_free_irql::<PagedPool>(self.collection.block());
        // SAFETY: dropped once, here, and not used again. The IRQL allows paged pool: a `Paged` never
        // reaches DISPATCH_LEVEL (not `DispatchSafe`), and the backstop above checks it before any
        // element is touched.
        unsafe { ManuallyDrop::drop(&mut self.collection) };
    }
}

impl<T, G: TagSource> sealed::Sealed for allocator_api2::vec::Vec<T, PoolAllocator<G, PagedPool>> {}
impl<T, G: TagSource> PagedCollection for allocator_api2::vec::Vec<T, PoolAllocator<G, PagedPool>> {
    type Tag = G;

    fn new_in(allocator: PoolAllocator<G, PagedPool>) -> Self {
        allocator_api2::vec::Vec::new_in(allocator)
    }

    fn pool_allocator(&self) -> &PoolAllocator<G, PagedPool> {
        self.allocator()
    }

    fn block(&self) -> *const u8 {
        self.as_ptr().cast()
    }
}

#[cfg(feature = "hashbrown")]
impl<K, V, S: Default, G: TagSource> sealed::Sealed for hashbrown::HashMap<K, V, S, PoolAllocator<G, PagedPool>> {}
#[cfg(feature = "hashbrown")]
impl<K, V, S: Default, G: TagSource> PagedCollection for hashbrown::HashMap<K, V, S, PoolAllocator<G, PagedPool>> {
    type Tag = G;

    fn new_in(allocator: PoolAllocator<G, PagedPool>) -> Self {
        hashbrown::HashMap::with_hasher_in(S::default(), allocator)
    }

    fn pool_allocator(&self) -> &PoolAllocator<G, PagedPool> {
        self.allocator()
    }

    /// hashbrown does not show its table's address.
    fn block(&self) -> *const u8 {
        core::ptr::null()
    }
}

#[cfg(feature = "hashbrown")]
impl<T, S: Default, G: TagSource> sealed::Sealed for hashbrown::HashSet<T, S, PoolAllocator<G, PagedPool>> {}
#[cfg(feature = "hashbrown")]
impl<T, S: Default, G: TagSource> PagedCollection for hashbrown::HashSet<T, S, PoolAllocator<G, PagedPool>> {
    type Tag = G;

    fn new_in(allocator: PoolAllocator<G, PagedPool>) -> Self {
        hashbrown::HashSet::with_hasher_in(S::default(), allocator)
    }

    fn pool_allocator(&self) -> &PoolAllocator<G, PagedPool> {
        self.allocator()
    }

    /// hashbrown does not show its table's address.
    fn block(&self) -> *const u8 {
        core::ptr::null()
    }
}
