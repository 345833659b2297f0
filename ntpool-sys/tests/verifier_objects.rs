//! The checks on the objects whose routines the kernel calls (timers, DPCs, work items) on the
//! emulated kernel: each row of the check table (`ntpool_sys::emulated::checks`) triggered through
//! the raw kernel interface, with its code and all four parameters.

mod common;

use common::{TAG, assert_row, at_irql, block, stop};
use ntpool_sys::emulated::{Kernel, checks};
use ntpool_sys::{self as sys, PVOID};

/// Stands for the driver's device object: the emulated I/O manager only records it.
const DEVICE: sys::PDEVICE_OBJECT = 0x1000 as sys::PDEVICE_OBJECT;

unsafe extern "system" fn dpc_routine(_: *mut sys::KDPC, _: PVOID, _: PVOID, _: PVOID) {}

unsafe extern "system" fn work_routine(_: sys::PDEVICE_OBJECT, _: PVOID) {}

/// Arms a one-shot timer, due in a second, in `memory`.
fn arm(memory: PVOID) -> *mut sys::KTIMER {
    let timer = memory.cast::<sys::KTIMER>();
    // SAFETY: `memory` is a live non-paged block large enough for a KTIMER.
    unsafe { sys::KeInitializeTimerEx(timer, sys::NotificationTimer) };
    // SAFETY: as above; a relative due time of one second, no DPC.
    unsafe { sys::KeSetTimerEx(timer, sys::LARGE_INTEGER { QuadPart: -10_000_000 }, 0, core::ptr::null_mut()) };
    timer
}

#[test]
fn pool_freed_with_an_armed_timer_in_it() {
    let kernel = Kernel::new();
    let mut freed = 0;
    let bug_check = stop(&kernel, || {
        freed = block(sys::POOL_FLAG_NON_PAGED, 128) as u64;
        arm(freed as PVOID);
        // SAFETY: a deliberate free of the pool that holds the armed timer.
        unsafe { sys::ExFreePoolWithTag(freed as PVOID, TAG) };
    });
    assert_row(&bug_check, &checks::ARMED_TIMER_FREED, [0, freed, freed, freed + 128]);
}

#[test]
fn pool_freed_with_a_queued_dpc_in_it() {
    let kernel = Kernel::new();
    let mut freed = 0;
    let bug_check = stop(&kernel, || {
        freed = block(sys::POOL_FLAG_NON_PAGED, 96) as u64;
        let dpc = (freed + 32) as *mut sys::KDPC;
        // SAFETY: a KDPC inside the live block; queued at DISPATCH_LEVEL, so it waits, and the block
        // is freed there on purpose.
        unsafe { sys::KeInitializeDpc(dpc, Some(dpc_routine), core::ptr::null_mut()) };
        at_irql(sys::DISPATCH_LEVEL, || {
            // SAFETY: as above.
            unsafe { sys::KeInsertQueueDpc(dpc, core::ptr::null_mut(), core::ptr::null_mut()) };
            // SAFETY: as above.
            unsafe { sys::ExFreePoolWithTag(freed as PVOID, TAG) };
        });
    });
    assert_row(&bug_check, &checks::QUEUED_DPC_FREED, [1, freed + 32, freed, freed + 96]);
}

#[test]
fn the_driver_unloads_with_an_armed_timer() {
    let kernel = Kernel::new();
    let mut storage = Box::new([0u64; 16]);
    let timer = kernel.run(|| arm(storage.as_mut_ptr().cast()));
    let bug_check = kernel.verify_unload().unwrap_err();
    assert_row(&bug_check, &checks::KERNEL_OBJECT_PENDING_AT_UNLOAD, [timer as u64, 1, 0, 0]);
    // SAFETY: the timer is armed in `storage`, which outlives the call.
    kernel.run(|| unsafe { sys::KeCancelTimer(timer) });
}

#[test]
fn the_driver_unloads_with_a_work_item_not_freed() {
    let kernel = Kernel::new();
    // SAFETY: a work item for the stand-in device, at PASSIVE_LEVEL.
    let item = kernel.run(|| unsafe { sys::IoAllocateWorkItem(DEVICE) });
    assert!(!item.is_null());
    let bug_check = kernel.verify_unload().unwrap_err();
    assert_row(&bug_check, &checks::KERNEL_OBJECT_PENDING_AT_UNLOAD, [item as u64, 1, 0, 0]);
    // SAFETY: allocated above, not queued, freed once.
    kernel.run(|| unsafe { sys::IoFreeWorkItem(item) });
}

/// The second `IoQueueWorkItem` finds the first still queued unless a worker thread has already
/// taken it in the microseconds between the two calls (the emulated kernel starts one at once, as a
/// multiprocessor would): the test repeats until the race goes the usual way, and asserts the row
/// exactly when it does.
#[test]
fn a_work_item_queued_while_it_is_queued() {
    let kernel = Kernel::new();
    for _ in 0..1000 {
        // SAFETY: a work item for the stand-in device, at PASSIVE_LEVEL.
        let item = kernel.run(|| unsafe { sys::IoAllocateWorkItem(DEVICE) });
        let caught = kernel.run(|| {
            ntpool_sys::emulated::catch_bug_check(|| {
                at_irql(sys::DISPATCH_LEVEL, || {
                    for _ in 0..2 {
                        // SAFETY: a live work item, queued twice on purpose.
                        unsafe {
                            sys::IoQueueWorkItem(item, Some(work_routine), sys::DelayedWorkQueue, core::ptr::null_mut())
                        };
                    }
                })
            })
        });
        assert!(kernel.wait_for_work_items().is_ok());
        // SAFETY: its routine has run; freed once.
        kernel.run(|| unsafe { sys::IoFreeWorkItem(item) });
        if let Err(bug_check) = caught {
            assert_row(&bug_check, &checks::WORK_ITEM_LIST_CORRUPTED, [3, 0, 0, 0]);
            assert!(kernel.verify_unload().is_ok());
            return;
        }
    }
    panic!("the second IoQueueWorkItem never found the first still queued");
}
