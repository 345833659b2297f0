//! [`SystemThread`]: a system thread (`PsCreateSystemThread`) whose body runs at `PASSIVE_LEVEL`
//! with a [`Passive`] token, and which is joined when dropped.
//!
//! The body is a plain `fn` (a closure that captures nothing) and reaches only its context, which
//! lives in a block of non-paged pool owned by the `SystemThread` and shared with the thread as
//! `&C`: `C` must be `Send + Sync`, and may own paged memory, since the body runs at
//! `PASSIVE_LEVEL` and the owner reaches the context only with a token below `DISPATCH_LEVEL`.
//! Dropping the `SystemThread` (below `DISPATCH_LEVEL`: it is not `DispatchSafe`) waits for the
//! thread to end (`KeWaitForSingleObject` on the thread object) before the context is dropped and
//! its block freed, so a driver that drops its threads in `DriverUnload` cannot unload under a
//! running one.

use core::mem::ManuallyDrop;

use crate::alloc::AllocError;
use crate::boxed::NonPagedBox;
use crate::irql::{BelowDispatch, Passive};
use crate::sys::{self, HANDLE, PVOID};
use crate::tag::{PoolTag, Tag, TagSource};

/// The body and its context, in non-paged pool.
struct ThreadObject<C> {
    routine: fn(&mut Passive, &C),
    context: C,
}

/// The `PKSTART_ROUTINE` of every [`SystemThread`].
///
/// # Safety
/// Called by the kernel at `PASSIVE_LEVEL` in the new thread, with the context
/// `SystemThread::try_new` gave it.
unsafe extern "system" fn start<C: Send + Sync>(context: PVOID) {
    // SAFETY: the `ThreadObject<C>` the owner keeps alive until this thread has ended.
    let object = unsafe { &*context.cast::<ThreadObject<C>>() };
    // A new system thread starts at PASSIVE_LEVEL; the token lives only for the body, which
    // reaches nothing but its context.
    (object.routine)(&mut Passive::entry(), &object.context);
    // SAFETY: a system thread ends itself, at PASSIVE_LEVEL; nothing of the driver runs after it.
    unsafe { sys::PsTerminateSystemThread(sys::STATUS_SUCCESS) };
}

/// A system thread running `routine` with a [`Passive`] token and `&context`; dropping it joins
/// the thread. The context's block is tagged `G`: a [`Tag`] type ([`SystemThread::try_new`]), or a
/// [`PoolTag`] known only at run time ([`SystemThread::try_new_with_tag`]).
///
/// ```
/// use core::sync::atomic::{AtomicU32, Ordering};
/// use ntpool::{PagedBox, Passive, SystemThread};
/// ntpool::pool_tag!(struct Doc = b"Doc1");
/// let kernel = ntpool::emulated::Kernel::new();
/// kernel.run(|| {
///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
///     let passive = unsafe { Passive::assume() };
///     let thread = SystemThread::<AtomicU32, Doc>::try_new(&passive, AtomicU32::new(0), |passive, sum| {
///         // PASSIVE_LEVEL: paged pool is fine here.
///         let values = PagedBox::<[u32; 4], Doc>::try_new(passive, [1, 2, 3, 4]).unwrap();
///         sum.store(values.get(passive).iter().sum(), Ordering::Relaxed);
///     })?;
///     thread.join(); // KeWaitForSingleObject on the thread object
///     Ok::<(), ntpool::AllocError>(())
/// })?;
/// assert!(kernel.verify_unload().is_ok());
/// # Ok::<(), ntpool::AllocError>(())
/// ```
///
/// # Invariants
/// `thread` is a referenced thread object (`ObReferenceObjectByHandle`) of a thread started with
/// `start::<C>` and `object`'s address; `object` does not move and is freed only after that
/// thread has ended.
pub struct SystemThread<C: Send + Sync, G: TagSource> {
    thread: PVOID,
    object: ManuallyDrop<NonPagedBox<ThreadObject<C>, G>>,
}

// SAFETY: the thread object is only waited on and dereferenced, which any thread may do; the
// context is shared as `&C` (`Sync`) and moved with the owner only if `C: Send`.
unsafe impl<C: Send + Sync, G: TagSource + Send> Send for SystemThread<C, G> {}
// SAFETY: `&SystemThread` only reads `&C`, with a token.
unsafe impl<C: Send + Sync, G: TagSource + Sync> Sync for SystemThread<C, G> {}

impl<C: Send + Sync, G: Tag> SystemThread<C, G> {
    /// Starts a system thread (`PsCreateSystemThread` in the System process, with a kernel handle,
    /// which is closed once the thread object is referenced) that runs `routine` with `context`.
    /// `Err(AllocError)` if the pool has no block for the context or the kernel cannot start the
    /// thread.
    #[track_caller]
    pub fn try_new(token: &Passive, context: C, routine: fn(&mut Passive, &C)) -> Result<Self, AllocError> {
        SystemThread::try_new_in(token, G::default(), context, routine)
    }
}

impl<C: Send + Sync> SystemThread<C, PoolTag> {
    /// Starts a system thread that runs `routine` with `context`, as [`SystemThread::try_new`]
    /// does, the context's block tagged with `tag`, a tag known only at run time. The thread's owner
    /// stores the tag and frees the block with it.
    ///
    /// ```
    /// use core::sync::atomic::{AtomicU32, Ordering};
    /// use ntpool::{PoolTag, SystemThread};
    /// let kernel = ntpool::emulated::Kernel::new();
    /// kernel.run(|| {
    ///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    ///     let passive = unsafe { ntpool::Passive::assume() };
    ///     let tag = PoolTag::from_raw(u32::from_le_bytes(*b"Req7")).unwrap(); // say, from a request
    ///     let thread = SystemThread::<AtomicU32, PoolTag>::try_new_with_tag(&passive, tag, AtomicU32::new(0), |_, ran| {
    ///         ran.store(1, Ordering::Relaxed);
    ///     })
    ///     .unwrap();
    ///     thread.wait(&passive);
    ///     assert_eq!(thread.context(&passive).load(Ordering::Relaxed), 1);
    ///     assert_eq!(kernel.outstanding()[0].tag.to_string(), "Req7");
    /// });
    /// assert!(kernel.verify_unload().is_ok()); // joined, and freed with its tag
    /// ```
    #[track_caller]
    pub fn try_new_with_tag(
        token: &Passive,
        tag: PoolTag,
        context: C,
        routine: fn(&mut Passive, &C),
    ) -> Result<Self, AllocError> {
        SystemThread::try_new_in(token, tag, context, routine)
    }
}

impl<C: Send + Sync, G: TagSource> SystemThread<C, G> {
    /// Starts a system thread whose context's block is tagged with `tag`:
    /// [`SystemThread::try_new`] and [`SystemThread::try_new_with_tag`].
    #[track_caller]
    fn try_new_in(token: &Passive, tag: G, context: C, routine: fn(&mut Passive, &C)) -> Result<Self, AllocError> {
        let object = NonPagedBox::try_new_in(token, tag, ThreadObject { routine, context })?;
        let mut handle: HANDLE = core::ptr::null_mut();
        // A kernel handle: a thread of a user's process (a dispatch routine's) may start one too.
        let mut attributes = sys::OBJECT_ATTRIBUTES::unnamed(sys::OBJ_KERNEL_HANDLE);
        let null = core::ptr::null_mut();
        let context: *const ThreadObject<C> = &*object;
        // SAFETY: valid pointers, at PASSIVE_LEVEL (token); the context is the boxed object, which
        // does not move and outlives the thread (the drop waits for it).
        let status = unsafe {
            sys::PsCreateSystemThread(
                &mut handle,
                sys::THREAD_ALL_ACCESS,
                &mut attributes,
                null,
                null,
                Some(start::<C>),
                context.cast_mut().cast(),
            )
        };
        if status < 0 {
            return Err(AllocError);
        }
        let mut thread: PVOID = null;
        // SAFETY: the handle just returned, a valid out pointer, in kernel mode.
        let status = unsafe {
            sys::ObReferenceObjectByHandle(handle, sys::SYNCHRONIZE, null, sys::KernelMode, &mut thread, null)
        };
        // SAFETY: the kernel handle PsCreateSystemThread returned, closed once.
        unsafe { sys::ZwClose(handle) };
        if status < 0 {
            // The thread runs, and nothing can wait for it: keep its context for good rather than
            // free it under the thread.
            core::mem::forget(object);
            return Err(AllocError);
        }
        Ok(SystemThread { thread, object: ManuallyDrop::new(object) })
    }

    /// The context, for code below `DISPATCH_LEVEL`.
    pub fn context<'a>(&'a self, _token: &'a impl BelowDispatch) -> &'a C {
        &self.object.context
    }

    /// Waits until the thread has ended (`KeWaitForSingleObject`); the context stays, for
    /// [`SystemThread::context`].
    pub fn wait(&self, _token: &impl BelowDispatch) {
        let null = core::ptr::null_mut();
        // SAFETY: a referenced thread object (invariant); no timeout; below DISPATCH_LEVEL (token).
        unsafe { sys::KeWaitForSingleObject(self.thread, sys::Executive, sys::KernelMode, 0, null) };
    }

    /// Waits until the thread has ended, and frees its context: the same as dropping it.
    pub fn join(self) {}
}

impl<C: Send + Sync, G: TagSource> Drop for SystemThread<C, G> {
    fn drop(&mut self) {
        // A `SystemThread` is not `DispatchSafe`, so this runs below DISPATCH_LEVEL, where the
        // thread may wait.
        let null = core::ptr::null_mut();
        // SAFETY: a referenced thread object (invariant); no timeout.
        unsafe { sys::KeWaitForSingleObject(self.thread, sys::Executive, sys::KernelMode, 0, null) };
        // SAFETY: the reference taken in `try_new`, released once.
        unsafe { sys::ObfDereferenceObject(self.thread) };
        // SAFETY: taken once, here; the thread has ended, so nothing else uses the object.
        drop(unsafe { ManuallyDrop::take(&mut self.object) });
    }
}

impl<C: Send + Sync, G: TagSource> core::fmt::Debug for SystemThread<C, G> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SystemThread").field("thread", &self.thread).finish_non_exhaustive()
    }
}
