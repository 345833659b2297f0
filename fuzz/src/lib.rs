//! The fuzz harness of the sample driver: a fuzzer's bytes become a life of the driver on ntpool's
//! emulated kernel (Driver Verifier's checks on), and every answer is checked against a model that
//! predicts it exactly.
//!
//! # Input format
//!
//! Structure-aware: most bytes choose among meaningful values rather than spell them out, so that a
//! random or mutated input is mostly a meaningful life of the driver. Ids usually name blocks the
//! driver handed out earlier in the same input; sizes, offsets, lengths and output buffers are
//! drawn from small values, boundaries (a block's size ± 1, [`MAX_SIZE`] ± 1, what a limit leaves
//! ± 1, the reply's size ± 1), powers of two and raw values; tags and pools from a small set of valid
//! and invalid ones. Raw requests keep malformed buffers and unknown codes in reach.
//!
//! An input is a configuration ([`Setup`]: first byte % 8, 0-3 plain) followed by operations until
//! the input ends ([`decode`]; [`encode`] writes the same format, for the seed corpus). An operation
//! byte's low four bits are its kind, its high four bits the handle it goes through (% open
//! handles; one is opened if none is):
//!
//! | kind | operation | then |
//! |---|---|---|
//! | 0, 14 | open a handle (at most [`MAX_HANDLES`]) | |
//! | 1 | close the handle | |
//! | 2 | close every handle, unload, check nothing leaked, load again | |
//! | 3, 4, 5 | `IOCTL_NTPOOL_ALLOCATE` | pool, tag, size ([`Value`]), output ([`Output`]) |
//! | 6, 7 | `IOCTL_NTPOOL_FREE` | id ([`Id`]) |
//! | 8, 9, 10 | `IOCTL_NTPOOL_READ` | id, offset, length ([`Value`]s), output |
//! | 11 | `IOCTL_NTPOOL_QUERY_ALLOCATIONS` | output |
//! | 12 | `IOCTL_NTPOOL_QUERY_STATISTICS` | output |
//! | 13, 15 | any request, raw | code ([`Code`]), output, input length (1 byte), input |
//!
//! Handles belong to two processes (by the order they were opened in), so that blocks charged to
//! quota ([`POOL_CHARGE_QUOTA`]) are charged to two processes.
//!
//! # What is a crash
//!
//! [`run`] loads the driver, runs the operations, unloads it, and panics (a crash for libFuzzer) on
//! a bug check, a leak at unload, an I/O manager check (IRP completed once, no more output than room
//! for), or an answer that differs from the model's: the model knows the driver's blocks (owner
//! handle, pool, tag, size, quota), its next id and its counters, and predicts every status and
//! every reply byte (blocks read as zeros; lists in id order; statistics exact). Without fault
//! injection the prediction is exact; with it, a successful allocation may instead fail with
//! `STATUS_INSUFFICIENT_RESOURCES`. After every allocation or free request and every close, the
//! kernel's outstanding client blocks (tag, pool, size) and every process's quota charges must equal
//! the model's: a leak or a free of the wrong block shows at once.
//!
//! The fuzz build (`--cfg fuzzing`) leaves the self-test out of `DriverEntry` (the host tests and the
//! systematic low resources simulation run it); the rest of `DriverEntry` runs for every input.
//!
//! `NTPOOL_FUZZ_TRACE=1` prints each operation and its answer to stderr.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use ntpool::emulated::{Kernel, PoolKind, in_process};
use ntpool_driver::host::{self, Handle, LoadedDriver};
use ntpool_protocol::*;

/// Handles open at once, at most: enough for the driver-wide limits to be reached through the
/// per-handle ones.
pub const MAX_HANDLES: usize = 6;

/// The largest output buffer a request gets (a whole block, and a page more).
pub const MAX_OUTPUT: u32 = MAX_SIZE + 4096;

/// The driver's five IOCTL codes, as [`Code::Pick`] selects them.
pub const CODES: [u32; 5] = [
    IOCTL_NTPOOL_ALLOCATE,
    IOCTL_NTPOOL_FREE,
    IOCTL_NTPOOL_READ,
    IOCTL_NTPOOL_QUERY_ALLOCATIONS,
    IOCTL_NTPOOL_QUERY_STATISTICS,
];

/// Pools [`Choice::Pick`] selects for an allocation: the two valid ones, each with and without
/// quota, and invalid ones.
pub const POOLS: [u32; 8] = [
    POOL_NON_PAGED,
    POOL_PAGED,
    POOL_NON_PAGED | POOL_CHARGE_QUOTA,
    POOL_PAGED | POOL_CHARGE_QUOTA,
    2,
    2 | POOL_CHARGE_QUOTA,
    0x200,
    u32::MAX,
];

/// Tags [`Choice::Pick`] selects for an allocation: valid ones (one of them with spaces), then no tag,
/// a default tag, one without a letter or digit, and one with a character that is not printable.
pub const TAGS: [[u8; 4]; 8] = [*b"Fz01", *b"Fz02", *b"Fz03", *b"a   ", [0; 4], *b"Wdm ", *b" !~-", *b"Fz\x7F1"];

/// What [`Value::Near`] adds to its reference.
pub const DELTAS: [i32; 8] = [0, -1, 1, -2, 2, -8, 8, 4096];

/// Processes the handles belong to (alternately, in the order they were opened).
pub const PROCESSES: [u64; 2] = [0x1000, 0x1004];

/// How the emulated kernel is configured for one input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setup {
    /// Driver Verifier's checks, nothing else.
    Verifier,
    /// The `n`th allocation request fails (1 to 256).
    FailAllocation(u16),
    /// Requests fail at random: seed, percent (0 to 31).
    LowResources(u8, u8),
    /// The kernel does not export `ExAllocatePool2`.
    NoExAllocatePool2,
    /// Every process's pool quota is this many KiB (1 to 256).
    ProcessQuota(u16),
}

/// One of a small table of values, or a raw one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// Entry `i % len` of the table.
    Pick(u8),
    /// This value.
    Raw(u32),
}

/// A number (size, offset, length), resolved against references that depend on the request (see
/// [`run`]'s operations: a block's size, what a limit leaves, [`MAX_SIZE`]...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value {
    /// 0 to 63.
    Small(u8),
    /// Reference `r % 4`, plus [`DELTAS`]`[d % 8]` (wrapping).
    Near(u8, u8),
    /// `1 << (k % 32)`, minus one if asked.
    Power(u8, bool),
    /// This value.
    Raw(u32),
}

/// An output buffer's length, relative to what the reply needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Room for the reply and `n % 64` bytes more.
    Fit(u8),
    /// `1 + n % 64` bytes too short (0 at least).
    Short(u8),
    /// `n % 63` bytes.
    Small(u8),
    /// This many bytes (at most [`MAX_OUTPUT`]).
    Raw(u32),
}

/// A block id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Id {
    /// The `n % count`th most recent id the driver handed out in this input (0: the last one).
    Recent(u8),
    /// 0, the id the driver will hand out next, `u64::MAX`, or the last id with bit 32 set (`k % 4`).
    Special(u8),
    /// This id.
    Raw(u64),
}

/// An IOCTL code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// [`CODES`]`[i % 5]`.
    Pick(u8),
    /// This code.
    Raw(u32),
}

/// One operation of an input; `handle` selects an open handle (`% open handles`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Open a handle to `\\.\NtPool`.
    Open,
    /// Close a handle.
    Close(u8),
    /// Close every handle, unload the driver, check nothing leaked, and load it again.
    Reload,
    /// Allocate: pool ([`POOLS`]), tag ([`TAGS`]), size (references: [`MAX_SIZE`], what the handle's
    /// limit leaves in the pool, what the driver's leaves, the last size allocated).
    Allocate { handle: u8, pool: Choice, tag: Choice, size: Value, output: Output },
    /// Free.
    Free { handle: u8, id: Id },
    /// Read (offset references: the block's size, half of it, [`MAX_SIZE`], `u32::MAX`; length
    /// references: what is left after the offset, the block's size, [`MAX_SIZE`], `2^32 - offset`).
    Read { handle: u8, id: Id, offset: Value, length: Value, output: Output },
    /// List the handle's blocks.
    List { handle: u8, output: Output },
    /// Query the counters.
    Statistics { handle: u8, output: Output },
    /// Any code with any input (the output relative to nothing: `Fit(n)` is `n` bytes).
    Raw { handle: u8, code: Code, output: Output, input: Vec<u8> },
}

/// A cursor over the input's bytes.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    fn bytes<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (first, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*first)
    }

    fn u32(&mut self) -> Option<u32> {
        self.bytes().map(u32::from_le_bytes)
    }

    fn choice(&mut self) -> Option<Choice> {
        match self.byte()? {
            0xF8..=0xFF => self.u32().map(Choice::Raw),
            pick => Some(Choice::Pick(pick)),
        }
    }

    fn value(&mut self) -> Option<Value> {
        let byte = self.byte()?;
        Some(match byte >> 6 {
            0 => Value::Small(byte & 63),
            1 => Value::Near((byte >> 3) & 3, byte & 7),
            2 => Value::Power(byte & 31, byte & 32 != 0),
            _ => Value::Raw(self.u32()?),
        })
    }

    fn output(&mut self) -> Option<Output> {
        let byte = self.byte()?;
        Some(match byte {
            0x00..=0x3F => Output::Fit(0),
            0x40..=0x7F => Output::Fit(byte & 63),
            0x80..=0xBF => Output::Short(byte & 63),
            0xC0..=0xFE => Output::Small(byte & 63),
            0xFF => Output::Raw(self.u32()?),
        })
    }

    fn id(&mut self) -> Option<Id> {
        Some(match self.byte()? {
            byte @ 0x00..=0xDF => Id::Recent(byte),
            byte @ 0xE0..=0xEF => Id::Special(byte & 3),
            0xF0..=0xFF => Id::Raw(u64::from_le_bytes(self.bytes()?)),
        })
    }

    fn code(&mut self) -> Option<Code> {
        match self.byte()? {
            0xF0..=0xFF => self.u32().map(Code::Raw),
            pick => Some(Code::Pick(pick)),
        }
    }
}

/// Reads an input; a truncated last operation is dropped.
pub fn decode(data: &[u8]) -> (Setup, Vec<Op>) {
    let mut input = Reader(data);
    let setup = match input.byte().unwrap_or(0) % 8 {
        4 => Setup::FailAllocation(u16::from(input.byte().unwrap_or(0)) + 1),
        5 => Setup::LowResources(input.byte().unwrap_or(0), input.byte().unwrap_or(0) % 32),
        6 => Setup::NoExAllocatePool2,
        7 => Setup::ProcessQuota(u16::from(input.byte().unwrap_or(0)) + 1),
        _ => Setup::Verifier,
    };
    let mut ops = Vec::new();
    while let Some(op) = decode_op(&mut input) {
        ops.push(op);
    }
    (setup, ops)
}

fn decode_op(input: &mut Reader<'_>) -> Option<Op> {
    let byte = input.byte()?;
    let handle = byte >> 4;
    Some(match byte & 15 {
        0 | 14 => Op::Open,
        1 => Op::Close(handle),
        2 => Op::Reload,
        3..=5 => Op::Allocate {
            handle,
            pool: input.choice()?,
            tag: input.choice()?,
            size: input.value()?,
            output: input.output()?,
        },
        6 | 7 => Op::Free { handle, id: input.id()? },
        8..=10 => Op::Read {
            handle,
            id: input.id()?,
            offset: input.value()?,
            length: input.value()?,
            output: input.output()?,
        },
        11 => Op::List { handle, output: input.output()? },
        12 => Op::Statistics { handle, output: input.output()? },
        _ => {
            let (code, output, length) = (input.code()?, input.output()?, input.byte()?);
            let bytes: Vec<u8> = (0..length).map_while(|_| input.byte()).collect();
            Op::Raw { handle, code, output, input: bytes }
        }
    })
}

/// Writes an input that [`decode`] reads back as `setup` and `ops` (for values in the ranges the
/// variants document).
pub fn encode(setup: Setup, ops: &[Op]) -> Vec<u8> {
    let mut data = match setup {
        Setup::Verifier => vec![0],
        Setup::FailAllocation(n) => vec![4, (n.clamp(1, 256) - 1) as u8],
        Setup::LowResources(seed, percent) => vec![5, seed, percent % 32],
        Setup::NoExAllocatePool2 => vec![6],
        Setup::ProcessQuota(kib) => vec![7, (kib.clamp(1, 256) - 1) as u8],
    };
    let choice = |data: &mut Vec<u8>, choice: &Choice| match *choice {
        Choice::Pick(pick) => data.push(pick.min(0xF7)),
        Choice::Raw(raw) => {
            data.push(0xFF);
            data.extend(raw.to_le_bytes());
        }
    };
    let value = |data: &mut Vec<u8>, value: &Value| match *value {
        Value::Small(n) => data.push(n & 63),
        Value::Near(r, d) => data.push(0x40 | (r & 3) << 3 | (d & 7)),
        Value::Power(k, minus) => data.push(0x80 | if minus { 32 } else { 0 } | (k & 31)),
        Value::Raw(raw) => {
            data.push(0xC0);
            data.extend(raw.to_le_bytes());
        }
    };
    let output = |data: &mut Vec<u8>, output: &Output| match *output {
        Output::Fit(n) => data.push(0x40 | (n & 63)),
        Output::Short(n) => data.push(0x80 | (n & 63)),
        Output::Small(n) => data.push(0xC0 | (n % 63)),
        Output::Raw(raw) => {
            data.push(0xFF);
            data.extend(raw.to_le_bytes());
        }
    };
    let id = |data: &mut Vec<u8>, id: &Id| match *id {
        Id::Recent(n) => data.push(n.min(0xDF)),
        Id::Special(k) => data.push(0xE0 | (k & 3)),
        Id::Raw(raw) => {
            data.push(0xF0);
            data.extend(raw.to_le_bytes());
        }
    };
    let op_byte = |handle: u8, kind: u8| (handle << 4) | kind;
    for op in ops {
        match op {
            Op::Open => data.push(0),
            Op::Close(handle) => data.push(op_byte(*handle, 1)),
            Op::Reload => data.push(2),
            Op::Allocate { handle, pool, tag, size, output: out } => {
                data.push(op_byte(*handle, 3));
                choice(&mut data, pool);
                choice(&mut data, tag);
                value(&mut data, size);
                output(&mut data, out);
            }
            Op::Free { handle, id: which } => {
                data.push(op_byte(*handle, 6));
                id(&mut data, which);
            }
            Op::Read { handle, id: which, offset, length, output: out } => {
                data.push(op_byte(*handle, 8));
                id(&mut data, which);
                value(&mut data, offset);
                value(&mut data, length);
                output(&mut data, out);
            }
            Op::List { handle, output: out } => {
                data.push(op_byte(*handle, 11));
                output(&mut data, out);
            }
            Op::Statistics { handle, output: out } => {
                data.push(op_byte(*handle, 12));
                output(&mut data, out);
            }
            Op::Raw { handle, code, output: out, input } => {
                data.push(op_byte(*handle, 13));
                match *code {
                    Code::Pick(pick) => data.push(pick.min(0xEF)),
                    Code::Raw(raw) => {
                        data.push(0xFF);
                        data.extend(raw.to_le_bytes());
                    }
                }
                output(&mut data, out);
                let input = &input[..input.len().min(255)];
                data.push(input.len() as u8);
                data.extend(input);
            }
        }
    }
    data
}

fn tracing() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("NTPOOL_FUZZ_TRACE").is_some())
}

/// Runs one input: panics on any failure (see the module's documentation).
pub fn run(data: &[u8]) {
    let (setup, ops) = decode(data);
    let builder = Kernel::builder().driver_name("ntpool_driver.sys");
    let kernel = match setup {
        Setup::Verifier => builder,
        Setup::FailAllocation(n) => builder.fail_allocation(n.into()),
        Setup::LowResources(seed, percent) => builder.low_resources_simulation(seed.into(), percent),
        Setup::NoExAllocatePool2 => builder.ex_allocate_pool2(false),
        Setup::ProcessQuota(kib) => builder.process_quota(u64::from(kib) * 1024),
    }
    .build();
    if tracing() {
        eprintln!("kernel: {setup:?}");
    }
    // A bug check panics: the emulated kernel prints it with its report (not caught here, so that one
    // raised where unwinding cannot go, in a dispatch routine or `DriverUnload`, is printed too).
    kernel.run(|| life(&kernel, setup, &ops));
    if let Err(leak) = kernel.verify_unload() {
        panic!("the driver leaked: {leak}");
    }
    let deferred = kernel.deferred_bug_checks();
    assert!(deferred.is_empty(), "bug checks while unwinding: {deferred:?}");
}

/// The driver's life: load, operations (reloading where asked), unload.
fn life(kernel: &Kernel, setup: Setup, ops: &[Op]) {
    let faults = matches!(setup, Setup::FailAllocation(_) | Setup::LowResources(..));
    let quota = match setup {
        Setup::ProcessQuota(kib) => Some(u64::from(kib) * 1024),
        _ => None,
    };
    // Ids handed out in this input, over reloads too.
    let mut ids: Vec<u64> = Vec::new();
    let mut rest = ops;
    loop {
        let loaded = host::load();
        if tracing() {
            eprintln!("DriverEntry: {}", status::name(loaded.status));
        }
        let Some(driver) = loaded.driver else {
            assert!(faults, "DriverEntry failed without a fault injected: {:#x}", loaded.status);
            assert_eq!(loaded.status, status::INSUFFICIENT_RESOURCES, "DriverEntry's status");
            return;
        };
        let mut model = Model { faults, quota, next_id: 1, ..Model::default() };
        let done = serve(kernel, &driver, &mut model, &mut ids, rest);
        driver.unload();
        if let Err(leak) = kernel.verify_unload() {
            panic!("the driver leaked at unload: {leak}");
        }
        match done {
            Some(at) => rest = &rest[at + 1..],
            None => return,
        }
    }
}

/// One outstanding block, as the model knows it.
#[derive(Clone, Copy, Debug)]
struct Block {
    /// The handle it was allocated through (its serial number).
    owner: u64,
    pool: u32,
    tag: u32,
    size: u32,
    /// The process its quota is charged to, if it is.
    charged: Option<u64>,
}

/// What the model knows of the driver.
#[derive(Default)]
struct Model {
    blocks: BTreeMap<u64, Block>,
    /// Size of every block handed out since the driver loaded (freed ones too), for references.
    sizes: BTreeMap<u64, u32>,
    next_id: u64,
    statistics: Statistics,
    last_size: u32,
    faults: bool,
    quota: Option<u64>,
}

impl Model {
    /// Blocks and bytes of `pool` outstanding, of `owner` or of everyone.
    fn usage(&self, owner: Option<u64>, pool: u32) -> (u32, u64) {
        let blocks = self.blocks.values().filter(|block| owner.is_none_or(|owner| block.owner == owner));
        blocks.fold((0, 0), |(count, bytes), block| {
            (count + 1, bytes + if block.pool == pool { u64::from(block.size) } else { 0 })
        })
    }

    /// Quota charged to `process`: (paged, non-paged).
    fn charged(&self, process: u64) -> (u64, u64) {
        let charged = self.blocks.values().filter(|block| block.charged == Some(process));
        charged.fold((0, 0), |(paged, non_paged), block| match block.pool {
            POOL_PAGED => (paged + u64::from(block.size), non_paged),
            _ => (paged, non_paged + u64::from(block.size)),
        })
    }

    fn pool_bytes(&mut self, pool: u32) -> &mut u64 {
        if pool == POOL_PAGED { &mut self.statistics.paged_bytes } else { &mut self.statistics.non_paged_bytes }
    }

    fn remove(&mut self, id: u64) -> Block {
        let block = self.blocks.remove(&id).expect("a block the model knows");
        self.statistics.frees += 1;
        self.statistics.outstanding -= 1;
        *self.pool_bytes(block.pool) -= u64::from(block.size);
        block
    }
}

/// An open handle: its serial number (the model's owner) and process.
struct Open<'a> {
    serial: u64,
    process: u64,
    handle: Handle<'a>,
}

/// Runs operations until a [`Op::Reload`] (its index is returned) or the end.
fn serve<'a>(
    kernel: &Kernel,
    driver: &'a LoadedDriver,
    model: &mut Model,
    ids: &mut Vec<u64>,
    ops: &[Op],
) -> Option<usize> {
    let mut handles: Vec<Open<'_>> = Vec::new();
    let mut serial = 0;
    let open = |handles: &mut Vec<Open<'a>>, serial: &mut u64| {
        let process = PROCESSES[*serial as usize % PROCESSES.len()];
        let handle = in_process(process, || driver.open()).expect("the device opens");
        handles.push(Open { serial: *serial, process, handle });
        *serial += 1;
    };
    for (index, op) in ops.iter().enumerate() {
        let handle = match op {
            Op::Open => {
                if handles.len() < MAX_HANDLES {
                    open(&mut handles, &mut serial);
                }
                continue;
            }
            Op::Reload => return Some(index),
            Op::Close(_) if handles.is_empty() => continue,
            Op::Close(handle)
            | Op::Allocate { handle, .. }
            | Op::Free { handle, .. }
            | Op::Read { handle, .. }
            | Op::List { handle, .. }
            | Op::Statistics { handle, .. }
            | Op::Raw { handle, .. } => *handle,
        };
        if handles.is_empty() {
            open(&mut handles, &mut serial);
        }
        let which = usize::from(handle) % handles.len();
        if let Op::Close(_) = op {
            let closed = handles.remove(which);
            in_process(closed.process, || drop(closed.handle));
            let owned: Vec<u64> =
                model.blocks.iter().filter(|(_, block)| block.owner == closed.serial).map(|(&id, _)| id).collect();
            for id in owned {
                model.remove(id);
            }
            if tracing() {
                eprintln!("close handle {}", closed.serial);
            }
            check_kernel(kernel, model, "IRP_MJ_CLOSE");
            continue;
        }
        let client = &handles[which];
        let (code, input, output) = resolve(model, ids, client.serial, op);
        let (status, reply) = in_process(client.process, || client.handle.device_control(code, &input, output));
        let what = format!("handle {} IOCTL {code:#010x} input {input:02x?} output {output}", client.serial);
        if tracing() {
            eprintln!("{what}: {} {reply:02x?}", status::name(status));
        }
        check(model, ids, client, code, &input, output, status, &reply, &what);
        // Requests that allocate or free a client's block; a leak elsewhere shows at the next one,
        // at a close, or at the unload.
        if code == IOCTL_NTPOOL_ALLOCATE || code == IOCTL_NTPOOL_FREE {
            check_kernel(kernel, model, &what);
        }
    }
    None
}

/// A [`Value`] against its references.
fn value(value: Value, references: [u32; 4]) -> u32 {
    match value {
        Value::Small(n) => u32::from(n & 63),
        Value::Near(r, d) => references[usize::from(r % 4)].wrapping_add_signed(DELTAS[usize::from(d % 8)]),
        Value::Power(k, minus) => (1u32 << (k % 32)).wrapping_sub(u32::from(minus)),
        Value::Raw(raw) => raw,
    }
}

/// An [`Output`] for a reply of `needed` bytes.
fn output(output: Output, needed: u32) -> usize {
    let length = match output {
        Output::Fit(n) => needed.saturating_add(u32::from(n & 63)),
        Output::Short(n) => needed.saturating_sub(1 + u32::from(n & 63)),
        Output::Small(n) => u32::from(n % 63),
        Output::Raw(raw) => raw,
    };
    length.min(MAX_OUTPUT) as usize
}

/// The request an operation makes: code, input, output length.
fn resolve(model: &Model, ids: &[u64], owner: u64, op: &Op) -> (u32, Vec<u8>, usize) {
    let id = |id: Id| match id {
        Id::Recent(n) if !ids.is_empty() => ids[ids.len() - 1 - usize::from(n) % ids.len()],
        Id::Recent(n) => u64::from(n),
        Id::Special(k) => match k % 4 {
            0 => 0,
            1 => model.next_id,
            2 => u64::MAX,
            _ => ids.last().copied().unwrap_or(1) | 1 << 32,
        },
        Id::Raw(raw) => raw,
    };
    match *op {
        Op::Allocate { pool, tag, size, output: out, .. } => {
            let pool = match pool {
                Choice::Pick(pick) => POOLS[usize::from(pick) % POOLS.len()],
                Choice::Raw(raw) => raw,
            };
            let tag = match tag {
                Choice::Pick(pick) => u32::from_le_bytes(TAGS[usize::from(pick) % TAGS.len()]),
                Choice::Raw(raw) => raw,
            };
            let kind = if pool & !POOL_CHARGE_QUOTA == POOL_PAGED { POOL_PAGED } else { POOL_NON_PAGED };
            let (handle_limit, driver_limit) = match kind {
                POOL_PAGED => (MAX_HANDLE_PAGED_BYTES, MAX_PAGED_BYTES),
                _ => (MAX_HANDLE_NON_PAGED_BYTES, MAX_NON_PAGED_BYTES),
            };
            let left = |owner, limit: u64| limit.saturating_sub(model.usage(owner, kind).1) as u32;
            let references = [MAX_SIZE, left(Some(owner), handle_limit), left(None, driver_limit), model.last_size];
            let request = AllocateRequest { pool, tag, size: value(size, references), reserved: 0 };
            (IOCTL_NTPOOL_ALLOCATE, request.as_bytes().to_vec(), output(out, 8))
        }
        Op::Free { id: which, .. } => (IOCTL_NTPOOL_FREE, FreeRequest { id: id(which) }.as_bytes().to_vec(), 0),
        Op::Read { id: which, offset, length, output: out, .. } => {
            let id = id(which);
            let size = model.sizes.get(&id).copied().unwrap_or(0);
            let offset = value(offset, [size, size / 2, MAX_SIZE, u32::MAX]);
            let length = value(length, [size.wrapping_sub(offset), size, MAX_SIZE, 0u32.wrapping_sub(offset)]);
            let request = ReadRequest { id, offset, length };
            (IOCTL_NTPOOL_READ, request.as_bytes().to_vec(), output(out, length))
        }
        Op::List { output: out, .. } => {
            let needed = 8 + 24 * model.usage(Some(owner), POOL_PAGED).0;
            (IOCTL_NTPOOL_QUERY_ALLOCATIONS, Vec::new(), output(out, needed))
        }
        Op::Statistics { output: out, .. } => (IOCTL_NTPOOL_QUERY_STATISTICS, Vec::new(), output(out, 64)),
        Op::Raw { code, output: out, ref input, .. } => {
            let code = match code {
                Code::Pick(pick) => CODES[usize::from(pick) % CODES.len()],
                Code::Raw(raw) => raw,
            };
            (code, input.clone(), output(out, 0))
        }
        Op::Open | Op::Close(_) | Op::Reload => unreachable!("not a request"),
    }
}

/// Whether `tag` is a valid pool tag, as the protocol documents it: four printable ASCII characters
/// with a letter or digit, not `Wdm ` or `Ddk `.
fn valid_tag(tag: u32) -> bool {
    let bytes = tag.to_le_bytes();
    bytes.iter().all(|byte| (0x20..=0x7E).contains(byte))
        && bytes.iter().any(u8::is_ascii_alphanumeric)
        && bytes != *b"Wdm "
        && bytes != *b"Ddk "
}

/// What the driver must answer, and the model's state after it: `Err(status)` or `Ok(reply)`.
/// `Allocate` carries the block it adds.
enum Expected {
    Fail(i32),
    Reply(Vec<u8>),
    Allocate(Block),
    Free(u64),
}

/// The model's prediction for one request through `client`.
fn predict(model: &Model, client: &Open<'_>, code: u32, input: &[u8], output: usize) -> Expected {
    let owner = client.serial;
    match code {
        IOCTL_NTPOOL_ALLOCATE => {
            let Some(request) = AllocateRequest::from_bytes(input) else {
                return Expected::Fail(status::INFO_LENGTH_MISMATCH);
            };
            let pool = request.pool & !POOL_CHARGE_QUOTA;
            let quota = request.pool & POOL_CHARGE_QUOTA != 0;
            let failure = if output < 8 {
                status::BUFFER_TOO_SMALL
            } else if request.reserved != 0 {
                status::INVALID_PARAMETER_4
            } else if pool != POOL_PAGED && pool != POOL_NON_PAGED {
                status::INVALID_PARAMETER_1
            } else if !valid_tag(request.tag) {
                status::INVALID_PARAMETER_2
            } else if request.size == 0 || request.size > MAX_SIZE {
                status::INVALID_PARAMETER_3
            } else {
                let size = u64::from(request.size);
                let fits = |(count, bytes): (u32, u64), max_count: u32, max_non_paged: u64, max_paged: u64| {
                    count < max_count && bytes + size <= if pool == POOL_PAGED { max_paged } else { max_non_paged }
                };
                let driver = fits(model.usage(None, pool), MAX_ALLOCATIONS, MAX_NON_PAGED_BYTES, MAX_PAGED_BYTES);
                let handle = fits(
                    model.usage(Some(owner), pool),
                    MAX_HANDLE_ALLOCATIONS,
                    MAX_HANDLE_NON_PAGED_BYTES,
                    MAX_HANDLE_PAGED_BYTES,
                );
                let (paged, non_paged) = model.charged(client.process);
                if !driver || !handle {
                    status::QUOTA_EXCEEDED
                } else if quota && model.quota.is_some_and(|limit| paged + non_paged + size > limit) {
                    status::INSUFFICIENT_RESOURCES
                } else {
                    let charged = quota.then_some(client.process);
                    return Expected::Allocate(Block { owner, pool, tag: request.tag, size: request.size, charged });
                }
            };
            Expected::Fail(failure)
        }
        IOCTL_NTPOOL_FREE => match FreeRequest::from_bytes(input) {
            None => Expected::Fail(status::INFO_LENGTH_MISMATCH),
            Some(request) if model.blocks.get(&request.id).is_some_and(|block| block.owner == owner) => {
                Expected::Free(request.id)
            }
            Some(_) => Expected::Fail(status::NOT_FOUND),
        },
        IOCTL_NTPOOL_READ => {
            let Some(request) = ReadRequest::from_bytes(input) else {
                return Expected::Fail(status::INFO_LENGTH_MISMATCH);
            };
            let Some(block) = model.blocks.get(&request.id).filter(|block| block.owner == owner) else {
                return Expected::Fail(status::NOT_FOUND);
            };
            let (size, offset, length) = (u64::from(block.size), u64::from(request.offset), u64::from(request.length));
            if offset > size {
                Expected::Fail(status::INVALID_PARAMETER_2)
            } else if offset + length > size {
                Expected::Fail(status::INVALID_PARAMETER_3)
            } else if (output as u64) < length {
                Expected::Fail(status::BUFFER_TOO_SMALL)
            } else {
                Expected::Reply(vec![0; length as usize])
            }
        }
        IOCTL_NTPOOL_QUERY_ALLOCATIONS => {
            if output < 8 {
                return Expected::Fail(status::BUFFER_TOO_SMALL);
            }
            let owned: Vec<(&u64, &Block)> = model.blocks.iter().filter(|(_, block)| block.owner == owner).collect();
            let returned = owned.len().min((output - 8) / 24);
            let header = AllocationsHeader { outstanding: owned.len() as u32, returned: returned as u32 };
            let mut reply = header.as_bytes().to_vec();
            for &(&id, block) in &owned[..returned] {
                let info = AllocationInfo { id, pool: block.pool, tag: block.tag, size: block.size, reserved: 0 };
                reply.extend(info.as_bytes());
            }
            Expected::Reply(reply)
        }
        IOCTL_NTPOOL_QUERY_STATISTICS if output < 64 => Expected::Fail(status::BUFFER_TOO_SMALL),
        IOCTL_NTPOOL_QUERY_STATISTICS => Expected::Reply(model.statistics.as_bytes().to_vec()),
        _ => Expected::Fail(status::INVALID_DEVICE_REQUEST),
    }
}

/// Checks one answer against the model's prediction, and updates the model.
#[allow(clippy::too_many_arguments)]
fn check(
    model: &mut Model,
    ids: &mut Vec<u64>,
    client: &Open<'_>,
    code: u32,
    input: &[u8],
    output: usize,
    status: i32,
    reply: &[u8],
    what: &str,
) {
    let expected = predict(model, client, code, input, output);
    model.statistics.requests += 1;
    let name = status::name;
    match expected {
        Expected::Allocate(_) if status == status::INSUFFICIENT_RESOURCES && model.faults => {
            assert!(reply.is_empty(), "{what}: {} bytes of output with a failure", reply.len());
        }
        Expected::Allocate(block) => {
            assert_eq!(name(status), name(status::SUCCESS), "{what}");
            let id = model.next_id;
            assert_eq!(reply, AllocateReply { id }.as_bytes(), "{what}: the reply (ids count up from 1)");
            model.next_id += 1;
            model.blocks.insert(id, block);
            model.sizes.insert(id, block.size);
            model.last_size = block.size;
            ids.push(id);
            model.statistics.allocations += 1;
            model.statistics.outstanding += 1;
            *model.pool_bytes(block.pool) += u64::from(block.size);
        }
        Expected::Free(id) => {
            assert_eq!(name(status), name(status::SUCCESS), "{what}");
            assert!(reply.is_empty(), "{what}: output {reply:02x?}");
            model.remove(id);
        }
        Expected::Reply(expected) => {
            assert_eq!(name(status), name(status::SUCCESS), "{what}");
            assert_eq!(reply, &expected[..], "{what}: the reply");
        }
        Expected::Fail(expected) => {
            assert_eq!(name(status), name(expected), "{what}");
            assert!(reply.is_empty(), "{what}: {} bytes of output with a failure", reply.len());
        }
    }
    match status {
        status::SUCCESS => {}
        status::INSUFFICIENT_RESOURCES => model.statistics.failures += 1,
        _ => model.statistics.rejected += 1,
    }
}

/// The kernel's outstanding client blocks and quota charges must be the model's.
fn check_kernel(kernel: &Kernel, model: &Model, what: &str) {
    // The driver's allocations made while serving requests: clients' blocks and request log entries.
    let log_tag = u32::from_le_bytes(*b"NpLg");
    let mut blocks: Vec<(u32, PoolKind, usize)> = kernel
        .outstanding()
        .into_iter()
        .filter(|block| block.file.ends_with("dispatch.rs"))
        .map(|block| (block.tag.0, block.pool, block.size))
        .collect();
    for block in model.blocks.values() {
        let pool = if block.pool == POOL_PAGED { PoolKind::Paged } else { PoolKind::NonPaged };
        let Some(at) = blocks.iter().position(|&found| found == (block.tag, pool, block.size as usize)) else {
            panic!("{what}: the kernel does not have the block {block:?} (freed behind the model's back?)");
        };
        blocks.swap_remove(at);
    }
    let log_entry = (log_tag, PoolKind::NonPaged, size_of::<ntpool_driver::device::LogEntry>());
    let strays: Vec<_> = blocks.iter().filter(|&&block| block != log_entry).collect();
    assert!(strays.is_empty(), "{what}: blocks outstanding that no client holds (leaked?): {strays:x?}");
    // Both ways: every charge the kernel has is the model's, and every process the model charges
    // has that charge in the kernel (a process the kernel never charged has (0, 0)).
    let charges = kernel.quota_charges();
    for charge in &charges {
        let expected = model.charged(charge.process);
        assert_eq!((charge.paged, charge.non_paged), expected, "{what}: quota charged to process {}", charge.process);
    }
    for process in PROCESSES {
        let kernel_charge = charges
            .iter()
            .find(|charge| charge.process == process)
            .map_or((0, 0), |charge| (charge.paged, charge.non_paged));
        assert_eq!(kernel_charge, model.charged(process), "{what}: quota charged to process {process}");
    }
}

/// A small deterministic generator (xorshift64*), seeded by libFuzzer.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    fn choice(&mut self) -> Choice {
        if self.below(8) == 0 { Choice::Raw(self.next() as u32) } else { Choice::Pick(self.byte() % 8) }
    }

    fn value(&mut self) -> Value {
        match self.below(4) {
            0 => Value::Small(self.byte() % 64),
            1 => Value::Near(self.byte() % 4, self.byte() % 8),
            2 => Value::Power(self.byte() % 32, self.below(2) == 0),
            _ => Value::Raw(self.next() as u32),
        }
    }

    fn output(&mut self) -> Output {
        match self.below(8) {
            0 => Output::Short(self.byte() % 64),
            1 => Output::Small(self.byte() % 63),
            2 => Output::Raw(self.next() as u32),
            _ => Output::Fit(if self.below(2) == 0 { 0 } else { self.byte() % 64 }),
        }
    }

    fn id(&mut self) -> Id {
        match self.below(16) {
            0 => Id::Special(self.byte() % 4),
            1 => Id::Raw(self.next()),
            _ => Id::Recent(self.byte() % 4),
        }
    }

    fn op(&mut self) -> Op {
        let handle = self.byte() % 16;
        match self.below(16) {
            0 => Op::Open,
            1 => Op::Close(handle),
            2 => Op::Reload,
            3..=5 => Op::Allocate {
                handle,
                pool: self.choice(),
                tag: self.choice(),
                size: self.value(),
                output: self.output(),
            },
            6..=8 => Op::Free { handle, id: self.id() },
            9..=11 => {
                Op::Read { handle, id: self.id(), offset: self.value(), length: self.value(), output: self.output() }
            }
            12 => Op::List { handle, output: self.output() },
            13 => Op::Statistics { handle, output: self.output() },
            _ => {
                let code = if self.below(4) == 0 { Code::Raw(self.next() as u32) } else { Code::Pick(self.byte() % 5) };
                let input = (0..self.below(20)).map(|_| self.byte()).collect();
                Op::Raw { handle, code, output: self.output(), input }
            }
        }
    }

    /// A new value for one field of `op` (or a new handle).
    fn tweak(&mut self, op: &mut Op) {
        let field = self.below(4);
        match op {
            Op::Open | Op::Reload => *op = self.op(),
            Op::Close(handle) => *handle = self.byte() % 16,
            Op::Allocate { handle, pool, tag, size, output } => match field {
                0 => *pool = self.choice(),
                1 => *tag = self.choice(),
                2 => *size = self.value(),
                _ if self.below(2) == 0 => *output = self.output(),
                _ => *handle = self.byte() % 16,
            },
            Op::Free { handle, id } => match field {
                0 => *handle = self.byte() % 16,
                _ => *id = self.id(),
            },
            Op::Read { handle, id, offset, length, output } => match field {
                0 => *id = self.id(),
                1 => *offset = self.value(),
                2 => *length = self.value(),
                _ if self.below(2) == 0 => *output = self.output(),
                _ => *handle = self.byte() % 16,
            },
            Op::List { handle, output } | Op::Statistics { handle, output } => match field {
                0 => *handle = self.byte() % 16,
                _ => *output = self.output(),
            },
            Op::Raw { handle, code, output, input } => match field {
                0 => *handle = self.byte() % 16,
                1 => *code = Code::Pick(self.byte() % 5),
                2 => *output = self.output(),
                _ if input.is_empty() => input.push(self.byte()),
                _ => {
                    let at = self.below(input.len());
                    input[at] = self.byte();
                }
            },
        }
    }
}

/// libFuzzer's custom mutator: half the time a structural change of the decoded input (a field of
/// an operation given a new value of its kind, an operation inserted, copied, removed or moved, the
/// kernel's configuration changed), re-encoded; otherwise, or when that does not fit in `max_size`,
/// libFuzzer's own byte-level mutations (`fallback`). Either way the input stays bytes that
/// [`run`] reads the usual way, so every input reproduces on its own.
pub fn mutate(
    data: &mut [u8],
    size: usize,
    max_size: usize,
    seed: u32,
    fallback: impl FnOnce(&mut [u8], usize, usize) -> usize,
) -> usize {
    let mut random = Random(u64::from(seed) << 32 | 0x9E37_79B9);
    if random.below(2) == 0 {
        return fallback(data, size, max_size);
    }
    let (mut setup, mut ops) = decode(&data[..size]);
    for _ in 0..1 + random.below(3) {
        let at = random.below(ops.len() + 1);
        match random.below(16) {
            0..=6 if !ops.is_empty() => {
                let at = at.min(ops.len() - 1);
                random.tweak(&mut ops[at]);
            }
            7 | 8 if !ops.is_empty() => {
                let copied = ops[random.below(ops.len())].clone();
                ops.insert(at, copied);
            }
            9 if !ops.is_empty() => {
                ops.remove(at.min(ops.len() - 1));
            }
            10 if ops.len() > 1 => {
                let from = ops.remove(random.below(ops.len()));
                ops.insert(random.below(ops.len() + 1), from);
            }
            11 => {
                setup = match random.below(8) {
                    4 => Setup::FailAllocation(1 + random.below(256) as u16),
                    5 => Setup::LowResources(random.byte(), random.byte() % 32),
                    6 => Setup::NoExAllocatePool2,
                    7 => Setup::ProcessQuota(1 + random.below(256) as u16),
                    _ => Setup::Verifier,
                }
            }
            _ => ops.insert(at, random.op()),
        }
    }
    let encoded = encode(setup, &ops);
    if encoded.len() > max_size || encoded.len() > data.len() {
        return fallback(data, size, max_size);
    }
    data[..encoded.len()].copy_from_slice(&encoded);
    encoded.len()
}
