//! Emulated kernel throughput (part 3 of `cargo xtask bench`): `ntpool/benches/throughput.rs`, the
//! allocate + free pairs of each configuration against malloc/free, timed and counted by callgrind.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::host::cargo::cargo;

/// The configurations of `ntpool/benches/throughput.rs`, the baseline first.
const CONFIGS: &[(&str, &str)] = &[
    ("malloc", "malloc/free (the system allocator)"),
    ("verifier-off", "ntpool, emulated kernel, Driver Verifier off"),
    ("tracking", "ntpool, emulated kernel, Driver Verifier on (pool tracking)"),
    ("special-pool", "ntpool, emulated kernel, Driver Verifier on + special pool"),
];

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
    // Special pool maps pages per block: far fewer pairs keep it within seconds.
    let pairs = if config == "special-pool" { "2000" } else { "200000" };
    let output = Command::new(program)
        .args(["time", config, &threads.to_string(), pairs, "11"])
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

pub(super) fn throughput(valgrind: &str, out: &Path) -> Result<Vec<String>, String> {
    let program = throughput_program()?;
    let mut lines = Vec::new();
    let mut baseline: Option<(f64, f64, f64)> = None;
    for (config, what) in CONFIGS {
        let one = wall_clock(&program, config, 1)?;
        let two = wall_clock(&program, config, 2)?;
        let count = instructions(&program, valgrind, config, out)?;
        let (base_one, base_two, base_count) = *baseline.get_or_insert((one, two, count));
        lines.push(format!(
            "throughput {config}: {what}: {:.2} M pairs/s ({one:.1} ns/pair, median of 11), {count:.0} instructions/pair; \
             vs malloc: {:.2}x time, {:.2}x instructions; 2 threads: {:.2} M pairs/s ({:.2}x of 1 thread, malloc {:.2}x)",
            1e3 / one,
            one / base_one,
            count / base_count,
            1e3 / two,
            one / two,
            base_one / base_two,
        ));
    }
    Ok(lines)
}
