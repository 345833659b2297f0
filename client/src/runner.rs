//! The scenario's runner: it sends one request at a time (output buffers filled with a canary),
//! keeps track of the blocks the driver handed out and of the counters its answers move, and prints
//! and counts each check. The requests it knows how to check (an allocation that must succeed or
//! fail, reads of zeros, the list and the statistics against its own count) are here; what the
//! scenario sends with them is in [`crate::scenario`].

use core::fmt::{self, Write};

use ntpool_protocol::{
    AllocateReply, AllocateRequest, AllocationInfo, AllocationsHeader, FreeRequest, IOCTL_NTPOOL_ALLOCATE,
    IOCTL_NTPOOL_FREE, IOCTL_NTPOOL_QUERY_ALLOCATIONS, IOCTL_NTPOOL_QUERY_STATISTICS, IOCTL_NTPOOL_READ,
    MAX_ALLOCATIONS, POOL_CHARGE_QUOTA, POOL_NON_PAGED, POOL_PAGED, ReadRequest, Statistics, Wire, status,
};

use crate::checks::{Problem, Reply, compare};
use crate::device::{Device, Summary};
use crate::display::{Request, Status, tag};

/// What the output buffer is filled with before each request: bytes past those the driver
/// returned must still hold it.
const CANARY: u8 = 0xA5;
pub(crate) const HEADER_LEN: usize = core::mem::size_of::<AllocationsHeader>();
pub(crate) const ENTRY_LEN: usize = core::mem::size_of::<AllocationInfo>();
pub(crate) const STATISTICS_LEN: usize = core::mem::size_of::<Statistics>();
pub(crate) const REPLY_LEN: usize = core::mem::size_of::<AllocateReply>();
/// An output buffer that holds the list of [`MAX_ALLOCATIONS`] blocks with room to spare.
pub(crate) const LIST_ALL: usize = HEADER_LEN + ENTRY_LEN * (MAX_ALLOCATIONS as usize + 4);
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
pub(crate) const NEVER_ALLOCATED: u64 = u64::MAX;
/// `METHOD_NEITHER`, the method bits the driver's codes must not be accepted with.
pub(crate) const METHOD_NEITHER: u32 = 3;

/// What the driver's counters must have moved by: tallied from its answers.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Tally {
    pub(crate) requests: u64,
    pub(crate) rejected: u64,
    pub(crate) failures: u64,
    pub(crate) allocations: u64,
    pub(crate) frees: u64,
}

/// The scenario's state. Blocks are tracked from the driver's answers, so that everything the
/// driver allocated is freed at the end, whatever went wrong before.
pub(crate) struct Runner<'a, D, W> {
    device: &'a mut D,
    pub(crate) out: &'a mut W,
    pub(crate) summary: Summary,
    pub(crate) tally: Tally,
    /// `QUERY_STATISTICS` at the start.
    pub(crate) start: Option<Statistics>,
    /// The outstanding blocks, ascending by id.
    live: [AllocationInfo; TRACKED],
    pub(crate) live_len: usize,
    /// Blocks the driver allocated that did not fit into `live`.
    pub(crate) untracked: u32,
    /// Every id handed out (the first [`SEEN`]).
    seen: [u64; SEEN],
    seen_len: usize,
    buffer: [u8; SCRATCH_LEN],
}

impl<'a, D: Device, W: Write> Runner<'a, D, W> {
    pub(crate) fn new(device: &'a mut D, out: &'a mut W) -> Self {
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
    /// The output buffer of the last request.
    pub(crate) fn output(&self) -> &[u8] {
        &self.buffer
    }

    pub(crate) fn report(&mut self, result: Result<(), Problem>, what: fmt::Arguments<'_>) {
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

    pub(crate) fn live(&self) -> &[AllocationInfo] {
        &self.live[..self.live_len]
    }

    /// Sends one request with an output buffer of `output_len` bytes (filled with [`CANARY`]),
    /// tallies the answer and keeps track of the blocks it allocated or freed. The bytes returned
    /// are in `self.buffer`.
    pub(crate) fn call(&mut self, code: u32, input: &[u8], output_len: usize) -> Reply {
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
    pub(crate) fn refused(
        &mut self,
        code: u32,
        input: &[u8],
        output_len: usize,
        expected: i32,
        what: fmt::Arguments<'_>,
    ) {
        let reply = self.call(code, input, output_len);
        self.report_outcome(reply.expect(expected, 0), what, Status(expected));
    }

    /// An `ALLOCATE` that must fail with `expected`.
    pub(crate) fn allocate_refused(&mut self, request: AllocateRequest, expected: i32, why: &str) {
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
    pub(crate) fn allocate(&mut self, pool: u32, tag_bytes: [u8; 4], size: u32) -> Option<u64> {
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
    pub(crate) fn allocate_many(&mut self, count: u32, request: AllocateRequest, alternate: bool, why: &str) -> bool {
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
    pub(crate) fn free(&mut self, id: u64) {
        let reply = self.call(IOCTL_NTPOOL_FREE, FreeRequest { id }.as_bytes(), 0);
        self.report(reply.expect(status::SUCCESS, 0), format_args!("FREE id {id}"));
    }

    /// Frees every outstanding block of the scenario, with one line for all of them, or one for
    /// each that fails.
    pub(crate) fn free_all(&mut self, why: &str) {
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
    pub(crate) fn read_zero(&mut self, id: u64, size: u32) {
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
    pub(crate) fn read_ok(&mut self, id: u64, offset: u32, length: u32, output_len: usize) {
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
    pub(crate) fn read_refused(&mut self, request: ReadRequest, output_len: usize, expected: i32, why: &str) {
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
    pub(crate) fn statistics(&mut self, what: &str) -> Option<Statistics> {
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
    pub(crate) fn check_gauges(&mut self, when: &str) {
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
    pub(crate) fn check_allocations(&mut self, input: &[u8], output_len: usize, when: &str) {
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
}
