//! The rest of the pool surface on the emulated kernel: `ExFreePool` buffers, quota allocations and
//! lookaside lists, with what Driver Verifier (and Windows itself) reports when they are misused.

use ntpool::emulated::{BugCheck, Kernel, catch_bug_check, in_process};
use ntpool::sys::{self, BAD_POOL_CALLER, DRIVER_VERIFIER_DETECTED_VIOLATION as VERIFIER, PVOID};
use ntpool::{ExPoolBuffer, LookasideList, NonPagedBox, NonPagedPool, PagedBox, PagedPool, Passive, PoolTag};

ntpool::pool_tag!(struct Srf = b"Srf1");

const TAG: u32 = u32::from_le_bytes(*b"Srf1");

/// Runs `f` on `kernel` and returns the bug check it raised.
fn stop(kernel: &Kernel, f: impl FnOnce()) -> BugCheck {
    kernel.run(|| catch_bug_check(f)).expect_err("a bug check")
}

/// A block as a system routine would hand it back, allocated with `ExAllocatePoolWithTag`.
fn system_block(pool_type: sys::POOL_TYPE, tag: u32) -> PVOID {
    // SAFETY: a plain allocation at PASSIVE_LEVEL.
    let block = unsafe { sys::ExAllocatePoolWithTag(pool_type, 32, tag) };
    assert!(!block.is_null());
    block
}

fn raise(irql: sys::KIRQL) -> sys::KIRQL {
    // SAFETY: raising from PASSIVE_LEVEL; the test lowers again (or the bug check's catch does).
    unsafe { sys::KfRaiseIrql(irql) }
}

// --- ExFreePool ---

#[test]
fn ex_pool_buffer_frees_with_ex_free_pool_and_leaves_nothing() {
    let kernel = Kernel::new();
    kernel.run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let passive = unsafe { Passive::assume() };
        let raw = system_block(sys::PagedPool, TAG);
        // SAFETY: a paged block that ExFreePool frees, owned by nobody else.
        let buffer = unsafe { ExPoolBuffer::<[u8; 32], PagedPool>::from_raw(raw.cast()) }.unwrap();
        assert_eq!(buffer.get(&passive).len(), 32);
        assert_eq!(kernel.outstanding().len(), 1);
    });
    assert!(kernel.verify_unload().is_ok());
    assert_eq!(kernel.pool_usage().rows[0].frees, 1);
}

#[test]
fn ex_free_pool_of_a_protected_block_bug_checks_0xc2_0x0a() {
    let kernel = Kernel::new();
    let protected = TAG | sys::PROTECTED_POOL;
    let mut address = 0;
    let bug_check = stop(&kernel, || {
        let block = system_block(sys::NonPagedPoolNx, protected);
        address = block as u64;
        // SAFETY: a deliberate misuse that the emulated kernel reports.
        unsafe { sys::ExFreePool(block) };
    });
    assert_eq!(bug_check.code, BAD_POOL_CALLER);
    // Address, the allocator's tag and the tag used (ExFreePool passes 0), without the protected bit.
    assert_eq!(bug_check.parameters, [0x0A, address, u64::from(TAG), 0]);
    // The block was not freed.
    assert_eq!(kernel.outstanding().len(), 1);
}

#[test]
fn ex_pool_buffer_adopting_a_protected_block_bug_checks_when_dropped() {
    let kernel = Kernel::new();
    let bug_check = stop(&kernel, || {
        let block = system_block(sys::PagedPool, TAG | sys::PROTECTED_POOL);
        // SAFETY: deliberately wrong: the block is protected, which the caller must not vouch for.
        drop(unsafe { ExPoolBuffer::<u32>::from_raw(block.cast()) });
    });
    assert_eq!((bug_check.code, bug_check.parameters[0]), (BAD_POOL_CALLER, 0x0A));
}

#[test]
fn ex_free_pool_with_tag_frees_a_protected_block_with_its_tag() {
    let kernel = Kernel::new();
    kernel.run(|| {
        let protected = TAG | sys::PROTECTED_POOL;
        let block = system_block(sys::PagedPool, protected);
        // SAFETY: freed with the tag it was allocated with, protected bit included.
        unsafe { sys::ExFreePoolWithTag(block, protected) };
    });
    assert!(kernel.verify_unload().is_ok());
}

#[test]
fn ex_free_pool_of_a_paged_block_above_apc_level_bug_checks_0xc4_0x11() {
    let kernel = Kernel::new();
    let mut address = 0;
    let bug_check = stop(&kernel, || {
        let block = system_block(sys::PagedPool, TAG);
        address = block as u64;
        raise(sys::DISPATCH_LEVEL);
        // SAFETY: a deliberate misuse that the emulated kernel reports.
        unsafe { sys::ExFreePool(block) };
    });
    assert_eq!(bug_check.code, VERIFIER);
    assert_eq!(bug_check.parameters, [0x11, 2, sys::PagedPool as u64, address]);
}

#[test]
fn ex_free_pool_of_a_non_paged_block_above_dispatch_level_bug_checks_0xc4_0x12() {
    let kernel = Kernel::new();
    let mut address = 0;
    let bug_check = stop(&kernel, || {
        let block = system_block(sys::NonPagedPoolNx, TAG);
        address = block as u64;
        raise(sys::CLOCK_LEVEL);
        // SAFETY: a deliberate misuse that the emulated kernel reports.
        unsafe { sys::ExFreePool(block) };
    });
    assert_eq!(bug_check.code, VERIFIER);
    assert_eq!(bug_check.parameters, [0x12, u64::from(sys::CLOCK_LEVEL), sys::NonPagedPoolNx as u64, address]);
}

#[test]
fn unknown_pool_buffer_dropped_at_dispatch_level_through_unsafe_code_hits_the_backstop() {
    let kernel = Kernel::new();
    let bug_check = stop(&kernel, || {
        // The block is non-paged, but the caller did not know: `UnknownPool` is treated as paged.
        let block = system_block(sys::NonPagedPoolNx, TAG);
        // SAFETY: a block ExFreePool frees, owned by nobody else.
        let buffer = unsafe { ExPoolBuffer::<u32>::from_raw(block.cast()) }.unwrap();
        raise(sys::DISPATCH_LEVEL);
        drop(buffer);
    });
    assert_eq!((bug_check.code, bug_check.parameters[0]), (sys::BAD_POOL_CALLER, 0x09)); // the backstop's
}

// --- Quota ---

#[test]
fn quota_allocations_are_charged_to_the_process_and_returned_when_freed() {
    for pool2 in [true, false] {
        let kernel = Kernel::builder().ex_allocate_pool2(pool2).build();
        kernel.run(|| {
            // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
            let passive = unsafe { Passive::assume() };
            let (paged, non_paged) = in_process(1000, || {
                let paged = PagedBox::<[u8], Srf>::try_new_zeroed_slice_with_quota(&passive, 100).unwrap();
                let non_paged = NonPagedBox::<[u8; 24], Srf>::try_new_with_quota(&passive, [7; 24]).unwrap();
                (paged, non_paged)
            });
            let other = in_process(2000, || {
                NonPagedBox::<[u8], PoolTag>::try_new_zeroed_slice_with_tag_and_quota(
                    &passive,
                    PoolTag::new(*b"Clnt"),
                    8,
                )
            })
            .unwrap();
            let charges: Vec<(u64, u64, u64)> =
                kernel.quota_charges().iter().map(|c| (c.process, c.paged, c.non_paged)).collect();
            assert_eq!(charges, [(1000, 100, 24), (2000, 0, 8)], "ExAllocatePool2 exported: {pool2}");
            let routine = if pool2 { "ExAllocatePool2" } else { "ExAllocatePoolWithQuotaTag" };
            assert!(kernel.outstanding().iter().all(|block| block.routine == routine));
            assert_eq!(*non_paged, [7; 24]);
            drop((paged, non_paged, other));
            let charges: Vec<(u64, u64)> = kernel.quota_charges().iter().map(|c| (c.paged, c.non_paged)).collect();
            assert_eq!(charges, [(0, 0), (0, 0)], "every charge is returned with its block");
        });
        assert!(kernel.verify_unload().is_ok());
    }
}

#[test]
fn quota_exhaustion_is_an_error_never_an_exception() {
    for pool2 in [true, false] {
        let kernel = Kernel::builder().ex_allocate_pool2(pool2).process_quota(100).build();
        kernel.run(|| {
            // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
            let passive = unsafe { Passive::assume() };
            let kept = PagedBox::<[u8], Srf>::try_new_zeroed_slice_with_quota(&passive, 80).unwrap();
            let refused = PagedBox::<[u8], Srf>::try_new_zeroed_slice_with_quota(&passive, 40);
            assert!(refused.is_err(), "ExAllocatePool2 exported: {pool2}");
            drop(kept);
            assert!(PagedBox::<[u8], Srf>::try_new_zeroed_slice_with_quota(&passive, 100).is_ok());
        });
        assert!(kernel.verify_unload().is_ok());
    }
}

#[test]
fn the_raising_form_of_ex_allocate_pool_with_quota_tag_is_an_unhandled_exception() {
    let kernel = Kernel::builder().process_quota(10).build();
    let bug_check = stop(&kernel, || {
        // SAFETY: a request the emulated kernel refuses by raising (no POOL_QUOTA_FAIL_INSTEAD_OF_RAISE).
        let _ = unsafe { sys::ExAllocatePoolWithQuotaTag(sys::PagedPool, 64, TAG) };
    });
    assert_eq!(bug_check.code, 0x1E); // KMODE_EXCEPTION_NOT_HANDLED
    assert_eq!(bug_check.parameters[0], 0xC000_0044); // STATUS_QUOTA_EXCEEDED
}

#[test]
fn the_raising_form_raises_insufficient_resources_when_the_pool_fails_within_quota() {
    let kernel = Kernel::builder().process_quota(1 << 20).fail_allocation(1).build();
    let bug_check = stop(&kernel, || {
        // SAFETY: a request within the quota whose pool allocation the kernel fails, by raising.
        let _ = unsafe { sys::ExAllocatePoolWithQuotaTag(sys::PagedPool, 64, TAG) };
    });
    assert_eq!(bug_check.code, 0x1E); // KMODE_EXCEPTION_NOT_HANDLED
    assert_eq!(bug_check.parameters[0], 0xC000_009A); // STATUS_INSUFFICIENT_RESOURCES
}

#[test]
fn must_succeed_pool_on_the_quota_routine_bug_checks_0xc2_0x9a() {
    let kernel = Kernel::new();
    let bug_check = stop(&kernel, || {
        // SAFETY: a request the emulated kernel refuses with a bug check.
        let _ = unsafe {
            sys::ExAllocatePoolWithQuotaTag(
                sys::NonPagedPoolMustSucceed | sys::POOL_QUOTA_FAIL_INSTEAD_OF_RAISE,
                64,
                TAG,
            )
        };
    });
    assert_eq!((bug_check.code, bug_check.parameters[0]), (0xC2, 0x9A)); // BAD_POOL_CALLER, MUST_SUCCEED
}

#[test]
fn a_paged_quota_allocation_at_dispatch_level_bug_checks_0xc4_0x01() {
    let kernel = Kernel::new();
    let bug_check = stop(&kernel, || {
        raise(sys::DISPATCH_LEVEL);
        let pool_type = sys::PagedPool | sys::POOL_QUOTA_FAIL_INSTEAD_OF_RAISE;
        // SAFETY: a deliberate misuse that the emulated kernel reports.
        let _ = unsafe { sys::ExAllocatePoolWithQuotaTag(pool_type, 64, TAG) };
    });
    assert_eq!(bug_check.code, VERIFIER);
    assert_eq!(bug_check.parameters, [0x01, 2, sys::PagedPool as u64, 64]);
}

#[test]
fn leaked_quota_blocks_are_reported_at_unload() {
    let kernel = Kernel::new();
    kernel.run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let passive = unsafe { Passive::assume() };
        in_process(7, || NonPagedBox::leak(NonPagedBox::<u64, Srf>::try_new_with_quota(&passive, 1).unwrap()));
    });
    assert_eq!(kernel.quota_charges()[0].non_paged, 8);
    let bug_check = kernel.verify_unload().unwrap_err();
    assert_eq!((bug_check.code, bug_check.parameters[0], bug_check.parameters[3]), (VERIFIER, 0x62, 1));
}

// --- Lookaside lists ---

#[test]
fn lookaside_entries_are_recycled_and_freed_with_their_tag_when_the_list_is_deleted() {
    for ex in [true, false] {
        let kernel = Kernel::builder().lookaside_list_ex(ex).build();
        kernel.run(|| {
            // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
            let passive = unsafe { Passive::assume() };
            let list = LookasideList::<[u64; 3], Srf>::try_new(&passive).unwrap();
            let entries: Vec<_> = (0..6).map(|i| list.try_alloc(&passive, [i; 3]).unwrap()).collect();
            assert!(entries.iter().enumerate().all(|(i, e)| **e == [i as u64; 3]));
            let addresses: Vec<*const [u64; 3]> = entries.iter().map(|e| &raw const **e).collect();
            drop(entries);
            let s = list.statistics();
            // Six allocations, all from the pool; the list keeps `depth` (4) entries, frees the rest.
            assert_eq!((s.total_allocates, s.allocate_misses, s.total_frees), (6, 6, 6));
            assert_eq!((s.free_entries, s.free_misses, s.depth), (4, 2, 4), "Ex routines: {ex}");
            // The next allocation is served by the list: a block it kept.
            let again = list.try_alloc(&passive, [9; 3]).unwrap();
            assert!(addresses.contains(&(&raw const *again)));
            assert_eq!(list.statistics().allocate_misses, 6);
            // 1 list structure + 6 entries allocated, 2 entries freed so far.
            let row = kernel.pool_usage().rows.into_iter().find(|r| r.tag.0 == TAG).unwrap();
            assert_eq!((row.allocs, row.frees), (7, 2));
        });
        // Deleting the list freed the entries it kept, with the list's tag; then the structure.
        assert!(kernel.verify_unload().is_ok(), "Ex routines: {ex}");
        assert_eq!(kernel.pool_usage().rows[0].frees, 7);
    }
}

#[test]
fn a_lookaside_list_not_deleted_at_unload_is_bug_check_0xc7_and_without_verifier_0xce() {
    for verifier in [true, false] {
        let kernel =
            Kernel::builder().driver_name("leaky.sys").lookaside_list_ex(false).driver_verifier(verifier).build();
        let list_address = kernel.run(|| {
            // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
            let passive = unsafe { Passive::assume() };
            let list = LookasideList::<u32, Srf, NonPagedPool>::try_new(&passive).unwrap();
            drop(list.try_alloc(&passive, 1).unwrap());
            let address = kernel.outstanding().iter().find(|b| b.size >= 0x80).map(|b| b.address);
            core::mem::forget(list); // never deleted
            address
        });
        let bug_check = kernel.verify_unload().unwrap_err();
        let list_address = list_address.expect("the list structure's block") as u64;
        if verifier {
            // Driver Verifier's unload check: TIMER_OR_DPC_INVALID, whose page documents no
            // parameters for a lookaside list.
            assert_eq!((bug_check.code, bug_check.parameters), (0xC7, [0, 0, 0, 0]));
            assert_eq!(bug_check.name(), "TIMER_OR_DPC_INVALID");
        } else {
            // What the kernel's later walk of its lists runs into: the list's memory, read.
            assert_eq!(bug_check.code, 0xCE); // DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS
            assert_eq!(bug_check.name(), "DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS");
            // The list is in its block, aligned up to a cache line.
            assert!((list_address..list_address + 0x80 + 64).contains(&bug_check.parameters[0]));
            assert_eq!(bug_check.parameters[1..], [0, 0, 0]);
        }
        assert!(bug_check.report.contains("leaky.sys is unloading without deleting 1 lookaside list"));
        assert!(bug_check.report.contains("ExInitializeNPagedLookasideList"), "{}", bug_check.report);
        assert!(bug_check.report.contains("Srf1"), "{}", bug_check.report);
    }
}

#[test]
fn deleting_a_lookaside_list_twice_bug_checks_0xc4_0xcb_and_without_verifier_0x139_3() {
    for verifier in [true, false] {
        let kernel = Kernel::builder().driver_verifier(verifier).build();
        let mut list = Box::new(core::mem::MaybeUninit::<sys::LOOKASIDE_LIST_EX>::uninit());
        let address = list.as_ptr() as u64;
        let bug_check = stop(&kernel, || {
            // SAFETY: a list that stays put until deleted.
            let status = unsafe {
                sys::ExInitializeLookasideListEx(list.as_mut_ptr(), None, None, sys::NonPagedPoolNx, 0, 32, TAG, 0)
            };
            assert_eq!(status, 0);
            // SAFETY: initialized above.
            unsafe { sys::ExDeleteLookasideListEx(list.as_mut_ptr()) };
            // SAFETY: a deliberate second delete.
            unsafe { sys::ExDeleteLookasideListEx(list.as_mut_ptr()) };
        });
        if verifier {
            // Driver Verifier: the driver deleted an uninitialized lookaside list.
            assert_eq!((bug_check.code, bug_check.parameters), (VERIFIER, [0xCB, address, 0, 0]));
        } else {
            // RemoveEntryList's integrity check: a corrupted LIST_ENTRY.
            assert_eq!((bug_check.code, bug_check.parameters), (0x139, [3, 0, 0, 0]));
        }
    }
}

#[test]
fn a_lookaside_entry_given_back_twice_is_a_double_free_once_the_list_frees_it() {
    // The safe API cannot give an entry back twice; raw code can. The list then holds the entry twice,
    // and deleting it frees the block twice: Driver Verifier's double free, 0xC4 / 0x13. (Under
    // special pool the second pop already reads the freed entry's link: 0xCC, in the fault handler.)
    let kernel = Kernel::builder().no_special_pool().build();
    let bug_check = stop(&kernel, || {
        let mut list = Box::new(core::mem::MaybeUninit::<sys::NPAGED_LOOKASIDE_LIST>::uninit());
        let header = list.as_mut_ptr().cast::<sys::GENERAL_LOOKASIDE_POOL>();
        // SAFETY: a list that stays put until deleted; default callbacks.
        unsafe { sys::ExInitializeNPagedLookasideList(list.as_mut_ptr(), None, None, 0x200, 32, TAG, 0) };
        // SAFETY: a live list.
        let entry = unsafe { sys::ExAllocateFromLookasideListEx(header, sys::LookasideCallbacks::Legacy) };
        // SAFETY: the entry goes back once, legitimately ...
        unsafe { sys::ExFreeToLookasideListEx(header, entry, sys::LookasideCallbacks::Legacy) };
        // SAFETY: ... and once more, deliberately.
        unsafe { sys::ExFreeToLookasideListEx(header, entry, sys::LookasideCallbacks::Legacy) };
        // SAFETY: a live list, deleted once.
        unsafe { sys::ExDeleteNPagedLookasideList(list.as_mut_ptr()) };
    });
    assert_eq!((bug_check.code, bug_check.parameters[0]), (VERIFIER, 0x13));
}

#[test]
fn a_paged_lookaside_list_dropped_at_dispatch_level_through_unsafe_code_hits_the_backstop() {
    let kernel = Kernel::new();
    let bug_check = stop(&kernel, || {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let passive = unsafe { Passive::assume() };
        let list = LookasideList::<u32, Srf, PagedPool>::try_new(&passive).unwrap();
        raise(sys::DISPATCH_LEVEL);
        drop(list);
    });
    assert_eq!((bug_check.code, bug_check.parameters[0]), (sys::BAD_POOL_CALLER, 0x09)); // the backstop's
}
