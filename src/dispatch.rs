//! The driver's dispatch routines: `IRP_MJ_CREATE`, `IRP_MJ_CLOSE` (which frees the blocks of the
//! handle being closed), and `IRP_MJ_DEVICE_CONTROL` with the IOCTLs of [`ntpool_protocol`], every
//! input checked before it is used.

use core::mem::size_of;

use ntpool::{Alloc, Apc, Device, Irp, NonPagedBox, PagedBox, Passive, PoolTag};
use ntpool_protocol::{
    AllocateReply, AllocateRequest, AllocationInfo, AllocationsHeader, FreeRequest, IOCTL_NTPOOL_ALLOCATE,
    IOCTL_NTPOOL_FREE, IOCTL_NTPOOL_QUERY_ALLOCATIONS, IOCTL_NTPOOL_QUERY_STATISTICS, IOCTL_NTPOOL_READ,
    IOCTL_NTPOOL_RUN_BACKGROUND, MAX_ALLOCATIONS, MAX_HANDLE_ALLOCATIONS, MAX_HANDLE_NON_PAGED_BYTES,
    MAX_HANDLE_PAGED_BYTES, MAX_NON_PAGED_BYTES, MAX_PAGED_BYTES, MAX_SIZE, POOL_CHARGE_QUOTA, POOL_NON_PAGED,
    POOL_PAGED, ReadRequest, Statistics, Wire, status,
};

use crate::device::{self, Block, DeviceState, Entry, LogEntry, Table};
use crate::kernel::NTSTATUS;

/// The longest input any IOCTL takes.
const MAX_INPUT: usize = 16;

/// `IRP_MJ_CREATE`: nothing to do; access was checked by the I/O manager against the device's DACL.
pub struct Create;

impl ntpool::PassiveDispatch for Create {
    fn dispatch(_device: Device<'_>, irp: Irp<'_>, _passive: &mut Passive) -> NTSTATUS {
        irp.complete(status::SUCCESS, 0)
    }
}

/// `IRP_MJ_CLOSE`, at `PASSIVE_LEVEL`: the last reference to a file object is gone, so the blocks
/// allocated through it are freed (a client that exits or crashes leaves nothing behind) and its
/// share of the limits is released.
pub struct Close;

impl ntpool::PassiveDispatch for Close {
    fn dispatch(device: Device<'_>, irp: Irp<'_>, passive: &mut Passive) -> NTSTATUS {
        // SAFETY: the I/O manager set up our stack location of the IRP.
        let owner = unsafe { (*irp.stack_location()).FileObject } as usize;
        // SAFETY: the I/O manager passes our device.
        let state = unsafe { device::state(device.as_ptr()) };
        release_owner(state, passive, owner);
        irp.complete(status::SUCCESS, 0)
    }
}

/// Frees every block of `owner` and takes them off the counters.
fn release_owner(state: &DeviceState, passive: &mut Passive, owner: usize) {
    state.table.lock(passive, |apc, table| {
        let mut released = Statistics::default();
        for slot in table.entries.iter_mut() {
            if slot.as_ref().is_some_and(|entry| entry.owner == owner) {
                if let Some(entry) = slot.take() {
                    released.frees += 1;
                    *pool_bytes(&mut released, entry.block.pool()) += entry.block.bytes(apc).len() as u64;
                    // Dropped here, at APC_LEVEL: paged memory may be freed.
                    drop(entry);
                }
            }
        }
        count_freed(state, apc, released);
    });
}

/// Takes blocks that left the table off the counters (`released`: how many, and their bytes per
/// pool). Called with the table locked, so that the counters change with the table: a request on
/// another thread never frees a block the counters do not show yet.
fn count_freed(state: &DeviceState, apc: &mut Apc, released: Statistics) {
    state.stats.with(apc, device::Counters(released), |_dispatch, stats, released| {
        stats.frees += released.frees;
        stats.outstanding -= released.frees;
        stats.non_paged_bytes -= released.non_paged_bytes;
        stats.paged_bytes -= released.paged_bytes;
    });
}

/// Adds a block of `size` bytes in `pool` to the counters, with the table locked (see [`count_freed`]).
fn count_allocated(state: &DeviceState, apc: &mut Apc, pool: u32, size: u64) {
    state.stats.with(apc, (pool, size), |_dispatch, stats, (pool, size)| {
        stats.allocations += 1;
        stats.outstanding += 1;
        *pool_bytes(stats, pool) += size;
    });
}

/// `IRP_MJ_DEVICE_CONTROL`, at `PASSIVE_LEVEL` (the driver is the top of its stack), with a
/// `METHOD_BUFFERED` IRP.
pub struct DeviceControl;

impl ntpool::PassiveDispatch for DeviceControl {
    fn dispatch(device: Device<'_>, irp: Irp<'_>, passive: &mut Passive) -> NTSTATUS {
        // SAFETY: the I/O manager set up our stack location of the IRP.
        let stack = unsafe { &*irp.stack_location() };
        let parameters = &stack.Parameters.DeviceIoControl;
        // The handle's file object identifies the client.
        let owner = stack.FileObject as usize;
        let (code, input_length, output_length) =
            (parameters.IoControlCode, parameters.InputBufferLength as usize, parameters.OutputBufferLength as usize);
        // SAFETY: a valid IRP being dispatched to us.
        let associated = unsafe { &(*irp.as_ptr()).AssociatedIrp };
        // SAFETY: for METHOD_BUFFERED the union holds the system buffer, of max(input, output) bytes
        // (null when both are 0).
        let buffer = unsafe { associated.SystemBuffer }.cast::<u8>();
        // The input is copied out first: the reply overwrites the same buffer.
        let mut input = [0u8; MAX_INPUT];
        if !buffer.is_null() && input_length <= MAX_INPUT {
            // SAFETY: the buffer holds at least `input_length` bytes.
            unsafe { core::ptr::copy_nonoverlapping(buffer, input.as_mut_ptr(), input_length) };
        }
        let output: &mut [u8] = if buffer.is_null() || output_length == 0 {
            &mut []
        } else {
            // SAFETY: the buffer holds at least `output_length` bytes, and nothing else uses it now.
            unsafe { core::slice::from_raw_parts_mut(buffer, output_length) }
        };
        let request = Request { code, input: &input[..input_length.min(MAX_INPUT)], input_length, owner };
        // SAFETY: the I/O manager passes our device, which outlives every request sent to it (the state
        // is used as `'static` only while the request is served).
        let state = unsafe { device::state(device.as_ptr()) };
        let served = if code == IOCTL_NTPOOL_RUN_BACKGROUND {
            crate::background::run(state, device, passive, output)
        } else {
            handle(state, passive, &request, output)
        };
        let (status, information) = match served {
            Ok(information) => (status::SUCCESS, information),
            Err(status) => (status, 0),
        };
        account(state, passive, code, status);
        irp.complete(status, information)
    }
}

/// One device-control request, its input already copied out of the system buffer.
pub struct Request<'a> {
    /// The IOCTL code.
    pub code: u32,
    /// The input (its first [`MAX_INPUT`] bytes).
    pub input: &'a [u8],
    /// The input's real length.
    pub input_length: usize,
    /// The file object the request came through: the client, for the per-handle limits and the
    /// blocks it may reach.
    pub owner: usize,
}

impl Request<'_> {
    /// The input as a `T`, if it has exactly `T`'s size.
    fn parse<T: Wire>(&self) -> Result<T, NTSTATUS> {
        if self.input_length != size_of::<T>() {
            return Err(status::INFO_LENGTH_MISMATCH);
        }
        T::from_bytes(self.input).ok_or(status::INFO_LENGTH_MISMATCH)
    }
}

/// Serves one request: the bytes of output, or the failure status. Never panics; every input is
/// checked.
pub fn handle(
    state: &DeviceState,
    passive: &mut Passive,
    request: &Request<'_>,
    output: &mut [u8],
) -> Result<usize, NTSTATUS> {
    match request.code {
        IOCTL_NTPOOL_ALLOCATE => allocate(state, passive, request, output),
        IOCTL_NTPOOL_FREE => free(state, passive, request),
        IOCTL_NTPOOL_READ => read(state, passive, request, output),
        IOCTL_NTPOOL_QUERY_ALLOCATIONS => query_allocations(state, passive, request.owner, output),
        IOCTL_NTPOOL_QUERY_STATISTICS => query_statistics(state, passive, output),
        _ => Err(status::INVALID_DEVICE_REQUEST),
    }
}

pub(crate) fn reply<T: Wire>(value: &T, output: &mut [u8]) -> Result<usize, NTSTATUS> {
    let bytes = value.as_bytes();
    let target = output.get_mut(..bytes.len()).ok_or(status::BUFFER_TOO_SMALL)?;
    target.copy_from_slice(bytes);
    Ok(bytes.len())
}

fn allocate(
    state: &DeviceState,
    passive: &mut Passive,
    request: &Request<'_>,
    output: &mut [u8],
) -> Result<usize, NTSTATUS> {
    let checked = (|| {
        let input = request.parse::<AllocateRequest>()?;
        if output.len() < size_of::<AllocateReply>() {
            return Err(status::BUFFER_TOO_SMALL);
        }
        if input.reserved != 0 {
            return Err(status::INVALID_PARAMETER_4);
        }
        let pool = input.pool & !POOL_CHARGE_QUOTA;
        if pool != POOL_NON_PAGED && pool != POOL_PAGED {
            return Err(status::INVALID_PARAMETER_1);
        }
        let tag = PoolTag::from_raw(input.tag).map_err(|_| status::INVALID_PARAMETER_2)?;
        if input.size == 0 || input.size > MAX_SIZE {
            return Err(status::INVALID_PARAMETER_3);
        }
        Ok((AllocateRequest { pool, ..input }, tag, input.pool & POOL_CHARGE_QUOTA != 0))
    })();
    let (input, tag, quota) = checked?;
    let size = u64::from(input.size);
    let owner = request.owner;
    let added = state.table.lock(passive, |apc, table| {
        let driver = (MAX_ALLOCATIONS, MAX_NON_PAGED_BYTES, MAX_PAGED_BYTES);
        let handle = (MAX_HANDLE_ALLOCATIONS, MAX_HANDLE_NON_PAGED_BYTES, MAX_HANDLE_PAGED_BYTES);
        if !fits(usage(table, apc, None), driver, input.pool, size)
            || !fits(usage(table, apc, Some(owner)), handle, input.pool, size)
        {
            return Err(status::QUOTA_EXCEEDED);
        }
        let slot = table.entries.iter().position(Option::is_none).ok_or(status::QUOTA_EXCEEDED)?;
        let block =
            new_block(apc, input.pool, tag, input.size as usize, quota).ok_or(status::INSUFFICIENT_RESOURCES)?;
        let id = table.next_id;
        table.next_id += 1;
        table.entries[slot] = Some(Entry { id, tag, owner, block });
        count_allocated(state, apc, input.pool, size);
        Ok(id)
    });
    added.and_then(|id| reply(&AllocateReply { id }, output))
}

/// A zeroed block of `size` bytes: no uninitialized pool ever reaches user mode. With `quota`, it is
/// charged to the current process: the client's, since a top-level driver's device control runs in
/// the context of the thread that sent the request.
fn new_block(apc: &Apc, pool: u32, tag: PoolTag, size: usize, quota: bool) -> Option<Block> {
    let alloc = Alloc::with_tag(tag).quota_if(quota);
    Some(if pool == POOL_PAGED {
        Block::Paged(PagedBox::try_alloc_zeroed_slice(apc, alloc, size).ok()?)
    } else {
        Block::NonPaged(NonPagedBox::try_alloc_zeroed_slice(apc, alloc, size).ok()?)
    })
}

/// Blocks outstanding (of `owner`, or of everyone), and bytes of non-paged and of paged pool they
/// hold.
/// Whether one more block of `size` bytes in `pool` stays within `limits` (blocks, non-paged bytes,
/// paged bytes), given what is in use (the same three, from [`usage`]).
fn fits(in_use: (usize, u64, u64), limits: (u32, u64, u64), pool: u32, size: u64) -> bool {
    let (count, non_paged, paged) = in_use;
    let (max_count, max_non_paged, max_paged) = limits;
    let bytes_fit = if pool == POOL_PAGED { paged + size <= max_paged } else { non_paged + size <= max_non_paged };
    count < max_count as usize && bytes_fit
}

fn usage(table: &Table, apc: &Apc, owner: Option<usize>) -> (usize, u64, u64) {
    let mut usage = (0, 0, 0);
    for entry in table.entries.iter().flatten().filter(|entry| owner.is_none_or(|owner| entry.owner == owner)) {
        usage.0 += 1;
        let bytes = entry.block.bytes(apc).len() as u64;
        if entry.block.pool() == POOL_PAGED {
            usage.2 += bytes;
        } else {
            usage.1 += bytes;
        }
    }
    usage
}

fn free(state: &DeviceState, passive: &mut Passive, request: &Request<'_>) -> Result<usize, NTSTATUS> {
    let input = request.parse::<FreeRequest>()?;
    state.table.lock(passive, |apc, table| {
        let slot = table
            .entries
            .iter_mut()
            .find(|slot| slot.as_ref().is_some_and(|entry| entry.id == input.id && entry.owner == request.owner));
        let entry = slot.and_then(Option::take).ok_or(status::NOT_FOUND)?;
        let mut released = Statistics { frees: 1, ..Statistics::default() };
        *pool_bytes(&mut released, entry.block.pool()) += entry.block.bytes(apc).len() as u64;
        // Dropped here, at APC_LEVEL: paged memory may be freed.
        drop(entry);
        count_freed(state, apc, released);
        Ok(0)
    })
}

fn read(
    state: &DeviceState,
    passive: &mut Passive,
    request: &Request<'_>,
    output: &mut [u8],
) -> Result<usize, NTSTATUS> {
    let input = request.parse::<ReadRequest>()?;
    state.table.lock(passive, |apc, table| {
        let entry = table
            .entries
            .iter()
            .flatten()
            .find(|entry| entry.id == input.id && entry.owner == request.owner)
            .ok_or(status::NOT_FOUND)?;
        let bytes = entry.block.bytes(apc);
        let offset = input.offset as usize;
        let rest = bytes.get(offset..).ok_or(status::INVALID_PARAMETER_2)?;
        let wanted = rest.get(..input.length as usize).ok_or(status::INVALID_PARAMETER_3)?;
        let target = output.get_mut(..wanted.len()).ok_or(status::BUFFER_TOO_SMALL)?;
        target.copy_from_slice(wanted);
        Ok(wanted.len())
    })
}

fn query_allocations(
    state: &DeviceState,
    passive: &mut Passive,
    owner: usize,
    output: &mut [u8],
) -> Result<usize, NTSTATUS> {
    if output.len() < size_of::<AllocationsHeader>() {
        return Err(status::BUFFER_TOO_SMALL);
    }
    state.table.lock(passive, |apc, table| {
        let mut order = [(0u64, 0usize); MAX_ALLOCATIONS as usize];
        let mut count = 0;
        for (index, entry) in table.entries.iter().enumerate() {
            if let Some(entry) = entry.as_ref().filter(|entry| entry.owner == owner) {
                order[count] = (entry.id, index);
                count += 1;
            }
        }
        let order = &mut order[..count];
        order.sort_unstable();
        let room = (output.len() - size_of::<AllocationsHeader>()) / size_of::<AllocationInfo>();
        let returned = count.min(room);
        let mut written = reply(&AllocationsHeader { outstanding: count as u32, returned: returned as u32 }, output)?;
        for &(id, index) in &order[..returned] {
            let Some(entry) = &table.entries[index] else { continue };
            let (pool, size) = (entry.block.pool(), entry.block.bytes(apc).len());
            let info = AllocationInfo { id, pool, tag: entry.tag.to_ulong(), size: size as u32, reserved: 0 };
            written += reply(&info, &mut output[written..])?;
        }
        Ok(written)
    })
}

fn query_statistics(state: &DeviceState, passive: &mut Passive, output: &mut [u8]) -> Result<usize, NTSTATUS> {
    let statistics = state.stats.with(passive, (), |_dispatch, counters, ()| counters.0);
    reply(&statistics, output)
}

/// Counts the request and logs it. The log entry comes from the device's non-paged lookaside list at
/// `PASSIVE_LEVEL`; inside the spin-locked region it displaces the oldest one, which goes back to the
/// list there, at `DISPATCH_LEVEL`. (The entries borrow the list, which lives in the device extension
/// as long as the device: hence `'static`.)
fn account(state: &'static DeviceState, passive: &mut Passive, code: u32, status: NTSTATUS) {
    state.stats.with(passive, status, |_dispatch, stats, status| {
        stats.requests += 1;
        match status {
            status::SUCCESS => {}
            status::INSUFFICIENT_RESOURCES => stats.failures += 1,
            _ => stats.rejected += 1,
        }
    });
    // A log entry that cannot be allocated is simply not logged.
    if let Ok(entry) = state.log_entries.try_alloc(passive, LogEntry { code, status }) {
        state.log.with(passive, entry, |_dispatch, log, entry| {
            let next = log.next % log.entries.len();
            // The displaced entry (if any) is dropped here, at DISPATCH_LEVEL.
            log.entries[next] = Some(entry);
            log.next = next + 1;
        });
    }
}

/// The counter of bytes outstanding in `pool`.
fn pool_bytes(stats: &mut Statistics, pool: u32) -> &mut u64 {
    if pool == POOL_PAGED { &mut stats.paged_bytes } else { &mut stats.non_paged_bytes }
}
