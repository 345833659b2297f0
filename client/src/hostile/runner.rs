//! The runner of the hostile-input table: for each row of [`CASES`], the set-up through as many
//! handles as it needs, the request, the checks of its answer (status, `Information`, no stray output
//! byte, a limit that is the handle's when the row says so), and the undoing of the set-up.

use core::fmt::{self, Write};

use ntpool_protocol::{
    AllocateReply, AllocateRequest, FreeRequest, IOCTL_NTPOOL_ALLOCATE, IOCTL_NTPOOL_FREE,
    IOCTL_NTPOOL_QUERY_STATISTICS, MAX_ALLOCATIONS, POOL_PAGED, ReadRequest, Statistics, Wire, status,
};

use super::{CASES, Case, Devices, GOOD, HUGE, Input, NEVER, REPLY, STATISTICS, Setup};
use crate::device::Summary;
use crate::display::{Status, tag};

/// What the output buffer is filled with before each request.
const CANARY: u8 = 0x5C;
/// The most handles a row opens (the first handle and the fresh one included).
pub const MAX_HANDLES: usize = 8;
/// The most blocks a row allocates in its set-up.
const MAX_BLOCKS: usize = MAX_ALLOCATIONS as usize;

/// Why a row failed.
enum Problem {
    Status { got: i32 },
    Information { got: usize },
    Stray { offset: usize },
    Setup(&'static str, i32),
    Undo(&'static str, i32),
    Outstanding { before: u64, after: u64 },
    PerHandleNotPerHandle(i32),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Problem::Status { got } => write!(f, "got {}", Status(got)),
            Problem::Information { got } => write!(f, "information {got}"),
            Problem::Stray { offset } => write!(f, "changed byte {offset} of the output buffer, past the information"),
            Problem::Setup(what, got) => write!(f, "set-up failed: {what}: {}", Status(got)),
            Problem::Undo(what, got) => write!(f, "undoing the set-up failed: {what}: {}", Status(got)),
            Problem::Outstanding { before, after } => {
                write!(f, "{before} blocks outstanding before the row, {after} after")
            }
            Problem::PerHandleNotPerHandle(got) => {
                write!(f, "a fresh handle was refused the same request ({}): the limit is not per handle", Status(got))
            }
        }
    }
}

/// The blocks and handles a row's set-up made, to undo.
struct Made {
    blocks: [(usize, u64); MAX_BLOCKS],
    count: usize,
    handles: [usize; MAX_HANDLES],
    handle_count: usize,
}

struct Runner<'a, D: ?Sized, W> {
    devices: &'a mut D,
    out: &'a mut W,
    summary: Summary,
    buffer: [u8; HUGE],
    input: [u8; HUGE],
}

/// Sends every row of [`CASES`] through `devices` (it opens its own handles and closes them),
/// printing `ok   #N ...` or `FAIL #N ...` per row and then `hostile inputs: {passed} passed,
/// {failed} failed`, and returns those numbers. The driver must have nothing outstanding through
/// other handles while it runs (the rows fill it to its limits).
pub fn run_table(devices: &mut (impl Devices + ?Sized), out: &mut impl Write) -> Summary {
    let mut runner = Runner { devices, out, summary: Summary::default(), buffer: [0; HUGE], input: [0; HUGE] };
    match runner.devices.open() {
        Some(first) => {
            for (index, case) in CASES.iter().enumerate() {
                let result = runner.row(first, case);
                runner.report(index, case, result);
            }
            runner.devices.close(first);
        }
        None => {
            runner.summary.failed += 1;
            let _ = writeln!(runner.out, "FAIL hostile inputs: the device cannot be opened");
        }
    }
    let summary = runner.summary;
    let _ = writeln!(runner.out, "hostile inputs: {summary}");
    summary
}

impl<D: Devices + ?Sized, W: Write> Runner<'_, D, W> {
    fn report(&mut self, index: usize, case: &Case, result: Result<(), Problem>) {
        let name = status::name(case.status);
        // Nothing can be done about a failing writer.
        let _ = match result {
            Ok(()) => {
                self.summary.passed += 1;
                writeln!(self.out, "ok   #{} {}: {} -> {name}", index + 1, case.request, case.bad)
            }
            Err(problem) => {
                self.summary.failed += 1;
                writeln!(self.out, "FAIL #{} {}: {}: expected {name}, {problem}", index + 1, case.request, case.bad)
            }
        };
    }

    /// Sends a request through `handle` with `output` bytes of output; the reply is in `buffer`.
    fn send(&mut self, handle: usize, code: u32, input: &[u8], output: usize) -> (i32, usize, Option<usize>) {
        let buffer = &mut self.buffer[..output];
        buffer.fill(CANARY);
        let (status, information) = self.devices.control(handle, code, input, buffer);
        let returned = information.min(output);
        let stray = buffer[returned..].iter().position(|&byte| byte != CANARY).map(|at| returned + at);
        (status, information, stray)
    }

    fn allocate(&mut self, handle: usize, request: &AllocateRequest) -> Result<u64, i32> {
        let (status, information, _) = self.send(handle, IOCTL_NTPOOL_ALLOCATE, request.as_bytes(), REPLY);
        if status != status::SUCCESS {
            return Err(status);
        }
        AllocateReply::from_bytes(&self.buffer[..information.min(REPLY)]).map(|reply| reply.id).ok_or(status)
    }

    fn free(&mut self, handle: usize, id: u64) -> i32 {
        self.send(handle, IOCTL_NTPOOL_FREE, FreeRequest { id }.as_bytes(), 0).0
    }

    /// The driver's count of outstanding blocks; a failed query fails the row.
    fn outstanding(&mut self, handle: usize) -> Result<u64, Problem> {
        let (status, information, _) = self.send(handle, IOCTL_NTPOOL_QUERY_STATISTICS, &[], STATISTICS);
        match Statistics::from_bytes(&self.buffer[..information.min(STATISTICS)]) {
            Some(statistics) if status == status::SUCCESS => Ok(statistics.outstanding),
            _ => Err(Problem::Setup("querying the statistics", status)),
        }
    }

    fn row(&mut self, first: usize, case: &Case) -> Result<(), Problem> {
        let before = self.outstanding(first)?;
        let mut made = Made { blocks: [(0, 0); MAX_BLOCKS], count: 0, handles: [0; MAX_HANDLES], handle_count: 0 };
        let result = self.set_up_and_send(first, case, &mut made);
        let undone = self.undo(&made);
        let after = self.outstanding(first);
        result?;
        undone?;
        let after = after?;
        if after != before {
            return Err(Problem::Outstanding { before, after });
        }
        Ok(())
    }

    fn open(&mut self, made: &mut Made) -> Result<usize, Problem> {
        if made.handle_count == MAX_HANDLES {
            return Err(Problem::Setup("too many handles", 0));
        }
        let handle = self.devices.open().ok_or(Problem::Setup("opening another handle", 0))?;
        made.handles[made.handle_count] = handle;
        made.handle_count += 1;
        Ok(handle)
    }

    fn keep(&mut self, made: &mut Made, handle: usize, request: &AllocateRequest) -> Result<u64, Problem> {
        let id = self.allocate(handle, request).map_err(|status| Problem::Setup("allocating a block", status))?;
        if made.count == MAX_BLOCKS {
            return Err(Problem::Setup("too many blocks", 0));
        }
        made.blocks[made.count] = (handle, id);
        made.count += 1;
        Ok(id)
    }

    /// The set-up, the request, and the checks of its answer. The set-up's id, and the handle the
    /// request goes through.
    fn set_up_and_send(&mut self, first: usize, case: &Case, made: &mut Made) -> Result<(), Problem> {
        let block = AllocateRequest { pool: POOL_PAGED, tag: tag(*b"Hst3"), size: 100, reserved: 0 };
        let mut through = first;
        let id = match case.setup {
            Setup::None => NEVER,
            Setup::Block => self.keep(made, first, &block)?,
            Setup::Freed => {
                let id = self.allocate(first, &block).map_err(|status| Problem::Setup("allocating a block", status))?;
                match self.free(first, id) {
                    status::SUCCESS => id,
                    status => return Err(Problem::Setup("freeing the block", status)),
                }
            }
            Setup::OtherHandle => {
                let other = self.open(made)?;
                self.keep(made, other, &block)?
            }
            Setup::Full(limit) => {
                let (pool, size, count) = limit.per_handle();
                let fill = AllocateRequest { pool, tag: tag(*b"Hst4"), size, reserved: 0 };
                for index in 0..limit.handles() {
                    let handle = if index == 0 { first } else { self.open(made)? };
                    for _ in 0..count {
                        self.keep(made, handle, &fill)?;
                    }
                }
                if limit.driver_wide() {
                    through = self.open(made)?;
                }
                NEVER
            }
        };
        let length = self.input(case.input, id);
        let input = self.input;
        let (status, information, stray) = self.send(through, case.code, &input[..length], case.output);
        if status == status::SUCCESS && case.code == IOCTL_NTPOOL_ALLOCATE {
            // The block of an oversized-output row: freed with the set-up.
            if let Some(reply) = AllocateReply::from_bytes(&self.buffer[..information.min(REPLY)]) {
                if made.count < MAX_BLOCKS {
                    made.blocks[made.count] = (through, reply.id);
                    made.count += 1;
                }
            }
        }
        if status != case.status {
            return Err(Problem::Status { got: status });
        }
        if information != case.information {
            return Err(Problem::Information { got: information });
        }
        if let Some(offset) = stray {
            return Err(Problem::Stray { offset });
        }
        if let Setup::Full(limit) = case.setup {
            if !limit.driver_wide() {
                // The same request through a fresh handle succeeds: the limit was the handle's.
                let fresh = self.open(made)?;
                if let Input::Allocate(request) = case.input {
                    self.keep(made, fresh, &request).map_err(|problem| match problem {
                        Problem::Setup(_, status) => Problem::PerHandleNotPerHandle(status),
                        other => other,
                    })?;
                }
            }
        }
        Ok(())
    }

    /// Writes the row's input into `self.input`; its length.
    fn input(&mut self, input: Input, id: u64) -> usize {
        self.input.fill(0);
        let mut put = |bytes: &[u8], len: usize| {
            let copied = bytes.len().min(len);
            self.input[..copied].copy_from_slice(&bytes[..copied]);
            len
        };
        match input {
            Input::Empty => 0,
            Input::Zeros(len) => len,
            Input::Allocate(request) => put(request.as_bytes(), core::mem::size_of::<AllocateRequest>()),
            Input::AllocateLen(len) => put(GOOD.as_bytes(), len),
            Input::Free => put(FreeRequest { id }.as_bytes(), 8),
            Input::FreeId(id) => put(FreeRequest { id }.as_bytes(), 8),
            Input::FreeLen(len) => put(FreeRequest { id }.as_bytes(), len),
            Input::Read { offset, length } => put(ReadRequest { id, offset, length }.as_bytes(), 16),
            Input::ReadId(id) => put(ReadRequest { id, offset: 0, length: 1 }.as_bytes(), 16),
            Input::ReadLen(len) => put(ReadRequest { id, offset: 0, length: 1 }.as_bytes(), len),
        }
    }

    /// Frees the set-up's blocks through their handles (each must still be there), and closes the
    /// handles it opened.
    fn undo(&mut self, made: &Made) -> Result<(), Problem> {
        let mut result = Ok(());
        for &(handle, id) in &made.blocks[..made.count] {
            let status = self.free(handle, id);
            if status != status::SUCCESS && result.is_ok() {
                result = Err(Problem::Undo("freeing a block of the set-up", status));
            }
        }
        for &handle in &made.handles[..made.handle_count] {
            self.devices.close(handle);
        }
        result
    }
}
