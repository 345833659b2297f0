//! Driver Verifier on the emulated kernel: each violation, triggered through the raw kernel interface
//! (the safe API cannot commit them), reported with Microsoft's bug-check code and all four
//! parameters.

use ntpool::emulated::{BugCheck, Kernel, SpecialPoolAlignment, catch_bug_check, expect_stop_in_child};
use ntpool::sys::{self, BAD_POOL_CALLER, DRIVER_VERIFIER_DETECTED_VIOLATION as VERIFIER, PVOID};
use ntpool::{NonPagedBox, PagedBox, Passive, Tag};

ntpool::pool_tag!(struct Vrf = b"Vrf1");

const TAG: u32 = u32::from_le_bytes(*b"Vrf1");
const NX: u64 = sys::NonPagedPoolNx as u64;
const PAGED: u64 = sys::PagedPool as u64;

/// Runs `f` on `kernel` and returns the bug check it raised.
fn stop(kernel: &Kernel, f: impl FnOnce()) -> BugCheck {
    kernel.run(|| catch_bug_check(f)).expect_err("a bug check")
}

/// A live block, allocated at PASSIVE_LEVEL.
fn block(flags: sys::POOL_FLAGS) -> PVOID {
    // SAFETY: a plain allocation at PASSIVE_LEVEL.
    let block = unsafe { sys::ExAllocatePool2(flags, 64, TAG) };
    assert!(!block.is_null());
    block
}

/// `ExAllocatePool2`, for a request that is meant to be wrong: the emulated kernel checks it.
fn allocate_raw(flags: sys::POOL_FLAGS, size: u64, tag: u32) -> PVOID {
    // SAFETY: the emulated kernel checks the request and never hands out invalid memory.
    unsafe { sys::ExAllocatePool2(flags, size, tag) }
}

/// `ExFreePoolWithTag` (or `ExFreePool` without a tag), for a free that is meant to be wrong: the
/// emulated kernel checks it and never touches memory it did not hand out.
fn free_raw(block: PVOID, tag: Option<u32>) {
    match tag {
        // SAFETY: as above.
        Some(tag) => unsafe { sys::ExFreePoolWithTag(block, tag) },
        // SAFETY: as above.
        None => unsafe { sys::ExFreePool(block) },
    }
}

/// Runs `f` at `irql`, restoring the IRQL afterwards (also when `f` bug-checks).
fn at_irql<R>(irql: sys::KIRQL, f: impl FnOnce() -> R) -> R {
    // SAFETY: a raise from PASSIVE_LEVEL; `catch_bug_check` or the line below lowers it again.
    let old = unsafe { sys::KfRaiseIrql(irql) };
    let result = f();
    // SAFETY: `old` is what the raise returned.
    unsafe { sys::KeLowerIrql(old) };
    result
}

#[test]
fn zero_byte_allocation_bug_checks_0xc4_0x00() {
    let kernel = Kernel::new();
    let bug_check = stop(&kernel, || {
        allocate_raw(sys::POOL_FLAG_NON_PAGED, 0, TAG);
    });
    assert_eq!((bug_check.code, bug_check.parameters), (VERIFIER, [0x00, 0, NX, 0]));
}

#[test]
fn zero_byte_allocation_without_verifier_bug_checks_0xc2_0x00() {
    let kernel = Kernel::builder().driver_verifier(false).build();
    let bug_check = stop(&kernel, || {
        allocate_raw(sys::POOL_FLAG_PAGED, 0, TAG);
    });
    assert_eq!((bug_check.code, bug_check.parameters), (BAD_POOL_CALLER, [0x00, 0, PAGED, u64::from(TAG)]));
}

#[test]
fn paged_allocation_at_dispatch_level_bug_checks_0xc4_0x01() {
    let kernel = Kernel::new();
    let bug_check = stop(&kernel, || {
        at_irql(2, || {
            allocate_raw(sys::POOL_FLAG_PAGED, 40, TAG);
        })
    });
    assert_eq!((bug_check.code, bug_check.parameters), (VERIFIER, [0x01, 2, PAGED, 40]));
}

#[test]
fn non_paged_allocation_above_dispatch_level_bug_checks_0xc4_0x02() {
    let kernel = Kernel::new();
    let bug_check = stop(&kernel, || {
        at_irql(sys::CLOCK_LEVEL, || {
            allocate_raw(sys::POOL_FLAG_NON_PAGED, 40, TAG);
        })
    });
    assert_eq!((bug_check.code, bug_check.parameters), (VERIFIER, [0x02, u64::from(sys::CLOCK_LEVEL), NX, 40]));
}

#[test]
fn allocation_at_a_bad_irql_without_verifier_bug_checks_0xc2_0x08() {
    let kernel = Kernel::builder().driver_verifier(false).build();
    let bug_check = stop(&kernel, || {
        at_irql(2, || {
            allocate_raw(sys::POOL_FLAG_PAGED, 40, TAG);
        })
    });
    assert_eq!((bug_check.code, bug_check.parameters), (BAD_POOL_CALLER, [0x08, 2, PAGED, 40]));
}

#[test]
fn paged_free_at_dispatch_level_bug_checks_0xc4_0x11() {
    let kernel = Kernel::new();
    let paged = kernel.run(|| block(sys::POOL_FLAG_PAGED));
    let bug_check = stop(&kernel, || at_irql(2, || free_raw(paged, Some(TAG))));
    assert_eq!((bug_check.code, bug_check.parameters), (VERIFIER, [0x11, 2, PAGED, paged as u64]));
}

#[test]
fn non_paged_free_above_dispatch_level_bug_checks_0xc4_0x12() {
    let kernel = Kernel::new();
    let nonpaged = kernel.run(|| block(sys::POOL_FLAG_NON_PAGED));
    let bug_check = stop(&kernel, || at_irql(sys::HIGH_LEVEL, || free_raw(nonpaged, Some(TAG))));
    assert_eq!(
        (bug_check.code, bug_check.parameters),
        (VERIFIER, [0x12, u64::from(sys::HIGH_LEVEL), NX, nonpaged as u64])
    );
}

#[test]
fn free_at_a_bad_irql_without_verifier_bug_checks_0xc2_0x09() {
    let kernel = Kernel::builder().driver_verifier(false).build();
    let paged = kernel.run(|| block(sys::POOL_FLAG_PAGED));
    let bug_check = stop(&kernel, || at_irql(2, || free_raw(paged, None)));
    assert_eq!((bug_check.code, bug_check.parameters), (BAD_POOL_CALLER, [0x09, 2, PAGED, paged as u64]));
}

#[test]
fn tag_zero_bug_checks_0xc2_0x9b_and_without_verifier_fails() {
    let kernel = Kernel::new();
    let bug_check = stop(&kernel, || {
        allocate_raw(sys::POOL_FLAG_NON_PAGED, 24, 0);
    });
    // Parameter 4: the caller's address, the return address of the call into the kernel.
    assert_ne!(bug_check.parameters[3], 0);
    assert_eq!((bug_check.code, bug_check.parameters), (BAD_POOL_CALLER, [0x9B, NX, 24, bug_check.parameters[3]]));
    let plain = Kernel::builder().driver_verifier(false).build();
    // SAFETY: ExAllocatePool2 returns NULL for tag 0.
    assert!(plain.run(|| unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_NON_PAGED, 24, 0) }).is_null());
}

#[test]
fn tag_without_a_letter_or_digit_bug_checks_0xc2_0x9d() {
    let kernel = Kernel::new();
    let dashes = u32::from_le_bytes(*b"----");
    let bug_check = stop(&kernel, || {
        allocate_raw(sys::POOL_FLAG_NON_PAGED, 24, dashes);
    });
    // Parameter 4: the caller's address, the return address of the call into the kernel.
    assert_ne!(bug_check.parameters[3], 0);
    let caller = bug_check.parameters[3];
    assert_eq!((bug_check.code, bug_check.parameters), (BAD_POOL_CALLER, [0x9D, u64::from(dashes), NX, caller]));
}

#[test]
fn wrong_tag_on_free_bug_checks_0xc2_0x0a() {
    let kernel = Kernel::new();
    let nonpaged = kernel.run(|| block(sys::POOL_FLAG_NON_PAGED));
    let other = u32::from_le_bytes(*b"Othr");
    let bug_check = stop(&kernel, || free_raw(nonpaged, Some(other)));
    assert_eq!(
        (bug_check.code, bug_check.parameters),
        (BAD_POOL_CALLER, [0x0A, nonpaged as u64, u64::from(TAG), u64::from(other)])
    );
}

#[test]
fn free_of_an_address_never_allocated_bug_checks_0xc4_0x10() {
    let kernel = Kernel::new();
    let mut local = [0u8; 32];
    let address = local.as_mut_ptr();
    // SAFETY: deliberately wrong: the emulated kernel never touches memory it did not hand out.
    let bug_check = stop(&kernel, || free_raw(address.cast(), Some(TAG)));
    assert_eq!((bug_check.code, bug_check.parameters), (VERIFIER, [0x10, address as u64, 0, 0]));
}

#[test]
fn double_free_bug_checks_0xc4_0x13() {
    let kernel = Kernel::new();
    let nonpaged = kernel.run(|| {
        let nonpaged = block(sys::POOL_FLAG_NON_PAGED);
        // SAFETY: the first, legitimate free.
        unsafe { sys::ExFreePoolWithTag(nonpaged, TAG) };
        nonpaged
    });
    let bug_check = stop(&kernel, || free_raw(nonpaged, Some(TAG)));
    // Parameters: reserved, the pool header's address (16 bytes below the block on x64), its
    // contents: x64's POOL_HEADER with the block size (5 units of 16 bytes: header and 64 bytes), a
    // free block's pool type 0, and the tag.
    let header = (u64::from(TAG) << 32) | (5 << 16);
    assert_eq!((bug_check.code, bug_check.parameters), (VERIFIER, [0x13, 0, nonpaged as u64 - 16, header]));
}

#[test]
fn double_free_without_verifier_bug_checks_0xc2_0x07() {
    let kernel = Kernel::builder().driver_verifier(false).build();
    let nonpaged = kernel.run(|| {
        let nonpaged = block(sys::POOL_FLAG_NON_PAGED);
        // SAFETY: the first, legitimate free.
        unsafe { sys::ExFreePool(nonpaged) };
        nonpaged
    });
    let bug_check = stop(&kernel, || free_raw(nonpaged, None));
    let header = (u64::from(TAG) << 32) | (5 << 16); // as for 0xC4 / 0x13
    assert_eq!((bug_check.code, bug_check.parameters), (BAD_POOL_CALLER, [0x07, 0, header, nonpaged as u64]));
}

#[test]
fn must_succeed_pool_bug_checks_0xc2_0x9a() {
    let kernel = Kernel::new();
    // SAFETY: deliberately wrong, on the emulated kernel.
    let bug_check = stop(&kernel, || unsafe {
        let _ = sys::ExAllocatePoolWithTag(sys::NonPagedPoolMustSucceed, 8, TAG);
    });
    assert_eq!((bug_check.code, bug_check.parameters), (BAD_POOL_CALLER, [0x9A, 2, 8, u64::from(TAG)]));
}

#[test]
fn raising_to_a_lower_irql_bug_checks_0xc4_0x30_and_lowering_to_a_higher_one_0xc4_0x31() {
    let kernel = Kernel::new();
    let raise = stop(&kernel, || {
        at_irql(2, || {
            // SAFETY: deliberately wrong (a "raise" to a lower level), on the emulated kernel.
            let _ = unsafe { sys::KfRaiseIrql(1) };
        })
    });
    assert_eq!((raise.code, raise.parameters), (VERIFIER, [0x30, 2, 1, 0]));
    // SAFETY: deliberately wrong, on the emulated kernel.
    let lower = stop(&kernel, || unsafe { sys::KeLowerIrql(2) });
    assert_eq!((lower.code, lower.parameters), (VERIFIER, [0x31, 0, 2, 0]));
}

/// A port of Microsoft's `fail_driver_pool_leak` sample (Windows-Rust-driver-samples): the driver
/// allocates a 64-byte global buffer with `ExAllocatePool2(POOL_FLAG_NON_PAGED, 64, 's')` and never
/// frees it, not even in its unload routine.
mod fail_driver_pool_leak {
    use core::sync::atomic::{AtomicPtr, Ordering};

    use ntpool::sys::{self, PVOID};

    static GLOBAL_BUFFER: AtomicPtr<core::ffi::c_void> = AtomicPtr::new(core::ptr::null_mut());

    pub fn driver_entry() -> i32 {
        const LENGTH: usize = 64;
        // SAFETY: DriverEntry runs at PASSIVE_LEVEL.
        let buffer: PVOID = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_NON_PAGED, LENGTH as u64, 's' as u32) };
        GLOBAL_BUFFER.store(buffer, Ordering::Release);
        0
    }

    pub fn driver_unload() {
        // The defect: GLOBAL_BUFFER is not freed.
    }
}

#[test]
fn fail_driver_pool_leak_is_caught_at_unload_as_0xc4_0x62() {
    let kernel = Kernel::builder().driver_name("fail_driver_pool_leak.sys").build();
    kernel.run(|| {
        assert_eq!(fail_driver_pool_leak::driver_entry(), 0);
        fail_driver_pool_leak::driver_unload();
    });
    let bug_check = kernel.verify_unload().expect_err("the leak is reported");
    let name = kernel.driver_name().as_ptr() as u64;
    assert_eq!((bug_check.code, bug_check.parameters), (VERIFIER, [0x62, name, 0, 1]));
    let report = bug_check.report.as_str();
    assert!(report.contains("fail_driver_pool_leak.sys is unloading with 1 outstanding pool allocation"), "{report}");
    // The leaked block: tag 's' (shown `s...`), non-paged, 64 bytes, and where it was allocated.
    assert!(report.contains("s... Nonp        64 bytes"), "{report}");
    assert!(report.contains("tests/verifier.rs:"), "{report}");
    // The poolmon table follows.
    assert!(report.contains(" s... Nonp           1          0          1         64"), "{report}");
}

#[test]
fn special_pool_finds_an_overrun_into_the_slack_at_free_0xc1_0x24() {
    let kernel = Kernel::builder().special_pool(SpecialPoolAlignment::VerifyEnd).build();
    let block = kernel.run(|| {
        // SAFETY: an allocation of 20 bytes: 12 bytes of slack follow it up to the 16-byte boundary.
        let block = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_NON_PAGED, 20, TAG) }.cast::<u8>();
        // SAFETY: deliberately wrong: byte 20 is past the block (but inside its page).
        unsafe { block.wrapping_add(20).write(0xFF) };
        block
    });
    // SAFETY: frees the block; the emulated kernel checks its slack.
    let bug_check = stop(&kernel, || free_raw(block.cast(), Some(TAG)));
    assert_eq!(
        (bug_check.code, bug_check.parameters),
        (sys::SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION, [block as u64, block as u64 + 20, 0, 0x24])
    );
}

#[test]
fn special_pool_finds_an_underrun_into_the_page_at_free_0xc1_0x23() {
    let kernel = Kernel::builder().special_pool(SpecialPoolAlignment::VerifyEnd).build();
    let block = kernel.run(|| {
        // SAFETY: a block at the end of its page; the bytes before it belong to no one.
        let block = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_NON_PAGED, 32, TAG) }.cast::<u8>();
        // SAFETY: deliberately wrong: one byte before the block.
        unsafe { block.wrapping_sub(1).write(0) };
        block
    });
    // SAFETY: frees the block; the emulated kernel checks its page.
    let bug_check = stop(&kernel, || free_raw(block.cast(), Some(TAG)));
    assert_eq!(
        (bug_check.code, bug_check.parameters),
        (sys::SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION, [block as u64, block as u64 - 1, 0, 0x23])
    );
}

#[test]
fn special_pool_stops_an_overrun_into_the_guard_page_with_0xcd() {
    let bug_check = expect_stop_in_child("special_pool_stops_an_overrun_into_the_guard_page_with_0xcd", || {
        let kernel = Kernel::builder().special_pool(SpecialPoolAlignment::VerifyEnd).build();
        kernel.run(|| {
            let block = block(sys::POOL_FLAG_NON_PAGED).cast::<u8>();
            std::eprintln!("block at {block:p}");
            // SAFETY: deliberately wrong: 64 bytes is the end of the block and of its page.
            unsafe { block.wrapping_add(64).write_volatile(1) };
        });
    });
    assert_eq!(bug_check.code, sys::PAGE_FAULT_BEYOND_END_OF_ALLOCATION);
    assert_eq!(bug_check.parameters[0] % 4096, 0, "the first byte of the guard page: {bug_check}");
    assert_eq!(bug_check.parameters[1], 1, "a write");
    assert_ne!(bug_check.parameters[2], 0, "the instruction's address");
    assert_eq!(bug_check.parameters[3], 0);
}

#[test]
fn special_pool_verify_start_stops_an_underrun_with_0xcd() {
    let bug_check = expect_stop_in_child("special_pool_verify_start_stops_an_underrun_with_0xcd", || {
        let kernel = Kernel::builder().special_pool(SpecialPoolAlignment::VerifyStart).build();
        kernel.run(|| {
            let block = block(sys::POOL_FLAG_NON_PAGED).cast::<u8>();
            // SAFETY: deliberately wrong: the byte before the block is the guard page's last.
            unsafe { block.wrapping_sub(1).read_volatile() };
        });
    });
    assert_eq!(bug_check.code, sys::PAGE_FAULT_BEYOND_END_OF_ALLOCATION);
    assert_eq!(bug_check.parameters[0] % 4096, 4095);
    assert_eq!(bug_check.parameters[1], 0, "a read");
}

#[test]
fn special_pool_stops_a_use_after_free_with_0xcc() {
    let bug_check = expect_stop_in_child("special_pool_stops_a_use_after_free_with_0xcc", || {
        let kernel = Kernel::builder().special_pool(SpecialPoolAlignment::VerifyEnd).build();
        kernel.run(|| {
            // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
            let passive = unsafe { Passive::assume() };
            let b = NonPagedBox::<[u32; 4], Vrf>::try_new(&passive, [1, 2, 3, 4]).unwrap();
            let raw = b.as_ptr().cast::<u32>();
            drop(b);
            // SAFETY: deliberately wrong: the block was freed.
            unsafe { raw.wrapping_add(2).read_volatile() };
        });
    });
    assert_eq!(bug_check.code, sys::PAGE_FAULT_IN_FREED_SPECIAL_POOL);
    assert_eq!(bug_check.parameters[1], 0, "a read: {bug_check}");
    assert_ne!(bug_check.parameters[2], 0);
}

#[test]
fn force_irql_checking_stops_a_paged_read_at_dispatch_level_with_0xd1() {
    let bug_check = expect_stop_in_child("force_irql_checking_stops_a_paged_read_at_dispatch_level_with_0xd1", || {
        let kernel = Kernel::builder().force_irql_checking(true).build();
        kernel.run(|| {
            // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
            let mut passive = unsafe { Passive::assume() };
            let b = PagedBox::<u64, Vrf>::try_new(&passive, 7).unwrap();
            let raw = b.as_ptr();
            std::eprintln!("paged block at {raw:p}");
            passive.raise_to_dispatch(raw, |_, raw| {
                // SAFETY: deliberately wrong: paged memory read at DISPATCH_LEVEL through a raw pointer.
                unsafe { raw.read_volatile() }
            });
        });
    });
    assert_eq!(bug_check.code, sys::DRIVER_IRQL_NOT_LESS_OR_EQUAL);
    assert_eq!(bug_check.parameters[1], 2, "IRQL: {bug_check}");
    assert_eq!(bug_check.parameters[2], 0, "a read");
    assert_ne!(bug_check.parameters[3], 0, "the instruction's address");
}

#[test]
fn force_irql_checking_stops_a_paged_write_above_dispatch_level_with_0xd1() {
    let bug_check =
        expect_stop_in_child("force_irql_checking_stops_a_paged_write_above_dispatch_level_with_0xd1", || {
            let kernel = Kernel::builder().force_irql_checking(true).build();
            kernel.run(|| {
                // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
                let mut passive = unsafe { Passive::assume() };
                let mut b = PagedBox::<u64, Vrf>::try_new(&passive, 7).unwrap();
                let raw = b.get_mut(&passive) as *mut u64;
                passive.raise_above_dispatch(ntpool::HighIrql::CLOCK, raw, |_, raw| {
                    // SAFETY: deliberately wrong: paged memory written above DISPATCH_LEVEL.
                    unsafe { raw.write_volatile(8) };
                });
            });
        });
    assert_eq!(bug_check.code, sys::DRIVER_IRQL_NOT_LESS_OR_EQUAL);
    assert_eq!(&bug_check.parameters[1..3], &[u64::from(sys::CLOCK_LEVEL), 1], "IRQL and a write: {bug_check}");
}

#[test]
fn force_irql_checking_lets_paged_memory_back_in_below_dispatch_level() {
    let kernel = Kernel::builder().force_irql_checking(true).special_pool(SpecialPoolAlignment::VerifyEnd).build();
    kernel.run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let mut paged = PagedBox::<[u8], Vrf>::try_from_slice(&passive, b"settings").unwrap();
        let lock = ntpool::SpinLock::new(0u32);
        for round in 0..50u8 {
            // Each raise trims every pageable block; each access below pages it back in.
            lock.with(&mut passive, (), |_, count, ()| *count += 1);
            paged.get_mut(&passive)[0] = round;
            passive.raise_to_apc(|apc| assert_eq!(paged.get(apc)[0], round));
        }
        assert_eq!(lock.into_inner(), 50);
    });
    kernel.verify_unload().unwrap();
}

#[test]
fn the_safe_api_runs_clean_under_every_check() {
    let kernel = Kernel::builder().special_pool(SpecialPoolAlignment::VerifyEnd).force_irql_checking(true).build();
    kernel.run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let mut v = allocator_api2::vec::Vec::new_in(ntpool::PoolAllocator::<Vrf>::new(&passive));
        for i in 0..300u32 {
            v.push(i);
        }
        let slice = NonPagedBox::<[u16], Vrf>::try_from_fn(&passive, 100, |i| i as u16).unwrap();
        let paged = PagedBox::<[u16], Vrf>::try_from_slice(&passive, &slice).unwrap();
        let total = passive.raise_to_dispatch((&v, &*slice), |_, (v, slice)| {
            v.iter().sum::<u32>() + slice.iter().map(|&x| u32::from(x)).sum::<u32>()
        });
        assert_eq!(total, 44_850 + 4_950);
        assert_eq!(paged.get(&passive)[99], 99);
    });
    assert!(kernel.deferred_bug_checks().is_empty());
    kernel.verify_unload().unwrap();
}

#[test]
fn low_resources_simulation_fails_requests_at_the_rate_asked_and_repeats_with_the_seed() {
    let failures = |seed| {
        let kernel = Kernel::builder().low_resources_simulation(seed, 20).build();
        kernel.run(|| {
            // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
            let passive = unsafe { Passive::assume() };
            let results: Vec<bool> = (0..1000).map(|_| PagedBox::<u8, Vrf>::try_new(&passive, 1).is_err()).collect();
            results
        })
    };
    let first = failures(42);
    assert_eq!(first, failures(42), "the same seed fails the same requests");
    assert_ne!(first, failures(43));
    let failed = first.iter().filter(|&&f| f).count();
    assert!((150..250).contains(&failed), "{failed} of 1000 failed at 20%");
}

#[test]
fn tag_type_and_tag_value_agree() {
    assert_eq!(Vrf::TAG.to_ulong(), TAG);
}
