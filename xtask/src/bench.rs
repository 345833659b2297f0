//! `cargo xtask bench`: what ntpool costs, measured.
//!
//! 1. **Zero cost in the real driver.** The release `.sys` exports pairs of functions
//!    (`src/bench_pairs.rs`): each operation through ntpool and written by hand against the kernel
//!    interface. Their bounds come from the export table and the exception directory (`.pdata`);
//!    `llvm-objdump` disassembles them; instructions and bytes are counted, with the functions each
//!    one calls inside the image that the other side does not call. Ratio ntpool / raw.
//!
//!    What a side reaches is followed through direct calls and jumps. A side that calls functions
//!    of the image through pointers held in its data (the raw `lookaside` side calls its list's
//!    `AllocateEx` / `FreeEx`) names them in an exported, null-terminated table of code pointers,
//!    `ntpool_bench_<pair>_<side>_indirect`, which the code itself uses (the raw list is initialized
//!    from it): the bench reads the pointers from the image and follows them as further roots of
//!    that side. When the other side reaches the same functions (ntpool's list calls the same
//!    callbacks directly), they are shared: counted on neither side.
//!
//!    A function without unwind data (a leaf) ends at the next one with it, at the linker's `int3`
//!    padding, or after an unconditional jump, return or trap that no branch before it jumps past.
//! 2. **Sizes.** The tests that tokens, tags and pools are zero-sized and a box one pointer.
//! 3. **Emulated kernel throughput.** `ntpool/benches/throughput.rs`: allocate + free pairs through
//!    ntpool on the emulated kernel (verifier off, tracking on, special pool) against malloc/free in
//!    the same run, as wall-clock medians (1 and 2 threads) and as instructions per pair counted by
//!    `valgrind --tool=callgrind` (deterministic).
//! 4. **Build cost.** Cold (fresh target folders) and warm builds of what `cargo xtask test` compiles.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use object::LittleEndian as LE;
use object::read::pe::{ImageNtHeaders, ImageOptionalHeader, ImageThunkData, PeFile64};
use object::{Object, ObjectSection, pe};

use crate::cross::{self, Artifact};

/// The pairs of `src/bench_pairs.rs`: each exports `ntpool_bench_<name>_ntpool` and
/// `ntpool_bench_<name>_raw`. One entry per pair.
const PAIRS: &[(&str, &str)] = &[
    ("paged_box", "PagedBox<u64> allocate + drop (paged pool, with the IRQL backstop)"),
    ("non_paged_box", "NonPagedBox<u64> allocate + drop (non-paged pool)"),
    ("vec_push", "allocator-api2 Vec<u32> push that grows (PoolAllocator vs a hand-written Allocator)"),
    ("spin_lock", "SpinLock::with region with its Dispatch token"),
    ("lookaside", "LookasideList<u64> entry allocate + drop vs the wdm.h inline routines on a LOOKASIDE_LIST_EX"),
];

/// The configurations of `ntpool/benches/throughput.rs`, the baseline first.
const CONFIGS: &[(&str, &str)] = &[
    ("malloc", "malloc/free (the system allocator)"),
    ("verifier-off", "ntpool, emulated kernel, Driver Verifier off"),
    ("tracking", "ntpool, emulated kernel, Driver Verifier on (pool tracking)"),
    ("special-pool", "ntpool, emulated kernel, Driver Verifier on + special pool"),
];

/// The parts of the bench, in the order they run.
const PARTS: &[&str] = &["zero-cost", "sizes", "throughput", "build"];

/// Runs the measurements (all, or the `parts` named) and prints one line per measurement, then all
/// of them again as a summary.
pub fn run(root: &Path, parts: &[String]) -> Result<(), String> {
    if let Some(unknown) = parts.iter().find(|p| !PARTS.contains(&p.as_str())) {
        return Err(format!("unknown part {unknown}: the parts are {}", PARTS.join(", ")));
    }
    let wanted = |part: &str| parts.is_empty() || parts.iter().any(|p| p == part);
    let started = Instant::now();
    let out = root.join("target/bench");
    fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut summary = String::new();

    let toolchain = cross::provision(root)?;
    if wanted("zero-cost") {
        println!("==> zero cost in the release driver (llvm-objdump of the exported pairs)");
        let sys = cross::build_driver(root, &toolchain, "ntpool-driver", true)?;
        let objdump = tool(&["llvm-objdump-14", "llvm-objdump"], "llvm")?;
        let (lines, listing) = zero_cost(&sys, &objdump)?;
        let listing_path = out.join("zero-cost.txt");
        fs::write(&listing_path, listing).map_err(|e| format!("cannot write {}: {e}", listing_path.display()))?;
        for line in &lines {
            println!("{line}");
            let _ = writeln!(summary, "{line}");
        }
        println!("    (disassembly of every pair: {})", listing_path.display());
    }

    if wanted("sizes") {
        println!("==> sizes");
        let mut sizes = crate::cargo();
        sizes.args(["test", "-p", "ntpool", "--test", "pool", "--locked", "-q", "--", "wide", "zero_sized"]);
        let line = match sizes.output() {
            Ok(output) if output.status.success() => {
                let text = String::from_utf8_lossy(&output.stdout);
                let passed = text.lines().find(|l| l.starts_with("test result")).unwrap_or("").trim().to_owned();
                if !passed.starts_with("test result: ok.") || passed.starts_with("test result: ok. 0 passed") {
                    return Err(format!("the size tests ran no test: {passed}"));
                }
                format!(
                    "sizes: tokens, tags, pools and allocators are zero-sized, a box and its Option one pointer: {passed}"
                )
            }
            Ok(output) => return Err(format!("the size tests failed:\n{}", String::from_utf8_lossy(&output.stdout))),
            Err(e) => return Err(format!("cannot run the size tests: {e}")),
        };
        println!("{line}");
        let _ = writeln!(summary, "{line}");
    }

    if wanted("throughput") {
        println!("==> emulated kernel throughput (ntpool/benches/throughput.rs)");
        let valgrind = tool(&["valgrind"], "valgrind")?;
        for line in throughput(&valgrind, &out)? {
            println!("{line}");
            let _ = writeln!(summary, "{line}");
        }
    }

    if wanted("build") {
        println!("==> build cost (fresh target folders, then again)");
        for line in build_cost(root, &toolchain)? {
            println!("{line}");
            let _ = writeln!(summary, "{line}");
        }
    }

    println!("\n{summary}bench: done in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The first of `names` that runs; installs Debian package `package` first when none does and this
/// runs as root, else fails with the command to run.
pub(crate) fn tool(names: &[&str], package: &str) -> Result<String, String> {
    let runs =
        |name: &str| Command::new(name).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
    if let Some(name) = names.iter().find(|name| runs(name)) {
        return Ok((*name).to_owned());
    }
    let as_root = Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !as_root {
        return Err(format!("{} is not installed: run `sudo apt-get install {package}`", names[0]));
    }
    println!("    installing {package} (apt-get install -y {package})");
    let status = Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends", package])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| format!("cannot run apt-get: {e}"))?;
    if !status.success() {
        return Err(format!("apt-get install {package} failed ({status})"));
    }
    names
        .iter()
        .find(|name| runs(name))
        .map(|name| (*name).to_owned())
        .ok_or(format!("{package} installed no {names:?}"))
}

// ---------------------------------------------------------------------------------------------
// Zero cost
// ---------------------------------------------------------------------------------------------

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
    fn read(data: &[u8]) -> Result<Image, String> {
        let file = PeFile64::parse(data).map_err(|e| format!("not a PE32+ image: {e}"))?;
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
        let mut import_slots = BTreeMap::new();
        if let Some(table) = file.import_table().map_err(|e| e.to_string())? {
            let mut descriptors = table.descriptors().map_err(|e| e.to_string())?;
            while let Some(descriptor) = descriptors.next().map_err(|e| e.to_string())? {
                let lookup = match descriptor.original_first_thunk.get(LE) {
                    0 => descriptor.first_thunk.get(LE),
                    rva => rva,
                };
                let iat = descriptor.first_thunk.get(LE);
                let mut thunks = table.thunks(lookup).map_err(|e| e.to_string())?;
                let mut index = 0u64;
                while let Some(thunk) = thunks.next::<pe::ImageNtHeaders64>().map_err(|e| e.to_string())? {
                    let name = if thunk.is_ordinal() {
                        format!("#{}", thunk.ordinal())
                    } else {
                        let (_hint, name) = table.hint_name(thunk.address()).map_err(|e| e.to_string())?;
                        String::from_utf8_lossy(name).into_owned()
                    };
                    import_slots.insert(base + u64::from(iat) + 8 * index, name);
                    index += 1;
                }
            }
        }
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
fn zero_cost(sys: &Path, objdump: &str) -> Result<(Vec<String>, String), String> {
    let data = fs::read(sys).map_err(|e| format!("cannot read {}: {e}", sys.display()))?;
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

// ---------------------------------------------------------------------------------------------
// Throughput
// ---------------------------------------------------------------------------------------------

/// Builds the throughput program (bench profile) and returns its path.
fn throughput_program() -> Result<PathBuf, String> {
    let mut build = crate::cargo();
    build.args(["bench", "-p", "ntpool", "--bench", "throughput", "--no-run", "--locked", "--message-format=json"]);
    build.stderr(Stdio::inherit());
    let output = build.output().map_err(|e| format!("cannot run cargo bench: {e}"))?;
    if !output.status.success() {
        return Err("cargo bench --no-run failed".into());
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "throughput")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| "cargo built no throughput program".to_owned())
}

/// The median nanoseconds per pair of `config` on `threads` threads.
fn wall_clock(program: &Path, config: &str, threads: usize) -> Result<f64, String> {
    // Special pool maps pages per block: far fewer pairs keep it within seconds.
    let pairs = if config == "special-pool" { "2000" } else { "200000" };
    let output = Command::new(program)
        .args(["time", config, &threads.to_string(), pairs, "11"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!("throughput time {config} failed: {text}{}", String::from_utf8_lossy(&output.stderr)));
    }
    text.split_whitespace().nth(1).and_then(|v| v.parse().ok()).ok_or(format!("unexpected output: {text}"))
}

/// Instructions per pair of `config`, from two callgrind runs of different lengths (the start-up
/// and the warm-up cancel out).
fn instructions(program: &Path, valgrind: &str, config: &str, out: &Path) -> Result<f64, String> {
    let (short, long) = if config == "special-pool" { (6000u64, 8000u64) } else { (10_000, 20_000) };
    let mut counts = Vec::new();
    for pairs in [short, long] {
        let output = Command::new(valgrind)
            .arg("--tool=callgrind")
            .arg(format!("--callgrind-out-file={}", out.join(format!("callgrind.{config}.{pairs}")).display()))
            .arg(program)
            .args(["count", config, &pairs.to_string()])
            .output()
            .map_err(|e| format!("cannot run valgrind: {e}"))?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        let collected = stderr
            .lines()
            .find_map(|l| l.split("Collected :").nth(1))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .ok_or(format!("callgrind reported no count for {config}:\n{stderr}"))?;
        counts.push(collected);
    }
    Ok((counts[1] as f64 - counts[0] as f64) / (long - short) as f64)
}

fn throughput(valgrind: &str, out: &Path) -> Result<Vec<String>, String> {
    let program = throughput_program()?;
    let mut lines = Vec::new();
    let mut baseline: Option<(f64, f64, f64)> = None;
    for (config, what) in CONFIGS {
        let one = wall_clock(&program, config, 1)?;
        let two = wall_clock(&program, config, 2)?;
        let count = instructions(&program, valgrind, config, out)?;
        let (base_one, base_two, base_count) = *baseline.get_or_insert((one, two, count));
        lines.push(format!(
            "throughput {config}: {what}: {:.2} M pairs/s ({one:.1} ns/pair, median of 11), {count:.0} instructions/pair; \
             vs malloc: {:.2}x time, {:.2}x instructions; 2 threads: {:.2} M pairs/s ({:.2}x of 1 thread, malloc {:.2}x)",
            1e3 / one,
            one / base_one,
            count / base_count,
            1e3 / two,
            one / two,
            base_one / base_two,
        ));
    }
    Ok(lines)
}

// ---------------------------------------------------------------------------------------------
// Build cost
// ---------------------------------------------------------------------------------------------

fn build_cost(root: &Path, toolchain: &cross::Toolchain) -> Result<Vec<String>, String> {
    let scratch = root.join("target/bench/build-cost");
    if scratch.exists() {
        fs::remove_dir_all(&scratch).map_err(|e| format!("cannot remove {}: {e}", scratch.display()))?;
    }
    let host_dir = scratch.join("host");
    let cross_dir = scratch.join("cross");
    let host = |label: &str| -> Result<f64, String> {
        let started = Instant::now();
        let mut command = crate::cargo();
        command.args(["test", "--workspace", "--locked", "--no-run", "-q"]).env("CARGO_TARGET_DIR", &host_dir);
        let status = command.status().map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            return Err(format!("{label} host build failed"));
        }
        Ok(started.elapsed().as_secs_f64())
    };
    let cross = || -> Result<f64, String> {
        let started = Instant::now();
        let folder = cross_dir.to_str().ok_or("target path is not UTF-8")?;
        cross::build_artifact(root, toolchain, "ntpool-driver", Artifact::Cdylib, &[], true, folder)?;
        Ok(started.elapsed().as_secs_f64())
    };
    let (host_cold, cross_cold) = (host("cold")?, cross()?);
    let (host_warm, cross_warm) = (host("warm")?, cross()?);
    let _ = fs::remove_dir_all(&scratch);
    Ok(vec![
        format!(
            "build host: `cargo test --workspace --no-run` (every test of `cargo xtask test`, compiled): \
             cold {host_cold:.0} s, warm {host_warm:.1} s"
        ),
        format!(
            "build driver: release .sys cross build (core and alloc from source, LTO): cold {cross_cold:.0} s, warm {cross_warm:.1} s"
        ),
    ])
}
