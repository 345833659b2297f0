//! The checks on the log of a run of the sample driver, cycle by cycle: its `DbgPrint` lines, its
//! allocation path, the pairs of its kernel calls, the pool surface every cycle must show, no crash,
//! and every cycle the same.

use std::collections::BTreeMap;

use super::cycles::{CycleTiming, SERVICE};
use super::log::Tag;
use super::messages::show_lines;
use super::relay::{CycleTrace, DRIVER_PREFIX, TagStats, Trace};

/// Routines whose calls must come in pairs within a cycle: (acquire or create, release or delete).
const PAIRS: &[(&str, &str)] = &[
    ("KeAcquireSpinLockRaiseToDpc", "KeReleaseSpinLock"),
    ("ExAcquireFastMutex", "ExReleaseFastMutex"),
    ("IoCreateDevice", "IoDeleteDevice"),
    ("IoCreateSymbolicLink", "IoDeleteSymbolicLink"),
    ("ExInitializeLookasideListEx", "ExDeleteLookasideListEx"),
    ("ExInitializeNPagedLookasideList", "ExDeleteNPagedLookasideList"),
    ("ExInitializePagedLookasideList", "ExDeletePagedLookasideList"),
    ("IoAllocateIrp", "IoFreeIrp"),
    ("ObReferenceObjectByHandle", "ObfDereferenceObject"),
];

/// Every problem the log shows, each with the lines that show it.
pub(super) fn check(trace: &Trace, timings: &[CycleTiming], cycles: u32) -> Vec<String> {
    let mut problems = Vec::new();
    if !trace.crashes.is_empty() {
        problems.push(format!(
            "the log has {} crash, unimplemented-function or stub line(s):\n{}",
            trace.crashes.len(),
            show_lines(&trace.crashes)
        ));
    }
    problems.extend(trace.outside.iter().cloned());
    if trace.cycles.len() < cycles as usize && timings.len() == cycles as usize {
        problems.push(format!("the log shows {} of {cycles} cycles (markers missing)", trace.cycles.len()));
    }
    for cycle in &trace.cycles {
        let n = cycle.number;
        if !cycle.ended {
            problems.push(format!(
                "cycle {n} did not complete; the driver's lines in it:\n{}\nWine's errors in it:\n{}",
                show_lines(&cycle.debug.iter().map(|(l, t)| (*l, format!("{DRIVER_PREFIX}{t}"))).collect::<Vec<_>>()),
                show_lines(&cycle.errors)
            ));
            continue;
        }
        problems.extend(cycle.problems.iter().map(|p| format!("cycle {n}: {p}")));
        problems.extend(debug_problems(cycle));
        problems.extend(relay_problems(cycle));
    }
    if let Some(first) = trace.cycles.first().filter(|c| c.ended) {
        for cycle in trace.cycles.iter().skip(1).filter(|c| c.ended) {
            if cycle.tags != first.tags || cycle.calls != first.calls {
                problems.push(format!(
                    "cycle {} differs from cycle 1 (per tag: allocations/failed/frees/bytes):\n  cycle 1: {}\n  cycle {}: {}\n  \
                     calls in cycle 1: {:?}\n  calls in cycle {}: {:?}",
                    cycle.number,
                    tag_summary(&first.tags),
                    cycle.number,
                    tag_summary(&cycle.tags),
                    first.calls,
                    cycle.number,
                    cycle.calls
                ));
            }
        }
    }
    problems
}

/// The driver's `DbgPrint` lines in one cycle.
fn debug_problems(cycle: &CycleTrace) -> Vec<String> {
    let n = cycle.number;
    let mut problems = Vec::new();
    let shown =
        || show_lines(&cycle.debug.iter().map(|(l, t)| (*l, format!("{DRIVER_PREFIX}{t}"))).collect::<Vec<_>>());
    let expected = [
        ("DriverEntry: allocating with ExAllocatePoolWithTag (ExAllocatePool2 is not exported)", true),
        ("self-test passed", false),
        ("DriverUnload: deleted the device", false),
        ("DriverUnload: freed the state", false),
    ];
    for (text, exact) in expected {
        let count =
            cycle.debug.iter().filter(|(_, line)| if exact { line == text } else { line.starts_with(text) }).count();
        if count != 1 {
            problems.push(format!(
                "cycle {n}: the driver printed `{DRIVER_PREFIX}{text}` {count} times instead of once; its lines:\n{}",
                shown()
            ));
        }
    }
    let bad: Vec<(usize, String)> = cycle
        .debug
        .iter()
        .filter(|(_, line)| {
            line.contains("FAILED")
                || line.contains("check failed")
                || line == "DriverEntry: allocating with ExAllocatePool2"
        })
        .map(|(l, t)| (*l, format!("{DRIVER_PREFIX}{t}")))
        .collect();
    if !bad.is_empty() {
        problems.push(format!("cycle {n}: the driver reported failures:\n{}", show_lines(&bad)));
    }
    problems
}

/// The driver's kernel calls in one cycle: the allocation path, and the pairs.
fn relay_problems(cycle: &CycleTrace) -> Vec<String> {
    let n = cycle.number;
    let calls = |name: &str| cycle.calls.get(name).copied().unwrap_or(0);
    let mut problems = Vec::new();
    if !cycle.loaded {
        problems.push(format!("cycle {n}: the relay trace shows no `Call driver init` of the {SERVICE} service"));
    }
    if calls("MmGetSystemRoutineAddress") == 0 {
        problems.push(format!(
            "cycle {n}: the relay trace shows no MmGetSystemRoutineAddress call by the driver (the ExAllocatePool2 lookup)"
        ));
    }
    if calls("ExAllocatePoolWithTag") == 0 {
        problems.push(format!("cycle {n}: the relay trace shows no ExAllocatePoolWithTag call by the driver"));
    }
    if !cycle.pool2_calls.is_empty() {
        problems.push(format!(
            "cycle {n}: the driver called ExAllocatePool2, which Wine does not export:\n{}",
            show_lines(&cycle.pool2_calls)
        ));
    }
    for (acquire, release) in PAIRS {
        // Creations count when they succeeded; acquisitions always.
        let made = cycle.succeeded.get(*acquire).copied().unwrap_or_else(|| calls(acquire));
        let undone = calls(release);
        if made != undone {
            problems.push(format!("cycle {n}: {made} successful {acquire} call(s) but {undone} {release} call(s)"));
        }
    }
    problems
}

fn tag_summary(tags: &BTreeMap<u32, TagStats>) -> String {
    let parts: Vec<String> = tags
        .iter()
        .map(|(tag, s)| format!("{} {}/{}/{}/{}", Tag(*tag), s.allocations, s.failed, s.frees, s.bytes))
        .collect();
    parts.join(", ")
}

/// The frees `RUN_BACKGROUND`'s routines make outside the driver's traced entry points, per cycle:
/// tag, routine, count.
const ROUTINE_FREES: [(ntpool::PoolTag, &str, u64); 2] = [
    (
        <ntpool_driver::background::ExpiryTag as ntpool::Tag>::TAG,
        "the timer's DPC",
        ntpool_protocol::BACKGROUND_EXPIRED,
    ),
    (
        <ntpool_driver::background::ReclaimTag as ntpool::Tag>::TAG,
        "the work item",
        ntpool_protocol::BACKGROUND_RECLAIMED,
    ),
];

/// What the driver must have done in every cycle besides the basics: a quota allocation through
/// the non-raising `ExAllocatePoolWithQuotaTag` and the client's `RUN_BACKGROUND` (a system thread
/// waited for, an IRP sent to its own device: when the client ran its scenario), one
/// `IoGetDeviceInterfaces` list freed with `ExFreePool`, and a lookaside list initialized (and, by
/// [`PAIRS`], deleted).
pub(super) fn pool_surface_problems(cycle: &CycleTrace, client: bool) -> Vec<String> {
    let n = cycle.number;
    let calls = |name: &str| cycle.calls.get(name).copied().unwrap_or(0);
    let mut problems = Vec::new();
    if client && calls("ExAllocatePoolWithQuotaTag") == 0 {
        problems.push(format!("cycle {n}: the relay trace shows no ExAllocatePoolWithQuotaTag call by the driver"));
    }
    // The client's RUN_BACKGROUND: a system thread that runs and is waited for, an IRP the driver
    // sends its own device, completed into its routine and freed (by `PAIRS`), a periodic timer
    // whose DPC frees the expired blocks and a work item that frees the paged ones, both on threads
    // of Wine's (outside the driver's traced entry points). The DPC queues the work item last, which
    // the compiler may make a jump: `IoQueueWorkItem` then returns into Wine's timer code, so its
    // relay line is not the driver's. The work item's frees, which its routine makes, prove it ran.
    if client {
        for routine in
            ["PsCreateSystemThread", "KeWaitForSingleObject", "IoAllocateIrp", "IofCallDriver", "KeSetTimerEx"]
        {
            if calls(routine) == 0 {
                problems.push(format!("cycle {n}: the relay trace shows no {routine} call by the driver"));
            }
        }
        for (tag, routine, expected) in ROUTINE_FREES {
            let freed = cycle.routine_frees.get(&tag.to_ulong()).copied().unwrap_or(0);
            if freed != expected {
                problems.push(format!(
                    "cycle {n}: {routine} freed {freed} block(s) tagged {tag} on its own thread, not {expected}"
                ));
            }
        }
    }
    // Wine 8's IoGetDeviceInterfaces is a stub (STATUS_NOT_IMPLEMENTED): then there is no list to
    // free. Either way, one call, and one ExFreePool per list returned.
    let listed = cycle.succeeded.get("IoGetDeviceInterfaces").copied().unwrap_or(0);
    if calls("IoGetDeviceInterfaces") != 1 || cycle.kernel_buffer_frees != listed {
        problems.push(format!(
            "cycle {n}: {} IoGetDeviceInterfaces call(s), {listed} successful, and {} ExFreePool of a list it returned",
            calls("IoGetDeviceInterfaces"),
            cycle.kernel_buffer_frees
        ));
    }
    let lists = calls("ExInitializeLookasideListEx")
        + calls("ExInitializeNPagedLookasideList")
        + calls("ExInitializePagedLookasideList");
    if lists == 0 {
        problems.push(format!("cycle {n}: the relay trace shows no lookaside list initialized by the driver"));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wine::relay::fixtures::*;

    #[test]
    fn ex_free_pool_of_a_kernel_buffer_pairs_with_a_successful_io_get_device_interfaces() {
        let log = one_cycle(&[device_interfaces(0), ex_free_pool(0x0200_0000)]);
        let trace = check_pool(&log).expect("one list, freed once");
        assert!(pool_surface_problems(&trace.cycles[0], false).iter().all(|p| !p.contains("IoGetDeviceInterfaces")));
    }

    #[test]
    fn a_balanced_trace_passes() {
        let log = balanced(1) + &balanced(2);
        let trace = check_pool(&log).expect("balanced");
        assert_eq!(trace.cycles.len(), 2);
        assert_eq!(trace.ignored, 2, "winehid's ExFreePool calls are not the driver's");
        let first = &trace.cycles[0];
        assert!(first.loaded && first.ended);
        assert_eq!(first.tags[&NP_ST], TagStats { allocations: 1, failed: 0, frees: 1, bytes: 0x20 });
        assert_eq!(first.tags[&NP_RG], TagStats { allocations: 1, failed: 0, frees: 1, bytes: 0x74 });
        assert_eq!(first.calls["MmGetSystemRoutineAddress"], 1);
        assert_eq!(trace.cycles[1].tags, first.tags);
        assert!(check(&trace, &[], 2).iter().all(|p| !p.contains("differs")));
    }

    #[test]
    fn cycles_with_different_counts_fail() {
        let entry = [alloc("0114", 0x20, NP_ST, 0x014a_03f0)];
        let unload = [free("0114", 0x014a_03f0, NP_ST)];
        let log = balanced(1) + &pool_cycle(2, &entry, &unload);
        let trace = check_pool(&log).expect("each cycle is balanced");
        let problems = check(&trace, &[], 2);
        assert!(problems.iter().any(|p| p.contains("cycle 2 differs from cycle 1")), "{problems:#?}");
    }
}
