//! Zero cost in the real driver (part 1 of `cargo xtask bench`): the pairs of functions the release
//! `.sys` exports, each operation through ntpool and written by hand, disassembled with
//! `llvm-objdump` and counted.
//!
//! What a side reaches is followed through direct calls and jumps. A side that calls functions
//! of the image through pointers held in its data (the raw `lookaside` side calls its list's
//! `AllocateEx` / `FreeEx`) names them in an exported, null-terminated table of code pointers,
//! `ntpool_bench_<pair>_<side>_indirect`, which the code itself uses (the raw list is initialized
//! from it): the bench reads the pointers from the image and follows them as further roots of
//! that side. When the other side reaches the same functions (ntpool's list calls the same
//! callbacks directly), they are shared: counted on neither side.
//!
//! A function without unwind data (a leaf) ends at the next one with it, at the linker's `int3`
//! padding, or after an unconditional jump, return or trap that no branch before it jumps past.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use object::read::pe::{ImageNtHeaders, ImageOptionalHeader};
use object::{LittleEndian as LE, Object, ObjectSection, pe};

use crate::host::files;
use crate::pe::{import_slots, parse};

/// The pairs of `src/bench_pairs/`: each exports `ntpool_bench_<name>_ntpool` and
/// `ntpool_bench_<name>_raw`. One entry per pair.
const PAIRS: &[(&str, &str)] = &[
    ("paged_box", "PagedBox<u64> allocate + drop (paged pool, with the IRQL backstop)"),
    ("non_paged_box", "NonPagedBox<u64> allocate + drop (non-paged pool)"),
    ("vec_push", "allocator-api2 Vec<u32> push that grows (PoolAllocator vs a hand-written Allocator)"),
    ("spin_lock", "SpinLock::with region with its Dispatch token"),
    ("lookaside", "LookasideList<u64> entry allocate + drop vs the wdm.h inline routines on a LOOKASIDE_LIST_EX"),
    ("dpc", "Dpc queue (KeInsertQueueDpc) + the routine the kernel calls, which counts its runs"),
    ("work_item", "WorkItem queue (flag, IoQueueWorkItem) + the routine the kernel calls, which counts its runs"),
];

/// One disassembled instruction.
#[derive(Debug, Clone)]
struct Instruction {
    address: u64,
    mnemonic: String,
    operands: String,
}

/// What the image tells about its code: function bounds, exports and import slots.
struct Image {
    base: u64,
    /// `.pdata`: begin -> end RVA of every function with unwind data.
    functions: BTreeMap<u32, u32>,
    exports: BTreeMap<String, u32>,
    /// Import address table slot (absolute address) -> routine name.
    import_slots: BTreeMap<u64, String>,
    /// Every section: its RVA, its bytes in the file, and whether it is executable.
    sections: Vec<(u32, Vec<u8>, bool)>,
}

impl Image {
    /// Reads what the bench needs of the image `data`.
    fn read(data: &[u8]) -> Result<Image, String> {
        let file = parse(data)?;
        let base = file.nt_headers().optional_header().image_base();
        let mut functions = BTreeMap::new();
        if let Some(pdata) = file.section_by_name(".pdata") {
            let bytes = pdata.data().map_err(|e| e.to_string())?;
            for entry in bytes.chunks_exact(12) {
                let begin = u32::from_le_bytes(entry[0..4].try_into().unwrap_or_default());
                let end = u32::from_le_bytes(entry[4..8].try_into().unwrap_or_default());
                if begin != 0 && end > begin {
                    functions.insert(begin, end);
                }
            }
        }
        let mut exports = BTreeMap::new();
        if let Some(table) = file.export_table().map_err(|e| e.to_string())? {
            for export in table.exports().map_err(|e| e.to_string())? {
                if let (Some(name), object::read::pe::ExportTarget::Address(rva)) = (export.name, export.target) {
                    exports.insert(String::from_utf8_lossy(name).into_owned(), rva);
                }
            }
        }
        let import_slots =
            import_slots(&file)?.into_iter().map(|import| (base + u64::from(import.slot), import.routine)).collect();
        let mut sections = Vec::new();
        for section in file.section_table().iter() {
            let bytes = section.pe_data(data).map_err(|e| e.to_string())?.to_vec();
            let executable = section.characteristics.get(LE).0 & pe::IMAGE_SCN_MEM_EXECUTE.0 != 0;
            sections.push((section.virtual_address.get(LE), bytes, executable));
        }
        Ok(Image { base, functions, exports, import_slots, sections })
    }

    /// The functions a null-terminated table of code pointers at `rva` points to (RVAs). The
    /// pointers are absolute addresses at the image's preferred base, as the file holds them before
    /// relocation; each must point into an executable section.
    fn code_pointers(&self, rva: u32) -> Result<Vec<u32>, String> {
        let (start, bytes, _) = self
            .sections
            .iter()
            .find(|(start, bytes, _)| (*start..*start + bytes.len() as u32).contains(&rva))
            .ok_or(format!("no section holds RVA {rva:#x}"))?;
        let mut functions = Vec::new();
        for word in bytes[(rva - start) as usize..].chunks_exact(8) {
            let address = u64::from_le_bytes(word.try_into().unwrap_or_default());
            if address == 0 {
                return Ok(functions);
            }
            let target = address.checked_sub(self.base).and_then(|t| u32::try_from(t).ok());
            let code = target.filter(|&t| {
                self.sections.iter().any(|(s, b, executable)| *executable && (*s..*s + b.len() as u32).contains(&t))
            });
            functions.push(code.ok_or(format!("the table at RVA {rva:#x} holds {address:#x}, not code of the image"))?);
        }
        Err(format!("the table at RVA {rva:#x} has no null end"))
    }

    /// The end RVA of the function starting at `begin`: from `.pdata`, else (a leaf without unwind
    /// data) the next function's start.
    fn end_of(&self, begin: u32) -> Option<u32> {
        self.functions.get(&begin).copied().or_else(|| self.functions.range(begin + 1..).next().map(|(&next, _)| next))
    }
}

/// One function's code and what it calls.
#[derive(Debug, Clone)]
struct Function {
    instructions: Vec<Instruction>,
    bytes: u64,
    /// Functions of the image it calls or jumps to (RVAs).
    callees: BTreeSet<u32>,
    /// Imported routines it calls.
    imports: BTreeSet<String>,
}

fn disassemble(image: &Image, sys: &Path, objdump: &str, begin: u32) -> Result<Function, String> {
    let end = image.end_of(begin).ok_or(format!("no function bounds for RVA {begin:#x}"))?;
    let start = image.base + u64::from(begin);
    let mut stop = image.base + u64::from(end);
    let output = Command::new(objdump)
        .args(["-d", "--no-show-raw-insn"])
        .arg(format!("--start-address={start:#x}"))
        .arg(format!("--stop-address={stop:#x}"))
        .arg(sys)
        .output()
        .map_err(|e| format!("cannot run {objdump}: {e}"))?;
    if !output.status.success() {
        return Err(format!("{objdump} failed: {}", String::from_utf8_lossy(&output.stderr)));
    }
    let mut instructions: Vec<Instruction> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let (address, rest) = line.trim_start().split_once(':')?;
            let address = u64::from_str_radix(address, 16).ok()?;
            let mut parts = rest.trim().splitn(2, char::is_whitespace);
            let mnemonic = parts.next()?.to_owned();
            let operands = parts.next().unwrap_or("").trim().to_owned();
            (!mnemonic.is_empty()).then_some(Instruction { address, mnemonic, operands })
        })
        .collect();
    // A leaf function without unwind data ends before the next one with it, but other leaves may lie
    // in between: it ends at the linker's padding (`int3`), or after an unconditional jump, return
    // or trap that no branch seen so far jumps past.
    let mut cut_short = false;
    if !image.functions.contains_key(&begin) {
        let mut reach = start;
        let mut cut = None;
        for (index, instruction) in instructions.iter().enumerate() {
            if instruction.mnemonic == "int3"
                || (index > 0 && instruction.address > reach && ends(&instructions[index - 1]))
            {
                cut = Some(index);
                break;
            }
            if instruction.mnemonic.starts_with('j') {
                if let Some(target) = instruction.operands.split_whitespace().next().and_then(parse_hex) {
                    if (start..stop).contains(&target) {
                        reach = reach.max(target);
                    }
                }
            }
        }
        if let Some(cut) = cut {
            stop = instructions[cut].address;
            instructions.truncate(cut);
            cut_short = true;
        }
    }
    // Padding between functions is not code.
    while instructions.last().is_some_and(|i| i.mnemonic == "int3") {
        instructions.pop();
    }
    let padding_start = match instructions.last() {
        Some(_) if cut_short => stop,
        Some(_) => {
            // The end of the last instruction: the next line's address in a wider listing is not
            // at hand, so count the padding from the end instead.
            let trailing =
                String::from_utf8_lossy(&output.stdout).lines().rev().take_while(|l| l.contains("int3")).count();
            stop - trailing as u64
        }
        None => start,
    };
    let mut callees = BTreeSet::new();
    let mut imports = BTreeSet::new();
    for instruction in &instructions {
        if !(instruction.mnemonic.starts_with("call") || instruction.mnemonic.starts_with("jmp")) {
            continue;
        }
        if let Some(slot) =
            instruction.operands.split("# ").nth(1).and_then(|a| parse_hex(a.split_whitespace().next()?))
        {
            if instruction.operands.contains("(%rip)") {
                if let Some(name) = image.import_slots.get(&slot) {
                    imports.insert(name.clone());
                }
                continue;
            }
        }
        if let Some(target) = instruction.operands.split_whitespace().next().and_then(parse_hex) {
            if !(start..stop).contains(&target) {
                callees.insert((target - image.base) as u32);
            }
        }
    }
    Ok(Function { instructions, bytes: padding_start - start, callees, imports })
}

/// Whether execution never falls through `instruction` to the next one.
fn ends(instruction: &Instruction) -> bool {
    matches!(instruction.mnemonic.as_str(), "jmp" | "jmpq" | "ret" | "retq" | "ud2")
}

fn parse_hex(text: &str) -> Option<u64> {
    u64::from_str_radix(text.strip_prefix("0x")?, 16).ok()
}

/// Every function reachable from `roots` inside the image (`roots` included), by RVA.
fn reachable(
    image: &Image,
    sys: &Path,
    objdump: &str,
    roots: &[u32],
    cache: &mut BTreeMap<u32, Function>,
) -> Result<BTreeSet<u32>, String> {
    let mut seen = BTreeSet::new();
    let mut stack = roots.to_vec();
    while let Some(rva) = stack.pop() {
        if !seen.insert(rva) {
            continue;
        }
        if let std::collections::btree_map::Entry::Vacant(slot) = cache.entry(rva) {
            slot.insert(disassemble(image, sys, objdump, rva)?);
        }
        stack.extend(cache[&rva].callees.iter().copied());
    }
    Ok(seen)
}

/// Counts every pair of [`PAIRS`]; returns the report lines and the full listing.
pub(super) fn zero_cost(sys: &Path, objdump: &str) -> Result<(Vec<String>, String), String> {
    let data = files::read(sys)?;
    let image = Image::read(&data)?;
    let mut cache = BTreeMap::new();
    let mut lines = Vec::new();
    let mut listing = String::new();
    for (name, what) in PAIRS {
        let export = |side: &str| {
            let symbol = format!("ntpool_bench_{name}_{side}");
            image.exports.get(&symbol).copied().ok_or(format!("{} exports no {symbol}", sys.display()))
        };
        let (ours, raw) = (export("ntpool")?, export("raw")?);
        // The functions a side calls through pointers held in its data (the callbacks of the raw
        // side's lookaside list) are named by its optional `_indirect` table: roots too.
        let indirect = |side: &str| match image.exports.get(&format!("ntpool_bench_{name}_{side}_indirect")) {
            Some(&table) => image.code_pointers(table),
            None => Ok(Vec::new()),
        };
        let (ours_indirect, raw_indirect) = (indirect("ntpool")?, indirect("raw")?);
        let ours_all = reachable(&image, sys, objdump, &[&[ours][..], &ours_indirect].concat(), &mut cache)?;
        let raw_all = reachable(&image, sys, objdump, &[&[raw][..], &raw_indirect].concat(), &mut cache)?;
        // Code both sides reach (the kernel interface's `ExAllocatePool2`, memcpy) is the same work:
        // counted on neither side. What is left is each side's own code.
        let shared: BTreeSet<u32> =
            ours_all.intersection(&raw_all).copied().filter(|&f| f != ours && f != raw).collect();
        let own = |all: &BTreeSet<u32>| -> (usize, u64, usize) {
            let own: Vec<&Function> = all.iter().filter(|f| !shared.contains(f)).map(|f| &cache[f]).collect();
            (own.iter().map(|f| f.instructions.len()).sum(), own.iter().map(|f| f.bytes).sum(), own.len())
        };
        let ((oi, ob, of), (ri, rb, rf)) = (own(&ours_all), own(&raw_all));
        let same = if ours == raw {
            "identical code: the linker folded both into one function".to_owned()
        } else if mnemonics(&cache[&ours]) == mnemonics(&cache[&raw]) && of == 1 && rf == 1 {
            "the same instructions (only RIP-relative offsets differ)".to_owned()
        } else {
            format!("{of} vs {rf} function(s) of their own")
        };
        let imports: BTreeSet<&String> = cache[&ours].imports.iter().chain(&cache[&raw].imports).collect();
        let imports: Vec<&str> = imports.into_iter().map(String::as_str).collect();
        let shared_instructions: usize = shared.iter().map(|f| cache[f].instructions.len()).sum();
        let mut through_pointers = String::new();
        for (side, functions) in [("ntpool", &ours_indirect), ("raw", &raw_indirect)] {
            if !functions.is_empty() {
                let counted = functions.iter().filter(|f| !shared.contains(f)).count();
                let _ = write!(
                    through_pointers,
                    "; {side} also reaches {} function(s) through pointers (ntpool_bench_{name}_{side}_indirect), \
                     {counted} of them its own",
                    functions.len()
                );
            }
        }
        lines.push(format!(
            "zero-cost {name}: {what}: ntpool {oi} instructions / {ob} bytes, raw {ri} / {rb}: ratio {:.2} \
             (bytes {:.2}); {same}; both call {} and {} shared function(s) of {shared_instructions} instructions \
             (the kernel interface's ExAllocatePool2, memcpy, ...){through_pointers}",
            oi as f64 / ri as f64,
            ob as f64 / rb as f64,
            imports.join(", "),
            shared.len(),
        ));
        for (side, rva, indirect) in [("ntpool", ours, &ours_indirect), ("raw", raw, &raw_indirect)] {
            let _ = writeln!(listing, "\n== ntpool_bench_{name}_{side} (RVA {rva:#x}) ==");
            for function in ours_all.iter().chain(&raw_all).collect::<BTreeSet<_>>() {
                let reached = if side == "ntpool" { &ours_all } else { &raw_all };
                if !reached.contains(function) || (shared.contains(function)) {
                    continue;
                }
                let how = if indirect.contains(function) { "called through a pointer" } else { "called" };
                if *function != rva {
                    let _ = writeln!(listing, "  -- {how}: fn@{:#x}", image.base + u64::from(*function));
                }
                for i in &cache[function].instructions {
                    let _ = writeln!(listing, "  {:x}:  {:<8} {}", i.address, i.mnemonic, i.operands);
                }
            }
        }
        if !shared.is_empty() {
            let _ = writeln!(listing, "\n== {name}: reached by both sides, counted on neither ==");
            for function in &shared {
                let how = if ours_indirect.contains(function) || raw_indirect.contains(function) {
                    ", called through a pointer"
                } else {
                    ""
                };
                let f = &cache[function];
                let (count, bytes) = (f.instructions.len(), f.bytes);
                let _ = writeln!(
                    listing,
                    "  fn@{:#x}: {count} instructions, {bytes} bytes{how}",
                    image.base + u64::from(*function)
                );
            }
        }
    }
    Ok((lines, listing))
}

fn mnemonics(function: &Function) -> Vec<&str> {
    function.instructions.iter().map(|i| i.mnemonic.as_str()).collect()
}
