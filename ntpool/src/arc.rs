//! [`PoolArc`]: shared ownership of a value in pool memory, with its tag. The block (a reference
//! count and the value) is a [`PoolBox`] given up into a pointer when the first reference is made
//! and rebuilt when the last one drops, so the box's rules (the allocation path, the run-time
//! backstop, `ExFreePoolWithTag` with the tag) are the ones that apply, written once in `boxed.rs`
//! and `release.rs`. What this file adds is the count and the IRQL rule for sharing: a paged arc is
//! reached only through a token and is not [`DispatchSafe`], exactly as a paged box.

use core::fmt;
use core::marker::PhantomData;
use core::ops::Deref;
use core::ptr::NonNull;
use core::sync::atomic::{self, AtomicUsize, Ordering};

use crate::alloc::{self, AllocError};
use crate::boxed::PoolBox;
use crate::irql::Allows;
use crate::pool::{NonPagedPool, NonPagedPoolType, PagedPool, PoolType};
use crate::safe::DispatchSafe;
use crate::tag::{PoolTag, Tag, TagSource};

/// Past this many references the count saturates: the block is then never freed (leaked) rather
/// than the count wrapping around. Reaching it takes `isize::MAX` references that were never
/// dropped (`mem::forget` of clones); `alloc::sync::Arc` aborts there, which in a driver would be
/// a bug check.
const SATURATED: usize = isize::MAX as usize;

/// The block of a [`PoolArc`]: the count of references, then the value.
struct ArcInner<T> {
    count: AtomicUsize,
    value: T,
}

/// A shared, reference-counted pointer to a `T` in pool `P`, allocated with tag `G` (a [`Tag`] type,
/// or a run-time [`PoolTag`]) and freed with `ExFreePoolWithTag` and that tag when the last
/// reference drops: an `Arc` in pool memory.
///
/// * Fallible: [`PoolArc::try_new`] and [`PoolArc::try_new_with_tag`] return `Result<_, AllocError>`.
/// * `Clone` adds a reference (one atomic increment); the last drop drops the value and frees the
///   block, once, with its tag.
/// * Non-paged: dereferences like `Arc`, is `Send` / `Sync` when `T` is both, and is
///   [`DispatchSafe`] when `T` is: it may be cloned, used and dropped at `DISPATCH_LEVEL`.
/// * Paged: does not dereference; the value is reached with [`PoolArc::get`] and a `Passive` or
///   `Apc` token, and the arc is not `DispatchSafe`, so no reference, clone or drop reaches
///   `DISPATCH_LEVEL`. If `unsafe` code gets one dropped there anyway, the run-time backstop stops
///   with bug check 0xC2 / 0x09 (the kernel's code for a free at a bad IRQL) before the count is touched.
/// * One pointer wide with a [`Tag`] type, and so is `Option<PoolArc<..>>`.
///
/// ```
/// use ntpool::{NonPagedArc, PagedArc, Passive};
/// ntpool::pool_tag!(struct Shared = b"Shrd");
/// # ntpool::emulated::Kernel::new().run(|| {
/// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
/// let mut passive = unsafe { Passive::assume() };
///
/// let config = NonPagedArc::<[u32; 4], Shared>::try_new(&passive, [1, 2, 3, 4])?;
/// let for_the_dpc = config.clone(); // the same block
/// passive.raise_to_dispatch(for_the_dpc, |_dispatch, config| assert_eq!(config[3], 4));
///
/// let name = PagedArc::<[u8; 4], Shared>::try_new(&passive, *b"disk")?;
/// let other = name.clone();
/// assert_eq!(other.get(&passive), b"disk"); // paged: through a token
/// # Ok::<(), ntpool::AllocError>(())
/// # }).unwrap();
/// ```
///
/// # Invariants
/// `ptr` points to a live `ArcInner<T>` in a block that `PoolBox::<ArcInner<T>, G, P>::from_parts(ptr,
/// tag)` owns once no reference is left (it came from `PoolBox::into_parts` of such a box), and `tag`
/// is that box's owner. The count is the number of `PoolArc`s that point to the block, unless it
/// reached `SATURATED` (`isize::MAX`); from then on it stays above the number of live references,
/// and the block is never freed.
pub struct PoolArc<T, G: TagSource, P: PoolType = NonPagedPool> {
    ptr: NonNull<ArcInner<T>>,
    tag: G,
    _owns: PhantomData<ArcInner<T>>,
    _pool: PhantomData<P>,
}

/// A [`PoolArc`] in non-paged, no-execute pool: dereferences, usable up to `DISPATCH_LEVEL`.
///
/// ```
/// use ntpool::{NonPagedArc, Passive};
/// ntpool::pool_tag!(struct Doc = b"Doc1");
/// # ntpool::emulated::Kernel::new().run(|| {
/// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
/// let passive = unsafe { Passive::assume() };
/// let a = NonPagedArc::<u32, Doc>::try_new(&passive, 7).unwrap();
/// let b = a.clone();
/// assert_eq!(*a + *b, 14);
/// # });
/// ```
pub type NonPagedArc<T, G> = PoolArc<T, G, NonPagedPool>;

/// A [`PoolArc`] in paged pool: reached only through a `Passive` or `Apc` token.
///
/// ```
/// use ntpool::{PagedArc, Passive};
/// ntpool::pool_tag!(struct Doc = b"Doc1");
/// # ntpool::emulated::Kernel::new().run(|| {
/// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
/// let passive = unsafe { Passive::assume() };
/// let a = PagedArc::<u32, Doc>::try_new(&passive, 7).unwrap();
/// assert_eq!(*a.clone().get(&passive), 7);
/// # });
/// ```
pub type PagedArc<T, G> = PoolArc<T, G, PagedPool>;

impl<T, G: TagSource, P: PoolType> PoolArc<T, G, P> {
    /// The first reference to the block of `boxed`, whose count is 1.
    fn from_box(boxed: PoolBox<ArcInner<T>, G, P>) -> Self {
        let (ptr, tag) = PoolBox::into_parts(boxed);
        // INVARIANT: the block of a `PoolBox<ArcInner<T>, G, P>` with owner `tag`, given up; its count
        // is 1, this one reference.
        PoolArc { ptr, tag, _owns: PhantomData, _pool: PhantomData }
    }

    /// The count and the value.
    ///
    /// The caller may touch pool `P`: it holds a token that allows it, the pool is non-paged, or
    /// (`Clone`, `Drop`) the arc is in hand, which for a paged pool means below `DISPATCH_LEVEL`.
    fn inner(&self) -> &ArcInner<T> {
        // SAFETY: the block is live while this reference exists (invariant); it is only ever
        // shared (`&`), and the count is atomic.
        unsafe { self.ptr.as_ref() }
    }

    /// The value, reached with a token that allows the pool. For a paged arc this is the only way
    /// in; the reference borrows the token, so the IRQL cannot be raised while it lives.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let a = ntpool::PagedArc::<u32, Doc>::try_new(&passive, 4).unwrap();
    /// assert_eq!(*a.get(&passive), 4);
    /// # });
    /// ```
    pub fn get<'a, I: Allows<P>>(&'a self, _token: &'a I) -> &'a T {
        &self.inner().value
    }

    /// How many references share the block (a snapshot: another thread may clone or drop one at any
    /// time). Reads the block, so it takes a token that allows the pool.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// use ntpool::PagedArc;
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let a = PagedArc::<u32, Doc>::try_new(&passive, 4).unwrap();
    /// let b = a.clone();
    /// assert_eq!(PagedArc::strong_count(&a, &passive), 2);
    /// drop(b);
    /// assert_eq!(PagedArc::strong_count(&a, &passive), 1);
    /// # });
    /// ```
    pub fn strong_count(this: &Self, _token: &impl Allows<P>) -> usize {
        this.inner().count.load(Ordering::Relaxed)
    }

    /// Whether `a` and `b` share one block. Reads neither.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// use ntpool::PagedArc;
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let a = PagedArc::<u32, Doc>::try_new(&passive, 4).unwrap();
    /// let b = PagedArc::<u32, Doc>::try_new(&passive, 4).unwrap();
    /// assert!(PagedArc::ptr_eq(&a, &a.clone()) && !PagedArc::ptr_eq(&a, &b));
    /// # });
    /// ```
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        a.ptr == b.ptr
    }

    /// The tag the block was allocated with, and will be freed with. Reads nothing.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let a = ntpool::PagedArc::<u8, Doc>::try_new(&passive, 0).unwrap();
    /// assert_eq!(a.tag().to_string(), "Doc1");
    /// # });
    /// ```
    pub fn tag(&self) -> PoolTag {
        self.tag.tag()
    }

    /// Drops this reference; if it was the last, moves the value out and frees the block (hence the
    /// token), like `Arc::into_inner`. Of several threads calling it on the references of one block,
    /// exactly one gets the value.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// use ntpool::PagedArc;
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let a = PagedArc::<u32, Doc>::try_new(&passive, 3).unwrap();
    /// let b = a.clone();
    /// assert_eq!(PagedArc::into_inner(a, &passive), None);
    /// assert_eq!(PagedArc::into_inner(b, &passive), Some(3));
    /// # });
    /// ```
    pub fn into_inner(this: Self, token: &impl Allows<P>) -> Option<T> {
        let this = core::mem::ManuallyDrop::new(this);
        // SAFETY: this reference is given up here and never used again.
        let boxed = unsafe { this.release_reference() }?;
        Some(boxed.into_inner(token).value)
    }

    /// Gives up this reference: the block's box if it was the last, for the caller to drop or empty.
    ///
    /// # Safety
    /// `self` is not used afterwards (nor dropped).
    unsafe fn release_reference(&self) -> Option<PoolBox<ArcInner<T>, G, P>> {
        // Release: this reference's uses of the value happen before the last one frees it.
        if self.inner().count.fetch_sub(1, Ordering::Release) != 1 {
            return None;
        }
        // Acquire: every other reference's uses of the value happen before the drop below.
        atomic::fence(Ordering::Acquire);
        // SAFETY: the count was 1, so this was the last reference (invariant; a saturated count
        // never comes down to 1): the block is the box's again, and nothing else reaches it.
        Some(unsafe { PoolBox::from_parts(self.ptr, self.tag) })
    }
}

impl<T, G: Tag, P: PoolType> PoolArc<T, G, P> {
    /// Allocates a zeroed block tagged with `G` and moves `value` into it, the only reference.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let a = ntpool::NonPagedArc::<u32, Doc>::try_new(&passive, 5).unwrap();
    /// assert_eq!(*a, 5);
    /// # });
    /// ```
    #[cfg_attr(ntpool_emulated, track_caller)]
    pub fn try_new(token: &impl Allows<P>, value: T) -> Result<Self, AllocError> {
        let boxed = PoolBox::<ArcInner<T>, G, P>::try_new(token, ArcInner { count: AtomicUsize::new(1), value })?;
        Ok(PoolArc::from_box(boxed))
    }
}

impl<T, P: PoolType> PoolArc<T, PoolTag, P> {
    /// Allocates a zeroed block tagged with `tag`, a tag known only at run time, and moves `value`
    /// into it. The arc stores the tag (it is two words wide) and frees with it.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// use ntpool::{NonPagedArc, PoolTag};
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let tag = PoolTag::from_raw(u32::from_le_bytes(*b"Req7")).unwrap(); // say, from a request
    /// let a = NonPagedArc::<u32, PoolTag>::try_new_with_tag(&passive, tag, 5).unwrap();
    /// assert_eq!((*a, a.tag().to_string().as_str()), (5, "Req7"));
    /// # });
    /// ```
    #[cfg_attr(ntpool_emulated, track_caller)]
    pub fn try_new_with_tag(token: &impl Allows<P>, tag: PoolTag, value: T) -> Result<Self, AllocError> {
        let inner = ArcInner { count: AtomicUsize::new(1), value };
        Ok(PoolArc::from_box(PoolBox::<ArcInner<T>, PoolTag, P>::try_new_with_tag(token, tag, inner)?))
    }
}

impl<T, G: TagSource, P: PoolType> Clone for PoolArc<T, G, P> {
    /// Another reference to the same block: one atomic increment. A paged arc in hand is below
    /// `DISPATCH_LEVEL` (it is not `DispatchSafe`), so touching its count needs no token.
    fn clone(&self) -> Self {
        // Relaxed: the new reference comes from an existing one, which already orders its uses.
        let old = self.inner().count.fetch_add(1, Ordering::Relaxed);
        if old >= SATURATED {
            // INVARIANT: saturated; pulled back so that no number of clones can wrap it around. The
            // block is never freed from now on.
            self.inner().count.store(SATURATED, Ordering::Relaxed);
        }
        // INVARIANT: one more reference, counted.
        PoolArc { ptr: self.ptr, tag: self.tag, _owns: PhantomData, _pool: PhantomData }
    }
}

impl<T, G: TagSource, P: PoolType> Drop for PoolArc<T, G, P> {
    fn drop(&mut self) {
        // Before the count (in the block) is touched: a paged arc dropped at DISPATCH_LEVEL by
        // `unsafe` code stops here, as a paged box does.
        alloc::check_free_irql::<P>(self.ptr.as_ptr().cast());
        // SAFETY: `self` is being dropped and not used afterwards.
        if let Some(boxed) = unsafe { self.release_reference() } {
            // The box's drop: the backstop, the value's drop, `ExFreePoolWithTag` with the tag.
            drop(boxed);
        }
    }
}

impl<T, G: TagSource, P: NonPagedPoolType> Deref for PoolArc<T, G, P> {
    type Target = T;

    fn deref(&self) -> &T {
        // Non-paged memory, which may be touched at any IRQL.
        &self.inner().value
    }
}

impl<T: fmt::Debug, G: TagSource, P: NonPagedPoolType> fmt::Debug for PoolArc<T, G, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

// SAFETY: as `Arc<T>`: the value is shared between threads (so `T: Sync`) and dropped by whichever
// reference is last (so `T: Send`); the count is atomic; the tag is plain data.
unsafe impl<T: Send + Sync, G: TagSource + Send + Sync, P: PoolType> Send for PoolArc<T, G, P> {}
// SAFETY: as above; `&PoolArc` gives `&T` and can clone (a reference that may move to another
// thread and drop the value there).
unsafe impl<T: Send + Sync, G: TagSource + Send + Sync, P: PoolType> Sync for PoolArc<T, G, P> {}

// SAFETY: a non-paged arc owns and reaches only non-paged memory and its `DispatchSafe` value; a
// tag may be used at any IRQL.
unsafe impl<T: DispatchSafe, G: TagSource, P: NonPagedPoolType> DispatchSafe for PoolArc<T, G, P> {}

#[cfg(all(test, ntpool_emulated))]
mod tests {
    use super::*;
    use crate::Passive;

    crate::pool_tag!(struct Sat = b"Satu");

    #[test]
    fn a_saturated_count_stays_saturated_and_the_block_is_never_freed() {
        let kernel = crate::emulated::Kernel::new();
        kernel.run(|| {
            // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
            let passive = unsafe { Passive::assume() };
            let arc = NonPagedArc::<u32, Sat>::try_new(&passive, 1).unwrap();
            // As if `isize::MAX - 1` clones had been forgotten.
            arc.inner().count.store(SATURATED - 1, Ordering::Relaxed);
            let clones = [arc.clone(), arc.clone(), arc.clone()];
            assert_eq!(NonPagedArc::strong_count(&arc, &passive), SATURATED);
            drop(clones);
            drop(arc.clone());
            // Every reference dropped but the first: far from zero, nothing freed.
            assert!(NonPagedArc::strong_count(&arc, &passive) > SATURATED - 8);
            assert_eq!(kernel.outstanding().len(), 1);
            // The forgotten clones' share, given back by hand so that the kernel ends clean.
            arc.inner().count.store(1, Ordering::Relaxed);
        });
        kernel.verify_unload().unwrap();
    }
}
