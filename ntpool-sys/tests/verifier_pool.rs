//! Driver Verifier's pool checks on the emulated kernel, and the kernel's own without it: each row of
//! the check table (`ntpool_sys::emulated::checks`) triggered through the raw kernel interface, with
//! its code and all four parameters.

mod common;

use common::{NX, PAGED, TAG, assert_row, at_irql, block, in_function, stop};
use ntpool_sys::emulated::{Kernel, checks, in_dpc_routine, in_process};
use ntpool_sys::{self as sys, PVOID};

fn plain() -> Kernel {
    Kernel::builder().driver_verifier(false).build()
}

/// The x64 `POOL_HEADER`'s first 8 bytes of a freed block: block size in 16-byte units (header
/// included) in bits 16-23, pool type 0, the tag above.
fn freed_header(size: u64) -> u64 {
    (u64::from(TAG) << 32) | ((size + 16).div_ceil(16) << 16)
}

fn free(block: PVOID, tag: Option<u32>) {
    match tag {
        // SAFETY: a free the emulated kernel checks; it never touches memory it did not hand out.
        Some(tag) => unsafe { sys::ExFreePoolWithTag(block, tag) },
        // SAFETY: as above.
        None => unsafe { sys::ExFreePool(block) },
    }
}

#[test]
fn zero_byte_allocation() {
    let bug_check = stop(&Kernel::new(), || block(sys::POOL_FLAG_NON_PAGED, 0));
    assert_row(&bug_check, &checks::ZERO_BYTE_ALLOCATION, [0x00, 0, NX, 0]);
    let bug_check = stop(&plain(), || block(sys::POOL_FLAG_PAGED, 0));
    assert_row(&bug_check, &checks::BAD_POOL_CALLER_ZERO_BYTES, [0x00, 0, PAGED, TAG.into()]);
}

#[test]
fn allocation_at_a_bad_irql() {
    let bug_check = stop(&Kernel::new(), || at_irql(2, || block(sys::POOL_FLAG_PAGED, 40)));
    assert_row(&bug_check, &checks::PAGED_ALLOCATION_ABOVE_APC, [0x01, 2, PAGED, 40]);
    let bug_check = stop(&Kernel::new(), || at_irql(sys::CLOCK_LEVEL, || block(sys::POOL_FLAG_NON_PAGED, 40)));
    assert_row(&bug_check, &checks::NON_PAGED_ALLOCATION_ABOVE_DISPATCH, [0x02, sys::CLOCK_LEVEL.into(), NX, 40]);
    let bug_check = stop(&plain(), || at_irql(2, || block(sys::POOL_FLAG_PAGED, 40)));
    assert_row(&bug_check, &checks::BAD_POOL_CALLER_ALLOCATION_IRQL, [0x08, 2, PAGED, 40]);
}

#[test]
fn free_at_a_bad_irql() {
    let kernel = Kernel::new();
    let (paged, non_paged) = kernel.run(|| (block(sys::POOL_FLAG_PAGED, 8), block(sys::POOL_FLAG_NON_PAGED, 8)));
    let bug_check = stop(&kernel, || at_irql(2, || free(paged, Some(TAG))));
    assert_row(&bug_check, &checks::PAGED_FREE_ABOVE_APC, [0x11, 2, PAGED, paged as u64]);
    let bug_check = stop(&kernel, || at_irql(sys::HIGH_LEVEL, || free(non_paged, None)));
    assert_row(
        &bug_check,
        &checks::NON_PAGED_FREE_ABOVE_DISPATCH,
        [0x12, sys::HIGH_LEVEL.into(), NX, non_paged as u64],
    );
    let kernel = plain();
    let paged = kernel.run(|| block(sys::POOL_FLAG_PAGED, 8));
    let bug_check = stop(&kernel, || at_irql(2, || free(paged, None)));
    assert_row(&bug_check, &checks::BAD_POOL_CALLER_FREE_IRQL, [0x09, 2, PAGED, paged as u64]);
}

#[test]
fn free_of_an_address_no_allocation_returned() {
    let mut local = [0u8; 32];
    let address = local.as_mut_ptr();
    let bug_check = stop(&Kernel::new(), || free(address.cast(), Some(TAG)));
    assert_row(&bug_check, &checks::FREE_OF_UNKNOWN_ADDRESS, [0x10, address as u64, 0, 0]);
    let bug_check = stop(&plain(), || free(address.cast(), None));
    assert_row(&bug_check, &checks::BAD_POOL_CALLER_INVALID_ADDRESS, [0x99, address as u64, 0, 0]);
}

#[test]
fn free_inside_a_block_is_0xc4_0x16_not_0x10() {
    let kernel = Kernel::new();
    let live = kernel.run(|| block(sys::POOL_FLAG_NON_PAGED, 64));
    let interior = live.cast::<u8>().wrapping_add(16);
    let bug_check = stop(&kernel, || free(interior.cast(), Some(TAG)));
    assert_row(&bug_check, &checks::FREE_AT_INTERIOR_ADDRESS, [0x16, 0, interior as u64, 0]);
    kernel.run(|| free(live, Some(TAG)));
}

#[test]
fn double_free_reports_the_pool_header_and_its_contents() {
    let kernel = Kernel::new();
    let freed = kernel.run(|| {
        let b = block(sys::POOL_FLAG_NON_PAGED, 40);
        free(b, Some(TAG));
        b
    });
    let bug_check = stop(&kernel, || free(freed, Some(TAG)));
    assert_row(&bug_check, &checks::DOUBLE_FREE, [0x13, 0, freed as u64 - 16, freed_header(40)]);
    let kernel = plain();
    let freed = kernel.run(|| {
        let b = block(sys::POOL_FLAG_NON_PAGED, 40);
        free(b, None);
        b
    });
    let bug_check = stop(&kernel, || free(freed, None));
    assert_row(&bug_check, &checks::BAD_POOL_CALLER_DOUBLE_FREE, [0x07, 0, freed_header(40), freed as u64]);
}

#[test]
fn wrong_tag_on_free() {
    let kernel = Kernel::new();
    let live = kernel.run(|| block(sys::POOL_FLAG_NON_PAGED, 8));
    let other = u32::from_le_bytes(*b"Othr");
    let bug_check = stop(&kernel, || free(live, Some(other)));
    assert_row(&bug_check, &checks::WRONG_TAG_ON_FREE, [0x0A, live as u64, TAG.into(), other.into()]);
}

#[test]
fn must_succeed_pool_reports_its_tag_and_type_6_returns_null() {
    // SAFETY: a deliberate violation, on the emulated kernel.
    let bug_check =
        stop(&Kernel::new(), || unsafe { sys::ExAllocatePoolWithTag(sys::NonPagedPoolMustSucceed, 8, TAG) });
    assert_row(&bug_check, &checks::MUST_SUCCEED_POOL, [0x9A, 2, 8, TAG.into()]);
    // SAFETY: NonPagedPoolCacheAlignedMustS (6) is refused with NULL.
    assert!(Kernel::new().run(|| unsafe { sys::ExAllocatePoolWithTag(6, 8, TAG) }).is_null());
}

/// A call into the kernel from a function of its own, so that the caller's address the bug check
/// reports can be checked to lie in it.
#[inline(never)]
fn allocate_from_here(flags: sys::POOL_FLAGS, tag: u32) -> PVOID {
    // SAFETY: the emulated kernel checks the request.
    unsafe { sys::ExAllocatePool2(flags, 24, tag) }
}

#[inline(never)]
fn allocate_legacy_from_here(pool_type: sys::POOL_TYPE, tag: u32) -> PVOID {
    // SAFETY: as above.
    unsafe { sys::ExAllocatePoolWithTag(pool_type, 24, tag) }
}

const FUNCTION_LEN: u64 = 2048;

#[test]
fn tag_zero_reports_the_callers_address() {
    let bug_check = stop(&Kernel::new(), || allocate_from_here(sys::POOL_FLAG_NON_PAGED, 0));
    let caller = bug_check.parameters[3];
    assert!(in_function(caller, allocate_from_here as *const (), FUNCTION_LEN), "{bug_check}");
    assert_row(&bug_check, &checks::TAG_ZERO, [0x9B, NX, 24, caller]);
    // The same call site, the same address.
    assert_eq!(stop(&Kernel::new(), || allocate_from_here(sys::POOL_FLAG_NON_PAGED, 0)).parameters[3], caller);
    // Without Driver Verifier, ExAllocatePool2 refuses tag 0 with NULL.
    assert!(plain().run(|| allocate_from_here(sys::POOL_FLAG_NON_PAGED, 0)).is_null());
}

#[test]
fn tag_without_a_letter_or_digit_reports_the_callers_address() {
    let dashes = u32::from_le_bytes(*b"----");
    let bug_check = stop(&Kernel::new(), || allocate_legacy_from_here(sys::NonPagedPoolNx, dashes));
    let caller = bug_check.parameters[3];
    assert!(in_function(caller, allocate_legacy_from_here as *const (), FUNCTION_LEN), "{bug_check}");
    assert_row(&bug_check, &checks::TAG_WITHOUT_LETTER_OR_DIGIT, [0x9D, dashes.into(), NX, caller]);
}

#[test]
fn executable_pool_under_code_integrity_checking() {
    let kernel = Kernel::builder().code_integrity(true).build();
    let bug_check = stop(&kernel, || allocate_from_here(sys::POOL_FLAG_NON_PAGED_EXECUTE, TAG));
    let caller = bug_check.parameters[1];
    assert!(in_function(caller, allocate_from_here as *const (), FUNCTION_LEN), "{bug_check}");
    assert_row(&bug_check, &checks::EXECUTABLE_POOL, [0x2000, caller, sys::NonPagedPoolExecute as u64, TAG.into()]);
    let bug_check = stop(&kernel, || allocate_legacy_from_here(sys::NonPagedPoolCacheAligned, TAG));
    let caller = bug_check.parameters[1];
    assert_row(&bug_check, &checks::EXECUTABLE_POOL, [0x2000, caller, 4, TAG.into()]);
    // No-execute pool is what code integrity wants; without the option executable pool is allowed.
    kernel.run(|| free(allocate_from_here(sys::POOL_FLAG_NON_PAGED, TAG), Some(TAG)));
    Kernel::new().run(|| free(allocate_legacy_from_here(sys::NonPagedPool, TAG), Some(TAG)));
}

#[test]
fn an_overrun_of_an_ordinary_block_is_found_at_free_under_pool_tracking() {
    for (size, past) in [(20usize, 0usize), (32, 0), (32, 15), (100, 11)] {
        // Heap blocks (under special pool these bytes are its slack or its guard page).
        let kernel = Kernel::builder().no_special_pool().build();
        let (live, beyond) = kernel.run(|| {
            let live = block(sys::POOL_FLAG_NON_PAGED, size as u64).cast::<u8>();
            let beyond = live.wrapping_add(size + past);
            // SAFETY: deliberately wrong, but inside the host block: past the end of the block.
            unsafe { beyond.write(0) };
            (live, beyond)
        });
        let bug_check = stop(&kernel, || free(live.cast(), Some(TAG)));
        assert_row(&bug_check, &checks::OVERRUN_FOUND_AT_FREE, [0x51, live as u64, beyond as u64, size as u64]);
    }
    // Without pool tracking the free goes through.
    let kernel = Kernel::builder().pool_tracking(false).no_special_pool().build();
    kernel.run(|| {
        let live = block(sys::POOL_FLAG_PAGED, 20).cast::<u8>();
        // SAFETY: as above.
        unsafe { live.wrapping_add(20).write(0) };
        free(live.cast(), Some(TAG));
    });
}

#[test]
fn blocks_left_at_unload_under_pool_tracking() {
    let kernel = Kernel::builder().driver_name("leak.sys").build();
    kernel.run(|| {
        block(sys::POOL_FLAG_PAGED, 8);
        block(sys::POOL_FLAG_NON_PAGED, 8);
    });
    let bug_check = kernel.verify_unload().unwrap_err();
    let name = kernel.driver_name().as_ptr() as u64;
    assert_row(&bug_check, &checks::LEAKED_AT_UNLOAD, [0x62, name, 0, 2]);
    // Without pool tracking (or Driver Verifier) nothing looks for leaks at unload.
    for kernel in [Kernel::builder().pool_tracking(false).build(), plain()] {
        kernel.run(|| block(sys::POOL_FLAG_PAGED, 8));
        assert!(kernel.verify_unload().is_ok());
        assert_eq!(kernel.outstanding().len(), 1);
    }
}

#[test]
fn quota_charged_to_the_idle_process_or_from_a_dpc_routine() {
    let flags = sys::POOL_FLAG_NON_PAGED | sys::POOL_FLAG_USE_QUOTA;
    let bug_check = stop(&Kernel::new(), || in_process(0, || block(flags, 8)));
    assert_row(&bug_check, &checks::QUOTA_CHARGED_TO_IDLE, [0x10A, 0, 0, 0]);
    let bug_check = stop(&Kernel::new(), || in_dpc_routine(|| block(flags, 8)));
    assert_row(&bug_check, &checks::QUOTA_CHARGED_FROM_DPC, [0x10B, 0, 0, 0]);
    let pool_type = sys::NonPagedPoolNx | sys::POOL_QUOTA_FAIL_INSTEAD_OF_RAISE;
    // SAFETY: as above, through the legacy routine.
    let bug_check =
        stop(&Kernel::new(), || in_dpc_routine(|| unsafe { sys::ExAllocatePoolWithQuotaTag(pool_type, 8, TAG) }));
    assert_row(&bug_check, &checks::QUOTA_CHARGED_FROM_DPC, [0x10B, 0, 0, 0]);
    // Without quota, a DPC routine may allocate non-paged pool.
    Kernel::new().run(|| in_dpc_routine(|| free(block(sys::POOL_FLAG_NON_PAGED, 8), Some(TAG))));
}

#[inline(never)]
fn quota_entry() -> usize {
    // The emulated routine's entry: the address the unhandled exception reports.
    let bug_check = stop(&Kernel::builder().process_quota(10).build(), || {
        // SAFETY: a request the emulated kernel refuses by raising.
        unsafe { sys::ExAllocatePoolWithQuotaTag(sys::PagedPool, 64, TAG) }
    });
    bug_check.parameters[1] as usize
}

#[test]
fn the_raising_quota_routine_is_an_unhandled_exception() {
    let kernel = Kernel::builder().process_quota(10).build();
    // SAFETY: a request the emulated kernel refuses by raising (no POOL_QUOTA_FAIL_INSTEAD_OF_RAISE).
    let bug_check = stop(&kernel, || unsafe { sys::ExAllocatePoolWithQuotaTag(sys::PagedPool, 64, TAG) });
    let at = bug_check.parameters[1];
    assert_ne!(at, 0);
    assert_eq!(at as usize, quota_entry(), "the same routine raises every time");
    assert_row(&bug_check, &checks::QUOTA_EXCEPTION_NOT_HANDLED, [0xC000_0044, at, 0, 0]);
    let kernel = Kernel::builder().fail_allocation(1).build();
    // SAFETY: within quota, but the pool fails it.
    let bug_check = stop(&kernel, || unsafe { sys::ExAllocatePoolWithQuotaTag(sys::PagedPool, 64, TAG) });
    assert_row(&bug_check, &checks::QUOTA_EXCEPTION_NOT_HANDLED, [0xC000_009A, at, 0, 0]);
}

#[test]
fn the_raising_pool_type_is_an_unhandled_exception_and_the_legacy_fallback_uses_it() {
    let kernel = Kernel::builder().fail_allocation(1).build();
    let pool_type = sys::NonPagedPoolNx | sys::POOL_RAISE_IF_ALLOCATION_FAILURE;
    // SAFETY: a request the emulated kernel fails, with the raising pool type.
    let bug_check = stop(&kernel, || unsafe { sys::ExAllocatePoolWithTag(pool_type, 8, TAG) });
    let at = bug_check.parameters[1];
    assert_ne!(at, 0);
    assert_row(&bug_check, &checks::LEGACY_RAISE_NOT_HANDLED, [0xC000_009A, at, 0, 0]);
    // Where ExAllocatePool2 is not exported, POOL_FLAG_RAISE_ON_FAILURE takes the same raising form.
    let kernel = Kernel::builder().ex_allocate_pool2(false).fail_allocation(1).build();
    let flags = sys::POOL_FLAG_NON_PAGED | sys::POOL_FLAG_RAISE_ON_FAILURE;
    let bug_check = stop(&kernel, || block(flags, 8));
    assert_row(&bug_check, &checks::LEGACY_RAISE_NOT_HANDLED, [0xC000_009A, at, 0, 0]);
    // And without a failure, the raising form allocates as the other does.
    let kernel = Kernel::builder().ex_allocate_pool2(false).build();
    kernel.run(|| {
        let allocated = block(flags, 8);
        // SAFETY: allocated above with TAG.
        unsafe { sys::ExFreePoolWithTag(allocated, TAG) };
    });
    assert!(kernel.verify_unload().is_ok());
}

#[test]
fn raise_on_failure_raises_instead_of_returning_null() {
    let flags = sys::POOL_FLAG_NON_PAGED | sys::POOL_FLAG_RAISE_ON_FAILURE;
    let kernel = Kernel::builder().fail_allocation(1).build();
    let bug_check = stop(&kernel, || block(flags, 8));
    let at = bug_check.parameters[1];
    assert_ne!(at, 0);
    assert_row(&bug_check, &checks::RAISE_ON_FAILURE_NOT_HANDLED, [0xC000_009A, at, 0, 0]);
    // Tag 0 fails ExAllocatePool2 without Driver Verifier: with the flag, that raises too.
    // SAFETY: as above.
    let bug_check = stop(&plain(), || unsafe { sys::ExAllocatePool2(flags, 8, 0) });
    assert_row(&bug_check, &checks::RAISE_ON_FAILURE_NOT_HANDLED, [0xC000_009A, at, 0, 0]);
    // A request that succeeds does not raise.
    Kernel::new().run(|| free(block(flags, 8), Some(TAG)));
}
