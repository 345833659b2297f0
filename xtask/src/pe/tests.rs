//! The driver image checks on images made to pass or fail each of them.

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

#[test]
fn an_arm64_driver_passes_the_arm64_policy_only() {
    let image = TestImage { machine: 0xAA64, ..TestImage::default() }.build();
    let report = verify_image(&image, &Policy::arm64()).expect("all checks pass for ARM64");
    assert!(report.contains("ARM64 (0xaa64)"), "{report}");
    let report = verify_image(&image, &Policy::default()).expect_err("an ARM64 image is no AMD64 driver");
    assert!(report.contains("expected AMD64 (0x8664)"), "{report}");
    let x64 = TestImage::default().build();
    let report = verify_image(&x64, &Policy::arm64()).expect_err("an AMD64 image is no ARM64 driver");
    assert!(report.contains("expected ARM64 (0xaa64)"), "{report}");
}
