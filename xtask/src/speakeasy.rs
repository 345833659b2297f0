//! `cargo xtask speakeasy`: the sample driver under a second Windows emulator, Mandiant's speakeasy
//! (from PyPI, in a virtual environment under `target/speakeasy/`), which nobody here wrote: its PE
//! loader, x64 emulation, pool allocator and I/O manager run `DriverEntry`, the `IRP_MJ_*` routines
//! and `DriverUnload`, and `xtask/speakeasy/driver.py` checks every pool call (each block freed once
//! with its own tag) and says which routines speakeasy lacks and what stands in for them.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::host::apt::{install_command, running_as_root, tool};
use crate::host::process::run_bounded;

/// The speakeasy release the check is written against.
const VERSION: &str = "1.5.11";

/// How long one run may take (it takes seconds).
const TIMEOUT: Duration = Duration::from_secs(300);

/// Runs the driver at `sys` under speakeasy; returns the check's report, or fails with it.
pub fn run(root: &Path, sys: &Path) -> Result<String, String> {
    let python = environment(root)?;
    let script = root.join("xtask/speakeasy/driver.py");
    let out = root.join("target/speakeasy/driver.txt");
    let mut command = Command::new(&python);
    command.arg(&script).arg(sys);
    command.stdout(crate::host::files::create_file(&out)?);
    let (status, took) = run_bounded("speakeasy", &mut command, TIMEOUT)?;
    let report = String::from_utf8_lossy(&crate::host::files::read(&out)?).into_owned();
    if !status.success() {
        return Err(format!("the driver under speakeasy ({status}):\n{report}"));
    }
    Ok(format!("{}(speakeasy run: {:.1} s)", report, took.as_secs_f64()))
}

/// The virtual environment's Python, with speakeasy [`VERSION`] installed: made (and
/// `python3-venv` installed with apt, as root) when missing.
fn environment(root: &Path) -> Result<std::path::PathBuf, String> {
    let venv = root.join("target/speakeasy/venv");
    let python = venv.join("bin/python");
    let has_pip = || Command::new(&python).args(["-m", "pip", "--version"]).output().is_ok_and(|o| o.status.success());
    if !has_pip() {
        // Missing, or left half made by a `python3 -m venv` without `python3-venv`.
        crate::host::files::remove_dir_if_present(&venv)?;
        let system = tool(&["python3"], "python3")?;
        let make = || Command::new(&system).args(["-m", "venv"]).arg(&venv).status();
        if !make().is_ok_and(|status| status.success()) {
            if !running_as_root() {
                return Err("python3 cannot make a virtual environment: run `sudo apt-get install python3-venv`".into());
            }
            println!("    installing python3-venv (apt-get install -y python3-venv)");
            let installed = install_command(&["python3-venv"]).status().map_err(|e| format!("apt-get: {e}"))?;
            if !installed.success() || !make().is_ok_and(|status| status.success()) || !has_pip() {
                return Err(format!("cannot make the virtual environment {}", venv.display()));
            }
        }
    }
    let installed = Command::new(&python)
        .args(["-c", "import importlib.metadata as m; print(m.version('speakeasy-emulator'))"])
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == VERSION);
    if !installed {
        println!("    installing speakeasy-emulator {VERSION} (pip, into {})", venv.display());
        let status = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("speakeasy-emulator=={VERSION}"))
            .status()
            .map_err(|e| format!("pip: {e}"))?;
        if !status.success() {
            return Err(format!("pip install speakeasy-emulator=={VERSION} failed ({status})"));
        }
    }
    Ok(python)
}
