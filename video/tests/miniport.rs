//! The sample video miniport on ntpool's emulated kernel (Driver Verifier's checks on), with the
//! `videoprt.sys` test fixture as its video port driver: what it allocates in each VideoPort pool,
//! that nothing is left at unload, that every allocation failing in turn is handled, and the
//! `video.h` declarations it shares with the video port driver (ntpool's `sys`).

use std::sync::Mutex;

use ntpool::emulated::{Kernel, PoolKind, catch_bug_check};
use ntpool::sys;
use ntpool::sys::{ERROR_INVALID_FUNCTION, STATUS_BLOCK, VIDEO_HW_INITIALIZATION_DATA, VIDEO_REQUEST_PACKET};
use ntpool_video::host;
use ntpool_video::videoprt::TRUE;

/// The video port fixture serves one adapter per process: one load at a time.
static ONE_ADAPTER: Mutex<()> = Mutex::new(());

fn one_adapter() -> std::sync::MutexGuard<'static, ()> {
    ONE_ADAPTER.lock().unwrap_or_else(|p| p.into_inner())
}

/// `(tag, pool, allocations, frees)` of every row of the pool usage table.
fn usage(kernel: &Kernel) -> Vec<(String, PoolKind, u64, u64)> {
    kernel.pool_usage().rows.iter().map(|row| (row.tag.to_string(), row.pool, row.allocs, row.frees)).collect()
}

#[test]
fn miniport_allocates_in_all_four_videoport_pools_and_unloads_clean() {
    let _one = one_adapter();
    let kernel = Kernel::builder().driver_name("ntpool_video.sys").build();
    let (status, output, while_loaded, outstanding, unload_output) = kernel.run(|| {
        let (status, loaded, output) = host::load();
        let while_loaded = usage(&kernel);
        let outstanding = kernel.outstanding();
        let unload_output = loaded.expect("DriverEntry succeeded").unload();
        (status, output, while_loaded, outstanding, unload_output)
    });
    assert_eq!(status, 0, "{output:#?}");
    assert!(output.iter().any(|line| line == "ntpool-video: HwFindAdapter: EDID header valid"), "{output:#?}");
    assert!(output.iter().any(|line| line == "ntpool-video: HwFindAdapter: adapter found, 4 modes"), "{output:#?}");
    assert!(
        output
            .iter()
            .any(|line| line == "ntpool-video: HwInitialize: largest mode 1310720 pixels, 1 scanline, checksum 32640"),
        "{output:#?}"
    );
    assert!(unload_output.is_empty());

    // While loaded: every miniport block already freed; only the device extension the video port
    // driver allocated is live.
    assert_eq!(
        while_loaded,
        [
            ("DvEd".to_owned(), PoolKind::Paged, 1, 1), // VpPagedPoolCacheAligned
            ("DvFs".to_owned(), PoolKind::NonPagedExecute, 1, 1), // VpNonPagedPool
            ("DvMd".to_owned(), PoolKind::Paged, 1, 1), // VpPagedPool
            ("DvSl".to_owned(), PoolKind::NonPagedExecute, 1, 1), // VpNonPagedPoolCacheAligned
            ("VPdx".to_owned(), PoolKind::NonPaged, 1, 0), // the fixture's device extension
        ]
    );
    assert_eq!(outstanding.len(), 1);
    assert_eq!((outstanding[0].routine, outstanding[0].tag.to_string()), ("ExAllocatePoolWithTag", "VPdx".to_owned()));
    kernel.verify_unload().expect("nothing left after DriverUnload");
    assert!(kernel.deferred_bug_checks().is_empty());
}

#[test]
fn every_miniport_tag_starts_with_d_as_display_drivers_tags_do() {
    let _one = one_adapter();
    let kernel = Kernel::new();
    kernel.run(|| host::load().1.expect("loaded").unload());
    let miniport_tags: Vec<String> =
        usage(&kernel).into_iter().map(|(tag, ..)| tag).filter(|tag| tag != "VPdx").collect();
    assert_eq!(miniport_tags.len(), 4);
    assert!(miniport_tags.iter().all(|tag| tag.starts_with('D')), "{miniport_tags:?}");
}

#[test]
fn every_allocation_failing_in_turn_fails_the_load_and_leaks_nothing() {
    let _one = one_adapter();
    let clean = Kernel::new();
    clean.run(|| host::load().1.expect("loaded").unload());
    let calls = clean.allocation_calls();
    assert_eq!(calls, 5, "the extension and one block per VideoPort pool");
    for k in 1..=calls {
        let kernel = Kernel::builder().fail_allocation(k).build();
        let outcome = kernel.run(|| {
            catch_bug_check(|| {
                let (status, loaded, output) = host::load();
                assert!(loaded.is_none(), "allocation {k} failed, yet DriverEntry succeeded: {output:#?}");
                status
            })
        });
        let status = outcome.unwrap_or_else(|bug_check| panic!("allocation {k} failing: {bug_check}"));
        let expected = if k == 1 { videoprt::STATUS_INSUFFICIENT_RESOURCES } else { videoprt::STATUS_NO_SUCH_DEVICE };
        assert_eq!(status as i32, expected, "allocation {k}");
        kernel.verify_unload().unwrap_or_else(|leak| panic!("allocation {k} failing: {leak}"));
    }
}

#[test]
fn the_fixture_turns_down_initialization_data_it_cannot_use_and_leaks_nothing() {
    let _one = one_adapter();
    let kernel = Kernel::new();
    kernel.run(|| {
        // SAFETY: all-zero bytes are valid for this plain structure (null pointers, `None`).
        let mut data: VIDEO_HW_INITIALIZATION_DATA = unsafe { core::mem::zeroed() };
        let mut driver = [0u64; 32];
        let mut call = |data: &VIDEO_HW_INITIALIZATION_DATA| {
            // SAFETY: a driver object's worth of zeroed memory and a valid structure.
            unsafe {
                ntpool_video::videoprt::VideoPortInitialize(
                    driver.as_mut_ptr().cast(),
                    core::ptr::null_mut(),
                    data,
                    core::ptr::null_mut(),
                )
            }
        };
        data.HwInitDataSize = 100; // older than Windows 2000's structure
        assert_eq!(call(&data) as i32, videoprt::STATUS_REVISION_MISMATCH);
        data.HwInitDataSize = core::mem::size_of::<VIDEO_HW_INITIALIZATION_DATA>() as u32;
        assert_eq!(call(&data) as i32, videoprt::STATUS_INVALID_PARAMETER); // no callbacks
    });
    assert!(kernel.verify_unload().is_ok());
    assert_eq!(kernel.allocation_calls(), 0);
}

#[test]
fn hw_start_io_answers_every_request_with_error_invalid_function() {
    let mut status = STATUS_BLOCK { Status: 0, Information: 7 };
    let mut packet = VIDEO_REQUEST_PACKET {
        IoControlCode: 0x0023_0400,
        StatusBlock: &mut status,
        InputBuffer: core::ptr::null_mut(),
        InputBufferLength: 0,
        OutputBuffer: core::ptr::null_mut(),
        OutputBufferLength: 0,
    };
    // SAFETY: a valid packet and status block.
    let handled = unsafe { ntpool_video::HwStartIO(core::ptr::null_mut(), &mut packet) };
    assert_eq!((handled, status.Status, status.Information), (TRUE, ERROR_INVALID_FUNCTION as usize, 0));
}

#[test]
fn the_fixture_pool_routines_are_ex_allocate_pool_with_tag_and_ex_free_pool() {
    let kernel = Kernel::new();
    let mut extension = [0u64; 4];
    kernel.run(|| {
        let device = extension.as_mut_ptr().cast();
        let tag = u32::from_le_bytes(*b"DvTs");
        // SAFETY: at PASSIVE_LEVEL, freed below.
        let paged = unsafe { videoprt::VideoPortAllocatePool(device, sys::VpPagedPoolCacheAligned, 40, tag) };
        // SAFETY: as above.
        let non_paged = unsafe { videoprt::VideoPortAllocatePool(device, sys::VpNonPagedPool, 24, tag) };
        let mut blocks = kernel.outstanding();
        blocks.sort_by_key(|block| block.pool);
        let seen: Vec<(&str, PoolKind, usize)> = blocks.iter().map(|b| (b.routine, b.pool, b.size)).collect();
        assert_eq!(
            seen,
            [("ExAllocatePoolWithTag", PoolKind::Paged, 40), ("ExAllocatePoolWithTag", PoolKind::NonPagedExecute, 24)]
        );
        assert_eq!(paged as usize % 64, 0, "cache-aligned");
        // SAFETY: both came from VideoPortAllocatePool, freed once, at PASSIVE_LEVEL.
        unsafe { videoprt::VideoPortFreePool(device, paged) };
        // SAFETY: as above.
        unsafe { videoprt::VideoPortFreePool(device, non_paged) };
    });
    assert!(kernel.verify_unload().is_ok());
}

/// The declarations against mingw-w64's `<ddk/video.h>` (an independent source): the C compiler
/// checks the Rust layout with `_Static_assert`s.
#[test]
fn declarations_match_mingw_w64_video_h() {
    use core::mem::{offset_of, size_of};
    type Data = VIDEO_HW_INITIALIZATION_DATA;
    let checks = [
        ("sizeof(VIDEO_HW_INITIALIZATION_DATA)", size_of::<Data>()),
        ("offsetof(VIDEO_HW_INITIALIZATION_DATA, HwFindAdapter)", offset_of!(Data, HwFindAdapter)),
        ("offsetof(VIDEO_HW_INITIALIZATION_DATA, HwInitialize)", offset_of!(Data, HwInitialize)),
        ("offsetof(VIDEO_HW_INITIALIZATION_DATA, HwStartIO)", offset_of!(Data, HwStartIO)),
        ("offsetof(VIDEO_HW_INITIALIZATION_DATA, HwDeviceExtensionSize)", offset_of!(Data, HwDeviceExtensionSize)),
        ("offsetof(VIDEO_HW_INITIALIZATION_DATA, HwQueryInterface)", offset_of!(Data, HwQueryInterface)),
        ("offsetof(VIDEO_HW_INITIALIZATION_DATA, HwLegacyResourceCount)", offset_of!(Data, HwLegacyResourceCount)),
        ("offsetof(VIDEO_HW_INITIALIZATION_DATA, AllowEarlyEnumeration)", offset_of!(Data, AllowEarlyEnumeration)),
        ("offsetof(VIDEO_HW_INITIALIZATION_DATA, Reserved)", offset_of!(Data, Reserved)),
        ("SIZE_OF_W2K_VIDEO_HW_INITIALIZATION_DATA", sys::SIZE_OF_W2K_VIDEO_HW_INITIALIZATION_DATA as usize),
        ("sizeof(VIDEO_PORT_CONFIG_INFO)", size_of::<sys::VIDEO_PORT_CONFIG_INFO>()),
        ("sizeof(VIDEO_REQUEST_PACKET)", size_of::<VIDEO_REQUEST_PACKET>()),
        ("offsetof(VIDEO_REQUEST_PACKET, StatusBlock)", offset_of!(VIDEO_REQUEST_PACKET, StatusBlock)),
        ("offsetof(VIDEO_REQUEST_PACKET, OutputBufferLength)", offset_of!(VIDEO_REQUEST_PACKET, OutputBufferLength)),
        ("sizeof(STATUS_BLOCK)", size_of::<STATUS_BLOCK>()),
        ("VpNonPagedPool", sys::VpNonPagedPool as usize),
        ("VpPagedPool", sys::VpPagedPool as usize),
        ("VpNonPagedPoolCacheAligned", sys::VpNonPagedPoolCacheAligned as usize),
        ("VpPagedPoolCacheAligned", sys::VpPagedPoolCacheAligned as usize),
        ("NO_ERROR", sys::NO_ERROR as usize),
        ("ERROR_INVALID_FUNCTION", ERROR_INVALID_FUNCTION as usize),
        ("ERROR_NOT_ENOUGH_MEMORY", sys::ERROR_NOT_ENOUGH_MEMORY as usize),
        ("ERROR_DEV_NOT_EXIST", sys::ERROR_DEV_NOT_EXIST as usize),
    ];
    // video.h is for miniports, which include miniport.h (on ntdef.h), not the WDM headers; the
    // driver object, which only the port driver touches, is checked against ntddk.h on its own.
    let miniport = static_asserts(
        "#include <ntdef.h>\n#include <ddk/miniport.h>\n#include <ddk/video.h>\n#include <winerror.h>\n",
        &checks,
    );
    let wdm = static_asserts(
        "#include <ntddk.h>\n",
        &[
            ("offsetof(DRIVER_OBJECT, DriverUnload)", offset_of!(videoprt::DRIVER_OBJECT, DriverUnload)),
            ("sizeof(DRIVER_OBJECT)", size_of::<videoprt::DRIVER_OBJECT>()),
        ],
    );
    let ddk = "-I/usr/share/mingw-w64/include/ddk"; // where ntddk.h finds wdm.h
    for (name, source, flags) in [("miniport", miniport, &[][..]), ("wdm", wdm, &[ddk][..])] {
        let dir = std::env::temp_dir().join(format!("ntpool-video-declarations-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        let file = dir.join(format!("{name}.c"));
        std::fs::write(&file, source).expect("the C file");
        let output = std::process::Command::new("x86_64-w64-mingw32-gcc")
            .args(["-fsyntax-only", "-std=c11"])
            .args(flags)
            .arg(&file)
            .output()
            .expect("x86_64-w64-mingw32-gcc (Debian: gcc-mingw-w64-x86-64) is installed");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(output.status.success(), "mingw-w64 disagrees ({name}):\n{}", String::from_utf8_lossy(&output.stderr));
    }
}

/// A C file of `_Static_assert`s that each expression has the value Rust gives it.
fn static_asserts(includes: &str, checks: &[(&str, usize)]) -> String {
    let mut source = format!("{includes}#include <stddef.h>\n");
    for (expression, value) in checks {
        source.push_str(&format!("_Static_assert(({expression}) == {value}, \"{expression} is {value} in Rust\");\n"));
    }
    source
}
