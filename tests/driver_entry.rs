//! The sample driver's DriverEntry and DriverUnload on the emulated kernel, with Driver Verifier's
//! checks on.

mod common;

use common::{driver_kernel, one_driver};
use ntpool::emulated::{Kernel, PoolKind, catch_bug_check};
use ntpool::sys::{APC_LEVEL, DISPATCH_LEVEL};
use ntpool_driver::host;
use ntpool_driver::kernel::{STATUS_INSUFFICIENT_RESOURCES, STATUS_SUCCESS};

#[test]
fn driver_entry_self_test_passes_and_unload_frees_everything() {
    let _one = one_driver();
    let kernel = driver_kernel().build();
    kernel.run(|| {
        let loaded = host::load();
        assert_eq!(loaded.status, STATUS_SUCCESS, "{:#?}", loaded.output);
        assert!(loaded.output.iter().any(|l| l.contains("self-test passed")), "{:#?}", loaded.output);
        // While the driver is loaded: the registry path copy, the driver state, the device's
        // allocation table (its fast mutex and its slots), its log's lookaside list and the
        // context of the request it sends to itself (`NpBg`).
        let live = kernel.outstanding();
        let mut tags: Vec<String> = live.iter().map(|a| a.tag.to_string()).collect();
        tags.sort();
        assert_eq!(tags, ["NpBg", "NpLg", "NpRg", "NpSt", "NpTb", "NpTb"], "{live:#?}");
        let path = live.iter().find(|a| a.tag.to_string() == "NpRg").expect("registry path block");
        assert_eq!((path.pool, path.size), (PoolKind::Paged, host::REGISTRY_PATH.len() * 2));
        let output = loaded.driver.expect("loaded").unload();
        assert!(output.iter().any(|l| l.contains("DriverUnload: freed")), "{output:#?}");
    });
    kernel.verify_unload().expect("no leak after unload");
    let usage = kernel.pool_usage();
    for row in &usage.rows {
        assert_eq!((row.diff(), row.bytes), (0, 0), "{usage}");
    }
    let tags: Vec<String> = usage.rows.iter().map(|r| r.tag.to_string()).collect();
    for tag in ["NpRg", "NpSt", "NpT1", "NpT2"] {
        assert!(tags.iter().any(|t| t == tag), "{tag} missing from\n{usage}");
    }
}

#[test]
fn driver_entry_frees_the_device_interface_list_with_ex_free_pool() {
    let _one = one_driver();
    let kernel = Kernel::new();
    kernel.run(|| {
        let loaded = host::load();
        assert!(loaded.output.iter().any(|l| l.contains("DriverEntry: 1 disk interface(s)")), "{:#?}", loaded.output);
        // The kernel's list (tag `PnpD`) was allocated once and freed once, while DriverEntry ran.
        let row = kernel.pool_usage().rows.into_iter().find(|r| r.tag.to_string() == "PnpD").expect("the list");
        assert_eq!((row.pool, row.allocs, row.frees), (PoolKind::Paged, 1, 1));
        loaded.driver.expect("loaded").unload();
    });
    kernel.verify_unload().expect("no leak after unload");
}

#[test]
fn self_test_sees_the_irql_of_each_region() {
    let _one = one_driver();
    Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { ntpool::Passive::assume() };
        let report = ntpool_driver::selftest::run(&mut passive).expect("self-test");
        assert_eq!(report.irql_in_apc_region, APC_LEVEL);
        assert_eq!(report.irql_in_nested_dispatch_region, DISPATCH_LEVEL);
        assert_eq!(report.irql_in_spin_lock, DISPATCH_LEVEL);
        assert!(report.checks >= 15, "{report:?}");
    });
}

#[test]
fn driver_entry_falls_back_to_ex_allocate_pool_with_tag_where_ex_allocate_pool2_is_missing() {
    let _one = one_driver();
    let kernel = Kernel::builder().ex_allocate_pool2(false).build();
    kernel.run(|| {
        let loaded = host::load();
        assert_eq!(loaded.status, STATUS_SUCCESS, "{:#?}", loaded.output);
        assert!(loaded.output.iter().any(|l| l.contains("ExAllocatePoolWithTag")), "{:#?}", loaded.output);
        assert!(kernel.outstanding().iter().all(|a| a.routine == "ExAllocatePoolWithTag"));
        loaded.driver.expect("loaded").unload();
    });
    kernel.verify_unload().expect("no leak after unload");
}

/// Driver Verifier's systematic low resources simulation over DriverEntry and DriverUnload: count
/// the allocations of a clean run, then fail allocation k for every k. Each run must fail cleanly
/// (STATUS_INSUFFICIENT_RESOURCES, nothing left allocated), except the one allocation the kernel makes
/// for `IoGetDeviceInterfaces`: its failure is the routine's, which DriverEntry reports and goes on.
#[test]
fn driver_entry_survives_every_allocation_failing_in_turn() {
    let _one = one_driver();
    let clean = Kernel::new();
    clean.run(|| host::load().driver.expect("loaded").unload());
    let total = clean.allocation_calls();
    assert!(total >= 15, "only {total} allocations");
    for k in 1..=total {
        let kernel = Kernel::builder().fail_allocation(k).build();
        let result = kernel.run(|| {
            catch_bug_check(|| {
                let loaded = host::load();
                if let Some(driver) = loaded.driver {
                    driver.unload();
                }
                let interfaces_failed = loaded.output.iter().any(|l| l.contains("IoGetDeviceInterfaces failed"));
                (loaded.status, interfaces_failed)
            })
        });
        let (status, interfaces_failed) =
            result.unwrap_or_else(|bug_check| panic!("allocation {k} failing bug-checked: {bug_check}"));
        if interfaces_failed {
            assert_eq!(status, STATUS_SUCCESS, "allocation {k} of {total} failing: IoGetDeviceInterfaces's own");
        } else {
            assert_eq!(status, STATUS_INSUFFICIENT_RESOURCES, "allocation {k} of {total} failing");
        }
        if let Err(leak) = kernel.verify_unload() {
            panic!("allocation {k} failing leaked: {leak}");
        }
    }
    println!("systematic low resources simulation over DriverEntry and DriverUnload: {total} runs");
}
