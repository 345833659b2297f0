//! The sample driver's device and IOCTLs on the emulated kernel: every request, good and bad input,
//! the limits, the device's DACL, and unload with blocks still outstanding.

mod common;

use common::{Emulated, assert_no_leak, driver_kernel, one_driver};
use ntpool::emulated::{Kernel, PoolKind};
use ntpool_driver::device::{ADMINISTRATORS_SID, SYSTEM_SID};
use ntpool_driver::host::{self, Handle};
use ntpool_driver::kernel::FILE_ALL_ACCESS;
use ntpool_protocol::*;

const TAG: u32 = u32::from_le_bytes(*b"Tst1");

fn allocate(handle: &Handle<'_>, pool: u32, tag: u32, size: u32) -> (i32, u64) {
    let request = AllocateRequest { pool, tag, size, reserved: 0 };
    let (status, reply) = handle.device_control(IOCTL_NTPOOL_ALLOCATE, request.as_bytes(), 8);
    (status, AllocateReply::from_bytes(&reply).map_or(0, |r| r.id))
}

fn free(handle: &Handle<'_>, id: u64) -> i32 {
    handle.device_control(IOCTL_NTPOOL_FREE, FreeRequest { id }.as_bytes(), 0).0
}

fn statistics(handle: &Handle<'_>) -> Statistics {
    let (status, reply) = handle.device_control(IOCTL_NTPOOL_QUERY_STATISTICS, &[], 64);
    assert_eq!(status, status::SUCCESS);
    Statistics::from_bytes(&reply).expect("64 bytes")
}

/// Loads the driver on a fresh kernel, runs `f` with an open handle, unloads, and checks nothing
/// leaked.
fn with_device(f: impl FnOnce(&Handle<'_>, &Kernel)) {
    let _one = one_driver();
    let kernel = driver_kernel().build();
    kernel.run(|| {
        let loaded = host::load();
        assert_eq!(loaded.status, status::SUCCESS, "{:#?}", loaded.output);
        let driver = loaded.driver.expect("loaded");
        {
            let handle = driver.open().expect("the device opens");
            f(&handle, &kernel);
        }
        driver.unload();
    });
    assert_no_leak(&kernel);
}

#[test]
fn the_device_is_open_to_system_and_administrators_only() {
    let _one = one_driver();
    let kernel = Kernel::new();
    kernel.run(|| {
        let driver = host::load().driver.expect("loaded");
        let dacl = driver.device_dacl();
        assert_eq!(dacl, [(SYSTEM_SID.to_vec(), FILE_ALL_ACCESS), (ADMINISTRATORS_SID.to_vec(), FILE_ALL_ACCESS)]);
        driver.unload();
    });
}

#[test]
fn allocate_read_free_round_trip_in_both_pools() {
    with_device(|handle, kernel| {
        let (status, paged) = allocate(handle, POOL_PAGED, TAG, 100);
        assert_eq!((status, paged), (status::SUCCESS, 1));
        let (status, non_paged) = allocate(handle, POOL_NON_PAGED, u32::from_le_bytes(*b"Tst2"), 4096);
        assert_eq!((status, non_paged), (status::SUCCESS, 2));
        // The kernel sees both blocks with the client's tags and pools.
        let blocks: Vec<_> = kernel
            .outstanding()
            .into_iter()
            .filter(|a| a.tag.to_string().starts_with("Tst"))
            .map(|a| (a.tag.to_string(), a.pool, a.size))
            .collect();
        assert!(blocks.contains(&("Tst1".into(), PoolKind::Paged, 100)), "{blocks:?}");
        assert!(blocks.contains(&("Tst2".into(), PoolKind::NonPaged, 4096)), "{blocks:?}");
        // A new block reads back as zeros: no uninitialized pool reaches user mode.
        let read = ReadRequest { id: paged, offset: 0, length: 100 };
        let (status, bytes) = handle.device_control(IOCTL_NTPOOL_READ, read.as_bytes(), 100);
        assert_eq!((status, bytes), (status::SUCCESS, vec![0; 100]));
        let read = ReadRequest { id: non_paged, offset: 4000, length: 96 };
        assert_eq!(handle.device_control(IOCTL_NTPOOL_READ, read.as_bytes(), 200), (status::SUCCESS, vec![0; 96]));
        // The list, in id order.
        let (status, list) = handle.device_control(IOCTL_NTPOOL_QUERY_ALLOCATIONS, &[], 8 + 2 * 24);
        assert_eq!(status, status::SUCCESS);
        assert_eq!(AllocationsHeader::from_bytes(&list[..8]), Some(AllocationsHeader { outstanding: 2, returned: 2 }));
        let first = AllocationInfo::from_bytes(&list[8..32]).unwrap();
        assert_eq!(first, AllocationInfo { id: 1, pool: POOL_PAGED, tag: TAG, size: 100, reserved: 0 });
        let stats = statistics(handle);
        assert_eq!((stats.allocations, stats.outstanding, stats.paged_bytes, stats.non_paged_bytes), (2, 2, 100, 4096));
        assert_eq!(free(handle, paged), status::SUCCESS);
        assert_eq!(free(handle, non_paged), status::SUCCESS);
        let stats = statistics(handle);
        assert_eq!((stats.frees, stats.outstanding, stats.paged_bytes, stats.non_paged_bytes), (2, 0, 0, 0));
    });
}

#[test]
fn bad_input_gets_the_precise_status_and_changes_nothing() {
    with_device(|handle, _| {
        let good = AllocateRequest { pool: POOL_PAGED, tag: TAG, size: 16, reserved: 0 };
        let cases: &[(&str, u32, Vec<u8>, usize, i32)] = &[
            ("unknown code", 0x8A50_E3FC, vec![], 0, status::INVALID_DEVICE_REQUEST),
            ("code 0", 0, vec![], 0, status::INVALID_DEVICE_REQUEST),
            ("short input", IOCTL_NTPOOL_ALLOCATE, good.as_bytes()[..15].to_vec(), 8, status::INFO_LENGTH_MISMATCH),
            ("long input", IOCTL_NTPOOL_ALLOCATE, [good.as_bytes(), &[0]].concat(), 8, status::INFO_LENGTH_MISMATCH),
            ("huge input", IOCTL_NTPOOL_ALLOCATE, vec![0; 4096], 8, status::INFO_LENGTH_MISMATCH),
            ("no input", IOCTL_NTPOOL_ALLOCATE, vec![], 8, status::INFO_LENGTH_MISMATCH),
            ("short output", IOCTL_NTPOOL_ALLOCATE, good.as_bytes().to_vec(), 7, status::BUFFER_TOO_SMALL),
            (
                "reserved",
                IOCTL_NTPOOL_ALLOCATE,
                AllocateRequest { reserved: 1, ..good }.as_bytes().to_vec(),
                8,
                status::INVALID_PARAMETER_4,
            ),
            (
                "pool 2",
                IOCTL_NTPOOL_ALLOCATE,
                AllocateRequest { pool: 2, ..good }.as_bytes().to_vec(),
                8,
                status::INVALID_PARAMETER_1,
            ),
            (
                "pool max",
                IOCTL_NTPOOL_ALLOCATE,
                AllocateRequest { pool: u32::MAX, ..good }.as_bytes().to_vec(),
                8,
                status::INVALID_PARAMETER_1,
            ),
            (
                "tag 0",
                IOCTL_NTPOOL_ALLOCATE,
                AllocateRequest { tag: 0, ..good }.as_bytes().to_vec(),
                8,
                status::INVALID_PARAMETER_2,
            ),
            (
                "tag nul",
                IOCTL_NTPOOL_ALLOCATE,
                AllocateRequest { tag: u32::from_le_bytes(*b"Ab\0c"), ..good }.as_bytes().to_vec(),
                8,
                status::INVALID_PARAMETER_2,
            ),
            (
                "tag dashes",
                IOCTL_NTPOOL_ALLOCATE,
                AllocateRequest { tag: u32::from_le_bytes(*b"----"), ..good }.as_bytes().to_vec(),
                8,
                status::INVALID_PARAMETER_2,
            ),
            (
                "tag Wdm",
                IOCTL_NTPOOL_ALLOCATE,
                AllocateRequest { tag: u32::from_le_bytes(*b"Wdm "), ..good }.as_bytes().to_vec(),
                8,
                status::INVALID_PARAMETER_2,
            ),
            (
                "tag protected",
                IOCTL_NTPOOL_ALLOCATE,
                AllocateRequest { tag: TAG | 0x8000_0000, ..good }.as_bytes().to_vec(),
                8,
                status::INVALID_PARAMETER_2,
            ),
            (
                "size 0",
                IOCTL_NTPOOL_ALLOCATE,
                AllocateRequest { size: 0, ..good }.as_bytes().to_vec(),
                8,
                status::INVALID_PARAMETER_3,
            ),
            (
                "size max+1",
                IOCTL_NTPOOL_ALLOCATE,
                AllocateRequest { size: MAX_SIZE + 1, ..good }.as_bytes().to_vec(),
                8,
                status::INVALID_PARAMETER_3,
            ),
            (
                "size u32::MAX",
                IOCTL_NTPOOL_ALLOCATE,
                AllocateRequest { size: u32::MAX, ..good }.as_bytes().to_vec(),
                8,
                status::INVALID_PARAMETER_3,
            ),
            (
                "two faults: first wins",
                IOCTL_NTPOOL_ALLOCATE,
                AllocateRequest { pool: 9, tag: 0, size: 0, reserved: 0 }.as_bytes().to_vec(),
                8,
                status::INVALID_PARAMETER_1,
            ),
            (
                "free never allocated",
                IOCTL_NTPOOL_FREE,
                FreeRequest { id: 999 }.as_bytes().to_vec(),
                0,
                status::NOT_FOUND,
            ),
            ("free id 0", IOCTL_NTPOOL_FREE, FreeRequest { id: 0 }.as_bytes().to_vec(), 0, status::NOT_FOUND),
            ("free short", IOCTL_NTPOOL_FREE, vec![1, 0, 0], 0, status::INFO_LENGTH_MISMATCH),
            (
                "read unknown",
                IOCTL_NTPOOL_READ,
                ReadRequest { id: 7, offset: 0, length: 1 }.as_bytes().to_vec(),
                1,
                status::NOT_FOUND,
            ),
            ("read short", IOCTL_NTPOOL_READ, vec![0; 8], 1, status::INFO_LENGTH_MISMATCH),
            ("list short output", IOCTL_NTPOOL_QUERY_ALLOCATIONS, vec![], 7, status::BUFFER_TOO_SMALL),
            ("stats short output", IOCTL_NTPOOL_QUERY_STATISTICS, vec![], 63, status::BUFFER_TOO_SMALL),
        ];
        let before = statistics(handle);
        for (name, code, input, output, expected) in cases {
            let (status, reply) = handle.device_control(*code, input, *output);
            assert_eq!((status, reply.len()), (*expected, 0), "{name}: got {}", status::name(status));
        }
        let after = statistics(handle);
        assert_eq!(after.rejected - before.rejected, cases.len() as u64);
        assert_eq!((after.allocations, after.outstanding), (before.allocations, 0));
        // Reads out of a block's range.
        let (_, id) = allocate(handle, POOL_NON_PAGED, TAG, 10);
        let read = |offset, length, output| {
            handle.device_control(IOCTL_NTPOOL_READ, ReadRequest { id, offset, length }.as_bytes(), output).0
        };
        assert_eq!(read(11, 0, 0), status::INVALID_PARAMETER_2);
        assert_eq!(read(1, 10, 10), status::INVALID_PARAMETER_3);
        assert_eq!(read(1, u32::MAX, 10), status::INVALID_PARAMETER_3, "offset + length overflows");
        assert_eq!(read(0, 10, 9), status::BUFFER_TOO_SMALL);
        assert_eq!(read(10, 0, 0), status::SUCCESS);
        assert_eq!(free(handle, id), status::SUCCESS);
        assert_eq!(free(handle, id), status::NOT_FOUND, "double free");
    });
}

#[test]
fn the_limits_stop_user_mode_from_exhausting_pool() {
    with_device(|handle, _| {
        let ids: Vec<u64> = (0..MAX_HANDLE_ALLOCATIONS)
            .map(|_| {
                let (status, id) = allocate(handle, POOL_PAGED, TAG, 8);
                assert_eq!(status, status::SUCCESS);
                id
            })
            .collect();
        assert_eq!(allocate(handle, POOL_PAGED, TAG, 8).0, status::QUOTA_EXCEEDED, "one block too many");
        for id in &ids {
            assert_eq!(free(handle, *id), status::SUCCESS);
        }
        let big: Vec<u64> = (0..MAX_HANDLE_NON_PAGED_BYTES / u64::from(MAX_SIZE))
            .map(|_| allocate(handle, POOL_NON_PAGED, TAG, MAX_SIZE))
            .map(|(status, id)| {
                assert_eq!(status, status::SUCCESS);
                id
            })
            .collect();
        assert_eq!(allocate(handle, POOL_NON_PAGED, TAG, 1).0, status::QUOTA_EXCEEDED, "non-paged bytes");
        let (status, paged) = allocate(handle, POOL_PAGED, TAG, MAX_SIZE);
        assert_eq!(status, status::SUCCESS, "paged has its own budget");
        for id in big.into_iter().chain([paged]) {
            assert_eq!(free(handle, id), status::SUCCESS);
        }
        let ids = std::iter::from_fn(|| Some(allocate(handle, POOL_NON_PAGED, TAG, 4)))
            .take(3)
            .map(|(_, id)| id)
            .collect::<Vec<_>>();
        assert!(ids.windows(2).all(|w| w[1] > w[0]), "ids are never reused: {ids:?}");
    });
}

#[test]
fn closing_a_handle_frees_its_blocks_and_unload_frees_the_rest() {
    let _one = one_driver();
    let kernel = driver_kernel().build();
    let tst1 = |kernel: &Kernel| kernel.outstanding().iter().filter(|a| a.tag.to_string() == "Tst1").count();
    kernel.run(|| {
        let driver = host::load().driver.expect("loaded");
        let first = driver.open().expect("opens");
        let second = driver.open().expect("opens");
        for pool in [POOL_PAGED, POOL_NON_PAGED, POOL_PAGED] {
            assert_eq!(allocate(&first, pool, TAG, 1000).0, status::SUCCESS);
        }
        let (status, id) = allocate(&second, POOL_NON_PAGED, TAG, 10);
        assert_eq!(status, status::SUCCESS);
        assert_eq!(allocate(&second, POOL_PAGED, TAG, 20).0, status::SUCCESS);
        assert_eq!(free(&first, id), status::NOT_FOUND, "another handle's block");
        assert_eq!(tst1(&kernel), 5);
        drop(first);
        assert_eq!(tst1(&kernel), 2, "IRP_MJ_CLOSE freed the closed handle's three blocks");
        let after = statistics(&second);
        assert_eq!((after.outstanding, after.non_paged_bytes, after.paged_bytes), (2, 10, 20));
        assert_eq!((after.allocations, after.frees), (5, 3));
        // This handle's IRP_MJ_CLOSE never comes: DriverUnload frees its blocks.
        second.abandon();
        driver.unload();
    });
    assert_no_leak(&kernel);
}

#[test]
fn old_log_entries_go_back_to_the_lookaside_list_at_dispatch_level_and_are_reused() {
    with_device(|handle, kernel| {
        for _ in 0..20 {
            statistics(handle);
        }
        // The list structure, then one entry per request until a displaced entry (given back to the
        // list inside the spin lock) serves the next request: nine entries for twenty requests.
        let log = kernel.pool_usage().rows.into_iter().find(|row| row.tag.to_string() == "NpLg").expect("log rows");
        assert_eq!((log.pool, log.allocs, log.frees), (PoolKind::NonPaged, 1 + 9, 0));
    });
}

#[test]
fn a_quota_allocation_is_charged_to_the_requesting_process() {
    with_device(|handle, kernel| {
        let (status, quota_id) =
            ntpool::emulated::in_process(4242, || allocate(handle, POOL_PAGED | POOL_CHARGE_QUOTA, TAG, 300));
        assert_eq!(status, status::SUCCESS);
        let (status, _) = ntpool::emulated::in_process(4242, || allocate(handle, POOL_NON_PAGED, TAG, 50));
        assert_eq!(status, status::SUCCESS);
        let charges: Vec<(u64, u64, u64)> =
            kernel.quota_charges().iter().map(|c| (c.process, c.paged, c.non_paged)).collect();
        assert_eq!(charges, [(4242, 300, 0)], "only the block asked to be charged is");
        // Reported in its pool, without the flag.
        let (status, reply) = handle.device_control(IOCTL_NTPOOL_QUERY_ALLOCATIONS, &[], 64);
        assert_eq!(status, status::SUCCESS);
        let first = AllocationInfo::from_bytes(&reply[8..32]).expect("an entry");
        assert_eq!((first.id, first.pool, first.size), (quota_id, POOL_PAGED, 300));
        assert_eq!(free(handle, quota_id), status::SUCCESS);
        assert_eq!(kernel.quota_charges()[0].paged, 0, "freeing returns the charge");
        // The flag with an unknown pool is still an unknown pool.
        assert_eq!(allocate(handle, 2 | POOL_CHARGE_QUOTA, TAG, 8).0, status::INVALID_PARAMETER_1);
    });
}

/// The client's whole scenario (every IOCTL, good and bad input, the limits, clean-up), which
/// `cargo xtask wine` runs against the real .sys, passes against the driver on the emulated kernel.
#[test]
fn the_client_scenario_passes_on_the_emulated_kernel() {
    with_device(|handle, _| {
        let mut out = String::new();
        let summary = ntpool_client::run_scenario(&mut Emulated(handle), &mut out);
        assert!(summary.failed == 0 && summary.passed > 100, "{out}");
        assert!(out.lines().last().is_some_and(|line| line.ends_with(" passed, 0 failed")), "{out}");
    });
}

/// A handle shared by threads, as an overlapped handle is by the requests in flight on it.
struct SharedHandle<'h, 'd>(&'h Handle<'d>);

// SAFETY: the host I/O manager keeps its state behind a mutex and a `Handle` only reads its own
// fields to build each request's IRP; what two threads may then race on is the driver's own state,
// which its dispatch routines must synchronize: what the test below checks.
unsafe impl Sync for SharedHandle<'_, '_> {}

/// Two threads use one handle at the same time: one allocates blocks, the other frees each as soon
/// as it exists (ids are handed out in order), often before the allocating request has returned. No
/// counter may go below zero on the way (a debug build panics on it) and the counters must add up.
#[test]
fn concurrent_requests_on_one_handle_keep_the_counters_whole() {
    const ROUNDS: u64 = 500;
    with_device(|handle, kernel| {
        let (status, first) = allocate(handle, POOL_PAGED, TAG, 100);
        assert_eq!(status, status::SUCCESS);
        assert_eq!(free(handle, first), status::SUCCESS);
        let shared = SharedHandle(handle);
        let shared = &shared;
        std::thread::scope(|scope| {
            scope.spawn(move || {
                kernel.run(|| {
                    for round in 0..ROUNDS {
                        let pool = if round % 2 == 0 { POOL_PAGED } else { POOL_NON_PAGED };
                        // The handle's limit may be reached while the other thread lags: try again.
                        while allocate(shared.0, pool, TAG, 100).0 != status::SUCCESS {
                            std::thread::yield_now();
                        }
                    }
                })
            });
            scope.spawn(move || {
                kernel.run(|| {
                    for id in first + 1..=first + ROUNDS {
                        loop {
                            match free(shared.0, id) {
                                status::SUCCESS => break,
                                status::NOT_FOUND => std::thread::yield_now(),
                                other => panic!("freeing {id}: {other:#x}"),
                            }
                        }
                    }
                })
            });
        });
        let stats = statistics(handle);
        assert_eq!((stats.allocations, stats.frees, stats.outstanding), (ROUNDS + 1, ROUNDS + 1, 0));
        assert_eq!((stats.non_paged_bytes, stats.paged_bytes), (0, 0));
    });
}

#[test]
fn run_background_runs_the_routines_the_kernel_calls() {
    with_device(|handle, kernel| {
        let (status, reply) = handle.device_control(IOCTL_NTPOOL_RUN_BACKGROUND, &[], size_of::<BackgroundReply>());
        assert_eq!(status, status::SUCCESS);
        let reply = BackgroundReply::from_bytes(&reply).expect("a BackgroundReply");
        assert_eq!(reply, BackgroundReply::EXPECTED);
        // The thread's blocks and the IRP are gone; nothing of the request is left.
        kernel.wait_for_work_items().unwrap();
        assert!(kernel.outstanding().iter().all(|block| block.tag.to_string() != "NpBg" || block.size < 64));
        // The timer's blocks (non-paged, 4, and the timer) and the work item's (paged, 2, and its mutex
        // and object in non-paged pool) were all freed.
        let usage = kernel.pool_usage();
        let row = |tag: &str, pool: PoolKind| {
            let row = usage.rows.iter().find(|row| row.tag.to_string() == tag && row.pool == pool);
            row.map(|row| (row.allocs, row.frees, row.bytes))
        };
        assert_eq!(row("NpEx", PoolKind::Paged), None);
        assert_eq!(row("NpEx", PoolKind::NonPaged), Some((5, 5, 0)));
        assert_eq!(row("NpRc", PoolKind::Paged), Some((2, 2, 0)));
        assert_eq!(row("NpRc", PoolKind::NonPaged), Some((2, 2, 0)));
        let (status, _) = handle.device_control(IOCTL_NTPOOL_RUN_BACKGROUND, &[], size_of::<BackgroundReply>() - 1);
        assert_eq!(status, status::BUFFER_TOO_SMALL);
        let stats = statistics(handle);
        assert_eq!((stats.requests, stats.rejected), (2, 1));
    });
}
