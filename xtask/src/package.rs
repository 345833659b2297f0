//! `cargo xtask package`: the publishable crates packaged as crates.io would receive them, and the
//! package of `ntpool` tested from its own sources.
//!
//! 1. `cargo package -p ntpool-sys -p ntpool-macros -p ntpool --allow-dirty`, with verification: cargo
//!    (1.90 or later) packages them in dependency order, builds each from its `.crate` alone, and
//!    resolves the not yet published `ntpool-sys` and `ntpool-macros` from the packages it just made.
//!    So each package is complete and self-contained: nothing it needs lies outside it (the README
//!    its documentation includes, the licence files, the test cases).
//!    Cargo unpacks those packages into `$CARGO_HOME/registry/src/<hash>/`, the hash naming the
//!    temporary registry by its path (`package/tmp-registry` in the target folder), and reuses a
//!    folder it finds there without comparing contents: a second run in the same checkout after the
//!    sources changed would build the first run's `ntpool-macros` (and fail, or pass, for the wrong
//!    reason). So every unpacked copy of these crates at this version is removed first. Nor does
//!    cargo compare the sources of a registry crate it has built before, so the packages are built in
//!    a target folder of their own, made anew each run (`target/package-build`).
//! 2. The three `.crate` files are unpacked into `target/package-test/`, each into a folder named
//!    after its crate as in the workspace (so that the compile-fail cases' recorded errors, which name
//!    `ntpool-sys`'s files by such a path, read the same), beside a `Cargo.toml` that makes a
//!    workspace of them and patches crates.io's `ntpool-sys` and `ntpool-macros` with the unpacked
//!    ones, and the packaged `ntpool`'s tests run there with `--all-features`: unit,
//!    integration, compile-fail (trybuild) and doc tests, the README's included, from the published
//!    sources and manifest (whose self dev-dependency, which turns on `videoport` in the workspace,
//!    packaging drops: hence `--all-features`). The workspace's `Cargo.lock` is copied in, so the
//!    dependencies are the versions the workspace is tested with.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::host::cargo::{cargo_home, toolchain_cargo};
use crate::host::files;
use crate::host::process::step;

/// The publishable crates, in dependency order.
pub const CRATES: &[&str] = &["ntpool-sys", "ntpool-macros", "ntpool"];

/// The target folder of `cargo package`, which holds the `.crate` files (in `package/`), relative
/// to the workspace root.
const BUILD_DIR: &str = "target/package-build";

/// Where the packages are unpacked and tested, relative to the workspace root.
const TEST_DIR: &str = "target/package-test";

/// Packages the publishable crates (verified) and runs the packaged `ntpool`'s tests; see the
/// module documentation.
pub fn run(root: &Path) -> Result<(), String> {
    let version = workspace_version(root, "ntpool")?;
    if let Some(home) = cargo_home() {
        remove_unpacked_copies(&home, &version)?;
    }
    files::recreate_dir(&root.join(BUILD_DIR))?;
    let mut package = toolchain_cargo(root, None);
    package.args(["package", "--allow-dirty", "--locked"]).env("CARGO_TARGET_DIR", root.join(BUILD_DIR));
    for name in CRATES {
        package.args(["-p", name]);
    }
    step("cargo package -p ntpool-sys -p ntpool-macros -p ntpool (each built from its .crate)", package)?;

    let test_dir = root.join(TEST_DIR);
    files::recreate_dir(&test_dir)?;
    let mut unpacked = Vec::new();
    for name in CRATES {
        let file = crate_file(root, name, &version);
        let mut tar = Command::new("tar");
        tar.arg("-xzf").arg(&file).arg("-C").arg(&test_dir);
        let status = tar.status().map_err(|e| format!("cannot run tar: {e}"))?;
        if !status.success() {
            return Err(format!("tar -xzf {} failed ({status})", file.display()));
        }
        let (from, to) = (test_dir.join(format!("{name}-{version}")), test_dir.join(name));
        fs::rename(&from, &to).map_err(|e| format!("cannot rename {} to {}: {e}", from.display(), to.display()))?;
        unpacked.push((*name).to_owned());
    }
    fs::write(test_dir.join("Cargo.toml"), wrapper_manifest(&unpacked))
        .map_err(|e| format!("cannot write {}: {e}", test_dir.join("Cargo.toml").display()))?;
    files::copy(&root.join("Cargo.lock"), &test_dir.join("Cargo.lock"))?;

    let mut test = toolchain_cargo(&test_dir, None);
    test.args(["test", "-p", "ntpool", "--all-features"]).env("CARGO_TARGET_DIR", test_dir.join("target"));
    step(&format!("cargo test --all-features in {TEST_DIR}/ntpool (the packaged sources of {version})"), test)?;
    println!("<== packages: {}", package_files(root, &version).join(", "));
    Ok(())
}

/// The `.crate` file `cargo package` made of crate `name` at `version`.
fn crate_file(root: &Path, name: &str, version: &str) -> PathBuf {
    root.join(BUILD_DIR).join(format!("package/{name}-{version}.crate"))
}

/// Removes every folder `<name>-<version>` of the publishable crates from cargo's unpacked registry
/// sources under `cargo_home` (see the module documentation), and nothing else.
fn remove_unpacked_copies(cargo_home: &Path, version: &str) -> Result<(), String> {
    let sources = cargo_home.join("registry/src");
    let Ok(registries) = fs::read_dir(&sources) else {
        return Ok(());
    };
    for registry in registries {
        let registry = registry.map_err(|e| format!("cannot list {}: {e}", sources.display()))?.path();
        for name in CRATES {
            files::remove_dir_if_present(&registry.join(format!("{name}-{version}")))?;
        }
    }
    Ok(())
}

/// The manifest that makes one workspace of the unpacked packages (`ntpool` its member, the other two
/// its path dependencies) and puts them in place of crates.io's.
fn wrapper_manifest(unpacked: &[String]) -> String {
    let mut manifest = String::from(
        "# Written by `cargo xtask package`: the packaged crates, tested together from their sources.\n\
         [workspace]\nresolver = \"3\"\n",
    );
    manifest.push_str(&format!("members = [{}]\n\n[patch.crates-io]\n", quoted(unpacked).join(", ")));
    for (name, folder) in CRATES.iter().zip(unpacked) {
        if *name != "ntpool" {
            manifest.push_str(&format!("{name} = {{ path = \"{folder}\" }}\n"));
        }
    }
    manifest
}

fn quoted(names: &[String]) -> Vec<String> {
    names.iter().map(|name| format!("\"{name}\"")).collect()
}

/// The `version` of workspace package `package`, read from its manifest.
fn workspace_version(root: &Path, package: &str) -> Result<String, String> {
    let manifest = root.join(package).join("Cargo.toml");
    let text = fs::read_to_string(&manifest).map_err(|e| format!("cannot read {}: {e}", manifest.display()))?;
    text.lines()
        .find_map(|line| line.strip_prefix("version = \"").and_then(|rest| rest.strip_suffix('"')))
        .map(str::to_owned)
        .ok_or_else(|| format!("no `version = \"...\"` line in {}", manifest.display()))
}

/// The `.crate` files made, with their sizes.
fn package_files(root: &Path, version: &str) -> Vec<String> {
    CRATES
        .iter()
        .map(|name| {
            let file = crate_file(root, name, version);
            let size = fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
            format!("{name}-{version}.crate ({size} bytes)")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_unpacked_copies_of_the_publishable_crates_at_this_version_are_removed() {
        let home = std::env::temp_dir().join(format!("ntpool-xtask-package-{}", std::process::id()));
        let overlay = home.join("registry/src/-0123456789abcdef");
        let crates_io = home.join("registry/src/index.crates.io-1949cf8c6b5b557f");
        let kept = [overlay.join("ntpool-macros-0.0.9"), crates_io.join("syn-2.0.0")];
        let removed = [overlay.join("ntpool-macros-0.1.0"), overlay.join("ntpool-sys-0.1.0")];
        for dir in kept.iter().chain(&removed) {
            files::create_dir_all(&dir.join("src")).unwrap();
        }
        remove_unpacked_copies(&home, "0.1.0").unwrap();
        let exists: Vec<bool> = kept.iter().chain(&removed).map(|dir| dir.exists()).collect();
        files::remove_dir_if_present(&home).unwrap();
        assert_eq!(exists, [true, true, false, false]);
    }

    #[test]
    fn a_cargo_home_without_registry_sources_is_no_error() {
        assert_eq!(remove_unpacked_copies(Path::new("/nonexistent/cargo-home"), "0.1.0"), Ok(()));
    }

    #[test]
    fn the_wrapper_patches_the_dependencies_and_tests_ntpool() {
        let unpacked: Vec<String> = CRATES.iter().map(|name| (*name).to_owned()).collect();
        let manifest = wrapper_manifest(&unpacked);
        assert!(manifest.contains("members = [\"ntpool-sys\", \"ntpool-macros\", \"ntpool\"]"));
        assert!(manifest.contains("[patch.crates-io]\nntpool-sys = { path = \"ntpool-sys\" }\n"));
        assert!(manifest.contains("ntpool-macros = { path = \"ntpool-macros\" }\n"));
        assert!(!manifest.contains("ntpool = {"));
    }
}
