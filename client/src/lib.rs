//! The user-mode client of the ntpool sample driver: a scenario that sends every IOCTL of
//! [`ntpool_protocol`] with good and bad input and checks each answer against the driver's rules.
//!
//! The scenario talks to the driver through the [`Device`] trait, so that it runs on Windows
//! against the real driver (the `ntpool-client` executable, `src/main.rs`) and in the unit tests
//! against an in-memory model of it. It needs no allocator and no `std`.
//!
//! [`run_scenario`] prints one line per check, `ok   ...` or `FAIL ...: expected ..., got ...`, and
//! ends with the line `{passed} passed, {failed} failed`. It frees every block it allocated, and
//! checks at the end that nothing is outstanding and that the driver's counters moved by exactly
//! what its answers imply. It needs a driver that no other client uses while it runs: the limit
//! checks fill its handle up to the per-handle limits, and the counters are compared with the
//! scenario's own requests.
#![no_std]

#[cfg(test)]
extern crate std;

use core::fmt::{self, Write};

use ntpool_protocol::{
    AllocateReply, AllocateRequest, AllocationInfo, AllocationsHeader, FILE_DEVICE_NTPOOL, FILE_READ_DATA, FreeRequest,
    IOCTL_NTPOOL_ALLOCATE, IOCTL_NTPOOL_FREE, IOCTL_NTPOOL_QUERY_ALLOCATIONS, IOCTL_NTPOOL_QUERY_STATISTICS,
    IOCTL_NTPOOL_READ, MAX_ALLOCATIONS, MAX_HANDLE_ALLOCATIONS, MAX_HANDLE_NON_PAGED_BYTES, MAX_HANDLE_PAGED_BYTES,
    MAX_SIZE, METHOD_BUFFERED, POOL_CHARGE_QUOTA, POOL_NON_PAGED, POOL_PAGED, ReadRequest, Statistics, Wire, ctl_code,
    status,
};

/// The driver, as the scenario sees it: something that answers `IRP_MJ_DEVICE_CONTROL` requests.
pub trait Device {
    /// Sends the I/O control request `code` with the input buffer `input` and the output buffer
    /// `output` (its length is the output buffer length the driver sees), and returns the request's
    /// final NTSTATUS and the number of bytes the driver returned (`IoStatus.Information`).
    ///
    /// Only the first `information` bytes of `output` may change, as with `METHOD_BUFFERED` on
    /// Windows, where the I/O manager copies back only those (and nothing when the request fails).
    fn control(&mut self, code: u32, input: &[u8], output: &mut [u8]) -> (i32, usize);
}

impl<D: Device + ?Sized> Device for &mut D {
    fn control(&mut self, code: u32, input: &[u8], output: &mut [u8]) -> (i32, usize) {
        (**self).control(code, input, output)
    }
}

/// How many checks of [`run_scenario`] passed and failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Checks whose answer was the expected one.
    pub passed: u32,
    /// Checks whose answer was not.
    pub failed: u32,
}

impl Summary {
    /// Whether every check passed (and there was at least one).
    pub fn all_passed(&self) -> bool {
        self.failed == 0 && self.passed > 0
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} passed, {} failed", self.passed, self.failed)
    }
}

/// Runs the whole scenario against `device`, printing one line per check to `out` and then the
/// line `{passed} passed, {failed} failed`, and returns those numbers.
///
/// It allocates blocks in both pools, reads them back (new blocks must read as zeros), lists and
/// counts them, fills its handle to each of the per-handle limits, sends malformed and unknown
/// requests, and frees everything it allocated, including after a failed check. It expects a
/// driver with nothing outstanding at the start and no other client while it runs. Errors writing
/// to `out` are ignored.
pub fn run_scenario(device: &mut impl Device, out: &mut impl Write) -> Summary {
    let mut runner = Runner::new(device, out);
    runner.run();
    let summary = runner.summary;
    // Nothing can be done about a failing writer.
    let _ = writeln!(runner.out, "{summary}");
    summary
}

// ---------------------------------------------------------------------------------------------
// Sizes and values
// ---------------------------------------------------------------------------------------------

/// What the output buffer is filled with before each request: bytes past those the driver
/// returned must still hold it.
const CANARY: u8 = 0xA5;
const HEADER_LEN: usize = core::mem::size_of::<AllocationsHeader>();
const ENTRY_LEN: usize = core::mem::size_of::<AllocationInfo>();
const STATISTICS_LEN: usize = core::mem::size_of::<Statistics>();
const REPLY_LEN: usize = core::mem::size_of::<AllocateReply>();
/// An output buffer that holds the list of [`MAX_ALLOCATIONS`] blocks with room to spare.
const LIST_ALL: usize = HEADER_LEN + ENTRY_LEN * (MAX_ALLOCATIONS as usize + 4);
/// The scratch output buffer: the largest output of any request of the scenario.
const SCRATCH_LEN: usize = LIST_ALL;
/// New blocks are read back in pieces of this many bytes.
const READ_CHUNK: u32 = 1024;
/// Outstanding blocks the scenario keeps track of: the limit, and a few more for a driver that
/// wrongly lets more through.
const TRACKED: usize = MAX_ALLOCATIONS as usize + 8;
/// Identifiers remembered to check they are never reused (more than the scenario allocates).
const SEEN: usize = 256;
/// An identifier no driver hands out in the scenario's lifetime.
const NEVER_ALLOCATED: u64 = u64::MAX;

const fn tag(bytes: [u8; 4]) -> u32 {
    u32::from_le_bytes(bytes)
}

/// `STATUS_INVALID_DEVICE_REQUEST` codes: nothing the driver knows.
const UNKNOWN_CODES: [(u32, &str); 3] = [
    (0, "0"),
    (0x8A50_E3FC, "0x8A50E3FC (vendor device type, unknown function)"),
    (
        ctl_code(FILE_DEVICE_NTPOOL, 0x805, METHOD_BUFFERED, FILE_READ_DATA),
        "function 0x805 (next after QUERY_STATISTICS)",
    ),
];
/// `METHOD_NEITHER`, the method bits the driver's codes must not be accepted with.
const METHOD_NEITHER: u32 = 3;

// ---------------------------------------------------------------------------------------------
// Reporting
// ---------------------------------------------------------------------------------------------

/// Why a check failed.
#[derive(Clone, Copy, Debug)]
enum Problem {
    Status {
        expected: i32,
        got: i32,
    },
    Information {
        expected: usize,
        got: usize,
    },
    /// The driver changed byte `offset` of the output buffer, past the `information` it returned.
    Stray {
        information: usize,
        offset: usize,
    },
    ZeroId,
    ReusedId(u64),
    Value {
        what: &'static str,
        expected: u64,
        got: u64,
    },
    Entry {
        index: usize,
        expected: AllocationInfo,
        got: AllocationInfo,
    },
    NotZero {
        offset: u64,
        value: u8,
    },
    NoBaseline,
    Busy {
        outstanding: u64,
    },
    Untracked(u32),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Problem::Status { expected, got } => write!(f, "expected {}, got {}", Status(expected), Status(got)),
            Problem::Information { expected, got } => {
                write!(f, "expected information {expected}, got {got}")
            }
            Problem::Stray { information, offset } => {
                write!(f, "returned {information} bytes but changed byte {offset} of the output buffer")
            }
            Problem::ZeroId => f.write_str("the reply's id is 0"),
            Problem::ReusedId(id) => write!(f, "id {id} was handed out before"),
            Problem::Value { what, expected, got } => write!(f, "{what}: expected {expected}, got {got}"),
            Problem::Entry { index, expected, got } => {
                write!(f, "entry {index}: expected {}, got {}", Info(&expected), Info(&got))
            }
            Problem::NotZero { offset, value } => write!(f, "byte {offset} is {value:#04x}, not zero"),
            Problem::NoBaseline => f.write_str("no statistics from the start to compare with"),
            Problem::Busy { outstanding } => write!(
                f,
                "{outstanding} blocks are outstanding already (another client?): the limit checks need an idle driver"
            ),
            Problem::Untracked(count) => {
                write!(f, "{count} blocks the driver allocated beyond its limits could not be tracked or freed")
            }
        }
    }
}

/// An NTSTATUS, by name when the protocol knows it.
struct Status(i32);

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match status::name(self.0) {
            "another status" => write!(f, "NTSTATUS {:#010X}", self.0 as u32),
            name => f.write_str(name),
        }
    }
}

/// A pool tag, quoted, with bytes outside printable ASCII escaped: `"Tst1"`, `"Ab\x00c"`.
struct Tag(u32);

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        for byte in self.0.to_le_bytes() {
            match byte {
                b'"' | b'\\' => write!(f, "\\{}", char::from(byte))?,
                0x20..=0x7E => f.write_char(char::from(byte))?,
                _ => write!(f, "\\x{byte:02x}")?,
            }
        }
        f.write_char('"')
    }
}

/// A pool number.
struct Pool(u32);

impl fmt::Display for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            POOL_NON_PAGED => f.write_str("non-paged"),
            POOL_PAGED => f.write_str("paged"),
            pool if pool & !POOL_CHARGE_QUOTA <= POOL_PAGED => write!(f, "{} (quota)", Pool(pool & !POOL_CHARGE_QUOTA)),
            other => write!(f, "pool {other:#x}"),
        }
    }
}

/// An allocation request: `paged 100 bytes tag "Tst1"`.
struct Request<'a>(&'a AllocateRequest);

impl fmt::Display for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let request = self.0;
        write!(f, "{} {} bytes tag {}", Pool(request.pool), request.size, Tag(request.tag))?;
        if request.reserved != 0 {
            write!(f, " reserved {:#x}", request.reserved)?;
        }
        Ok(())
    }
}

/// An entry of `QUERY_ALLOCATIONS`.
struct Info<'a>(&'a AllocationInfo);

impl fmt::Display for Info<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = self.0;
        write!(f, "{{id {} {} {} bytes tag {}", info.id, Pool(info.pool), info.size, Tag(info.tag))?;
        if info.reserved != 0 {
            write!(f, " reserved {:#x}", info.reserved)?;
        }
        f.write_char('}')
    }
}

// ---------------------------------------------------------------------------------------------
// The runner
// ---------------------------------------------------------------------------------------------

/// What the driver answered to one request.
#[derive(Clone, Copy, Debug)]
struct Reply {
    status: i32,
    information: usize,
    /// The first byte of the output buffer past `information` that the driver changed.
    stray: Option<usize>,
    /// For a successful `ALLOCATE`: the id, and whether it had been handed out before.
    allocated: Option<(u64, bool)>,
}

impl Reply {
    /// `Ok` when the reply has `status` and `information` and left the rest of the output alone.
    fn expect(&self, status: i32, information: usize) -> Result<(), Problem> {
        if self.status != status {
            return Err(Problem::Status { expected: status, got: self.status });
        }
        if self.information != information {
            return Err(Problem::Information { expected: information, got: self.information });
        }
        match self.stray {
            Some(offset) => Err(Problem::Stray { information: self.information, offset }),
            None => Ok(()),
        }
    }
}

/// What the driver's counters must have moved by: tallied from its answers.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    requests: u64,
    rejected: u64,
    failures: u64,
    allocations: u64,
    frees: u64,
}

/// The scenario's state. Blocks are tracked from the driver's answers, so that everything the
/// driver allocated is freed at the end, whatever went wrong before.
struct Runner<'a, D, W> {
    device: &'a mut D,
    out: &'a mut W,
    summary: Summary,
    tally: Tally,
    /// `QUERY_STATISTICS` at the start.
    start: Option<Statistics>,
    /// The outstanding blocks, ascending by id.
    live: [AllocationInfo; TRACKED],
    live_len: usize,
    /// Blocks the driver allocated that did not fit into `live`.
    untracked: u32,
    /// Every id handed out (the first [`SEEN`]).
    seen: [u64; SEEN],
    seen_len: usize,
    buffer: [u8; SCRATCH_LEN],
}

impl<'a, D: Device, W: Write> Runner<'a, D, W> {
    fn new(device: &'a mut D, out: &'a mut W) -> Self {
        Runner {
            device,
            out,
            summary: Summary::default(),
            tally: Tally::default(),
            start: None,
            live: [AllocationInfo::default(); TRACKED],
            live_len: 0,
            untracked: 0,
            seen: [0; SEEN],
            seen_len: 0,
            buffer: [0; SCRATCH_LEN],
        }
    }

    /// Prints the line of one check and counts it.
    fn report(&mut self, result: Result<(), Problem>, what: fmt::Arguments<'_>) {
        // Nothing can be done about a failing writer.
        let _ = match result {
            Ok(()) => {
                self.summary.passed += 1;
                writeln!(self.out, "ok   {what}")
            }
            Err(problem) => {
                self.summary.failed += 1;
                writeln!(self.out, "FAIL {what}: {problem}")
            }
        };
    }

    /// Like [`report`](Self::report), with `outcome` appended (` -> {outcome}`) when it passed.
    fn report_outcome(&mut self, result: Result<(), Problem>, what: fmt::Arguments<'_>, outcome: impl fmt::Display) {
        match result {
            Ok(()) => self.report(Ok(()), format_args!("{what} -> {outcome}")),
            Err(problem) => self.report(Err(problem), what),
        }
    }

    fn live(&self) -> &[AllocationInfo] {
        &self.live[..self.live_len]
    }

    /// Sends one request with an output buffer of `output_len` bytes (filled with [`CANARY`]),
    /// tallies the answer and keeps track of the blocks it allocated or freed. The bytes returned
    /// are in `self.buffer`.
    fn call(&mut self, code: u32, input: &[u8], output_len: usize) -> Reply {
        let output = &mut self.buffer[..output_len];
        output.fill(CANARY);
        let (status, information) = self.device.control(code, input, output);
        let returned = information.min(output_len);
        let stray = output[returned..].iter().position(|&byte| byte != CANARY).map(|index| returned + index);

        self.tally.requests += 1;
        if status == status::INSUFFICIENT_RESOURCES {
            self.tally.failures += 1;
        } else if status < 0 {
            self.tally.rejected += 1;
        }
        // A driver that wrongly serves its codes with other method bits allocated or freed too.
        let function = code & !METHOD_NEITHER;
        let mut allocated = None;
        if status == status::SUCCESS && function == IOCTL_NTPOOL_ALLOCATE {
            self.tally.allocations += 1;
            let id = AllocateReply::from_bytes(&self.buffer[..returned.min(REPLY_LEN)]).map_or(0, |reply| reply.id);
            let request = AllocateRequest::from_bytes(input).unwrap_or_default();
            allocated = Some((id, self.remember(id, &request)));
        }
        if status == status::SUCCESS && function == IOCTL_NTPOOL_FREE {
            self.tally.frees += 1;
            if let Some(request) = FreeRequest::from_bytes(input) {
                self.forget(request.id);
            }
        }
        Reply { status, information, stray, allocated }
    }

    /// Records a block the driver allocated; whether its id was handed out before.
    fn remember(&mut self, id: u64, request: &AllocateRequest) -> bool {
        let reused = id != 0 && self.seen[..self.seen_len].contains(&id);
        if id != 0 && self.seen_len < SEEN {
            self.seen[self.seen_len] = id;
            self.seen_len += 1;
        }
        if id == 0 || self.live().iter().any(|block| block.id == id) {
            return reused;
        }
        if self.live_len == TRACKED {
            self.untracked += 1;
            return reused;
        }
        let at = self.live().iter().position(|block| block.id > id).unwrap_or(self.live_len);
        self.live.copy_within(at..self.live_len, at + 1);
        // The driver reports the pool without the quota flag.
        let pool = request.pool & !POOL_CHARGE_QUOTA;
        self.live[at] = AllocationInfo { id, pool, tag: request.tag, size: request.size, reserved: 0 };
        self.live_len += 1;
        reused
    }

    fn forget(&mut self, id: u64) {
        if let Some(at) = self.live().iter().position(|block| block.id == id) {
            self.live.copy_within(at + 1..self.live_len, at);
            self.live_len -= 1;
        }
    }

    /// Sends a request that must fail with `expected`, information 0 and nothing written.
    fn refused(&mut self, code: u32, input: &[u8], output_len: usize, expected: i32, what: fmt::Arguments<'_>) {
        let reply = self.call(code, input, output_len);
        self.report_outcome(reply.expect(expected, 0), what, Status(expected));
    }

    /// An `ALLOCATE` that must fail with `expected`.
    fn allocate_refused(&mut self, request: AllocateRequest, expected: i32, why: &str) {
        self.refused(
            IOCTL_NTPOOL_ALLOCATE,
            request.as_bytes(),
            REPLY_LEN,
            expected,
            format_args!("ALLOCATE {} ({why})", Request(&request)),
        );
    }

    /// Sends an `ALLOCATE` that must succeed: its id, or the problem.
    fn try_allocate(&mut self, request: &AllocateRequest) -> Result<u64, Problem> {
        let reply = self.call(IOCTL_NTPOOL_ALLOCATE, request.as_bytes(), REPLY_LEN);
        reply.expect(status::SUCCESS, REPLY_LEN)?;
        match reply.allocated {
            Some((0, _)) | None => Err(Problem::ZeroId),
            Some((id, true)) => Err(Problem::ReusedId(id)),
            Some((id, false)) => Ok(id),
        }
    }

    /// An `ALLOCATE` that must succeed, with its line: the id.
    fn allocate(&mut self, pool: u32, tag_bytes: [u8; 4], size: u32) -> Option<u64> {
        let request = AllocateRequest { pool, tag: tag(tag_bytes), size, reserved: 0 };
        match self.try_allocate(&request) {
            Ok(id) => {
                self.report(Ok(()), format_args!("ALLOCATE {} -> id {id}", Request(&request)));
                Some(id)
            }
            Err(problem) => {
                self.report(Err(problem), format_args!("ALLOCATE {}", Request(&request)));
                None
            }
        }
    }

    /// Allocates `count` blocks like `request` (alternating pools when `alternate`), with one line
    /// for all of them, or one for the first that fails. Whether all succeeded.
    fn allocate_many(&mut self, count: u32, request: AllocateRequest, alternate: bool, why: &str) -> bool {
        let (mut first, mut last) = (0, 0);
        for index in 0..count {
            let mut this = request;
            if alternate && index % 2 == 1 {
                this.pool = if request.pool == POOL_PAGED { POOL_NON_PAGED } else { POOL_PAGED };
            }
            match self.try_allocate(&this) {
                Ok(id) => {
                    if index == 0 {
                        first = id;
                    }
                    last = id;
                }
                Err(problem) => {
                    self.report(
                        Err(problem),
                        format_args!("ALLOCATE {} (block {} of {count}, {why})", Request(&this), index + 1),
                    );
                    return false;
                }
            }
        }
        let pools = if alternate { ", every other one paged" } else { "" };
        self.report(
            Ok(()),
            format_args!("ALLOCATE {count} x {}{pools} ({why}) -> ids {first}..{last}", Request(&request)),
        );
        true
    }

    /// A `FREE` that must succeed, with its line.
    fn free(&mut self, id: u64) {
        let reply = self.call(IOCTL_NTPOOL_FREE, FreeRequest { id }.as_bytes(), 0);
        self.report(reply.expect(status::SUCCESS, 0), format_args!("FREE id {id}"));
    }

    /// Frees every outstanding block of the scenario, with one line for all of them, or one for
    /// each that fails.
    fn free_all(&mut self, why: &str) {
        let count = self.live_len;
        let mut failed = false;
        while let Some(block) = self.live().first().copied() {
            let reply = self.call(IOCTL_NTPOOL_FREE, FreeRequest { id: block.id }.as_bytes(), 0);
            if let Err(problem) = reply.expect(status::SUCCESS, 0) {
                failed = true;
                self.report(Err(problem), format_args!("FREE id {} ({why})", block.id));
                // Not freed: stop tracking it, or this would not end.
                self.forget(block.id);
            }
        }
        if !failed {
            self.report(Ok(()), format_args!("FREE the {count} outstanding blocks ({why})"));
        }
    }

    /// Reads all of a new block, in pieces, and checks it is zero.
    fn read_zero(&mut self, id: u64, size: u32) {
        let mut reads = 0;
        let mut offset = 0;
        let result = loop {
            if offset >= size {
                break Ok(());
            }
            let length = (size - offset).min(READ_CHUNK);
            reads += 1;
            let reply = self.call(IOCTL_NTPOOL_READ, ReadRequest { id, offset, length }.as_bytes(), length as usize);
            if let Err(problem) = reply.expect(status::SUCCESS, length as usize) {
                break Err(problem);
            }
            if let Some(at) = self.buffer[..length as usize].iter().position(|&byte| byte != 0) {
                break Err(Problem::NotZero { offset: u64::from(offset) + at as u64, value: self.buffer[at] });
            }
            offset += length;
        };
        self.report(result, format_args!("READ id {id}: all {size} bytes of the new block are zero ({reads} reads)"));
    }

    /// A `READ` that must succeed with `length` zero bytes, into an output buffer of `output_len`.
    fn read_ok(&mut self, id: u64, offset: u32, length: u32, output_len: usize) {
        let reply = self.call(IOCTL_NTPOOL_READ, ReadRequest { id, offset, length }.as_bytes(), output_len);
        let result = reply.expect(status::SUCCESS, length as usize).and_then(|()| {
            match self.buffer[..length as usize].iter().position(|&byte| byte != 0) {
                Some(at) => Err(Problem::NotZero { offset: u64::from(offset) + at as u64, value: self.buffer[at] }),
                None => Ok(()),
            }
        });
        self.report_outcome(
            result,
            format_args!("READ id {id} offset {offset} length {length} into {output_len} bytes"),
            format_args!("{length} zero bytes"),
        );
    }

    /// A `READ` that must fail with `expected`.
    fn read_refused(&mut self, request: ReadRequest, output_len: usize, expected: i32, why: &str) {
        let ReadRequest { id, offset, length } = request;
        self.refused(
            IOCTL_NTPOOL_READ,
            request.as_bytes(),
            output_len,
            expected,
            format_args!("READ id {id} offset {offset} length {length} into {output_len} bytes ({why})"),
        );
    }

    /// `QUERY_STATISTICS` into 64 bytes: the statistics, or `None` after a failed check.
    fn statistics(&mut self, what: &str) -> Option<Statistics> {
        let reply = self.call(IOCTL_NTPOOL_QUERY_STATISTICS, &[], STATISTICS_LEN);
        match reply.expect(status::SUCCESS, STATISTICS_LEN) {
            Ok(()) => {
                let statistics = Statistics::from_bytes(&self.buffer[..STATISTICS_LEN]);
                self.report(Ok(()), format_args!("QUERY_STATISTICS {what}"));
                statistics
            }
            Err(problem) => {
                self.report(Err(problem), format_args!("QUERY_STATISTICS {what}"));
                None
            }
        }
    }

    /// Checks the statistics' outstanding blocks and bytes against the scenario's blocks.
    fn check_gauges(&mut self, when: &str) {
        let Some(statistics) = self.statistics(when) else { return };
        let (count, non_paged, paged) = self.live_totals();
        let result = match self.start {
            None => Err(Problem::NoBaseline),
            Some(start) => compare(&[
                ("outstanding", start.outstanding + count, statistics.outstanding),
                ("non_paged_bytes", start.non_paged_bytes + non_paged, statistics.non_paged_bytes),
                ("paged_bytes", start.paged_bytes + paged, statistics.paged_bytes),
            ]),
        };
        self.report(
            result,
            format_args!("statistics {when}: {count} outstanding, {non_paged} non-paged and {paged} paged bytes"),
        );
    }

    /// The scenario's outstanding blocks, non-paged bytes and paged bytes.
    fn live_totals(&self) -> (u64, u64, u64) {
        let mut totals = (self.live_len as u64, 0, 0);
        for block in self.live() {
            if block.pool == POOL_PAGED {
                totals.2 += u64::from(block.size);
            } else {
                totals.1 += u64::from(block.size);
            }
        }
        totals
    }

    /// `QUERY_ALLOCATIONS` into `output_len` bytes (with `input`, which the driver ignores): checks
    /// the header and the entries against the scenario's blocks.
    fn check_allocations(&mut self, input: &[u8], output_len: usize, when: &str) {
        let expected_outstanding = self.start.map_or(0, |start| start.outstanding) + self.live_len as u64;
        let fit = (output_len - HEADER_LEN) / ENTRY_LEN;
        let returned = (expected_outstanding as usize).min(fit);
        let reply = self.call(IOCTL_NTPOOL_QUERY_ALLOCATIONS, input, output_len);
        let result = reply.expect(status::SUCCESS, HEADER_LEN + ENTRY_LEN * returned).and_then(|()| {
            let header = AllocationsHeader::from_bytes(&self.buffer[..HEADER_LEN]).unwrap_or_default();
            compare(&[
                ("outstanding", expected_outstanding, u64::from(header.outstanding)),
                ("returned", returned as u64, u64::from(header.returned)),
            ])?;
            for (index, expected) in self.live().iter().take(returned).enumerate() {
                let at = HEADER_LEN + ENTRY_LEN * index;
                let got = AllocationInfo::from_bytes(&self.buffer[at..at + ENTRY_LEN]).unwrap_or_default();
                if got != *expected {
                    return Err(Problem::Entry { index, expected: *expected, got });
                }
            }
            Ok(())
        });
        self.report(
            result,
            format_args!(
                "QUERY_ALLOCATIONS into {output_len} bytes {when} -> {expected_outstanding} outstanding, {returned} listed"
            ),
        );
    }

    // -----------------------------------------------------------------------------------------
    // The scenario
    // -----------------------------------------------------------------------------------------

    fn run(&mut self) {
        self.start = self.statistics("at the start (the baseline of the counters)");
        if let Some(start) = self.start {
            let idle = if start.outstanding == 0 && start.non_paged_bytes == 0 && start.paged_bytes == 0 {
                Ok(())
            } else {
                Err(Problem::Busy { outstanding: start.outstanding })
            };
            self.report(idle, format_args!("nothing outstanding at the start"));
        }
        self.check_allocations(&[], LIST_ALL, "at the start");

        let blocks = self.blocks_read_back();
        self.queries();
        self.reads(blocks);
        self.unknown_codes(blocks);
        self.frees(blocks);
        self.bad_allocations();
        self.good_tags();
        self.count_limit();
        self.non_paged_limit();
        self.paged_limit();
        self.finish();
    }

    /// Four blocks of both pools and several sizes (two charged to this process's quota), read back
    /// as zeros, listed and counted.
    fn blocks_read_back(&mut self) -> Blocks {
        let blocks = Blocks {
            small: self.allocate(POOL_PAGED | POOL_CHARGE_QUOTA, *b"Tst1", 100),
            tiny: self.allocate(POOL_NON_PAGED | POOL_CHARGE_QUOTA, *b"Tst2", 1),
            page: self.allocate(POOL_NON_PAGED, *b"Tst3", 4096),
            largest: self.allocate(POOL_PAGED, *b"Tst4", MAX_SIZE),
        };
        for (id, size) in [(blocks.small, 100), (blocks.tiny, 1), (blocks.page, 4096), (blocks.largest, MAX_SIZE)] {
            if let Some(id) = id {
                self.read_zero(id, size);
            }
        }
        self.check_allocations(&[], LIST_ALL, "with 4 blocks");
        self.check_gauges("with 4 blocks");
        blocks
    }

    /// `QUERY_ALLOCATIONS` and `QUERY_STATISTICS` with small, exact and large output buffers.
    fn queries(&mut self) {
        for output_len in [0, HEADER_LEN - 1] {
            self.refused(
                IOCTL_NTPOOL_QUERY_ALLOCATIONS,
                &[],
                output_len,
                status::BUFFER_TOO_SMALL,
                format_args!("QUERY_ALLOCATIONS into {output_len} bytes"),
            );
        }
        self.check_allocations(&[], HEADER_LEN, "(the header only)");
        self.check_allocations(&[], HEADER_LEN + ENTRY_LEN, "(one entry)");
        self.check_allocations(&[], HEADER_LEN + 2 * ENTRY_LEN + ENTRY_LEN - 1, "(two entries and a partial one)");
        self.check_allocations(&[0xFF; 40], LIST_ALL, "with 40 bytes of input, which is ignored");

        for output_len in [0, STATISTICS_LEN - 1] {
            self.refused(
                IOCTL_NTPOOL_QUERY_STATISTICS,
                &[],
                output_len,
                status::BUFFER_TOO_SMALL,
                format_args!("QUERY_STATISTICS into {output_len} bytes"),
            );
        }
        let reply = self.call(IOCTL_NTPOOL_QUERY_STATISTICS, &[0xFF; 16], STATISTICS_LEN + 36);
        self.report(
            reply.expect(status::SUCCESS, STATISTICS_LEN),
            format_args!("QUERY_STATISTICS into 100 bytes with 16 bytes of input -> 64 bytes"),
        );
    }

    /// `READ`: the block's end, bad input lengths, unknown ids, offsets and lengths past the end,
    /// an overflowing `offset + length`, a small output buffer, and the order of the checks.
    fn reads(&mut self, blocks: Blocks) {
        let (Some(small), Some(tiny)) = (blocks.small, blocks.tiny) else { return };
        let size = 100;
        self.read_ok(small, 10, 20, 36);
        self.read_ok(small, size, 0, 16);
        self.read_ok(small, 0, size, size as usize);
        self.read_ok(tiny, 0, 1, 1);

        let good = ReadRequest { id: small, offset: 0, length: 10 };
        let mut padded = [0u8; 17];
        padded[..16].copy_from_slice(good.as_bytes());
        for input in [&padded[..0], &padded[..8], &padded[..15], &padded[..17]] {
            let len = input.len();
            self.refused(
                IOCTL_NTPOOL_READ,
                input,
                64,
                status::INFO_LENGTH_MISMATCH,
                format_args!("READ with {len} bytes of input"),
            );
        }

        let read = |id, offset, length| ReadRequest { id, offset, length };
        self.read_refused(read(NEVER_ALLOCATED, 0, 1), 64, status::NOT_FOUND, "never allocated");
        self.read_refused(read(0, 0, 1), 64, status::NOT_FOUND, "zero id");
        self.read_refused(read(small, size + 1, 0), 64, status::INVALID_PARAMETER_2, "offset past the end");
        self.read_refused(read(small, u32::MAX, 0), 64, status::INVALID_PARAMETER_2, "offset past the end");
        self.read_refused(read(small, 0, size + 1), 128, status::INVALID_PARAMETER_3, "length past the end");
        self.read_refused(read(small, 60, 41), 64, status::INVALID_PARAMETER_3, "offset + length past the end");
        self.read_refused(read(small, size, 1), 64, status::INVALID_PARAMETER_3, "one byte past the end");
        self.read_refused(read(small, 1, u32::MAX), 64, status::INVALID_PARAMETER_3, "offset + length overflows u32");
        self.read_refused(read(tiny, 1, u32::MAX), 64, status::INVALID_PARAMETER_3, "offset + length overflows u32");
        self.read_refused(read(small, 0, size), 99, status::BUFFER_TOO_SMALL, "output one byte short");
        self.read_refused(read(small, 0, 1), 0, status::BUFFER_TOO_SMALL, "no output buffer");

        // The checks come in order: the first one that fails decides.
        self.refused(
            IOCTL_NTPOOL_READ,
            &read(NEVER_ALLOCATED, 0, 1).as_bytes()[..15],
            64,
            status::INFO_LENGTH_MISMATCH,
            format_args!("READ with 15 bytes of input naming an unknown id"),
        );
        self.read_refused(
            read(NEVER_ALLOCATED, size + 1, 0),
            64,
            status::NOT_FOUND,
            "unknown id before offset past the end",
        );
        self.read_refused(
            read(small, size + 1, size + 1),
            0,
            status::INVALID_PARAMETER_2,
            "offset before length before output",
        );
        self.read_refused(read(small, 0, size + 1), 0, status::INVALID_PARAMETER_3, "length before output");
    }

    /// Unknown codes, and the driver's codes with `METHOD_NEITHER`: refused, and nothing done.
    fn unknown_codes(&mut self, blocks: Blocks) {
        let request = AllocateRequest { pool: POOL_PAGED, tag: tag(*b"Tst5"), size: 16, reserved: 0 };
        for (code, name) in UNKNOWN_CODES {
            self.refused(
                code,
                request.as_bytes(),
                REPLY_LEN,
                status::INVALID_DEVICE_REQUEST,
                format_args!("IOCTL {name}"),
            );
        }
        self.refused(0, &[], 0, status::INVALID_DEVICE_REQUEST, format_args!("IOCTL 0 without buffers"));
        self.refused(
            IOCTL_NTPOOL_ALLOCATE | METHOD_NEITHER,
            request.as_bytes(),
            REPLY_LEN,
            status::INVALID_DEVICE_REQUEST,
            format_args!("ALLOCATE code with METHOD_NEITHER"),
        );
        if let Some(tiny) = blocks.tiny {
            self.refused(
                IOCTL_NTPOOL_FREE | METHOD_NEITHER,
                FreeRequest { id: tiny }.as_bytes(),
                0,
                status::INVALID_DEVICE_REQUEST,
                format_args!("FREE code with METHOD_NEITHER, id {tiny}"),
            );
        }
        self.check_allocations(&[], LIST_ALL, "after the unknown codes (nothing allocated or freed)");
    }

    /// `FREE`: bad input lengths, unknown ids, a double free, a read after free.
    fn frees(&mut self, blocks: Blocks) {
        let id = blocks.small.unwrap_or(NEVER_ALLOCATED);
        let mut padded = [0u8; 16];
        padded[..8].copy_from_slice(FreeRequest { id }.as_bytes());
        for len in [0, 7, 9, 16] {
            self.refused(
                IOCTL_NTPOOL_FREE,
                &padded[..len],
                0,
                status::INFO_LENGTH_MISMATCH,
                format_args!("FREE with {len} bytes of input (id {id})"),
            );
        }
        for (bad, why) in [(0, "zero id"), (NEVER_ALLOCATED, "never allocated")] {
            self.refused(
                IOCTL_NTPOOL_FREE,
                FreeRequest { id: bad }.as_bytes(),
                0,
                status::NOT_FOUND,
                format_args!("FREE id {bad} ({why})"),
            );
        }
        if let Some(small) = blocks.small {
            let reply = self.call(IOCTL_NTPOOL_FREE, FreeRequest { id: small }.as_bytes(), 16);
            self.report(
                reply.expect(status::SUCCESS, 0),
                format_args!("FREE id {small} with a 16-byte output buffer -> nothing written"),
            );
            self.refused(
                IOCTL_NTPOOL_FREE,
                FreeRequest { id: small }.as_bytes(),
                0,
                status::NOT_FOUND,
                format_args!("FREE id {small} again (double free)"),
            );
            self.read_refused(ReadRequest { id: small, offset: 0, length: 1 }, 64, status::NOT_FOUND, "freed block");
        }
        for id in [blocks.tiny, blocks.page, blocks.largest].into_iter().flatten() {
            self.free(id);
        }
        if let Some(tiny) = blocks.tiny {
            self.refused(
                IOCTL_NTPOOL_FREE,
                FreeRequest { id: tiny }.as_bytes(),
                0,
                status::NOT_FOUND,
                format_args!("FREE id {tiny} again (double free)"),
            );
        }
        self.check_allocations(&[], LIST_ALL, "after the frees");
        self.check_gauges("after the frees");
    }

    /// `ALLOCATE` with each kind of bad input, and inputs bad in two ways (the first check wins).
    fn bad_allocations(&mut self) {
        let good = AllocateRequest { pool: POOL_PAGED, tag: tag(*b"Tst6"), size: 32, reserved: 0 };
        let mut padded = [0u8; 32];
        padded[..16].copy_from_slice(good.as_bytes());
        for len in [0, 8, 15, 17, 32] {
            self.refused(
                IOCTL_NTPOOL_ALLOCATE,
                &padded[..len],
                REPLY_LEN,
                status::INFO_LENGTH_MISMATCH,
                format_args!("ALLOCATE with {len} bytes of input"),
            );
        }
        for output_len in [0, REPLY_LEN - 1] {
            self.refused(
                IOCTL_NTPOOL_ALLOCATE,
                good.as_bytes(),
                output_len,
                status::BUFFER_TOO_SMALL,
                format_args!("ALLOCATE {} into {output_len} bytes", Request(&good)),
            );
        }
        for reserved in [1, 0x8000_0000] {
            self.allocate_refused(AllocateRequest { reserved, ..good }, status::INVALID_PARAMETER_4, "reserved not 0");
        }
        for pool in [2, u32::MAX] {
            self.allocate_refused(AllocateRequest { pool, ..good }, status::INVALID_PARAMETER_1, "unknown pool");
        }
        let bad_tags: [(u32, &str); 8] = [
            (0, "zero"),
            (tag(*b"Ab\0c"), "a NUL byte"),
            (tag(*b"Ab\x7fc"), "a DEL byte"),
            (tag(*b"----"), "no letter or digit"),
            (tag(*b"    "), "no letter or digit"),
            (tag(*b"Wdm "), "the default tag"),
            (tag(*b"Ddk "), "the default tag"),
            (tag(*b"Tst1") | 0x8000_0000, "the high bit set"),
        ];
        for (bad, why) in bad_tags {
            self.allocate_refused(AllocateRequest { tag: bad, ..good }, status::INVALID_PARAMETER_2, why);
        }
        for size in [0, MAX_SIZE + 1, u32::MAX] {
            let why = if size == 0 { "empty" } else { "more than MAX_SIZE" };
            self.allocate_refused(AllocateRequest { size, ..good }, status::INVALID_PARAMETER_3, why);
        }

        // The checks come in order: the first one that fails decides.
        self.refused(
            IOCTL_NTPOOL_ALLOCATE,
            &good.as_bytes()[..15],
            0,
            status::INFO_LENGTH_MISMATCH,
            format_args!("ALLOCATE with 15 bytes of input into 0 bytes"),
        );
        let all_bad = AllocateRequest { pool: 2, tag: 0, size: 0, reserved: 1 };
        self.refused(
            IOCTL_NTPOOL_ALLOCATE,
            all_bad.as_bytes(),
            REPLY_LEN - 1,
            status::BUFFER_TOO_SMALL,
            format_args!(
                "ALLOCATE {} into {} bytes (output length before the fields)",
                Request(&all_bad),
                REPLY_LEN - 1
            ),
        );
        self.allocate_refused(all_bad, status::INVALID_PARAMETER_4, "reserved before pool");
        let request = AllocateRequest { reserved: 0, ..all_bad };
        self.allocate_refused(request, status::INVALID_PARAMETER_1, "pool before tag");
        let request = AllocateRequest { pool: POOL_NON_PAGED, ..request };
        self.allocate_refused(request, status::INVALID_PARAMETER_2, "tag before size");

        self.check_allocations(&[], LIST_ALL, "after the refused ALLOCATEs (nothing allocated)");
    }

    /// Unusual tags that are valid.
    fn good_tags(&mut self) {
        for bytes in [*b"a   ", *b"~~~9", *b"Z !~", *b"wdm1"] {
            if let Some(id) = self.allocate(POOL_NON_PAGED, bytes, 8) {
                self.free(id);
            }
        }
    }

    /// `MAX_HANDLE_ALLOCATIONS` blocks outstanding through this handle: one more is refused, listed in full and in part, freed.
    fn count_limit(&mut self) {
        let outstanding = self.start.map_or(0, |start| start.outstanding) + self.live_len as u64;
        let room = u64::from(MAX_HANDLE_ALLOCATIONS).saturating_sub(outstanding) as u32;
        let fill = AllocateRequest { pool: POOL_NON_PAGED, tag: tag(*b"Fill"), size: 16, reserved: 0 };
        if self.allocate_many(room, fill, true, "up to MAX_HANDLE_ALLOCATIONS") {
            self.allocate_refused(fill, status::QUOTA_EXCEEDED, "one more than MAX_HANDLE_ALLOCATIONS");
            let paged = AllocateRequest { pool: POOL_PAGED, size: 1, ..fill };
            self.allocate_refused(paged, status::QUOTA_EXCEEDED, "one more than MAX_HANDLE_ALLOCATIONS");
            // Input errors come before the limit.
            self.allocate_refused(
                AllocateRequest { size: 0, ..fill },
                status::INVALID_PARAMETER_3,
                "size before limit",
            );
            self.allocate_refused(AllocateRequest { tag: 0, ..fill }, status::INVALID_PARAMETER_2, "tag before limit");
            self.check_allocations(&[], LIST_ALL, "at MAX_HANDLE_ALLOCATIONS");
            self.check_allocations(&[], HEADER_LEN + 10 * ENTRY_LEN, "at MAX_HANDLE_ALLOCATIONS (room for 10)");
            self.check_gauges("at MAX_HANDLE_ALLOCATIONS");
        }
        self.free_all("MAX_HANDLE_ALLOCATIONS");
        // The slots are free again, and recycled memory reads as zero.
        if let Some(id) = self.allocate(POOL_NON_PAGED, *b"Tst7", 2048) {
            self.read_zero(id, 2048);
            self.free(id);
        }
    }

    /// One 64 KiB non-paged block reaches `MAX_HANDLE_NON_PAGED_BYTES`: more non-paged memory is refused,
    /// paged memory is not.
    fn non_paged_limit(&mut self) {
        let count = (MAX_HANDLE_NON_PAGED_BYTES / u64::from(MAX_SIZE)) as u32;
        let request = AllocateRequest { pool: POOL_NON_PAGED, tag: tag(*b"NpLm"), size: MAX_SIZE, reserved: 0 };
        if self.allocate_many(count, request, false, "up to MAX_HANDLE_NON_PAGED_BYTES") {
            self.allocate_refused(request, status::QUOTA_EXCEEDED, "past MAX_HANDLE_NON_PAGED_BYTES");
            self.allocate_refused(
                AllocateRequest { size: 1, ..request },
                status::QUOTA_EXCEEDED,
                "past MAX_HANDLE_NON_PAGED_BYTES",
            );
            if let Some(id) = self.allocate(POOL_PAGED, *b"PgOk", MAX_SIZE) {
                self.read_zero(id, MAX_SIZE);
            }
            self.check_gauges("at MAX_HANDLE_NON_PAGED_BYTES");
        }
        if let Some(last) = self.live().iter().rev().find(|block| block.pool == POOL_NON_PAGED).copied() {
            self.read_zero(last.id, last.size);
        }
        self.free_all("MAX_HANDLE_NON_PAGED_BYTES");
    }

    /// Four 64 KiB paged blocks reach `MAX_HANDLE_PAGED_BYTES`: more paged memory is refused,
    /// non-paged memory is not.
    fn paged_limit(&mut self) {
        let count = (MAX_HANDLE_PAGED_BYTES / u64::from(MAX_SIZE)) as u32;
        let request = AllocateRequest { pool: POOL_PAGED, tag: tag(*b"PgLm"), size: MAX_SIZE, reserved: 0 };
        if self.allocate_many(count, request, false, "up to MAX_HANDLE_PAGED_BYTES") {
            self.allocate_refused(request, status::QUOTA_EXCEEDED, "past MAX_HANDLE_PAGED_BYTES");
            self.allocate_refused(
                AllocateRequest { size: 1, ..request },
                status::QUOTA_EXCEEDED,
                "past MAX_HANDLE_PAGED_BYTES",
            );
            self.allocate(POOL_NON_PAGED, *b"NpOk", 1);
            self.check_gauges("at MAX_HANDLE_PAGED_BYTES");
        }
        self.free_all("MAX_HANDLE_PAGED_BYTES");
    }

    /// Frees what is left, and checks that nothing is outstanding and that the counters moved by
    /// what the answers imply.
    fn finish(&mut self) {
        if self.live_len > 0 {
            self.free_all("left over after failed checks");
        }
        if self.untracked > 0 {
            self.report(Err(Problem::Untracked(self.untracked)), format_args!("every block freed"));
        }
        self.check_allocations(&[], LIST_ALL, "at the end");
        let Some(end) = self.statistics("at the end") else { return };
        let zero = compare(&[
            ("outstanding", 0, end.outstanding),
            ("non_paged_bytes", 0, end.non_paged_bytes),
            ("paged_bytes", 0, end.paged_bytes),
        ]);
        self.report(zero, format_args!("nothing outstanding at the end: 0 blocks, 0 non-paged and 0 paged bytes"));

        let Some(start) = self.start else {
            self.report(Err(Problem::NoBaseline), format_args!("counters moved by the scenario's requests"));
            return;
        };
        let tally = self.tally;
        // The first QUERY_STATISTICS is not between the two snapshots (whether the driver counts a
        // request before or after it copies the statistics, the difference is the same).
        let counters: [(&str, u64, u64, &str); 5] = [
            ("allocations", start.allocations, end.allocations, "ALLOCATEs that succeeded"),
            ("frees", start.frees, end.frees, "FREEs that succeeded"),
            ("failures", start.failures, end.failures, "STATUS_INSUFFICIENT_RESOURCES answers"),
            ("rejected", start.rejected, end.rejected, "requests refused"),
            ("requests", start.requests, end.requests, "requests after the first QUERY_STATISTICS"),
        ];
        let expected = [tally.allocations, tally.frees, tally.failures, tally.rejected, tally.requests - 1];
        for ((name, before, after, what), expected) in counters.into_iter().zip(expected) {
            let moved = after.wrapping_sub(before);
            let result = compare(&[(name, expected, moved)]);
            self.report(result, format_args!("statistics: {name} moved by {expected} ({what})"));
        }
    }
}

/// The scenario's first four blocks.
#[derive(Clone, Copy, Debug)]
struct Blocks {
    /// Paged, 100 bytes.
    small: Option<u64>,
    /// Non-paged, 1 byte.
    tiny: Option<u64>,
    /// Non-paged, 4096 bytes.
    page: Option<u64>,
    /// Paged, `MAX_SIZE` bytes.
    largest: Option<u64>,
}

/// `Ok` when every `(what, expected, got)` matches; else the first mismatch.
fn compare(values: &[(&'static str, u64, u64)]) -> Result<(), Problem> {
    match values.iter().find(|(_, expected, got)| expected != got) {
        Some(&(what, expected, got)) => Err(Problem::Value { what, expected, got }),
        None => Ok(()),
    }
}

pub mod hostile;
pub mod soak;

#[cfg(test)]
mod tests;
