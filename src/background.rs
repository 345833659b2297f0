//! `IOCTL_NTPOOL_RUN_BACKGROUND`: the driver's work in routines the kernel calls, each with the
//! token ntpool hands it.
//!
//! * A system thread sums a paged block at `PASSIVE_LEVEL` and is waited for.
//! * An IRP goes to the driver's own device; its completion routine (at up to `DISPATCH_LEVEL`)
//!   records what the device answered.
//! * A periodic timer's DPC frees, at `DISPATCH_LEVEL`, the non-paged blocks that have expired (block
//!   `i` at the timer's `i + 1`th expiry). Once the last one is gone it queues a work item through
//!   its [`WorkTrigger`], which reaches nothing of the work item's context: the paged blocks there
//!   are freed by the work item's routine, at `PASSIVE_LEVEL`. The DPC's context cannot hold paged
//!   memory (`DispatchSafe`), so no path frees paged memory at `DISPATCH_LEVEL`.

use core::mem::size_of;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use ntpool::{
    Device, Dispatch, DispatchSafe, FastMutex, Irp, NonPagedBox, PagedBox, Passive, SpinLock, SystemThread, Timer,
    WorkItem, WorkTrigger,
};
use ntpool_protocol::{
    BACKGROUND_COMPLETION, BACKGROUND_EXPIRED, BACKGROUND_RECLAIMED, BACKGROUND_THREAD_SUM, BackgroundReply,
    IOCTL_NTPOOL_RUN_BACKGROUND, status,
};

use crate::device::{BackgroundTag, DeviceState};
use crate::dispatch::reply;
use crate::kernel::NTSTATUS;

ntpool::pool_tag! {
    /// The non-paged blocks the timer's DPC frees as they expire, and the timer itself.
    pub struct ExpiryTag = b"NpEx";
}
ntpool::pool_tag! {
    /// The paged blocks the work item frees, its mutex and the work item itself.
    pub struct ReclaimTag = b"NpRc";
}

/// The timer's period, and how long the request waits for the routines at most.
const PERIOD: Duration = Duration::from_millis(1);
const PATIENCE: Duration = Duration::from_secs(5);
/// How many blocks expire, and how many paged blocks the work item frees.
const EXPIRING: usize = BACKGROUND_EXPIRED as usize;
const RECLAIMED: usize = BACKGROUND_RECLAIMED as usize;

/// `IRP_MJ_INTERNAL_DEVICE_CONTROL`: the requests the driver sends to its own device
/// (`IOCTL_NTPOOL_RUN_BACKGROUND`), which no user can send. Such a request may come at up to
/// `DISPATCH_LEVEL` (the device is the top of its stack for users, not for kernel senders), so the
/// routine gets an [`AnyIrql`](ntpool::AnyIrql); it needs no token at all.
pub struct Internal;

impl ntpool::AnyIrqlDispatch for Internal {
    fn dispatch(_device: Device<'_>, irp: Irp<'_>, _irql: &mut ntpool::AnyIrql) -> NTSTATUS {
        irp.complete(status::SUCCESS, BACKGROUND_COMPLETION as usize)
    }
}

/// Serves `IOCTL_NTPOOL_RUN_BACKGROUND` into `output`.
pub fn run(
    state: &DeviceState,
    device: Device<'_>,
    passive: &mut Passive,
    output: &mut [u8],
) -> Result<usize, NTSTATUS> {
    if output.len() < size_of::<BackgroundReply>() {
        return Err(status::BUFFER_TOO_SMALL);
    }
    let thread_sum = sum_on_a_system_thread(passive)?;
    // SAFETY: the driver's own device, which outlives the request (the device's state waits for it).
    let sent = unsafe { state.internal.send_ioctl(passive, device.as_ptr(), IOCTL_NTPOOL_RUN_BACKGROUND, true) };
    if sent < 0 {
        return Err(sent);
    }
    // The device completes it at once; the completion routine has run when IofCallDriver returns.
    let completion = state.internal.context().load(Ordering::Acquire);
    let (expired, reclaimed) = expire_and_reclaim(device, passive)?;
    reply(&BackgroundReply { thread_sum, completion, expired, reclaimed }, output)
}

/// A system thread sums a paged block at `PASSIVE_LEVEL`; its sum, once it has finished.
fn sum_on_a_system_thread(passive: &mut Passive) -> Result<u64, NTSTATUS> {
    let thread = SystemThread::<AtomicU64, BackgroundTag>::try_new(passive, AtomicU64::new(0), |passive, sum| {
        // PASSIVE_LEVEL: a paged block, allocated, read and freed on the thread.
        if let Ok(block) = PagedBox::<[u64], BackgroundTag>::try_from_fn(passive, 64, |i| i as u64) {
            sum.store(block.get(passive).iter().sum(), Ordering::Release);
        }
    })
    .map_err(|_| status::INSUFFICIENT_RESOURCES)?;
    thread.wait(passive);
    let sum = thread.context(passive).load(Ordering::Acquire);
    if sum != BACKGROUND_THREAD_SUM {
        return Err(status::INSUFFICIENT_RESOURCES);
    }
    Ok(sum)
}

/// A paged block the work item frees.
type PagedBlock = PagedBox<[u8], ReclaimTag>;
/// A non-paged block the timer's DPC frees.
type ExpiringBlock = NonPagedBox<[u8], ExpiryTag>;

/// The work item's context: paged blocks, behind a fast mutex, and how many it freed.
struct Reclaim {
    blocks: FastMutex<[Option<PagedBlock>; RECLAIMED], ReclaimTag>,
    freed: AtomicU64,
}

/// The work item's routine, at `PASSIVE_LEVEL`: frees the paged blocks.
fn reclaim(passive: &mut Passive, reclaim: &Reclaim) {
    // APC_LEVEL inside the fast mutex: paged memory may be freed.
    let freed = reclaim.blocks.lock(passive, |_apc, blocks| blocks.iter_mut().filter_map(Option::take).count());
    reclaim.freed.fetch_add(freed as u64, Ordering::AcqRel);
}

/// The timer's context: the non-paged blocks that expire, the timer's expiries so far, how many
/// blocks the DPC freed, and the trigger of the work item that frees the paged ones.
#[derive(DispatchSafe)]
struct Expiry<'w> {
    blocks: SpinLock<[Option<ExpiringBlock>; EXPIRING]>,
    expiries: AtomicU64,
    freed: AtomicU64,
    reclaim: WorkTrigger<'w>,
}

/// The timer's DPC routine, at `DISPATCH_LEVEL`: frees the blocks that have expired (block `i` at
/// expiry `i + 1`), and queues the work item once the last one is gone.
fn expire(dispatch: &mut Dispatch, expiry: &Expiry<'_>) {
    let now = expiry.expiries.fetch_add(1, Ordering::AcqRel) + 1;
    let freed = expiry.blocks.with(dispatch, now, |_dispatch, blocks, now| {
        let expired = blocks.iter_mut().take(usize::try_from(now).unwrap_or(usize::MAX));
        // Dropped here, at DISPATCH_LEVEL: non-paged memory.
        expired.filter_map(Option::take).count() as u64
    });
    if freed > 0 && expiry.freed.fetch_add(freed, Ordering::AcqRel) + freed == BACKGROUND_EXPIRED {
        expiry.reclaim.queue(dispatch);
    }
}

/// Arms a periodic timer over [`EXPIRING`] non-paged blocks and a work item over [`RECLAIMED`]
/// paged ones, waits (at most [`PATIENCE`]) until the work item has freed them, and returns what the
/// DPC and the work item freed. Whatever they did not free, the drops free here at `PASSIVE_LEVEL`:
/// the timer's drop cancels it and waits for its DPC, the work item's waits for its routine.
fn expire_and_reclaim(device: Device<'_>, passive: &mut Passive) -> Result<(u64, u64), NTSTATUS> {
    let blocks = all_or_none(|| PagedBlock::try_from_fn(passive, 256, |i| i as u8).ok())?;
    let blocks = FastMutex::try_new(passive, blocks).map_err(|_| status::INSUFFICIENT_RESOURCES)?;
    let context = Reclaim { blocks, freed: AtomicU64::new(0) };
    // SAFETY: the driver's own device object, which outlives the request and so the work item.
    let work = unsafe { WorkItem::<Reclaim, ReclaimTag>::try_new(passive, device.as_ptr(), context, reclaim) };
    let work = work.map_err(|_| status::INSUFFICIENT_RESOURCES)?;
    let blocks = all_or_none(|| ExpiringBlock::try_from_fn(passive, 64, |i| i as u8).ok())?;
    let blocks = SpinLock::new(blocks);
    let expiry = Expiry { blocks, expiries: AtomicU64::new(0), freed: AtomicU64::new(0), reclaim: work.trigger() };
    let timer = Timer::<Expiry<'_>, ExpiryTag>::try_new(passive, expiry, expire);
    let timer = timer.map_err(|_| status::INSUFFICIENT_RESOURCES)?;
    timer.set_periodic(passive, PERIOD, PERIOD);
    let mut waited = Duration::ZERO;
    while waited < PATIENCE && work.context(passive).freed.load(Ordering::Acquire) < BACKGROUND_RECLAIMED {
        ntpool::delay(passive, PERIOD);
        waited += PERIOD;
    }
    let expired = timer.context().freed.load(Ordering::Acquire);
    drop(timer);
    let reclaimed = work.context(passive).freed.load(Ordering::Acquire);
    Ok((expired, reclaimed))
}

/// `N` values made by `new`, or `STATUS_INSUFFICIENT_RESOURCES` (and none of them) if one could not
/// be made.
fn all_or_none<T, const N: usize>(mut new: impl FnMut() -> Option<T>) -> Result<[Option<T>; N], NTSTATUS> {
    let values: [Option<T>; N] = core::array::from_fn(|_| new());
    if values.iter().any(Option::is_none) {
        return Err(status::INSUFFICIENT_RESOURCES);
    }
    Ok(values)
}
