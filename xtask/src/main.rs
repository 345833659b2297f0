//! The project's Linux tooling: `cargo xtask <command>`.
//!
//! * `run` (= `wine`): build the driver and its client, load the driver under Wine, run the client
//!   against it, unload it, and print what it did, checked against Wine's trace of every pool call.
//! * `test`: every test of the workspace (unit, integration, compile-fail, doc tests), clippy,
//!   rustfmt, the cross build of the driver with its PE checks and a reproducibility check, the
//!   client's build, and the Wine run; the same for the sample video miniport and its `videoprt.sys`
//!   test fixture (`video`).
//! * `emulate`: load the sample driver on ntpool's emulated kernel (Driver Verifier's checks on),
//!   run `DriverEntry` and `DriverUnload`, and print its debug output and a poolmon-style table.
//! * `driver`: cross-build the driver into a real `.sys` for x86_64 Windows, check the PE, and print
//!   its path as the last line. `client`: the same for `ntpool-client.exe`.
//! * `video`: cross-build the sample video miniport and the `videoprt.sys` test fixture, check both
//!   images, and load the miniport under Wine against the fixture with the VideoPort pool trace.
//! * `bench`: what ntpool costs: the release driver's ntpool functions against hand-written ones
//!   (instructions and bytes), type sizes, the emulated kernel's throughput against malloc, build
//!   times (see `bench.rs`).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

mod bench;
mod cross;
mod fuzz;
mod pe;
mod sanitize;
mod soak;
mod video;
mod wine;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => wine(&[]),
        Some("emulate") => emulate(),
        Some("wine") => wine(&args[1..]),
        Some("test") => test(),
        Some("bench") => bench::run(&root(), &args[1..]),
        Some("driver") => driver().map(|sys| println!("{}", sys.display())),
        Some("client") => client().map(|exe| println!("{}", exe.display())),
        Some("video") => video(&args[1..]),
        Some("fuzz") => fuzz::command(&root(), &args[1..]),
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
    "usage: cargo xtask <run | test | bench | emulate | driver | client | wine | video | fuzz>\n  \
     run      build the driver and its client, load the driver under Wine, run the client, unload,\n  \
              and print what it did (same as `wine`)\n  \
     test     every test, clippy, the driver's cross build, its PE checks and the Wine run\n  \
     bench    zero cost in the release .sys, sizes, emulated kernel throughput, build cost\n  \
              [zero-cost] [sizes] [throughput] [build] (default: all)\n  \
     emulate  load the sample driver on the emulated kernel and print what it allocated and freed\n  \
     driver   cross-build the driver .sys for x86_64 Windows and check it\n  \
     client   cross-build the user-mode client ntpool-client.exe for x86_64 Windows\n  \
     wine     load the driver under Wine (3 times by default), run the client each time, check the\n  \
              pool trace [--cycles N] [--no-client] [--sys PATH] [--client PATH]\n  \
              --soak: the soak instead (100 cycles, 4 client threads, 40,400 requests)\n  \
     video    cross-build the sample video miniport and the videoprt.sys test fixture, check both,
              and load the miniport under Wine against the fixture [--no-wine] [--cycles N]\n  \
     fuzz     libFuzzer on the driver's IOCTL dispatcher (emulated kernel, Driver Verifier checks)\n  \
              [--seconds N (60)] | --reproduce FILE (runs one input, traced) | --seeds (rewrites\n  \
              fuzz/corpus/ioctl)"
        .into()
}

/// The workspace root (the parent of this crate's directory).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root());
    command
}

/// Runs a command, echoing it, and fails with its description if it fails.
fn step(what: &str, mut command: Command) -> Result<(), String> {
    println!("==> {what}");
    let started = Instant::now();
    let status = command.status().map_err(|e| format!("{what}: cannot start: {e}"))?;
    if !status.success() {
        return Err(format!("{what} failed ({status})"));
    }
    println!("<== {what}: ok in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn emulate() -> Result<(), String> {
    use ntpool::emulated::Kernel;
    use ntpool_driver::host;

    let kernel = Kernel::builder().driver_name("ntpool_driver.sys").build();
    println!("Loading ntpool_driver on the emulated kernel (Driver Verifier checks on)\n");
    let (status, after_entry, unload_output) = kernel.run(|| {
        let loaded = host::load();
        for line in &loaded.output {
            println!("  DbgPrint: {line}");
        }
        println!("  DriverEntry returned {:#010x}\n", loaded.status as u32);
        let after_entry = kernel.pool_usage();
        let unload_output = loaded.driver.map(host::LoadedDriver::unload).unwrap_or_default();
        (loaded.status, after_entry, unload_output)
    });
    println!("Pool in use while loaded:\n{after_entry}");
    for line in &unload_output {
        println!("  DbgPrint: {line}");
    }
    println!("\nPool after DriverUnload (allocations and frees per tag):\n{}", kernel.pool_usage());
    if status < 0 {
        return Err(format!("DriverEntry failed with {:#010x}", status as u32));
    }
    kernel.verify_unload().map_err(|bug_check| bug_check.to_string())?;
    println!("Driver Verifier (emulated): no violation, nothing leaked.");
    Ok(())
}

/// The systematic low resources simulation (tests/low_resources.rs), run on its own so that its
/// figures (runs, allocation sites) show.
const LOW_RESOURCES_TEST: &str = "every_allocation_failing_in_turn_over_the_whole_driver_life";

/// The bounded fuzz run of `cargo xtask test`.
const FUZZ_SECONDS: u64 = 60;

fn test() -> Result<(), String> {
    let started = Instant::now();
    // What the steps need from Debian besides Rust (Wine is seen to by the Wine step): mingw-w64's
    // DDK headers (`tests/declarations.rs`), a C++ compiler (libFuzzer), llvm-readobj.
    println!("==> the Debian tools the steps need");
    for (names, package) in [
        (&["x86_64-w64-mingw32-gcc"][..], "gcc-mingw-w64-x86-64"),
        (&["g++"][..], "g++"),
        (&["llvm-readobj", "llvm-readobj-14"][..], "llvm"),
    ] {
        println!("<== {package}: {}", bench::tool(names, package)?);
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
    if sanitize::available() {
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
    let sys = driver()?;
    println!("<== driver: {} in {:.1} s", sys.display(), timer.elapsed().as_secs_f64());
    println!("==> llvm-readobj agrees on the image's headers and imports");
    println!("<== {}", readobj_agrees(&sys)?);
    println!("==> a clean rebuild of the driver gives the same bytes");
    let root = root();
    let toolchain = cross::provision(&root)?;
    let timer = Instant::now();
    let reproducible = cross::check_reproducible(&root, &toolchain, "ntpool-driver", &sys)?;
    println!("<== {reproducible} in {:.1} s", timer.elapsed().as_secs_f64());
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
    let timer = Instant::now();
    test_video(&root, &toolchain)?;
    println!("<== video: ok in {:.1} s", timer.elapsed().as_secs_f64());
    println!("\nall checks passed in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn client() -> Result<PathBuf, String> {
    let root = root();
    let toolchain = cross::provision(&root)?;
    cross::build_client(&root, &toolchain)
}

fn driver() -> Result<PathBuf, String> {
    let root = root();
    let toolchain = cross::provision(&root)?;
    let sys = cross::build_driver(&root, &toolchain, "ntpool-driver", true)?;
    let report = pe::verify(&sys)?;
    println!("{report}");
    Ok(sys)
}

/// A second, independent reading of the driver image: llvm-readobj's view of the headers and the
/// imports must show what `pe::verify` checked.
fn readobj_agrees(sys: &Path) -> Result<String, String> {
    let output = ["llvm-readobj", "llvm-readobj-14"]
        .iter()
        .find_map(|tool| Command::new(tool).args(["--file-headers", "--coff-imports"]).arg(sys).output().ok())
        .ok_or("llvm-readobj is not installed (Debian: apt-get install llvm)")?;
    if !output.status.success() {
        return Err(format!("llvm-readobj failed on {}: {}", sys.display(), String::from_utf8_lossy(&output.stderr)));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let modules: Vec<&str> =
        text.lines().filter_map(|line| line.trim().strip_prefix("Name: ")).filter(|name| name.contains('.')).collect();
    let expected = [
        ("Machine: IMAGE_FILE_MACHINE_AMD64", "AMD64"),
        ("Magic: 0x20B", "PE32+"),
        ("Subsystem: IMAGE_SUBSYSTEM_NATIVE", "subsystem NATIVE"),
    ];
    let missing: Vec<&str> = expected.iter().filter(|(line, _)| !text.contains(line)).map(|(_, what)| *what).collect();
    if !missing.is_empty() || modules != ["ntoskrnl.exe"] || text.contains("ExAllocatePool2") {
        return Err(format!(
            "llvm-readobj disagrees: missing {missing:?}, import modules {modules:?}, ExAllocatePool2 imported: {}\n{text}",
            text.contains("ExAllocatePool2")
        ));
    }
    Ok("llvm-readobj: AMD64, PE32+, subsystem NATIVE, imports from ntoskrnl.exe only, no ExAllocatePool2".into())
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
        None => driver()?,
    };
    let exe = match exe {
        Some(exe) => Some(exe),
        None if with_client => Some(client()?),
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

/// The video part of `cargo xtask test`: the miniport and the `videoprt.sys` fixture cross-built and
/// checked, and the miniport under Wine against the fixture.
fn test_video(root: &Path, toolchain: &cross::Toolchain) -> Result<(), String> {
    println!("==> cargo xtask video (the video miniport and the videoprt.sys fixture: cross build, PE checks)");
    let images = video::build(root, toolchain)?;
    println!("{}", images.report);
    println!("==> the video miniport under Wine against the videoprt.sys fixture, with the pool trace");
    println!("{}", wine::run_video(root, &images.miniport, &images.fixture, 3)?);
    Ok(())
}

/// `cargo xtask video [--no-wine] [--cycles N]`: cross-builds the sample video miniport and the
/// `videoprt.sys` test fixture, checks both images ([`video::build`]), and loads the miniport under
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
    let images = video::build(&root, &toolchain)?;
    println!("{}", images.report);
    if with_wine {
        println!("{}", wine::run_video(&root, &images.miniport, &images.fixture, cycles)?);
    }
    println!("{}", images.miniport.display());
    Ok(())
}
