//! [`SpinLock`]: a `KSPIN_LOCK` with the data it protects, whose locked region runs at
//! `DISPATCH_LEVEL` with a [`Dispatch`] token.

use core::cell::UnsafeCell;
use core::marker::PhantomData;

use crate::irql::{AtMostDispatch, Dispatch};
use crate::safe::DispatchSafe;
use crate::sys::{KIRQL, KSPIN_LOCK};

/// A kernel spin lock (`KSPIN_LOCK`) and the data it protects.
///
/// [`SpinLock::with`] acquires the lock (`KeAcquireSpinLockRaiseToDpc` below `DISPATCH_LEVEL`,
/// `KeAcquireSpinLockAtDpcLevel` at it), runs a plain function with a [`Dispatch`] token, the data and
/// one [`DispatchSafe`] context value, and releases the lock. The data must be `DispatchSafe` too: it
/// is only ever touched with the lock held, at `DISPATCH_LEVEL`.
///
/// The lock itself must be in non-paged memory (a `static`, a device extension, a non-paged box, a
/// stack frame), as the kernel requires. A lock inside a [`PagedBox`](crate::PagedBox) can only be
/// reached through a reference that borrows the token, and `with` needs that token mutably, so such
/// a lock cannot be acquired.
///
/// ```
/// use ntpool::{NonPagedBox, Passive, SpinLock};
/// ntpool::pool_tag!(struct Doc = b"Doc1");
/// # ntpool::emulated::Kernel::new().run(|| {
/// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
/// let mut passive = unsafe { Passive::assume() };
/// let queue: SpinLock<Option<NonPagedBox<u32, Doc>>> = SpinLock::new(None);
/// let item = NonPagedBox::try_new(&passive, 7).unwrap();
/// let old = queue.with(&mut passive, item, |_dispatch, slot, item| slot.replace(item));
/// assert!(old.is_none());
/// // Non-paged memory may be freed at DISPATCH_LEVEL:
/// queue.with(&mut passive, (), |_dispatch, slot, ()| drop(slot.take()));
/// # });
/// ```
pub struct SpinLock<T> {
    lock: UnsafeCell<KSPIN_LOCK>,
    data: UnsafeCell<T>,
}

// SAFETY: the data is only reached with the lock held (`with`) or through `&mut self`, so sharing
// the lock between threads shares the data one thread at a time, as a mutex does.
unsafe impl<T: Send> Sync for SpinLock<T> {}

// SAFETY: the lock is usable at DISPATCH_LEVEL, and its data is `DispatchSafe`.
unsafe impl<T: DispatchSafe> DispatchSafe for SpinLock<T> {}

impl<T: DispatchSafe> SpinLock<T> {
    /// A released spin lock (`KeInitializeSpinLock`) protecting `value`. `const`, so it can be a
    /// `static`.
    ///
    /// ```
    /// static COUNTER: ntpool::SpinLock<u64> = ntpool::SpinLock::new(0);
    /// ```
    pub const fn new(value: T) -> Self {
        SpinLock { lock: UnsafeCell::new(0), data: UnsafeCell::new(value) }
    }

    /// Acquires the lock, runs `f` at `DISPATCH_LEVEL` with a [`Dispatch`] token, the protected data
    /// and `context`, and releases the lock, returning the IRQL to where `token` proves it was.
    ///
    /// `token` is borrowed mutably for the region, so it cannot be used inside it; `f` captures
    /// nothing (a plain function), so everything it reaches comes through `context`. If a call does
    /// not compile, [the errors](crate#the-errors-and-what-each-means) say which rule it broke and
    /// the fix.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// static HITS: ntpool::SpinLock<u64> = ntpool::SpinLock::new(0);
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let mut passive = unsafe { ntpool::Passive::assume() };
    /// let hits = HITS.with(&mut passive, 2, |_dispatch, hits, by| { *hits += by; *hits });
    /// assert!(hits >= 2);
    /// # });
    /// ```
    #[inline(always)]
    pub fn with<I: AtMostDispatch, C: DispatchSafe, R>(
        &self,
        _token: &mut I,
        context: C,
        f: fn(&mut Dispatch, &mut T, C) -> R,
    ) -> R {
        let lock = self.lock.get();
        // SAFETY: the lock is initialized (`new`) and outlives the region; the token proves the IRQL
        // allows acquiring it.
        let old = unsafe { I::acquire(lock) };
        let _release = ReleaseOnExit::<I> { lock, old, _token: PhantomData };
        // SAFETY: the lock is held, so this is the only reference to the data until it is released.
        let data = unsafe { &mut *self.data.get() };
        f(&mut Dispatch::new(), data, context)
    }

    /// The data, through exclusive access: no lock needed.
    ///
    /// ```
    /// let mut lock = ntpool::SpinLock::new(1u32);
    /// *lock.get_mut() += 1;
    /// assert_eq!(lock.into_inner(), 2);
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// The data, consuming the lock.
    ///
    /// ```
    /// assert_eq!(ntpool::SpinLock::new(3u8).into_inner(), 3);
    /// ```
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T> core::fmt::Debug for SpinLock<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SpinLock { .. }")
    }
}

/// Releases the lock when the region ends, also when it unwinds (on the emulated kernel, after a
/// bug check that a test caught).
struct ReleaseOnExit<I: AtMostDispatch> {
    lock: *mut KSPIN_LOCK,
    old: KIRQL,
    _token: PhantomData<I>,
}

impl<I: AtMostDispatch> Drop for ReleaseOnExit<I> {
    fn drop(&mut self) {
        // SAFETY: `I::acquire` acquired the lock and returned `old`.
        unsafe { I::release(self.lock, self.old) }
    }
}
