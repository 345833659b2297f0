//! Build script of the sample driver.
//!
//! * On a Windows host with the WDK, `wdk-build` configures the driver build (linker arguments,
//!   WDK paths) from `[package.metadata.wdk]`.
//! * On any other host building for a `*-windows-msvc` target, that is the Linux cross build of
//!   `cargo xtask driver`, there is no WDK: the kernel-driver linker arguments are given here.
//! * Otherwise (the host tests on Linux) there is nothing to do.

#[cfg(all(windows, not(ntpool_linux_cross)))]
fn main() -> Result<(), wdk_build::ConfigError> {
    wdk_build::configure_wdk_binary_build()
}

#[cfg(not(all(windows, not(ntpool_linux_cross))))]
fn main() {
    println!("cargo::rerun-if-changed=build.rs");

    // The target, not the host this script runs on.
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if target_os != "windows" || target_env != "msvc" {
        return;
    }

    // lld-link arguments for a kernel-mode driver. Given for the cdylib only, so that `core` and
    // `alloc`, which the cross build compiles with `-Zbuild-std`, are not rebuilt when they change.
    const DRIVER_LINK_ARGS: &[&str] = &[
        // A kernel-mode driver for the native subsystem, entered at DriverEntry.
        "/DRIVER",
        "/SUBSYSTEM:NATIVE",
        "/ENTRY:DriverEntry",
        // No C runtime or user-mode default libraries: only the kernel imports declared with
        // `#[link(..., kind = "raw-dylib")]`.
        "/NODEFAULTLIB",
        "/OPT:REF",
        // Write the PE checksum, which the kernel checks before it loads a driver (lld >= 15).
        "/RELEASE",
        // A reproducible image: a content hash instead of the time stamp, and no PDB (its path
        // and GUID would differ from build to build).
        "/Brepro",
        "/DEBUG:NONE",
    ];
    for arg in DRIVER_LINK_ARGS {
        println!("cargo::rustc-cdylib-link-arg={arg}");
    }
}
