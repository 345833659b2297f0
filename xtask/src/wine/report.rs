//! What a successful run of the sample driver found, for a person to read: the timings of every
//! cycle, the client's summary line, and the per-tag table of the relay trace.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use super::cycles::{CycleTiming, SYS_NAME};
use super::log::Tag;
use super::prefix::RunFiles;
use super::relay::{TagStats, Trace};

/// What a successful run found, for a person to read (`Display`).
#[derive(Debug)]
pub struct Report {
    wine_version: String,
    log: PathBuf,
    prefix: PathBuf,
    prefix_secs: f64,
    /// `sc create`, the first command under the persistent server.
    session_secs: f64,
    cycles: Vec<CycleReport>,
    /// Per tag, all cycles together.
    tags: BTreeMap<u32, TagStats>,
    /// The driver's calls of each traced routine in one cycle (every cycle has the same).
    calls: BTreeMap<String, u64>,
    /// Per tag, the frees the driver made in routines the kernel called outside its traced entry
    /// points (a timer's DPC, a work item, a system thread), in the first cycle.
    routine_frees: BTreeMap<u32, u64>,
    /// Pool calls in the trace made by Wine's own drivers, not checked.
    ignored: u64,
}

/// One start/stop cycle.
#[derive(Debug)]
struct CycleReport {
    number: u32,
    start_secs: f64,
    client_secs: Option<f64>,
    stop_secs: f64,
    self_test: String,
    allocations: u64,
    frees: u64,
    bytes: u64,
    client: Option<String>,
    /// The client's whole standard output.
    client_stdout: String,
}

impl Report {
    /// The report of a run whose checks passed: its cycles' `timings` and the `trace` of its log,
    /// where it ran (`files`), and how long the prefix and `sc create` took.
    pub(super) fn new(
        wine_version: String,
        files: &RunFiles,
        prefix_secs: f64,
        session_secs: f64,
        timings: &[CycleTiming],
        trace: &Trace,
    ) -> Report {
        let mut tags: BTreeMap<u32, TagStats> = BTreeMap::new();
        for cycle in &trace.cycles {
            for (tag, stats) in &cycle.tags {
                tags.entry(*tag).or_default().add(stats);
            }
        }
        let cycle_reports = timings
            .iter()
            .zip(&trace.cycles)
            .map(|(timing, cycle)| CycleReport {
                number: timing.number,
                start_secs: timing.start_secs,
                client_secs: timing.client_secs,
                stop_secs: timing.stop_secs,
                self_test: cycle.debug_line("self-test passed").unwrap_or_default().to_string(),
                allocations: cycle.tags.values().map(|s| s.allocations).sum(),
                frees: cycle.tags.values().map(|s| s.frees).sum(),
                bytes: cycle.tags.values().map(|s| s.bytes).sum(),
                client: timing.client_summary.clone(),
                client_stdout: timing.client_stdout.clone(),
            })
            .collect();
        Report {
            wine_version,
            log: files.log_path.clone(),
            prefix: files.wine.prefix.clone(),
            prefix_secs,
            session_secs,
            cycles: cycle_reports,
            tags,
            calls: trace.cycles.first().map(|c| c.calls.clone()).unwrap_or_default(),
            routine_frees: trace.cycles.first().map(|c| c.routine_frees.clone()).unwrap_or_default(),
            ignored: trace.ignored,
        }
    }

    /// The client's standard output in each cycle, in order (empty without a client).
    pub fn client_outputs(&self) -> impl Iterator<Item = &str> {
        self.cycles.iter().map(|cycle| cycle.client_stdout.as_str())
    }

    /// Allocations and frees the relay trace shows, all cycles together.
    pub fn pool_calls(&self) -> (u64, u64) {
        self.cycles
            .iter()
            .fold((0, 0), |(allocations, frees), cycle| (allocations + cycle.allocations, frees + cycle.frees))
    }

    /// How many load/unload cycles passed.
    pub fn cycle_count(&self) -> usize {
        self.cycles.len()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{SYS_NAME} under {}: {} load/unload cycle(s) passed (prefix {})",
            self.wine_version,
            self.cycles.len(),
            self.prefix.display()
        )?;
        writeln!(f, "  prefix created in {:.1} s", self.prefix_secs)?;
        writeln!(f, "  sc create (starts services.exe and Wine's own drivers) {:.2} s", self.session_secs)?;
        for cycle in &self.cycles {
            write!(f, "  cycle {}: sc start {:.2} s", cycle.number, cycle.start_secs)?;
            if let Some(secs) = cycle.client_secs {
                write!(f, ", client {secs:.2} s")?;
            }
            writeln!(
                f,
                ", sc stop {:.2} s: {}; {} allocations, {} frees, {} bytes, 0 outstanding",
                cycle.stop_secs, cycle.self_test, cycle.allocations, cycle.frees, cycle.bytes
            )?;
            if let Some(client) = &cycle.client {
                writeln!(f, "           client: {client}")?;
            }
        }
        writeln!(
            f,
            "\nPool use per tag, from the relay trace ({} cycles together; every cycle the same):",
            self.cycles.len()
        )?;
        writeln!(
            f,
            "  {:<6} {:<10} {:>11} {:>8} {:>7} {:>10}",
            "tag", "value", "allocations", "failed", "frees", "bytes"
        )?;
        let mut tags: Vec<(&u32, &TagStats)> = self.tags.iter().collect();
        tags.sort_by_key(|(tag, _)| Tag(**tag).to_string());
        for (tag, stats) in tags {
            writeln!(
                f,
                "  {:<6} {:<10} {:>11} {:>8} {:>7} {:>10}",
                Tag(*tag).to_string(),
                format!("{tag:#010x}"),
                stats.allocations,
                stats.failed,
                stats.frees,
                stats.bytes
            )?;
        }
        let calls: Vec<String> = self.calls.iter().map(|(name, count)| format!("{name} {count}")).collect();
        writeln!(f, "\nThe driver's traced kernel calls per cycle: {}", calls.join(", "))?;
        let frees: Vec<String> = self.routine_frees.iter().map(|(tag, n)| format!("{} {n}", Tag(*tag))).collect();
        writeln!(
            f,
            "Frees per cycle on threads of Wine's, in routines the kernel called (the timer's DPC NpEx, the work \
             item NpRc, the system thread NpBg): {}",
            frees.join(", ")
        )?;
        writeln!(
            f,
            "Checked: DbgPrint lines once per cycle, the ExAllocatePoolWithTag fallback (no ExAllocatePool2 call), \
             every block freed once with its own tag, nothing left after sc stop, pairs balanced (IRPs and thread \
             references included), the client's system thread, IRP, timer DPC and work item run, no crash or stub."
        )?;
        if self.ignored > 0 {
            writeln!(f, "Not counted: {} pool calls of Wine's own drivers.", self.ignored)?;
        }
        write!(f, "log: {}", self.log.display())
    }
}
