//! `cargo xtask test`: every check of the project in one run, each step echoed with its time: the
//! Debian tools the steps need, every test of the workspace, the systematic low resources
//! simulation, a bounded fuzz run, the host tests under AddressSanitizer, clippy, rustfmt, the
//! driver's cross build with its PE checks, llvm-readobj's second reading and a reproducibility
//! check, the ARM64 driver's cross build with its PE checks and llvm-readobj's reading, the packaged
//! crates (`cargo xtask package`), the documentation for the host and both Windows targets
//! (`cargo xtask docs`), the client's build, the Wine run with the hostile-input table, a short soak,
//! the driver under a second emulator (speakeasy), and the video miniport with its `videoprt.sys`
//! fixture (built, checked, and run under Wine).

use std::path::Path;
use std::time::Instant;

use crate::host::apt::tool;
use crate::host::cargo::{cargo, nightly_available, root};
use crate::host::process::step;
use crate::{cross, docs, fuzz, images, package, pe, sanitize, soak, speakeasy, wine};

/// The systematic low resources simulation (tests/low_resources.rs), run on its own so that its
/// figures (runs, allocation sites) show.
const LOW_RESOURCES_TEST: &str = "every_allocation_failing_in_turn_over_the_whole_driver_life";

/// The bounded fuzz run of `cargo xtask test`.
const FUZZ_SECONDS: u64 = 60;

/// Runs every step in turn; stops at the first that fails.
pub fn run() -> Result<(), String> {
    let started = Instant::now();
    // What the steps need from Debian besides Rust (Wine is seen to by the Wine step): mingw-w64's
    // DDK headers (`tests/declarations.rs`), a C++ compiler (libFuzzer), llvm-readobj.
    println!("==> the Debian tools the steps need");
    for (names, package) in [
        (&["x86_64-w64-mingw32-gcc"][..], "gcc-mingw-w64-x86-64"),
        (&["g++"][..], "g++"),
        (&["llvm-readobj", "llvm-readobj-14"][..], "llvm"),
    ] {
        println!("<== {package}: {}", tool(names, package)?);
    }
    let mut tests = cargo();
    tests.args(["test", "--workspace", "--locked", "--", "--skip", LOW_RESOURCES_TEST]);
    step("cargo test --workspace (unit, integration, compile-fail and doc tests)", tests)?;
    let mut low_resources = cargo();
    low_resources.args(["test", "--locked", "--test", "low_resources", "--", "--nocapture", LOW_RESOURCES_TEST]);
    step("systematic low resources simulation (every allocation failing in turn)", low_resources)?;
    println!("==> cargo xtask fuzz --seconds {FUZZ_SECONDS} (libFuzzer on the driver's IOCTL dispatcher)");
    let fuzz_started = Instant::now();
    let fuzzed = fuzz::run(&root(), FUZZ_SECONDS)?;
    println!("<== {fuzzed}; {:.0} s in all", fuzz_started.elapsed().as_secs_f64());
    if nightly_available() {
        step("the host tests under AddressSanitizer (nightly, target/asan)", sanitize::command(&root()))?;
    } else if std::env::var_os("CI").is_some() {
        return Err("the AddressSanitizer step needs the nightly toolchain (rustup toolchain list)".into());
    } else {
        println!("==> skipped: the host tests under AddressSanitizer need the nightly toolchain");
    }
    let mut clippy = cargo();
    clippy.args(["clippy", "--workspace", "--all-targets", "--locked", "--", "-D", "warnings"]);
    step("cargo clippy --workspace --all-targets", clippy)?;
    let mut format = cargo();
    format.args(["fmt", "--all", "--check"]);
    step("cargo fmt --check", format)?;
    println!("==> cargo xtask driver (cross build and PE checks)");
    let timer = Instant::now();
    let sys = images::driver(&root())?;
    println!("<== driver: {} in {:.1} s", sys.display(), timer.elapsed().as_secs_f64());
    println!("==> llvm-readobj agrees on the image's headers and imports");
    println!("<== {}", pe::readobj_agrees(&sys)?);
    println!("==> a clean rebuild of the driver gives the same bytes");
    let root = root();
    let toolchain = cross::provision(&root)?;
    let timer = Instant::now();
    let reproducible = cross::check_reproducible(&root, &toolchain, "ntpool-driver", &sys)?;
    println!("<== {reproducible} in {:.1} s", timer.elapsed().as_secs_f64());
    println!("==> cargo xtask driver --arm64 (ARM64 cross build, PE checks, llvm-readobj)");
    let timer = Instant::now();
    let arm64 = images::driver_arm64(&root)?;
    println!("<== ARM64 driver: {} in {:.1} s", arm64.display(), timer.elapsed().as_secs_f64());
    println!("==> cargo xtask package (the publishable crates packaged, built and tested from their packages)");
    let timer = Instant::now();
    package::run(&root)?;
    println!("<== package: ok in {:.1} s", timer.elapsed().as_secs_f64());
    println!("==> cargo xtask docs (cargo doc -D warnings: host, x86_64 and ARM64 Windows)");
    let timer = Instant::now();
    docs::run(&root)?;
    println!("<== docs: ok in {:.1} s", timer.elapsed().as_secs_f64());
    println!("==> cargo xtask client");
    let timer = Instant::now();
    let client = cross::build_client(&root, &toolchain)?;
    println!("<== client: {} in {:.1} s", client.display(), timer.elapsed().as_secs_f64());
    println!("==> cargo xtask wine (the driver under Wine, the client against it, the pool trace)");
    let timer = Instant::now();
    let report = wine::run(&root, &sys, Some(&client), 3)?;
    println!("{report}");
    println!("{}", soak::check_hostile_table(&report)?);
    println!("<== wine: ok in {:.1} s", timer.elapsed().as_secs_f64());
    let plan = soak::SHORT;
    println!(
        "==> the soak under Wine ({} cycles, {} threads; `cargo xtask wine --soak` runs {} cycles)",
        plan.cycles,
        plan.threads,
        soak::FULL.cycles
    );
    let timer = Instant::now();
    println!("{}", soak::run(&root, &sys, &client, plan)?);
    println!("<== soak: ok in {:.1} s", timer.elapsed().as_secs_f64());
    println!("==> cargo xtask speakeasy (the driver under a second Windows emulator, the pool calls checked)");
    let timer = Instant::now();
    println!("{}", speakeasy::run(&root, &sys)?);
    println!("<== speakeasy: ok in {:.1} s", timer.elapsed().as_secs_f64());
    let timer = Instant::now();
    test_video(&root, &toolchain)?;
    println!("<== video: ok in {:.1} s", timer.elapsed().as_secs_f64());
    println!("\nall checks passed in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The video part of `cargo xtask test`: the miniport and the `videoprt.sys` fixture cross-built and
/// checked, and the miniport under Wine against the fixture.
fn test_video(root: &Path, toolchain: &cross::Toolchain) -> Result<(), String> {
    println!("==> cargo xtask video (the video miniport and the videoprt.sys fixture: cross build, PE checks)");
    let video = images::video(root, toolchain)?;
    println!("{}", video.report);
    println!("==> the video miniport under Wine against the videoprt.sys fixture, with the pool trace");
    println!("{}", wine::run_video(root, &video.miniport, &video.fixture, 3)?);
    Ok(())
}
