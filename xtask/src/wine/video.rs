//! The sample video miniport (`ntpool_video.sys`) under Wine, against the project's `videoprt.sys`
//! test fixture (Wine has no video port driver).
//!
//! Wine resolves a driver's import of another `.sys` from `system32\drivers`, where the fixture is
//! installed beside the miniport; the miniport's `DriverEntry` then calls the fixture's
//! `VideoPortInitialize`, which calls `HwFindAdapter` and `HwInitialize`. Each cycle starts and
//! stops the service, and the log is checked:
//!
//! * Wine's relay trace shows calls into builtin modules only, so the calls into the fixture (a
//!   native DLL) come from the fixture's own lines (`videoprt: VideoPortAllocatePool(ext, type,
//!   size, tag) = block`, `videoprt: VideoPortFreePool(ext, block)`): every `VideoPortAllocatePool`
//!   is matched by one `VideoPortFreePool` of its block with the same device extension (the one
//!   `VideoPortInitialize` allocated), every tag starts with `D`, all four `VP_POOL_TYPE`s are used;
//! * the relay trace of `ntoskrnl.exe` shows what the fixture did for them: one
//!   `ExAllocatePoolWithTag` with the same pool type, size and tag returning that block, one
//!   `ExFreePool` of it, and the device extension's own `ExAllocatePoolWithTag` / `ExFreePool`; no
//!   other allocation with those tags, nothing left after `sc stop`;
//! * the miniport's own lines (`HwInitialize` ran, `VideoPortInitialize` returned 0); no crash,
//!   unimplemented function or stub; every cycle the same.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use super::install::ensure_wine;
use super::log::{CRASH_PATTERNS, MARK, Relay, Tag, parse_relay, split_thread, tag_name};
use super::messages::problem_report;
use super::prefix::RunFiles;
use super::session::{Interrupted, Session, run_session};
use crate::host::files;

/// The miniport's service name, and the two files in `system32\drivers`.
const SERVICE: &str = "ntpoolvideo";
const MINIPORT_SYS: &str = "ntpool_video.sys";
const FIXTURE_SYS: &str = crate::images::FIXTURE_SYS;
/// The prefixes of the miniport's and the fixture's `DbgPrint` lines.
const MINIPORT_PREFIX: &str = "ntpool-video: ";
const FIXTURE_PREFIX: &str = "videoprt: ";
/// The fixture's device extension tag.
const EXTENSION_TAG: u32 = u32::from_le_bytes(*b"VPdx");
/// The four `VP_POOL_TYPE` values.
const VP_POOL_TYPES: [u64; 4] = [0, 1, 4, 5];

/// What a successful run found.
#[derive(Debug)]
pub struct VideoReport {
    wine_version: String,
    log: PathBuf,
    cycles: Vec<(u32, f64, f64)>,
    summary: Summary,
}

/// Per tag, one cycle: the `VP_POOL_TYPE`, allocations, frees, bytes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Summary {
    tags: BTreeMap<u32, (u64, u64, u64, u64)>,
    extension_bytes: u64,
}

/// Loads `miniport` under Wine `cycles` times against `fixture` (installed as `videoprt.sys`), in
/// a fresh prefix under `<root>/target/wine-video/`, and checks the log (see the module
/// documentation). Fails with a message that quotes the relevant log lines.
pub fn run_video(root: &Path, miniport: &Path, fixture: &Path, cycles: u32) -> Result<VideoReport, String> {
    if cycles == 0 {
        return Err("wine: at least one load/unload cycle is needed".into());
    }
    let root = files::absolute(root)?;
    let wine_version = ensure_wine()?;
    let (run_files, _) = RunFiles::fresh(&root, "target/wine-video", &wine_version)?;
    run_files.install(&[(miniport, MINIPORT_SYS), (fixture, FIXTURE_SYS)])?;

    let ended = run_session(&run_files, |session| video_cycles(session, cycles))?;
    let mut problems = ended.problems;
    let summary = match check_video_log(&ended.log, cycles) {
        Ok(summary) => Some(summary),
        Err(found) => {
            problems.extend(found);
            None
        }
    };
    match summary {
        Some(summary) if problems.is_empty() => {
            Ok(VideoReport { wine_version, log: run_files.log_path, cycles: ended.cycles, summary })
        }
        _ => Err(problem_report(MINIPORT_SYS, &problems, &run_files.log_path)),
    }
}

/// `(cycle, sc start seconds, sc stop seconds)` of each completed cycle.
type Timings = Vec<(u32, f64, f64)>;

fn video_cycles(session: &mut Session<'_>, cycles: u32) -> Result<Timings, Interrupted<Timings>> {
    let mut timings = Vec::new();
    if let Err(error) = session.create_service(SERVICE, MINIPORT_SYS) {
        return Err((error, timings));
    }
    for number in 1..=cycles {
        match video_cycle(session, number) {
            Ok((start, stop)) => {
                eprintln!("wine: video cycle {number}: sc start {start:.2} s, sc stop {stop:.2} s");
                timings.push((number, start, stop));
            }
            Err(error) => return Err((format!("cycle {number}: {error}"), timings)),
        }
    }
    Ok(timings)
}

fn video_cycle(session: &mut Session<'_>, number: u32) -> Result<(f64, f64), String> {
    session.mark(&format!("video {number} start"))?;
    let start_secs = session.start_service(SERVICE)?;
    session.mark(&format!("video {number} stop"))?;
    // DriverUnload (the fixture's) has returned once the service is STOPPED.
    let stop_secs = session.stop_service(SERVICE)?;
    session.mark(&format!("video {number} end"))?;
    Ok((start_secs, stop_secs))
}

/// One cycle's view of the log.
#[derive(Debug, Default)]
struct VideoCycle {
    number: u32,
    ended: bool,
    /// `(line, ext, type, size, tag, block)` from the fixture's `VideoPortAllocatePool` lines.
    vp_allocs: Vec<(usize, u64, u64, u64, u32, u64)>,
    /// `(line, ext, block)` from its `VideoPortFreePool` lines.
    vp_frees: Vec<(usize, u64, u64)>,
    /// The device extension: size and address, and whether DriverUnload freed it.
    extension: Option<(u64, u64)>,
    extension_freed: Option<u64>,
    /// `(line, type, size, tag, block)` of the relay's `ExAllocatePoolWithTag` calls with a result.
    relay_allocs: Vec<(usize, u64, u64, u32, u64)>,
    /// `(line, block)` of the relay's `ExFreePool` calls.
    relay_frees: Vec<(usize, u64)>,
    miniport: Vec<String>,
}

/// Reads the log and checks every cycle; see the module documentation.
fn check_video_log(log: &str, cycles: u32) -> Result<Summary, Vec<String>> {
    let mut problems = Vec::new();
    let mut all = Vec::new();
    let mut current: Option<VideoCycle> = None;
    let mut pending: HashMap<u32, (usize, u64, u64, u32)> = HashMap::new();
    for (index, line) in log.lines().enumerate() {
        let number = index + 1;
        if let Some(marker) = line.strip_prefix(MARK) {
            let words: Vec<&str> = marker.split_whitespace().collect();
            if let ["video", n, what] = words.as_slice() {
                match (*what, n.parse::<u32>()) {
                    ("start", Ok(n)) => {
                        all.extend(current.take());
                        current = Some(VideoCycle { number: n, ..VideoCycle::default() });
                        pending.clear();
                    }
                    ("end", Ok(_)) => {
                        if let Some(mut cycle) = current.take() {
                            cycle.ended = true;
                            all.push(cycle);
                        }
                    }
                    _ => {}
                }
            }
            continue;
        }
        if CRASH_PATTERNS.iter().any(|pattern| line.contains(pattern)) {
            problems.push(format!("line {number}: crash, unimplemented function or stub: {line}"));
        }
        let Some(cycle) = current.as_mut() else { continue };
        let Some((thread, rest)) = split_thread(line) else { continue };
        if rest.contains(":debugstr:") {
            if let Some((_, text)) = rest.split_once(MINIPORT_PREFIX) {
                cycle.miniport.push(text.trim_end().to_string());
            } else if let Some((_, text)) = rest.split_once(FIXTURE_PREFIX) {
                if !fixture_line(cycle, number, text.trim_end()) {
                    problems.push(format!("cycle {}: line {number}: unreadable fixture line: {line}", cycle.number));
                }
            }
            continue;
        }
        match parse_relay(rest) {
            Some(Relay::Call { func: "ExAllocatePoolWithTag", args, .. }) if args.len() == 3 => {
                pending.insert(thread, (number, args[0], args[1], args[2] as u32));
            }
            Some(Relay::Ret { func: "ExAllocatePoolWithTag", retval, .. }) => {
                if let Some((call_line, pool, size, tag)) = pending.remove(&thread) {
                    cycle.relay_allocs.push((call_line, pool, size, tag, retval));
                }
            }
            Some(Relay::Call { func: "ExFreePool", args, .. }) if args.len() == 1 => {
                cycle.relay_frees.push((number, args[0]));
            }
            _ => {}
        }
    }
    all.extend(current);

    if all.len() != cycles as usize {
        problems.push(format!("the log shows {} of {cycles} video cycles", all.len()));
    }
    let mut summaries: Vec<Summary> = Vec::new();
    for cycle in &all {
        match check_cycle(cycle) {
            Ok(summary) => summaries.push(summary),
            Err(found) => problems.extend(found.into_iter().map(|p| format!("cycle {}: {p}", cycle.number))),
        }
    }
    if let Some(first) = summaries.first() {
        for (cycle, summary) in all.iter().zip(&summaries) {
            if summary != first {
                problems.push(format!("cycle {} differs from cycle 1: {summary:?} against {first:?}", cycle.number));
            }
        }
    }
    if problems.is_empty() {
        summaries.into_iter().next().ok_or_else(|| vec!["no cycle".into()])
    } else {
        Err(problems)
    }
}

/// Reads one of the fixture's lines into `cycle`; false if it cannot be read.
fn fixture_line(cycle: &mut VideoCycle, number: usize, text: &str) -> bool {
    let hex = |word: &str| super::log::hex(word.trim());
    let decimal = |word: &str| word.trim().parse::<u64>().ok();
    if let Some(rest) = text.strip_prefix("VideoPortAllocatePool(") {
        let Some((args, block)) = rest.split_once(") = ") else { return false };
        let args: Vec<&str> = args.split(',').collect();
        let [ext, pool, size, tag] = args.as_slice() else { return false };
        let (Some(ext), Some(pool), Some(size), Some(tag), Some(block)) =
            (hex(ext), decimal(pool), decimal(size), hex(tag), hex(block))
        else {
            return false;
        };
        cycle.vp_allocs.push((number, ext, pool, size, tag as u32, block));
        return true;
    }
    if let Some(rest) = text.strip_prefix("VideoPortFreePool(") {
        let Some((ext, block)) = rest.trim_end_matches(')').split_once(',') else { return false };
        let (Some(ext), Some(block)) = (hex(ext), hex(block)) else { return false };
        cycle.vp_frees.push((number, ext, block));
        return true;
    }
    if let Some(rest) = text.strip_prefix("VideoPortInitialize: device extension of ") {
        let Some((size, address)) = rest.split_once(" bytes at ") else { return false };
        let (Some(size), Some(address)) = (decimal(size), hex(address)) else { return false };
        cycle.extension = Some((size, address));
        return true;
    }
    if let Some(address) = text.strip_prefix("DriverUnload: freeing the device extension at ") {
        cycle.extension_freed = hex(address);
        return cycle.extension_freed.is_some();
    }
    false
}

fn check_cycle(cycle: &VideoCycle) -> Result<Summary, Vec<String>> {
    let mut problems = Vec::new();
    if !cycle.ended {
        problems.push("the cycle did not end (sc stop did not return)".into());
    }
    if !cycle.miniport.iter().any(|line| line.starts_with("HwInitialize: largest mode")) {
        problems.push(format!("the miniport's HwInitialize did not report; its lines: {:?}", cycle.miniport));
    }
    if !cycle.miniport.iter().any(|line| line == "DriverEntry: VideoPortInitialize returned 0x00000000") {
        problems.push(format!("VideoPortInitialize did not succeed; the miniport's lines: {:?}", cycle.miniport));
    }
    let Some((extension_size, extension)) = cycle.extension else {
        problems.push("the fixture did not report the device extension".into());
        return Err(problems);
    };
    if cycle.extension_freed != Some(extension) {
        problems.push(format!("DriverUnload did not free the device extension {extension:#x}"));
    }

    // The VideoPort calls: each block freed once, with the device extension it was allocated for.
    let mut summary = Summary { extension_bytes: extension_size, ..Summary::default() };
    let mut live: HashMap<u64, (usize, u64, u32)> = HashMap::new();
    let mut relay_allocs = cycle.relay_allocs.clone();
    let mut relay_frees = cycle.relay_frees.clone();
    let mut take_relay_alloc = |pool: u64, size: u64, tag: u32, block: u64| {
        let at = relay_allocs.iter().position(|&(_, p, s, t, b)| (p, s, t, b) == (pool, size, tag, block))?;
        Some(relay_allocs.remove(at))
    };
    let mut events: Vec<(usize, bool)> = cycle.vp_allocs.iter().map(|a| (a.0, true)).collect();
    events.extend(cycle.vp_frees.iter().map(|f| (f.0, false)));
    events.sort_unstable();
    let (mut allocs, mut frees) = (cycle.vp_allocs.iter(), cycle.vp_frees.iter());
    for (_, is_alloc) in events {
        if is_alloc {
            let Some(&(line, ext, pool, size, tag, block)) = allocs.next() else { break };
            if ext != extension {
                problems.push(format!(
                    "line {line}: VideoPortAllocatePool with device extension {ext:#x}, not {extension:#x}"
                ));
            }
            if block == 0 {
                problems.push(format!("line {line}: VideoPortAllocatePool returned NULL"));
                continue;
            }
            if tag.to_le_bytes()[0] != b'D' {
                problems.push(format!("line {line}: tag {} does not start with 'D'", tag_name(tag)));
            }
            if take_relay_alloc(pool, size, tag, block).is_none() {
                problems.push(format!(
                    "line {line}: no ExAllocatePoolWithTag({pool:#x}, {size:#x}, {}) returning {block:#x} in the relay trace",
                    tag_name(tag)
                ));
            }
            live.insert(block, (line, ext, tag));
            let row = summary.tags.entry(tag).or_insert((pool, 0, 0, 0));
            if row.0 != pool {
                problems.push(format!("line {line}: tag {} used with two pool types", tag_name(tag)));
            }
            row.1 += 1;
            row.3 += size;
        } else {
            let Some(&(line, ext, block)) = frees.next() else { break };
            let Some((_, alloc_ext, tag)) = live.remove(&block) else {
                problems.push(format!("line {line}: VideoPortFreePool of {block:#x}, which is not allocated"));
                continue;
            };
            if ext != alloc_ext {
                problems.push(format!(
                    "line {line}: VideoPortFreePool of {block:#x} with device extension {ext:#x}, allocated for {alloc_ext:#x}"
                ));
            }
            match relay_frees.iter().position(|&(_, b)| b == block) {
                Some(at) => {
                    relay_frees.remove(at);
                }
                None => problems.push(format!("line {line}: no ExFreePool({block:#x}) in the relay trace")),
            }
            if let Some(row) = summary.tags.get_mut(&tag) {
                row.2 += 1;
            }
        }
    }
    for (block, (line, _, tag)) in &live {
        problems.push(format!(
            "leak: the block {block:#x} (tag {}) of line {line} was never given to VideoPortFreePool",
            tag_name(*tag)
        ));
    }
    let pools: BTreeSet<u64> = summary.tags.values().map(|row| row.0).collect();
    if pools != VP_POOL_TYPES.into_iter().collect() {
        problems.push(format!("VP_POOL_TYPEs used: {pools:?}; the miniport uses all four, {VP_POOL_TYPES:?}"));
    }

    // The device extension in the relay trace, and nothing else with the fixture's tags.
    if take_relay_alloc(0x200, extension_size, EXTENSION_TAG, extension).is_none() {
        problems.push(format!("no ExAllocatePoolWithTag(0x200, {extension_size:#x}, 'VPdx') returning {extension:#x}"));
    }
    match relay_frees.iter().position(|&(_, b)| b == extension) {
        Some(at) => {
            relay_frees.remove(at);
        }
        None => problems.push(format!("no ExFreePool({extension:#x}) of the device extension in the relay trace")),
    }
    let tags: BTreeSet<u32> = summary.tags.keys().copied().chain([EXTENSION_TAG]).collect();
    for (line, pool, size, tag, block) in relay_allocs.iter().filter(|a| tags.contains(&a.3)) {
        problems.push(format!(
            "line {line}: ExAllocatePoolWithTag({pool:#x}, {size:#x}, {}) = {block:#x} without a VideoPort call",
            tag_name(*tag)
        ));
    }
    if problems.is_empty() { Ok(summary) } else { Err(problems) }
}

impl fmt::Display for VideoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{MINIPORT_SYS} with the {FIXTURE_SYS} fixture under {}: {} load/unload cycle(s) passed",
            self.wine_version,
            self.cycles.len()
        )?;
        for (number, start, stop) in &self.cycles {
            writeln!(f, "  cycle {number}: sc start {start:.2} s, sc stop {stop:.2} s")?;
        }
        writeln!(f, "\nVideoPort pool per tag, one cycle (every cycle the same):")?;
        writeln!(
            f,
            "  {:<6} {:<10} {:>12} {:>11} {:>6} {:>6}",
            "tag", "value", "VP_POOL_TYPE", "allocations", "frees", "bytes"
        )?;
        let mut tags: Vec<_> = self.summary.tags.iter().collect();
        tags.sort_by_key(|(tag, _)| Tag(**tag).to_string());
        for (tag, (pool, allocations, frees, bytes)) in tags {
            writeln!(
                f,
                "  {:<6} {:<10} {:>12} {:>11} {:>6} {:>6}",
                Tag(*tag).to_string(),
                format!("{tag:#010x}"),
                pool,
                allocations,
                frees,
                bytes
            )?;
        }
        writeln!(
            f,
            "  and the fixture's device extension: 'VPdx', {} bytes, allocated and freed once per cycle",
            self.summary.extension_bytes
        )?;
        writeln!(
            f,
            "Checked: every VideoPortAllocatePool freed once by VideoPortFreePool with its device extension, each \
             matched by the fixture's ExAllocatePoolWithTag / ExFreePool in the relay trace, all four VP_POOL_TYPEs, \
             'D' tags, nothing left after sc stop, no crash or stub."
        )?;
        write!(f, "log: {}", self.log.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log of one cycle as Wine writes it: the fixture's lines and the relay trace.
    fn cycle_log(number: u32, skip: Option<&str>) -> String {
        let lines = [
            "0134:Call ntoskrnl.exe.ExAllocatePoolWithTag(00000200,00000020,78645056) ret=021a1330",
            "0134:Ret  ntoskrnl.exe.ExAllocatePoolWithTag() retval=014a0370 ret=021a1330",
            "0134:Call ntoskrnl.exe.ExAllocatePoolWithTag(00000001,00000020,644d7644) ret=021a103a",
            "0134:Ret  ntoskrnl.exe.ExAllocatePoolWithTag() retval=014a03a0 ret=021a103a",
            "0134:warn:debugstr:x videoprt: VideoPortAllocatePool(0x14a0370, 1, 32, 0x644d7644) = 0x14a03a0",
            "0134:Call ntoskrnl.exe.ExAllocatePoolWithTag(00000005,00000080,64457644) ret=021a103a",
            "0134:Ret  ntoskrnl.exe.ExAllocatePoolWithTag() retval=014a03d0 ret=021a103a",
            "0134:warn:debugstr:x videoprt: VideoPortAllocatePool(0x14a0370, 5, 128, 0x64457644) = 0x14a03d0",
            "0134:warn:debugstr:x videoprt: VideoPortFreePool(0x14a0370, 0x14a03d0)",
            "0134:Call ntoskrnl.exe.ExFreePool(014a03d0) ret=021a127a",
            "0134:Call ntoskrnl.exe.ExAllocatePoolWithTag(00000000,0000000c,73467644) ret=021a103a",
            "0134:Ret  ntoskrnl.exe.ExAllocatePoolWithTag() retval=014a03d0 ret=021a103a",
            "0134:warn:debugstr:x videoprt: VideoPortAllocatePool(0x14a0370, 0, 12, 0x73467644) = 0x14a03d0",
            "0134:warn:debugstr:x videoprt: VideoPortFreePool(0x14a0370, 0x14a03a0)",
            "0134:Call ntoskrnl.exe.ExFreePool(014a03a0) ret=021a127a",
            "0134:Call ntoskrnl.exe.ExAllocatePoolWithTag(00000004,00000100,6c537644) ret=021a103a",
            "0134:Ret  ntoskrnl.exe.ExAllocatePoolWithTag() retval=014a0400 ret=021a103a",
            "0134:warn:debugstr:x videoprt: VideoPortAllocatePool(0x14a0370, 4, 256, 0x6c537644) = 0x14a0400",
            "0134:warn:debugstr:x videoprt: VideoPortFreePool(0x14a0370, 0x14a0400)",
            "0134:Call ntoskrnl.exe.ExFreePool(014a0400) ret=021a127a",
            "0134:warn:debugstr:x videoprt: VideoPortFreePool(0x14a0370, 0x14a03d0)",
            "0134:Call ntoskrnl.exe.ExFreePool(014a03d0) ret=021a127a",
            "0134:warn:debugstr:x ntpool-video: HwInitialize: largest mode 1310720 pixels, 1 scanline, checksum 32640",
            "0134:warn:debugstr:x videoprt: VideoPortInitialize: device extension of 32 bytes at 0x14a0370",
            "0134:warn:debugstr:x ntpool-video: DriverEntry: VideoPortInitialize returned 0x00000000",
            "0134:warn:debugstr:x videoprt: DriverUnload: freeing the device extension at 0x14a0370",
            "0134:Call ntoskrnl.exe.ExFreePool(014a0370) ret=021a15f2",
        ];
        let mut log = format!("{MARK} video {number} start\n");
        for line in lines {
            if skip.is_some_and(|skip| line.contains(skip)) {
                continue;
            }
            log.push_str(line);
            log.push('\n');
        }
        log.push_str(&format!("{MARK} video {number} end\n"));
        log
    }

    #[test]
    fn a_balanced_video_trace_passes_with_all_four_pool_types() {
        let log = cycle_log(1, None) + &cycle_log(2, None);
        let summary = check_video_log(&log, 2).expect("balanced");
        assert_eq!(summary.tags.len(), 4);
        assert_eq!(summary.tags[&u32::from_le_bytes(*b"DvFs")], (0, 1, 1, 12));
        assert_eq!(summary.extension_bytes, 32);
    }

    #[test]
    fn a_videoport_block_never_freed_fails_as_a_leak() {
        let problems = check_video_log(&cycle_log(1, Some("VideoPortFreePool(0x14a0370, 0x14a0400)")), 1).unwrap_err();
        assert!(problems.iter().any(|p| p.contains("leak: the block 0x14a0400")), "{problems:#?}");
    }

    #[test]
    fn a_videoport_call_without_its_ntoskrnl_call_fails() {
        let problems = check_video_log(&cycle_log(1, Some("ExFreePool(014a0400)")), 1).unwrap_err();
        assert!(problems.iter().any(|p| p.contains("no ExFreePool(0x14a0400)")), "{problems:#?}");
    }

    #[test]
    fn a_free_with_another_device_extension_fails() {
        let log = cycle_log(1, None)
            .replace("VideoPortFreePool(0x14a0370, 0x14a0400)", "VideoPortFreePool(0x14a0999, 0x14a0400)");
        let problems = check_video_log(&log, 1).unwrap_err();
        assert!(problems.iter().any(|p| p.contains("with device extension 0x14a0999")), "{problems:#?}");
    }

    #[test]
    fn a_device_extension_left_after_unload_fails() {
        let problems = check_video_log(&cycle_log(1, Some("DriverUnload")), 1).unwrap_err();
        assert!(problems.iter().any(|p| p.contains("DriverUnload did not free the device extension")), "{problems:#?}");
    }
}
