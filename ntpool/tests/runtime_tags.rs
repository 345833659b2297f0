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
#[cfg(feature = "videoport")]
use ntpool::videoport::{HwDeviceExtension, VpBox, VpNonPagedPool, VpPagedPool};
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

/// A VideoPort box asks `VideoPortAllocatePool` for the run-time tag, stores it, and gives the block
/// back with `VideoPortFreePool` (an `ExFreePool` inside `videoprt.sys`, which takes no tag): the
/// pool table shows the tag's blocks allocated and freed.
#[cfg(feature = "videoport")]
#[test]
fn a_videoport_box_with_a_run_time_tag_allocates_with_it() {
    let kernel = Kernel::new();
    let tag = runtime_tag(b"DvRt");
    let mut extension = [0u64; 8];
    with_kernel(&kernel, |passive| {
        // SAFETY: stands for the miniport's device extension, which outlives every block.
        let device = unsafe { HwDeviceExtension::from_raw(extension.as_mut_ptr().cast()) }.unwrap();
        let frame = VpBox::<u64, PoolTag, VpNonPagedPool>::try_new_with_tag(passive, tag, device, 7).unwrap();
        let modes =
            VpBox::<[u32], PoolTag, VpPagedPool>::try_new_zeroed_slice_with_tag(passive, tag, device, 4).unwrap();
        // SAFETY: zero is a valid `u32`.
        let modes = unsafe { modes.assume_init() };
        assert_eq!((*frame, modes.get(passive), frame.tag(), modes.tag()), (7, &[0; 4][..], tag, tag));
        assert_eq!(frame.device_extension(), device);
        let blocks = kernel.outstanding();
        assert!(blocks.iter().all(|b| b.tag.to_string() == "DvRt" && b.routine == "VideoPortAllocatePool"));
        assert_eq!(blocks.len(), 2);
        drop((frame, modes));
        assert!(kernel.outstanding().is_empty());
    });
    assert_eq!(
        usage(&kernel),
        [("DvRt".to_string(), PoolKind::Paged, 1, 1, 0), ("DvRt".to_string(), PoolKind::NonPagedExecute, 1, 1, 0)]
    );
}

/// A run-time tag costs its four bytes (and padding) only where it is stored; with a tag type every
/// type keeps the size it had before run-time tags were accepted.
#[test]
fn tag_types_keep_every_type_as_small_as_it_was() {
    use core::mem::size_of;
    let word = size_of::<usize>();
    assert_eq!(size_of::<FastMutex<u64, Typed>>(), 2 * word);
    assert_eq!(size_of::<Dpc<u64, Typed>>(), word);
    assert_eq!(size_of::<Timer<u64, Typed>>(), word);
    assert_eq!(size_of::<WorkItem<u64, Typed>>(), word);
    assert_eq!(size_of::<SystemThread<u64, Typed>>(), 2 * word);
    assert_eq!(size_of::<IoRequest<AtomicU32, Typed>>(), word);
    assert_eq!(size_of::<Reclaimer<Typed>>(), word);
    assert_eq!(size_of::<LookasideList<u64, Typed>>(), 2 * word);
    assert_eq!(size_of::<ntpool::LookasideBox<'static, u64, Typed>>(), 2 * word);
    #[cfg(feature = "videoport")]
    assert_eq!(size_of::<VpBox<u64, Typed>>(), 2 * word); // the pointer and the device extension
    // With a run-time tag, the tag is stored beside the pointer.
    assert_eq!(size_of::<Dpc<u64, PoolTag>>(), 2 * word);
    #[cfg(feature = "videoport")]
    assert_eq!(size_of::<VpBox<u64, PoolTag>>(), 3 * word);
}
