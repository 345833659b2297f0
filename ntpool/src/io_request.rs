//! [`IoRequest`]: IRPs the driver sends (`IoAllocateIrp`, `IofCallDriver`), whose completion
//! routine the kernel calls at up to `DISPATCH_LEVEL`, and which receives an [`UpToDispatch`]
//! token from this crate.
//!
//! The completion routine is a plain `fn` (a closure that captures nothing) and reaches only its
//! context, which must be [`DispatchSafe`] (it may run at `DISPATCH_LEVEL`) and `Sync` (the owner
//! reads it while an IRP may complete on another processor). The context lives in a block of
//! non-paged pool that the `IoRequest` owns; each send allocates an IRP, and the completion
//! routine frees it (`IoFreeIrp`) and returns `STATUS_MORE_PROCESSING_REQUIRED`, so the I/O
//! manager never completes the driver's own IRP to a thread. Dropping the `IoRequest` waits until
//! no IRP of it is in flight.

use core::mem::ManuallyDrop;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::alloc::AllocError;
use crate::boxed::NonPagedBox;
use crate::irql::{Allows, AtMostDispatch, BelowDispatch, UpToDispatch};
use crate::pool::NonPagedPool;
use crate::safe::DispatchSafe;
use crate::sys::{self, NTSTATUS, PDEVICE_OBJECT, PIRP, PVOID};
use crate::tag::{PoolTag, Tag, TagSource};

/// How an IRP completed: what the lower driver put in its `IoStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// `IoStatus.Status`.
    pub status: NTSTATUS,
    /// `IoStatus.Information`.
    pub information: usize,
}

crate::safe::plain!(Completion);

/// The routine, its context, and whether an IRP is in flight; in non-paged pool.
struct RequestObject<C> {
    in_flight: AtomicBool,
    routine: fn(&mut UpToDispatch, &C, Completion),
    context: C,
}

/// The `IO_COMPLETION_ROUTINE` of every [`IoRequest`].
///
/// # Safety
/// Called by the I/O manager at `IRQL <= DISPATCH_LEVEL` when the IRP `IoRequest::send_ioctl` sent
/// completes, with the context it set.
unsafe extern "system" fn completion<C: DispatchSafe + Sync>(
    _device: PDEVICE_OBJECT,
    irp: PIRP,
    context: PVOID,
) -> NTSTATUS {
    // SAFETY: the `RequestObject<C>` that sent this IRP, alive until `in_flight` is cleared below.
    let object = unsafe { &*context.cast::<RequestObject<C>>() };
    // SAFETY: the IRP being completed, which the lower driver's status is in.
    let io_status = unsafe { (*irp).IoStatus };
    // SAFETY: as above: the union holds the status.
    let status = unsafe { io_status.__bindgen_anon_1.Status };
    let done = Completion { status, information: io_status.Information as usize };
    // Completion routines run at IRQL <= DISPATCH_LEVEL; the token lives only for the routine,
    // which reaches nothing but its `DispatchSafe` context.
    (object.routine)(&mut UpToDispatch::entry(), &object.context, done);
    // SAFETY: the driver's own IRP from IoAllocateIrp, which no driver uses any more: freed once.
    unsafe { sys::IoFreeIrp(irp) };
    // The last access to the object: the owner may free it from now on.
    object.in_flight.store(false, Ordering::Release);
    sys::STATUS_MORE_PROCESSING_REQUIRED
}

/// A request the driver sends to a device, one IRP at a time, whose completion `routine` receives
/// an [`UpToDispatch`] token and `&context`. The context's block is tagged `G`: a [`Tag`] type
/// ([`IoRequest::try_new`]), or a [`PoolTag`] known only at run time
/// ([`IoRequest::try_new_with_tag`]).
///
/// ```
/// # use ntpool::{IoRequest, Passive, Completion};
/// # use core::sync::atomic::{AtomicI32, Ordering};
/// ntpool::pool_tag!(struct Doc = b"Doc1");
/// // SAFETY: none of these is called here; see the driver's tests for a complete round trip.
/// fn make(passive: &mut Passive) -> Result<IoRequest<AtomicI32, Doc>, ntpool::AllocError> {
///     IoRequest::try_new(passive, AtomicI32::new(0), |_up_to_dispatch, last, done: Completion| {
///         last.store(done.status, Ordering::Relaxed);
///     })
/// }
/// ```
///
/// # Invariants
/// `object` does not move, and is freed only when `in_flight` is false.
pub struct IoRequest<C: DispatchSafe + Sync, G: TagSource> {
    object: ManuallyDrop<NonPagedBox<RequestObject<C>, G>>,
}

// SAFETY: the context is shared as `&C` (`Sync`) with completion routines, and moved only if `C: Send`.
unsafe impl<C: DispatchSafe + Sync + Send, G: TagSource + Send> Send for IoRequest<C, G> {}
// SAFETY: `&IoRequest` sends (one IRP at a time, by the atomic flag) and reads `&C`.
unsafe impl<C: DispatchSafe + Sync, G: TagSource + Sync> Sync for IoRequest<C, G> {}

impl<C: DispatchSafe + Sync, G: Tag> IoRequest<C, G> {
    /// A request whose IRPs complete into `routine` with `context`.
    ///
    /// The token is borrowed mutably, as a region's is: no reference reached through it (a paged
    /// box's `get`) can be the context, which the routine reads later at up to `DISPATCH_LEVEL`.
    #[track_caller]
    pub fn try_new<I: BelowDispatch + Allows<NonPagedPool>>(
        token: &mut I,
        context: C,
        routine: fn(&mut UpToDispatch, &C, Completion),
    ) -> Result<Self, AllocError> {
        IoRequest::try_new_in(token, G::default(), context, routine)
    }
}

impl<C: DispatchSafe + Sync> IoRequest<C, PoolTag> {
    /// A request whose IRPs complete into `routine` with `context`, the context's block tagged with
    /// `tag`, a tag known only at run time. The request stores the tag and frees the block with it.
    ///
    /// ```
    /// use core::sync::atomic::{AtomicI32, Ordering};
    /// use ntpool::{Completion, IoRequest, PoolTag};
    /// let kernel = ntpool::emulated::Kernel::new();
    /// kernel.run(|| {
    ///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    ///     let mut passive = unsafe { ntpool::Passive::assume() };
    ///     let tag = PoolTag::from_raw(u32::from_le_bytes(*b"Req7")).unwrap(); // say, from a request
    ///     let routine = |_: &mut _, last: &AtomicI32, done: Completion| last.store(done.status, Ordering::Relaxed);
    ///     let request = IoRequest::try_new_with_tag(&mut passive, tag, AtomicI32::new(0), routine).unwrap();
    ///     assert!(!request.is_pending());
    ///     assert_eq!(kernel.outstanding()[0].tag.to_string(), "Req7");
    /// });
    /// assert!(kernel.verify_unload().is_ok()); // freed with its tag
    /// ```
    #[track_caller]
    pub fn try_new_with_tag<I: BelowDispatch + Allows<NonPagedPool>>(
        token: &mut I,
        tag: PoolTag,
        context: C,
        routine: fn(&mut UpToDispatch, &C, Completion),
    ) -> Result<Self, AllocError> {
        IoRequest::try_new_in(token, tag, context, routine)
    }
}

impl<C: DispatchSafe + Sync, G: TagSource> IoRequest<C, G> {
    /// A request whose context's block is tagged with `tag`: [`IoRequest::try_new`] and
    /// [`IoRequest::try_new_with_tag`].
    #[track_caller]
    fn try_new_in<I: BelowDispatch + Allows<NonPagedPool>>(
        token: &mut I,
        tag: G,
        context: C,
        routine: fn(&mut UpToDispatch, &C, Completion),
    ) -> Result<Self, AllocError> {
        let object = RequestObject { in_flight: AtomicBool::new(false), routine, context };
        Ok(IoRequest { object: ManuallyDrop::new(NonPagedBox::try_new_in(&*token, tag, object)?) })
    }

    /// Sends a device-control request with `code` and no buffers to `device` (an
    /// `IRP_MJ_INTERNAL_DEVICE_CONTROL` one if `internal`): `IoAllocateIrp` with the device's
    /// stack size, the next stack location filled in, the completion routine set for success,
    /// error and cancel, `IofCallDriver`. Returns what `IofCallDriver` returned;
    /// `STATUS_DEVICE_BUSY` if an IRP of this request is still in flight, and
    /// `STATUS_INSUFFICIENT_RESOURCES` if no IRP could be allocated (the routine is then not
    /// called).
    ///
    /// # Safety
    /// `device` is a device object that stays valid until the IRP has completed: one of the
    /// driver's own, or one it holds a reference to.
    pub unsafe fn send_ioctl(
        &self,
        _token: &impl AtMostDispatch,
        device: PDEVICE_OBJECT,
        code: u32,
        internal: bool,
    ) -> NTSTATUS {
        if self.object.in_flight.swap(true, Ordering::Acquire) {
            return sys::STATUS_DEVICE_BUSY;
        }
        // SAFETY: a valid device (caller).
        let stack_size = unsafe { (*device).StackSize };
        // SAFETY: IRQL <= DISPATCH_LEVEL (token).
        let irp = unsafe { sys::IoAllocateIrp(stack_size, 0) };
        if irp.is_null() {
            self.object.in_flight.store(false, Ordering::Release);
            return sys::STATUS_INSUFFICIENT_RESOURCES;
        }
        // SAFETY: a new IRP with `stack_size` >= 1 locations: the next one is the first.
        let next = unsafe { sys::IoGetNextIrpStackLocation(irp) };
        // SAFETY: as above: the new IRP's first stack location, ours to fill in.
        let next = unsafe { &mut *next };
        next.MajorFunction =
            if internal { sys::IRP_MJ_INTERNAL_DEVICE_CONTROL } else { sys::IRP_MJ_DEVICE_CONTROL } as u8;
        next.Parameters.DeviceIoControl.IoControlCode = code;
        let object: *const RequestObject<C> = &**self.object;
        // SAFETY: the IRP's next location; the routine and its context (the boxed object) stay
        // valid until it has run (the drop waits for `in_flight`).
        unsafe { sys::IoSetCompletionRoutine(irp, Some(completion::<C>), object.cast_mut().cast(), true, true, true) };
        // SAFETY: a valid device (caller) and an IRP set up for it; IRQL <= DISPATCH_LEVEL.
        unsafe { sys::IofCallDriver(device, irp) }
    }

    /// Whether an IRP of this request is in flight.
    pub fn is_pending(&self) -> bool {
        self.object.in_flight.load(Ordering::Acquire)
    }

    /// The context the completion routine receives.
    pub fn context(&self) -> &C {
        &self.object.context
    }
}

impl<C: DispatchSafe + Sync, G: TagSource> Drop for IoRequest<C, G> {
    fn drop(&mut self) {
        // Not `DispatchSafe`: dropped below DISPATCH_LEVEL, where the thread may wait.
        while self.is_pending() {
            // SAFETY: below DISPATCH_LEVEL (see above).
            unsafe { crate::wait::sleep(core::time::Duration::from_millis(1)) };
        }
        // SAFETY: taken once, here; no IRP refers to it any more.
        drop(unsafe { ManuallyDrop::take(&mut self.object) });
    }
}

impl<C: DispatchSafe + Sync, G: TagSource> core::fmt::Debug for IoRequest<C, G> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IoRequest").field("in_flight", &self.is_pending()).finish_non_exhaustive()
    }
}
