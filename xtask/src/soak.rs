//! The soak under Wine (`cargo xtask wine --soak`, and a shorter one in `cargo xtask test`): many
//! load/unload cycles of the real `.sys`, and in each one `ntpool-client.exe --soak THREADS STEPS`,
//! several threads with a handle each sending requests at once. Every cycle is checked as
//! [`wine::run`](crate::wine::run) checks one (the relay trace of every pool call balanced, every
//! block freed once with its tag, nothing left after `sc stop`, every cycle the same); on top, every
//! cycle's client must report every request answered as expected and as many frees as allocations.
//!
//! Also here: the check that the client ran the whole hostile-input table under Wine.

use std::path::Path;
use std::time::Instant;

use ntpool_client::hostile::CASES;
use ntpool_client::soak::REQUESTS_PER_STEP;

use crate::wine;

/// How big a soak is.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Load/unload cycles.
    pub cycles: u32,
    /// Client threads per cycle, each with its own handle.
    pub threads: u32,
    /// Steps per thread ([`REQUESTS_PER_STEP`] requests each, and a final `FREE`).
    pub steps: u32,
}

/// `cargo xtask wine --soak`: 100 cycles, 4 threads, 40,400 requests.
pub const FULL: Plan = Plan { cycles: 100, threads: 4, steps: 25 };
/// The soak of `cargo xtask test`: 10 cycles, 4 threads, 4,040 requests.
pub const SHORT: Plan = Plan { cycles: 10, threads: 4, steps: 25 };

impl Plan {
    /// Requests one thread sends in one cycle.
    pub fn requests_per_thread(&self) -> u64 {
        u64::from(self.steps) * u64::from(REQUESTS_PER_STEP) + 1
    }

    /// Requests of the whole soak.
    pub fn requests(&self) -> u64 {
        self.requests_per_thread() * u64::from(self.threads) * u64::from(self.cycles)
    }
}

/// Runs the soak `plan` with `sys` and `client` under Wine; what it did, for a person to read.
pub fn run(root: &Path, sys: &Path, client: &Path, plan: Plan) -> Result<String, String> {
    let started = Instant::now();
    let args = ["--soak".to_string(), plan.threads.to_string(), plan.steps.to_string()];
    let report = wine::run_with_args(root, sys, Some(client), &args, plan.cycles)?;
    let wall = started.elapsed().as_secs_f64();
    let expected = format!(
        "soak: {} threads x {} steps: {} requests ({} per thread), ",
        plan.threads,
        plan.steps,
        plan.requests_per_thread() * u64::from(plan.threads),
        plan.requests_per_thread()
    );
    let (mut allocations, mut frees) = (0u64, 0u64);
    for (number, stdout) in report.client_outputs().enumerate() {
        let line = stdout.lines().find(|line| line.starts_with(&expected)).ok_or_else(|| {
            format!("soak: cycle {}: the client did not print `{expected}...`; its output:\n{stdout}", number + 1)
        })?;
        let counts: Vec<u64> = line[expected.len()..]
            .split(", ")
            .filter_map(|part| part.split_whitespace().next()?.parse().ok())
            .collect();
        let [allocated, freed] = counts[..] else {
            return Err(format!("soak: cycle {}: cannot read `{line}`", number + 1));
        };
        if allocated != freed || allocated == 0 {
            return Err(format!(
                "soak: cycle {}: the client allocated {allocated} blocks and freed {freed}",
                number + 1
            ));
        }
        let summary = format!("{} passed, 0 failed", plan.requests_per_thread() * u64::from(plan.threads));
        if !stdout.lines().any(|line| line.trim() == summary) {
            return Err(format!("soak: cycle {}: the client did not print `{summary}`:\n{stdout}", number + 1));
        }
        allocations += allocated;
        frees += freed;
    }
    if report.cycle_count() != plan.cycles as usize {
        return Err(format!("soak: {} of {} cycles ran", report.cycle_count(), plan.cycles));
    }
    let (traced_allocations, traced_frees) = report.pool_calls();
    Ok(format!(
        "{report}\n\nsoak under Wine: {} load/unload cycles, {} client threads per cycle, {} requests in all \
         ({} per thread per cycle), every one answered as expected; the clients' blocks: {allocations} allocated, \
         {frees} freed; the relay trace (all cycles, every pool call of the driver traced): {traced_allocations} \
         allocations, {traced_frees} frees, balanced in every cycle; wall time {wall:.1} s (prefix included)",
        plan.cycles,
        plan.threads,
        plan.requests(),
        plan.requests_per_thread()
    ))
}

/// Checks that the client ran every row of the hostile-input table in every cycle of `report`, and
/// every row passed; a line saying so.
pub fn check_hostile_table(report: &wine::Report) -> Result<String, String> {
    let expected = format!("hostile inputs: {} passed, 0 failed", CASES.len());
    let mut cycles = 0;
    for (number, stdout) in report.client_outputs().enumerate() {
        if !stdout.lines().any(|line| line.trim() == expected) {
            return Err(format!("cycle {}: the client did not print `{expected}`; its output:\n{stdout}", number + 1));
        }
        cycles += 1;
    }
    if cycles == 0 {
        return Err("no client ran: the hostile-input table was not checked under Wine".into());
    }
    Ok(format!("the hostile-input table under Wine: all {} rows passed in each of {cycles} cycles", CASES.len()))
}
