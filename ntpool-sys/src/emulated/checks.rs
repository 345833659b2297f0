//! Every bug check the emulated kernel raises, in one table: its code (and subcode), the condition,
//! what each of the four parameters holds, the Driver Verifier option that turns the check on, the
//! Microsoft page it follows, and how sure the reading of that page is. The routines raise through
//! these rows, `docs/verifier.md` is generated from them ([`render_markdown`]), and a test
//! keeps the two identical.
//!
//! The pages: the bug-check reference (`learn.microsoft.com/windows-hardware/drivers/debugger/`) for
//! the codes and parameters, and Driver Verifier's pages (`.../drivers/devtest/`) for the options.

use core::fmt::{self, Write};

use super::state::{State, bug_check};
use crate::ULONG;

/// Which parameter names the violation, when one does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subcode {
    /// None: all four parameters are data.
    None,
    /// Parameter 1 (bug checks 0xC2, 0xC4, 0x139).
    First(u64),
    /// Parameter 4 (bug check 0xC1).
    Fourth(u64),
}

/// One check of the emulated kernel: one row of `docs/verifier.md`.
///
/// ```
/// use ntpool_sys::emulated::checks::{self, Subcode};
/// assert_eq!(checks::DOUBLE_FREE.code, 0xC4);
/// assert_eq!(checks::DOUBLE_FREE.subcode, Subcode::First(0x13));
/// assert!(checks::CHECKS.iter().any(|check| check.name == "DOUBLE_FREE"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Check {
    /// The constant's name in this module.
    pub name: &'static str,
    /// The stop code.
    pub code: ULONG,
    /// The subcode, and which parameter holds it.
    pub subcode: Subcode,
    /// What the driver did.
    pub condition: &'static str,
    /// What parameters 1 to 4 hold, in the page's words; "undocumented" where the page documents
    /// none, with what the emulated kernel puts there.
    pub parameters: [&'static str; 4],
    /// The Driver Verifier option (a [`KernelBuilder`](super::KernelBuilder) setting) under which the
    /// check runs, or the kernel's own check that runs without Driver Verifier.
    pub option: &'static str,
    /// The Microsoft page the code and parameters follow.
    pub page: &'static str,
    /// How exactly the emulation follows the page: `exact`, or what was read into it and why.
    pub confidence: &'static str,
}

impl Check {
    /// The four parameters with the subcode checked against the row (in debug builds).
    pub(crate) fn parameters(&self, parameters: [u64; 4]) -> [u64; 4] {
        match self.subcode {
            Subcode::None => {}
            Subcode::First(subcode) => debug_assert_eq!(parameters[0], subcode, "{}", self.name),
            Subcode::Fourth(subcode) => debug_assert_eq!(parameters[3], subcode, "{}", self.name),
        }
        parameters
    }
}

/// Raises `check` on `state`'s kernel with `parameters` (deferred while the thread is already
/// unwinding from a bug check).
pub(crate) fn raise(state: &State, check: &Check, parameters: [u64; 4]) {
    bug_check(state, check.code, check.parameters(parameters));
}

const C4: &str =
    "https://learn.microsoft.com/windows-hardware/drivers/debugger/bug-check-0xc4--driver-verifier-detected-violation";
const C2: &str = "https://learn.microsoft.com/windows-hardware/drivers/debugger/bug-check-0xc2--bad-pool-caller";
const C1: &str = "https://learn.microsoft.com/windows-hardware/drivers/debugger/bug-check-0xc1--special-pool-detected-memory-corruption";
const CC: &str =
    "https://learn.microsoft.com/windows-hardware/drivers/debugger/bug-check-0xcc--page-fault-in-freed-special-pool";
const CD: &str =
    "https://learn.microsoft.com/windows-hardware/drivers/debugger/bug-check-0xcd--page-fault-beyond-end-of-allocation";
const D1: &str =
    "https://learn.microsoft.com/windows-hardware/drivers/debugger/bug-check-0xd1--driver-irql-not-less-or-equal";
const X1E: &str =
    "https://learn.microsoft.com/windows-hardware/drivers/debugger/bug-check-0x1e--kmode-exception-not-handled";
const C7: &str = "https://learn.microsoft.com/windows-hardware/drivers/debugger/bug-check-0xc7--timer-or-dpc-invalid";
const CE: &str = "https://learn.microsoft.com/windows-hardware/drivers/debugger/bug-check-0xce--driver-unloaded-without-cancelling-pending-operations";
const X139: &str =
    "https://learn.microsoft.com/windows-hardware/drivers/debugger/bug-check-0x139--kernel-security-check-failure";
const CODE_INTEGRITY: &str = "https://learn.microsoft.com/windows-hardware/drivers/devtest/code-integrity-checking";
const AUTOMATIC: &str = "automatic checks (Driver Verifier on)";
const POOL_TRACKING: &str = "pool tracking";
const DEADLOCK: &str = "deadlock detection";
const NO_VERIFIER: &str = "none: the kernel's own check (Driver Verifier off)";
const CALLER: &str = "caller's address: the return address of the call into the kernel";

macro_rules! checks {
    ($($name:ident = $code:literal, $subcode:expr, $condition:literal, [$($parameter:expr),* $(,)?], $option:expr, $page:expr, $confidence:literal;)*) => {
        $(
            #[doc = $condition]
            pub const $name: Check = Check {
                name: stringify!($name),
                code: $code,
                subcode: $subcode,
                condition: $condition,
                parameters: [$($parameter),*],
                option: $option,
                page: $page,
                confidence: $confidence,
            };
        )*
        /// Every check, in the order of `docs/verifier.md`.
        pub const CHECKS: &[Check] = &[$($name),*];
    };
}

use Subcode::{First, Fourth};

checks! {
    ZERO_BYTE_ALLOCATION = 0xC4, First(0x00), "a zero-byte allocation",
        ["0x00", "current IRQL", "pool type", "number of bytes (0)"], AUTOMATIC, C4, "exact";
    PAGED_ALLOCATION_ABOVE_APC = 0xC4, First(0x01), "a paged allocation above APC_LEVEL",
        ["0x01", "current IRQL", "pool type", "size of allocation"], AUTOMATIC, C4, "exact";
    NON_PAGED_ALLOCATION_ABOVE_DISPATCH = 0xC4, First(0x02), "a non-paged allocation above DISPATCH_LEVEL",
        ["0x02", "current IRQL", "pool type", "size of allocation"], AUTOMATIC, C4, "exact";
    FREE_OF_UNKNOWN_ADDRESS = 0xC4, First(0x10), "a free of an address no allocation returned (nor inside a live block)",
        ["0x10", "bad address", "0", "0"], AUTOMATIC, C4, "exact";
    PAGED_FREE_ABOVE_APC = 0xC4, First(0x11), "a paged free above APC_LEVEL",
        ["0x11", "current IRQL", "pool type", "address of pool"], AUTOMATIC, C4, "exact";
    NON_PAGED_FREE_ABOVE_DISPATCH = 0xC4, First(0x12), "a non-paged free above DISPATCH_LEVEL",
        ["0x12", "current IRQL", "pool type", "address of pool"], AUTOMATIC, C4, "exact";
    DOUBLE_FREE = 0xC4, First(0x13), "a free of a block already freed",
        ["0x13", "reserved (0)", "pointer to the pool header (the block's address - 16)", "pool header contents: the x64 POOL_HEADER's first 8 bytes, block size in 16-byte units in bits 16-23, pool type 0 (free) in bits 24-31, the tag in bits 32-63"],
        AUTOMATIC, C4, "the header's layout is x64's POOL_HEADER (not on the page): medium";
    FREE_AT_INTERIOR_ADDRESS = 0xC4, First(0x16), "a free of an address inside a live block, not its start",
        ["0x16", "reserved (0)", "pool address (the address freed)", "0"], AUTOMATIC, C4,
        "\"pool address\" read as the address passed to the free: medium";
    RAISE_TO_LOWER_IRQL = 0xC4, First(0x30), "KeRaiseIrql to a lower IRQL, or above HIGH_LEVEL",
        ["0x30", "current IRQL", "requested IRQL", "0"], AUTOMATIC, C4, "exact";
    LOWER_TO_HIGHER_IRQL = 0xC4, First(0x31), "KeLowerIrql to a higher IRQL or above HIGH_LEVEL; or below DISPATCH_LEVEL inside a DPC routine",
        ["0x31", "current IRQL", "requested IRQL", "0: the new IRQL is bad, 1: invalid inside a DPC routine"], AUTOMATIC, C4, "exact";
    RELEASE_SPIN_LOCK_NOT_AT_DISPATCH = 0xC4, First(0x32), "KeReleaseSpinLock at an IRQL other than DISPATCH_LEVEL",
        ["0x32", "current IRQL", "spin lock address", "0"], AUTOMATIC, C4, "exact";
    ACQUIRE_FAST_MUTEX_ABOVE_APC = 0xC4, First(0x33), "ExAcquireFastMutex above APC_LEVEL",
        ["0x33", "current IRQL", "fast mutex address", "0"], AUTOMATIC, C4, "exact";
    RELEASE_FAST_MUTEX_NOT_AT_APC = 0xC4, First(0x34), "ExReleaseFastMutex at an IRQL other than APC_LEVEL",
        ["0x34", "current IRQL", "fast mutex address", "0"], AUTOMATIC, C4, "exact";
    ACQUIRE_AT_DPC_LEVEL_BELOW_DISPATCH = 0xC4, First(0x40), "KeAcquireSpinLockAtDpcLevel below DISPATCH_LEVEL",
        ["0x40", "current IRQL", "spin lock address", "0"], AUTOMATIC, C4, "exact";
    RELEASE_FROM_DPC_LEVEL_BELOW_DISPATCH = 0xC4, First(0x41), "KeReleaseSpinLockFromDpcLevel below DISPATCH_LEVEL",
        ["0x41", "current IRQL", "spin lock address", "0"], AUTOMATIC, C4, "exact";
    ACQUIRE_SPIN_LOCK_ABOVE_DISPATCH = 0xC4, First(0x42), "KeAcquireSpinLock (KeAcquireSpinLockRaiseToDpc) above DISPATCH_LEVEL",
        ["0x42", "current IRQL", "spin lock address", "0"], AUTOMATIC, C4, "exact";
    OVERRUN_FOUND_AT_FREE = 0xC4, First(0x51), "a free of a block (not in special pool) written past its end",
        ["0x51", "base address of the allocation", "address of the first byte written beyond the allocation", "number of charged bytes (the size asked for)"],
        POOL_TRACKING, C4, "the page lists 0x51-0x54 and 0x59 for this condition without telling them apart; the emulation always reports 0x51: medium";
    LEAKED_AT_UNLOAD = 0xC4, First(0x62), "the driver unloads with pool allocations outstanding",
        ["0x62", "name of the driver (the address of the name the kernel was given)", "reserved (0)", "number of allocations not freed"],
        POOL_TRACKING, C4, "exact";
    LOOKASIDE_REINITIALIZED = 0xC4, First(0xCA), "a live lookaside list initialized again",
        ["0xCA", "address of the lookaside list", "reserved (0)", "reserved (0)"], AUTOMATIC, C4,
        "exact; the page names no option: the check runs whenever Driver Verifier is on";
    LOOKASIDE_NOT_INITIALIZED = 0xC4, First(0xCB), "a lookaside list deleted that is not initialized (never, or deleted already)",
        ["0xCB", "address of the lookaside list", "reserved (0)", "reserved (0)"], AUTOMATIC, C4,
        "exact; a list deleted twice is read as uninitialized at its second delete";
    FREE_OF_ACTIVE_LOOKASIDE = 0xC4, First(0xCC), "a free of a pool block that holds a live lookaside list",
        ["0xCC", "address of the lookaside list", "starting address of the pool allocation", "size of the pool allocation"],
        AUTOMATIC, C4, "exact";
    LOOKASIDE_BLOCK_TOO_SMALL = 0xC4, First(0xCD), "a lookaside list initialized with entries smaller than an SLIST_ENTRY",
        ["0xCD", "address of the lookaside list", "block size specified by the caller", "minimum supported block size (16)"],
        AUTOMATIC, C4, "exact";
    QUOTA_CHARGED_TO_IDLE = 0xC4, First(0x10A), "pool quota charged to the Idle process (process 0)",
        ["0x10A", "undocumented (0)", "undocumented (0)", "undocumented (0)"], AUTOMATIC, C4,
        "the page documents no parameters and names no option";
    QUOTA_CHARGED_FROM_DPC = 0xC4, First(0x10B), "pool quota charged from a DPC routine",
        ["0x10B", "undocumented (0)", "undocumented (0)", "undocumented (0)"], AUTOMATIC, C4,
        "the page documents no parameters and names no option";
    SELF_DEADLOCK = 0xC4, First(0x1000), "a spin lock or fast mutex acquired again by the thread that holds it",
        ["0x1000", "address of the resource (the lock)", "reserved (0)", "reserved (0)"], DEADLOCK, C4, "exact";
    RELEASE_BY_OTHER_THREAD = 0xC4, First(0x1004), "a spin lock or fast mutex released by a thread that does not hold it",
        ["0x1004", "address of the resource", "the thread that acquired it (the emulated thread's id)", "the current thread (its id)"],
        DEADLOCK, C4, "thread ids stand for the KTHREAD addresses the page names: medium";
    RELEASE_OF_UNACQUIRED = 0xC4, First(0x1007), "a spin lock or fast mutex released while nobody holds it",
        ["0x1007", "address of the resource", "reserved (0)", "reserved (0)"], DEADLOCK, C4, "exact";
    EXECUTABLE_POOL = 0xC4, First(0x2000), "an allocation of executable pool (NonPagedPool, NonPagedPoolCacheAligned, POOL_FLAG_NON_PAGED_EXECUTE, VpNonPagedPool)",
        ["0x2000", CALLER, "pool type (the POOL_TYPE; ExAllocatePool2's flags as their POOL_TYPE)", "pool tag"],
        "code integrity checking", CODE_INTEGRITY,
        "parameters from the code integrity page (the 0xC4 page's older 0x2000 row is Storport's): medium";
    BAD_POOL_CALLER_ZERO_BYTES = 0xC2, First(0x00), "a zero-byte allocation",
        ["0x00", "0", "pool type", "pool tag"], NO_VERIFIER, C2, "exact";
    BAD_POOL_CALLER_DOUBLE_FREE = 0xC2, First(0x07), "a free of a block already freed",
        ["0x07", "reserved (0)", "pool header contents (as for 0xC4 / 0x13)", "address of the block being freed"], NO_VERIFIER, C2,
        "the header's layout is x64's POOL_HEADER: medium";
    BAD_POOL_CALLER_ALLOCATION_IRQL = 0xC2, First(0x08), "an allocation at an invalid IRQL",
        ["0x08", "current IRQL", "pool type", "size of allocation"], NO_VERIFIER, C2, "exact";
    BAD_POOL_CALLER_FREE_IRQL = 0xC2, First(0x09), "a free at an invalid IRQL (also ntpool's IRQL backstop, which is not Driver Verifier)",
        ["0x09", "current IRQL", "pool type", "address of pool"], NO_VERIFIER, C2, "exact";
    WRONG_TAG_ON_FREE = 0xC2, First(0x0A), "ExFreePoolWithTag with another tag; ExFreePool of a PROTECTED_POOL block",
        ["0x0A", "address of pool", "allocator's tag", "tag used in the free (0 for ExFreePool)"],
        "always (Driver Verifier on or off)", C2, "exact; protected tags are reported without the PROTECTED_POOL bit";
    BAD_POOL_CALLER_INVALID_ADDRESS = 0xC2, First(0x99), "a free of an address no allocation returned",
        ["0x99", "address being freed", "0", "0"], NO_VERIFIER, C2, "exact";
    MUST_SUCCEED_POOL = 0xC2, First(0x9A), "an allocation of NonPagedPoolMustSucceed (type 2; type 6 returns NULL)",
        ["0x9A", "pool type", "number of bytes requested", "pool tag"], "always (Driver Verifier on or off)", C2, "exact";
    TAG_ZERO = 0xC2, First(0x9B), "an allocation with tag 0",
        ["0x9B", "pool type", "number of bytes requested", CALLER], AUTOMATIC, C2,
        "exact; without Driver Verifier ExAllocatePool2 returns NULL for tag 0 as its page says";
    TAG_WITHOUT_LETTER_OR_DIGIT = 0xC2, First(0x9D), "an allocation with a tag that has no letter or digit",
        ["0x9D", "incorrect pool tag", "pool type", CALLER], AUTOMATIC, C2, "exact";
    SPECIAL_POOL_UNDERRUN_AT_FREE = 0xC1, Fourth(0x23), "special pool: bytes before the block corrupted, found at free",
        ["address the driver tried to free", "address where bits are corrupted", "reserved (0)", "0x23"],
        "special pool", C1, "exact";
    SPECIAL_POOL_OVERRUN_AT_FREE = 0xC1, Fourth(0x24), "special pool: bytes after the block (its slack) corrupted, found at free",
        ["address the driver tried to free", "address where bits are corrupted", "reserved (0)", "0x24"],
        "special pool", C1, "exact";
    SPECIAL_POOL_USE_AFTER_FREE = 0xCC, Subcode::None, "special pool: a freed block touched (ends the process: tested in a child)",
        ["memory address referenced", "0: read, 1: write", "address that referenced memory (the instruction)", "reserved (0)"],
        "special pool", CC, "exact";
    SPECIAL_POOL_GUARD_PAGE = 0xCD, Subcode::None, "special pool: the guard page beside a block touched (ends the process)",
        ["memory address referenced", "0: read, 1: write", "address that referenced memory (the instruction)", "reserved (0)"],
        "special pool", CD, "exact";
    PAGED_MEMORY_AT_DISPATCH = 0xD1, Subcode::None, "paged memory touched at DISPATCH_LEVEL or above (ends the process)",
        ["memory referenced", "IRQL at the time of the reference", "0: read, 1: write, 8: execute", "address that referenced memory (the instruction)"],
        "force IRQL checking", D1, "exact";
    QUOTA_EXCEPTION_NOT_HANDLED = 0x1E, Subcode::None, "the raising form of ExAllocatePoolWithQuotaTag fails (quota or pool exhausted)",
        ["exception code (STATUS_QUOTA_EXCEEDED or STATUS_INSUFFICIENT_RESOURCES)", "address at which the exception occurred (the emulated routine's entry)", "exception parameter 0 (none: 0)", "exception parameter 1 (none: 0)"],
        "always (Driver Verifier on or off)", X1E,
        "Windows raises inside RtlRaiseStatus; the emulation names the routine that raises: medium";
    RAISE_ON_FAILURE_NOT_HANDLED = 0x1E, Subcode::None, "ExAllocatePool2 with POOL_FLAG_RAISE_ON_FAILURE fails",
        ["exception code (STATUS_INSUFFICIENT_RESOURCES)", "address at which the exception occurred (the emulated routine's entry)", "exception parameter 0 (none: 0)", "exception parameter 1 (none: 0)"],
        "always (Driver Verifier on or off)", X1E,
        "ExAllocatePool2's page says it raises an exception without naming it: STATUS_INSUFFICIENT_RESOURCES, as the quota routine's: medium";
    LEGACY_RAISE_NOT_HANDLED = 0x1E, Subcode::None, "ExAllocatePoolWithTag with POOL_RAISE_IF_ALLOCATION_FAILURE fails",
        ["exception code (STATUS_INSUFFICIENT_RESOURCES)", "address at which the exception occurred (the emulated routine's entry)", "exception parameter 0 (none: 0)", "exception parameter 1 (none: 0)"],
        "always (Driver Verifier on or off)", X1E,
        "the POOL_TYPE page says the allocation raises an exception on failure; the exception code is STATUS_INSUFFICIENT_RESOURCES: medium";
    ARMED_TIMER_FREED = 0xC7, First(0x0), "pool freed while it holds an armed timer",
        ["0x0", "address of the timer object", "start of memory range being checked (the block freed)", "end of memory range being checked"],
        AUTOMATIC, C7, "exact";
    QUEUED_DPC_FREED = 0xC7, First(0x1), "pool freed while it holds a queued DPC",
        ["0x1", "address of the DPC object", "start of memory range being checked (the block freed)", "end of memory range being checked"],
        AUTOMATIC, C7, "exact";
    KERNEL_OBJECT_PENDING_AT_UNLOAD = 0xCE, Subcode::None, "the driver unloads with a timer armed, a DPC queued, or a work item queued, running or not freed",
        ["memory address referenced (the first object left)", "1: write (the kernel writes the object to run it)", "address that referenced memory (undocumented here: a work item's routine, else 0)", "reserved (0)"],
        "any", CE, "the stop the kernel's later use of the object would raise, found at unload; every object left is in the report: medium";
    WORK_ITEM_LIST_CORRUPTED = 0x139, First(3), "a work item queued while queued, or freed while queued (the work queue's LIST_ENTRY check)",
        ["3 (a LIST_ENTRY was corrupted)", "address of the trap frame (none in the emulation: 0)", "address of the exception record (none: 0)", "reserved (0)"],
        "any", X139, "exact for parameter 1; Microsoft documents no Driver Verifier code for a work item queued twice";
    LOOKASIDE_LEFT_AT_UNLOAD = 0xC7, Subcode::None, "the driver unloads with a lookaside list not deleted",
        ["undocumented (0): the page has no row for lookaside lists", "undocumented (0)", "undocumented (0)", "undocumented (0)"],
        AUTOMATIC, C7,
        "the automatic checks page says Verifier raises 0xC7 for undeleted lookaside lists at unload; the 0xC7 page documents parameters for timers and DPCs only; the lists are in the report: low";
    LOOKASIDE_TOUCHED_AFTER_UNLOAD = 0xCE, Subcode::None, "without Driver Verifier: a lookaside list not deleted at unload, which the kernel touches later",
        ["memory address referenced (the list)", "0: read", "address that referenced memory (not known: 0)", "reserved (0)"],
        NO_VERIFIER, CE, "the stop the kernel's later walk of its lookaside lists would raise, found at unload: medium";
    LIST_ENTRY_CORRUPTED = 0x139, First(3), "without Driver Verifier: a lookaside list deleted that is not initialized (RemoveEntryList's check)",
        ["3 (a LIST_ENTRY was corrupted)", "address of the trap frame (none in the emulation: 0)", "address of the exception record (none: 0)", "reserved (0)"],
        NO_VERIFIER, X139, "exact for parameter 1; the emulation has no trap frame or exception record";
}

/// Writes [`CHECKS`] as the markdown table of `docs/verifier.md`.
///
/// ```
/// let mut table = String::new();
/// ntpool_sys::emulated::checks::render_markdown(&mut table).unwrap();
/// assert!(table.starts_with("| Code | Subcode |"));
/// ```
pub fn render_markdown(out: &mut impl Write) -> fmt::Result {
    writeln!(
        out,
        "| Code | Subcode | Condition | Parameter 1 | Parameter 2 | Parameter 3 | Parameter 4 | Option | Page | Confidence |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|---|---|---|---|")?;
    for check in CHECKS {
        let subcode = match check.subcode {
            Subcode::None => std::string::String::from("-"),
            Subcode::First(subcode) => std::format!("{subcode:#X} (P1)"),
            Subcode::Fourth(subcode) => std::format!("{subcode:#X} (P4)"),
        };
        let [p1, p2, p3, p4] = check.parameters;
        writeln!(
            out,
            "| {:#X} `{}` | {subcode} | {} | {p1} | {p2} | {p3} | {p4} | {} | [page]({}) | {} |",
            check.code,
            super::reports::bug_check_name(check.code),
            check.condition,
            check.option,
            check.page,
            check.confidence
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_has_a_known_code_name_a_page_and_a_unique_name() {
        for (index, check) in CHECKS.iter().enumerate() {
            assert_ne!(super::super::reports::bug_check_name(check.code), "UNKNOWN_BUG_CHECK", "{}", check.name);
            assert!(check.page.starts_with("https://learn.microsoft.com/windows-hardware/drivers/"), "{}", check.name);
            assert!(!check.confidence.is_empty(), "{}", check.name);
            assert!(CHECKS[..index].iter().all(|other| other.name != check.name), "{} twice", check.name);
        }
    }

    /// Every row is asserted, code and all four parameters, by a test through the raw kernel
    /// interface: the test files name each row's constant.
    #[test]
    fn every_row_is_asserted_by_a_test() {
        let tests = [
            include_str!("../../tests/verifier_pool.rs"),
            include_str!("../../tests/verifier_locks.rs"),
            include_str!("../../tests/verifier_lookaside.rs"),
            include_str!("../../tests/verifier_faults.rs"),
            include_str!("../../tests/verifier_objects.rs"),
        ]
        .concat();
        for check in CHECKS {
            assert!(tests.contains(&std::format!("checks::{}", check.name)), "no test asserts {}", check.name);
        }
    }
}
