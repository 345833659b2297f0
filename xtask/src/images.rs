//! The project's Windows images, cross-built ([`crate::cross`]) and checked ([`crate::pe`]): the
//! sample driver's `.sys` ([`driver`]), the user-mode client's `.exe` ([`client`]), and for
//! `cargo xtask video` the sample video miniport (`ntpool-video`) and the `videoprt.sys` test
//! fixture (`ntpool-videoprt`) ([`video`]).
//!
//! The video images both get the driver checks of [`pe::verify`] (AMD64, PE32+, NATIVE, checksum, NX, W^X,
//! entry point `DriverEntry`, imports only from `ntoskrnl.exe`, `hal.dll` and `videoprt.sys`), and
//! on top of them the link between the two: the miniport imports its VideoPort routines from
//! `videoprt.sys` and its pool from nowhere else (no `ExAllocatePool*` or `ExFreePool*` of its own),
//! and the fixture exports every routine the miniport imports from it and imports nothing from
//! `videoprt.sys`, which it is (it shares only ntpool's `video.h` types with the miniport).

use std::path::{Path, PathBuf};

use crate::host::files;
use crate::{cross, pe};

/// `cargo xtask driver`: cross-builds the driver (release) into a real `.sys` for x86_64 Windows,
/// checks the image with [`pe::verify`] and prints what the checks found; returns the `.sys`.
pub fn driver(root: &Path) -> Result<PathBuf, String> {
    let toolchain = cross::provision(root)?;
    let sys = cross::build_driver(root, &toolchain, cross::TARGET, "ntpool-driver", true)?;
    let report = pe::verify(&sys)?;
    println!("{report}");
    Ok(sys)
}

/// `cargo xtask driver --arm64`: cross-builds the driver (release) into a real `.sys` for ARM64
/// Windows (`aarch64-pc-windows-msvc`), checks the image with [`pe::verify_with`] and
/// [`pe::Policy::arm64`] (machine ARM64, PE32+, NATIVE, checksum, NX, W^X, entry point, imports) and
/// with llvm-readobj's second reading, prints what the checks found, and returns the `.sys`. It
/// cannot be run here: nothing on a Linux machine loads an ARM64 driver (see docs/windows.md).
pub fn driver_arm64(root: &Path) -> Result<PathBuf, String> {
    let toolchain = cross::provision(root)?;
    let sys = cross::build_driver(root, &toolchain, cross::ARM64_TARGET, "ntpool-driver", true)?;
    println!("{}", pe::verify_with(&sys, &pe::Policy::arm64())?);
    println!("{}", pe::readobj_agrees_for(&sys, object::pe::IMAGE_FILE_MACHINE_ARM64.0)?);
    Ok(sys)
}

/// `cargo xtask client`: cross-builds `ntpool-client.exe` for x86_64 Windows; returns its path.
pub fn client(root: &Path) -> Result<PathBuf, String> {
    let toolchain = cross::provision(root)?;
    cross::build_client(root, &toolchain)
}

/// The workspace packages.
const MINIPORT_PACKAGE: &str = "ntpool-video";
const FIXTURE_PACKAGE: &str = "ntpool-videoprt";
/// The name the fixture's image must have for the miniport's imports to find it.
pub const FIXTURE_SYS: &str = "videoprt.sys";
/// The VideoPort routines the miniport must import from `videoprt.sys`.
const VIDEOPORT_IMPORTS: &[&str] = &["VideoPortAllocatePool", "VideoPortFreePool", "VideoPortInitialize"];

/// The two video images, built and checked.
pub struct VideoImages {
    /// `ntpool_video.sys`.
    pub miniport: PathBuf,
    /// `videoprt.sys`.
    pub fixture: PathBuf,
    /// What the checks found, for the report.
    pub report: String,
}

/// Builds both video images (release) with the cross toolchain and checks them; see the module
/// documentation.
pub fn video(root: &Path, toolchain: &cross::Toolchain) -> Result<VideoImages, String> {
    let miniport = cross::build_driver(root, toolchain, cross::TARGET, MINIPORT_PACKAGE, true)?;
    let dll = cross::build_artifact(
        root,
        toolchain,
        cross::TARGET,
        FIXTURE_PACKAGE,
        cross::Artifact::Cdylib,
        &[],
        true,
        "target/cross",
    )?;
    let fixture = dll.with_file_name(FIXTURE_SYS);
    files::copy(&dll, &fixture)?;
    let mut report = String::new();
    for image in [&miniport, &fixture] {
        report.push_str(&pe::verify(image)?);
    }
    report.push_str(&check_link(&miniport, &fixture)?);
    Ok(VideoImages { miniport, fixture, report })
}

/// The miniport's imports as `(module, routine)`, and the fixture's exports.
fn check_link(miniport: &Path, fixture: &Path) -> Result<String, String> {
    let miniport_image = files::read(miniport)?;
    let fixture_image = files::read(fixture)?;
    let imports = pe::imports(&pe::parse(&miniport_image)?)?;
    let fixture_file = pe::parse(&fixture_image)?;
    let exports = pe::exports(&fixture_file)?;

    let from_videoprt = imported_from(&imports, FIXTURE_SYS);
    let missing: Vec<&&str> = VIDEOPORT_IMPORTS.iter().filter(|routine| !from_videoprt.contains(routine)).collect();
    let own_pool: Vec<String> = imports
        .iter()
        .filter(|(_, routine)| routine.starts_with("ExAllocatePool") || routine.starts_with("ExFreePool"))
        .map(|(module, routine)| format!("{module}!{routine}"))
        .collect();
    let unexported: Vec<&str> =
        from_videoprt.iter().copied().filter(|routine| !exports.iter().any(|export| export == routine)).collect();
    let fixture_imports = pe::imports(&fixture_file)?;
    let fixture_self_imports = imported_from(&fixture_imports, FIXTURE_SYS);
    if !missing.is_empty() || !own_pool.is_empty() || !unexported.is_empty() || !fixture_self_imports.is_empty() {
        return Err(format!(
            "the miniport and videoprt.sys do not fit: VideoPort imports missing {missing:?}, pool routines \
             imported directly {own_pool:?}, imported from videoprt.sys but not exported by the fixture \
             {unexported:?}, imported by the fixture from itself {fixture_self_imports:?}\n  miniport imports: \
             {imports:?}\n  fixture exports: {exports:?}"
        ));
    }
    Ok(format!(
        "  the miniport imports {} from videoprt.sys and no pool routine of its own; the fixture exports them all \
         and imports none\n",
        from_videoprt.join(", ")
    ))
}

/// The routines of `imports` (as `(module, routine)`) that come from `module`.
fn imported_from<'a>(imports: &'a [(String, String)], module: &str) -> Vec<&'a str> {
    imports.iter().filter(|(from, _)| from.eq_ignore_ascii_case(module)).map(|(_, routine)| routine.as_str()).collect()
}
