//! Test fixtures: Wine logs of the sample driver's cycles as Wine writes them (markers, relay
//! lines of its pool calls, another driver's calls that must not count), for the tests of the
//! relay-trace analysis and of the checks.

use super::{ImageLayout, Trace};
use crate::wine::log::MARK;

pub(in crate::wine) const LAYOUT: ImageLayout = ImageLayout { entry_rva: 0x1000, size: 0x10000 };

/// `xtask-wine: cycle N start`, the driver's load, `body`, its unload, `cycle N end`.
pub(in crate::wine) fn cycle(number: u32, entry: &[&str], unload: &[&str]) -> String {
    let mut log = vec![
        format!("{MARK} cycle {number} start"),
        // Another driver's pool call (Wine's own winehid.sys): not counted.
        "0094:Call ntoskrnl.exe.ExFreePool(014a0490) ret=332e42a98".into(),
        "0094:Ret  ntoskrnl.exe.ExFreePool() retval=00000001 ret=332e42a98".into(),
        r#"0114:Call driver init 0000000180001000 (obj=00000000003767E0,str=L"\\Registry\\Machine\\System\\CurrentControlSet\\Services\\ntpool")"#.into(),
        "0114:Call ntoskrnl.exe.MmGetSystemRoutineAddress(01a9f758) ret=1800053ea".into(),
        "0114:Ret  ntoskrnl.exe.MmGetSystemRoutineAddress() retval=00000000 ret=1800053ea".into(),
    ];
    log.extend(entry.iter().map(|line| line.to_string()));
    log.push(r#"0114:Ret  driver init 0000000180001000 (obj=00000000003767E0,str=L"\\Registry\\Machine\\System\\CurrentControlSet\\Services\\ntpool") retval=00000000"#.into());
    log.push(format!("{MARK} cycle {number} stop"));
    log.push("0114:Call driver unload 0000000180002D30 (obj=00000000003767E0)".into());
    log.extend(unload.iter().map(|line| line.to_string()));
    log.push("0114:Ret  driver unload 0000000180002D30 (obj=00000000003767E0)".into());
    log.push(format!("{MARK} cycle {number} end"));
    log.join("\n") + "\n"
}

pub(in crate::wine) fn alloc(thread: &str, size: u32, tag: u32, address: u32) -> [String; 2] {
    [
        format!("{thread}:Call ntoskrnl.exe.ExAllocatePoolWithTag(00000200,{size:08x},{tag:08x}) ret=180005369"),
        format!("{thread}:Ret  ntoskrnl.exe.ExAllocatePoolWithTag() retval={address:08x} ret=180005369"),
    ]
}

pub(in crate::wine) fn free(thread: &str, address: u32, tag: u32) -> [String; 2] {
    [
        format!("{thread}:Call ntoskrnl.exe.ExFreePoolWithTag({address:08x},{tag:08x}) ret=180004cab"),
        format!("{thread}:Ret  ntoskrnl.exe.ExFreePoolWithTag() retval=00000001 ret=180004cab"),
    ]
}

pub(in crate::wine) const NP_ST: u32 = 0x7453_704e; // "NpSt"
pub(in crate::wine) const NP_RG: u32 = 0x6752_704e; // "NpRg"

/// The pool checks alone (what `check` reports of the pool trace).
pub(in crate::wine) fn check_pool(log: &str) -> Result<Trace, String> {
    let trace = Trace::parse(log, LAYOUT, "ntpool");
    let mut problems: Vec<String> = trace.outside.clone();
    for cycle in &trace.cycles {
        problems.extend(cycle.problems.iter().map(|p| format!("cycle {}: {p}", cycle.number)));
    }
    if problems.is_empty() { Ok(trace) } else { Err(problems.join("\n")) }
}

pub(in crate::wine) fn lines(parts: &[[String; 2]]) -> Vec<String> {
    parts.iter().flat_map(|pair| pair.iter().cloned()).collect()
}

/// [`cycle`] with the pairs of lines `entry` at the load and `unload` at the unload.
pub(in crate::wine) fn pool_cycle(number: u32, entry: &[[String; 2]], unload: &[[String; 2]]) -> String {
    let (entry, unload) = (lines(entry), lines(unload));
    let entry: Vec<&str> = entry.iter().map(String::as_str).collect();
    let unload: Vec<&str> = unload.iter().map(String::as_str).collect();
    cycle(number, &entry, &unload)
}

pub(in crate::wine) fn balanced(number: u32) -> String {
    let entry = [alloc("0114", 0x74, NP_RG, 0x014a_0370), alloc("0114", 0x20, NP_ST, 0x014a_03f0)];
    pool_cycle(number, &entry, &[free("0114", 0x014a_0370, NP_RG), free("0114", 0x014a_03f0, NP_ST)])
}

pub(in crate::wine) fn device_interfaces(status: u32) -> [String; 2] {
    [
        "0114:Call ntoskrnl.exe.IoGetDeviceInterfaces(180010000,00000000,00000000,01a9f700) ret=180005400".into(),
        format!("0114:Ret  ntoskrnl.exe.IoGetDeviceInterfaces() retval={status:08x} ret=180005400"),
    ]
}

pub(in crate::wine) fn ex_free_pool(address: u32) -> [String; 2] {
    [
        format!("0114:Call ntoskrnl.exe.ExFreePool({address:08x}) ret=180005410"),
        "0114:Ret  ntoskrnl.exe.ExFreePool() retval=00000001 ret=180005410".into(),
    ]
}

pub(in crate::wine) fn one_cycle(entry: &[[String; 2]]) -> String {
    pool_cycle(1, entry, &[])
}
