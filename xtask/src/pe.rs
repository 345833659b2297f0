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

use std::fmt::Write as _;
use std::path::Path;

use object::LittleEndian as LE;
use object::pe;
use object::read::pe::{ImageNtHeaders, ImageOptionalHeader, ImageThunkData, PeFile32, PeFile64};

/// Modules a kernel driver may import from: the kernel, the HAL, and the video port driver
/// (for video miniport drivers).
pub const KERNEL_MODULES: &[&str] = &["ntoskrnl.exe", "hal.dll", "videoprt.sys"];

/// Routines the driver must not import statically: `ExAllocatePool2` exists from Windows 10
/// 2004 on and `ExAllocatePool3` from Windows 11, and a driver that imports a routine the running
/// kernel lacks does not load at all. Look them up with `MmGetSystemRoutineAddress` instead.
pub const FORBIDDEN_IMPORTS: &[&str] = &["ExAllocatePool2", "ExAllocatePool3"];

/// Routines drivers look up by name with `MmGetSystemRoutineAddress`: their UTF-16 names in the
/// image must end with a NUL beyond `Length`, as `RtlInitUnicodeString` leaves a literal, or a loader
/// that reads a name up to its NUL runs on into whatever follows it.
pub const LOOKED_UP_ROUTINES: &[&str] = &["ExAllocatePool2", "ExInitializeLookasideListEx", "ExDeleteLookasideListEx"];

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
}

impl Default for Policy<'static> {
    fn default() -> Self {
        Policy { allowed_modules: KERNEL_MODULES, forbidden_imports: FORBIDDEN_IMPORTS, entry_export: ENTRY_EXPORT }
    }
}

/// Reads the driver at `path` and checks it with the default [`Policy`]: machine AMD64,
/// PE32+, subsystem NATIVE, a non-zero and correct PE checksum, NX compatible, relocatable, no
/// section both writable and executable, entry point = exported `DriverEntry`, imports only from
/// kernel modules, none of [`FORBIDDEN_IMPORTS`], no delay-load imports.
///
/// Returns a readable report of every check when all pass; otherwise an error with the same
/// report, naming every failed check.
pub fn verify(path: &Path) -> Result<String, String> {
    let image = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let title = format!("{} ({} bytes)", path.display(), image.len());
    match verify_image(&image, &Policy::default()) {
        Ok(report) => Ok(format!("{title}: {report}")),
        Err(report) => Err(format!("{title}: {report}")),
    }
}

/// Checks a driver image held in memory; see [`verify`].
pub fn verify_image(image: &[u8], policy: &Policy<'_>) -> Result<String, String> {
    let checks = match object::FileKind::parse(image) {
        Ok(object::FileKind::Pe64) => check_pe64(image, policy)?,
        Ok(object::FileKind::Pe32) => check_pe32(image)?,
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

fn machine_check(machine: u16) -> Check {
    let ok = machine == pe::IMAGE_FILE_MACHINE_AMD64.0;
    let detail = format!("{} ({machine:#06x})", machine_name(machine));
    Check::new("machine", ok, if ok { detail } else { format!("{detail}, expected AMD64 (0x8664)") })
}

/// A PE32 image fails already as such; report its machine too.
fn check_pe32(image: &[u8]) -> Result<Vec<Check>, String> {
    let file = PeFile32::parse(image).map_err(|e| format!("not a readable PE32 image: {e}"))?;
    let machine = file.nt_headers().file_header().machine.get(LE).0;
    Ok(vec![
        machine_check(machine),
        Check::new("format", false, "PE32 (optional header magic 0x10b), expected PE32+ (0x20b); other checks skipped"),
    ])
}

fn check_pe64(image: &[u8], policy: &Policy<'_>) -> Result<Vec<Check>, String> {
    let file = PeFile64::parse(image).map_err(|e| format!("not a readable PE32+ image: {e}"))?;
    let nt = file.nt_headers();
    let header = nt.file_header();
    let optional = nt.optional_header();
    let mut checks = Vec::new();

    checks.push(machine_check(header.machine.get(LE).0));
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
        let mut thunks = table.thunks(lookup).map_err(|e| e.to_string())?;
        while let Some(thunk) = thunks.next::<pe::ImageNtHeaders64>().map_err(|e| e.to_string())? {
            let routine = if thunk.is_ordinal() {
                format!("#{}", thunk.ordinal())
            } else {
                let (_hint, name) = table.hint_name(thunk.address()).map_err(|e| e.to_string())?;
                String::from_utf8_lossy(name).into_owned()
            };
            imports.push((module.clone(), routine));
        }
    }
    Ok(imports)
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
mod tests {
    use super::*;

    #[test]
    fn routine_names_must_end_with_a_nul() {
        let wide = |text: &str| text.encode_utf16().flat_map(u16::to_le_bytes).collect::<Vec<u8>>();
        let mut packed = wide("ExAllocatePool2");
        packed.extend(wide("ExDeleteLookasideListEx"));
        packed.extend([0, 0]);
        let (unterminated, found) = unterminated_names(&packed, LOOKED_UP_ROUTINES);
        assert_eq!(found, 2);
        assert_eq!(unterminated, ["ExAllocatePool2 at file offset 0x0"]);
        let mut terminated = wide("ExAllocatePool2");
        terminated.extend([0, 0]);
        assert_eq!(unterminated_names(&terminated, LOOKED_UP_ROUTINES), (vec![], 1));
        assert_eq!(unterminated_names(b"no names", LOOKED_UP_ROUTINES), (vec![], 0));
    }

    /// Builds a small PE32+ image shaped like the cross-built driver: `.text` at 0x1000 with the
    /// entry point, `.rdata` at 0x2000 with the export and import directories.
    #[derive(Clone)]
    struct TestImage {
        machine: u16,
        subsystem: u16,
        dll_characteristics: u16,
        file_characteristics: u16,
        text_characteristics: u32,
        entry: u32,
        exports: Vec<(&'static str, u32)>,
        imports: Vec<(&'static str, Vec<&'static str>)>,
    }

    const TEXT_RVA: u32 = 0x1000;
    const RDATA_RVA: u32 = 0x2000;
    const FILE_ALIGNMENT: usize = 0x200;
    /// `.rdata` takes two file-alignment units, room for a few imports.
    const RDATA_SIZE: usize = 2 * FILE_ALIGNMENT;
    const CHECKSUM_OFFSET: usize = 0x40 + 4 + 20 + 64;

    impl Default for TestImage {
        fn default() -> Self {
            TestImage {
                machine: 0x8664,
                subsystem: 1,
                dll_characteristics: 0x0160,
                file_characteristics: 0x0022,
                // CODE | EXECUTE | READ
                text_characteristics: 0x6000_0020,
                entry: TEXT_RVA,
                exports: vec![("DriverEntry", TEXT_RVA)],
                imports: vec![("ntoskrnl.exe", vec!["DbgPrint"])],
            }
        }
    }

    fn put16(buffer: &mut [u8], at: usize, value: u16) {
        buffer[at..at + 2].copy_from_slice(&value.to_le_bytes());
    }
    fn put32(buffer: &mut [u8], at: usize, value: u32) {
        buffer[at..at + 4].copy_from_slice(&value.to_le_bytes());
    }
    fn put64(buffer: &mut [u8], at: usize, value: u64) {
        buffer[at..at + 8].copy_from_slice(&value.to_le_bytes());
    }

    impl TestImage {
        /// The `.rdata` contents (relative to `RDATA_RVA`), and the export and import
        /// directories as (rva, size).
        fn rdata(&self) -> (Vec<u8>, (u32, u32), (u32, u32)) {
            let mut data = vec![0u8; RDATA_SIZE];
            let rva = |offset: usize| RDATA_RVA + offset as u32;

            // Export directory at 0, then its tables at 0x28.
            let count = self.exports.len();
            let functions = 0x28;
            let names = functions + 4 * count;
            let ordinals = names + 4 * count;
            let mut strings = ordinals + 2 * count;
            let dll_name = strings;
            data[strings..strings + 9].copy_from_slice(b"test.sys\0");
            strings += 9;
            for (index, (name, target)) in self.exports.iter().enumerate() {
                put32(&mut data, functions + 4 * index, *target);
                put32(&mut data, names + 4 * index, rva(strings));
                put16(&mut data, ordinals + 2 * index, index as u16);
                data[strings..strings + name.len()].copy_from_slice(name.as_bytes());
                strings += name.len() + 1;
            }
            put32(&mut data, 12, rva(dll_name));
            put32(&mut data, 16, 1); // ordinal base
            put32(&mut data, 20, count as u32);
            put32(&mut data, 24, count as u32);
            put32(&mut data, 28, rva(functions));
            put32(&mut data, 32, rva(names));
            put32(&mut data, 36, rva(ordinals));
            let exports = (RDATA_RVA, strings as u32);

            // Import descriptors at 0x100, then lookup tables, address tables and names.
            let descriptors = 0x100;
            let mut next = descriptors + 20 * (self.imports.len() + 1);
            for (index, (module, routines)) in self.imports.iter().enumerate() {
                let lookup = next;
                let address = lookup + 8 * (routines.len() + 1);
                next = address + 8 * (routines.len() + 1);
                for (slot, routine) in routines.iter().enumerate() {
                    let hint_name = next;
                    data[hint_name + 2..hint_name + 2 + routine.len()].copy_from_slice(routine.as_bytes());
                    next = (hint_name + 2 + routine.len() + 1 + 1) & !1;
                    put64(&mut data, lookup + 8 * slot, u64::from(rva(hint_name)));
                    put64(&mut data, address + 8 * slot, u64::from(rva(hint_name)));
                }
                let name = next;
                data[name..name + module.len()].copy_from_slice(module.as_bytes());
                next = name + module.len() + 1;
                let descriptor = descriptors + 20 * index;
                put32(&mut data, descriptor, rva(lookup));
                put32(&mut data, descriptor + 12, rva(name));
                put32(&mut data, descriptor + 16, rva(address));
            }
            let imports = (rva(descriptors), (20 * (self.imports.len() + 1)) as u32);
            (data, exports, imports)
        }

        /// The image, with the checksum of the finished file written into it.
        fn build(&self) -> Vec<u8> {
            let mut image = self.build_without_checksum();
            let checksum = pe_checksum(&image, CHECKSUM_OFFSET);
            put32(&mut image, CHECKSUM_OFFSET, checksum);
            image
        }

        fn build_without_checksum(&self) -> Vec<u8> {
            let mut image = vec![0u8; 2 * FILE_ALIGNMENT + RDATA_SIZE];
            image[0..2].copy_from_slice(b"MZ");
            put32(&mut image, 0x3c, 0x40);
            image[0x40..0x44].copy_from_slice(b"PE\0\0");
            let file_header = 0x44;
            put16(&mut image, file_header, self.machine);
            put16(&mut image, file_header + 2, 2); // sections
            put16(&mut image, file_header + 16, 240); // size of the optional header
            put16(&mut image, file_header + 18, self.file_characteristics);
            let optional = file_header + 20;
            put16(&mut image, optional, 0x20b);
            put32(&mut image, optional + 4, FILE_ALIGNMENT as u32); // size of code
            put32(&mut image, optional + 16, self.entry);
            put32(&mut image, optional + 20, TEXT_RVA);
            put64(&mut image, optional + 24, 0x1_4000_0000); // image base
            put32(&mut image, optional + 32, 0x1000); // section alignment
            put32(&mut image, optional + 36, FILE_ALIGNMENT as u32);
            put16(&mut image, optional + 40, 6); // OS version 6.0
            put16(&mut image, optional + 48, 6); // subsystem version 6.0
            put32(&mut image, optional + 56, 0x3000); // size of image
            put32(&mut image, optional + 60, FILE_ALIGNMENT as u32); // size of headers
            put16(&mut image, optional + 68, self.subsystem);
            put16(&mut image, optional + 70, self.dll_characteristics);
            put64(&mut image, optional + 72, 0x10_0000); // stack reserve
            put64(&mut image, optional + 80, 0x1000); // stack commit
            put64(&mut image, optional + 88, 0x10_0000); // heap reserve
            put64(&mut image, optional + 96, 0x1000); // heap commit
            put32(&mut image, optional + 108, 16); // number of data directories
            let (rdata, exports, imports) = self.rdata();
            let directories = optional + 112;
            put32(&mut image, directories, exports.0);
            put32(&mut image, directories + 4, exports.1);
            put32(&mut image, directories + 8, imports.0);
            put32(&mut image, directories + 12, imports.1);

            let sections = optional + 240;
            // (name, rva, size, file offset, characteristics)
            let table: [(&[u8], u32, usize, usize, u32); 2] = [
                (b".text", TEXT_RVA, FILE_ALIGNMENT, FILE_ALIGNMENT, self.text_characteristics),
                // INITIALIZED_DATA | READ
                (b".rdata", RDATA_RVA, RDATA_SIZE, 2 * FILE_ALIGNMENT, 0x4000_0040),
            ];
            for (index, (name, rva, size, offset, flags)) in table.into_iter().enumerate() {
                let at = sections + 40 * index;
                image[at..at + name.len()].copy_from_slice(name);
                put32(&mut image, at + 8, size as u32); // virtual size
                put32(&mut image, at + 12, rva);
                put32(&mut image, at + 16, size as u32); // raw size
                put32(&mut image, at + 20, offset as u32); // raw pointer
                put32(&mut image, at + 36, flags);
            }

            // xor eax, eax; ret
            image[FILE_ALIGNMENT..FILE_ALIGNMENT + 3].copy_from_slice(&[0x31, 0xc0, 0xc3]);
            image[2 * FILE_ALIGNMENT..].copy_from_slice(&rdata);
            image
        }
    }

    fn failed_checks(image: &[u8]) -> Vec<String> {
        match verify_image(image, &Policy::default()) {
            Ok(_) => Vec::new(),
            Err(report) => report
                .lines()
                .filter_map(|line| line.trim().strip_prefix("[FAIL] "))
                .map(|rest| rest.split("  ").next().unwrap_or(rest).trim().to_owned())
                .collect(),
        }
    }

    #[test]
    fn checksum_of_small_buffers() {
        // Words 0x0201, 0x0403, the field at 4..8 as zero, 0x0005 (odd byte padded): 0x0609,
        // plus the length 9.
        let data = [1, 2, 3, 4, 0xaa, 0xbb, 0xcc, 0xdd, 5];
        assert_eq!(pe_checksum(&data, 4), 0x0609 + 9);
        // The carry folds back in: 0xffff + 0x0002 = 0x1_0001 -> 0x0002.
        let data = [0xff, 0xff, 0x02, 0x00, 0, 0, 0, 0];
        assert_eq!(pe_checksum(&data, 4), 0x0002 + 8);
        // The field does not count, whatever it holds.
        let mut data = vec![0x5a; 64];
        let before = pe_checksum(&data, 16);
        data[16..20].copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(pe_checksum(&data, 16), before);
        // An unaligned field counts as zero too: words 0x0001, 0, 0, 0x0002.
        let data = [1, 0xff, 0xff, 0xff, 0xff, 0, 2, 0];
        assert_eq!(pe_checksum(&data, 1), 0x0003 + 8);
    }

    #[test]
    fn checksum_matches_an_independent_implementation() {
        // The values Python's `pefile` (`PE.generate_checksum()`) computes for these images.
        let image = TestImage::default().build();
        assert_eq!(checksum_offset(&image), Some(CHECKSUM_OFFSET));
        assert_eq!(pe_checksum(&image, CHECKSUM_OFFSET), 0x0000_7fc4);
        let image = TestImage {
            imports: vec![("ntoskrnl.exe", vec!["DbgPrint"]), ("HAL.dll", vec!["KeStallExecutionProcessor"])],
            ..TestImage::default()
        }
        .build();
        assert_eq!(pe_checksum(&image, CHECKSUM_OFFSET), 0x0000_2288);
    }

    #[test]
    fn checksum_of_the_built_driver() {
        // Compares with the checksum lld-link wrote (/RELEASE) into a driver built by
        // `cargo xtask driver`, when one is given.
        let Some(path) = std::env::var_os("NTPOOL_TEST_SYS") else {
            eprintln!("skipped: set NTPOOL_TEST_SYS to a built .sys to compare with lld-link's checksum");
            return;
        };
        let image = std::fs::read(&path).expect("NTPOOL_TEST_SYS names a readable file");
        let offset = checksum_offset(&image).expect("a PE image");
        let stored = u32::from_le_bytes(image[offset..offset + 4].try_into().expect("4 bytes"));
        assert_ne!(stored, 0, "link the driver with /RELEASE");
        assert_eq!(pe_checksum(&image, offset), stored);
    }

    #[test]
    fn a_good_driver_passes() {
        let image = TestImage::default().build();
        let report = verify_image(&image, &Policy::default()).expect("all checks pass");
        assert!(report.starts_with("all 12 driver image checks passed"), "{report}");
        assert!(report.contains("ntoskrnl.exe!DbgPrint"), "{report}");
        assert!(report.contains("RVA 0x1000 = exported DriverEntry"), "{report}");
    }

    #[test]
    fn wrong_or_missing_checksum_fails() {
        let mut image = TestImage::default().build();
        image[CHECKSUM_OFFSET] ^= 1;
        assert_eq!(failed_checks(&image), ["checksum"]);
        let image = TestImage::default().build_without_checksum();
        assert_eq!(failed_checks(&image), ["checksum"]);
    }

    #[test]
    fn each_header_mistake_is_named() {
        let cases: Vec<(TestImage, &str)> = vec![
            (TestImage { machine: 0xaa64, ..TestImage::default() }, "machine"),
            (TestImage { subsystem: 2, ..TestImage::default() }, "subsystem"),
            (TestImage { dll_characteristics: 0x0060, ..TestImage::default() }, "NX compatible"),
            (TestImage { file_characteristics: 0x0023, ..TestImage::default() }, "relocatable"),
            (TestImage { text_characteristics: 0xe000_0020, ..TestImage::default() }, "W^X sections"),
            (TestImage { entry: TEXT_RVA + 1, ..TestImage::default() }, "entry point"),
            (TestImage { exports: vec![], ..TestImage::default() }, "entry point"),
            (
                TestImage { exports: vec![("DriverEntry", RDATA_RVA)], entry: RDATA_RVA, ..TestImage::default() },
                "entry point",
            ),
        ];
        for (image, expected) in cases {
            assert_eq!(failed_checks(&image.build()), [expected]);
        }
    }

    #[test]
    fn imports_are_checked() {
        let image =
            TestImage { imports: vec![("ntoskrnl.exe", vec!["DbgPrint", "ExAllocatePool2"])], ..TestImage::default() };
        assert_eq!(failed_checks(&image.build()), ["forbidden imports"]);

        let image = TestImage {
            imports: vec![("ntoskrnl.exe", vec!["DbgPrint"]), ("kernel32.dll", vec!["Sleep"])],
            ..TestImage::default()
        };
        assert_eq!(failed_checks(&image.build()), ["import modules"]);

        let image = TestImage {
            imports: vec![
                ("NTOSKRNL.EXE", vec!["DbgPrint"]),
                ("HAL.dll", vec!["KeStallExecutionProcessor"]),
                ("videoprt.sys", vec!["VideoPortInitialize"]),
            ],
            ..TestImage::default()
        };
        assert_eq!(failed_checks(&image.build()), Vec::<String>::new());
    }

    #[test]
    fn every_failure_is_listed() {
        let image = TestImage {
            machine: 0x014c,
            subsystem: 3,
            dll_characteristics: 0,
            imports: vec![("ntoskrnl.exe", vec!["ExAllocatePool3"]), ("msvcrt.dll", vec!["memcpy"])],
            ..TestImage::default()
        }
        .build_without_checksum();
        let report = verify_image(&image, &Policy::default()).expect_err("must fail");
        assert!(
            report.starts_with(
                "6 of 12 driver image checks FAILED: machine, subsystem, checksum, NX compatible, \
                 import modules, forbidden imports"
            ),
            "{report}"
        );
        assert!(report.contains("ntoskrnl.exe!ExAllocatePool3"), "{report}");
        assert!(report.contains("msvcrt.dll"), "{report}");
    }

    #[test]
    fn pe32_and_non_pe_are_refused() {
        let mut image = TestImage::default().build();
        // Optional header magic of PE32.
        put16(&mut image, 0x44 + 20, 0x10b);
        let report = verify_image(&image, &Policy::default()).expect_err("PE32 must fail");
        assert!(report.contains("[FAIL] format"), "{report}");

        let error = verify_image(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0", &Policy::default()).expect_err("not PE");
        assert!(error.starts_with("not a PE image"), "{error}");
    }
}
