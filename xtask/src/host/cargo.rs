//! The workspace and the cargo that builds it: the workspace root, the cargo running this xtask,
//! and a cargo on a toolchain of rustup's choosing (the nightly of the fuzzer and the sanitizer).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The host triple: with `--target`, `RUSTFLAGS` reach the target's crates and not build scripts or
/// proc-macros.
pub const HOST_TRIPLE: &str = "x86_64-unknown-linux-gnu";

/// The workspace root (the parent of this crate's directory).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

/// The cargo running this xtask (`$CARGO`, else `cargo`), in the workspace root.
pub fn cargo() -> Command {
    let mut command = running_cargo();
    command.current_dir(root());
    command
}

/// The cargo running this xtask (`$CARGO`, set by `cargo run`), else the one on `PATH`.
fn running_cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// A cargo for `toolchain` ("nightly", or the one running xtask), without the variables the outer
/// cargo set for xtask.
pub fn toolchain_cargo(root: &Path, toolchain: Option<&str>) -> Command {
    let mut command = match toolchain {
        Some(toolchain) => {
            let mut rustup = Command::new("rustup");
            rustup.args(["run", toolchain, "cargo"]);
            rustup
        }
        None => running_cargo(),
    };
    command.current_dir(root);
    for variable in ["RUSTUP_TOOLCHAIN", "RUSTC", "RUSTDOC", "RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_TARGET_DIR"]
    {
        command.env_remove(variable);
    }
    command
}

/// Cargo's home (`$CARGO_HOME`, else `~/.cargo`), where registry sources are unpacked.
pub fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
}

/// Whether rustup has a nightly toolchain.
pub fn nightly_available() -> bool {
    let list = Command::new("rustup").args(["toolchain", "list"]).output();
    list.is_ok_and(|out| String::from_utf8_lossy(&out.stdout).lines().any(|line| line.starts_with("nightly")))
}
