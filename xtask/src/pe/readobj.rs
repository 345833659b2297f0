//! A second, independent reading of the driver image by LLVM's `llvm-readobj`, which must agree
//! with what [`super::verify`] checked.

use std::path::Path;
use std::process::Command;

/// The machines [`readobj_agrees_for`] knows, as llvm-readobj names them and as the report does.
const MACHINES: &[(u16, &str, &str)] =
    &[(0x8664, "IMAGE_FILE_MACHINE_AMD64", "AMD64"), (0xAA64, "IMAGE_FILE_MACHINE_ARM64", "ARM64")];

/// A second, independent reading of the driver image: llvm-readobj's view of the headers and the
/// imports must show what `pe::verify` checked.
pub fn readobj_agrees(sys: &Path) -> Result<String, String> {
    readobj_agrees_for(sys, 0x8664)
}

/// [`readobj_agrees`] for an image of `machine` (0x8664 AMD64, 0xAA64 ARM64).
pub fn readobj_agrees_for(sys: &Path, machine: u16) -> Result<String, String> {
    let &(_, machine_line, machine_name) = MACHINES
        .iter()
        .find(|(value, _, _)| *value == machine)
        .ok_or_else(|| format!("no llvm-readobj name for machine {machine:#06x}"))?;
    let output = ["llvm-readobj", "llvm-readobj-14"]
        .iter()
        .find_map(|tool| Command::new(tool).args(["--file-headers", "--coff-imports"]).arg(sys).output().ok())
        .ok_or("llvm-readobj is not installed (Debian: apt-get install llvm)")?;
    if !output.status.success() {
        return Err(format!("llvm-readobj failed on {}: {}", sys.display(), String::from_utf8_lossy(&output.stderr)));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let modules: Vec<&str> =
        text.lines().filter_map(|line| line.trim().strip_prefix("Name: ")).filter(|name| name.contains('.')).collect();
    let machine_line = format!("Machine: {machine_line}");
    let expected = [
        (machine_line.as_str(), machine_name),
        ("Magic: 0x20B", "PE32+"),
        ("Subsystem: IMAGE_SUBSYSTEM_NATIVE", "subsystem NATIVE"),
    ];
    let missing: Vec<&str> = expected.iter().filter(|(line, _)| !text.contains(line)).map(|(_, what)| *what).collect();
    if !missing.is_empty() || modules != ["ntoskrnl.exe"] || text.contains("ExAllocatePool2") {
        return Err(format!(
            "llvm-readobj disagrees: missing {missing:?}, import modules {modules:?}, ExAllocatePool2 imported: {}\n{text}",
            text.contains("ExAllocatePool2")
        ));
    }
    Ok(format!(
        "llvm-readobj: {machine_name}, PE32+, subsystem NATIVE, imports from ntoskrnl.exe only, no ExAllocatePool2"
    ))
}
