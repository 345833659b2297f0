//! Linux cross build of a Windows kernel driver (`x86_64-pc-windows-msvc`).
//!
//! rustup on the project's Linux machines has no Windows target and no `rust-src`, and cannot
//! download either. Debian's `rustc-web` (a compiler) and `rust-web-src` (the library sources of
//! exactly that compiler) can be had as ordinary packages, and Debian's `lld-N` provides
//! `lld-link`. With them, `-Zbuild-std=core,alloc` compiles `core` and `alloc` for the Windows
//! target and `lld-link` links the driver; kernel imports are declared with
//! `#[link(..., kind = "raw-dylib")]`, so no import library, WDK or MSVC is needed.
//!
//! [`provision`] unpacks those packages into `target/cross-toolchain/` without root and without
//! touching rustup. [`build_driver`] then runs the cargo that runs this xtask (rustup's) with
//! `RUSTC` pointing at Debian's compiler.
//!
//! The files: `toolchain.rs` (the unpacked toolchain and its stamp), `debian.rs` (which packages,
//! fetched and unpacked with apt and dpkg), `build.rs` (building with it).

mod build;
mod debian;
mod toolchain;

pub use build::{
    ARM64_TARGET, Artifact, TARGET, build_artifact, build_client, build_driver, cargo_for, check_reproducible,
};
pub use toolchain::{Toolchain, provision};
