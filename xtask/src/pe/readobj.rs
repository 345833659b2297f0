//! A second, independent reading of the driver image by LLVM's `llvm-readobj`, which must agree
//! with what [`super::verify`] checked.

use std::path::Path;
use std::process::Command;

/// A second, independent reading of the driver image: llvm-readobj's view of the headers and the
/// imports must show what `pe::verify` checked.
pub fn readobj_agrees(sys: &Path) -> Result<String, String> {
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
    let expected = [
        ("Machine: IMAGE_FILE_MACHINE_AMD64", "AMD64"),
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
    Ok("llvm-readobj: AMD64, PE32+, subsystem NATIVE, imports from ntoskrnl.exe only, no ExAllocatePool2".into())
}
