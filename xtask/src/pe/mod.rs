//! Checks on a built kernel driver image (PE32+ `.sys`).
//!
//! The Windows kernel loads a driver only if its headers are right, and a driver that imports a
//! routine the running kernel lacks fails to load altogether. These checks catch such mistakes on
//! the build machine, before the driver reaches a Windows system.
//!
//! The entry point is checked against the export table, not a symbol table: the Linux cross build
//! links with `/DEBUG:NONE`, so the image has no symbols, but rustc exports every
//! `#[unsafe(no_mangle)] pub extern "system" fn` of a `cdylib`, `DriverEntry` included (harmless:
//! the kernel reads a driver's exports only when another driver imports from it). The check
//! passes when `AddressOfEntryPoint` is the RVA of the export named `DriverEntry` and lies in an
//! executable section. An image whose entry point is something else (a WDK build enters at
//! `GsDriverEntry`, which then calls `DriverEntry`) fails it.
//!
//! Also here: the readers of the image's imports and exports that the other checks share, and
//! [`readobj_agrees`], a second reading of the driver by `llvm-readobj` (`readobj.rs`); the unit
//! tests are in `tests.rs`.

use std::fmt::Write as _;
use std::path::Path;

use object::LittleEndian as LE;
use object::pe;
use object::read::pe::{ImageNtHeaders, ImageOptionalHeader, ImageThunkData, PeFile32, PeFile64};

use crate::host::files;

mod readobj;
pub use readobj::{readobj_agrees, readobj_agrees_for};

/// Modules a kernel driver may import from: the kernel, the HAL, and the video port driver
/// (for video miniport drivers).
pub const KERNEL_MODULES: &[&str] = &["ntoskrnl.exe", "hal.dll", "videoprt.sys"];

/// Routines the driver must not import statically: `ExAllocatePool2` and `ExAllocatePool3` exist from
/// Windows 10 2004 on, and a driver that imports a routine the running kernel lacks does not load at
/// all. Look them up with `MmGetSystemRoutineAddress` instead.
pub const FORBIDDEN_IMPORTS: &[&str] = &["ExAllocatePool2", "ExAllocatePool3"];

/// Routines drivers look up by name with `MmGetSystemRoutineAddress`: their UTF-16 names in the
/// image must end with a NUL beyond `Length`, as `RtlInitUnicodeString` leaves a literal, or a loader
/// that reads a name up to its NUL runs on into whatever follows it.
pub const LOOKED_UP_ROUTINES: &[&str] =
    &["ExAllocatePool2", "ExAllocatePool3", "ExInitializeLookasideListEx", "ExDeleteLookasideListEx"];

/// The exported routine the entry point must be.
pub const ENTRY_EXPORT: &str = "DriverEntry";

/// What [`verify_image`] requires of an image.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    /// Modules imports may come from, compared without regard to case.
    pub allowed_modules: &'a [&'a str],
    /// Routine names that must not be imported from any module.
    pub forbidden_imports: &'a [&'a str],
    /// The export whose address the entry point must be.
    pub entry_export: &'a str,
    /// The machine the image must be for (`IMAGE_FILE_MACHINE_AMD64` or `IMAGE_FILE_MACHINE_ARM64`).
    pub machine: u16,
}

impl Default for Policy<'static> {
    fn default() -> Self {
        Policy {
            allowed_modules: KERNEL_MODULES,
            forbidden_imports: FORBIDDEN_IMPORTS,
            entry_export: ENTRY_EXPORT,
            machine: pe::IMAGE_FILE_MACHINE_AMD64.0,
        }
    }
}

impl Policy<'static> {
    /// The default policy for an ARM64 driver (`aarch64-pc-windows-msvc`): machine ARM64 (0xAA64),
    /// the rest the same.
    pub fn arm64() -> Self {
        Policy { machine: pe::IMAGE_FILE_MACHINE_ARM64.0, ..Policy::default() }
    }
}

/// Reads the driver at `path` and checks it with the default [`Policy`]: machine AMD64 (ARM64 with
/// [`Policy::arm64`] and [`verify_with`]),
/// PE32+, subsystem NATIVE, a non-zero and correct PE checksum, NX compatible, relocatable, no
/// section both writable and executable, entry point = exported `DriverEntry`, imports only from
/// kernel modules, none of [`FORBIDDEN_IMPORTS`], no delay-load imports.
///
/// Returns a readable report of every check when all pass; otherwise an error with the same
/// report, naming every failed check.
pub fn verify(path: &Path) -> Result<String, String> {
    verify_with(path, &Policy::default())
}

/// [`verify`] with `policy` ([`Policy::arm64`] for an ARM64 driver).
pub fn verify_with(path: &Path, policy: &Policy<'_>) -> Result<String, String> {
    let image = files::read(path)?;
    let title = format!("{} ({} bytes)", path.display(), image.len());
    match verify_image(&image, policy) {
        Ok(report) => Ok(format!("{title}: {report}")),
        Err(report) => Err(format!("{title}: {report}")),
    }
}

/// Checks a driver image held in memory; see [`verify`].
pub fn verify_image(image: &[u8], policy: &Policy<'_>) -> Result<String, String> {
    let checks = match object::FileKind::parse(image) {
        Ok(object::FileKind::Pe64) => check_pe64(image, policy)?,
        Ok(object::FileKind::Pe32) => check_pe32(image, policy)?,
        Ok(kind) => return Err(format!("not a PE image but {kind:?}")),
        Err(e) => return Err(format!("not a PE image: {e}")),
    };
    let failed: Vec<&str> = checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
    let mut report = String::new();
    if failed.is_empty() {
        let _ = writeln!(report, "all {} driver image checks passed", checks.len());
    } else {
        let _ =
            writeln!(report, "{} of {} driver image checks FAILED: {}", failed.len(), checks.len(), failed.join(", "));
    }
    for check in &checks {
        let mark = if check.ok { "ok  " } else { "FAIL" };
        let _ = writeln!(report, "  [{mark}] {:<18} {}", check.name, check.detail);
    }
    if failed.is_empty() { Ok(report) } else { Err(report) }
}

/// The file offset of the `CheckSum` field of the optional header (the same for PE32 and
/// PE32+): `e_lfanew` + 4 (`PE\0\0`) + 20 (file header) + 64. `None` if it lies outside `image`.
pub fn checksum_offset(image: &[u8]) -> Option<usize> {
    let e_lfanew = image.get(0x3c..0x40)?;
    let e_lfanew = u32::from_le_bytes(e_lfanew.try_into().ok()?);
    let offset = usize::try_from(e_lfanew).ok()?.checked_add(4 + 20 + 64)?;
    (offset.checked_add(4)? <= image.len()).then_some(offset)
}

/// The PE image checksum as the Windows loader checks it for drivers (`CheckSumMappedFile`):
/// the sum of the file's 16-bit little-endian words with the carry folded back in after every
/// addition, the 4 bytes at `checksum_offset` counted as zero and an odd last byte padded with a
/// zero, plus the file's length.
pub fn pe_checksum(image: &[u8], checksum_offset: usize) -> u32 {
    let field = checksum_offset..checksum_offset.saturating_add(4);
    let byte = |index: usize| -> u32 {
        if field.contains(&index) { 0 } else { image.get(index).copied().map_or(0, u32::from) }
    };
    let mut sum: u32 = 0;
    for index in (0..image.len()).step_by(2) {
        sum += byte(index) | (byte(index + 1) << 8);
        // Fold the carry: the sum stays below 0x1_0000 + 0xffff.
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum = (sum & 0xffff) + (sum >> 16);
    // The length of a PE file always fits in 32 bits.
    sum.wrapping_add(image.len() as u32)
}

/// One check and its outcome.
struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
}

impl Check {
    fn new(name: &'static str, ok: bool, detail: impl Into<String>) -> Check {
        Check { name, ok, detail: detail.into() }
    }
}

fn machine_name(machine: u16) -> &'static str {
    match machine {
        m if m == pe::IMAGE_FILE_MACHINE_AMD64.0 => "AMD64",
        m if m == pe::IMAGE_FILE_MACHINE_I386.0 => "I386",
        m if m == pe::IMAGE_FILE_MACHINE_ARM64.0 => "ARM64",
        m if m == pe::IMAGE_FILE_MACHINE_ARMNT.0 => "ARMNT",
        _ => "other",
    }
}

fn machine_check(machine: u16, expected: u16) -> Check {
    let ok = machine == expected;
    let detail = format!("{} ({machine:#06x})", machine_name(machine));
    Check::new(
        "machine",
        ok,
        if ok { detail } else { format!("{detail}, expected {} ({expected:#06x})", machine_name(expected)) },
    )
}

/// A PE32 image fails already as such; report its machine too.
fn check_pe32(image: &[u8], policy: &Policy<'_>) -> Result<Vec<Check>, String> {
    let file = PeFile32::parse(image).map_err(|e| format!("not a readable PE32 image: {e}"))?;
    let machine = file.nt_headers().file_header().machine.get(LE).0;
    Ok(vec![
        machine_check(machine, policy.machine),
        Check::new("format", false, "PE32 (optional header magic 0x10b), expected PE32+ (0x20b); other checks skipped"),
    ])
}

fn check_pe64(image: &[u8], policy: &Policy<'_>) -> Result<Vec<Check>, String> {
    let file = PeFile64::parse(image).map_err(|e| format!("not a readable PE32+ image: {e}"))?;
    let nt = file.nt_headers();
    let header = nt.file_header();
    let optional = nt.optional_header();
    let mut checks = Vec::new();

    checks.push(machine_check(header.machine.get(LE).0, policy.machine));
    checks.push(Check::new(
        "format",
        optional.magic() == pe::IMAGE_NT_OPTIONAL_HDR64_MAGIC,
        format!("PE32+ (optional header magic {:#x})", optional.magic()),
    ));

    let subsystem = optional.subsystem().0;
    checks.push(Check::new(
        "subsystem",
        subsystem == pe::IMAGE_SUBSYSTEM_NATIVE.0,
        if subsystem == pe::IMAGE_SUBSYSTEM_NATIVE.0 {
            "NATIVE (1)".to_owned()
        } else {
            format!("{subsystem}, expected NATIVE (1): link with /SUBSYSTEM:NATIVE")
        },
    ));

    let stored = optional.check_sum();
    let computed = checksum_offset(image).map(|offset| pe_checksum(image, offset));
    checks.push(match computed {
        Some(computed) if stored != 0 && stored == computed => {
            Check::new("checksum", true, format!("{stored:#010x}, matches the computed value"))
        }
        Some(computed) => Check::new(
            "checksum",
            false,
            format!(
                "header {stored:#010x}, computed {computed:#010x}: the kernel refuses a driver \
                 whose checksum is missing or wrong; link with /RELEASE"
            ),
        ),
        None => Check::new("checksum", false, "the CheckSum field lies outside the file"),
    });

    let dll_flags = optional.dll_characteristics().0;
    let nx = dll_flags & pe::IMAGE_DLLCHARACTERISTICS_NX_COMPAT.0 != 0;
    checks.push(Check::new(
        "NX compatible",
        nx,
        format!("DllCharacteristics {dll_flags:#06x} {} NX_COMPAT (0x0100)", if nx { "has" } else { "lacks" }),
    ));

    let file_flags = header.characteristics.get(LE).0;
    let stripped = file_flags & pe::IMAGE_FILE_RELOCS_STRIPPED.0 != 0;
    checks.push(Check::new(
        "relocatable",
        !stripped,
        format!(
            "Characteristics {file_flags:#06x} {} RELOCS_STRIPPED: the kernel loads drivers at any \
             address",
            if stripped { "has" } else { "lacks" }
        ),
    ));

    checks.push(section_check(&file));
    checks.push(names_check(image));
    checks.push(entry_check(&file, policy));
    checks.extend(import_checks(&file, policy));
    Ok(checks)
}

/// The looked-up routine names in `image` (UTF-16LE) that no NUL follows, and how many names it
/// holds in all.
fn unterminated_names(image: &[u8], names: &[&str]) -> (Vec<String>, usize) {
    let mut unterminated = Vec::new();
    let mut found = 0;
    for name in names {
        let wide: Vec<u8> = name.encode_utf16().flat_map(u16::to_le_bytes).collect();
        for (at, window) in image.windows(wide.len()).enumerate() {
            if window == wide.as_slice() && at % 2 == 0 {
                found += 1;
                if image.get(at + wide.len()..at + wide.len() + 2) != Some(&[0, 0][..]) {
                    unterminated.push(format!("{name} at file offset {at:#x}"));
                }
            }
        }
    }
    (unterminated, found)
}

fn names_check(image: &[u8]) -> Check {
    let (unterminated, found) = unterminated_names(image, LOOKED_UP_ROUTINES);
    Check::new(
        "routine names",
        unterminated.is_empty(),
        if !unterminated.is_empty() {
            format!(
                "{} without a NUL after it: a loader that reads names up to their NUL runs on into the next",
                unterminated.join(", ")
            )
        } else if found == 0 {
            "no routine looked up by name".to_owned()
        } else {
            format!("{found} UTF-16 name(s) of routines looked up at run time, each followed by its NUL")
        },
    )
}

fn section_permissions(flags: u32) -> String {
    let bit = |mask: u32, c: char| if flags & mask != 0 { c } else { '-' };
    [bit(pe::IMAGE_SCN_MEM_READ.0, 'r'), bit(pe::IMAGE_SCN_MEM_WRITE.0, 'w'), bit(pe::IMAGE_SCN_MEM_EXECUTE.0, 'x')]
        .iter()
        .collect()
}

fn section_check(file: &PeFile64<'_>) -> Check {
    let mut listed = Vec::new();
    let mut bad = Vec::new();
    for section in file.section_table().iter() {
        let name = String::from_utf8_lossy(section.raw_name()).into_owned();
        let flags = section.characteristics.get(LE).0;
        let writable_and_executable =
            flags & pe::IMAGE_SCN_MEM_WRITE.0 != 0 && flags & pe::IMAGE_SCN_MEM_EXECUTE.0 != 0;
        if writable_and_executable {
            bad.push(name.clone());
        }
        listed.push(format!("{name} {}", section_permissions(flags)));
    }
    let detail = if bad.is_empty() {
        format!("none both writable and executable: {}", listed.join(", "))
    } else {
        format!("writable and executable: {} (all: {})", bad.join(", "), listed.join(", "))
    };
    Check::new("W^X sections", bad.is_empty(), detail)
}

fn entry_check(file: &PeFile64<'_>, policy: &Policy<'_>) -> Check {
    let entry = file.nt_headers().optional_header().address_of_entry_point();
    let executable = file.section_table().iter().any(|section| {
        let start = section.virtual_address.get(LE);
        let size = section.virtual_size.get(LE).max(section.size_of_raw_data.get(LE));
        let flags = section.characteristics.get(LE).0;
        flags & pe::IMAGE_SCN_MEM_EXECUTE.0 != 0
            && entry >= start
            && u64::from(entry) < u64::from(start) + u64::from(size)
    });
    let exports = match file.export_table() {
        Ok(Some(table)) => match table.exports() {
            Ok(exports) => exports,
            Err(e) => return Check::new("entry point", false, format!("export table unreadable: {e}")),
        },
        Ok(None) => Vec::new(),
        Err(e) => return Check::new("entry point", false, format!("export table unreadable: {e}")),
    };
    let export = exports.iter().find_map(|export| match (export.name, export.target) {
        (Some(name), object::read::pe::ExportTarget::Address(rva)) if name == policy.entry_export.as_bytes() => {
            Some(rva)
        }
        _ => None,
    });
    match export {
        Some(rva) if rva == entry && executable => Check::new(
            "entry point",
            true,
            format!("RVA {entry:#x} = exported {}, in an executable section", policy.entry_export),
        ),
        Some(rva) if rva == entry => Check::new(
            "entry point",
            false,
            format!("RVA {entry:#x} = exported {}, but not in an executable section", policy.entry_export),
        ),
        Some(rva) => Check::new(
            "entry point",
            false,
            format!(
                "RVA {entry:#x}, but {} is at {rva:#x}: link with /ENTRY:{}",
                policy.entry_export, policy.entry_export
            ),
        ),
        None => Check::new(
            "entry point",
            false,
            format!(
                "RVA {entry:#x}, and no export named {} to compare it with: declare it \
                 `#[unsafe(no_mangle)] pub extern \"system\" fn {}` in the cdylib",
                policy.entry_export, policy.entry_export
            ),
        ),
    }
}

/// Imports as `(module, routine)`; a routine imported by ordinal reads `#ordinal`.
pub fn imports(file: &PeFile64<'_>) -> Result<Vec<(String, String)>, String> {
    Ok(import_slots(file)?.into_iter().map(|import| (import.module, import.routine)).collect())
}

/// One imported routine, and where the loader writes its address.
pub struct Import {
    /// The module it is imported from, as the import table names it.
    pub module: String,
    /// Its name; `#ordinal` when imported by ordinal.
    pub routine: String,
    /// The RVA of its slot in the import address table.
    pub slot: u32,
}

/// Every import of the image, in the order of the import table.
pub fn import_slots(file: &PeFile64<'_>) -> Result<Vec<Import>, String> {
    let Some(table) = file.import_table().map_err(|e| e.to_string())? else {
        return Ok(Vec::new());
    };
    let mut imports = Vec::new();
    let mut descriptors = table.descriptors().map_err(|e| e.to_string())?;
    while let Some(descriptor) = descriptors.next().map_err(|e| e.to_string())? {
        let module = table.name(descriptor.name.get(LE)).map_err(|e| e.to_string())?;
        let module = String::from_utf8_lossy(module).into_owned();
        // The lookup table holds the names; old linkers leave it out and only fill the IAT.
        let lookup = match descriptor.original_first_thunk.get(LE) {
            0 => descriptor.first_thunk.get(LE),
            rva => rva,
        };
        let mut slot = descriptor.first_thunk.get(LE);
        let mut thunks = table.thunks(lookup).map_err(|e| e.to_string())?;
        while let Some(thunk) = thunks.next::<pe::ImageNtHeaders64>().map_err(|e| e.to_string())? {
            let routine = if thunk.is_ordinal() {
                format!("#{}", thunk.ordinal())
            } else {
                let (_hint, name) = table.hint_name(thunk.address()).map_err(|e| e.to_string())?;
                String::from_utf8_lossy(name).into_owned()
            };
            imports.push(Import { module: module.clone(), routine, slot });
            slot += 8;
        }
    }
    Ok(imports)
}

/// The names the image exports.
pub fn exports(file: &PeFile64<'_>) -> Result<Vec<String>, String> {
    let Some(table) = file.export_table().map_err(|e| e.to_string())? else {
        return Ok(Vec::new());
    };
    let exports = table.exports().map_err(|e| e.to_string())?;
    Ok(exports.iter().filter_map(|export| export.name.map(|name| String::from_utf8_lossy(name).into_owned())).collect())
}

/// `image` read as a PE32+ file.
pub fn parse(image: &[u8]) -> Result<PeFile64<'_>, String> {
    PeFile64::parse(image).map_err(|e| format!("not a PE32+ image: {e}"))
}

fn import_checks(file: &PeFile64<'_>, policy: &Policy<'_>) -> Vec<Check> {
    let mut checks = Vec::new();
    match imports(file) {
        Err(e) => {
            checks.push(Check::new("import modules", false, format!("import table unreadable: {e}")));
        }
        Ok(imports) => {
            let mut modules: Vec<&str> = imports.iter().map(|(module, _)| module.as_str()).collect();
            modules.dedup();
            let foreign: Vec<&str> = modules
                .iter()
                .copied()
                .filter(|module| !policy.allowed_modules.iter().any(|allowed| allowed.eq_ignore_ascii_case(module)))
                .collect();
            checks.push(Check::new(
                "import modules",
                foreign.is_empty(),
                if foreign.is_empty() {
                    format!(
                        "{} (allowed: {})",
                        if modules.is_empty() { "none".to_owned() } else { modules.join(", ") },
                        policy.allowed_modules.join(", ")
                    )
                } else {
                    format!(
                        "imports from {} outside the kernel (allowed: {})",
                        foreign.join(", "),
                        policy.allowed_modules.join(", ")
                    )
                },
            ));

            let forbidden: Vec<String> = imports
                .iter()
                .filter(|(_, routine)| policy.forbidden_imports.contains(&routine.as_str()))
                .map(|(module, routine)| format!("{module}!{routine}"))
                .collect();
            let all: Vec<String> = imports.iter().map(|(module, routine)| format!("{module}!{routine}")).collect();
            checks.push(Check::new(
                "forbidden imports",
                forbidden.is_empty(),
                if forbidden.is_empty() {
                    format!(
                        "none of {} among {}",
                        policy.forbidden_imports.join(", "),
                        if all.is_empty() { "no imports".to_owned() } else { all.join(", ") }
                    )
                } else {
                    format!(
                        "imports {}: a kernel without them refuses to load the driver; resolve \
                         them with MmGetSystemRoutineAddress",
                        forbidden.join(", ")
                    )
                },
            ));
        }
    }

    let delay_load = file
        .data_directory(pe::IMAGE_DIRECTORY_ENTRY_DELAY_IMPORT)
        .is_some_and(|directory| directory.virtual_address.get(LE) != 0);
    checks.push(Check::new(
        "delay-load imports",
        !delay_load,
        if delay_load { "present: the kernel loader does not resolve delay-load imports" } else { "none" },
    ));
    checks
}

#[cfg(test)]
mod tests;
