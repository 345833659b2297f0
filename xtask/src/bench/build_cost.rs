//! Build cost (part 4 of `cargo xtask bench`): cold (fresh target folders) and warm builds of the
//! host tests and of the release driver.

use std::path::Path;
use std::time::Instant;

use crate::cross::{self, Artifact};
use crate::host::cargo::cargo;
use crate::host::files;

/// Times the host tests' and the release driver's builds, cold in fresh target folders and then
/// warm; one line each.
pub(super) fn build_cost(root: &Path, toolchain: &cross::Toolchain) -> Result<Vec<String>, String> {
    let scratch = root.join("target/bench/build-cost");
    files::remove_dir_if_present(&scratch)?;
    let host_dir = scratch.join("host");
    let cross_dir = scratch.join("cross");
    let host = |label: &str| -> Result<f64, String> {
        let started = Instant::now();
        let mut command = cargo();
        command.args(["test", "--workspace", "--locked", "--no-run", "-q"]).env("CARGO_TARGET_DIR", &host_dir);
        let status = command.status().map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            return Err(format!("{label} host build failed"));
        }
        Ok(started.elapsed().as_secs_f64())
    };
    let cross = || -> Result<f64, String> {
        let started = Instant::now();
        let folder = cross_dir.to_str().ok_or("target path is not UTF-8")?;
        cross::build_artifact(root, toolchain, cross::TARGET, "ntpool-driver", Artifact::Cdylib, &[], true, folder)?;
        Ok(started.elapsed().as_secs_f64())
    };
    let (host_cold, cross_cold) = (host("cold")?, cross()?);
    let (host_warm, cross_warm) = (host("warm")?, cross()?);
    let _ = files::remove_dir_if_present(&scratch);
    Ok(vec![
        format!(
            "build host: `cargo test --workspace --no-run` (every test of `cargo xtask test`, compiled): \
             cold {host_cold:.0} s, warm {host_warm:.1} s"
        ),
        format!(
            "build driver: release .sys cross build (core and alloc from source, LTO): cold {cross_cold:.0} s, warm {cross_warm:.1} s"
        ),
    ])
}
