//! Reports: bug checks (Microsoft's stop codes and parameters, raised as panics that tests catch,
//! or as stop lines from a child process), and what the kernel's reports are made of, poolmon's
//! table and the records of blocks and lists left at unload. Imports only the per-thread state below
//! it.

use core::fmt;
use std::boxed::Box;
use std::cell::Cell;
use std::panic::Location;
use std::string::String;
use std::sync::Once;
use std::vec::Vec;

use super::thread::{current_irql, set_irql};
use crate::{POOL_TYPE, ULONG};

std::thread_local! {
    static QUIET: Cell<u32> = const { Cell::new(0) };
}

/// The environment variable that tells a test binary which scenario to run as a child.
const CHILD_SCENARIO: &str = "NTPOOL_STOP_SCENARIO";

/// Runs `scenario` in a child process (the current test binary, re-run for the test named
/// `test_name` alone) and returns the bug check that stopped it.
///
/// For the stops that cannot unwind: those found by the page-fault handler of special pool and
/// Force IRQL Checking, which end the process as a real bug check ends the machine. In the child
/// this function runs `scenario` and exits; in the parent it spawns the child, reads the stop line
/// from its error output and panics if there is none. `test_name` must be the test's full name as
/// the test harness knows it (for an integration test, the function's name).
///
/// ```no_run
/// use ntpool_sys::emulated::{expect_stop_in_child, Kernel, SpecialPoolAlignment};
/// use ntpool_sys as sys;
///
/// #[test]
/// fn overrun_stops_with_0xcd() {
///     let stop = expect_stop_in_child("overrun_stops_with_0xcd", || {
///         let kernel = Kernel::builder().special_pool(SpecialPoolAlignment::VerifyEnd).build();
///         kernel.run(|| {
///             // SAFETY: 16 bytes of non-paged pool at PASSIVE_LEVEL (never freed: the test stops).
///             let block = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_NON_PAGED, 16, u32::from_le_bytes(*b"Doc1")) };
///             // SAFETY: deliberately wrong: one byte past the block.
///             unsafe { block.cast::<u8>().add(16).read_volatile() };
///         });
///     });
///     assert_eq!(stop.code, 0xCD);
/// }
/// ```
pub fn expect_stop_in_child(test_name: &str, scenario: impl FnOnce()) -> BugCheck {
    if std::env::var(CHILD_SCENARIO).as_deref() == Ok(test_name) {
        scenario();
        std::eprintln!("ntpool: the scenario ended without a bug check");
        std::process::exit(0);
    }
    let executable = std::env::current_exe().expect("the test binary's path");
    let output = std::process::Command::new(executable)
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_SCENARIO, test_name)
        .output()
        .expect("the test binary runs");
    let stderr = std::string::String::from_utf8_lossy(&output.stderr);
    stderr
        .lines()
        .find_map(BugCheck::parse_stop_line)
        .unwrap_or_else(|| panic!("{test_name}: the child stopped without a bug check ({})\n{stderr}", output.status))
}

/// A bug check: Microsoft's stop code and its four parameters, as `KeBugCheckEx` takes them.
///
/// ```
/// use ntpool_sys::emulated::Kernel;
/// use ntpool_sys as sys;
///
/// let kernel = Kernel::new();
/// kernel.run(|| {
///     // SAFETY: a plain allocation at PASSIVE_LEVEL, deliberately never freed.
///     let _leaked = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_NON_PAGED, 4, u32::from_le_bytes(*b"Doc1")) };
/// });
/// let bug_check = kernel.verify_unload().unwrap_err();
/// assert_eq!(bug_check.code, ntpool_sys::DRIVER_VERIFIER_DETECTED_VIOLATION);
/// let name = kernel.driver_name().as_ptr() as u64;
/// assert_eq!(bug_check.parameters, [0x62, name, 0, 1]); // one block left at unload
/// assert!(bug_check.to_string().starts_with("*** STOP: 0x000000C4"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BugCheck {
    /// The stop code, for example `0xC2` (`BAD_POOL_CALLER`).
    pub code: u32,
    /// The four parameters; the first is the subcode for 0xC2 and 0xC4.
    pub parameters: [u64; 4],
    /// Extra detail where the emulated kernel has it (for example the list of leaked blocks).
    pub report: String,
}

impl BugCheck {
    pub(crate) fn new(code: u32, parameters: [u64; 4]) -> Self {
        BugCheck { code, parameters, report: String::new() }
    }

    /// Reads a stop line as [`BugCheck`]'s `Display` writes it (`*** STOP: 0x000000C2 (0x..., ...)`).
    fn parse_stop_line(line: &str) -> Option<BugCheck> {
        let rest = line.trim().strip_prefix("*** STOP: 0x")?;
        let (code, rest) = rest.split_once(" (")?;
        let (list, _) = rest.split_once(')')?;
        let mut parameters = [0u64; 4];
        let mut values = list.split(", ");
        for parameter in &mut parameters {
            *parameter = u64::from_str_radix(values.next()?.strip_prefix("0x")?, 16).ok()?;
        }
        Some(BugCheck::new(u32::from_str_radix(code, 16).ok()?, parameters))
    }

    /// The stop code's name as Microsoft spells it.
    ///
    /// ```
    /// let bug_check = ntpool_sys::emulated::BugCheck { code: 0xC2, parameters: [0x0A, 0, 0, 0], report: String::new() };
    /// assert_eq!(bug_check.name(), "BAD_POOL_CALLER");
    /// ```
    pub fn name(&self) -> &'static str {
        bug_check_name(self.code)
    }
}

/// The name of a stop code as Microsoft spells it.
pub(crate) fn bug_check_name(code: u32) -> &'static str {
    match code {
        0x09 => "IRQL_NOT_GREATER_OR_EQUAL",
        0x0A => "IRQL_NOT_LESS_OR_EQUAL",
        0xC1 => "SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION",
        0xC2 => "BAD_POOL_CALLER",
        0xC4 => "DRIVER_VERIFIER_DETECTED_VIOLATION",
        0xC7 => "TIMER_OR_DPC_INVALID",
        0xCC => "PAGE_FAULT_IN_FREED_SPECIAL_POOL",
        0xCD => "PAGE_FAULT_BEYOND_END_OF_ALLOCATION",
        0xD1 => "DRIVER_IRQL_NOT_LESS_OR_EQUAL",
        0x1E => "KMODE_EXCEPTION_NOT_HANDLED",
        0xCE => "DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS",
        0x139 => "KERNEL_SECURITY_CHECK_FAILURE",
        _ => "UNKNOWN_BUG_CHECK",
    }
}

impl fmt::Display for BugCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [p1, p2, p3, p4] = self.parameters;
        write!(
            f,
            "*** STOP: 0x{:08X} (0x{p1:016X}, 0x{p2:016X}, 0x{p3:016X}, 0x{p4:016X}) {}",
            self.code,
            self.name()
        )?;
        if !self.report.is_empty() {
            write!(f, "\n{}", self.report)?;
        }
        Ok(())
    }
}

/// Runs `f` and returns the bug check it raised, if any; any other panic goes on unwinding.
///
/// ```
/// use ntpool_sys::emulated::{catch_bug_check, Kernel};
/// let kernel = Kernel::new();
/// let result = kernel.run(|| catch_bug_check(|| {
///     // SAFETY: a deliberate bug check on the emulated kernel.
///     unsafe { ntpool_sys::KeBugCheckEx(0xC2, 0x0A, 1, 2, 3) }
/// }));
/// assert_eq!(result.unwrap_err().parameters, [0x0A, 1, 2, 3]);
/// ```
pub fn catch_bug_check<R>(f: impl FnOnce() -> R) -> Result<R, BugCheck> {
    install_panic_hook();
    let irql = current_irql();
    let result = quietly(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    match result {
        Ok(value) => Ok(value),
        Err(payload) => match payload.downcast::<BugCheck>() {
            Ok(bug_check) => {
                // A bug check ends the machine; this test goes on, at the IRQL it started with.
                if current_irql() != irql {
                    set_irql(irql);
                }
                Err(*bug_check)
            }
            Err(other) => std::panic::resume_unwind(other),
        },
    }
}

pub(crate) fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| match info.payload().downcast_ref::<BugCheck>() {
            Some(_) if is_quiet() => {}
            Some(bug_check) => std::eprintln!("{bug_check}\n  raised at {}", DisplayLocation(info.location())),
            None => previous(info),
        }));
    });
}

struct DisplayLocation<'a>(Option<&'a std::panic::Location<'a>>);

impl fmt::Display for DisplayLocation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(location) => write!(f, "{location}"),
            None => f.write_str("an unknown location"),
        }
    }
}

/// Runs `f` with bug-check reports silenced on this thread (they are being caught).
pub(crate) fn quietly<R>(f: impl FnOnce() -> R) -> R {
    struct Loud;
    impl Drop for Loud {
        fn drop(&mut self) {
            QUIET.with(|q| q.set(q.get() - 1));
        }
    }
    QUIET.with(|q| q.set(q.get() + 1));
    let _loud = Loud;
    f()
}

pub(crate) fn is_quiet() -> bool {
    QUIET.with(Cell::get) > 0
}

/// `KeBugCheckEx`: on the emulated kernel, a panic carrying a
/// [`BugCheck`] that tests can catch and inspect.
///
/// # Safety
/// Always safe on the emulated kernel; `unsafe` to match the real routine.
///
/// ```
/// use ntpool_sys::emulated::{catch_bug_check, Kernel};
/// use ntpool_sys as sys;
/// let bug_check = Kernel::new()
///     .run(|| {
///         catch_bug_check(|| {
///             // SAFETY: always safe on the emulated kernel; the panic is caught.
///             unsafe { sys::KeBugCheckEx(sys::BAD_POOL_CALLER, 0x0A, 1, 2, 3) }
///         })
///     })
///     .unwrap_err();
/// assert_eq!(bug_check.code, sys::BAD_POOL_CALLER);
/// assert_eq!(bug_check.parameters, [0x0A, 1, 2, 3]);
/// assert_eq!(bug_check.name(), "BAD_POOL_CALLER");
/// ```
#[allow(non_snake_case)]
pub unsafe fn KeBugCheckEx(
    BugCheckCode: ULONG,
    BugCheckParameter1: usize,
    BugCheckParameter2: usize,
    BugCheckParameter3: usize,
    BugCheckParameter4: usize,
) -> ! {
    bug_check_now(
        BugCheckCode,
        [BugCheckParameter1 as u64, BugCheckParameter2 as u64, BugCheckParameter3 as u64, BugCheckParameter4 as u64],
    )
}

/// Stops the emulated machine: panics with a [`BugCheck`] payload.
pub(crate) fn bug_check_now(code: ULONG, parameters: [u64; 4]) -> ! {
    std::panic::panic_any(BugCheck::new(code, parameters))
}

/// Which pool a block lives in, as poolmon groups them.
///
/// ```
/// use ntpool_sys::emulated::{Kernel, PoolKind};
/// use ntpool_sys as sys;
///
/// let kernel = Kernel::new();
/// kernel.run(|| {
///     let tag = u32::from_le_bytes(*b"Doc1");
///     // SAFETY: plain allocations at PASSIVE_LEVEL, freed below with their tag.
///     let paged = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_PAGED, 4, tag) };
///     // SAFETY: as above.
///     let non_paged = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_NON_PAGED, 4, tag) };
///     let mut pools: Vec<PoolKind> = kernel.outstanding().iter().map(|block| block.pool).collect();
///     pools.sort();
///     assert_eq!(pools, [PoolKind::Paged, PoolKind::NonPaged]);
///     // SAFETY: allocated above with this tag, freed once.
///     unsafe { sys::ExFreePoolWithTag(paged, tag) };
///     // SAFETY: as above.
///     unsafe { sys::ExFreePoolWithTag(non_paged, tag) };
/// });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PoolKind {
    /// Paged pool.
    Paged,
    /// Non-paged, non-executable pool.
    NonPaged,
    /// Non-paged, executable pool.
    NonPagedExecute,
}

impl PoolKind {
    pub(crate) fn of_pool_type(pool_type: POOL_TYPE, executable: bool) -> Self {
        if crate::pool_type_is_paged(pool_type) {
            PoolKind::Paged
        } else if executable {
            PoolKind::NonPagedExecute
        } else {
            PoolKind::NonPaged
        }
    }

    /// The short name poolmon uses (`Paged`, `Nonp`, `NonpX`).
    ///
    /// ```
    /// use ntpool_sys::emulated::PoolKind;
    /// assert_eq!(PoolKind::Paged.short_name(), "Paged");
    /// assert_eq!(PoolKind::NonPaged.short_name(), "Nonp");
    /// assert_eq!(PoolKind::NonPagedExecute.short_name(), "NonpX");
    /// ```
    pub fn short_name(self) -> &'static str {
        match self {
            PoolKind::Paged => "Paged",
            PoolKind::NonPaged => "Nonp",
            PoolKind::NonPagedExecute => "NonpX",
        }
    }
}

/// One block that is still allocated.
///
/// ```
/// use ntpool_sys::emulated::{Kernel, PoolKind};
/// use ntpool_sys as sys;
///
/// let kernel = Kernel::new();
/// kernel.run(|| {
///     let tag = u32::from_le_bytes(*b"Doc1");
///     // SAFETY: a plain allocation at PASSIVE_LEVEL, freed below with its tag.
///     let block = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_NON_PAGED, 24, tag) };
///     let line = line!() - 1;
///     let allocation = &kernel.outstanding()[0];
///     assert_eq!(allocation.tag.to_string(), "Doc1");
///     assert_eq!((allocation.pool, allocation.size), (PoolKind::NonPaged, 24));
///     assert_eq!(allocation.routine, "ExAllocatePool2");
///     assert_eq!(allocation.line, line); // the allocation site is this example, not the kernel's
///     // SAFETY: allocated above with this tag, freed once.
///     unsafe { sys::ExFreePoolWithTag(block, tag) };
/// });
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allocation {
    /// The block's address.
    pub address: usize,
    /// Its tag, as the allocation routine received it.
    pub tag: RawTag,
    /// Its pool.
    pub pool: PoolKind,
    /// The size the caller asked for.
    pub size: usize,
    /// The routine that allocated it (`ExAllocatePool2`, `ExAllocatePoolWithTag`, or
    /// `VideoPortAllocatePool` with the `videoport` feature).
    pub routine: &'static str,
    /// The source file of the allocation site (the first caller outside ntpool).
    pub file: &'static str,
    /// Its line.
    pub line: u32,
    /// Its column.
    pub column: u32,
}

impl fmt::Display for Allocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:5} {:>8} bytes at {:#x}, allocated by {} at {}:{}:{}",
            self.tag,
            self.pool.short_name(),
            self.size,
            self.address,
            self.routine,
            self.file,
            self.line,
            self.column
        )
    }
}

/// A source location that requested pool, with its counts ([`Kernel::allocation_sites`](super::Kernel::allocation_sites)).
///
/// ```
/// use ntpool_sys::emulated::Kernel;
/// use ntpool_sys as sys;
///
/// let kernel = Kernel::new();
/// kernel.run(|| {
///     // SAFETY: a plain allocation at PASSIVE_LEVEL, freed right away.
///     unsafe { sys::ExFreePool(sys::ExAllocatePool2(sys::POOL_FLAG_PAGED, 1, u32::from_le_bytes(*b"Doc1"))) };
/// });
/// let site = &kernel.allocation_sites()[0];
/// assert!(site.file.ends_with(".rs"));
/// assert_eq!((site.calls, site.failed), (1, 0));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AllocationSite {
    /// The source file.
    pub file: &'static str,
    /// The line.
    pub line: u32,
    /// The column.
    pub column: u32,
    /// Allocation requests made from here.
    pub calls: u64,
    /// Requests the low resources simulation failed.
    pub failed: u64,
}

impl fmt::Display for AllocationSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// The pool usage table of an emulated kernel, as poolmon shows it.
///
/// ```
/// use ntpool_sys::emulated::Kernel;
/// use ntpool_sys as sys;
///
/// let kernel = Kernel::new();
/// kernel.run(|| {
///     let (names, items) = (u32::from_le_bytes(*b"MyNm"), u32::from_le_bytes(*b"MyIt"));
///     // SAFETY: plain allocations at PASSIVE_LEVEL, freed below with their tags.
///     let name = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_PAGED, 7, names) };
///     // SAFETY: as above.
///     let item = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_NON_PAGED, 8, items) };
///     let usage = kernel.pool_usage();
///     let tags: Vec<String> = usage.rows.iter().map(|row| row.tag.to_string()).collect();
///     assert_eq!(tags, ["MyIt", "MyNm"]); // in tag order
///     assert!(usage.to_string().starts_with(" Tag  Type")); // poolmon's header
///     // SAFETY: allocated above with these tags, freed once.
///     unsafe { sys::ExFreePoolWithTag(name, names) };
///     // SAFETY: as above.
///     unsafe { sys::ExFreePoolWithTag(item, items) };
/// });
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolUsage {
    /// One row per tag and pool, in tag order.
    pub rows: Vec<PoolUsageRow>,
}

/// One row of the pool usage table.
///
/// ```
/// use ntpool_sys::emulated::{Kernel, PoolKind};
/// use ntpool_sys as sys;
///
/// let kernel = Kernel::new();
/// kernel.run(|| {
///     let tag = u32::from_le_bytes(*b"Doc1");
///     // SAFETY: plain allocations at PASSIVE_LEVEL; the second one freed at once, the first below.
///     let kept = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_PAGED, 3, tag) };
///     // SAFETY: as above.
///     unsafe { sys::ExFreePoolWithTag(sys::ExAllocatePool2(sys::POOL_FLAG_PAGED, 4, tag), tag) };
///     let row = &kernel.pool_usage().rows[0];
///     assert_eq!((row.pool, row.allocs, row.frees, row.bytes), (PoolKind::Paged, 2, 1, 3));
///     // SAFETY: allocated above with this tag, freed once.
///     unsafe { sys::ExFreePoolWithTag(kept, tag) };
/// });
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolUsageRow {
    /// The tag (shown `.` for unprintable bytes when it is not a valid tag).
    pub tag: RawTag,
    /// The pool.
    pub pool: PoolKind,
    /// Successful allocations.
    pub allocs: u64,
    /// Frees.
    pub frees: u64,
    /// Bytes in use (allocated and not yet freed).
    pub bytes: u64,
}

impl PoolUsageRow {
    pub(crate) fn new(tag: ULONG, pool: PoolKind) -> Self {
        PoolUsageRow { tag: RawTag(tag), pool, allocs: 0, frees: 0, bytes: 0 }
    }

    /// Allocations not yet freed.
    ///
    /// ```
    /// use ntpool_sys::emulated::Kernel;
    /// use ntpool_sys as sys;
    ///
    /// let kernel = Kernel::new();
    /// kernel.run(|| {
    ///     let tag = u32::from_le_bytes(*b"Doc1");
    ///     // SAFETY: plain allocations at PASSIVE_LEVEL; the second one freed at once, the first below.
    ///     let kept = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_NON_PAGED, 4, tag) };
    ///     // SAFETY: as above.
    ///     unsafe { sys::ExFreePoolWithTag(sys::ExAllocatePool2(sys::POOL_FLAG_NON_PAGED, 4, tag), tag) };
    ///     assert_eq!(kernel.pool_usage().rows[0].diff(), 1);
    ///     // SAFETY: allocated above with this tag, freed once.
    ///     unsafe { sys::ExFreePoolWithTag(kept, tag) };
    /// });
    /// assert_eq!(kernel.pool_usage().rows[0].diff(), 0);
    /// ```
    pub fn diff(&self) -> u64 {
        self.allocs - self.frees
    }
}

/// A tag value as the kernel received it, valid or not; displays as poolmon does.
///
/// ```
/// use ntpool_sys::emulated::RawTag;
/// assert_eq!(RawTag(u32::from_le_bytes(*b"Doc1")).to_string(), "Doc1");
/// assert_eq!(RawTag(u32::from_le_bytes(*b"ab\0\n")).to_string(), "ab.."); // invalid: shown as poolmon does
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RawTag(pub ULONG);

impl From<ULONG> for RawTag {
    fn from(tag: ULONG) -> Self {
        RawTag(tag)
    }
}

impl fmt::Display for RawTag {
    /// The tag's four bytes as poolmon shows them ([`tag_text`](crate::tag_text)): a valid tag as it
    /// reads, an unprintable byte as `.`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for character in crate::tag_text(self.0) {
            fmt::Write::write_char(f, character)?;
        }
        Ok(())
    }
}

impl fmt::Display for PoolUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, " Tag  Type       Allocs      Frees       Diff      Bytes")?;
        for row in &self.rows {
            writeln!(
                f,
                " {} {:5} {:>10} {:>10} {:>10} {:>10}",
                row.tag,
                row.pool.short_name(),
                row.allocs,
                row.frees,
                row.diff(),
                row.bytes
            )?;
        }
        Ok(())
    }
}

/// Bytes of pool charged to one process's quota (allocations with `POOL_FLAG_USE_QUOTA` or
/// `ExAllocatePoolWithQuotaTag` that are not freed yet).
///
/// ```
/// let charge = ntpool_sys::emulated::QuotaCharge { process: 4, paged: 0, non_paged: 16 };
/// assert_eq!(charge.paged + charge.non_paged, 16);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaCharge {
    /// The process id.
    pub process: u64,
    /// Paged bytes.
    pub paged: u64,
    /// Non-paged bytes.
    pub non_paged: u64,
}

/// A lookaside list the driver initialized and has not deleted, as the unload check reports it.
#[derive(Clone, Debug)]
pub(crate) struct ListRecord {
    pub(crate) routine: &'static str,
    pub(crate) tag: ULONG,
    pub(crate) pool_type: POOL_TYPE,
    pub(crate) size: usize,
    pub(crate) site: &'static Location<'static>,
}

/// `DRIVER_VERIFIER_DETECTED_VIOLATION` 0x62 (row `LEAKED_AT_UNLOAD` of
/// [`checks`](super::checks)): `driver_name` (whose address is parameter 2) unloads
/// with `leaks` outstanding; the report names every block, its tag, pool, size and the source
/// location that allocated it, followed by the pool usage table.
pub(crate) fn leaked_blocks(driver_name: &str, leaks: &[Allocation], usage: &PoolUsage) -> BugCheck {
    let mut report = std::format!("{driver_name} is unloading with {} outstanding pool allocation(s):\n", leaks.len());
    for leak in leaks {
        report.push_str(&std::format!("  {leak}\n"));
    }
    report.push_str(&std::format!("{usage}"));
    // Parameter 2 is the driver's name: here, the address of the name the kernel was given.
    let name = driver_name.as_ptr() as u64;
    let mut bug_check = BugCheck::new(crate::DRIVER_VERIFIER_DETECTED_VIOLATION, [0x62, name, 0, leaks.len() as u64]);
    bug_check.report = report;
    bug_check
}

/// The bug check for the lookaside lists `lists` (by address, not empty) that `driver_name` did not
/// delete: with Driver Verifier (`verifier`), `TIMER_OR_DPC_INVALID` (0xC7) at unload, whose page
/// documents no parameters for a lookaside list (all 0, the lists are in the report); without it,
/// `DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS` (0xCE), the stop the kernel's later walk of
/// its lookaside lists runs into: parameter 1 the first list's address, the memory it would read,
/// parameter 2 zero (a read). Rows `LOOKASIDE_LEFT_AT_UNLOAD` and `LOOKASIDE_TOUCHED_AFTER_UNLOAD` of
/// [`checks`](super::checks).
pub(crate) fn undeleted_lookaside_lists(driver_name: &str, lists: &[(usize, ListRecord)], verifier: bool) -> BugCheck {
    let first = lists.first().map_or(0, |&(address, _)| address);
    let mut report = std::format!("{driver_name} is unloading without deleting {} lookaside list(s):\n", lists.len());
    for (address, list) in lists {
        report.push_str(&std::format!(
            "  {} {:5} entries of {} bytes, list at {address:#x}, initialized by {} at {}:{}:{}\n",
            RawTag(list.tag),
            PoolKind::of_pool_type(list.pool_type, list.pool_type & 0x201 == 0).short_name(),
            list.size,
            list.routine,
            list.site.file(),
            list.site.line(),
            list.site.column()
        ));
    }
    let mut bug_check = if verifier {
        BugCheck::new(TIMER_OR_DPC_INVALID, [0, 0, 0, 0])
    } else {
        BugCheck::new(DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS, [first as u64, 0, 0, 0])
    };
    bug_check.report = report;
    bug_check
}

/// `DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS`.
pub(crate) const DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS: ULONG = 0xCE;
/// `TIMER_OR_DPC_INVALID`.
pub(crate) const TIMER_OR_DPC_INVALID: ULONG = 0xC7;
