//! `cargo xtask bench`: what ntpool costs, measured.
//!
//! 1. **Zero cost in the real driver.** The release `.sys` exports pairs of functions
//!    (`src/bench_pairs/`): each operation through ntpool and written by hand against the kernel
//!    interface. Their bounds come from the export table and the exception directory (`.pdata`);
//!    `llvm-objdump` disassembles them; instructions and bytes are counted, with the functions each
//!    one calls inside the image that the other side does not call. Ratio ntpool / raw.
//! 2. **Sizes.** The tests that tokens, tags and pools are zero-sized and a box one pointer.
//! 3. **Emulated kernel throughput.** `ntpool/benches/throughput.rs`: allocate + free pairs through
//!    ntpool on the emulated kernel (verifier off, tracking on, special pool) against malloc/free in
//!    the same run, as wall-clock medians (1 and 2 threads) and as instructions per pair counted by
//!    `valgrind --tool=callgrind` (deterministic); whether the targets are met; and the host tests
//!    with special pool on for every allocation (`NTPOOL_SPECIAL_POOL=1`) against without.
//! 4. **Build cost.** Cold (fresh target folders) and warm builds of what `cargo xtask test` compiles.
//!
//! The files: `zero_cost.rs` (1), `throughput.rs` (3), `build_cost.rs` (4); the sizes (2) are a run
//! of the tests, here.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::time::Instant;

use crate::cross;
use crate::host::apt::tool;
use crate::host::cargo::cargo;
use crate::host::files;

mod build_cost;
mod throughput;
mod zero_cost;

/// The parts of the bench, in the order they run.
const PARTS: &[&str] = &["zero-cost", "sizes", "throughput", "build"];

/// Runs the measurements (all, or the `parts` named) and prints one line per measurement, then all
/// of them again as a summary.
pub fn run(root: &Path, parts: &[String]) -> Result<(), String> {
    if let Some(unknown) = parts.iter().find(|p| !PARTS.contains(&p.as_str())) {
        return Err(format!("unknown part {unknown}: the parts are {}", PARTS.join(", ")));
    }
    let wanted = |part: &str| parts.is_empty() || parts.iter().any(|p| p == part);
    let started = Instant::now();
    let out = root.join("target/bench");
    files::create_dir_all(&out)?;
    let mut summary = String::new();

    let toolchain = cross::provision(root)?;
    if wanted("zero-cost") {
        println!("==> zero cost in the release driver (llvm-objdump of the exported pairs)");
        let sys = cross::build_driver(root, &toolchain, cross::TARGET, "ntpool-driver", true)?;
        let objdump = tool(&["llvm-objdump-14", "llvm-objdump"], "llvm")?;
        let (lines, listing) = zero_cost::zero_cost(&sys, &objdump)?;
        let listing_path = out.join("zero-cost.txt");
        fs::write(&listing_path, listing).map_err(|e| format!("cannot write {}: {e}", listing_path.display()))?;
        for line in &lines {
            println!("{line}");
            let _ = writeln!(summary, "{line}");
        }
        println!("    (disassembly of every pair: {})", listing_path.display());
    }

    if wanted("sizes") {
        println!("==> sizes");
        let mut sizes = cargo();
        sizes.args(["test", "-p", "ntpool", "--test", "pool", "--locked", "-q", "--", "wide", "zero_sized"]);
        let line = match sizes.output() {
            Ok(output) if output.status.success() => {
                let text = String::from_utf8_lossy(&output.stdout);
                let passed = text.lines().find(|l| l.starts_with("test result")).unwrap_or("").trim().to_owned();
                if !passed.starts_with("test result: ok.") || passed.starts_with("test result: ok. 0 passed") {
                    return Err(format!("the size tests ran no test: {passed}"));
                }
                format!(
                    "sizes: tokens, tags, pools and allocators are zero-sized, a box and its Option one pointer: {passed}"
                )
            }
            Ok(output) => return Err(format!("the size tests failed:\n{}", String::from_utf8_lossy(&output.stdout))),
            Err(e) => return Err(format!("cannot run the size tests: {e}")),
        };
        println!("{line}");
        let _ = writeln!(summary, "{line}");
    }

    if wanted("throughput") {
        println!("==> emulated kernel throughput (ntpool/benches/throughput.rs)");
        let valgrind = tool(&["valgrind"], "valgrind")?;
        // Printed as they are measured (the part takes a minute or two).
        for line in throughput::throughput(&valgrind, &out)? {
            let _ = writeln!(summary, "{line}");
        }
    }

    if wanted("build") {
        println!("==> build cost (fresh target folders, then again)");
        for line in build_cost::build_cost(root, &toolchain)? {
            println!("{line}");
            let _ = writeln!(summary, "{line}");
        }
    }

    println!("\n{summary}bench: done in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}
