//! `cargo xtask fuzz`: libFuzzer on the sample driver's IOCTL dispatcher, on the emulated kernel
//! with Driver Verifier's checks (the target and its input format: `fuzz/`).
//!
//! The target is built the way cargo-fuzz builds it, without needing cargo-fuzz: libfuzzer-sys
//! (which compiles libFuzzer) and LLVM's SanitizerCoverage through `RUSTFLAGS`, in release mode with
//! debug assertions, into `target/fuzz/`. With the nightly toolchain (when `rustup toolchain list`
//! has one) AddressSanitizer is on too; otherwise the stable toolchain builds it without.
//!
//! The seed corpus `fuzz/corpus/ioctl/` (meaningful requests, written by `--seeds`) stays as it is;
//! what the fuzzer finds goes to `target/fuzz/corpus/ioctl/`, crashes to
//! `target/fuzz/artifacts/ioctl/`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::host::cargo::{HOST_TRIPLE, nightly_available, toolchain_cargo};

/// The fuzz target's name.
const TARGET: &str = "ioctl";
/// Largest input libFuzzer makes (the seeds stay below it).
const MAX_LEN: u32 = 4096;

/// What a bounded run did, from libFuzzer's own figures.
pub struct Summary {
    /// Inputs executed (`stat::number_of_executed_units`).
    pub executions: u64,
    /// Coverage: `cov` (edges) and `ft` (features) of the last status line.
    pub cov: u64,
    /// Features.
    pub ft: u64,
    /// Corpus entries at the end.
    pub corpus: u64,
    /// Whether AddressSanitizer was on.
    pub asan: bool,
    /// Seconds the build took.
    pub build_seconds: f64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "fuzz: {} executions, coverage cov: {} ft: {}, corpus {} inputs, no crash ({}; build {:.0} s)",
            self.executions,
            self.cov,
            self.ft,
            self.corpus,
            if self.asan { "nightly, AddressSanitizer on" } else { "stable, without AddressSanitizer" },
            self.build_seconds
        )
    }
}

/// `cargo xtask fuzz [--seconds N] [--reproduce FILE] [--seeds]`.
pub fn command(root: &Path, args: &[String]) -> Result<(), String> {
    let usage = "usage: cargo xtask fuzz [--seconds N] | --reproduce FILE | --seeds";
    let mut args = args.iter();
    let mut seconds = 60;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                let value = args.next().ok_or(usage)?;
                seconds = value.parse().map_err(|e| format!("--seconds {value}: {e}"))?;
            }
            "--reproduce" => return reproduce(root, Path::new(args.next().ok_or(usage)?)),
            "--seeds" => return seeds(root),
            _ => return Err(usage.into()),
        }
    }
    println!("{}", run(root, seconds)?);
    Ok(())
}

/// Builds the fuzz target; returns its path and whether AddressSanitizer is in.
fn build(root: &Path) -> Result<(PathBuf, bool), String> {
    let asan = nightly_available();
    let mut flags = vec![
        "-Cpasses=sancov-module",
        "-Cllvm-args=-sanitizer-coverage-level=4",
        "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
        "-Cllvm-args=-sanitizer-coverage-pc-table",
        "-Cllvm-args=-sanitizer-coverage-trace-compares",
        "--cfg=fuzzing",
        "-Cforce-frame-pointers=yes",
    ];
    if asan {
        flags.push("-Zsanitizer=address");
    }
    let target_dir = root.join("target/fuzz");
    let mut build = toolchain_cargo(root, asan.then_some("nightly"));
    build
        .args(["build", "--locked", "--release", "--manifest-path", "fuzz/Cargo.toml", "--target", HOST_TRIPLE])
        .args(["--bin", TARGET])
        .env("RUSTFLAGS", flags.join(" "))
        .env("CARGO_TARGET_DIR", &target_dir);
    let status = build.status().map_err(|e| format!("cargo build of the fuzz target: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building the fuzz target failed ({status}); it needs a C++ compiler for libFuzzer \
             (Debian: apt-get install g++)"
        ));
    }
    Ok((target_dir.join(HOST_TRIPLE).join("release").join(TARGET), asan))
}

/// Fuzzes for `seconds`, starting from the seeds and what earlier runs found.
pub fn run(root: &Path, seconds: u64) -> Result<Summary, String> {
    let started = Instant::now();
    let (fuzzer, asan) = build(root)?;
    let build_seconds = started.elapsed().as_secs_f64();
    let work = root.join("target/fuzz");
    let corpus = work.join("corpus").join(TARGET);
    let artifacts = work.join("artifacts").join(TARGET);
    for dir in [&corpus, &artifacts] {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let log_path = work.join(format!("{TARGET}.log"));
    let log = std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    println!("fuzzing {TARGET} for {seconds} s (log: {})", log_path.display());
    let status = Command::new(&fuzzer)
        .arg(&corpus)
        .arg(root.join("fuzz/corpus").join(TARGET))
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-max_len={MAX_LEN}"))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .args(["-timeout=30", "-rss_limit_mb=4096", "-print_final_stats=1", "-use_value_profile=1"])
        // Pool leaks are the emulated kernel's to report (every input ends with its leak check);
        // LeakSanitizer's re-runs of every input that allocates more than it frees on the host would
        // cost two thirds of the executions. The sanitizer step runs LeakSanitizer on the tests.
        .arg("-detect_leaks=0")
        .stdout(Stdio::null())
        .stderr(log)
        .status()
        .map_err(|e| format!("{}: {e}", fuzzer.display()))?;
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    if !status.success() {
        let tail: Vec<&str> = text.lines().rev().take(60).collect::<Vec<_>>().into_iter().rev().collect();
        let crash = text.lines().find_map(|line| line.split("Test unit written to ").nth(1)).unwrap_or("(none)");
        return Err(format!(
            "the fuzzer found a crash ({status}):\n{}\ninput: {crash}\nreproduce: cargo xtask fuzz --reproduce {crash}",
            tail.join("\n")
        ));
    }
    let number = |line: &str, key: &str| -> Option<u64> {
        line.split_whitespace().skip_while(|word| *word != key).nth(1)?.split('/').next()?.parse().ok()
    };
    let done = text.lines().rev().find(|line| line.contains(" cov: ")).unwrap_or_default();
    let executions = text.lines().find_map(|line| line.strip_prefix("stat::number_of_executed_units:"));
    let summary = Summary {
        executions: executions.and_then(|n| n.trim().parse().ok()).unwrap_or(0),
        cov: number(done, "cov:").unwrap_or(0),
        ft: number(done, "ft:").unwrap_or(0),
        corpus: number(done, "corp:").unwrap_or(0),
        asan,
        build_seconds,
    };
    // A run that executed nothing, or whose log says nothing of coverage, proves nothing.
    if summary.executions == 0 || summary.cov == 0 {
        return Err(format!(
            "the fuzzer ran no input or reported no coverage ({} executions, cov {}); its log: {}",
            summary.executions,
            summary.cov,
            log_path.display()
        ));
    }
    Ok(summary)
}

/// Runs one input (a crash the fuzzer saved, say) with a trace of every request and answer.
fn reproduce(root: &Path, input: &Path) -> Result<(), String> {
    let input = std::fs::canonicalize(input).map_err(|e| format!("{}: {e}", input.display()))?;
    let (fuzzer, _) = build(root)?;
    let status = Command::new(&fuzzer)
        .arg(&input)
        .env("NTPOOL_FUZZ_TRACE", "1")
        .env("RUST_BACKTRACE", "1")
        .status()
        .map_err(|e| format!("{}: {e}", fuzzer.display()))?;
    if status.success() {
        println!("{}: runs clean", input.display());
        Ok(())
    } else {
        Err(format!("{}: reproduced ({status}), see above", input.display()))
    }
}

/// Rewrites the seed corpus from the meaningful requests in `fuzz/src/bin/seeds.rs`.
fn seeds(root: &Path) -> Result<(), String> {
    let dir = root.join("fuzz/corpus").join(TARGET);
    let mut run = toolchain_cargo(root, None);
    run.args(["run", "--locked", "--manifest-path", "fuzz/Cargo.toml", "--bin", "seeds", "--"])
        .arg(&dir)
        .env("CARGO_TARGET_DIR", root.join("target/fuzz-seeds"))
        // The driver as the fuzz target builds it (without `DriverEntry`'s self-test), so that the
        // seeds that fail the nth allocation fail the same one there.
        .env("RUSTFLAGS", "--cfg=fuzzing");
    let status = run.status().map_err(|e| format!("cargo run --bin seeds: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("writing the seeds failed ({status})")) }
}
