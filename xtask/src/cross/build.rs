//! Building with the cross toolchain: any workspace package's `cdylib` or binary for
//! `x86_64-pc-windows-msvc` ([`build_artifact`]), the driver's `.sys` ([`build_driver`]), the
//! client's `.exe` ([`build_client`]), and the check that a clean rebuild gives the same bytes
//! ([`check_reproducible`]).

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::toolchain::{Toolchain, library_path};
use crate::host::cargo::cargo_home;
use crate::host::files;

/// The Rust target of the driver.
pub const TARGET: &str = "x86_64-pc-windows-msvc";
/// The Rust target of the ARM64 driver (`cargo xtask driver --arm64`).
pub const ARM64_TARGET: &str = "aarch64-pc-windows-msvc";

/// Builds the library of workspace package `package` (a `cdylib` driver) of the workspace at
/// `root` for `target` ([`TARGET`] or [`ARM64_TARGET`]) with the toolchain from
/// [`provision`](super::provision), copies the resulting `<crate>.dll` to `<crate>.sys` next to it,
/// and returns the path of the `.sys`.
///
/// `root` is the folder of the workspace's (or the package's) `Cargo.toml`; the build goes to
/// `<root>/target/cross/<target>/{debug,release}/`. The package's build script must
/// give the kernel-driver link arguments (`/DRIVER /SUBSYSTEM:NATIVE /ENTRY:DriverEntry ...`) as
/// `cargo::rustc-cdylib-link-arg`s; passing them here in `RUSTFLAGS` would make every change to
/// them rebuild `core` and `alloc`.
///
/// How it builds: see [`build_artifact`], which this calls with [`Artifact::Cdylib`] and no
/// features. With the build script's `/Brepro /DEBUG:NONE`, two builds of the same sources give
/// the same bytes.
pub fn build_driver(
    root: &Path,
    tc: &Toolchain,
    target: &str,
    package: &str,
    profile_release: bool,
) -> Result<PathBuf, String> {
    let dll = build_artifact(root, tc, target, package, Artifact::Cdylib, &[], profile_release, "target/cross")?;
    let sys = dll.with_extension("sys");
    files::copy(&dll, &sys)?;
    Ok(sys)
}

/// The workspace package of the user-mode client, its executable, and the feature that enables it.
const CLIENT_PACKAGE: &str = "ntpool-client";
const CLIENT_BIN: &str = "ntpool-client";
const CLIENT_FEATURE: &str = "windows-exe";

/// Builds the user-mode client of the sample driver (package `ntpool-client`, binary
/// `ntpool-client` with its feature `windows-exe`), release profile, for `x86_64-pc-windows-msvc`
/// with the toolchain from [`provision`](super::provision), and returns the path of the `.exe`
/// (`<root>/target/cross/x86_64-pc-windows-msvc/release/ntpool-client.exe`).
///
/// It uses the driver's target folder and flags, and does not touch the driver's files (cargo
/// compiles `core` and `alloc` once more for it: an executable with LTO takes them as bitcode).
/// The client's build script gives the executable's link arguments
/// (`/ENTRY:mainCRTStartup /SUBSYSTEM:CONSOLE /NODEFAULTLIB /Brepro ...`): two builds of the same
/// sources give the same bytes.
pub fn build_client(root: &Path, tc: &Toolchain) -> Result<PathBuf, String> {
    build_artifact(root, tc, TARGET, CLIENT_PACKAGE, Artifact::Bin(CLIENT_BIN), &[CLIENT_FEATURE], true, "target/cross")
}

/// Checks that the driver build is reproducible: builds `package` again from scratch in a target
/// folder of its own (`target/cross-repro`, deleted first) and compares the image with `sys`, the
/// one [`build_driver`] made. Returns a line saying so, or an error giving both sizes and the first
/// differing offset.
pub fn check_reproducible(root: &Path, tc: &Toolchain, package: &str, sys: &Path) -> Result<String, String> {
    let again_dir = root.join("target/cross-repro");
    files::remove_dir_if_present(&again_dir)?;
    let dll = build_artifact(root, tc, TARGET, package, Artifact::Cdylib, &[], true, "target/cross-repro")?;
    let first = files::read(sys)?;
    let second = files::read(&dll)?;
    if first != second {
        let differing = first.iter().zip(&second).position(|(a, b)| a != b).unwrap_or(first.len().min(second.len()));
        return Err(format!(
            "the driver build is not reproducible: {} ({} bytes) and a clean rebuild {} ({} bytes) differ from offset {differing:#x}",
            sys.display(),
            first.len(),
            dll.display(),
            second.len()
        ));
    }
    Ok(format!("reproducible: a clean rebuild in {} gave the same {} bytes", again_dir.display(), first.len()))
}

/// What [`build_artifact`] builds of a package, and which file it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Artifact<'a> {
    /// The package's library (`--lib`), which must be a `cdylib`: the `.dll`.
    Cdylib,
    /// The binary target with this name (`--bin <name>`): the `.exe`.
    Bin(&'a str),
}

/// Builds `artifact` of workspace package `package` of the workspace at `root`, with `features`
/// of that package, for `target` with the toolchain from [`provision`](super::provision), and
/// returns the path of the file cargo produced (a `.dll` or an `.exe`).
///
/// `root` is the folder of the workspace's (or the package's) `Cargo.toml`; the build goes to
/// `<root>/<target_folder>/<target>/{debug,release}/`. Link arguments come from the
/// package's build script (`cargo::rustc-cdylib-link-arg`, `cargo::rustc-link-arg-bins`), not
/// from here: in `RUSTFLAGS` they would make every change to them rebuild `core` and `alloc`.
///
/// How it builds:
/// * `RUSTC` is Debian's compiler, `RUSTC_BOOTSTRAP=1` allows the unstable `-Zbuild-std`, which
///   compiles `core` and `alloc` (with `compiler-builtins-mem`: the kernel has `memcpy`, but no
///   C runtime is linked) from Debian's matching library sources. Their few crates.io
///   dependencies are fetched by cargo like any other.
/// * `RUSTFLAGS` has `--cfg ntpool_linux_cross`, which keeps the WDK crates out of the build, and
///   `--remap-path-prefix` for the workspace, the toolchain and cargo's home, so that no local
///   path ends up in the image. They are the same whatever is built: the driver's and the
///   client's builds in one target folder never invalidate each other's `core` and `alloc`.
/// * `panic = "abort"` for both profiles; in the dev profile `compiler_builtins` is optimised
///   (unoptimised, it references `fma`/`fmaf`, which nothing provides).
/// * `--locked` when the workspace has a `Cargo.lock`.
///
/// `target` is a `*-pc-windows-msvc` target the toolchain's `rustc` knows ([`TARGET`],
/// [`ARM64_TARGET`]); `target_folder` is relative to `root`: `target/cross` for the usual builds.
#[allow(clippy::too_many_arguments)]
pub fn build_artifact(
    root: &Path,
    tc: &Toolchain,
    target: &str,
    package: &str,
    artifact: Artifact<'_>,
    features: &[&str],
    profile_release: bool,
    target_folder: &str,
) -> Result<PathBuf, String> {
    let root = &files::absolute(root)?;
    let manifest = root.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(format!("no Cargo.toml in {}: pass the workspace root", root.display()));
    }
    let target_dir = root.join(target_folder);
    let profile = if profile_release { "release" } else { "dev" };
    let what = match artifact {
        Artifact::Cdylib => format!("`{package}`"),
        Artifact::Bin(name) => format!("`{package}` (binary `{name}`)"),
    };
    eprintln!("cross: building {what} ({profile}) for {target} with rustc {} from Debian", tc.rust_release);

    let mut command = cargo_for(root, tc, target)?;
    command.arg("build").arg("--manifest-path").arg(&manifest).args(["--package", package]);
    match artifact {
        Artifact::Cdylib => command.arg("--lib"),
        Artifact::Bin(name) => command.args(["--bin", name]),
    };
    command
        .args(["--target", target])
        .args(["-Zbuild-std=core,alloc", "-Zbuild-std-features=compiler-builtins-mem"])
        .arg("--target-dir")
        .arg(&target_dir)
        .arg("--message-format=json-render-diagnostics")
        .args(["--config", "profile.dev.panic=\"abort\""])
        .args(["--config", "profile.release.panic=\"abort\""])
        .args(["--config", "profile.dev.package.compiler_builtins.opt-level=3"]);
    if !features.is_empty() {
        command.arg("--features").arg(features.join(","));
    }
    if profile_release {
        command.arg("--release");
    }
    if root.join("Cargo.lock").is_file() {
        command.arg("--locked");
    }

    command
        .env("CARGO_ENCODED_RUSTFLAGS", encoded_rustflags(root, tc)?)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());

    let mut child = command.spawn().map_err(|e| format!("cannot run {}: {e}", tc.cargo.display()))?;
    let Some(stdout) = child.stdout.take() else {
        return Err("cargo's output was not captured".to_owned());
    };
    let mut outputs = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| format!("cannot read cargo's output: {e}"))?;
        outputs.extend(artifact_outputs(&line, package, artifact));
    }
    let status = child.wait().map_err(|e| format!("cannot wait for cargo: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build of `{package}` for {target} failed ({status}); see the errors above"));
    }

    match (outputs.as_slice(), artifact) {
        ([output], _) => Ok(output.clone()),
        ([], Artifact::Cdylib) => {
            Err(format!("cargo built no .dll for `{package}`: its [lib] needs crate-type = [\"cdylib\"]"))
        }
        ([], Artifact::Bin(name)) => Err(format!(
            "cargo built no .exe for binary `{name}` of `{package}`: is it a [[bin]] of the package, \
             and are its required-features among {features:?}?"
        )),
        (_, Artifact::Cdylib) => Err(format!("cargo built several .dll files for `{package}`: {outputs:?}")),
        (_, Artifact::Bin(name)) => {
            Err(format!("cargo built several .exe files for binary `{name}` of `{package}`: {outputs:?}"))
        }
    }
}

/// The cargo of the toolchain, in `root`, set up to build for `target` with Debian's compiler: `RUSTC`
/// and `RUSTDOC` are Debian's, `RUSTC_BOOTSTRAP=1` allows `-Zbuild-std`, `LD_LIBRARY_PATH` finds the
/// compiler's libraries and `lld-link` links; the caller's settings that would change what is built
/// or with what (`RUSTFLAGS`, wrappers, `CARGO_TARGET_DIR`, ...) are removed. The caller adds the
/// subcommand and its arguments.
pub fn cargo_for(root: &Path, tc: &Toolchain, target: &str) -> Result<Command, String> {
    let mut command = Command::new(&tc.cargo);
    command.current_dir(root);
    for variable in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTDOCFLAGS",
        "CARGO_ENCODED_RUSTDOCFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_RUSTC_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTUP_TOOLCHAIN",
    ] {
        command.env_remove(variable);
    }
    command
        .env("RUSTC", &tc.rustc)
        .env("RUSTDOC", tc.rustc.with_file_name("rustdoc"))
        .env("RUSTC_BOOTSTRAP", "1")
        .env("LD_LIBRARY_PATH", library_path(&tc.library_dirs)?)
        .env(linker_variable(target), &tc.linker);
    Ok(command)
}

/// Cargo's variable for the linker of `target`: `CARGO_TARGET_<TRIPLE>_LINKER`.
pub(super) fn linker_variable(target: &str) -> String {
    format!("CARGO_TARGET_{}_LINKER", target.to_uppercase().replace(['-', '.'], "_"))
}

/// The `RUSTFLAGS` of the driver build, encoded for `CARGO_ENCODED_RUSTFLAGS` (separated by
/// 0x1f, so paths with spaces survive).
fn encoded_rustflags(root: &Path, tc: &Toolchain) -> Result<String, String> {
    let mut flags = vec!["--cfg".to_owned(), "ntpool_linux_cross".to_owned()];
    // When several prefixes match, rustc applies the last one given: the toolchain lives inside
    // the workspace (`target/cross-toolchain`), so it comes after the workspace.
    let mut remaps = vec![(root.to_path_buf(), "/build".to_owned())];
    if let Some(cargo_home) = cargo_home() {
        remaps.push((cargo_home, "/cargo".to_owned()));
    }
    // Where the official toolchains say their library sources were.
    remaps.push((tc.rust_src(), format!("/rustc/{}", tc.rust_commit)));
    for (from, to) in remaps {
        // Cargo passes paths as it found them, and `usr/lib/rustlib/src/rust` is a symlink
        // (to `usr/src/rustc-<version>`): remap both the given and the resolved form.
        let given = files::absolute(&from)?;
        let mut forms = vec![given.clone()];
        if let Ok(resolved) = fs::canonicalize(&given) {
            if resolved != given {
                forms.push(resolved);
            }
        }
        // Cargo names packages inside the workspace folder by relative paths, and the
        // toolchain is inside it (`target/cross-toolchain/...`).
        if let Ok(inside) = given.strip_prefix(root) {
            if !inside.as_os_str().is_empty() {
                forms.push(inside.to_path_buf());
            }
        }
        for form in forms {
            let form = form.to_str().ok_or_else(|| format!("path {} is not UTF-8", form.display()))?.to_owned();
            flags.push(format!("--remap-path-prefix={form}={to}"));
        }
    }
    Ok(flags.join("\u{1f}"))
}

/// The files `artifact` of `package` that one `compiler-artifact` message of
/// `cargo --message-format=json` announces: the `.dll` of a `cdylib`, the `.exe` of a binary;
/// nothing for any other line.
fn artifact_outputs(line: &str, package: &str, artifact: Artifact<'_>) -> Vec<PathBuf> {
    let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
        return Vec::new();
    };
    if message["reason"] != "compiler-artifact" {
        return Vec::new();
    }
    let (kind, extension) = match artifact {
        Artifact::Cdylib => ("cdylib", ".dll"),
        Artifact::Bin(_) => ("bin", ".exe"),
    };
    let is_kind = message["target"]["kind"].as_array().is_some_and(|kinds| kinds.iter().any(|k| k == kind));
    // The package id is `path+file:///...#name@version` (or `#version` when the folder is
    // named like the package), or in old cargo `name version (source)`.
    let package_id = message["package_id"].as_str().unwrap_or_default();
    let of_package = package_id.contains(&format!("#{package}@"))
        || package_id.starts_with(&format!("{package} "))
        || package_id.contains(&format!("/{package}#"));
    let ours = match artifact {
        Artifact::Cdylib => of_package || message["target"]["name"] == package.replace('-', "_").as_str(),
        // Binaries of other packages may have the same name: both must match.
        Artifact::Bin(name) => of_package && message["target"]["name"] == name,
    };
    if !is_kind || !ours {
        return Vec::new();
    }
    message["filenames"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|name| name.as_str())
        .filter(|name| name.ends_with(extension))
        .map(PathBuf::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_linker_variable_of_each_target() {
        assert_eq!(linker_variable(TARGET), "CARGO_TARGET_X86_64_PC_WINDOWS_MSVC_LINKER");
        assert_eq!(linker_variable(ARM64_TARGET), "CARGO_TARGET_AARCH64_PC_WINDOWS_MSVC_LINKER");
    }

    #[test]
    fn finds_the_cdylib_of_the_package() {
        let line = r#"{"reason":"compiler-artifact","package_id":"path+file:///w#ntpool-driver@0.1.0","target":{"kind":["cdylib","rlib"],"name":"ntpool_driver"},"filenames":["/w/target/cross/x86_64-pc-windows-msvc/release/ntpool_driver.dll","/w/target/cross/x86_64-pc-windows-msvc/release/libntpool_driver.rlib"]}"#;
        assert_eq!(
            artifact_outputs(line, "ntpool-driver", Artifact::Cdylib),
            [PathBuf::from("/w/target/cross/x86_64-pc-windows-msvc/release/ntpool_driver.dll")]
        );
        assert!(artifact_outputs(line, "other", Artifact::Cdylib).is_empty());
        assert!(artifact_outputs(line, "ntpool-driver", Artifact::Bin("ntpool-driver")).is_empty());
        assert!(artifact_outputs(r#"{"reason":"build-finished","success":true}"#, "x", Artifact::Cdylib).is_empty());
        assert!(artifact_outputs("not json", "x", Artifact::Cdylib).is_empty());
    }

    #[test]
    fn finds_the_executable_of_the_package() {
        let bin = r#"{"reason":"compiler-artifact","package_id":"path+file:///w/client#ntpool-client@0.1.0","target":{"kind":["bin"],"name":"ntpool-client"},"filenames":["/w/target/cross/x86_64-pc-windows-msvc/release/ntpool-client.exe"],"executable":"/w/target/cross/x86_64-pc-windows-msvc/release/ntpool-client.exe"}"#;
        let lib = r#"{"reason":"compiler-artifact","package_id":"path+file:///w/client#ntpool-client@0.1.0","target":{"kind":["lib"],"name":"ntpool_client"},"filenames":["/w/target/cross/x86_64-pc-windows-msvc/release/libntpool_client.rlib"]}"#;
        let bin_of_other = bin.replace("#ntpool-client@", "#other@");
        assert_eq!(
            artifact_outputs(bin, "ntpool-client", Artifact::Bin("ntpool-client")),
            [PathBuf::from("/w/target/cross/x86_64-pc-windows-msvc/release/ntpool-client.exe")]
        );
        assert!(artifact_outputs(lib, "ntpool-client", Artifact::Bin("ntpool-client")).is_empty());
        assert!(artifact_outputs(bin, "ntpool-client", Artifact::Bin("other")).is_empty());
        assert!(artifact_outputs(&bin_of_other, "ntpool-client", Artifact::Bin("ntpool-client")).is_empty());
        assert!(artifact_outputs(bin, "ntpool-client", Artifact::Cdylib).is_empty());
    }
}
