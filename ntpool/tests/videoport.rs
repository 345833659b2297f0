//! VideoPort pool on the emulated kernel (the `videoport` feature): `VideoPortAllocatePool` blocks
//! tracked like every other pool block, left-over blocks reported at unload, `VideoPortFreePool` at
//! the wrong IRQL stopped with Driver Verifier's bug check, and `VpBox` keeping the rules.
#![cfg(feature = "videoport")]

use ntpool::emulated::{BugCheck, Kernel, PoolKind, catch_bug_check};
use ntpool::sys::{self, BAD_POOL_CALLER, DRIVER_VERIFIER_DETECTED_VIOLATION as VERIFIER, PVOID};
use ntpool::videoport::{
    HwDeviceExtension, VpBox, VpNonPagedPool, VpNonPagedPoolCacheAligned, VpPagedPool, VpPagedPoolCacheAligned,
};
use ntpool::{AllocError, Passive};

ntpool::pool_tag!(struct Modes = b"DvMd");
ntpool::pool_tag!(struct Frame = b"DvFr");

const TAG: u32 = u32::from_le_bytes(*b"DvMd");

/// A stand-in for the miniport's device extension: memory the video port driver would own.
struct Extension([u64; 8]);

impl Extension {
    fn new() -> Self {
        Extension([0; 8])
    }

    fn raw(&mut self) -> PVOID {
        self.0.as_mut_ptr().cast()
    }

    fn handle(&mut self) -> HwDeviceExtension {
        // SAFETY: the extension outlives every block of these tests (each test frees or leaks on
        // purpose before it goes away, and the emulated kernel never touches it).
        unsafe { HwDeviceExtension::from_raw(self.raw()) }.expect("not null")
    }
}

/// Runs `f` on `kernel` and returns the bug check it raised.
fn stop(kernel: &Kernel, f: impl FnOnce()) -> BugCheck {
    kernel.run(|| catch_bug_check(f)).expect_err("a bug check")
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

/// `VideoPortAllocatePool` of 64 bytes at PASSIVE_LEVEL.
fn vp_block(device: PVOID, pool: sys::VP_POOL_TYPE) -> PVOID {
    // SAFETY: a plain allocation at PASSIVE_LEVEL.
    let block = unsafe { sys::VideoPortAllocatePool(device, pool, 64, TAG) };
    assert!(!block.is_null());
    block
}

/// `VideoPortFreePool`, for a free that is meant to be wrong: the emulated kernel checks it and
/// never touches memory it did not hand out.
fn vp_free(device: PVOID, block: PVOID) {
    // SAFETY: as above.
    unsafe { sys::VideoPortFreePool(device, block) };
}

#[test]
fn videoport_free_of_paged_memory_at_dispatch_level_bug_checks_0xc4_0x11() {
    let kernel = Kernel::new();
    let mut extension = Extension::new();
    let device = extension.raw();
    for pool in [sys::VpPagedPool, sys::VpPagedPoolCacheAligned] {
        let paged = kernel.run(|| vp_block(device, pool));
        let bug_check = stop(&kernel, || at_irql(sys::DISPATCH_LEVEL, || vp_free(device, paged)));
        // ExFreePool's check, for the free videoprt.sys makes: IRQL, pool type, address.
        assert_eq!((bug_check.code, bug_check.parameters), (VERIFIER, [0x11, 2, pool as u64, paged as u64]));
        kernel.run(|| vp_free(device, paged)); // the block is still live: free it where it is legal
    }
    assert!(kernel.verify_unload().is_ok());
}

#[test]
fn videoport_free_of_non_paged_memory_is_legal_at_dispatch_level_and_bug_checks_0xc4_0x12_above() {
    let kernel = Kernel::new();
    let mut extension = Extension::new();
    let device = extension.raw();
    for pool in [sys::VpNonPagedPool, sys::VpNonPagedPoolCacheAligned] {
        let block = kernel.run(|| vp_block(device, pool));
        let bug_check = stop(&kernel, || at_irql(sys::CLOCK_LEVEL, || vp_free(device, block)));
        assert_eq!(
            (bug_check.code, bug_check.parameters),
            (VERIFIER, [0x12, u64::from(sys::CLOCK_LEVEL), pool as u64, block as u64])
        );
        kernel.run(|| at_irql(sys::DISPATCH_LEVEL, || vp_free(device, block)));
    }
    assert!(kernel.verify_unload().is_ok());
}

#[test]
fn videoport_free_at_a_bad_irql_without_verifier_bug_checks_0xc2_0x09() {
    let kernel = Kernel::builder().driver_verifier(false).build();
    let mut extension = Extension::new();
    let device = extension.raw();
    let paged = kernel.run(|| vp_block(device, sys::VpPagedPool));
    let bug_check = stop(&kernel, || at_irql(sys::DISPATCH_LEVEL, || vp_free(device, paged)));
    assert_eq!(
        (bug_check.code, bug_check.parameters),
        (BAD_POOL_CALLER, [0x09, 2, sys::VpPagedPool as u64, paged as u64])
    );
}

#[test]
fn videoport_paged_allocation_at_dispatch_level_bug_checks_0xc4_0x01() {
    let kernel = Kernel::new();
    let mut extension = Extension::new();
    let device = extension.raw();
    let bug_check = stop(&kernel, || {
        at_irql(sys::DISPATCH_LEVEL, || {
            // SAFETY: a deliberate violation, reported by the emulated kernel.
            let _ = unsafe { sys::VideoPortAllocatePool(device, sys::VpPagedPool, 40, TAG) };
        })
    });
    assert_eq!((bug_check.code, bug_check.parameters), (VERIFIER, [0x01, 2, sys::VpPagedPool as u64, 40]));
}

#[test]
fn videoport_double_free_bug_checks_0xc4_0x13() {
    let kernel = Kernel::new();
    let mut extension = Extension::new();
    let device = extension.raw();
    let block = kernel.run(|| vp_block(device, sys::VpNonPagedPool));
    kernel.run(|| vp_free(device, block));
    let bug_check = stop(&kernel, || vp_free(device, block));
    assert_eq!((bug_check.code, bug_check.parameters[0]), (VERIFIER, 0x13));
}

#[test]
fn videoport_blocks_are_tracked_with_tag_pool_size_and_caller_and_leaks_reported_at_unload() {
    let kernel = Kernel::builder().driver_name("video.sys").build();
    let mut extension = Extension::new();
    let device = extension.raw();
    let (paged, line) = kernel.run(|| {
        // SAFETY: a plain allocation at PASSIVE_LEVEL, deliberately left allocated.
        let paged = unsafe { sys::VideoPortAllocatePool(device, sys::VpPagedPool, 48, TAG) };
        (paged, line!() - 1)
    });
    let non_paged = kernel.run(|| vp_block(device, sys::VpNonPagedPool));
    let mut leaks = kernel.outstanding();
    leaks.sort_by_key(|leak| leak.pool);
    assert_eq!(leaks.len(), 2);
    assert_eq!(
        (leaks[0].address, leaks[0].tag.to_string().as_str(), leaks[0].pool, leaks[0].size),
        (paged as usize, "DvMd", PoolKind::Paged, 48)
    );
    assert_eq!((leaks[0].routine, leaks[0].file, leaks[0].line), ("VideoPortAllocatePool", file!(), line));
    // VpNonPagedPool is NonPagedPool: executable non-paged memory.
    assert_eq!((leaks[1].address, leaks[1].pool), (non_paged as usize, PoolKind::NonPagedExecute));

    let bug_check = kernel.verify_unload().unwrap_err();
    assert_eq!((bug_check.code, bug_check.parameters[0], bug_check.parameters[3]), (VERIFIER, 0x62, 2));
    assert!(bug_check.report.contains("allocated by VideoPortAllocatePool"), "{}", bug_check.report);
    kernel.run(|| {
        vp_free(device, paged);
        vp_free(device, non_paged);
    });
    assert!(kernel.verify_unload().is_ok());
}

#[test]
fn vp_box_frees_with_video_port_free_pool_in_each_of_the_four_pools() {
    let kernel = Kernel::new();
    let mut extension = Extension::new();
    let device = extension.handle();
    kernel.run(|| {
        // SAFETY: the test thread runs at PASSIVE_LEVEL and holds no other token.
        let passive = unsafe { Passive::assume() };
        let a = VpBox::<[u32; 4], Modes, VpPagedPool>::try_new(&passive, device, [1, 2, 3, 4]).unwrap();
        let b = VpBox::<[u8; 100], Modes, VpPagedPoolCacheAligned>::try_new(&passive, device, [7; 100]).unwrap();
        let c = VpBox::<u64, Frame, VpNonPagedPool>::try_new(&passive, device, 9).unwrap();
        let d = VpBox::<[u8], Frame, VpNonPagedPoolCacheAligned>::try_from_slice(&passive, device, b"frame").unwrap();
        assert_eq!((a.get(&passive)[3], b.get(&passive)[99], *c, &*d), (4, 7, 9, &b"frame"[..]));
        assert_eq!((b.as_ptr() as usize % 64, d.as_ptr().cast::<u8>() as usize % 64), (0, 0)); // cache-aligned
        assert_eq!(a.device_extension(), device);
        let outstanding = kernel.outstanding();
        assert_eq!(outstanding.len(), 4);
        assert!(outstanding.iter().all(|block| block.routine == "VideoPortAllocatePool"));
    });
    assert!(kernel.verify_unload().is_ok());
    let rows = kernel.pool_usage().rows;
    let summary: Vec<(String, PoolKind, u64, u64)> =
        rows.iter().map(|row| (row.tag.to_string(), row.pool, row.allocs, row.frees)).collect();
    assert_eq!(
        summary,
        [("DvFr".to_owned(), PoolKind::NonPagedExecute, 2, 2), ("DvMd".to_owned(), PoolKind::Paged, 2, 2),]
    );
}

#[test]
fn vp_box_is_zeroed_although_video_port_allocate_pool_does_not_zero() {
    let kernel = Kernel::new();
    let mut extension = Extension::new();
    let device = extension.handle();
    let device_raw = device.as_ptr();
    kernel.run(|| {
        // The emulated kernel fills what it does not zero, as uninitialized pool would hold garbage.
        // SAFETY: a plain allocation at PASSIVE_LEVEL, freed below.
        let raw = unsafe { sys::VideoPortAllocatePool(device_raw, sys::VpNonPagedPool, 16, TAG) };
        // SAFETY: 16 bytes the emulated kernel wrote (its fill pattern).
        assert_ne!(unsafe { raw.cast::<[u8; 16]>().read() }, [0; 16]);
        vp_free(device_raw, raw);

        // SAFETY: the test thread runs at PASSIVE_LEVEL and holds no other token.
        let passive = unsafe { Passive::assume() };
        let zeroed = VpBox::<[u8; 16], Modes, VpNonPagedPool>::try_new_zeroed(&passive, device).unwrap();
        // SAFETY: all-zero bytes are a valid array of bytes.
        assert_eq!(*unsafe { zeroed.assume_init() }, [0; 16]);
        let slice = VpBox::<[u32], Modes, VpPagedPool>::try_new_zeroed_slice(&passive, device, 5).unwrap();
        // SAFETY: all-zero bytes are valid u32s.
        assert_eq!(unsafe { slice.assume_init() }.get(&passive), &[0; 5]);
    });
    assert!(kernel.verify_unload().is_ok());
}

#[test]
fn vp_box_of_non_paged_pool_is_allocated_used_and_freed_at_dispatch_level() {
    let kernel = Kernel::new();
    let mut extension = Extension::new();
    let device = extension.handle();
    kernel.run(|| {
        // SAFETY: the test thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let total = passive.raise_to_dispatch(device, |dispatch, device| {
            let a = VpBox::<u32, Frame, VpNonPagedPool>::try_new(dispatch, device, 20).unwrap();
            let b = VpBox::<u32, Frame, VpNonPagedPoolCacheAligned>::try_new(dispatch, device, 22).unwrap();
            *a + *b
        }); // both dropped at DISPATCH_LEVEL: legal for VpNonPaged*
        assert_eq!(total, 42);
    });
    assert!(kernel.verify_unload().is_ok());
    assert_eq!(kernel.pool_usage().rows[0].frees, 2);
}

#[test]
fn vp_box_paged_drop_at_dispatch_level_is_stopped_by_the_backstop_with_0xc2_0x09() {
    // The types keep a paged VpBox out of DISPATCH_LEVEL regions (tests/ui/fail); only a raise
    // behind the crate's back gets one dropped there, and the backstop stops it before the free.
    let kernel = Kernel::new();
    let mut extension = Extension::new();
    let device = extension.handle();
    let (address, bug_check) = kernel.run(|| {
        // SAFETY: the test thread runs at PASSIVE_LEVEL and holds no other token.
        let passive = unsafe { Passive::assume() };
        let paged = VpBox::<u32, Modes, VpPagedPoolCacheAligned>::try_new(&passive, device, 1).unwrap();
        let address = paged.as_ptr() as u64;
        let bug_check = catch_bug_check(|| at_irql(sys::DISPATCH_LEVEL, || drop(paged))).unwrap_err();
        (address, bug_check)
    });
    assert_eq!(
        (bug_check.code, bug_check.parameters),
        (BAD_POOL_CALLER, [0x09, 2, sys::VpPagedPoolCacheAligned as u64, address])
    );
    assert_eq!(kernel.outstanding().len(), 1, "stopped before VideoPortFreePool");
}

#[test]
fn vp_box_allocation_failure_is_an_error_and_leaks_nothing() {
    let mut extension = Extension::new();
    let device = extension.handle();
    for k in 1..=2 {
        let kernel = Kernel::builder().fail_allocation(k).build();
        let outcome = kernel.run(|| {
            // SAFETY: the test thread runs at PASSIVE_LEVEL and holds no other token.
            let passive = unsafe { Passive::assume() };
            let first = VpBox::<u32, Modes, VpPagedPool>::try_new(&passive, device, 1)?;
            let second = VpBox::<u32, Frame, VpNonPagedPool>::try_new(&passive, device, 2)?;
            Ok::<u32, AllocError>(*first.get(&passive) + *second)
        });
        assert_eq!(outcome, Err(AllocError), "allocation {k} failing");
        assert!(kernel.verify_unload().is_ok());
    }
}

#[test]
fn zero_sized_vp_box_allocates_nothing() {
    let kernel = Kernel::new();
    let mut extension = Extension::new();
    let device = extension.handle();
    kernel.run(|| {
        // SAFETY: the test thread runs at PASSIVE_LEVEL and holds no other token.
        let passive = unsafe { Passive::assume() };
        let unit = VpBox::<(), Modes, VpPagedPool>::try_new(&passive, device, ()).unwrap();
        let empty = VpBox::<[u8], Modes, VpNonPagedPool>::try_from_slice(&passive, device, &[]).unwrap();
        assert!(kernel.outstanding().is_empty());
        drop((unit, empty));
    });
    assert_eq!(kernel.allocation_calls(), 0);
}
