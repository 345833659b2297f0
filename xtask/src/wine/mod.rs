//! `cargo xtask wine`: load the real cross-built `ntpool_driver.sys` under Wine, start and stop it
//! a few times (running the user-mode client in between when there is one), and check from Wine's
//! debug log what the driver did.
//!
//! Wine (8.0 here) runs kernel drivers inside `winedevice.exe` on its own `ntoskrnl.exe`. It checks
//! neither pool tags nor leaks nor IRQL, so the checks are made on its log instead:
//!
//! * the driver's `DbgPrint` lines (`warn:debugstr:` channel): the self-test passed, `DriverUnload`
//!   deleted the device and freed the state, once per cycle, and the allocator was the
//!   `ExAllocatePoolWithTag` fallback (Wine has no `ExAllocatePool2`);
//! * the relay trace of the pool routines (`+relay`, limited by the registry value
//!   `HKCU\Software\Wine\Debug\RelayInclude`): calls and returns are paired per thread, the calls
//!   made from the driver's image are kept, and every block must be freed once, with the tag it was
//!   allocated with, before the cycle's `sc stop` returns;
//! * no crash (`Unhandled page fault`), no call of an `unimplemented function`, no ` stub` line;
//! * every cycle the same per-tag counts.
//!
//! Everything runs against a fresh prefix in `<root>/target/wine/prefix`, under one persistent
//! `wineserver` (services.exe and winedevice.exe must outlive each `wine sc` command), every
//! command in its own process group and bounded by a timeout. The log is
//! `<root>/target/wine/wine.log`; each command's standard output is kept in
//! `<root>/target/wine/out/`.
//!
//! The files, by subject: `install.rs` (Wine on the host), `prefix.rs` (the fresh prefix),
//! `session.rs` (the persistent server, the commands, the service), `cycles.rs` (the driver's
//! load/unload cycles with the client), `log.rs` (reading the log's lines), `relay.rs` (the relay
//! trace of the driver's calls, per cycle, with the test logs of `relay/fixtures.rs`), `checks.rs` (the checks on a run), `report.rs` (what a
//! passing run prints, with the per-tag table), `messages.rs` (how failures quote the log), and
//! `video.rs` (the sample video miniport's run against the `videoprt.sys` fixture).

use std::path::Path;

use crate::host::files;

mod checks;
mod cycles;
mod install;
mod log;
mod messages;
mod prefix;
mod relay;
mod report;
mod session;
mod video;

use checks::{check, pool_surface_problems};
use cycles::{SERVICE, SYS_NAME, run_cycles};
use install::ensure_wine;
use messages::problem_report;
use prefix::RunFiles;
use relay::{ImageLayout, Trace};
pub use report::Report;
use session::run_session;
pub use video::run_video;

/// Loads `sys` (a cross-built `ntpool_driver.sys`) under Wine `cycles` times in a fresh prefix
/// under `<root>/target/wine/`, runs `client` (the user-mode test client) while it is loaded when
/// given, and checks Wine's log (see the module documentation). Fails with a message that quotes
/// the relevant log lines.
pub fn run(root: &Path, sys: &Path, client: Option<&Path>, cycles: u32) -> Result<Report, String> {
    run_with_args(root, sys, client, &[], cycles)
}

/// [`run`], with `client_args` passed to the client on its command line.
pub fn run_with_args(
    root: &Path,
    sys: &Path,
    client: Option<&Path>,
    client_args: &[String],
    cycles: u32,
) -> Result<Report, String> {
    if cycles == 0 {
        return Err("wine: at least one load/unload cycle is needed".into());
    }
    let root = files::absolute(root)?;
    let layout = ImageLayout::read(sys)?;
    let client = match client {
        Some(path) => {
            if !path.is_file() {
                return Err(format!("wine: the client {} does not exist", path.display()));
            }
            Some(files::absolute(path)?)
        }
        None => None,
    };
    let wine_version = ensure_wine()?;
    let (run_files, prefix_secs) = RunFiles::fresh(&root, "target/wine", &wine_version)?;
    eprintln!("wine: prefix ready in {prefix_secs:.1} s");
    run_files.install(&[(sys, SYS_NAME)])?;

    let ended = run_session(&run_files, |session| run_cycles(session, client.as_deref(), client_args, cycles))?;
    let trace = Trace::parse(&ended.log, layout, SERVICE);
    let mut problems = ended.problems;
    problems.extend(check(&trace, &ended.cycles, cycles));
    // The client's scenario (no arguments) asks for quota-charged blocks; its soak mode does not.
    let scenario = client.is_some() && client_args.is_empty();
    for cycle in trace.cycles.iter().filter(|cycle| cycle.ended) {
        problems.extend(pool_surface_problems(cycle, scenario));
    }
    if !problems.is_empty() {
        return Err(problem_report(SYS_NAME, &problems, &run_files.log_path));
    }
    Ok(Report::new(wine_version, &run_files, prefix_secs, ended.create_secs, &ended.cycles, &trace))
}
