//! The benchmark pairs of `src/bench_pairs/` do the same work on both sides: run on the emulated
//! kernel, ntpool's function and the hand-written one return the same results and make the same
//! pool calls (allocations, frees and bytes per tag).

use ntpool::Passive;
use ntpool::emulated::Kernel;
use ntpool_driver::bench_pairs::*;

/// The token ntpool's side of each pair takes.
fn passive() -> Passive {
    // SAFETY: called on an emulated kernel's thread, which runs at PASSIVE_LEVEL, for one call of a
    // pair function that consumes it.
    unsafe { Passive::assume() }
}

/// Runs `f` (given the kernel) on a fresh emulated kernel (Driver Verifier on); returns its result and the pool's
/// (allocations, frees, bytes in use) for the benchmark tag, after checking that nothing leaked.
fn on_kernel<R>(f: impl FnOnce(&Kernel) -> R) -> (R, (u64, u64, u64)) {
    let kernel = Kernel::new();
    let result = kernel.run(|| f(&kernel));
    kernel.verify_unload().expect("nothing leaked");
    let usage = kernel.pool_usage();
    let row = usage.rows.iter().find(|row| row.tag.to_string() == "NpBn");
    (result, row.map_or((0, 0, 0), |row| (row.allocs, row.frees, row.bytes)))
}

#[test]
fn paged_box_pair_does_the_same_work() {
    let ours = on_kernel(|_| ntpool_bench_paged_box_ntpool(passive(), 7));
    // SAFETY: the emulated thread runs at PASSIVE_LEVEL.
    let raw = on_kernel(|_| unsafe { ntpool_bench_paged_box_raw(7) });
    assert_eq!(ours, raw);
    assert_eq!(ours, (true, (1, 1, 0)));
}

#[test]
fn non_paged_box_pair_does_the_same_work() {
    let ours = on_kernel(|_| ntpool_bench_non_paged_box_ntpool(passive(), 7));
    // SAFETY: the emulated thread runs at PASSIVE_LEVEL.
    let raw = on_kernel(|_| unsafe { ntpool_bench_non_paged_box_raw(7) });
    assert_eq!(ours, raw);
    assert_eq!(ours, (true, (1, 1, 0)));
}

#[test]
fn vec_push_pair_does_the_same_work() {
    let ours = on_kernel(|_| ntpool_bench_vec_push_ntpool(passive(), 100));
    // SAFETY: the emulated thread runs at PASSIVE_LEVEL.
    let raw = on_kernel(|_| unsafe { ntpool_bench_vec_push_raw(100) });
    assert_eq!(ours, raw);
    assert_eq!(ours.0, 100);
    assert!(ours.1.0 > 3, "the vector grew several times: {ours:?}");
}

#[test]
fn spin_lock_pair_does_the_same_work() {
    let ours =
        on_kernel(|_| (ntpool_bench_spin_lock_ntpool(passive(), 2), ntpool_bench_spin_lock_ntpool(passive(), 3)));
    // SAFETY: the emulated thread runs at PASSIVE_LEVEL.
    let raw_add = |value| unsafe { ntpool_bench_spin_lock_raw(value) };
    let raw = on_kernel(|_| (raw_add(2), raw_add(3)));
    assert_eq!(ours, raw);
    assert_eq!(ours, ((2, 5), (0, 0, 0)));
}

#[test]
fn lookaside_pair_does_the_same_work() {
    // Three rounds on a fresh list: the first allocation misses (the pool serves it through the
    // list's allocate callback, ntpool's on both sides), the entry goes back to the list, the next two
    // come from it; deleting the list frees the entry (through the free callback, ntpool's too).
    let ours = on_kernel(|_| {
        let list = BenchLookasideList::try_new(&passive()).expect("a list");
        let results = [1, 2, 3].map(|value| ntpool_bench_lookaside_ntpool(passive(), &list, value));
        let s = list.statistics();
        (results, (s.total_allocates, s.allocate_misses, s.total_frees, s.free_misses, s.free_entries))
    });
    let raw = on_kernel(|_| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL; the kernel exports the Ex routines.
        let list = unsafe { RawLookasideList::new() }.expect("a list");
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL; a list for 16-byte entries.
        let results = [1, 2, 3].map(|value| unsafe { ntpool_bench_lookaside_raw(list.as_ptr(), value) });
        // SAFETY: the list is live; its fields are read once each.
        let s = unsafe { &(*list.as_ptr()).L };
        // SAFETY: the list's SLIST_HEADER.
        let free = unsafe { ntpool::sys::ExQueryDepthSList(&raw const s.ListHead as *mut _) };
        // The raw list calls ntpool's callbacks through its pointers: those of a `BenchLookasideList`.
        // SAFETY: a LOOKASIDE_LIST_EX's union holds `AllocateEx`.
        let allocate_installed = unsafe { s.Allocate.AllocateEx }.map(|f| f as usize);
        // SAFETY: as above, `FreeEx`.
        let free_installed = unsafe { s.Free.FreeEx }.map(|f| f as usize);
        let installed = (allocate_installed, free_installed);
        let (allocate, free_entry) = BenchLookasideList::ex_callbacks();
        assert_eq!(installed, (allocate.map(|f| f as usize), free_entry.map(|f| f as usize)));
        assert!(installed.0.is_some() && installed.1.is_some());
        (results, (s.TotalAllocates, s.AllocateMisses, s.TotalFrees, s.FreeMisses, free))
    });
    assert_eq!(ours, raw);
    // Two allocations per side: the list structure and the one entry, both freed.
    assert_eq!(ours, (([true; 3], (3, 1, 3, 0, 1)), (2, 2, 0)));
}

#[test]
fn dpc_pair_does_the_same_work() {
    // Queued three times at PASSIVE_LEVEL: the emulated kernel runs each DPC as soon as it is
    // queued (the IRQL is below DISPATCH_LEVEL), so each queuing succeeds and runs the routine.
    let ours = on_kernel(|_| {
        let dpc = bench_dpc(&mut passive()).expect("a DPC");
        let queued = [(); 3].map(|()| ntpool_bench_dpc_ntpool(&dpc));
        (queued, dpc.context().load(core::sync::atomic::Ordering::Relaxed))
    });
    let raw = on_kernel(|_| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL.
        let dpc = unsafe { RawDpc::new() }.expect("a DPC");
        // SAFETY: the KDPC of the live `RawDpc`.
        let queued = [(); 3].map(|()| unsafe { ntpool_bench_dpc_raw(dpc.as_ptr()) });
        (queued, dpc.runs())
    });
    assert_eq!(ours, raw);
    // One block per side (the DPC and its context), freed.
    assert_eq!(ours, (([true; 3], 3), (1, 1, 0)));
}

#[test]
fn work_item_pair_does_the_same_work() {
    // Queued, run on a worker thread, then queued again: two runs on each side.
    let device = 8 as ntpool::sys::PDEVICE_OBJECT; // any address stands for the device here
    let ours = on_kernel(|kernel| {
        // SAFETY: `device` stands for this driver's device, which outlives the work item.
        let work = unsafe { bench_work_item(&passive(), device) }.expect("a work item");
        let first = ntpool_bench_work_item_ntpool(passive(), &work);
        kernel.wait_for_work_items().expect("no bug check");
        let second = ntpool_bench_work_item_ntpool(passive(), &work);
        kernel.wait_for_work_items().expect("no bug check");
        ([first, second], work.context(&passive()).load(core::sync::atomic::Ordering::Relaxed))
    });
    let raw = on_kernel(|kernel| {
        // SAFETY: at PASSIVE_LEVEL; `device` stands for this driver's device.
        let work = unsafe { RawWorkItem::new(device) }.expect("a work item");
        // SAFETY: at PASSIVE_LEVEL, the object of the live `RawWorkItem`.
        let queue = || unsafe { ntpool_bench_work_item_raw(work.as_ptr()) };
        let first = queue();
        kernel.wait_for_work_items().expect("no bug check");
        let second = queue();
        kernel.wait_for_work_items().expect("no bug check");
        ([first, second], work.runs())
    });
    assert_eq!(ours, raw);
    assert_eq!(ours, (([true; 2], 2), (1, 1, 0)));
}
