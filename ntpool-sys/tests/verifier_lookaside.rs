//! Driver Verifier's lookaside list checks on the emulated kernel, and what happens without it: each
//! row of the check table (`ntpool_sys::emulated::checks`) triggered through the raw kernel
//! interface, with its code and all four parameters.

mod common;

use core::mem::MaybeUninit;

use common::{TAG, assert_row, stop};
use ntpool_sys::emulated::{Kernel, checks};
use ntpool_sys::{self as sys, LOOKASIDE_LIST_EX, NPAGED_LOOKASIDE_LIST};

fn list() -> Box<MaybeUninit<LOOKASIDE_LIST_EX>> {
    Box::new(MaybeUninit::uninit())
}

/// `ExInitializeLookasideListEx` of non-paged entries of `size` bytes.
fn initialize(list: *mut LOOKASIDE_LIST_EX, size: u64) -> i32 {
    // SAFETY: the list stays put in its box; the emulated kernel checks the call.
    unsafe { sys::ExInitializeLookasideListEx(list, None, None, sys::NonPagedPoolNx, 0, size, TAG, 0) }
}

fn delete(list: *mut LOOKASIDE_LIST_EX) {
    // SAFETY: as above.
    unsafe { sys::ExDeleteLookasideListEx(list) };
}

#[test]
fn a_live_list_initialized_again() {
    let mut list = list();
    let kernel = Kernel::new();
    let bug_check = stop(&kernel, || {
        assert_eq!(initialize(list.as_mut_ptr(), 32), 0);
        initialize(list.as_mut_ptr(), 32)
    });
    assert_row(&bug_check, &checks::LOOKASIDE_REINITIALIZED, [0xCA, list.as_ptr() as u64, 0, 0]);
    kernel.run(|| delete(list.as_mut_ptr()));
    assert!(kernel.verify_unload().is_ok());
}

#[test]
fn a_list_deleted_twice_or_never_initialized() {
    let mut list = list();
    let bug_check = stop(&Kernel::new(), || delete(list.as_mut_ptr()));
    assert_row(&bug_check, &checks::LOOKASIDE_NOT_INITIALIZED, [0xCB, list.as_ptr() as u64, 0, 0]);
    let bug_check = stop(&Kernel::new(), || {
        initialize(list.as_mut_ptr(), 32);
        delete(list.as_mut_ptr());
        delete(list.as_mut_ptr());
    });
    assert_row(&bug_check, &checks::LOOKASIDE_NOT_INITIALIZED, [0xCB, list.as_ptr() as u64, 0, 0]);
    // Without Driver Verifier: RemoveEntryList's integrity check.
    let plain = Kernel::builder().driver_verifier(false).build();
    let bug_check = stop(&plain, || {
        initialize(list.as_mut_ptr(), 32);
        delete(list.as_mut_ptr());
        delete(list.as_mut_ptr());
    });
    assert_row(&bug_check, &checks::LIST_ENTRY_CORRUPTED, [3, 0, 0, 0]);
}

#[test]
fn entries_smaller_than_an_slist_entry() {
    let mut list = list();
    let bug_check = stop(&Kernel::new(), || initialize(list.as_mut_ptr(), 8));
    assert_row(&bug_check, &checks::LOOKASIDE_BLOCK_TOO_SMALL, [0xCD, list.as_ptr() as u64, 8, 16]);
    // Without Driver Verifier the size is rounded up.
    let plain = Kernel::builder().driver_verifier(false).build();
    plain.run(|| {
        assert_eq!(initialize(list.as_mut_ptr(), 8), 0);
        // SAFETY: initialized above.
        let size = unsafe { (*list.as_ptr()).L.Size };
        assert_eq!(size, 16);
        delete(list.as_mut_ptr());
    });
}

#[test]
fn a_pool_block_freed_with_a_live_list_in_it() {
    let kernel = Kernel::new();
    let size = core::mem::size_of::<NPAGED_LOOKASIDE_LIST>() as u64 + 64;
    let (block, list) = kernel.run(|| {
        // SAFETY: a block at PASSIVE_LEVEL that holds a list from byte 64 on.
        let block = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_NON_PAGED, size, TAG) };
        let list = block.cast::<u8>().wrapping_add(64).cast::<NPAGED_LOOKASIDE_LIST>();
        // SAFETY: the list lies inside the block, aligned, and stays put.
        unsafe { sys::ExInitializeNPagedLookasideList(list, None, None, 0x200, 32, TAG, 0) };
        (block, list)
    });
    // SAFETY: deliberately wrong: the block still holds the live list.
    let bug_check = stop(&kernel, || unsafe { sys::ExFreePoolWithTag(block, TAG) });
    assert_row(&bug_check, &checks::FREE_OF_ACTIVE_LOOKASIDE, [0xCC, list as u64, block as u64, size]);
    kernel.run(|| {
        // SAFETY: the list, then its block, in the right order.
        unsafe { sys::ExDeleteNPagedLookasideList(list) };
        // SAFETY: as above.
        unsafe { sys::ExFreePoolWithTag(block, TAG) };
    });
    assert!(kernel.verify_unload().is_ok());
}

#[test]
fn a_list_left_at_unload() {
    let mut list = list();
    let kernel = Kernel::builder().driver_name("leaky.sys").build();
    kernel.run(|| initialize(list.as_mut_ptr(), 32));
    let bug_check = kernel.verify_unload().unwrap_err();
    assert_row(&bug_check, &checks::LOOKASIDE_LEFT_AT_UNLOAD, [0, 0, 0, 0]);
    assert!(bug_check.report.contains("leaky.sys is unloading without deleting 1 lookaside list"), "{bug_check}");
    assert!(bug_check.report.contains(&format!("{:#x}", list.as_ptr() as usize)), "{bug_check}");
    let plain = Kernel::builder().driver_verifier(false).build();
    plain.run(|| initialize(list.as_mut_ptr(), 32));
    let bug_check = plain.verify_unload().unwrap_err();
    assert_row(&bug_check, &checks::LOOKASIDE_TOUCHED_AFTER_UNLOAD, [list.as_ptr() as u64, 0, 0, 0]);
}
