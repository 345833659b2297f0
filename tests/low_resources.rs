//! Driver Verifier's systematic low resources simulation over the sample driver's whole life on the
//! emulated kernel: `DriverEntry`, the client's full IOCTL scenario (every IOCTL, good and bad input,
//! the limits) on one handle, requests on a second handle whose blocks are left for unload, and
//! `DriverUnload`. A clean run counts the allocation requests; then, for every k, a run on a kernel
//! that fails request k must end with clean statuses, no bug check and no leak, and every source
//! location that allocates must have been failed at least once.

mod common;

use std::collections::BTreeSet;

use common::{Emulated, Watched, driver_kernel};
use ntpool::emulated::{Kernel, catch_bug_check};
use ntpool_driver::host;
use ntpool_protocol::*;

/// What one life of the driver did.
#[derive(Debug)]
struct Life {
    /// `DriverEntry`'s status.
    entry: i32,
    /// Allocation requests `DriverEntry` made.
    entry_calls: u64,
    /// Whether `IoGetDeviceInterfaces` failed in `DriverEntry` (which reports it and goes on).
    interfaces_failed: bool,
    /// Every IOCTL sent and the status it got, both handles.
    statuses: Vec<(u32, i32)>,
    /// The client scenario's failed checks.
    scenario_failed: u32,
}

/// Loads the driver, runs the script, unloads. Runs inside the kernel's `run`.
fn life(kernel: &Kernel) -> Life {
    let loaded = host::load();
    let entry_calls = kernel.allocation_calls();
    let interfaces_failed = loaded.output.iter().any(|line| line.contains("IoGetDeviceInterfaces failed"));
    let mut life =
        Life { entry: loaded.status, entry_calls, interfaces_failed, statuses: Vec::new(), scenario_failed: 0 };
    let Some(driver) = loaded.driver else { return life };
    {
        let first = driver.open().expect("the device opens");
        let second = driver.open().expect("a second handle opens");
        let mut statuses = Vec::new();
        let mut recorder = Watched::new(Emulated(&first), |exchange| statuses.push((exchange.code, exchange.status)));
        let mut out = String::new();
        life.scenario_failed = ntpool_client::run_scenario(&mut recorder, &mut out).failed;
        life.statuses = statuses;
        // A second client leaves a block in each pool for DriverUnload to free.
        for pool in [POOL_PAGED, POOL_NON_PAGED] {
            let request = AllocateRequest { pool, tag: u32::from_le_bytes(*b"Two2"), size: 4000, reserved: 0 };
            let (status, _) = second.device_control(IOCTL_NTPOOL_ALLOCATE, request.as_bytes(), 8);
            life.statuses.push((IOCTL_NTPOOL_ALLOCATE, status));
        }
        let (status, _) = second.device_control(IOCTL_NTPOOL_QUERY_ALLOCATIONS, &[], 8 + 24 * 4);
        life.statuses.push((IOCTL_NTPOOL_QUERY_ALLOCATIONS, status));
    }
    driver.unload();
    life
}

#[test]
fn every_allocation_failing_in_turn_over_the_whole_driver_life() {
    let clean = driver_kernel().build();
    let reference = clean.run(|| life(&clean));
    clean.verify_unload().expect("the clean run leaks nothing");
    assert_eq!(reference.entry, status::SUCCESS);
    assert_eq!(reference.scenario_failed, 0, "the clean run passes the client's scenario");
    assert!(reference.statuses.iter().all(|&(_, s)| s != status::INSUFFICIENT_RESOURCES), "{reference:?}");
    let codes: BTreeSet<u32> = reference.statuses.iter().map(|&(code, _)| code).collect();
    for code in [
        IOCTL_NTPOOL_ALLOCATE,
        IOCTL_NTPOOL_FREE,
        IOCTL_NTPOOL_READ,
        IOCTL_NTPOOL_QUERY_ALLOCATIONS,
        IOCTL_NTPOOL_QUERY_STATISTICS,
    ] {
        assert!(codes.contains(&code), "the script sends {code:#x}");
    }
    let total = clean.allocation_calls();
    let sites: BTreeSet<String> = clean.allocation_sites().iter().map(ToString::to_string).collect();
    // Every site is the driver's own code (ntpool reports its caller's location, not its own), but
    // for the self-test's allocator-api2 collections (the `Allocator` trait cannot pass a location
    // on, so their requests show allocator-api2's) and the request log's lookaside list (the kernel
    // calls the list's Allocate callback, which has no caller to report).
    let own = |site: &&String| site.starts_with("src/");
    let passed_through =
        |site: &&String| site.contains("/allocator-api2-") || site.starts_with("ntpool/src/lookaside.rs:");
    assert!(sites.iter().filter(|site| !own(site)).all(|site| passed_through(&site)), "{sites:#?}");
    assert!(sites.iter().filter(own).count() >= 10, "{sites:#?}");

    let mut failed_sites = BTreeSet::new();
    let (mut entry_failures, mut visible, mut silent) = (0, 0, 0);
    for k in 1..=total {
        let kernel = driver_kernel().fail_allocation(k).build();
        let run = kernel.run(|| catch_bug_check(|| life(&kernel)));
        let run = run.unwrap_or_else(|bug_check| panic!("allocation {k} of {total} failing: {bug_check}"));
        if let Err(leak) = kernel.verify_unload() {
            panic!("allocation {k} of {total} failing leaked: {leak}");
        }
        assert!(kernel.deferred_bug_checks().is_empty(), "allocation {k}");
        let failed: Vec<_> = kernel.allocation_sites().into_iter().filter(|site| site.failed > 0).collect();
        assert_eq!(failed.len(), 1, "allocation {k}: exactly one request failed: {failed:?}");
        failed_sites.insert(failed[0].to_string());
        // Every answer is a status the driver defines.
        for &(code, status) in &run.statuses {
            assert_ne!(status::name(status), "another status", "allocation {k}: IOCTL {code:#x} got {status:#x}");
        }
        let insufficient: Vec<u32> =
            run.statuses.iter().filter(|&&(_, s)| s == status::INSUFFICIENT_RESOURCES).map(|&(code, _)| code).collect();
        if k <= reference.entry_calls && run.interfaces_failed {
            // The kernel's own allocation for `IoGetDeviceInterfaces`' list: the routine fails, and
            // DriverEntry reports it and goes on, so the driver's life is the clean one.
            assert_eq!(run.entry, status::SUCCESS, "allocation {k} (IoGetDeviceInterfaces' list)");
            assert_eq!(run.statuses, reference.statuses, "allocation {k}");
            silent += 1;
        } else if k <= reference.entry_calls {
            // DriverEntry is deterministic: its k-th request failed, and it failed cleanly.
            assert_eq!(run.entry, status::INSUFFICIENT_RESOURCES, "allocation {k} (in DriverEntry)");
            entry_failures += 1;
        } else if insufficient.is_empty() {
            // A request whose failure the driver absorbs (a log entry): nothing else may change.
            assert_eq!(run.entry, status::SUCCESS);
            assert_eq!(run.scenario_failed, 0, "allocation {k}: a silent failure changed an answer");
            assert_eq!(run.statuses, reference.statuses, "allocation {k}");
            silent += 1;
        } else {
            // A client's block, or what RUN_BACKGROUND allocates (its thread's block, the IRP it
            // sends), could not be allocated: that one request says so.
            assert_eq!(insufficient.len(), 1, "allocation {k}: {insufficient:x?}");
            assert!([IOCTL_NTPOOL_ALLOCATE, IOCTL_NTPOOL_RUN_BACKGROUND].contains(&insufficient[0]), "allocation {k}");
            visible += 1;
        }
    }
    assert_eq!(failed_sites, sites, "every site that allocates was failed once");
    println!(
        "systematic low resources simulation: {total} runs (allocation k of {total} failing, for every k): \
         {entry_failures} in DriverEntry (STATUS_INSUFFICIENT_RESOURCES), {visible} answered \
         STATUS_INSUFFICIENT_RESOURCES to an IOCTL, {silent} absorbed; no bug check, no leak"
    );
    println!("allocation sites covered: {} of {} (each failed at least once):", failed_sites.len(), sites.len());
    for site in clean.allocation_sites() {
        // Another crate's location, from the registry: its crate and path are enough.
        let shown = site.to_string();
        let shown = shown.find("/allocator-api2-").map_or(&*shown, |at| &shown[at + 1..]);
        println!("  {shown}: {} request(s) in the clean run", site.calls);
    }
}
