//! `cargo xtask video`: the sample video miniport (`ntpool-video`) and the `videoprt.sys` test
//! fixture (`ntpool-videoprt`), cross-built into real kernel images and checked.
//!
//! Both images get the driver checks of [`pe::verify`] (AMD64, PE32+, NATIVE, checksum, NX, W^X,
//! entry point `DriverEntry`, imports only from `ntoskrnl.exe`, `hal.dll` and `videoprt.sys`), and
//! on top of them the link between the two: the miniport imports its VideoPort routines from
//! `videoprt.sys` and its pool from nowhere else (no `ExAllocatePool*` or `ExFreePool*` of its own),
//! and the fixture exports every routine the miniport imports from it and imports nothing from
//! `videoprt.sys`, which it is (it shares only ntpool's `video.h` types with the miniport).

use std::path::{Path, PathBuf};

use object::read::pe::PeFile64;

use crate::{cross, pe};

/// The workspace packages.
const MINIPORT_PACKAGE: &str = "ntpool-video";
const FIXTURE_PACKAGE: &str = "ntpool-videoprt";
/// The name the fixture's image must have for the miniport's imports to find it.
pub const FIXTURE_SYS: &str = "videoprt.sys";
/// The VideoPort routines the miniport must import from `videoprt.sys`.
const VIDEOPORT_IMPORTS: &[&str] = &["VideoPortAllocatePool", "VideoPortFreePool", "VideoPortInitialize"];

/// The two images, built and checked.
pub struct Images {
    /// `ntpool_video.sys`.
    pub miniport: PathBuf,
    /// `videoprt.sys`.
    pub fixture: PathBuf,
    /// What the checks found, for the report.
    pub report: String,
}

/// Builds both images (release) with the cross toolchain and checks them; see the module
/// documentation.
pub fn build(root: &Path, toolchain: &cross::Toolchain) -> Result<Images, String> {
    let miniport = cross::build_driver(root, toolchain, MINIPORT_PACKAGE, true)?;
    let dll =
        cross::build_artifact(root, toolchain, FIXTURE_PACKAGE, cross::Artifact::Cdylib, &[], true, "target/cross")?;
    let fixture = dll.with_file_name(FIXTURE_SYS);
    std::fs::copy(&dll, &fixture)
        .map_err(|e| format!("cannot copy {} to {}: {e}", dll.display(), fixture.display()))?;
    let mut report = String::new();
    for image in [&miniport, &fixture] {
        report.push_str(&pe::verify(image)?);
    }
    report.push_str(&check_link(&miniport, &fixture)?);
    Ok(Images { miniport, fixture, report })
}

/// The miniport's imports as `(module, routine)`, and the fixture's exports.
fn check_link(miniport: &Path, fixture: &Path) -> Result<String, String> {
    let miniport_image = std::fs::read(miniport).map_err(|e| format!("cannot read {}: {e}", miniport.display()))?;
    let fixture_image = std::fs::read(fixture).map_err(|e| format!("cannot read {}: {e}", fixture.display()))?;
    let imports = imports(&miniport_image)?;
    let exports = exports(&fixture_image)?;

    let from_videoprt: Vec<&str> = imports
        .iter()
        .filter(|(module, _)| module.eq_ignore_ascii_case(FIXTURE_SYS))
        .map(|(_, routine)| routine.as_str())
        .collect();
    let missing: Vec<&&str> = VIDEOPORT_IMPORTS.iter().filter(|routine| !from_videoprt.contains(routine)).collect();
    let own_pool: Vec<String> = imports
        .iter()
        .filter(|(_, routine)| routine.starts_with("ExAllocatePool") || routine.starts_with("ExFreePool"))
        .map(|(module, routine)| format!("{module}!{routine}"))
        .collect();
    let unexported: Vec<&str> =
        from_videoprt.iter().copied().filter(|routine| !exports.iter().any(|export| export == routine)).collect();
    let fixture_imports = self::imports(&fixture_image)?;
    let fixture_self_imports: Vec<&str> = fixture_imports
        .iter()
        .filter(|(module, _)| module.eq_ignore_ascii_case(FIXTURE_SYS))
        .map(|(_, routine)| routine.as_str())
        .collect();
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

fn imports(image: &[u8]) -> Result<Vec<(String, String)>, String> {
    let file = PeFile64::parse(image).map_err(|e| format!("not a PE32+ image: {e}"))?;
    pe::imports(&file)
}

fn exports(image: &[u8]) -> Result<Vec<String>, String> {
    let file = PeFile64::parse(image).map_err(|e| format!("not a PE32+ image: {e}"))?;
    let Some(table) = file.export_table().map_err(|e| e.to_string())? else {
        return Ok(Vec::new());
    };
    let exports = table.exports().map_err(|e| e.to_string())?;
    Ok(exports.iter().filter_map(|export| export.name.map(|name| String::from_utf8_lossy(name).into_owned())).collect())
}
