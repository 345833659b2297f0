//! [`WorkItem`]: an I/O work item (`IO_WORKITEM`) whose routine runs on a system worker thread at
//! `PASSIVE_LEVEL` with a [`Passive`] token, and whose context may therefore own paged memory.
//!
//! Code at `DISPATCH_LEVEL` queues it through a [`WorkTrigger`], which is `DispatchSafe` and reaches
//! nothing of the context: the context is only ever touched by the routine (at `PASSIVE_LEVEL`) and
//! by the owner (through a token below `DISPATCH_LEVEL`). Dropping the `WorkItem` waits until it is
//! neither queued nor running, then frees it (`IoFreeWorkItem`): a driver that drops its work items
//! in `DriverUnload` cannot finish unloading with one pending. `IoAllocateWorkItem` keeps the device
//! object referenced while the work item exists.

use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::alloc::AllocError;
use crate::boxed::NonPagedBox;
use crate::irql::{AtMostDispatch, BelowDispatch, Passive};
use crate::safe::DispatchSafe;
use crate::sys::{self, PDEVICE_OBJECT, PIO_WORKITEM, PVOID};
use crate::tag::{PoolTag, Tag, TagSource};

/// The kernel's work item and what its routine needs, in non-paged pool.
struct WorkObject<C> {
    item: PIO_WORKITEM,
    /// Queued and not yet started.
    queued: AtomicBool,
    /// Routines started and not finished.
    running: AtomicU32,
    routine: fn(&mut Passive, &C),
    context: C,
}

/// The `IO_WORKITEM_ROUTINE` of every [`WorkItem`].
///
/// # Safety
/// Called by the kernel at `PASSIVE_LEVEL` on a worker thread, with the context `WorkTrigger::queue`
/// gave it.
unsafe extern "system" fn trampoline<C: Send + Sync>(_device: PDEVICE_OBJECT, context: PVOID) {
    // SAFETY: the context is the `WorkObject<C>` that queued this item, alive until its owner has
    // seen it neither queued nor running (see `WorkItem`'s drop).
    let object = unsafe { &*context.cast::<WorkObject<C>>() };
    object.running.fetch_add(1, Ordering::SeqCst);
    // Dequeued before the routine runs (as the kernel does): queuing it again from here, or while it
    // runs, runs it once more.
    object.queued.store(false, Ordering::SeqCst);
    // Worker threads run work items at PASSIVE_LEVEL; the token lives only for the routine, which
    // reaches nothing but its context, on a thread of its own.
    (object.routine)(Passive::entry_mut(), &object.context);
    // The last access to the object: the owner may free it from now on. The I/O manager keeps the
    // device object, and with it the driver's image, referenced until this function has returned.
    object.running.fetch_sub(1, Ordering::SeqCst);
}

/// An I/O work item: `routine` runs at `PASSIVE_LEVEL` with a [`Passive`] token and `&context`
/// each time it is queued ([`WorkItem::queue`], or [`WorkTrigger::queue`] from `DISPATCH_LEVEL`).
/// Its block is tagged `G`: a [`Tag`] type ([`WorkItem::try_new`]), or a [`PoolTag`] known only at
/// run time ([`WorkItem::try_new_with_tag`]).
///
/// ```
/// use core::sync::atomic::{AtomicU32, Ordering};
/// use ntpool::{FastMutex, PagedBox, Passive, WorkItem};
/// ntpool::pool_tag!(struct Doc = b"Doc1");
/// let kernel = ntpool::emulated::Kernel::new();
/// let device = 8 as ntpool::sys::PDEVICE_OBJECT; // any address stands for the device here
/// kernel.run(|| {
///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
///     let passive = unsafe { Passive::assume() };
///     // The context owns paged memory: only the routine and the owner reach it.
///     let log = PagedBox::<[u8; 16], Doc>::try_new(&passive, [0; 16])?;
///     let log = FastMutex::<_, Doc>::try_new(&passive, log)?;
///     // SAFETY: `device` stands for this driver's device object, which outlives the work item.
///     let work = unsafe {
///         WorkItem::<_, Doc>::try_new(&passive, device, log, |passive, log| {
///             log.lock(passive, |apc, log| log.get_mut(apc)[0] += 1);
///         })
///     }?;
///     work.queue(&passive);
///     kernel.wait_for_work_items().unwrap();
///     drop(work); // waits for the routine, frees the work item and the paged block
///     Ok::<(), ntpool::AllocError>(())
/// })?;
/// assert!(kernel.verify_unload().is_ok());
/// # Ok::<(), ntpool::AllocError>(())
/// ```
///
/// # Invariants
/// `object.item` came from `IoAllocateWorkItem` and is freed only by the drop, once `queued` is false
/// and `running` is zero; `object` does not move while the work item exists.
pub struct WorkItem<C: Send + Sync, G: TagSource> {
    object: ManuallyDrop<NonPagedBox<WorkObject<C>, G>>,
}

// SAFETY: the IO_WORKITEM is touched only through the I/O manager's routines; the context is shared
// as `&C` (`Sync`) with the worker thread, and moved only if `C: Send`.
unsafe impl<C: Send + Sync, G: TagSource + Send> Send for WorkItem<C, G> {}
// SAFETY: as above; `&WorkItem` only queues and reads `&C`.
unsafe impl<C: Send + Sync, G: TagSource + Sync> Sync for WorkItem<C, G> {}

impl<C: Send + Sync, G: Tag> WorkItem<C, G> {
    /// A work item for `device` (`IoAllocateWorkItem`) that runs `routine` with `context`.
    /// `Err(AllocError)` if the pool or the I/O manager has no memory for it.
    ///
    /// # Safety
    /// `device` is a device object of the calling driver.
    #[track_caller]
    pub unsafe fn try_new(
        token: &Passive,
        device: PDEVICE_OBJECT,
        context: C,
        routine: fn(&mut Passive, &C),
    ) -> Result<Self, AllocError> {
        // SAFETY: the caller's guarantee.
        unsafe { WorkItem::try_new_in(token, G::default(), device, context, routine) }
    }
}

impl<C: Send + Sync> WorkItem<C, PoolTag> {
    /// A work item for `device` (`IoAllocateWorkItem`) that runs `routine` with `context`, its
    /// block tagged with `tag`, a tag known only at run time. The work item stores the tag and frees
    /// its block with it. `Err(AllocError)` if the pool or the I/O manager has no memory for it.
    ///
    /// # Safety
    /// `device` is a device object of the calling driver.
    ///
    /// ```
    /// use ntpool::{PoolTag, WorkItem};
    /// let kernel = ntpool::emulated::Kernel::new();
    /// kernel.run(|| {
    ///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    ///     let passive = unsafe { ntpool::Passive::assume() };
    ///     let tag = PoolTag::from_raw(u32::from_le_bytes(*b"Req7")).unwrap(); // say, from a request
    ///     // SAFETY: any address stands for this driver's device here.
    ///     let work = unsafe { WorkItem::<u32, PoolTag>::try_new_with_tag(&passive, tag, 8 as _, 7, |_, _| {}) }.unwrap();
    ///     assert!(work.queue(&passive));
    ///     kernel.wait_for_work_items().unwrap();
    ///     assert_eq!(kernel.outstanding()[0].tag.to_string(), "Req7");
    /// });
    /// assert!(kernel.verify_unload().is_ok()); // freed with its tag
    /// ```
    #[track_caller]
    pub unsafe fn try_new_with_tag(
        token: &Passive,
        tag: PoolTag,
        device: PDEVICE_OBJECT,
        context: C,
        routine: fn(&mut Passive, &C),
    ) -> Result<Self, AllocError> {
        // SAFETY: the caller's guarantee.
        unsafe { WorkItem::try_new_in(token, tag, device, context, routine) }
    }
}

impl<C: Send + Sync, G: TagSource> WorkItem<C, G> {
    /// A work item whose block is tagged with `tag`: [`WorkItem::try_new`] and
    /// [`WorkItem::try_new_with_tag`].
    ///
    /// # Safety
    /// `device` is a device object of the calling driver.
    #[track_caller]
    unsafe fn try_new_in(
        token: &Passive,
        tag: G,
        device: PDEVICE_OBJECT,
        context: C,
        routine: fn(&mut Passive, &C),
    ) -> Result<Self, AllocError> {
        // SAFETY: the caller guarantees the device object; PASSIVE_LEVEL (token).
        let item = unsafe { sys::IoAllocateWorkItem(device) };
        if item.is_null() {
            return Err(AllocError);
        }
        let object = WorkObject { item, queued: AtomicBool::new(false), running: AtomicU32::new(0), routine, context };
        match NonPagedBox::try_new_in(token, tag, object) {
            Ok(object) => Ok(WorkItem { object: ManuallyDrop::new(object) }),
            Err(error) => {
                // SAFETY: allocated above, never queued.
                unsafe { sys::IoFreeWorkItem(item) };
                Err(error)
            }
        }
    }

    /// Queues the work item (`IoQueueWorkItem` on the delayed work queue) unless it is queued and
    /// has not started yet: true if it queued it.
    pub fn queue(&self, token: &impl AtMostDispatch) -> bool {
        self.trigger().queue(token)
    }

    /// A handle that queues the work item from code at up to `DISPATCH_LEVEL`: [`DispatchSafe`], and
    /// unable to reach the context (which may own paged memory). It borrows the `WorkItem`.
    ///
    /// ```
    /// use ntpool::{PagedBox, Passive, WorkItem};
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// let kernel = ntpool::emulated::Kernel::new();
    /// kernel.run(|| {
    ///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    ///     let mut passive = unsafe { Passive::assume() };
    ///     let paged = PagedBox::<u32, Doc>::try_new(&passive, 1).unwrap();
    ///     // SAFETY: any address stands for this driver's device here.
    ///     let work = unsafe { WorkItem::<PagedBox<u32, Doc>, Doc>::try_new(&passive, 8 as _, paged, |_passive, _paged| {}) }.unwrap();
    ///     passive.raise_to_dispatch(work.trigger(), |dispatch, trigger| trigger.queue(dispatch));
    ///     kernel.wait_for_work_items().unwrap();
    /// });
    /// ```
    pub fn trigger(&self) -> WorkTrigger<'_> {
        let object: &WorkObject<C> = &self.object;
        WorkTrigger {
            item: object.item,
            queued: &object.queued,
            routine: trampoline::<C>,
            context: (object as *const WorkObject<C>).cast_mut().cast(),
            _object: PhantomData,
        }
    }

    /// The context, for code below `DISPATCH_LEVEL`.
    pub fn context<'a>(&'a self, _token: &'a impl BelowDispatch) -> &'a C {
        &self.object.context
    }

    /// The context, at any IRQL: for contexts that are `DispatchSafe` (the reclaimer's list).
    pub(crate) fn shared_context(&self) -> &C
    where
        C: DispatchSafe,
    {
        &self.object.context
    }

    /// The tag of the work item's block (a [`Reclaimer`](crate::Reclaimer) tags its nodes so).
    pub(crate) fn tag_source(&self) -> G {
        self.object.owner()
    }

    /// Whether the work item is queued or its routine is running.
    pub fn is_pending(&self) -> bool {
        self.object.queued.load(Ordering::SeqCst) || self.object.running.load(Ordering::SeqCst) != 0
    }
}

impl<C: Send + Sync, G: TagSource> WorkItem<C, G> {
    /// The `IO_WORKITEM_ROUTINE` every `WorkItem<C, _>` gives `IoQueueWorkItem`: it calls the
    /// routine given to `try_new` with a [`Passive`] token and the context. For tools that follow
    /// the image's code from the routine the kernel calls (`cargo xtask bench` counts it); a driver
    /// has no use for it.
    ///
    /// ```
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// assert!(ntpool::WorkItem::<u32, Doc>::WORKER_ROUTINE.is_some());
    /// ```
    pub const WORKER_ROUTINE: sys::PIO_WORKITEM_ROUTINE = Some(trampoline::<C>);
}

impl<C: Send + Sync, G: TagSource> Drop for WorkItem<C, G> {
    fn drop(&mut self) {
        // A `WorkItem` is not `DispatchSafe`, so this runs below DISPATCH_LEVEL, where the thread may
        // wait: for the routine queued or running to finish.
        while self.is_pending() {
            // SAFETY: below DISPATCH_LEVEL (see above).
            unsafe { crate::wait::sleep(core::time::Duration::from_millis(1)) };
        }
        // SAFETY: allocated by IoAllocateWorkItem (invariant), neither queued nor running.
        unsafe { sys::IoFreeWorkItem(self.object.item) };
        // SAFETY: taken once, here; not used again.
        drop(unsafe { ManuallyDrop::take(&mut self.object) });
    }
}

impl<C: Send + Sync, G: TagSource> core::fmt::Debug for WorkItem<C, G> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WorkItem").field("item", &self.object.item).finish_non_exhaustive()
    }
}

/// Queues a [`WorkItem`] from code at up to `DISPATCH_LEVEL` ([`WorkItem::trigger`]); it cannot
/// reach the work item's context.
///
/// # Invariants
/// The fields are those of the `WorkItem` borrowed for `'a`: its `IO_WORKITEM`, its flag, its
/// trampoline and its object.
#[derive(Clone, Copy, Debug)]
pub struct WorkTrigger<'a> {
    item: PIO_WORKITEM,
    queued: &'a AtomicBool,
    routine: unsafe extern "system" fn(PDEVICE_OBJECT, PVOID),
    context: PVOID,
    _object: PhantomData<&'a ()>,
}

// SAFETY: it calls IoQueueWorkItem, which any thread may call at up to DISPATCH_LEVEL.
unsafe impl Send for WorkTrigger<'_> {}
// SAFETY: as above; the flag is atomic.
unsafe impl Sync for WorkTrigger<'_> {}
// SAFETY: it reaches the flag and the IO_WORKITEM (non-paged) and nothing of the context, which is
// only handed to the routine at PASSIVE_LEVEL; it owns nothing.
unsafe impl DispatchSafe for WorkTrigger<'_> {}

impl WorkTrigger<'_> {
    /// Queues the work item unless it is queued and has not started yet: true if it queued it.
    pub fn queue(&self, _token: &impl AtMostDispatch) -> bool {
        if self.queued.swap(true, Ordering::SeqCst) {
            return false;
        }
        // SAFETY: an allocated work item, not queued (the flag was clear), whose context outlives
        // the routine (the `WorkItem` waits for it before it is freed); IRQL <= DISPATCH_LEVEL
        // (token).
        unsafe { sys::IoQueueWorkItem(self.item, Some(self.routine), sys::DelayedWorkQueue, self.context) };
        true
    }
}
