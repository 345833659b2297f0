//! [`FastMutex`]: a `FAST_MUTEX` with the data it protects, whose locked region runs at `APC_LEVEL`
//! with an [`Apc`] token.

use core::cell::UnsafeCell;
use core::marker::PhantomData;

use crate::alloc::AllocError;
use crate::boxed::{NonPagedBox, PoolBox};
use crate::irql::{Allows, Apc, BelowDispatch};
use crate::options::Alloc;
use crate::pool::NonPagedPool;
use crate::sys;
use crate::tag::{PoolTag, Tag, TagSource};

/// A kernel fast mutex (`FAST_MUTEX`) and the data it protects, for data touched at or below
/// `APC_LEVEL`: paged memory included.
///
/// [`FastMutex::lock`] acquires it (`ExAcquireFastMutex`, which raises to `APC_LEVEL`), runs a closure
/// with an [`Apc`] token and the data, and releases it (`ExReleaseFastMutex`). At `APC_LEVEL` paged
/// memory is usable, so the closure may capture anything; the token it started from is borrowed for
/// the region, and the `Apc` token is what lets it reach paged memory, raise further to
/// `DISPATCH_LEVEL` or acquire a spin lock inside.
///
/// The `FAST_MUTEX` itself must not move while in use and must be in non-paged memory (its event is
/// waited on at `APC_LEVEL`): it lives in a non-paged block of its own, tagged `G` (a [`Tag`] type,
/// or a run-time [`PoolTag`]), allocated by [`FastMutex::try_new`] (or
/// [`FastMutex::try_new_with_tag`]). The `FastMutex` value (and the data) can move freely. It cannot be
/// acquired at `DISPATCH_LEVEL` ([`FastMutex::lock`] takes a token below it); it is
/// [`DispatchSafe`](crate::DispatchSafe) when its data is, so it may sit inside data that a spin lock
/// protects, and be moved or dropped there (its own block is non-paged).
///
/// ```
/// use ntpool::{FastMutex, PagedBox, Passive};
/// ntpool::pool_tag!(struct Doc = b"Doc1");
/// # ntpool::emulated::Kernel::new().run(|| {
/// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
/// let mut passive = unsafe { Passive::assume() };
/// let names = PagedBox::<[u8], Doc>::try_from_slice(&passive, b"device0").unwrap();
/// let guarded = FastMutex::<_, Doc>::try_new(&passive, names).unwrap();
/// let first = guarded.lock(&mut passive, |apc, names| {
///     assert_eq!(ntpool::sys::KeGetCurrentIrql(), ntpool::sys::APC_LEVEL);
///     names.get(apc)[0]
/// });
/// assert_eq!(first, b'd');
/// # });
/// ```
pub struct FastMutex<T, G: TagSource> {
    raw: NonPagedBox<UnsafeCell<sys::FAST_MUTEX>, G>,
    data: UnsafeCell<T>,
    _tag: PhantomData<G>,
}

// SAFETY: the data is only reached with the mutex held (`lock`) or through `&mut self`; the raw
// mutex is a kernel object meant to be shared between threads.
unsafe impl<T: Send, G: TagSource> Sync for FastMutex<T, G> {}
// SAFETY: as above; nothing in it is tied to a thread while it is not held, and it is never held
// across a move (`lock` borrows it).
unsafe impl<T: Send, G: TagSource> Send for FastMutex<T, G> {}
// SAFETY: its own block is non-paged; at DISPATCH_LEVEL it can only be moved, dropped or reached
// through `&mut self` (its data, which is `DispatchSafe`): acquiring it needs a token below
// DISPATCH_LEVEL.
unsafe impl<T: crate::DispatchSafe, G: TagSource> crate::DispatchSafe for FastMutex<T, G> {}

impl<T, G: Tag> FastMutex<T, G> {
    /// A released fast mutex protecting `value`, its `FAST_MUTEX` in a non-paged block tagged `G`
    /// (`ExInitializeFastMutex`).
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let mutex = ntpool::FastMutex::<u32, Doc>::try_new(&passive, 7).unwrap();
    /// assert_eq!(mutex.into_inner(), 7);
    /// # });
    /// ```
    #[cfg_attr(ntpool_emulated, track_caller)]
    pub fn try_new(token: &impl Allows<NonPagedPool>, value: T) -> Result<Self, AllocError> {
        FastMutex::try_new_in(token, G::default(), value)
    }
}

impl<T> FastMutex<T, PoolTag> {
    /// A released fast mutex protecting `value`, its `FAST_MUTEX` in a non-paged block tagged with
    /// `tag`, a tag known only at run time (`ExInitializeFastMutex`). The mutex stores the tag and
    /// frees its block with it.
    ///
    /// ```
    /// use ntpool::{FastMutex, PoolTag};
    /// let kernel = ntpool::emulated::Kernel::new();
    /// kernel.run(|| {
    ///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    ///     let passive = unsafe { ntpool::Passive::assume() };
    ///     let tag = PoolTag::from_raw(u32::from_le_bytes(*b"Req7")).unwrap(); // say, from a request
    ///     let mutex = FastMutex::<u32, PoolTag>::try_new_with_tag(&passive, tag, 7).unwrap();
    ///     assert_eq!(kernel.outstanding()[0].tag.to_string(), "Req7");
    ///     assert_eq!(mutex.into_inner(), 7);
    /// });
    /// assert!(kernel.verify_unload().is_ok()); // freed with its tag
    /// ```
    #[cfg_attr(ntpool_emulated, track_caller)]
    pub fn try_new_with_tag(token: &impl Allows<NonPagedPool>, tag: PoolTag, value: T) -> Result<Self, AllocError> {
        FastMutex::try_new_in(token, tag, value)
    }
}

impl<T, G: TagSource> FastMutex<T, G> {
    /// A released fast mutex protecting `value`, its `FAST_MUTEX` in a non-paged block tagged with
    /// `tag`: [`FastMutex::try_new`] and [`FastMutex::try_new_with_tag`].
    #[cfg_attr(ntpool_emulated, track_caller)]
    fn try_new_in(token: &impl Allows<NonPagedPool>, tag: G, value: T) -> Result<Self, AllocError> {
        let raw = PoolBox::<UnsafeCell<sys::FAST_MUTEX>, G, NonPagedPool>::try_alloc(token, Alloc::tagged(tag))?;
        // SAFETY: all-zero bytes are a valid FAST_MUTEX (integers and a null pointer); it is
        // initialized properly below, before any use.
        let raw = unsafe { raw.assume_init() };
        // SAFETY: the structure is in its own non-paged block, which does not move while the box
        // lives, and nothing uses it yet.
        unsafe { sys::ExInitializeFastMutex(UnsafeCell::get(&raw)) };
        Ok(FastMutex { raw, data: UnsafeCell::new(value), _tag: PhantomData })
    }

    /// Acquires the mutex (raising to `APC_LEVEL`), runs `f` with an [`Apc`] token and the data, and
    /// releases it, returning the IRQL to where `token` proves it was.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let mut passive = unsafe { ntpool::Passive::assume() };
    /// let counter = ntpool::FastMutex::<u64, Doc>::try_new(&passive, 0).unwrap();
    /// let spin = ntpool::SpinLock::new(0u64);
    /// counter.lock(&mut passive, |apc, count| {
    ///     *count += 1;
    ///     // A spin lock can still be taken inside.
    ///     spin.with(apc, (), |_dispatch, inner, ()| *inner += 1);
    /// });
    /// assert_eq!(counter.into_inner(), 1);
    /// # });
    /// ```
    pub fn lock<I: BelowDispatch, R>(&self, _token: &mut I, f: impl FnOnce(&mut Apc, &mut T) -> R) -> R {
        let raw = UnsafeCell::get(&self.raw);
        // SAFETY: initialized in `try_new_in`, it stays put while `self` is borrowed; the token proves
        // the IRQL is at most APC_LEVEL.
        unsafe { sys::ExAcquireFastMutex(raw) };
        let _release = ReleaseOnExit(raw);
        // SAFETY: the mutex is held, so this is the only reference to the data until it is released.
        let data = unsafe { &mut *self.data.get() };
        f(&mut Apc::new(), data)
    }

    /// The data, through exclusive access: no lock needed.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// let mut mutex = ntpool::FastMutex::<u32, Doc>::try_new(&passive, 1).unwrap();
    /// *mutex.get_mut() += 1;
    /// assert_eq!(mutex.into_inner(), 2);
    /// # });
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// The data, consuming the mutex (its block is freed).
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let passive = unsafe { ntpool::Passive::assume() };
    /// assert_eq!(ntpool::FastMutex::<u8, Doc>::try_new(&passive, 3).unwrap().into_inner(), 3);
    /// # });
    /// ```
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T, G: TagSource> core::fmt::Debug for FastMutex<T, G> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("FastMutex { .. }")
    }
}

/// Releases the mutex when the region ends, also when it unwinds (on the emulated kernel, after a
/// bug check that a test caught).
struct ReleaseOnExit(*mut sys::FAST_MUTEX);

impl Drop for ReleaseOnExit {
    fn drop(&mut self) {
        // SAFETY: acquired by this thread in `lock`.
        unsafe { sys::ExReleaseFastMutex(self.0) }
    }
}
