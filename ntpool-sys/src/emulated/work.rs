//! I/O work items: `IoAllocateWorkItem`, `IoQueueWorkItem`, `IoFreeWorkItem`, run on system worker
//! threads at `PASSIVE_LEVEL`, and `KeDelayExecutionThread`.
//!
//! Each queued work item runs on a worker thread of its own that has entered the kernel that queued
//! it, so the routine's pool calls are checked and tracked by that kernel. A test waits for them with
//! [`Kernel::wait_for_work_items`](super::Kernel::wait_for_work_items), which also hands back a bug
//! check a routine raised on its thread.
//!
//! Misuse, as Windows reports it (no Verifier check is documented for these; the kernel's list
//! integrity checks catch the corrupted worker queue): queuing a work item that is already queued,
//! or freeing one that is queued, is bug check 0x139 `KERNEL_SECURITY_CHECK_FAILURE` / 3
//! (`LIST_ENTRY` corruption; [`checks::WORK_ITEM_LIST_CORRUPTED`](super::checks::WORK_ITEM_LIST_CORRUPTED)).
#![allow(non_snake_case)]

use std::boxed::Box;
use std::sync::Arc;

use super::checks;
use super::objects::WorkItemRecord;
use super::reports::{BugCheck, quietly};
use super::state::{State, current, enter, with_current};
use super::thread::current_irql;
use crate::{
    BOOLEAN, KPROCESSOR_MODE, LARGE_INTEGER, NTSTATUS, PASSIVE_LEVEL, PDEVICE_OBJECT, PIO_WORKITEM,
    PIO_WORKITEM_ROUTINE, PVOID, STATUS_SUCCESS, WORK_QUEUE_TYPE,
};

/// `KERNEL_SECURITY_CHECK_FAILURE`'s parameter 1 for a corrupted `LIST_ENTRY`.
const LIST_ENTRY_CORRUPTION: u64 = 3;

/// The emulated `IO_WORKITEM`: what the kernel keeps for it (the real one is 0x58 bytes).
#[repr(C, align(16))]
struct WorkItemStorage([u8; 0x60]);

/// `IoAllocateWorkItem`: a work item for `DeviceObject`, which it keeps referenced until freed.
///
/// # Safety
/// `DeviceObject` is a device object of the calling driver; IRQL <= `DISPATCH_LEVEL`.
///
/// ```
/// use ntpool_sys as sys;
/// unsafe extern "system" fn work(_: sys::PDEVICE_OBJECT, count: sys::PVOID) {
///     assert_eq!(sys::KeGetCurrentIrql(), sys::PASSIVE_LEVEL);
///     // SAFETY: the context is the counter below, which outlives the work item.
///     unsafe { (*count.cast::<std::sync::atomic::AtomicU32>()).fetch_add(1, std::sync::atomic::Ordering::SeqCst) };
/// }
/// let kernel = ntpool_sys::emulated::Kernel::new();
/// let count = std::sync::atomic::AtomicU32::new(0);
/// // SAFETY: any non-null address stands for the device here; the counter outlives the work item.
/// let item = kernel.run(|| unsafe { sys::IoAllocateWorkItem(8 as sys::PDEVICE_OBJECT) });
/// kernel.run(|| unsafe { sys::IoQueueWorkItem(item, Some(work), sys::DelayedWorkQueue, (&raw const count).cast_mut().cast()) });
/// kernel.wait_for_work_items().unwrap();
/// assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
/// // SAFETY: allocated above, no longer queued.
/// kernel.run(|| unsafe { sys::IoFreeWorkItem(item) });
/// assert!(kernel.verify_unload().is_ok());
/// ```
pub unsafe fn IoAllocateWorkItem(DeviceObject: PDEVICE_OBJECT) -> PIO_WORKITEM {
    let item = Box::into_raw(Box::new(WorkItemStorage([0; 0x60]))) as usize;
    with_current(|state| {
        let mut objects = state.objects.lock();
        objects.serial += 1;
        let serial = objects.serial;
        let record =
            WorkItemRecord { device: DeviceObject as usize, queued: false, running: false, routine: 0, serial };
        objects.work_items.insert(item, record);
    });
    item as PIO_WORKITEM
}

/// `IoQueueWorkItem`: runs `WorkerRoutine(device, Context)` on a worker thread at `PASSIVE_LEVEL`.
///
/// # Safety
/// `IoWorkItem` came from `IoAllocateWorkItem` and is not queued; `Context` stays valid until the
/// routine has run. IRQL <= `DISPATCH_LEVEL`.
pub unsafe fn IoQueueWorkItem(
    IoWorkItem: PIO_WORKITEM,
    WorkerRoutine: PIO_WORKITEM_ROUTINE,
    _QueueType: WORK_QUEUE_TYPE,
    Context: PVOID,
) {
    let state = current();
    let item = IoWorkItem as usize;
    let queued = {
        let mut objects = state.objects.lock();
        match objects.work_items.get_mut(&item) {
            Some(record) if !record.queued => {
                record.queued = true;
                record.routine = WorkerRoutine.map_or(0, |routine| routine as usize);
                Some((record.device, record.serial))
            }
            _ => None,
        }
    };
    let Some((device, serial)) = queued else {
        checks::raise(&state, &checks::WORK_ITEM_LIST_CORRUPTED, [LIST_ENTRY_CORRUPTION, 0, 0, 0]);
        return;
    };
    let context = Context as usize;
    state.objects.lock().running_work += 1;
    std::thread::spawn(move || run_work_item(state, item, serial, device, WorkerRoutine, context));
}

/// The worker thread of one queued work item.
fn run_work_item(
    state: Arc<State>,
    item: usize,
    serial: u64,
    device: usize,
    routine: PIO_WORKITEM_ROUTINE,
    context: usize,
) {
    let _entered = enter(state.clone());
    {
        let mut objects = state.objects.lock();
        objects.calls.1 += 1;
        // Dequeued before the routine runs, so that the routine may free or queue it again.
        if let Some(record) = objects.work_items.get_mut(&item).filter(|record| record.serial == serial) {
            record.queued = false;
            record.running = true;
        }
    }
    let result = quietly(|| {
        std::panic::catch_unwind(|| {
            if let Some(routine) = routine {
                // SAFETY: the routine and context the driver queued, at PASSIVE_LEVEL.
                unsafe { routine(device as PDEVICE_OBJECT, context as PVOID) };
            }
            if current_irql() != PASSIVE_LEVEL {
                std::panic::panic_any(BugCheck::new(
                    crate::IRQL_NOT_LESS_OR_EQUAL,
                    [0, current_irql().into(), 0, routine.map_or(0, |r| r as usize as u64)],
                ));
            }
        })
    });
    let mut objects = state.objects.lock();
    if let Err(payload) = result {
        let bug_check = match payload.downcast::<BugCheck>() {
            Ok(bug_check) => *bug_check,
            Err(_) => BugCheck::new(0x1E, [0, 0, 0, 0]),
        };
        objects.worker_bug_checks.push(bug_check);
    }
    if let Some(record) = objects.work_items.get_mut(&item).filter(|record| record.serial == serial) {
        record.running = false;
    }
    objects.running_work -= 1;
    drop(objects);
    state.objects.changed.notify_all();
}

/// `IoFreeWorkItem`.
///
/// # Safety
/// `IoWorkItem` came from `IoAllocateWorkItem`, is not queued, and is not used afterwards.
pub unsafe fn IoFreeWorkItem(IoWorkItem: PIO_WORKITEM) {
    let item = IoWorkItem as usize;
    let state = current();
    let freed = {
        let mut objects = state.objects.lock();
        match objects.work_items.get(&item) {
            Some(record) if !record.queued => objects.work_items.remove(&item).is_some(),
            _ => false,
        }
    };
    if !freed {
        checks::raise(&state, &checks::WORK_ITEM_LIST_CORRUPTED, [LIST_ENTRY_CORRUPTION, 0, 0, 0]);
        return;
    }
    // SAFETY: allocated by IoAllocateWorkItem as a boxed `WorkItemStorage`, freed once (the record
    // was removed above).
    drop(unsafe { Box::from_raw(IoWorkItem.cast::<WorkItemStorage>()) });
}

/// `KeDelayExecutionThread`: the calling thread waits for `Interval` (negative: relative, in
/// 100 ns units), and that much time passes on its kernel's clock: the timers that come due
/// meanwhile expire and their DPCs run, as on Windows while a thread waits. The thread also gives up
/// the processor for a moment, so that worker threads make progress. An absolute `Interval`
/// (positive) moves no clock.
///
/// # Safety
/// IRQL <= `APC_LEVEL`; `Interval` is valid.
pub unsafe fn KeDelayExecutionThread(
    _WaitMode: KPROCESSOR_MODE,
    _Alertable: BOOLEAN,
    Interval: *mut LARGE_INTEGER,
) -> NTSTATUS {
    // SAFETY: the caller guarantees `Interval`.
    let interval = unsafe { Interval.read() };
    // SAFETY: every bit pattern is a valid i64.
    let interval = unsafe { interval.QuadPart };
    if interval < 0 {
        super::timer::advance(interval.unsigned_abs());
    }
    std::thread::sleep(std::time::Duration::from_micros(100));
    STATUS_SUCCESS
}

/// Waits until no work item is queued or running; the bug checks routines raised on worker threads.
pub(crate) fn wait_idle(state: &State) -> std::vec::Vec<BugCheck> {
    let mut objects = state.objects.lock();
    while objects.running_work > 0 {
        objects = state.objects.changed.wait(objects).unwrap_or_else(|p| p.into_inner());
    }
    core::mem::take(&mut objects.worker_bug_checks)
}
