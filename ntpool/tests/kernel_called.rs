//! The routines the kernel calls: DPCs, timers, work items and the reclaimer, on the emulated kernel,
//! with Driver Verifier's checks for them (0xC7 when pool holding an armed timer or a queued DPC is
//! freed, 0xCE for what is pending at unload).

use core::sync::atomic::{AtomicU32, Ordering};
use core::time::Duration;

use ntpool::emulated::{Kernel, PoolKind, catch_bug_check};
use ntpool::sys;
use ntpool::{Dpc, NonPagedBox, PagedBox, Passive, Reclaimer, SpinLock, Timer, WorkItem};

ntpool::pool_tag!(struct Tg = b"Kcal");

/// Stands for the driver's device object: the emulated I/O manager only records it.
const DEVICE: sys::PDEVICE_OBJECT = 0x1000 as sys::PDEVICE_OBJECT;

#[test]
fn a_dpc_routine_runs_at_dispatch_level_and_frees_non_paged_memory_there() {
    let kernel = Kernel::new();
    kernel.run(|| {
        // SAFETY: the test thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let block = NonPagedBox::<[u8; 32], Tg>::try_new(&passive, [0; 32]).unwrap();
        let dpc = Dpc::<SpinLock<Option<NonPagedBox<[u8; 32], Tg>>>, Tg>::try_new(
            &mut passive,
            SpinLock::new(Some(block)),
            |dispatch, slot| {
                assert_eq!(sys::KeGetCurrentIrql(), sys::DISPATCH_LEVEL);
                slot.with(dispatch, (), |_, slot, ()| *slot = None); // freed at DISPATCH_LEVEL
            },
        )
        .unwrap();
        assert!(dpc.queue());
    });
    assert_eq!(kernel.routines_called().0, 1);
    assert!(kernel.verify_unload().is_ok());
}

#[test]
fn a_dpc_queued_at_dispatch_level_runs_when_the_irql_falls() {
    let kernel = Kernel::new();
    kernel.run(|| {
        // SAFETY: the test thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let dpc = Dpc::<AtomicU32, Tg>::try_new(&mut passive, AtomicU32::new(0), |_, runs| {
            runs.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        let ran_inside = passive.raise_to_dispatch((dpc.handle(), dpc.context()), |_, (handle, runs)| {
            assert!(handle.queue());
            assert!(!handle.queue()); // queued once
            runs.load(Ordering::SeqCst)
        });
        assert_eq!((ran_inside, dpc.context().load(Ordering::SeqCst)), (0, 1));
    });
}

#[test]
fn a_periodic_timer_fires_once_per_period_and_its_drop_cancels_it() {
    let kernel = Kernel::new();
    kernel.run(|| {
        // SAFETY: the test thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let timer = Timer::<AtomicU32, Tg>::try_new(&mut passive, AtomicU32::new(0), |_, ticks| {
            ticks.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        assert!(!timer.set_periodic(&passive, Duration::from_millis(5), Duration::from_millis(5)));
        kernel.advance_clock(Duration::from_millis(26));
        assert_eq!(timer.context().load(Ordering::SeqCst), 5);
        // Dropped armed: cancelled, flushed, freed; no 0xC7, nothing pending at unload.
    });
    assert!(kernel.verify_unload().is_ok());
}

#[test]
fn a_one_shot_timer_fires_once() {
    let kernel = Kernel::new();
    kernel.run(|| {
        // SAFETY: the test thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let timer = Timer::<AtomicU32, Tg>::try_new(&mut passive, AtomicU32::new(0), |_, n| {
            n.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        timer.set_once(&passive, Duration::from_millis(1));
        kernel.advance_clock(Duration::from_millis(10));
        assert_eq!(timer.context().load(Ordering::SeqCst), 1);
        assert!(!timer.cancel()); // expired
    });
    assert!(kernel.verify_unload().is_ok());
}

/// Pool holding an armed timer, freed: 0xC7 / 0 (timer, its address, the freed range).
#[test]
fn freeing_pool_that_holds_an_armed_timer_is_bug_check_0xc7() {
    let kernel = Kernel::new();
    let stop = kernel.run(|| {
        let tag = u32::from_le_bytes(*b"Kcal");
        // SAFETY: a pool block for a KTIMER, armed, then freed on purpose.
        let block = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_NON_PAGED, 64, tag) };
        let timer = block.cast::<sys::KTIMER>();
        // SAFETY: as above.
        unsafe { sys::KeInitializeTimerEx(timer, sys::NotificationTimer) };
        // SAFETY: as above.
        unsafe { sys::KeSetTimerEx(timer, sys::LARGE_INTEGER { QuadPart: -10_000 }, 0, core::ptr::null_mut()) };
        // SAFETY: the deliberate violation.
        let stop = catch_bug_check(|| unsafe { sys::ExFreePoolWithTag(block, tag) }).unwrap_err();
        // SAFETY: cancelled and freed, to leave the kernel clean.
        unsafe { sys::KeCancelTimer(timer) };
        // SAFETY: as above.
        unsafe { sys::ExFreePoolWithTag(block, tag) };
        stop
    });
    assert_eq!(stop.code, 0xC7);
    assert_eq!(stop.parameters[0], 0);
    assert_eq!(stop.parameters[2] + 64, stop.parameters[3]);
    assert!(kernel.verify_unload().is_ok());
}

/// Pool holding a queued DPC, freed: 0xC7 / 1.
#[test]
fn freeing_pool_that_holds_a_queued_dpc_is_bug_check_0xc7() {
    unsafe extern "system" fn routine(_: *mut sys::KDPC, _: sys::PVOID, _: sys::PVOID, _: sys::PVOID) {}
    let kernel = Kernel::new();
    let stop = kernel.run(|| {
        let tag = u32::from_le_bytes(*b"Kcal");
        // SAFETY: a pool block for a KDPC, queued at DISPATCH_LEVEL (so it does not run), freed there.
        let block = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_NON_PAGED, 64, tag) };
        let dpc = block.cast::<sys::KDPC>();
        // SAFETY: as above; the IRQL is lowered again below.
        let old = unsafe { sys::KfRaiseIrql(sys::DISPATCH_LEVEL) };
        // SAFETY: as above.
        unsafe { sys::KeInitializeDpc(dpc, Some(routine), core::ptr::null_mut()) };
        // SAFETY: as above.
        unsafe { sys::KeInsertQueueDpc(dpc, core::ptr::null_mut(), core::ptr::null_mut()) };
        // SAFETY: the deliberate violation.
        let stop = catch_bug_check(|| unsafe { sys::ExFreePoolWithTag(block, tag) }).unwrap_err();
        // SAFETY: dequeued, back to PASSIVE_LEVEL, freed.
        unsafe { sys::KeRemoveQueueDpc(dpc) };
        // SAFETY: as above.
        unsafe { sys::KeLowerIrql(old) };
        // SAFETY: as above.
        unsafe { sys::ExFreePoolWithTag(block, tag) };
        (stop, dpc as u64)
    });
    assert_eq!((stop.0.code, stop.0.parameters[0], stop.0.parameters[1]), (0xC7, 1, stop.1));
}

#[test]
fn a_timer_armed_or_a_work_item_left_at_unload_is_bug_check_0xce() {
    let kernel = Kernel::new();
    let mut timer = Box::new(core::mem::MaybeUninit::<sys::KTIMER>::uninit());
    let item = kernel.run(|| {
        // SAFETY: the timer stays put, deliberately armed; the work item deliberately not freed.
        unsafe { sys::KeInitializeTimerEx(timer.as_mut_ptr(), sys::NotificationTimer) };
        // SAFETY: as above.
        unsafe { sys::KeSetTimerEx(timer.as_mut_ptr(), sys::LARGE_INTEGER { QuadPart: -1 }, 0, core::ptr::null_mut()) };
        // SAFETY: as above.
        unsafe { sys::IoAllocateWorkItem(DEVICE) }
    });
    let stop = kernel.verify_unload().unwrap_err();
    assert_eq!((stop.code, stop.parameters[0], stop.parameters[1]), (0xCE, timer.as_ptr() as u64, 1));
    assert!(stop.report.contains("periodic") || stop.report.contains("one-shot"));
    assert!(stop.report.contains(&format!("work item at {:#x}", item as usize)));
    // SAFETY: cleaned up.
    kernel.run(|| {
        // SAFETY: armed above.
        unsafe { sys::KeCancelTimer(timer.as_mut_ptr()) };
        // SAFETY: allocated above, never queued.
        unsafe { sys::IoFreeWorkItem(item) };
    });
    assert!(kernel.verify_unload().is_ok());
}

#[test]
fn a_work_item_queued_at_dispatch_level_frees_its_paged_context_at_passive_level() {
    let kernel = Kernel::new();
    kernel.run(|| {
        // SAFETY: the test thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let paged = PagedBox::<[u8; 100], Tg>::try_new(&passive, [1; 100]).unwrap();
        let slot = ntpool::FastMutex::<_, Tg>::try_new(&passive, Some(paged)).unwrap();
        // SAFETY: DEVICE stands for this driver's device.
        let work = unsafe {
            WorkItem::<_, Tg>::try_new(&passive, DEVICE, slot, |passive, slot| {
                assert_eq!(sys::KeGetCurrentIrql(), sys::PASSIVE_LEVEL);
                slot.lock(passive, |_apc, slot| *slot = None); // the paged block, freed at APC_LEVEL
            })
        }
        .unwrap();
        passive.raise_to_dispatch(work.trigger(), |dispatch, trigger| assert!(trigger.queue(dispatch)));
        kernel.wait_for_work_items().unwrap();
        assert!(kernel.outstanding().iter().all(|block| block.pool != PoolKind::Paged));
    });
    assert_eq!(kernel.routines_called().1, 1);
    assert!(kernel.verify_unload().is_ok());
}

#[test]
fn a_work_item_dropped_while_queued_waits_for_its_routine() {
    let kernel = Kernel::new();
    kernel.run(|| {
        // SAFETY: the test thread runs at PASSIVE_LEVEL and holds no other token.
        let passive = unsafe { Passive::assume() };
        // SAFETY: DEVICE stands for this driver's device.
        let work = unsafe {
            WorkItem::<AtomicU32, Tg>::try_new(&passive, DEVICE, AtomicU32::new(0), |_, n| {
                std::thread::sleep(Duration::from_millis(20));
                n.fetch_add(1, Ordering::SeqCst);
            })
        }
        .unwrap();
        assert!(work.queue(&passive));
        drop(work); // waits; the routine never touches freed memory
    });
    assert!(kernel.verify_unload().is_ok());
}

/// The deferred free: a paged block dropped in a DPC routine is freed by the reclaimer's work item at
/// PASSIVE_LEVEL (a free at DISPATCH_LEVEL would be bug check 0xC4 / 0x11 under Driver Verifier).
#[test]
fn paged_memory_dropped_in_a_dpc_is_freed_at_passive_level() {
    let kernel = Kernel::new();
    kernel.run(|| {
        // SAFETY: the test thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        // SAFETY: DEVICE stands for this driver's device.
        let reclaimer = unsafe { Reclaimer::<Tg>::try_new(&passive, DEVICE) }.unwrap();
        let paged = PagedBox::<[u8; 256], Tg>::try_new(&passive, [2; 256]).unwrap();
        let parked = reclaimer.park(&passive, paged).unwrap();
        assert_eq!(parked.get(&passive).get(&passive)[0], 2);
        let dpc = Dpc::<SpinLock<Option<ntpool::Parked<'_, PagedBox<[u8; 256], Tg>, Tg>>>, Tg>::try_new(
            &mut passive,
            SpinLock::new(Some(parked)),
            |dispatch, slot| slot.with(dispatch, (), |_, slot, ()| *slot = None),
        )
        .unwrap();
        dpc.queue();
        kernel.wait_for_work_items().unwrap();
        assert!(kernel.outstanding().iter().all(|block| block.pool != PoolKind::Paged));
        drop(dpc);
        drop(reclaimer);
    });
    assert!(kernel.deferred_bug_checks().is_empty());
    assert!(kernel.verify_unload().is_ok());
}
