//! [`Dpc`]: a deferred procedure call whose routine the kernel runs at `DISPATCH_LEVEL`, and which
//! receives its [`Dispatch`] token from this crate.
//!
//! The routine is a plain `fn` (a closure that captures nothing) and reaches only its context, which
//! must be [`DispatchSafe`] (and `Sync`: the same DPC may be queued again, and run on another
//! processor, while its routine runs): the rules of the crate's regions. The `KDPC` and the context
//! live together in a block of non-paged pool, which the `Dpc` owns; dropping the `Dpc` takes the DPC
//! off the queue and waits for its routine (`KeFlushQueuedDpcs`) before that block is freed.

use core::cell::UnsafeCell;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;

use crate::alloc::AllocError;
use crate::boxed::NonPagedBox;
use crate::irql::{Allows, BelowDispatch, Dispatch};
use crate::pool::NonPagedPool;
use crate::safe::{DispatchSafe, HighSafe};
use crate::sys::{self, KDPC, PVOID};
use crate::tag::{PoolTag, Tag, TagSource};

/// What the kernel's DPC machinery needs, with the routine to call and its context; kept in
/// non-paged pool at a stable address while a [`Dpc`] or [`Timer`](crate::Timer) owns it.
#[repr(C)]
pub(crate) struct DpcObject<C> {
    pub(crate) kdpc: UnsafeCell<KDPC>,
    routine: fn(&mut Dispatch, &C),
    pub(crate) context: C,
}

impl<C: DispatchSafe + Sync> DpcObject<C> {
    /// See [`Dpc::DEFERRED_ROUTINE`].
    const DEFERRED_ROUTINE: sys::PKDEFERRED_ROUTINE = Some(trampoline::<C>);

    pub(crate) fn new(context: C, routine: fn(&mut Dispatch, &C)) -> Self {
        // SAFETY: KDPC is plain data for which all-zero bytes are valid; KeInitializeDpc fills it in.
        let kdpc = UnsafeCell::new(unsafe { core::mem::zeroed() });
        DpcObject { kdpc, routine, context }
    }

    /// `KeInitializeDpc` with [`trampoline`], once the object has its final address.
    ///
    /// # Safety
    /// `self` stays at this address until it is freed, and is not queued.
    pub(crate) unsafe fn initialize(&self) {
        let context: *const Self = self;
        // SAFETY: the KDPC is valid and not queued (caller); the context is this object, which
        // outlives every run of the routine (the owner flushes before freeing it).
        unsafe { sys::KeInitializeDpc(self.kdpc.get(), Self::DEFERRED_ROUTINE, context.cast_mut().cast()) };
    }
}

/// The `KDEFERRED_ROUTINE` of every [`Dpc`] and [`Timer`](crate::Timer): calls the driver's routine
/// with a [`Dispatch`] token and the context.
///
/// # Safety
/// Called by the kernel at `DISPATCH_LEVEL`, with the context `DpcObject::initialize` gave it.
unsafe extern "system" fn trampoline<C: DispatchSafe + Sync>(_dpc: *mut KDPC, context: PVOID, _: PVOID, _: PVOID) {
    // SAFETY: the context is the `DpcObject<C>` that initialized this KDPC, alive until its owner has
    // flushed the queued DPCs (see `Dpc`'s drop).
    let object = unsafe { &*context.cast::<DpcObject<C>>() };
    // The kernel runs DPC routines at DISPATCH_LEVEL. The token lives only for the routine, which
    // reaches nothing but its `DispatchSafe` context: the code the DPC interrupted, and its token,
    // cannot be reached from here.
    (object.routine)(Dispatch::entry_mut(), &object.context);
}

/// Drops a DPC's (or timer's) block once no routine of it can run: at `PASSIVE_LEVEL` after
/// `KeFlushQueuedDpcs`. Elsewhere (at `APC_LEVEL`, inside [`Passive::raise_to_apc`] or a fast mutex,
/// where `KeFlushQueuedDpcs` may not be called) the block is leaked rather than freed under a routine
/// that may still run; the emulated kernel's unload check reports the leak.
///
/// [`Passive::raise_to_apc`]: crate::Passive::raise_to_apc
pub(crate) fn free_after_flush<T, G: TagSource>(block: NonPagedBox<T, G>) {
    if sys::KeGetCurrentIrql() == sys::PASSIVE_LEVEL {
        // SAFETY: at PASSIVE_LEVEL, as the routine requires.
        unsafe { sys::KeFlushQueuedDpcs() };
        drop(block);
    } else {
        core::mem::forget(block);
    }
}

/// A deferred procedure call: `routine` runs at `DISPATCH_LEVEL` with a [`Dispatch`] token and
/// `&context`, each time the DPC is queued ([`Dpc::queue`], or [`DpcHandle::queue`] from code at any
/// IRQL). Its block is tagged `G`: a [`Tag`] type ([`Dpc::try_new`]), or a [`PoolTag`] known only at
/// run time ([`Dpc::try_new_with_tag`]).
///
/// ```
/// use core::sync::atomic::{AtomicU32, Ordering};
/// use ntpool::{Dpc, Passive};
/// ntpool::pool_tag!(struct Doc = b"Doc1");
/// # ntpool::emulated::Kernel::new().run(|| {
/// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
/// let mut passive = unsafe { Passive::assume() };
/// let dpc = Dpc::<AtomicU32, Doc>::try_new(&mut passive, AtomicU32::new(0), |_dispatch, runs| {
///     assert_eq!(ntpool::sys::KeGetCurrentIrql(), ntpool::sys::DISPATCH_LEVEL);
///     runs.fetch_add(1, Ordering::Relaxed);
/// })?;
/// assert!(dpc.queue()); // runs as soon as the IRQL is below DISPATCH_LEVEL: here, at once
/// assert_eq!(dpc.context().load(Ordering::Relaxed), 1);
/// # Ok::<(), ntpool::AllocError>(())
/// # }).unwrap();
/// ```
///
/// # Invariants
/// `object` was initialized (`DpcObject::initialize`) at its address in the box, which does not
/// move; it is freed only by `free_after_flush`, after the DPC was taken off the queue.
pub struct Dpc<C: DispatchSafe + Sync, G: TagSource> {
    object: ManuallyDrop<NonPagedBox<DpcObject<C>, G>>,
}

// SAFETY: the KDPC is touched only through the kernel's routines, which synchronize; the context is
// shared as `&C`, which is `Sync`, and moved with the `Dpc` only if `C: Send`.
unsafe impl<C: DispatchSafe + Sync + Send, G: TagSource + Send> Send for Dpc<C, G> {}
// SAFETY: as above; `&Dpc` only queues, removes and reads `&C`.
unsafe impl<C: DispatchSafe + Sync, G: TagSource + Sync> Sync for Dpc<C, G> {}

impl<C: DispatchSafe + Sync, G: Tag> Dpc<C, G> {
    /// A DPC that runs `routine` with `context` (`KeInitializeDpc`), in a block of non-paged pool.
    /// Made below `DISPATCH_LEVEL`, where it is also dropped: a `Dpc` is not `DispatchSafe`.
    ///
    /// The token is borrowed mutably, as a region's is: no reference reached through it (a paged
    /// box's `get`) can be the context, which the routine reads later at `DISPATCH_LEVEL`.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let mut passive = unsafe { ntpool::Passive::assume() };
    /// let dpc = ntpool::Dpc::<u32, Doc>::try_new(&mut passive, 7, |_dispatch, seven| assert_eq!(*seven, 7));
    /// assert!(dpc.is_ok());
    /// # });
    /// ```
    #[track_caller]
    pub fn try_new<I: BelowDispatch + Allows<NonPagedPool>>(
        token: &mut I,
        context: C,
        routine: fn(&mut Dispatch, &C),
    ) -> Result<Self, AllocError> {
        Dpc::try_new_in(token, G::default(), context, routine)
    }
}

impl<C: DispatchSafe + Sync> Dpc<C, PoolTag> {
    /// A DPC that runs `routine` with `context` (`KeInitializeDpc`), in a block of non-paged pool
    /// tagged with `tag`, a tag known only at run time. The DPC stores the tag and frees its block
    /// with it.
    ///
    /// ```
    /// use ntpool::{Dpc, PoolTag};
    /// let kernel = ntpool::emulated::Kernel::new();
    /// kernel.run(|| {
    ///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    ///     let mut passive = unsafe { ntpool::Passive::assume() };
    ///     let tag = PoolTag::from_raw(u32::from_le_bytes(*b"Req7")).unwrap(); // say, from a request
    ///     let dpc = Dpc::<u32, PoolTag>::try_new_with_tag(&mut passive, tag, 7, |_dispatch, seven| assert_eq!(*seven, 7));
    ///     assert!(dpc.unwrap().queue());
    ///     assert!(kernel.outstanding().is_empty()); // dropped, and freed
    /// });
    /// let usage = kernel.pool_usage();
    /// assert_eq!((usage.rows[0].tag.to_string().as_str(), usage.rows[0].frees), ("Req7", 1));
    /// ```
    #[track_caller]
    pub fn try_new_with_tag<I: BelowDispatch + Allows<NonPagedPool>>(
        token: &mut I,
        tag: PoolTag,
        context: C,
        routine: fn(&mut Dispatch, &C),
    ) -> Result<Self, AllocError> {
        Dpc::try_new_in(token, tag, context, routine)
    }
}

impl<C: DispatchSafe + Sync, G: TagSource> Dpc<C, G> {
    /// A DPC in a block tagged with `tag`: [`Dpc::try_new`] and [`Dpc::try_new_with_tag`].
    #[track_caller]
    fn try_new_in<I: BelowDispatch + Allows<NonPagedPool>>(
        token: &mut I,
        tag: G,
        context: C,
        routine: fn(&mut Dispatch, &C),
    ) -> Result<Self, AllocError> {
        let object = NonPagedBox::try_new_in(&*token, tag, DpcObject::new(context, routine))?;
        // SAFETY: the box's block does not move, and the DPC is new.
        unsafe { object.initialize() };
        Ok(Dpc { object: ManuallyDrop::new(object) })
    }

    /// Queues the DPC (`KeInsertQueueDpc`): false if it was queued already (it then runs once).
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let mut passive = unsafe { ntpool::Passive::assume() };
    /// let dpc = ntpool::Dpc::<(), Doc>::try_new(&mut passive, (), |_, ()| {}).unwrap();
    /// assert!(dpc.queue());
    /// # });
    /// ```
    #[inline]
    pub fn queue(&self) -> bool {
        self.handle().queue()
    }

    /// Takes the DPC off the queue (`KeRemoveQueueDpc`): true if it was queued. A routine already
    /// running goes on.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let mut passive = unsafe { ntpool::Passive::assume() };
    /// let dpc = ntpool::Dpc::<(), Doc>::try_new(&mut passive, (), |_, ()| {}).unwrap();
    /// assert!(!dpc.cancel()); // not queued
    /// # });
    /// ```
    pub fn cancel(&self) -> bool {
        // SAFETY: an initialized KDPC (invariant).
        unsafe { sys::KeRemoveQueueDpc(self.object.kdpc.get()) != 0 }
    }

    /// The context the routine receives.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let mut passive = unsafe { ntpool::Passive::assume() };
    /// let dpc = ntpool::Dpc::<u8, Doc>::try_new(&mut passive, 3, |_, _| {}).unwrap();
    /// assert_eq!(*dpc.context(), 3);
    /// # });
    /// ```
    pub fn context(&self) -> &C {
        &self.object.context
    }

    /// A handle that queues this DPC from code at any IRQL: it is [`DispatchSafe`] and [`HighSafe`],
    /// so it may be the context of a region, of another DPC, or of an interrupt service routine. It
    /// borrows the `Dpc`, which therefore outlives it.
    ///
    /// ```
    /// use ntpool::{Dpc, Passive};
    /// use core::sync::atomic::{AtomicBool, Ordering};
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let mut passive = unsafe { Passive::assume() };
    /// let dpc = Dpc::<AtomicBool, Doc>::try_new(&mut passive, AtomicBool::new(false), |_, ran| ran.store(true, Ordering::Relaxed)).unwrap();
    /// passive.raise_to_dispatch(dpc.handle(), |_dispatch, dpc| {
    ///     dpc.queue(); // runs when the IRQL falls below DISPATCH_LEVEL, after the region
    /// });
    /// assert!(dpc.context().load(Ordering::Relaxed));
    /// # });
    /// ```
    #[inline]
    pub fn handle(&self) -> DpcHandle<'_> {
        DpcHandle { kdpc: self.object.kdpc.get(), _dpc: PhantomData }
    }
}

impl<C: DispatchSafe + Sync, G: TagSource> Drop for Dpc<C, G> {
    fn drop(&mut self) {
        self.cancel();
        // SAFETY: taken once, here; `self.object` is not used again (`self` is being dropped).
        let object = unsafe { ManuallyDrop::take(&mut self.object) };
        free_after_flush(object);
    }
}

impl<C: DispatchSafe + Sync, G: TagSource> core::fmt::Debug for Dpc<C, G> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Dpc").field("kdpc", &self.object.kdpc.get()).finish_non_exhaustive()
    }
}

impl<C: DispatchSafe + Sync, G: TagSource> Dpc<C, G> {
    /// The `KDEFERRED_ROUTINE` every `Dpc<C, _>` and [`Timer<C, _>`](crate::Timer) gives
    /// `KeInitializeDpc`: it calls the routine given to `try_new` with a [`Dispatch`] token and the
    /// context. For tools that follow the image's code from the routine the kernel calls (`cargo
    /// xtask bench` counts it); a driver has no use for it.
    ///
    /// ```
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// assert!(ntpool::Dpc::<u32, Doc>::DEFERRED_ROUTINE.is_some());
    /// ```
    pub const DEFERRED_ROUTINE: sys::PKDEFERRED_ROUTINE = DpcObject::<C>::DEFERRED_ROUTINE;
}

/// Queues a [`Dpc`] from code at any IRQL ([`Dpc::handle`]). It cannot reach the DPC's context.
///
/// ```
/// # ntpool::emulated::Kernel::new().run(|| {
/// ntpool::pool_tag!(struct Doc = b"Doc1");
/// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
/// let mut passive = unsafe { ntpool::Passive::assume() };
/// let dpc = ntpool::Dpc::<(), Doc>::try_new(&mut passive, (), |_, ()| {}).unwrap();
/// let handle = dpc.handle();
/// assert!(handle.queue());
/// # });
/// ```
///
/// # Invariants
/// `kdpc` is the initialized KDPC of the `Dpc` borrowed for `'a`.
#[derive(Clone, Copy, Debug)]
pub struct DpcHandle<'a> {
    kdpc: *mut KDPC,
    _dpc: PhantomData<&'a ()>,
}

// SAFETY: a handle only calls KeInsertQueueDpc, which any thread may call at any IRQL.
unsafe impl Send for DpcHandle<'_> {}
// SAFETY: as above.
unsafe impl Sync for DpcHandle<'_> {}
// SAFETY: it reaches no memory but the KDPC, which is non-paged, and owns nothing.
unsafe impl DispatchSafe for DpcHandle<'_> {}
// SAFETY: as above; KeInsertQueueDpc may be called at any IRQL.
unsafe impl HighSafe for DpcHandle<'_> {}

impl DpcHandle<'_> {
    /// Queues the DPC (`KeInsertQueueDpc`): false if it was queued already.
    ///
    /// ```
    /// # ntpool::emulated::Kernel::new().run(|| {
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    /// let mut passive = unsafe { ntpool::Passive::assume() };
    /// let dpc = ntpool::Dpc::<(), Doc>::try_new(&mut passive, (), |_, ()| {}).unwrap();
    /// assert!(dpc.handle().queue());
    /// # });
    /// ```
    #[inline]
    pub fn queue(&self) -> bool {
        let null = core::ptr::null_mut();
        // SAFETY: an initialized KDPC that outlives the handle (invariant); its context lives as long.
        unsafe { sys::KeInsertQueueDpc(self.kdpc, null, null) != 0 }
    }
}
