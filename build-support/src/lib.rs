//! What the build scripts of the workspace's Windows images share: the test for a `*-windows-msvc`
//! target and the lld-link (or MSVC `link.exe`) arguments of each kind of image.
//!
//! * [`kernel_image`]: the sample WDM driver, the sample video miniport and the `videoprt.sys` test
//!   fixture, kernel-mode images entered at `DriverEntry`.
//! * [`console_exe`]: the user-mode client's executables.
//!
//! The arguments are given for the `cdylib` (or the binaries) only, so that `core` and `alloc`, which
//! the Linux cross build compiles with `-Zbuild-std`, are not rebuilt when they change. For any other
//! target, such as the host tests' Linux, the build scripts have nothing to do.
//!
//! ```
//! // A build script's `main` (here without a `*-windows-msvc` target: nothing is printed).
//! ntpool_build_support::kernel_image();
//! ```

/// lld-link arguments for a kernel-mode image (`cargo::rustc-cdylib-link-arg`).
///
/// ```
/// let args = ntpool_build_support::KERNEL_IMAGE_LINK_ARGS;
/// assert_eq!(args[..3], ["/DRIVER", "/SUBSYSTEM:NATIVE", "/ENTRY:DriverEntry"]);
/// assert!(args.contains(&"/Brepro"));
/// ```
pub const KERNEL_IMAGE_LINK_ARGS: &[&str] = &[
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

/// lld-link arguments for a user-mode console program without a C runtime
/// (`cargo::rustc-link-arg-bins`).
///
/// ```
/// let args = ntpool_build_support::CONSOLE_EXE_LINK_ARGS;
/// assert_eq!(args[..2], ["/ENTRY:mainCRTStartup", "/SUBSYSTEM:CONSOLE"]);
/// assert!(args.contains(&"/NODEFAULTLIB"));
/// ```
pub const CONSOLE_EXE_LINK_ARGS: &[&str] = &[
    // A console program entered at `mainCRTStartup`, without a C runtime: only the imports
    // declared with `raw-dylib`.
    "/ENTRY:mainCRTStartup",
    "/SUBSYSTEM:CONSOLE",
    "/NODEFAULTLIB",
    "/OPT:REF",
    // A reproducible image: a content hash instead of the time stamp, and no PDB.
    "/Brepro",
    "/DEBUG:NONE",
];

/// Whether the build script builds for a `*-windows-msvc` target (the target, not the host the
/// script runs on: cargo's `CARGO_CFG_TARGET_OS` and `CARGO_CFG_TARGET_ENV`).
///
/// ```
/// // Outside a build script, cargo sets neither variable.
/// assert!(!ntpool_build_support::targets_windows_msvc());
/// ```
pub fn targets_windows_msvc() -> bool {
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    target_os == "windows" && target_env == "msvc"
}

/// The build script of a kernel-mode image: for a `*-windows-msvc` target, gives
/// [`KERNEL_IMAGE_LINK_ARGS`] to the `cdylib`.
///
/// ```
/// ntpool_build_support::kernel_image();
/// ```
pub fn kernel_image() {
    emit("cargo::rustc-cdylib-link-arg", KERNEL_IMAGE_LINK_ARGS);
}

/// The build script of a package with console executables: for a `*-windows-msvc` target, gives
/// [`CONSOLE_EXE_LINK_ARGS`] to its binaries.
///
/// ```
/// ntpool_build_support::console_exe();
/// ```
pub fn console_exe() {
    emit("cargo::rustc-link-arg-bins", CONSOLE_EXE_LINK_ARGS);
}

/// Reruns the build script only when it changes, and for a `*-windows-msvc` target prints
/// `directive=arg` for each argument.
fn emit(directive: &str, args: &[&str]) {
    println!("cargo::rerun-if-changed=build.rs");
    if !targets_windows_msvc() {
        return;
    }
    for arg in args {
        println!("{directive}={arg}");
    }
}
