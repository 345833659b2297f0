//! Build script of the sample driver.
//!
//! * On a Windows host with the WDK, `wdk-build` configures the driver build (linker arguments,
//!   WDK paths) from `[package.metadata.wdk]`.
//! * On any other host building for a `*-windows-msvc` target, that is the Linux cross build of
//!   `cargo xtask driver`, there is no WDK: `ntpool-build-support` gives the kernel-driver linker
//!   arguments.
//! * Otherwise (the host tests on Linux) there is nothing to do.

#[cfg(all(windows, not(ntpool_linux_cross)))]
fn main() -> Result<(), wdk_build::ConfigError> {
    wdk_build::configure_wdk_binary_build()
}

#[cfg(not(all(windows, not(ntpool_linux_cross))))]
fn main() {
    ntpool_build_support::kernel_image();
}
