//! The fuzz harness of the sample driver: a fuzzer's bytes become a life of the driver on ntpool's
//! emulated kernel (Driver Verifier's checks on), and every answer is checked against a model.
//!
//! An input is one configuration byte (and its arguments) followed by operations until the input
//! ends ([`decode`]; [`encode`] writes the same format, for the seed corpus):
//!
//! | first byte % 4 | kernel | arguments |
//! |---|---|---|
//! | 0 | Driver Verifier's checks | none |
//! | 1 | the `n`th allocation request fails | `n - 1` (1 byte) |
//! | 2 | low resources simulation | seed (1 byte), percent (1 byte, taken % 32) |
//! | 3 | no `ExAllocatePool2` (the `ExAllocatePoolWithTag` fallback) | none |
//!
//! | op byte % 4 | operation | arguments |
//! |---|---|---|
//! | 0 | open a handle (at most [`MAX_HANDLES`]) | none |
//! | 1 | close a handle | handle (1 byte) |
//! | 2 | close every handle, unload, check nothing leaked, load again | none |
//! | 3 | `DeviceIoControl` | handle (1 byte), code (1 byte: 0-4 one of the driver's five, else 4 more bytes: the code), output length (2 bytes LE), input length (1 byte), input |
//!
//! [`run`] loads the driver, runs the operations, unloads it, and panics (a crash for libFuzzer) on
//! a bug check, a leak, an I/O manager check (IRP completed once, no more output than room for),
//! or an answer the model rejects: a status the driver does not define, output on failure, a
//! non-zero byte read from a block (blocks are zeroed; no uninitialized pool reaches user mode), an
//! id handed out twice, a free or a list that disagrees with the blocks the model knows, counters
//! that disagree with them, or more than the driver's limits outstanding.
//!
//! `NTPOOL_FUZZ_TRACE=1` prints each operation and its answer to stderr.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use ntpool::PoolTag;
use ntpool::emulated::{Kernel, catch_bug_check};
use ntpool_driver::host::{self, Handle, LoadedDriver};
use ntpool_protocol::*;

/// Handles open at once, at most.
pub const MAX_HANDLES: usize = 4;

/// The driver's five IOCTL codes, as the code byte 0-4 selects them.
pub const CODES: [u32; 5] = [
    IOCTL_NTPOOL_ALLOCATE,
    IOCTL_NTPOOL_FREE,
    IOCTL_NTPOOL_READ,
    IOCTL_NTPOOL_QUERY_ALLOCATIONS,
    IOCTL_NTPOOL_QUERY_STATISTICS,
];

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
}

/// One operation of an input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Open a handle to `\\.\NtPool`.
    Open,
    /// Close handle `index % open handles`.
    Close(u8),
    /// Close every handle, unload the driver, check nothing leaked, and load it again.
    Reload,
    /// A device-control request on handle `handle % open handles` (opened first if none is).
    Control {
        /// Which handle.
        handle: u8,
        /// The IOCTL code.
        code: u32,
        /// The output buffer's length.
        output: u16,
        /// The input buffer.
        input: Vec<u8>,
    },
}

/// Reads an input; a truncated last operation is dropped.
pub fn decode(data: &[u8]) -> (Setup, Vec<Op>) {
    let mut bytes = data.iter().copied();
    let mut next = || bytes.next();
    let setup = match next().unwrap_or(0) % 4 {
        0 => Setup::Verifier,
        1 => Setup::FailAllocation(u16::from(next().unwrap_or(0)) + 1),
        2 => Setup::LowResources(next().unwrap_or(0), next().unwrap_or(0) % 32),
        _ => Setup::NoExAllocatePool2,
    };
    let mut ops = Vec::new();
    while let Some(kind) = next() {
        let op = match kind % 4 {
            0 => Op::Open,
            1 => match next() {
                Some(handle) => Op::Close(handle),
                None => break,
            },
            2 => Op::Reload,
            _ => {
                let (Some(handle), Some(selector)) = (next(), next()) else { break };
                let code = match CODES.get(usize::from(selector)) {
                    Some(&code) => code,
                    None => match (next(), next(), next(), next()) {
                        (Some(a), Some(b), Some(c), Some(d)) => u32::from_le_bytes([a, b, c, d]),
                        _ => break,
                    },
                };
                let (Some(low), Some(high), Some(length)) = (next(), next(), next()) else { break };
                let input: Vec<u8> = (0..length).map_while(|_| next()).collect();
                Op::Control { handle, code, output: u16::from_le_bytes([low, high]), input }
            }
        };
        ops.push(op);
    }
    (setup, ops)
}

/// Writes an input that [`decode`] reads back as `setup` and `ops` (inputs of at most 255 bytes).
pub fn encode(setup: Setup, ops: &[Op]) -> Vec<u8> {
    let mut data = match setup {
        Setup::Verifier => vec![0],
        Setup::FailAllocation(n) => vec![1, (n.clamp(1, 256) - 1) as u8],
        Setup::LowResources(seed, percent) => vec![2, seed, percent % 32],
        Setup::NoExAllocatePool2 => vec![3],
    };
    for op in ops {
        match op {
            Op::Open => data.push(0),
            Op::Close(handle) => data.extend([1, *handle]),
            Op::Reload => data.push(2),
            Op::Control { handle, code, output, input } => {
                data.extend([3, *handle]);
                match CODES.iter().position(|c| c == code) {
                    Some(selector) => data.push(selector as u8),
                    None => {
                        data.push(0xFF);
                        data.extend(code.to_le_bytes());
                    }
                }
                data.extend(output.to_le_bytes());
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
    }
    .build();
    if tracing() {
        eprintln!("kernel: {setup:?}");
    }
    let faults = matches!(setup, Setup::FailAllocation(_) | Setup::LowResources(..));
    let outcome = kernel.run(|| catch_bug_check(|| life(&kernel, &ops, faults)));
    if let Err(bug_check) = outcome {
        panic!("the driver bug-checked: {bug_check}");
    }
    if let Err(leak) = kernel.verify_unload() {
        panic!("the driver leaked: {leak}");
    }
    let deferred = kernel.deferred_bug_checks();
    assert!(deferred.is_empty(), "bug checks while unwinding: {deferred:?}");
}

/// The driver's life: load, operations (reloading where asked), unload.
fn life(kernel: &Kernel, ops: &[Op], faults: bool) {
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
        let done = serve(&driver, rest, faults);
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

/// What the model knows of the driver: its outstanding blocks by id (pool, size), the last id.
#[derive(Default)]
struct Model {
    blocks: BTreeMap<u64, (u32, u32)>,
    last_id: u64,
}

impl Model {
    fn bytes(&self, pool: u32) -> u64 {
        self.blocks.values().filter(|(p, _)| *p == pool).map(|&(_, size)| u64::from(size)).sum()
    }
}

/// Runs operations until a [`Op::Reload`] (its index is returned) or the end.
fn serve(driver: &LoadedDriver, ops: &[Op], faults: bool) -> Option<usize> {
    let mut handles: Vec<Handle<'_>> = Vec::new();
    let mut model = Model::default();
    for (index, op) in ops.iter().enumerate() {
        match op {
            Op::Open if handles.len() < MAX_HANDLES => handles.push(driver.open().expect("the device opens")),
            Op::Open => {}
            Op::Close(handle) if !handles.is_empty() => drop(handles.remove(usize::from(*handle) % handles.len())),
            Op::Close(_) => {}
            Op::Reload => return Some(index),
            Op::Control { handle, code, output, input } => {
                if handles.is_empty() {
                    handles.push(driver.open().expect("the device opens"));
                }
                let handle = &handles[usize::from(*handle) % handles.len()];
                let (status, reply) = handle.device_control(*code, input, usize::from(*output));
                if tracing() {
                    eprintln!(
                        "IOCTL {code:#010x} input {input:02x?} output {output}: {} {reply:02x?}",
                        status::name(status)
                    );
                }
                check(&mut model, *code, input, usize::from(*output), status, &reply, faults);
            }
        }
    }
    None
}

/// Checks one answer against the model, and updates it.
fn check(model: &mut Model, code: u32, input: &[u8], output: usize, status: i32, reply: &[u8], faults: bool) {
    let what = format!("IOCTL {code:#010x} input {input:02x?} output {output}");
    assert_ne!(status::name(status), "another status", "{what}: undefined status {status:#010x}");
    if status < 0 {
        assert!(reply.is_empty(), "{what}: {} with {} bytes of output", status::name(status), reply.len());
    }
    if status == status::INSUFFICIENT_RESOURCES {
        assert!(faults, "{what}: STATUS_INSUFFICIENT_RESOURCES without a fault injected");
    }
    match code {
        IOCTL_NTPOOL_ALLOCATE => {
            let request = AllocateRequest::from_bytes(input);
            let valid = request.filter(|r| {
                r.reserved == 0
                    && (r.pool == POOL_PAGED || r.pool == POOL_NON_PAGED)
                    && PoolTag::from_raw(r.tag).is_ok()
                    && (1..=MAX_SIZE).contains(&r.size)
                    && output >= 8
            });
            match (valid, status) {
                (Some(request), status::SUCCESS) => {
                    let reply = AllocateReply::from_bytes(reply);
                    let id = reply.unwrap_or_else(|| panic!("{what}: reply {reply:?}")).id;
                    assert!(id > model.last_id, "{what}: id {id} after id {}: ids are never reused", model.last_id);
                    model.last_id = id;
                    model.blocks.insert(id, (request.pool, request.size));
                    assert!(model.blocks.len() <= MAX_ALLOCATIONS as usize, "{what}: past the block limit");
                    assert!(model.bytes(POOL_PAGED) <= MAX_PAGED_BYTES, "{what}: past the paged limit");
                    assert!(model.bytes(POOL_NON_PAGED) <= MAX_NON_PAGED_BYTES, "{what}: past the non-paged limit");
                }
                (Some(_), status::QUOTA_EXCEEDED | status::INSUFFICIENT_RESOURCES) => {}
                (Some(_), other) => panic!("{what}: a valid request got {}", status::name(other)),
                (None, status) => assert!(status < 0, "{what}: an invalid request got {}", status::name(status)),
            }
        }
        IOCTL_NTPOOL_FREE => match FreeRequest::from_bytes(input) {
            Some(request) => {
                let expected =
                    if model.blocks.remove(&request.id).is_some() { status::SUCCESS } else { status::NOT_FOUND };
                assert_eq!(status::name(status), status::name(expected), "{what}");
            }
            None => assert!(status < 0, "{what}: a malformed free got {}", status::name(status)),
        },
        IOCTL_NTPOOL_READ => {
            let request = ReadRequest::from_bytes(input);
            match request {
                Some(request) if status == status::SUCCESS => {
                    let size = model.blocks.get(&request.id).map(|&(_, size)| size);
                    assert!(size.is_some(), "{what}: read a block the model does not know");
                    assert_eq!(reply.len(), request.length as usize, "{what}");
                    assert!(reply.iter().all(|&byte| byte == 0), "{what}: a block reads {reply:02x?}, not zeros");
                }
                Some(request) if !model.blocks.contains_key(&request.id) => {
                    assert_eq!(status::name(status), status::name(status::NOT_FOUND), "{what}");
                }
                _ => assert!(status != status::SUCCESS || request.is_some(), "{what}: a malformed read succeeded"),
            }
        }
        IOCTL_NTPOOL_QUERY_ALLOCATIONS if status == status::SUCCESS => {
            let header = reply
                .get(..8)
                .and_then(AllocationsHeader::from_bytes)
                .unwrap_or_else(|| panic!("{what}: reply {reply:02x?}"));
            assert_eq!(header.outstanding as usize, model.blocks.len(), "{what}");
            assert_eq!(reply.len(), 8 + 24 * header.returned as usize, "{what}");
            let listed: Vec<(u64, (u32, u32))> = reply[8..]
                .chunks(24)
                .map(|entry| AllocationInfo::from_bytes(entry).expect("24 bytes"))
                .inspect(|entry| assert_eq!(entry.reserved, 0, "{what}"))
                .map(|entry| (entry.id, (entry.pool, entry.size)))
                .collect();
            let known: Vec<(u64, (u32, u32))> =
                model.blocks.iter().take(header.returned as usize).map(|(&id, &block)| (id, block)).collect();
            assert_eq!(listed, known, "{what}: the list, in id order");
        }
        IOCTL_NTPOOL_QUERY_STATISTICS if status == status::SUCCESS => {
            let statistics = Statistics::from_bytes(reply).unwrap_or_else(|| panic!("{what}: reply {reply:02x?}"));
            assert_eq!(statistics.outstanding, model.blocks.len() as u64, "{what}");
            assert_eq!(statistics.paged_bytes, model.bytes(POOL_PAGED), "{what}");
            assert_eq!(statistics.non_paged_bytes, model.bytes(POOL_NON_PAGED), "{what}");
        }
        _ => {}
    }
}
