//! Emulated kernel throughput (part 3 of `cargo xtask bench`): `ntpool/benches/throughput.rs`, the
//! allocate + free pairs of each configuration against malloc/free, timed on 1 and 2 threads and
//! counted by callgrind; the targets the emulated kernel is held to; and the project's host tests run
//! with special pool on for every allocation (`NTPOOL_SPECIAL_POOL=1`) against the same tests
//! without it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::host::cargo::cargo;
use crate::sanitize::{COMPILE_FAIL, HOST_TESTS};

/// The configurations of `ntpool/benches/throughput.rs`, the baseline first.
const CONFIGS: &[(&str, &str)] = &[
    ("malloc", "malloc/free (the system allocator)"),
    ("verifier-off", "ntpool, emulated kernel, Driver Verifier off"),
    ("tracking", "ntpool, emulated kernel, Driver Verifier on (pool tracking)"),
    ("special-pool", "ntpool, emulated kernel, Driver Verifier on + special pool"),
];

/// Rounds timed per configuration and thread count; their median is reported.
const ROUNDS: &str = "11";

/// What the emulated kernel is held to: pool tracking within this many times malloc's instructions
/// per pair, ...
const TRACKING_INSTRUCTIONS: f64 = 2.0;
/// ... two threads on one kernel at least this many times one thread's pairs per second, ...
const TRACKING_TWO_THREADS: f64 = 1.3;
/// ... and special pool within this many times malloc's time per pair.
const SPECIAL_POOL_TIME: f64 = 100.0;

/// Builds the throughput program (bench profile) and returns its path.
fn throughput_program() -> Result<PathBuf, String> {
    let mut build = cargo();
    build.args(["bench", "-p", "ntpool", "--bench", "throughput", "--no-run", "--locked", "--message-format=json"]);
    build.stderr(Stdio::inherit());
    let output = build.output().map_err(|e| format!("cannot run cargo bench: {e}"))?;
    if !output.status.success() {
        return Err("cargo bench --no-run failed".into());
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "throughput")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| "cargo built no throughput program".to_owned())
}

/// The median nanoseconds per pair of `config` on `threads` threads.
fn wall_clock(program: &Path, config: &str, threads: usize) -> Result<f64, String> {
    // Rounds of tens of milliseconds: long enough for the scheduler to give the second thread a core
    // of its own early in the round (a round of 2 ms ran both threads on one core, one after the
    // other), short enough for 11 rounds of every configuration within seconds. Special pool makes a
    // system call per pair (and the mprotect floor is one): far fewer pairs.
    let pairs = if matches!(config, "special-pool" | "mprotect") { "20000" } else { "2000000" };
    let output = Command::new(program)
        .args(["time", config, &threads.to_string(), pairs, ROUNDS])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!("throughput time {config} failed: {text}{}", String::from_utf8_lossy(&output.stderr)));
    }
    text.split_whitespace().nth(1).and_then(|v| v.parse().ok()).ok_or(format!("unexpected output: {text}"))
}

/// Instructions per pair of `config`, from two callgrind runs of different lengths (the start-up
/// and the warm-up cancel out).
fn instructions(program: &Path, valgrind: &str, config: &str, out: &Path) -> Result<f64, String> {
    let (short, long) = if config == "special-pool" { (6000u64, 8000u64) } else { (10_000, 20_000) };
    let mut counts = Vec::new();
    for pairs in [short, long] {
        let output = Command::new(valgrind)
            .arg("--tool=callgrind")
            .arg(format!("--callgrind-out-file={}", out.join(format!("callgrind.{config}.{pairs}")).display()))
            .arg(program)
            .args(["count", config, &pairs.to_string()])
            .output()
            .map_err(|e| format!("cannot run valgrind: {e}"))?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        let collected = stderr
            .lines()
            .find_map(|l| l.split("Collected :").nth(1))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .ok_or(format!("callgrind reported no count for {config}:\n{stderr}"))?;
        counts.push(collected);
    }
    Ok((counts[1] as f64 - counts[0] as f64) / (long - short) as f64)
}

/// One configuration's figures: ns per pair on 1 and 2 threads, instructions per pair.
struct Figures {
    one: f64,
    two: f64,
    count: f64,
}

pub(super) fn throughput(valgrind: &str, out: &Path) -> Result<Vec<String>, String> {
    let program = throughput_program()?;
    let mut lines = Vec::new();
    let mut figures = Vec::new();
    for (config, what) in CONFIGS {
        let one = wall_clock(&program, config, 1)?;
        let two = wall_clock(&program, config, 2)?;
        let count = instructions(&program, valgrind, config, out)?;
        let this = Figures { one, two, count };
        let base = figures.first().unwrap_or(&this);
        let line = format!(
            "throughput {config}: {what}: {:.2} M pairs/s ({one:.1} ns/pair, median of {ROUNDS}), {count:.0} instructions/pair; \
             vs malloc: {:.2}x time, {:.2}x instructions; 2 threads: {:.2} M pairs/s ({:.2}x of 1 thread, malloc {:.2}x)",
            1e3 / one,
            one / base.one,
            count / base.count,
            1e3 / two,
            one / two,
            base.one / base.two,
        );
        println!("{line}");
        lines.push(line);
        figures.push(this);
    }
    let [malloc, _, tracking, special] = figures.as_slice() else {
        return Err("throughput: a configuration is missing".into());
    };
    let floor = wall_clock(&program, "mprotect", 1)?;
    let line = format!(
        "throughput floor of special pool: one mprotect(PROT_NONE) of a touched page, the cheapest kind (extending \
         an inaccessible range): {floor:.0} ns (median of {ROUNDS}) = {:.0}x malloc's time per pair; special pool \
         makes one per free (a freed block's page is inaccessible before the free returns) and runs at {:.2}x this floor",
        floor / malloc.one,
        special.one / floor,
    );
    println!("{line}");
    lines.push(line);
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    let tracking_count = tracking.count / malloc.count;
    let tracking_threads = tracking.one / tracking.two;
    let special_time = special.one / malloc.one;
    let line = format!(
        "throughput targets: tracking {tracking_count:.2}x malloc's instructions per pair (at most {TRACKING_INSTRUCTIONS:.1}x: {}); \
         tracking on 2 threads {tracking_threads:.2}x of 1 thread's pairs per second (at least {TRACKING_TWO_THREADS:.1}x: {}; malloc {:.2}x); \
         special pool {special_time:.0}x malloc's time per pair (at most {SPECIAL_POOL_TIME:.0}x: {})",
        verdict(tracking_count <= TRACKING_INSTRUCTIONS),
        verdict(tracking_threads >= TRACKING_TWO_THREADS),
        malloc.one / malloc.two,
        verdict(special_time <= SPECIAL_POOL_TIME),
    );
    println!("{line}");
    lines.push(line);
    let line = host_tests_under_special_pool()?;
    println!("{line}");
    lines.push(line);
    Ok(lines)
}

/// The host tests (those `cargo xtask test` runs under AddressSanitizer: unit and integration tests
/// of the crate, the kernel interface, the driver, its protocol and its client, the compile-fail
/// run aside) with `NTPOOL_SPECIAL_POOL=1`, which turns special pool on for every kernel they build,
/// against the same tests without it: the time of each (built beforehand; the fastest of two runs,
/// alternated), and their ratio.
fn host_tests_under_special_pool() -> Result<String, String> {
    let tests = |special_pool: bool| {
        let mut command = cargo();
        command.args(["test", "--locked", "-q"]).args(HOST_TESTS);
        if special_pool {
            command.env("NTPOOL_SPECIAL_POOL", "1");
        } else {
            command.env_remove("NTPOOL_SPECIAL_POOL");
        }
        command
    };
    let mut build = tests(false);
    build.arg("--no-run");
    let built = build.output().map_err(|e| format!("cannot build the host tests: {e}"))?;
    if !built.status.success() {
        return Err(format!("the host tests do not build:\n{}", String::from_utf8_lossy(&built.stderr)));
    }
    let run = |special_pool: bool| -> Result<Duration, String> {
        let mut command = tests(special_pool);
        command.args(["--", "--skip", COMPILE_FAIL]);
        let started = Instant::now();
        let output = command.output().map_err(|e| format!("cannot run the host tests: {e}"))?;
        let elapsed = started.elapsed();
        if !output.status.success() {
            let under = if special_pool { " under NTPOOL_SPECIAL_POOL=1" } else { "" };
            return Err(format!(
                "the host tests failed{under}:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(elapsed)
    };
    let (mut without, mut with) = (Duration::MAX, Duration::MAX);
    for _ in 0..2 {
        without = without.min(run(false)?);
        with = with.min(run(true)?);
    }
    Ok(format!(
        "throughput host tests under special pool: cargo test {} -- --skip {COMPILE_FAIL}: {:.1} s with NTPOOL_SPECIAL_POOL=1 \
         (special pool for every allocation below a page), {:.1} s without (fastest of 2 runs each): {:.2}x",
        HOST_TESTS.join(" "),
        with.as_secs_f64(),
        without.as_secs_f64(),
        with.as_secs_f64() / without.as_secs_f64(),
    ))
}
