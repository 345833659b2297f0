//! The project's Linux tooling: `cargo xtask <command>`.
//!
//! * `run` (= `wine`): build the driver and its client, load the driver under Wine, run the client
//!   against it, unload it, and print what it did, checked against Wine's trace of every pool call.
//! * `test`: every test of the workspace (unit, integration, compile-fail, doc tests), clippy,
//!   rustfmt, the cross build of the driver with its PE checks and a reproducibility check, the ARM64
//!   build with its checks, the packaged crates (`package`), the documentation (`docs`), the client's
//!   build, and the Wine run; the same for the sample video miniport and its `videoprt.sys` test
//!   fixture (`video`).
//! * `emulate`: load the sample driver on ntpool's emulated kernel (Driver Verifier's checks on),
//!   run `DriverEntry` and `DriverUnload`, and print its debug output and a poolmon-style table.
//! * `driver`: cross-build the driver into a real `.sys` for x86_64 Windows, check the PE, and print
//!   its path as the last line; `driver --arm64`: the same for ARM64 Windows
//!   (`aarch64-pc-windows-msvc`), with llvm-readobj's second reading. `client`: the same for
//!   `ntpool-client.exe`.
//! * `package`: package the publishable crates (`ntpool-sys`, `ntpool-macros`, `ntpool`) as crates.io
//!   would receive them, each verified by building it from its package, and run the packaged
//!   `ntpool`'s tests from the packaged sources.
//! * `docs`: the documentation of `ntpool` and `ntpool-sys` with warnings as errors, for the host and
//!   for both Windows targets (on the cross toolchain).
//! * `video`: cross-build the sample video miniport and the `videoprt.sys` test fixture, check both
//!   images, and load the miniport under Wine against the fixture with the VideoPort pool trace.
//! * `speakeasy`: the driver under a second Windows emulator (speakeasy, from PyPI), every pool
//!   call checked.
//! * `bench`: what ntpool costs: the release driver's ntpool functions against hand-written ones
//!   (instructions and bytes), type sizes, the emulated kernel's throughput against malloc, build
//!   times (see `bench/`).
//!
//! This file is the command line; what each command does is in the modules, by purpose:
//! `host/` (what every command needs of the Linux host: the workspace, commands, apt, files),
//! `cross/` (Debian's toolchain and the cross build), `pe/` (the checks on a built image),
//! `images.rs` (the project's images built and checked), `wine/` (a run under Wine and its checks),
//! `soak.rs`, `emulate.rs`, `fuzz.rs`, `sanitize.rs`, `bench/`, `package.rs`, `docs.rs`, and
//! `suite.rs` (`cargo xtask test`).

use std::path::PathBuf;
use std::process::ExitCode;

use host::cargo::root;

mod bench;
mod cross;
mod docs;
mod emulate;
mod fuzz;
mod host;
mod images;
mod package;
mod pe;
mod sanitize;
mod soak;
mod speakeasy;
mod suite;
mod wine;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => wine(&[]),
        Some("emulate") => emulate::run(),
        Some("wine") => wine(&args[1..]),
        Some("test") => suite::run(),
        Some("bench") => bench::run(&root(), &args[1..]),
        Some("driver") => driver(&args[1..]),
        Some("package") => package::run(&root()),
        Some("docs") => docs::run(&root()),
        Some("client") => images::client(&root()).map(|exe| println!("{}", exe.display())),
        Some("video") => video(&args[1..]),
        Some("fuzz") => fuzz::command(&root(), &args[1..]),
        Some("speakeasy") => images::driver(&root()).and_then(|sys| speakeasy::run(&root(), &sys)).map(|report| {
            println!("{report}");
        }),
        _ => Err(usage()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> String {
    "usage: cargo xtask <run | test | bench | emulate | driver | client | wine | video | fuzz | speakeasy | package | docs>\n  \
     run      build the driver and its client, load the driver under Wine, run the client, unload,\n  \
              and print what it did (same as `wine`)\n  \
     test     every test, clippy, the driver's cross builds (x64, ARM64), their PE checks, the\n  \
              packages, the documentation and the Wine run\n  \
     bench    zero cost in the release .sys, sizes, emulated kernel throughput, build cost\n  \
              [zero-cost] [sizes] [throughput] [build] (default: all)\n  \
     emulate  load the sample driver on the emulated kernel and print what it allocated and freed\n  \
     driver   cross-build the driver .sys for x86_64 Windows and check it [--arm64: for ARM64\n  \
              Windows (aarch64-pc-windows-msvc), checked, and read again by llvm-readobj]\n  \
     client   cross-build the user-mode client ntpool-client.exe for x86_64 Windows\n  \
     wine     load the driver under Wine (3 times by default), run the client each time, check the\n  \
              pool trace [--cycles N] [--no-client] [--sys PATH] [--client PATH]\n  \
              --soak: the soak instead (100 cycles, 4 client threads, 40,400 requests)\n  \
     video    cross-build the sample video miniport and the videoprt.sys test fixture, check both,
              and load the miniport under Wine against the fixture [--no-wine] [--cycles N]\n  \
     fuzz     libFuzzer on the driver's IOCTL dispatcher (emulated kernel, Driver Verifier checks)\n  \
              [--seconds N (60)] | --reproduce FILE (runs one input, traced) | --seeds (rewrites\n  \
              fuzz/corpus/ioctl)\n  \
     speakeasy  load the driver under speakeasy, a second Windows emulator (pip, target/speakeasy),
              and check every pool call\n  \
     package  cargo package the publishable crates (verified) and test the packaged ntpool\n  \
     docs     cargo doc -D warnings of ntpool and ntpool-sys: host, x86_64 and ARM64 Windows"
        .into()
}

/// `cargo xtask driver [--arm64]`: cross-builds the driver for x86_64 (or ARM64) Windows, checks the
/// image, and prints its path as the last line.
fn driver(args: &[String]) -> Result<(), String> {
    let sys = match args {
        [] => images::driver(&root())?,
        [flag] if flag == "--arm64" => images::driver_arm64(&root())?,
        _ => return Err(usage()),
    };
    println!("{}", sys.display());
    Ok(())
}

/// `cargo xtask wine [--cycles N] [--no-client] [--sys PATH] [--client PATH] [--soak]`: builds the
/// driver and the client (unless given or `--no-client`), and checks them under Wine with
/// [`wine::run`], or runs the full soak ([`soak::FULL`], `--cycles` overriding its cycles).
fn wine(args: &[String]) -> Result<(), String> {
    let (mut cycles, mut sys, mut exe, mut with_client, mut soak) = (None, None, None, true, false);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value\n{}", usage()));
        match arg.as_str() {
            "--cycles" => cycles = Some(value()?.parse().map_err(|e| format!("--cycles: {e}"))?),
            "--soak" => soak = true,
            "--sys" => sys = Some(PathBuf::from(value()?)),
            "--client" => exe = Some(PathBuf::from(value()?)),
            "--no-client" => with_client = false,
            _ => return Err(usage()),
        }
    }
    let root = root();
    let sys = match sys {
        Some(sys) => sys,
        None => images::driver(&root)?,
    };
    let exe = match exe {
        Some(exe) => Some(exe),
        None if with_client => Some(images::client(&root)?),
        None => None,
    };
    if soak {
        let exe = exe.ok_or("--soak needs the client")?;
        let plan = soak::Plan { cycles: cycles.unwrap_or(soak::FULL.cycles), ..soak::FULL };
        println!("{}", soak::run(&root, &sys, &exe, plan)?);
        return Ok(());
    }
    let report = wine::run(&root, &sys, exe.as_deref(), cycles.unwrap_or(3))?;
    println!("{report}");
    if exe.is_some() {
        println!("{}", soak::check_hostile_table(&report)?);
    }
    Ok(())
}

/// `cargo xtask video [--no-wine] [--cycles N]`: cross-builds the sample video miniport and the
/// `videoprt.sys` test fixture, checks both images ([`images::video`]), and loads the miniport under
/// Wine against the fixture ([`wine::run_video`]).
fn video(args: &[String]) -> Result<(), String> {
    let (mut cycles, mut with_wine) = (3, true);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--no-wine" => with_wine = false,
            "--cycles" => {
                let value = args.next().ok_or_else(|| format!("--cycles needs a value\n{}", usage()))?;
                cycles = value.parse().map_err(|e| format!("--cycles: {e}"))?;
            }
            _ => return Err(usage()),
        }
    }
    let root = root();
    let toolchain = cross::provision(&root)?;
    let video = images::video(&root, &toolchain)?;
    println!("{}", video.report);
    if with_wine {
        println!("{}", wine::run_video(&root, &video.miniport, &video.fixture, cycles)?);
    }
    println!("{}", video.miniport.display());
    Ok(())
}
