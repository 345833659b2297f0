//! The relay-trace analysis of the sample driver's run: the log read cycle by cycle (between the
//! session's markers), calls and returns paired per thread, the calls made from the driver's image
//! kept, and every block followed from its allocation to its free, with the pool-discipline problems
//! (wrong tag, double free, unknown free, leak) found on the way.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use object::read::pe::{ImageNtHeaders as _, ImageOptionalHeader as _, PeFile64};

use super::log::{CRASH_PATTERNS, MARK, Relay, parse_relay, split_thread, tag_name};
use super::messages::log_line;
use crate::host::files;

/// The prefix the driver's `DbgPrint` lines start with.
pub(super) const DRIVER_PREFIX: &str = "ntpool-driver: ";
/// Allocators with the arguments `(pool type or flags, size, tag)`.
const ALLOCATORS: &[&str] = &["ExAllocatePool2", "ExAllocatePoolWithTag", "ExAllocatePoolWithQuotaTag"];
/// `POOL_QUOTA_FAIL_INSTEAD_OF_RAISE`: every `ExAllocatePoolWithQuotaTag` call of the driver must
/// carry it (ntpool never uses the raising form).
const POOL_QUOTA_FAIL_INSTEAD_OF_RAISE: u64 = 8;

/// Where the driver's image lies once loaded: the entry point's RVA (to find the base from the
/// `Call driver init <entry>` line) and the image's size.
#[derive(Debug, Clone, Copy)]
pub(super) struct ImageLayout {
    pub(super) entry_rva: u64,
    pub(super) size: u64,
}

impl ImageLayout {
    /// Reads the layout from the image `sys`.
    pub(super) fn read(sys: &Path) -> Result<Self, String> {
        let data = files::read(sys)?;
        let image = PeFile64::parse(&*data).map_err(|e| format!("{} is not a PE32+ image: {e}", sys.display()))?;
        let optional = image.nt_headers().optional_header();
        Ok(ImageLayout {
            entry_rva: u64::from(optional.address_of_entry_point()),
            size: u64::from(optional.size_of_image()),
        })
    }
}

/// Per-tag counts from the trace.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct TagStats {
    /// Non-NULL allocations.
    pub(super) allocations: u64,
    /// Allocations that returned NULL.
    pub(super) failed: u64,
    /// Frees of blocks allocated with this tag.
    pub(super) frees: u64,
    /// Bytes requested by the non-NULL allocations.
    pub(super) bytes: u64,
}

impl TagStats {
    /// Adds `other`'s counts to these.
    pub(super) fn add(&mut self, other: &TagStats) {
        self.allocations += other.allocations;
        self.failed += other.failed;
        self.frees += other.frees;
        self.bytes += other.bytes;
    }
}

/// What the log shows of one start/stop cycle (between the `cycle N start` and `cycle N end`
/// markers).
#[derive(Debug, Default)]
pub(super) struct CycleTrace {
    pub(super) number: u32,
    /// `Call driver init` of the service was seen.
    pub(super) loaded: bool,
    /// The `cycle N end` marker was seen (`sc stop` returned).
    pub(super) ended: bool,
    pub(super) tags: BTreeMap<u32, TagStats>,
    /// Per tag, the frees the driver made on a thread that was not inside one of its traced entry
    /// points (`DriverEntry`, `DriverUnload`, a dispatch routine): in a routine the kernel called
    /// without a relay line, a timer's DPC, a work item or a system thread.
    pub(super) routine_frees: BTreeMap<u32, u64>,
    /// The driver's calls per traced routine.
    pub(super) calls: BTreeMap<String, u64>,
    /// Successful calls of the routines that can fail (IoCreateDevice, IoCreateSymbolicLink).
    pub(super) succeeded: BTreeMap<String, u64>,
    /// The driver's `DbgPrint` lines (after `ntpool-driver: `), with their line numbers.
    pub(super) debug: Vec<(usize, String)>,
    pub(super) pool2_calls: Vec<(usize, String)>,
    /// Wine's `err:` lines (shown when the cycle did not complete).
    pub(super) errors: Vec<(usize, String)>,
    /// Pool discipline violations (wrong tag, double free, unknown free, leak).
    pub(super) problems: Vec<String>,
    /// Lists `IoGetDeviceInterfaces` returned (allocated inside the kernel, so not in the trace) and
    /// the driver has not yet freed with `ExFreePool`.
    pub(super) kernel_buffers: u64,
    /// `ExFreePool` calls that freed such a list.
    pub(super) kernel_buffer_frees: u64,
}

impl CycleTrace {
    /// The first of the driver's `DbgPrint` lines in the cycle that starts with `prefix`.
    pub(super) fn debug_line(&self, prefix: &str) -> Option<&str> {
        self.debug.iter().map(|(_, text)| text.as_str()).find(|text| text.starts_with(prefix))
    }
}

/// A block the driver allocated and has not freed.
#[derive(Debug)]
struct Block {
    tag: u32,
    size: u64,
    line: usize,
    text: String,
}

/// A block the driver freed (kept to tell a double free from a free of something never allocated).
#[derive(Debug)]
struct Freed {
    tag: u32,
    alloc_line: usize,
    free_line: usize,
}

/// A relay call not returned from yet, on one thread.
#[derive(Debug)]
enum Frame {
    Kernel { func: String, ret: u64, ours: bool, alloc: Option<(u32, u64, usize, String)> },
    Driver { kind: String, addr: u64, ours: bool },
}

/// The whole log, parsed.
#[derive(Debug, Default)]
pub(super) struct Trace {
    pub(super) cycles: Vec<CycleTrace>,
    /// Lines matching [`CRASH_PATTERNS`].
    pub(super) crashes: Vec<(usize, String)>,
    /// Problems outside any cycle (the driver allocating or freeing while it should not be loaded).
    pub(super) outside: Vec<String>,
    /// Pool calls of other drivers.
    pub(super) ignored: u64,
}

/// The parser's state while it reads the log.
struct Parser<'a> {
    layout: ImageLayout,
    service: &'a str,
    trace: Trace,
    current: Option<CycleTrace>,
    /// Where the driver's image was loaded (one range per load).
    images: Vec<(u64, u64)>,
    threads: HashMap<u32, Vec<Frame>>,
    live: HashMap<u64, Block>,
    freed: HashMap<u64, Freed>,
}

impl Trace {
    /// Parses a Wine log written with [`WINEDEBUG`](super::prefix::WINEDEBUG) and the session's
    /// markers. `layout` is the driver's image, `service` its service name (to find its `Call
    /// driver init` line).
    pub(super) fn parse(log: &str, layout: ImageLayout, service: &str) -> Trace {
        let mut parser = Parser {
            layout,
            service,
            trace: Trace::default(),
            current: None,
            images: Vec::new(),
            threads: HashMap::new(),
            live: HashMap::new(),
            freed: HashMap::new(),
        };
        for (index, line) in log.lines().enumerate() {
            parser.line(index + 1, line);
        }
        parser.finish_cycle(false);
        parser.trace
    }
}

impl Parser<'_> {
    fn line(&mut self, number: usize, line: &str) {
        if let Some(marker) = line.strip_prefix(MARK) {
            self.marker(marker.trim());
            return;
        }
        if CRASH_PATTERNS.iter().any(|pattern| line.contains(pattern)) {
            self.trace.crashes.push((number, line.to_string()));
        }
        let Some((thread, rest)) = split_thread(line) else { return };
        if rest.starts_with("err:") && !rest.starts_with("err:winediag:") && !rest.starts_with("err:systray:") {
            if let Some(cycle) = self.current.as_mut() {
                cycle.errors.push((number, line.to_string()));
            }
        }
        if rest.contains(":debugstr:") {
            if let (Some(cycle), Some((_, text))) = (self.current.as_mut(), rest.split_once(DRIVER_PREFIX)) {
                cycle.debug.push((number, text.trim_end().to_string()));
            }
            return;
        }
        match parse_relay(rest) {
            Some(Relay::DriverCall { kind, addr, detail }) => {
                if kind == "init" && self.is_service(detail) {
                    let base = addr.wrapping_sub(self.layout.entry_rva);
                    self.images.push((base, base.wrapping_add(self.layout.size)));
                    if let Some(cycle) = self.current.as_mut() {
                        cycle.loaded = true;
                    }
                }
                let ours = self.in_image(addr);
                self.threads.entry(thread).or_default().push(Frame::Driver { kind: kind.to_string(), addr, ours });
            }
            Some(Relay::DriverRet { kind, addr }) => {
                let stack = self.threads.entry(thread).or_default();
                if let Some(at) = stack.iter().rposition(
                    |frame| matches!(frame, Frame::Driver { kind: k, addr: a, .. } if k == kind && *a == addr),
                ) {
                    stack.truncate(at);
                }
            }
            Some(Relay::Call { func, args, ret }) => self.call(number, line, thread, func, &args, ret),
            Some(Relay::Ret { func, retval, ret }) => self.ret(number, thread, func, retval, ret),
            None => {}
        }
    }

    fn is_service(&self, detail: &str) -> bool {
        let detail = detail.replace("\\\\", "\\").to_ascii_lowercase();
        detail.contains(&format!("\\services\\{}\"", self.service.to_ascii_lowercase()))
    }

    fn in_image(&self, address: u64) -> bool {
        self.images.iter().any(|(start, end)| (*start..*end).contains(&address))
    }

    fn marker(&mut self, marker: &str) {
        let mut words = marker.split_whitespace();
        if words.next() != Some("cycle") {
            return;
        }
        let Some(number) = words.next().and_then(|n| n.parse::<u32>().ok()) else { return };
        match words.next() {
            Some("start") => {
                self.finish_cycle(false);
                self.current = Some(CycleTrace { number, ..CycleTrace::default() });
            }
            Some("end") => self.finish_cycle(true),
            _ => {}
        }
    }

    /// Closes the current cycle; when it ended (its `sc stop` returned) whatever is still
    /// allocated is a leak.
    fn finish_cycle(&mut self, ended: bool) {
        let Some(mut cycle) = self.current.take() else { return };
        cycle.ended = ended;
        if ended && cycle.kernel_buffers != 0 {
            cycle.problems.push(format!(
                "leak: {} list(s) that IoGetDeviceInterfaces returned were not freed with ExFreePool",
                cycle.kernel_buffers
            ));
        }
        if ended {
            let mut leaks: Vec<(u64, Block)> = self.live.drain().collect();
            leaks.sort_by_key(|(_, block)| block.line);
            for (address, block) in leaks {
                cycle.problems.push(format!(
                    "leak: a block with tag {}, {} bytes at {address:#x}, allocated at line {}, was still allocated \
                     after `sc stop` returned (DriverUnload did not free it):\n{}",
                    tag_name(block.tag),
                    block.size,
                    block.line,
                    log_line(block.line, &block.text)
                ));
            }
        }
        // Each load runs in a new winedevice.exe: addresses start over.
        self.live.clear();
        self.freed.clear();
        self.threads.clear();
        self.trace.cycles.push(cycle);
    }

    fn call(&mut self, number: usize, line: &str, thread: u32, func: &str, args: &[u64], ret: u64) {
        let inside_driver =
            matches!(self.threads.get(&thread).and_then(|s| s.last()), Some(Frame::Driver { ours: true, .. }));
        // The return address is in the driver's image; or a tail call from a routine the kernel
        // called in the driver (DriverEntry, DriverUnload, a dispatch routine) left the kernel's.
        let ours =
            self.in_image(ret) || inside_driver || freed_for_driver_lookaside_list(self.threads.get(&thread), func);
        let is_pool = ALLOCATORS.contains(&func) || func == "ExFreePoolWithTag" || func == "ExFreePool";
        let mut alloc = None;
        if ours {
            match self.current.as_mut() {
                None => self.trace.outside.push(format!(
                    "the driver called {func} outside any start/stop cycle:\n{}",
                    log_line(number, line)
                )),
                Some(cycle) => {
                    *cycle.calls.entry(func.to_string()).or_default() += 1;
                    if func == "ExAllocatePool2" {
                        cycle.pool2_calls.push((number, line.to_string()));
                    }
                }
            }
            if let Some(problem) = raising_quota_call(func, args) {
                self.problem(format!("{problem}:\n{}", log_line(number, line)));
            }
            if ALLOCATORS.contains(&func) {
                match args {
                    [_, size, tag, ..] => alloc = Some((*tag as u32, *size, number, line.to_string())),
                    _ => self.problem(format!("cannot read {func}'s arguments:\n{}", log_line(number, line))),
                }
            } else if func == "ExFreePoolWithTag" || func == "ExFreePool" {
                match args {
                    [address, rest @ ..] => {
                        let tag = if func == "ExFreePoolWithTag" { rest.first().map(|t| *t as u32) } else { None };
                        let stack = self.threads.get(&thread).map_or(&[][..], Vec::as_slice);
                        let in_routine = !stack.iter().any(|frame| matches!(frame, Frame::Driver { ours: true, .. }));
                        self.free(number, line, *address, tag, in_routine);
                    }
                    [] => self.problem(format!("cannot read {func}'s arguments:\n{}", log_line(number, line))),
                }
            }
        } else if is_pool {
            self.trace.ignored += 1;
        }
        let frame = Frame::Kernel { func: func.to_string(), ret, ours, alloc };
        self.threads.entry(thread).or_default().push(frame);
    }

    fn ret(&mut self, number: usize, thread: u32, func: &str, retval: u64, ret: u64) {
        let stack = self.threads.entry(thread).or_default();
        let Some(at) = stack
            .iter()
            .rposition(|frame| matches!(frame, Frame::Kernel { func: f, ret: r, .. } if f == func && *r == ret))
        else {
            return;
        };
        let frame = stack.remove(at);
        stack.truncate(at);
        let Frame::Kernel { ours: true, alloc, .. } = frame else { return };
        let Some(cycle) = self.current.as_mut() else { return };
        kernel_buffer_returned(cycle, func, retval);
        let succeeded = match func {
            // NTSTATUS: success when the low 32 bits are not negative.
            "IoCreateDevice" | "IoCreateSymbolicLink" | "PsCreateSystemThread" | "ObReferenceObjectByHandle" => {
                (retval as u32 as i32) >= 0
            }
            // A pointer: success when not NULL.
            "IoAllocateIrp" => retval != 0,
            _ => false,
        };
        if succeeded {
            *cycle.succeeded.entry(func.to_string()).or_default() += 1;
        }
        let Some((tag, size, line, text)) = alloc else { return };
        let stats = cycle.tags.entry(tag).or_default();
        if retval == 0 {
            stats.failed += 1;
            return;
        }
        stats.allocations += 1;
        stats.bytes += size;
        if let Some(old) = self.live.get(&retval) {
            let message = format!(
                "{func} returned {retval:#x} for tag {} at line {number}, but the block allocated there at line {} with \
                 tag {} was never freed in the trace",
                tag_name(tag),
                old.line,
                tag_name(old.tag)
            );
            self.problem(message);
        }
        self.freed.remove(&retval);
        self.live.insert(retval, Block { tag, size, line, text });
    }

    /// A free of `address` (with `tag` if `ExFreePoolWithTag`); `in_routine`: made outside the
    /// driver's traced entry points ([`CycleTrace::routine_frees`]).
    fn free(&mut self, number: usize, line: &str, address: u64, tag: Option<u32>, in_routine: bool) {
        let named = match tag {
            Some(tag) => format!("ExFreePoolWithTag({address:#x}, {})", tag_name(tag)),
            None => format!("ExFreePool({address:#x})"),
        };
        if address == 0 {
            self.problem(format!("{named}: a free of NULL:\n{}", log_line(number, line)));
            return;
        }
        match self.live.remove(&address) {
            Some(block) => {
                if let Some(cycle) = self.current.as_mut() {
                    cycle.tags.entry(block.tag).or_default().frees += 1;
                    if in_routine {
                        *cycle.routine_frees.entry(block.tag).or_default() += 1;
                    }
                }
                match tag {
                    Some(tag) if tag != block.tag => self.problem(format!(
                        "wrong tag: the block at {address:#x} allocated with tag {} at line {} was freed with tag {}:\n{}\n{}",
                        tag_name(block.tag),
                        block.line,
                        tag_name(tag),
                        log_line(block.line, &block.text),
                        log_line(number, line)
                    )),
                    None => self.problem(format!(
                        "the block at {address:#x} allocated with tag {} at line {} was freed with ExFreePool, without \
                         its tag:\n{}",
                        tag_name(block.tag),
                        block.line,
                        log_line(number, line)
                    )),
                    Some(_) => {}
                }
                self.freed.insert(address, Freed { tag: block.tag, alloc_line: block.line, free_line: number });
            }
            None if tag.is_none() && self.current.as_mut().is_some_and(kernel_buffer_freed) => {}
            None => match self.freed.get(&address) {
                Some(freed) => {
                    let message = format!(
                        "double free: {named} at line {number} frees the block with tag {} allocated at line {} and \
                         already freed at line {}:\n{}",
                        tag_name(freed.tag),
                        freed.alloc_line,
                        freed.free_line,
                        log_line(number, line)
                    );
                    self.problem(message);
                }
                None => self.problem(format!(
                    "{named} at line {number} frees a block the driver never allocated:\n{}",
                    log_line(number, line)
                )),
            },
        }
    }

    fn problem(&mut self, message: String) {
        match self.current.as_mut() {
            Some(cycle) => cycle.problems.push(message),
            None => self.trace.outside.push(message),
        }
    }
}

/// A free the kernel makes while deleting one of the driver's lookaside lists: Wine's
/// `ExDelete*LookasideList` frees the entries the list keeps with `ExFreePoolWithTag` and the list's
/// tag itself (Windows calls the list's free callback, which is the driver's). Either way the blocks
/// are the driver's and are accounted as its frees.
fn freed_for_driver_lookaside_list(stack: Option<&Vec<Frame>>, func: &str) -> bool {
    let deleting = |frame: &Frame| {
        matches!(frame, Frame::Kernel { func, ours: true, .. }
            if func.starts_with("ExDelete") && func.contains("LookasideList"))
    };
    func == "ExFreePoolWithTag" && stack.and_then(|stack| stack.last()).is_some_and(deleting)
}

/// A successful `IoGetDeviceInterfaces` call of the driver: the kernel allocated its list inside
/// itself (no relay line), and the driver owes one `ExFreePool` of it.
fn kernel_buffer_returned(cycle: &mut CycleTrace, func: &str, retval: u64) {
    if func == "IoGetDeviceInterfaces" && (retval as u32 as i32) >= 0 {
        cycle.kernel_buffers += 1;
        *cycle.succeeded.entry(func.to_string()).or_default() += 1;
    }
}

/// An `ExFreePool` of an address the driver never allocated: accepted once per list that
/// `IoGetDeviceInterfaces` returned and the driver has not freed yet, and nothing else.
fn kernel_buffer_freed(cycle: &mut CycleTrace) -> bool {
    if cycle.kernel_buffers == 0 {
        return false;
    }
    cycle.kernel_buffers -= 1;
    cycle.kernel_buffer_frees += 1;
    true
}

/// An `ExAllocatePoolWithQuotaTag` call without `POOL_QUOTA_FAIL_INSTEAD_OF_RAISE`: the raising form,
/// which the driver must never use.
fn raising_quota_call(func: &str, args: &[u64]) -> Option<String> {
    let pool_type = *args.first()?;
    (func == "ExAllocatePoolWithQuotaTag" && pool_type & POOL_QUOTA_FAIL_INSTEAD_OF_RAISE == 0).then(|| {
        format!("ExAllocatePoolWithQuotaTag with pool type {pool_type:#x}: the raising form (no POOL_QUOTA_FAIL_INSTEAD_OF_RAISE)")
    })
}

#[cfg(test)]
pub(super) mod fixtures;

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn ex_free_pool_of_something_never_allocated_is_still_reported() {
        // No list was returned: nothing to free.
        let error = check_pool(&one_cycle(&[ex_free_pool(0x0200_0000)])).unwrap_err();
        assert!(error.contains("ExFreePool(0x2000000) at line") && error.contains("never allocated"), "{error}");
        // A failed call returns no list.
        let error = check_pool(&one_cycle(&[device_interfaces(0xC000_0001), ex_free_pool(0x0200_0000)])).unwrap_err();
        assert!(error.contains("never allocated"), "{error}");
        // One list, two frees.
        let log = one_cycle(&[device_interfaces(0), ex_free_pool(0x0200_0000), ex_free_pool(0x0300_0000)]);
        assert!(check_pool(&log).unwrap_err().contains("never allocated"));
    }

    #[test]
    fn a_device_interface_list_not_freed_is_a_leak() {
        let error = check_pool(&one_cycle(&[device_interfaces(0)])).unwrap_err();
        assert!(error.contains("1 list(s) that IoGetDeviceInterfaces returned were not freed"), "{error}");
    }

    #[test]
    fn the_raising_form_of_ex_allocate_pool_with_quota_tag_is_reported() {
        let quota = |pool_type: u32| {
            [
                format!(
                    "0114:Call ntoskrnl.exe.ExAllocatePoolWithQuotaTag({pool_type:08x},00000020,7453704e) ret=180005369"
                ),
                "0114:Ret  ntoskrnl.exe.ExAllocatePoolWithQuotaTag() retval=014a03f0 ret=180005369".to_string(),
            ]
        };
        let error = check_pool(&one_cycle(&[quota(0x1)])).unwrap_err();
        assert!(error.contains("the raising form"), "{error}");
        let error = check_pool(&one_cycle(&[quota(0x9)])).unwrap_err();
        assert!(!error.contains("the raising form") && error.contains("leak"), "{error}");
    }

    #[test]
    fn calls_and_returns_pair_per_thread() {
        // Two threads allocate at once; each Ret belongs to its own thread's Call.
        let entry = [
            "0114:Call ntoskrnl.exe.ExAllocatePoolWithTag(00000200,00000020,7453704e) ret=180005369".to_string(),
            "0118:Call ntoskrnl.exe.ExAllocatePoolWithTag(00000001,00000074,6752704e) ret=180005369".to_string(),
            "0118:Ret  ntoskrnl.exe.ExAllocatePoolWithTag() retval=014a0370 ret=180005369".to_string(),
            "0114:Ret  ntoskrnl.exe.ExAllocatePoolWithTag() retval=014a03f0 ret=180005369".to_string(),
        ];
        let unload = lines(&[free("0114", 0x014a_03f0, NP_ST), free("0118", 0x014a_0370, NP_RG)]);
        let entry: Vec<&str> = entry.iter().map(String::as_str).collect();
        let unload: Vec<&str> = unload.iter().map(String::as_str).collect();
        let trace = check_pool(&cycle(1, &entry, &unload)).expect("paired per thread");
        assert_eq!(trace.cycles[0].tags[&NP_ST].bytes, 0x20);
        assert_eq!(trace.cycles[0].tags[&NP_RG].bytes, 0x74);
        // 0114 frees inside DriverUnload; 0118 has no traced entry point of the driver on its stack:
        // a routine the kernel called (a DPC, a work item, a system thread).
        assert_eq!(trace.cycles[0].routine_frees, BTreeMap::from([(NP_RG, 1)]));
    }

    #[test]
    fn a_wrong_tag_fails_naming_both_tags() {
        let entry = [alloc("0114", 0x20, NP_ST, 0x014a_03f0)];
        let unload = [free("0114", 0x014a_03f0, NP_RG)];
        let error = check_pool(&pool_cycle(1, &entry, &unload)).expect_err("wrong tag");
        assert!(error.contains("wrong tag"), "{error}");
        assert!(error.contains("'NpSt' (0x7453704e)") && error.contains("'NpRg' (0x6752704e)"), "{error}");
        assert!(!error.contains("leak"), "the block counts as freed: {error}");
    }

    #[test]
    fn a_double_free_fails_naming_the_tag() {
        let entry = [alloc("0114", 0x20, NP_ST, 0x014a_03f0)];
        let unload = [free("0114", 0x014a_03f0, NP_ST), free("0114", 0x014a_03f0, NP_ST)];
        let error = check_pool(&pool_cycle(1, &entry, &unload)).expect_err("double free");
        assert!(error.contains("double free") && error.contains("'NpSt'"), "{error}");
    }

    #[test]
    fn a_leak_fails_naming_the_tag() {
        let entry = [alloc("0114", 0x74, NP_RG, 0x014a_0370), alloc("0114", 0x20, NP_ST, 0x014a_03f0)];
        let unload = [free("0114", 0x014a_0370, NP_RG)];
        let error = check_pool(&pool_cycle(1, &entry, &unload)).expect_err("leak");
        assert!(error.contains("leak") && error.contains("'NpSt'") && error.contains("32 bytes"), "{error}");
        assert!(!error.contains("'NpRg'"), "{error}");
    }

    #[test]
    fn a_free_of_a_block_never_allocated_fails_naming_the_tag() {
        let error = check_pool(&pool_cycle(1, &[], &[free("0114", 0x014a_0999, NP_ST)])).expect_err("unknown block");
        assert!(error.contains("never allocated") && error.contains("'NpSt'"), "{error}");
    }

    #[test]
    fn crashes_are_found() {
        let log = "wine: Call from 000000007B013D7E to unimplemented function ntoskrnl.exe.ObSetSecurityObjectByPointer, aborting\n";
        let trace = Trace::parse(log, LAYOUT, "ntpool");
        assert_eq!(trace.crashes.len(), 1);
    }
}
