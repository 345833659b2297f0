//! Driver Verifier's special pool and Force IRQL Checking on the emulated kernel: the checks made at
//! free (bug check 0xC1), and the stops found by the page-fault handler (0xCC, 0xCD, 0xD1), which
//! end the process as a bug check ends the machine and run in a child process. Each row of the check
//! table (`ntpool_sys::emulated::checks`) with its code and all four parameters; the address of the
//! faulting instruction, which no test can know beforehand, is checked to be an address.
#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

mod common;

use common::{TAG, assert_row, block, stop};
use ntpool_sys as sys;
use ntpool_sys::emulated::{BugCheck, Kernel, SpecialPoolAlignment, catch_bug_check, checks, expect_stop_in_child};

fn special_pool() -> Kernel {
    Kernel::builder().special_pool(SpecialPoolAlignment::VerifyEnd).build()
}

fn free(block: *mut u8) {
    // SAFETY: a free the emulated kernel checks.
    unsafe { sys::ExFreePoolWithTag(block.cast(), TAG) };
}

#[test]
fn special_pool_finds_bytes_written_around_a_block_at_free() {
    let kernel = special_pool();
    let live = kernel.run(|| {
        let live = block(sys::POOL_FLAG_NON_PAGED, 20).cast::<u8>();
        // SAFETY: deliberately wrong: byte 20 is past the block, inside its page (the slack).
        unsafe { live.wrapping_add(20).write(0xFF) };
        live
    });
    let bug_check = stop(&kernel, || free(live));
    assert_row(&bug_check, &checks::SPECIAL_POOL_OVERRUN_AT_FREE, [live as u64, live as u64 + 20, 0, 0x24]);
    let kernel = special_pool();
    let live = kernel.run(|| {
        let live = block(sys::POOL_FLAG_NON_PAGED, 32).cast::<u8>();
        // SAFETY: deliberately wrong: the byte before the block, inside its page.
        unsafe { live.wrapping_sub(1).write(0) };
        live
    });
    let bug_check = stop(&kernel, || free(live));
    assert_row(&bug_check, &checks::SPECIAL_POOL_UNDERRUN_AT_FREE, [live as u64, live as u64 - 1, 0, 0x23]);
}

/// The instruction's address (parameter `index`) is known only to the child: it is an address.
fn with_instruction(bug_check: &BugCheck, index: usize) -> u64 {
    let instruction = bug_check.parameters[index];
    assert!(instruction > 0x1000, "{bug_check}");
    instruction
}

#[test]
fn special_pool_stops_a_touch_of_the_guard_page_with_0xcd() {
    touch_of_the_guard_page("special_pool_stops_a_touch_of_the_guard_page_with_0xcd", 0);
}

/// In a child process (test `name`): `churned` blocks allocated and freed first, so that the block
/// touched is in a reused slot when that is not 0, then one byte written on the guard page beside a
/// live block; the stop must be 0xCD on that page, a write, at the writing instruction.
fn touch_of_the_guard_page(name: &str, churned: usize) {
    let bug_check = expect_stop_in_child(name, || {
        special_pool().run(|| {
            churn(churned);
            let live = block(sys::POOL_FLAG_NON_PAGED, 64).cast::<u8>();
            // SAFETY: deliberately wrong: 64 bytes on is the guard page.
            unsafe { live.wrapping_add(64).write_volatile(1) };
        });
    });
    let instruction = with_instruction(&bug_check, 2);
    let guard = bug_check.parameters[0];
    assert_eq!(guard % 4096, 0, "{bug_check}");
    assert_row(&bug_check, &checks::SPECIAL_POOL_GUARD_PAGE, [guard, 1, instruction, 0]);
}

#[test]
fn special_pool_stops_a_use_after_free_with_0xcc() {
    let bug_check = expect_stop_in_child("special_pool_stops_a_use_after_free_with_0xcc", || {
        special_pool().run(|| {
            let live = block(sys::POOL_FLAG_NON_PAGED, 16).cast::<u64>();
            free(live.cast());
            // SAFETY: deliberately wrong: the block was freed.
            unsafe { live.wrapping_add(1).read_volatile() };
        });
    });
    let instruction = with_instruction(&bug_check, 2);
    assert_eq!(bug_check.parameters[0] % 16, 8, "the second word of a block: {bug_check}");
    assert_row(&bug_check, &checks::SPECIAL_POOL_USE_AFTER_FREE, [bug_check.parameters[0], 0, instruction, 0]);
}

#[test]
fn force_irql_checking_stops_a_touch_of_paged_memory_at_dispatch_level_with_0xd1() {
    let name = "force_irql_checking_stops_a_touch_of_paged_memory_at_dispatch_level_with_0xd1";
    let bug_check = expect_stop_in_child(name, || {
        // Pages of the block's own (under special pool it would end its page instead).
        Kernel::builder().force_irql_checking(true).no_special_pool().build().run(|| {
            let paged = block(sys::POOL_FLAG_PAGED, 8).cast::<u64>();
            // SAFETY: a raise from PASSIVE_LEVEL; deliberately wrong: paged memory written at DISPATCH_LEVEL.
            unsafe { sys::KfRaiseIrql(sys::DISPATCH_LEVEL) };
            // SAFETY: as above.
            unsafe { paged.write_volatile(7) };
        });
    });
    let instruction = with_instruction(&bug_check, 3);
    assert_eq!(bug_check.parameters[0] % 4096, 0, "the block starts its page: {bug_check}");
    assert_row(&bug_check, &checks::PAGED_MEMORY_AT_DISPATCH, [bug_check.parameters[0], 2, 1, instruction]);
}

#[test]
fn force_irql_checking_stops_a_dpc_that_touches_paged_memory_with_0xd1() {
    unsafe extern "system" fn touch(_dpc: *mut sys::KDPC, paged: sys::PVOID, _: sys::PVOID, _: sys::PVOID) {
        // SAFETY: deliberately wrong: a paged block written by a DPC routine, at DISPATCH_LEVEL.
        unsafe { paged.cast::<u64>().write_volatile(7) };
    }
    let name = "force_irql_checking_stops_a_dpc_that_touches_paged_memory_with_0xd1";
    let bug_check = expect_stop_in_child(name, || {
        Kernel::builder().force_irql_checking(true).no_special_pool().build().run(|| {
            let paged = block(sys::POOL_FLAG_PAGED, 8);
            // Touched at PASSIVE_LEVEL first: resident, as far as the memory manager knows.
            // SAFETY: a fresh block of 8 bytes, at PASSIVE_LEVEL.
            unsafe { paged.cast::<u64>().write_volatile(1) };
            let mut dpc = core::mem::MaybeUninit::<sys::KDPC>::uninit();
            // SAFETY: the DPC outlives its run, which happens at once (queued from PASSIVE_LEVEL).
            unsafe { sys::KeInitializeDpc(dpc.as_mut_ptr(), Some(touch), paged.cast()) };
            // SAFETY: as above; no raise trimmed the block before the dispatcher's.
            unsafe { sys::KeInsertQueueDpc(dpc.as_mut_ptr(), core::ptr::null_mut(), core::ptr::null_mut()) };
        });
    });
    assert_eq!(bug_check.parameters[0] % 4096, 0, "the block starts its page: {bug_check}");
    assert_eq!(&bug_check.parameters[..3], &[bug_check.parameters[0], 2, 1], "{bug_check}");
}

/// Allocates and frees `pairs` special-pool blocks of 24 bytes on the current kernel: more than the
/// quarantine holds, so that slots are reused.
fn churn(pairs: usize) {
    for _ in 0..pairs {
        free(block(sys::POOL_FLAG_NON_PAGED, 24).cast());
    }
}

#[test]
fn special_pool_slots_are_reused_with_every_check_made_again() {
    let kernel = special_pool();
    kernel.run(|| {
        let first = block(sys::POOL_FLAG_NON_PAGED, 24) as usize;
        free(first as *mut u8);
        churn(10_000);
        let reused = (0..10_000).any(|_| {
            let b = block(sys::POOL_FLAG_NON_PAGED, 24) as usize;
            free(b as *mut u8);
            b == first
        });
        assert!(reused, "the first block's slot came back");
    });
    // On slots used many times over, the slack is still the pattern, and written bytes are found.
    for (offset, subcode) in [(-1isize, 0x23u64), (-4000, 0x23), (24, 0x24), (31, 0x24)] {
        let live = kernel.run(|| {
            let live = block(sys::POOL_FLAG_NON_PAGED, 24).cast::<u8>();
            // SAFETY: deliberately wrong: a byte of the block's page outside the block.
            unsafe { live.wrapping_offset(offset).write(0xFF) };
            live
        });
        let bug_check = stop(&kernel, || free(live));
        let check = if subcode == 0x23 {
            &checks::SPECIAL_POOL_UNDERRUN_AT_FREE
        } else {
            &checks::SPECIAL_POOL_OVERRUN_AT_FREE
        };
        let corrupted = live.wrapping_offset(offset) as u64;
        assert_row(&bug_check, check, [live as u64, corrupted, 0, subcode]);
    }
    let leaks = kernel.outstanding().len();
    assert_eq!(leaks, 4, "the blocks whose free bug-checked stay allocated");
}

#[test]
fn special_pool_stops_a_touch_of_a_block_that_left_quarantine_with_0xcc() {
    let name = "special_pool_stops_a_touch_of_a_block_that_left_quarantine_with_0xcc";
    let bug_check = expect_stop_in_child(name, || {
        special_pool().run(|| {
            let gone = block(sys::POOL_FLAG_NON_PAGED, 16).cast::<u64>();
            free(gone.cast());
            // 4096 frees push it out of quarantine; its slot waits, inaccessible, for reuse.
            churn(4200);
            // SAFETY: deliberately wrong: the block was freed long ago.
            unsafe { gone.read_volatile() };
        });
    });
    let instruction = with_instruction(&bug_check, 2);
    assert_eq!(bug_check.parameters[0] % 16, 0, "the block's first word: {bug_check}");
    assert_row(&bug_check, &checks::SPECIAL_POOL_USE_AFTER_FREE, [bug_check.parameters[0], 0, instruction, 0]);
}

#[test]
fn special_pool_stops_a_touch_of_the_guard_page_of_a_reused_slot_with_0xcd() {
    touch_of_the_guard_page("special_pool_stops_a_touch_of_the_guard_page_of_a_reused_slot_with_0xcd", 10_000);
}

/// Where Linux has no guard markers (before 6.13), special pool's guard pages are `PROT_NONE` pages
/// of their own: every special pool test again, in a child process that takes that way.
#[test]
fn guard_pages_of_their_own_where_linux_has_no_guard_markers() {
    const VARIABLE: &str = "NTPOOL_SPECIAL_POOL_GUARD_PAGES";
    if std::env::var_os(VARIABLE).is_some() {
        return;
    }
    let output = std::process::Command::new(std::env::current_exe().expect("the test binary"))
        .args(["special_pool_", "--test-threads=1"])
        .env(VARIABLE, "1")
        .output()
        .expect("the test binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("test result: ok.") && !stdout.contains("ok. 0 passed"), "{stdout}");
}

/// When every special pool slot holds a live or quarantined block, allocations come from the normal
/// pool, as on Windows when special pool runs out (in a child process: the slots are the process's).
#[test]
fn special_pool_used_up_gives_normal_pool_blocks() {
    const CHILD: &str = "NTPOOL_TEST_SPECIAL_POOL_USED_UP";
    if std::env::var_os(CHILD).is_none() {
        let name = "special_pool_used_up_gives_normal_pool_blocks";
        let output = std::process::Command::new(std::env::current_exe().expect("the test binary"))
            .args([name, "--exact", "--test-threads=1"])
            .env(CHILD, "1")
            .output()
            .expect("the test binary runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("1 passed"),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        return;
    }
    let kernel = special_pool();
    kernel.run(|| {
        let mut blocks = Vec::new();
        let normal = loop {
            let b = block(sys::POOL_FLAG_NON_PAGED, 32) as usize;
            blocks.push(b);
            if b % 4096 != 4096 - 32 {
                break b;
            }
            assert!(blocks.len() <= 30_000, "special pool never ran out");
        };
        assert!(blocks.len() > 20_000, "special pool ran out after {} blocks", blocks.len());
        // A block of the normal pool, with its checks: pool tracking's overrun zone.
        // SAFETY: deliberately wrong, inside the host block: one byte past the end.
        unsafe { (normal as *mut u8).wrapping_add(32).write(0) };
        let bug_check = catch_bug_check(|| free(normal as *mut u8)).unwrap_err();
        assert_row(&bug_check, &checks::OVERRUN_FOUND_AT_FREE, [0x51, normal as u64, normal as u64 + 32, 32]);
        // SAFETY: the byte written above, written back.
        unsafe { (normal as *mut u8).wrapping_add(32).write(0x5B) };
        for b in blocks {
            free(b as *mut u8);
        }
    });
    assert!(kernel.verify_unload().is_ok());
}
