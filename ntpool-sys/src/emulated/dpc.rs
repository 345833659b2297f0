//! Deferred procedure calls: `KeInitializeDpc`, `KeInsertQueueDpc`, `KeRemoveQueueDpc`,
//! `KeFlushQueuedDpcs`, and the dispatcher that runs queued DPCs at `DISPATCH_LEVEL`.
//!
//! As on a processor, queued DPCs run as soon as the IRQL of a thread of the kernel falls below
//! `DISPATCH_LEVEL`: when a thread at `PASSIVE_LEVEL` or `APC_LEVEL` queues one (the DPC interrupt
//! fires at once), and when a thread lowers its IRQL from `DISPATCH_LEVEL` or above (the
//! `irql` module calls [`run_queued`]). Each routine runs on that thread, at `DISPATCH_LEVEL`,
//! with the `KDPC`'s context and the arguments it was queued with. A DPC that is queued again while
//! its routine runs is queued once more, as on Windows.
#![allow(non_snake_case)]

use std::sync::atomic::Ordering;

use super::state::{current, with_current};
use super::thread::{current_irql, set_irql};
use crate::{BOOLEAN, DISPATCH_LEVEL, KDPC, KIRQL, PKDEFERRED_ROUTINE, PVOID, SINGLE_LIST_ENTRY};

/// `DpcObject`, the `KOBJECTS` value `KeInitializeDpc` writes in `Type`.
const DPC_OBJECT: u8 = 0x13;
/// `MediumImportance`.
const MEDIUM_IMPORTANCE: u8 = 1;

/// `KeInitializeDpc`.
///
/// # Safety
/// `Dpc` points to writable memory for a `KDPC` that is not queued.
///
/// ```
/// use ntpool_sys as sys;
/// unsafe extern "system" fn routine(_: *mut sys::KDPC, context: sys::PVOID, _: sys::PVOID, _: sys::PVOID) {
///     assert_eq!(sys::KeGetCurrentIrql(), sys::DISPATCH_LEVEL);
///     // SAFETY: the context is the counter below, which outlives the DPC.
///     unsafe { *context.cast::<u32>() += 1 };
/// }
/// # ntpool_sys::emulated::Kernel::new().run(|| {
/// let mut count = 0u32;
/// let mut dpc = core::mem::MaybeUninit::<sys::KDPC>::uninit();
/// // SAFETY: the KDPC and the counter outlive every use below; the DPC runs at once, since the
/// // IRQL is PASSIVE_LEVEL, and is no longer queued when `dpc` goes.
/// unsafe {
///     sys::KeInitializeDpc(dpc.as_mut_ptr(), Some(routine), (&raw mut count).cast());
///     assert_eq!(sys::KeInsertQueueDpc(dpc.as_mut_ptr(), core::ptr::null_mut(), core::ptr::null_mut()), 1);
/// }
/// assert_eq!(count, 1);
/// # });
/// ```
pub unsafe fn KeInitializeDpc(Dpc: *mut KDPC, DeferredRoutine: PKDEFERRED_ROUTINE, DeferredContext: PVOID) {
    let null: PVOID = core::ptr::null_mut();
    let dpc = KDPC {
        Type: DPC_OBJECT,
        Importance: MEDIUM_IMPORTANCE,
        Number: 0,
        DpcListEntry: SINGLE_LIST_ENTRY { Next: null.cast() },
        ProcessorHistory: 0,
        DeferredRoutine,
        DeferredContext,
        SystemArgument1: null,
        SystemArgument2: null,
        DpcData: null,
    };
    // SAFETY: the caller guarantees `Dpc` is writable.
    unsafe { Dpc.write(dpc) };
}

/// `KeInsertQueueDpc`: TRUE if the DPC was queued, FALSE if it already was. Runs it at once if the
/// IRQL is below `DISPATCH_LEVEL`.
///
/// # Safety
/// `Dpc` was initialized with `KeInitializeDpc` and stays valid until its routine has run or it is
/// removed from the queue.
pub unsafe fn KeInsertQueueDpc(Dpc: *mut KDPC, SystemArgument1: PVOID, SystemArgument2: PVOID) -> BOOLEAN {
    let address = Dpc as usize;
    let queued = with_current(|state| {
        let mut objects = state.objects.lock();
        if objects.is_queued(address) {
            return false;
        }
        // SAFETY: the caller guarantees the KDPC is valid; the kernel's lock is held.
        let dpc = unsafe { &mut *Dpc };
        dpc.SystemArgument1 = SystemArgument1;
        dpc.SystemArgument2 = SystemArgument2;
        objects.dpc_queue.push_back(address);
        state.objects.queued.fetch_add(1, Ordering::SeqCst);
        true
    });
    if queued {
        run_queued();
    }
    BOOLEAN::from(queued)
}

/// `KeRemoveQueueDpc`: TRUE if the DPC was queued (and no longer is).
///
/// # Safety
/// `Dpc` was initialized with `KeInitializeDpc`.
pub unsafe fn KeRemoveQueueDpc(Dpc: *mut KDPC) -> BOOLEAN {
    let address = Dpc as usize;
    let removed = with_current(|state| {
        let mut objects = state.objects.lock();
        let before = objects.dpc_queue.len();
        objects.dpc_queue.retain(|&queued| queued != address);
        let removed = objects.dpc_queue.len() != before;
        if removed {
            state.objects.queued.fetch_sub(1, Ordering::SeqCst);
        }
        removed
    });
    BOOLEAN::from(removed)
}

/// `KeFlushQueuedDpcs`: returns once every DPC queued before the call has run to completion, on this
/// thread or on another.
///
/// # Safety
/// Called at `PASSIVE_LEVEL`.
pub unsafe fn KeFlushQueuedDpcs() {
    run_queued();
    let state = current();
    let mut objects = state.objects.lock();
    while objects.running_dpcs > 0 || (!objects.dpc_queue.is_empty() && current_irql() >= DISPATCH_LEVEL) {
        objects = state.objects.changed.wait(objects).unwrap_or_else(|p| p.into_inner());
    }
}

/// Restores the IRQL and the count of running routines when a DPC routine returns (or unwinds from a
/// bug check a test caught).
struct Finished(KIRQL);

impl Drop for Finished {
    fn drop(&mut self) {
        set_irql(self.0);
        with_current(|state| {
            state.objects.lock().running_dpcs -= 1;
            state.objects.changed.notify_all();
        });
    }
}

/// Runs the queued DPCs on the calling thread, at `DISPATCH_LEVEL`, if its IRQL is below it.
pub(crate) fn run_queued() {
    if current_irql() >= DISPATCH_LEVEL {
        return;
    }
    if with_current(|state| state.objects.queued.load(Ordering::SeqCst)) == 0 {
        return;
    }
    loop {
        let next = with_current(|state| {
            let mut objects = state.objects.lock();
            let dpc = objects.dpc_queue.pop_front()?;
            state.objects.queued.fetch_sub(1, Ordering::SeqCst);
            objects.running_dpcs += 1;
            objects.calls.0 += 1;
            Some(dpc)
        });
        let Some(address) = next else { break };
        let dpc = address as *mut KDPC;
        // SAFETY: a queued KDPC is valid until its routine has run (KeInsertQueueDpc's contract).
        let object = unsafe { &*dpc };
        let (routine, context, argument1, argument2) =
            (object.DeferredRoutine, object.DeferredContext, object.SystemArgument1, object.SystemArgument2);
        let _finished = Finished(current_irql());
        super::irql::entering_dispatch_level();
        set_irql(DISPATCH_LEVEL);
        if let Some(routine) = routine {
            // SAFETY: the routine and context the driver gave KeInitializeDpc, at DISPATCH_LEVEL.
            unsafe { routine(dpc, context, argument1, argument2) };
        }
    }
}
