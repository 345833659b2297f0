//! Deferred free: code at `DISPATCH_LEVEL` hands memory it may not free there (paged pool) to a
//! work item that frees it at `PASSIVE_LEVEL`, in safe code.
//!
//! A [`Reclaimer`] owns a [`WorkItem`](crate::WorkItem) and a list of values to drop.
//! [`Reclaimer::park`] wraps any `Send` value (a paged box, a collection of them) in a [`Parked`]:
//! a small non-paged node that is [`DispatchSafe`] because nothing can reach the value through it
//! except with a token below `DISPATCH_LEVEL`. A `Parked` may then travel into a DPC's or a timer's
//! context (behind a [`SpinLock`](crate::SpinLock), say), and when it is dropped:
//!
//! * below `DISPATCH_LEVEL`, the value is dropped at once;
//! * at `DISPATCH_LEVEL` or above, it goes on the reclaimer's list and the work item is queued;
//!   the work item drops it at `PASSIVE_LEVEL`.
//!
//! No path, drop included, drops the value at `DISPATCH_LEVEL`. Dropping the `Reclaimer` (below
//! `DISPATCH_LEVEL`; it borrows nothing, but every `Parked` borrows it) waits for its work item and
//! drops what is left.

use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicPtr, Ordering};

use crate::alloc::AllocError;
use crate::boxed::{NonPagedBox, PoolBox};
use crate::irql::{Allows, BelowDispatch, Passive};
use crate::pool::NonPagedPool;
use crate::safe::DispatchSafe;
use crate::sys::{self, PDEVICE_OBJECT};
use crate::tag::{PoolTag, Tag, TagSource};
use crate::work_item::WorkItem;

/// The head of a parked node: the list link, and how to drop the whole node.
#[repr(C)]
struct NodeHeader {
    next: *mut NodeHeader,
    /// Drops the value and frees the node, below `DISPATCH_LEVEL`.
    drop_node: unsafe fn(*mut NodeHeader),
}

/// A parked value in its non-paged node, with the tag the node was allocated with (zero-sized for a
/// [`Tag`] type).
#[repr(C)]
struct Node<T, G> {
    header: NodeHeader,
    tag: G,
    value: T,
}

/// The box of the node at `node`, which `NonPagedBox::into_raw` gave up, with the tag the node holds.
///
/// # Safety
/// `node` is such a node, owned by the caller, who hands it over.
unsafe fn node_box<T, G: TagSource>(node: NonNull<Node<T, G>>) -> NonPagedBox<Node<T, G>, G> {
    // SAFETY: a valid node (caller); the tag is `Copy`, read once.
    let tag = unsafe { node.as_ref() }.tag;
    // SAFETY: a block that `NonPagedBox::<Node<T, G>, G>::into_raw` gave up, allocated with the tag it
    // holds, and handed over by the caller.
    unsafe { PoolBox::from_parts(node, tag) }
}

/// Drops the `Node<T, G>` allocated as a `NonPagedBox<Node<T, G>, G>` at `header`.
///
/// # Safety
/// `header` is such a node's, owned by the caller, and the IRQL is below `DISPATCH_LEVEL`.
unsafe fn drop_node<T, G: TagSource>(header: *mut NodeHeader) {
    // SAFETY: the header starts the node (`repr(C)`), which is never null (the caller's).
    let node = unsafe { NonNull::new_unchecked(header.cast::<Node<T, G>>()) };
    // SAFETY: such a node, which the caller hands over.
    drop(unsafe { node_box(node) });
}

/// The list of nodes to drop: pushed at any IRQL, taken whole at `PASSIVE_LEVEL`.
#[derive(Debug, Default)]
struct Pending {
    head: AtomicPtr<NodeHeader>,
}

impl Pending {
    /// Pushes a node (lock-free; only `take_all` removes, so there is no ABA).
    fn push(&self, node: *mut NodeHeader) {
        let mut head = self.head.load(Ordering::Acquire);
        loop {
            // SAFETY: the node is owned by the caller until the exchange below publishes it.
            unsafe { (*node).next = head };
            match self.head.compare_exchange_weak(head, node, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return,
                Err(current) => head = current,
            }
        }
    }

    /// Drops every node on the list.
    ///
    /// # Safety
    /// The IRQL is below `DISPATCH_LEVEL`.
    unsafe fn drop_all(&self) {
        let mut node = self.head.swap(core::ptr::null_mut(), Ordering::AcqRel);
        while !node.is_null() {
            // SAFETY: a node pushed by `Parked::drop`, taken off the list by the swap: owned here.
            let header = unsafe { &*node };
            let (next, drop_node) = (header.next, header.drop_node);
            // SAFETY: as above; below DISPATCH_LEVEL (caller).
            unsafe { drop_node(node) };
            node = next;
        }
    }
}

// SAFETY: the list reaches only non-paged nodes through raw pointers, and drops them only in
// `drop_all`, which requires an IRQL below DISPATCH_LEVEL.
unsafe impl DispatchSafe for Pending {}

/// The reclaimer's work item routine.
fn reclaim(_passive: &mut Passive, pending: &Pending) {
    // SAFETY: work items run at PASSIVE_LEVEL (the token).
    unsafe { pending.drop_all() }
}

/// Frees, at `PASSIVE_LEVEL`, what code at `DISPATCH_LEVEL` drops: see the crate documentation, [routines the kernel calls](crate#routines-the-kernel-calls).
///
/// Its work item and the nodes of the values it parks are tagged `G`: a [`Tag`] type
/// ([`Reclaimer::try_new`]), or a [`PoolTag`] known only at run time
/// ([`Reclaimer::try_new_with_tag`]).
///
/// ```
/// use ntpool::{PagedBox, Passive, Reclaimer, SpinLock};
/// ntpool::pool_tag!(struct Doc = b"Doc1");
/// let kernel = ntpool::emulated::Kernel::new();
/// kernel.run(|| {
///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
///     let mut passive = unsafe { Passive::assume() };
///     // SAFETY: any address stands for this driver's device here.
///     let reclaimer = unsafe { Reclaimer::<Doc>::try_new(&passive, 8 as _) }.unwrap();
///     let settings = PagedBox::<[u8; 64], Doc>::try_new(&passive, [1; 64]).unwrap();
///     let slot = SpinLock::new(Some(reclaimer.park(&passive, settings).unwrap()));
///     slot.with(&mut passive, (), |_dispatch, slot, ()| {
///         // DISPATCH_LEVEL: the paged block goes to the work item, not to ExFreePoolWithTag.
///         *slot = None;
///     });
///     kernel.wait_for_work_items().unwrap();
///     assert!(kernel.outstanding().iter().all(|block| block.pool != ntpool::emulated::PoolKind::Paged));
/// });
/// assert!(kernel.verify_unload().is_ok());
/// ```
#[derive(Debug)]
pub struct Reclaimer<G: TagSource> {
    work: WorkItem<Pending, G>,
}

impl<G: Tag> Reclaimer<G> {
    /// A reclaimer whose work item (`IoAllocateWorkItem`) belongs to `device`.
    ///
    /// # Safety
    /// `device` is a device object of the calling driver.
    #[track_caller]
    pub unsafe fn try_new(token: &Passive, device: PDEVICE_OBJECT) -> Result<Self, AllocError> {
        // SAFETY: the caller guarantees the device object.
        let work = unsafe { WorkItem::try_new(token, device, Pending::default(), reclaim) }?;
        Ok(Reclaimer { work })
    }
}

impl Reclaimer<PoolTag> {
    /// A reclaimer whose work item (`IoAllocateWorkItem`) belongs to `device`, its work item and the
    /// nodes of the values it parks tagged with `tag`, a tag known only at run time. The reclaimer
    /// stores the tag (and so does each node), and frees every block with it.
    ///
    /// # Safety
    /// `device` is a device object of the calling driver.
    ///
    /// ```
    /// use ntpool::{PagedBox, PoolTag, Reclaimer, SpinLock};
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// let kernel = ntpool::emulated::Kernel::new();
    /// kernel.run(|| {
    ///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    ///     let mut passive = unsafe { ntpool::Passive::assume() };
    ///     let tag = PoolTag::from_raw(u32::from_le_bytes(*b"Req7")).unwrap(); // say, from a request
    ///     // SAFETY: any address stands for this driver's device here.
    ///     let reclaimer = unsafe { Reclaimer::try_new_with_tag(&passive, tag, 8 as _) }.unwrap();
    ///     let settings = PagedBox::<[u8; 64], Doc>::try_new(&passive, [1; 64]).unwrap();
    ///     let slot = SpinLock::new(Some(reclaimer.park(&passive, settings).unwrap()));
    ///     slot.with(&mut passive, (), |_dispatch, slot, ()| *slot = None); // to the work item
    ///     kernel.wait_for_work_items().unwrap();
    ///     assert_eq!(kernel.outstanding()[0].tag.to_string(), "Req7"); // the work item's block
    /// });
    /// assert!(kernel.verify_unload().is_ok()); // every block freed with its tag
    /// ```
    #[track_caller]
    pub unsafe fn try_new_with_tag(token: &Passive, tag: PoolTag, device: PDEVICE_OBJECT) -> Result<Self, AllocError> {
        // SAFETY: the caller guarantees the device object.
        let work = unsafe { WorkItem::try_new_with_tag(token, tag, device, Pending::default(), reclaim) }?;
        Ok(Reclaimer { work })
    }
}

impl<G: TagSource> Reclaimer<G> {
    /// Wraps `value` for travel through code at `DISPATCH_LEVEL`. If no non-paged node can be
    /// allocated for it, the value is dropped (here, below `DISPATCH_LEVEL`) and `Err` returned.
    pub fn park<T: Send, I: BelowDispatch + Allows<NonPagedPool>>(
        &self,
        token: &I,
        value: T,
    ) -> Result<Parked<'_, T, G>, AllocError> {
        let header = NodeHeader { next: core::ptr::null_mut(), drop_node: drop_node::<T, G> };
        let tag = self.work.tag_source();
        let node = NonPagedBox::try_new_in(token, tag, Node { header, tag, value })?;
        let node = NonPagedBox::into_raw(node);
        // SAFETY: `into_raw` never returns null.
        let node = unsafe { NonNull::new_unchecked(node) };
        Ok(Parked { node, reclaimer: self, _owns: PhantomData })
    }
}

impl<G: TagSource> Drop for Reclaimer<G> {
    fn drop(&mut self) {
        // Below DISPATCH_LEVEL: a `Reclaimer` is not `DispatchSafe`. No `Parked` is left (each
        // borrows the reclaimer); wait for the work item, then drop what it has not.
        while self.work.is_pending() {
            // SAFETY: below DISPATCH_LEVEL (see above).
            unsafe { crate::wait::sleep(core::time::Duration::from_millis(1)) };
        }
        // SAFETY: below DISPATCH_LEVEL (see above).
        unsafe { self.work.shared_context().drop_all() };
    }
}

/// A value on its way to be dropped at `PASSIVE_LEVEL` ([`Reclaimer::park`]): [`DispatchSafe`],
/// since code at `DISPATCH_LEVEL` cannot reach the value, and dropping it there hands the value to
/// the reclaimer's work item.
///
/// # Invariants
/// `node` is a `Node<T, G>` from `NonPagedBox::<Node<T, G>, G>::into_raw`, allocated with the tag it
/// holds, owned by this `Parked`.
pub struct Parked<'r, T: Send, G: TagSource> {
    node: NonNull<Node<T, G>>,
    reclaimer: &'r Reclaimer<G>,
    _owns: PhantomData<T>,
}

// SAFETY: the value is reachable only with a token below DISPATCH_LEVEL (`get`, `get_mut`,
// `into_inner`), and the drop never drops it at DISPATCH_LEVEL or above; the node itself is
// non-paged.
unsafe impl<T: Send, G: TagSource> DispatchSafe for Parked<'_, T, G> {}
// SAFETY: it owns a `T: Send` and a shared reference to the reclaimer, whose list is atomic.
unsafe impl<T: Send, G: TagSource + Sync> Send for Parked<'_, T, G> {}
// SAFETY: `&Parked` reaches `&T` only through `get`, with a token; `T: Sync` is then needed.
unsafe impl<T: Send + Sync, G: TagSource + Sync> Sync for Parked<'_, T, G> {}

impl<T: Send, G: TagSource> Parked<'_, T, G> {
    /// The value, below `DISPATCH_LEVEL`.
    pub fn get<'a>(&'a self, _token: &'a impl BelowDispatch) -> &'a T {
        // SAFETY: an owned, valid node (invariant).
        unsafe { &self.node.as_ref().value }
    }

    /// The value, mutably, below `DISPATCH_LEVEL`.
    pub fn get_mut<'a>(&'a mut self, _token: &'a impl BelowDispatch) -> &'a mut T {
        // SAFETY: an owned, valid node (invariant), borrowed mutably through `self`.
        unsafe { &mut self.node.as_mut().value }
    }

    /// The value back, below `DISPATCH_LEVEL`; the node is freed.
    pub fn into_inner<I: BelowDispatch + Allows<NonPagedPool>>(self, token: &I) -> T {
        let parked = core::mem::ManuallyDrop::new(self);
        // SAFETY: the node is owned (invariant) and handed back to its box once, here.
        let node = unsafe { node_box(parked.node) };
        node.into_inner(token).value
    }
}

impl<T: Send, G: TagSource> Drop for Parked<'_, T, G> {
    fn drop(&mut self) {
        let header = self.node.as_ptr().cast::<NodeHeader>();
        let irql = sys::KeGetCurrentIrql();
        if irql < sys::DISPATCH_LEVEL {
            // SAFETY: the owned node (invariant), below DISPATCH_LEVEL.
            unsafe { drop_node::<T, G>(header) };
            return;
        }
        self.reclaimer.work.shared_context().push(header);
        if irql == sys::DISPATCH_LEVEL {
            self.reclaimer.work.trigger().queue(&crate::irql::Dispatch::new());
        }
        // Above DISPATCH_LEVEL (only through `unsafe` code) the node waits for the next queue of the
        // work item, or for the reclaimer's drop.
    }
}

impl<T: Send, G: TagSource> core::fmt::Debug for Parked<'_, T, G> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Parked").field("node", &self.node).finish_non_exhaustive()
    }
}
