//! windows-drivers-rs's build script: the WDK's paths and the kernel-driver link arguments, from
//! `[package.metadata.wdk]`.

fn main() -> Result<(), wdk_build::ConfigError> {
    wdk_build::configure_wdk_binary_build()
}
