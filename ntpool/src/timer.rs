//! [`Timer`]: a kernel timer (`KTIMER`) with its DPC, whose routine runs at `DISPATCH_LEVEL` with a
//! [`Dispatch`] token each time the timer expires, once or periodically.
//!
//! The same rules as [`Dpc`](crate::Dpc): a plain `fn` routine, a `DispatchSafe + Sync` context.
//! Dropping the `Timer` cancels it (`KeCancelTimer`) and waits until every DPC queued so far has
//! run (`KeFlushQueuedDpcs`: a DPC the timer queued just before the cancel runs once more, with the
//! context still alive) before the block holding the `KTIMER`, the `KDPC` and the context is freed,
//! so the kernel never touches freed memory (which Driver Verifier reports as bug check 0xC7).

use core::cell::UnsafeCell;
use core::mem::ManuallyDrop;
use core::time::Duration;

use crate::alloc::AllocError;
use crate::boxed::NonPagedBox;
use crate::dpc::{DpcObject, free_after_flush};
use crate::irql::{Allows, AtMostDispatch, BelowDispatch, Dispatch};
use crate::pool::NonPagedPool;
use crate::safe::DispatchSafe;
use crate::sys::{self, KTIMER};
use crate::tag::{PoolTag, Tag, TagSource};
use crate::wait::relative;

/// The `KTIMER` and the DPC it queues, side by side in non-paged pool.
#[repr(C)]
struct TimerObject<C> {
    ktimer: UnsafeCell<KTIMER>,
    dpc: DpcObject<C>,
}

/// A kernel timer whose DPC runs `routine` with `&context` at `DISPATCH_LEVEL` when it expires. Its
/// block is tagged `G`: a [`Tag`] type ([`Timer::try_new`]), or a [`PoolTag`] known only at run time
/// ([`Timer::try_new_with_tag`]).
///
/// ```
/// use core::sync::atomic::{AtomicU32, Ordering};
/// use core::time::Duration;
/// use ntpool::{Passive, Timer};
/// ntpool::pool_tag!(struct Doc = b"Doc1");
/// let kernel = ntpool::emulated::Kernel::new();
/// kernel.run(|| {
///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
///     let mut passive = unsafe { Passive::assume() };
///     let timer = Timer::<AtomicU32, Doc>::try_new(&mut passive, AtomicU32::new(0), |_dispatch, ticks| {
///         ticks.fetch_add(1, Ordering::Relaxed);
///     })?;
///     timer.set_periodic(&passive, Duration::from_millis(10), Duration::from_millis(10));
///     kernel.advance_clock(Duration::from_millis(35)); // expires at 10, 20 and 30 ms
///     assert_eq!(timer.context().load(Ordering::Relaxed), 3);
///     Ok::<(), ntpool::AllocError>(())
/// })?; // dropped: cancelled, flushed, freed
/// assert!(kernel.verify_unload().is_ok());
/// # Ok::<(), ntpool::AllocError>(())
/// ```
///
/// # Invariants
/// `object`'s timer and DPC were initialized at their address in the box, which does not move; the
/// block is freed only by `free_after_flush`, after the timer was cancelled and its DPC dequeued.
pub struct Timer<C: DispatchSafe + Sync, G: TagSource> {
    object: ManuallyDrop<NonPagedBox<TimerObject<C>, G>>,
}

// SAFETY: as for `Dpc`: the kernel objects are touched only through the kernel's routines; the
// context is shared as `&C` (`Sync`) and moved only if `C: Send`.
unsafe impl<C: DispatchSafe + Sync + Send, G: TagSource + Send> Send for Timer<C, G> {}
// SAFETY: as above.
unsafe impl<C: DispatchSafe + Sync, G: TagSource + Sync> Sync for Timer<C, G> {}

impl<C: DispatchSafe + Sync, G: Tag> Timer<C, G> {
    /// A timer (`KeInitializeTimerEx`, notification type) and its DPC (`KeInitializeDpc`), not set.
    ///
    /// The token is borrowed mutably, as a region's is: no reference reached through it (a paged
    /// box's `get`) can be the context, which the routine reads later at `DISPATCH_LEVEL`.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let mut passive = unsafe { ntpool::Passive::assume() };
    /// assert!(ntpool::Timer::<(), Doc>::try_new(&mut passive, (), |_, ()| {}).is_ok());
    /// # });
    /// ```
    #[track_caller]
    pub fn try_new<I: BelowDispatch + Allows<NonPagedPool>>(
        token: &mut I,
        context: C,
        routine: fn(&mut Dispatch, &C),
    ) -> Result<Self, AllocError> {
        Timer::try_new_in(token, G::default(), context, routine)
    }
}

impl<C: DispatchSafe + Sync> Timer<C, PoolTag> {
    /// A timer (`KeInitializeTimerEx`, notification type) and its DPC (`KeInitializeDpc`), not set,
    /// in a block of non-paged pool tagged with `tag`, a tag known only at run time. The timer stores
    /// the tag and frees its block with it.
    ///
    /// ```
    /// use core::sync::atomic::{AtomicU32, Ordering};
    /// use core::time::Duration;
    /// use ntpool::{PoolTag, Timer};
    /// let kernel = ntpool::emulated::Kernel::new();
    /// kernel.run(|| {
    ///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    ///     let mut passive = unsafe { ntpool::Passive::assume() };
    ///     let tag = PoolTag::from_raw(u32::from_le_bytes(*b"Req7")).unwrap(); // say, from a request
    ///     let timer = Timer::<AtomicU32, PoolTag>::try_new_with_tag(&mut passive, tag, AtomicU32::new(0), |_, ticks| {
    ///         ticks.fetch_add(1, Ordering::Relaxed);
    ///     })
    ///     .unwrap();
    ///     timer.set_once(&passive, Duration::from_millis(10));
    ///     kernel.advance_clock(Duration::from_millis(10));
    ///     assert_eq!(timer.context().load(Ordering::Relaxed), 1);
    ///     assert_eq!(kernel.outstanding()[0].tag.to_string(), "Req7");
    /// });
    /// assert!(kernel.verify_unload().is_ok()); // cancelled, flushed, freed with its tag
    /// ```
    #[track_caller]
    pub fn try_new_with_tag<I: BelowDispatch + Allows<NonPagedPool>>(
        token: &mut I,
        tag: PoolTag,
        context: C,
        routine: fn(&mut Dispatch, &C),
    ) -> Result<Self, AllocError> {
        Timer::try_new_in(token, tag, context, routine)
    }
}

impl<C: DispatchSafe + Sync, G: TagSource> Timer<C, G> {
    /// A timer in a block tagged with `tag`: [`Timer::try_new`] and [`Timer::try_new_with_tag`].
    #[track_caller]
    fn try_new_in<I: BelowDispatch + Allows<NonPagedPool>>(
        token: &mut I,
        tag: G,
        context: C,
        routine: fn(&mut Dispatch, &C),
    ) -> Result<Self, AllocError> {
        // SAFETY: KTIMER is plain data for which all-zero bytes are valid; initialized below.
        let ktimer = UnsafeCell::new(unsafe { core::mem::zeroed() });
        let object =
            NonPagedBox::try_new_in(&*token, tag, TimerObject { ktimer, dpc: DpcObject::new(context, routine) })?;
        // SAFETY: the box's block does not move; the timer is new.
        unsafe { sys::KeInitializeTimerEx(object.ktimer.get(), sys::NotificationTimer) };
        // SAFETY: as above; the DPC is new.
        unsafe { object.dpc.initialize() };
        Ok(Timer { object: ManuallyDrop::new(object) })
    }

    /// Sets the timer to expire once, `due` from now (`KeSetTimerEx` with no period); true if it was
    /// set already (the new due time replaces the old one).
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let mut passive = unsafe { ntpool::Passive::assume() };
    /// let timer = ntpool::Timer::<(), Doc>::try_new(&mut passive, (), |_, ()| {}).unwrap();
    /// assert!(!timer.set_once(&passive, core::time::Duration::from_secs(1)));
    /// # });
    /// ```
    pub fn set_once(&self, _token: &impl AtMostDispatch, due: Duration) -> bool {
        self.set(due, 0)
    }

    /// Sets the timer to expire `first` from now, then every `period` (rounded to milliseconds, at
    /// least one); true if it was set already.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let mut passive = unsafe { ntpool::Passive::assume() };
    /// let timer = ntpool::Timer::<(), Doc>::try_new(&mut passive, (), |_, ()| {}).unwrap();
    /// let second = core::time::Duration::from_secs(1);
    /// assert!(!timer.set_periodic(&passive, second, second));
    /// assert!(timer.cancel());
    /// # });
    /// ```
    pub fn set_periodic(&self, _token: &impl AtMostDispatch, first: Duration, period: Duration) -> bool {
        let period = i32::try_from(period.as_millis()).unwrap_or(i32::MAX).max(1);
        self.set(first, period)
    }

    fn set(&self, due: Duration, period: i32) -> bool {
        // SAFETY: an initialized timer and DPC (invariant), which stay valid until the drop cancels
        // the timer and flushes the DPC. The caller's token proves IRQL <= DISPATCH_LEVEL.
        unsafe { sys::KeSetTimerEx(self.object.ktimer.get(), relative(due), period, self.object.dpc.kdpc.get()) != 0 }
    }

    /// Cancels the timer (`KeCancelTimer`): true if it was set. A DPC it queued already still runs.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let mut passive = unsafe { ntpool::Passive::assume() };
    /// let timer = ntpool::Timer::<(), Doc>::try_new(&mut passive, (), |_, ()| {}).unwrap();
    /// assert!(!timer.cancel());
    /// # });
    /// ```
    pub fn cancel(&self) -> bool {
        // SAFETY: an initialized timer (invariant).
        unsafe { sys::KeCancelTimer(self.object.ktimer.get()) != 0 }
    }

    /// The context the routine receives.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let mut passive = unsafe { ntpool::Passive::assume() };
    /// let timer = ntpool::Timer::<u8, Doc>::try_new(&mut passive, 9, |_, _| {}).unwrap();
    /// assert_eq!(*timer.context(), 9);
    /// # });
    /// ```
    pub fn context(&self) -> &C {
        &self.object.dpc.context
    }
}

impl<C: DispatchSafe + Sync, G: TagSource> Drop for Timer<C, G> {
    fn drop(&mut self) {
        // Cancelled, so it queues its DPC no more. A DPC it queued before runs once more, inside
        // `KeFlushQueuedDpcs` (`free_after_flush`), with the context still alive: Microsoft's
        // pattern for a timer's DPC, and one that needs no `KeRemoveQueueDpc` (which Wine 8 lacks).
        self.cancel();
        // SAFETY: taken once, here; `self.object` is not used again (`self` is being dropped).
        let object = unsafe { ManuallyDrop::take(&mut self.object) };
        free_after_flush(object);
    }
}

impl<C: DispatchSafe + Sync, G: TagSource> core::fmt::Debug for Timer<C, G> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Timer").field("ktimer", &self.object.ktimer.get()).finish_non_exhaustive()
    }
}
