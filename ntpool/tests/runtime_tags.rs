//! Run-time tags wherever a tag type is accepted: each type that keeps kernel objects or entries in
//! pool, made with a `PoolTag` known only at run time (`try_new_with_tag`), allocates with that tag,
//! frees with that same tag (the emulated kernel stops with bug check 0xC2 / 0x0A on a free with
//! another), and leaves nothing behind.

mod common;

use common::with_kernel;
use core::sync::atomic::{AtomicU32, Ordering};
use core::time::Duration;
use ntpool::emulated::{Kernel, PoolKind};
use ntpool::sys::PDEVICE_OBJECT;
use ntpool::{
    Completion, Dpc, FastMutex, IoRequest, LookasideList, PagedBox, PagedPool, Passive, PoolTag, Reclaimer, SpinLock,
    SystemThread, Timer, WorkItem,
};

ntpool::pool_tag!(struct Typed = b"Typd");

/// Any address stands for the driver's device object on the emulated kernel.
const DEVICE: PDEVICE_OBJECT = 0x1000 as PDEVICE_OBJECT;

/// A tag as a driver gets one at run time: from a `ULONG`, checked.
fn runtime_tag(bytes: &[u8; 4]) -> PoolTag {
    PoolTag::from_raw(u32::from_le_bytes(*bytes)).unwrap()
}

/// The tags of the blocks outstanding now.
fn outstanding_tags(kernel: &Kernel) -> Vec<String> {
    kernel.outstanding().iter().map(|block| block.tag.to_string()).collect()
}

/// The pool usage table as `(tag, pool, allocations, frees, bytes in use)` rows.
fn usage(kernel: &Kernel) -> Vec<(String, PoolKind, u64, u64, u64)> {
    kernel.pool_usage().rows.iter().map(|r| (r.tag.to_string(), r.pool, r.allocs, r.frees, r.bytes)).collect()
}

#[test]
fn a_fast_mutex_with_a_run_time_tag_allocates_and_frees_with_it() {
    let kernel = Kernel::new();
    let tag = runtime_tag(b"RtFm");
    with_kernel(&kernel, |passive| {
        let mutex = FastMutex::<u32, PoolTag>::try_new_with_tag(passive, tag, 1).unwrap();
        assert_eq!(outstanding_tags(&kernel), ["RtFm"]);
        mutex.lock(passive, |_apc, value| *value += 1);
        assert_eq!(mutex.into_inner(), 2);
        assert!(kernel.outstanding().is_empty());
    });
    assert_eq!(usage(&kernel), [("RtFm".to_string(), PoolKind::NonPaged, 1, 1, 0)]);
}

#[test]
fn a_dpc_with_a_run_time_tag_allocates_and_frees_with_it() {
    let kernel = Kernel::new();
    let tag = runtime_tag(b"RtDp");
    with_kernel(&kernel, |passive| {
        let dpc = Dpc::<AtomicU32, PoolTag>::try_new_with_tag(passive, tag, AtomicU32::new(0), |_dispatch, runs| {
            runs.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
        assert_eq!(outstanding_tags(&kernel), ["RtDp"]);
        assert!(dpc.queue());
        assert_eq!(dpc.context().load(Ordering::Relaxed), 1);
        drop(dpc);
        assert!(kernel.outstanding().is_empty());
    });
    assert_eq!(usage(&kernel), [("RtDp".to_string(), PoolKind::NonPaged, 1, 1, 0)]);
}

#[test]
fn a_timer_with_a_run_time_tag_allocates_and_frees_with_it() {
    let kernel = Kernel::new();
    let tag = runtime_tag(b"RtTm");
    with_kernel(&kernel, |passive| {
        let timer =
            Timer::<AtomicU32, PoolTag>::try_new_with_tag(passive, tag, AtomicU32::new(0), |_dispatch, ticks| {
                ticks.fetch_add(1, Ordering::Relaxed);
            })
            .unwrap();
        assert_eq!(outstanding_tags(&kernel), ["RtTm"]);
        timer.set_periodic(passive, Duration::from_millis(10), Duration::from_millis(10));
        kernel.advance_clock(Duration::from_millis(25));
        assert_eq!(timer.context().load(Ordering::Relaxed), 2);
        drop(timer); // set: cancelled, flushed, then freed
        assert!(kernel.outstanding().is_empty());
    });
    assert_eq!(usage(&kernel), [("RtTm".to_string(), PoolKind::NonPaged, 1, 1, 0)]);
}

#[test]
fn a_work_item_with_a_run_time_tag_allocates_and_frees_with_it() {
    let kernel = Kernel::new();
    let tag = runtime_tag(b"RtWi");
    with_kernel(&kernel, |passive| {
        // SAFETY: DEVICE stands for this driver's device, which outlives the work item.
        let work = unsafe {
            WorkItem::<AtomicU32, PoolTag>::try_new_with_tag(
                passive,
                tag,
                DEVICE,
                AtomicU32::new(0),
                |_passive, runs| {
                    runs.fetch_add(1, Ordering::Relaxed);
                },
            )
        }
        .unwrap();
        assert_eq!(outstanding_tags(&kernel), ["RtWi"]);
        assert!(work.queue(passive));
        kernel.wait_for_work_items().unwrap();
        assert_eq!(work.context(passive).load(Ordering::Relaxed), 1);
        drop(work);
        assert!(kernel.outstanding().is_empty());
    });
    assert_eq!(usage(&kernel), [("RtWi".to_string(), PoolKind::NonPaged, 1, 1, 0)]);
}

#[test]
fn a_system_thread_with_a_run_time_tag_allocates_and_frees_with_it() {
    let kernel = Kernel::new();
    let tag = runtime_tag(b"RtSt");
    with_kernel(&kernel, |passive| {
        let thread = SystemThread::<AtomicU32, PoolTag>::try_new_with_tag(passive, tag, AtomicU32::new(0), |_, ran| {
            ran.store(1, Ordering::Relaxed);
        })
        .unwrap();
        assert_eq!(outstanding_tags(&kernel), ["RtSt"]);
        thread.wait(passive);
        assert_eq!(thread.context(passive).load(Ordering::Relaxed), 1);
        thread.join();
        assert!(kernel.outstanding().is_empty());
    });
    assert_eq!(usage(&kernel), [("RtSt".to_string(), PoolKind::NonPaged, 1, 1, 0)]);
}

#[test]
fn an_io_request_with_a_run_time_tag_allocates_and_frees_with_it() {
    let kernel = Kernel::new();
    let tag = runtime_tag(b"RtIo");
    with_kernel(&kernel, |passive| {
        let request = IoRequest::<AtomicU32, PoolTag>::try_new_with_tag(
            passive,
            tag,
            AtomicU32::new(0),
            |_up_to_dispatch, done, _: Completion| {
                done.fetch_add(1, Ordering::Relaxed);
            },
        )
        .unwrap();
        assert_eq!(outstanding_tags(&kernel), ["RtIo"]);
        assert!(!request.is_pending());
        drop(request);
        assert!(kernel.outstanding().is_empty());
    });
    assert_eq!(usage(&kernel), [("RtIo".to_string(), PoolKind::NonPaged, 1, 1, 0)]);
}

/// The reclaimer's work item and every node it parks a value in carry its tag, whichever way the
/// node goes: dropped below DISPATCH_LEVEL, handed to the work item at DISPATCH_LEVEL, or taken back.
#[test]
fn a_reclaimer_with_a_run_time_tag_tags_its_work_item_and_every_node_with_it() {
    let kernel = Kernel::new();
    let tag = runtime_tag(b"RtRc");
    with_kernel(&kernel, |passive| {
        // SAFETY: DEVICE stands for this driver's device, which outlives the reclaimer.
        let reclaimer = unsafe { Reclaimer::try_new_with_tag(passive, tag, DEVICE) }.unwrap();
        assert_eq!(outstanding_tags(&kernel), ["RtRc"]);
        let paged = |passive: &Passive| PagedBox::<u64, Typed>::try_new(passive, 7).unwrap();

        let parked = reclaimer.park(passive, paged(passive)).unwrap();
        let mut tags = outstanding_tags(&kernel);
        tags.sort();
        assert_eq!(tags, ["RtRc", "RtRc", "Typd"]);
        drop(parked); // below DISPATCH_LEVEL: dropped here

        let parked = reclaimer.park(passive, paged(passive)).unwrap();
        assert_eq!(*parked.into_inner(passive).get(passive), 7);

        let slot = SpinLock::new(Some(reclaimer.park(passive, paged(passive)).unwrap()));
        slot.with(passive, (), |_dispatch, slot, ()| *slot = None); // to the work item
        kernel.wait_for_work_items().unwrap();
        assert_eq!(outstanding_tags(&kernel), ["RtRc"]);
        drop(slot);
        drop(reclaimer);
    });
    assert_eq!(
        usage(&kernel),
        [("RtRc".to_string(), PoolKind::NonPaged, 4, 4, 0), ("Typd".to_string(), PoolKind::Paged, 3, 3, 0)]
    );
}

/// A lookaside list's structure and every entry carry its tag: entries the list does not keep go
/// back to the pool with it, and deleting the list frees the ones it keeps, over
/// `LOOKASIDE_LIST_EX` and over the legacy lists (Wine's kernel), paged and non-paged.
#[test]
fn a_lookaside_list_with_a_run_time_tag_allocates_and_frees_its_entries_with_it() {
    for ex in [true, false] {
        let kernel = Kernel::builder().lookaside_list_ex(ex).build();
        let tag = runtime_tag(b"RtLl");
        with_kernel(&kernel, |passive| {
            let list = LookasideList::<[u64; 3], PoolTag>::try_new_with_tag(passive, tag).unwrap();
            let paged = LookasideList::<u32, PoolTag, PagedPool>::try_new_with_tag(passive, tag).unwrap();
            assert!(format!("{list:?}").contains("tag: PoolTag(\"RtLl\")"), "{list:?}");
            // Six entries of each list: the list keeps four (its depth), two go back to the pool.
            let entries: Vec<_> = (0..6).map(|i| list.try_alloc(passive, [i; 3]).unwrap()).collect();
            let names: Vec<_> = (0..6).map(|i| paged.try_alloc(passive, i).unwrap()).collect();
            assert_eq!(outstanding_tags(&kernel), ["RtLl"; 14]);
            assert_eq!((entries[5][2], *names[5].get(passive)), (5, 5));
            drop((entries, names));
            let statistics = list.statistics();
            assert_eq!((statistics.free_misses, statistics.free_entries), (2, 4));
            assert_eq!(outstanding_tags(&kernel), ["RtLl"; 10]);
            drop((list, paged)); // deleted: the four entries each keeps are freed
            assert!(kernel.outstanding().is_empty());
        });
        let usage = usage(&kernel);
        let expected = [
            ("RtLl".to_string(), PoolKind::Paged, 6, 6, 0),
            ("RtLl".to_string(), PoolKind::NonPaged, 8, 8, 0), // two list structures, six entries
        ];
        assert_eq!(usage, expected, "LOOKASIDE_LIST_EX: {ex}");
    }
}
