//! Running one input: the kernel configured by its [`Setup`], the driver loaded, every operation
//! sent through the host I/O manager and its answer checked against the model of the driver's rules
//! (`ntpool_protocol::model`), the kernel's blocks and quota charges compared with the model's, and
//! the driver unloaded with nothing leaked.

use std::sync::OnceLock;

use ntpool::emulated::{Kernel, PoolKind, in_process};
use ntpool_driver::host::{self, Handle, LoadedDriver};
use ntpool_protocol::model::{Model, Prediction, Sender};
use ntpool_protocol::{AllocateReply, IOCTL_NTPOOL_ALLOCATE, IOCTL_NTPOOL_FREE, POOL_PAGED, Wire, status};

use crate::decoding::decode;
use crate::input::{MAX_HANDLES, Op, PROCESSES, Setup};
use crate::resolve::{Sizes, resolve};

fn tracing() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("NTPOOL_FUZZ_TRACE").is_some())
}

/// Runs one input: panics on any failure (see the crate's documentation).
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
        let mut load = Load { model: Model::new().with_process_quota(quota), sizes: Sizes::default(), faults };
        let done = serve(kernel, &driver, &mut load, &mut ids, rest);
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

/// What the harness knows of one load of the driver.
struct Load {
    /// The driver's state, as its rules make it.
    model: Model,
    /// The blocks handed out since it loaded, for references.
    sizes: Sizes,
    /// Whether the kernel injects allocation failures (which the model does not predict).
    faults: bool,
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
    load: &mut Load,
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
            load.model.close(closed.serial);
            if tracing() {
                eprintln!("close handle {}", closed.serial);
            }
            check_kernel(kernel, &load.model, "IRP_MJ_CLOSE");
            continue;
        }
        let client = &handles[which];
        let (code, input, output) = resolve(&load.model, &load.sizes, ids, client.serial, op);
        let (status, reply) = in_process(client.process, || client.handle.device_control(code, &input, output));
        let what = format!("handle {} IOCTL {code:#010x} input {input:02x?} output {output}", client.serial);
        if tracing() {
            eprintln!("{what}: {} {reply:02x?}", status::name(status));
        }
        check(load, ids, client, &Sent { code, input, output, status, reply }, &what);
        // Requests that allocate or free a client's block; a leak elsewhere shows at the next one,
        // at a close, or at the unload.
        if code == IOCTL_NTPOOL_ALLOCATE || code == IOCTL_NTPOOL_FREE {
            check_kernel(kernel, &load.model, &what);
        }
    }
    None
}

/// One request sent through a handle, and the driver's answer.
struct Sent {
    code: u32,
    input: Vec<u8>,
    /// The output buffer's length.
    output: usize,
    status: i32,
    /// The bytes returned.
    reply: Vec<u8>,
}

/// Checks one answer against the model's prediction, and updates the model.
fn check(load: &mut Load, ids: &mut Vec<u64>, client: &Open<'_>, sent: &Sent, what: &str) {
    let Sent { code, ref input, output, status, ref reply } = *sent;
    let model = &mut load.model;
    let prediction = model.predict(Sender { handle: client.serial, process: client.process }, code, input, output);
    let name = status::name;
    match prediction {
        Prediction::Allocate(_) if status == status::INSUFFICIENT_RESOURCES && load.faults => {
            assert!(reply.is_empty(), "{what}: {} bytes of output with a failure", reply.len());
        }
        Prediction::Allocate(block) => {
            assert_eq!(name(status), name(status::SUCCESS), "{what}");
            let id = model.next_id();
            assert_eq!(reply, AllocateReply { id }.as_bytes(), "{what}: the reply (ids count up from 1)");
            model.apply(prediction);
            load.sizes.record(id, block.size);
            ids.push(id);
        }
        Prediction::Free(_) => {
            assert_eq!(name(status), name(status::SUCCESS), "{what}");
            assert!(reply.is_empty(), "{what}: output {reply:02x?}");
            model.apply(prediction);
        }
        Prediction::Reply(expected) => {
            assert_eq!(name(status), name(status::SUCCESS), "{what}");
            assert_eq!(reply, &expected[..], "{what}: the reply");
        }
        Prediction::Fail(expected) => {
            assert_eq!(name(status), name(expected), "{what}");
            assert!(reply.is_empty(), "{what}: {} bytes of output with a failure", reply.len());
        }
    }
    model.count(status);
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
    for block in model.blocks().values() {
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
