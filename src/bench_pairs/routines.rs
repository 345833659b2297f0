//! The pairs of the routines the kernel calls: a DPC queued and its routine (`dpc`), a work item
//! queued and its routine (`work_item`). Each routine counts its runs in its context.
//!
//! The kernel calls the routine through a pointer the side gave it (`KeInitializeDpc`,
//! `IoQueueWorkItem`), so each side exports the routines it hands the kernel as its `_indirect`
//! table, which its own code uses: on ntpool's side the routine ntpool gives the kernel
//! ([`Dpc::DEFERRED_ROUTINE`], [`WorkItem::WORKER_ROUTINE`]) and the driver's routine that one calls,
//! on the raw side the hand-written routine.

use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use ntpool::sys::{self, KDPC, PDEVICE_OBJECT, PIO_WORKITEM, PVOID};
use ntpool::{Dispatch, Dpc, Passive, WorkItem};

use super::{BENCH_TAG, BenchTag, raw_block};

/// The `dpc` pair's ntpool DPC: its context counts the routine's runs.
pub type BenchDpc = Dpc<AtomicU64, BenchTag>;

/// The `dpc` pair's ntpool routine, at `DISPATCH_LEVEL`: counts its runs.
fn count_dpc_runs(_dispatch: &mut Dispatch, runs: &AtomicU64) {
    runs.fetch_add(1, Ordering::Relaxed);
}

/// The routines of the `dpc` pair's ntpool side, exported as `ntpool_bench_dpc_ntpool_indirect`:
/// the one the kernel calls and the driver's, which that one calls through the DPC's block.
#[repr(C)]
pub struct NtpoolDpcRoutines {
    /// What [`BenchDpc`] gives `KeInitializeDpc`.
    pub deferred: sys::PKDEFERRED_ROUTINE,
    /// The driver's routine, which [`bench_dpc`] gives [`Dpc::try_new`].
    pub routine: fn(&mut Dispatch, &AtomicU64),
    /// The end of the table: null.
    pub end: Option<fn()>,
}

/// See [`NtpoolDpcRoutines`].
#[unsafe(export_name = "ntpool_bench_dpc_ntpool_indirect")]
pub static NTPOOL_DPC_ROUTINES: NtpoolDpcRoutines =
    NtpoolDpcRoutines { deferred: BenchDpc::DEFERRED_ROUTINE, routine: count_dpc_runs, end: None };

/// The `dpc` pair's ntpool DPC, its count at 0.
pub fn bench_dpc(passive: &mut Passive) -> Result<BenchDpc, ntpool::AllocError> {
    Dpc::try_new(passive, AtomicU64::new(0), NTPOOL_DPC_ROUTINES.routine)
}

/// A DPC queued through ntpool ([`Dpc::queue`]); its routine counts the run. True if it queued it.
#[unsafe(no_mangle)]
#[inline(never)]
pub fn ntpool_bench_dpc_ntpool(dpc: &BenchDpc) -> bool {
    dpc.queue()
}

/// The `dpc` pair's raw DPC: the `KDPC` and the count of its routine's runs, side by side in
/// non-paged pool (tag [`BenchTag`]), as a driver lays them out by hand.
#[repr(C)]
pub struct RawDpcObject {
    /// First: the object's address is the KDPC's.
    kdpc: UnsafeCell<KDPC>,
    runs: AtomicU64,
}

/// The `dpc` pair's raw routine, at `DISPATCH_LEVEL`: counts its runs.
///
/// # Safety
/// Called by the kernel with the context [`RawDpc::new`] gave `KeInitializeDpc`.
unsafe extern "system" fn raw_count_dpc_runs(_dpc: *mut KDPC, context: PVOID, _: PVOID, _: PVOID) {
    // SAFETY: the context is the live `RawDpcObject` (`RawDpc` flushes before freeing it).
    let object = unsafe { &*context.cast::<RawDpcObject>() };
    object.runs.fetch_add(1, Ordering::Relaxed);
}

/// The routine of the `dpc` pair's raw side, exported as `ntpool_bench_dpc_raw_indirect`.
#[repr(C)]
pub struct RawDpcRoutines {
    /// What [`RawDpc::new`] gives `KeInitializeDpc`.
    pub deferred: sys::PKDEFERRED_ROUTINE,
    /// The end of the table: null.
    pub end: Option<fn()>,
}

/// See [`RawDpcRoutines`].
#[unsafe(export_name = "ntpool_bench_dpc_raw_indirect")]
pub static RAW_DPC_ROUTINES: RawDpcRoutines = RawDpcRoutines { deferred: Some(raw_count_dpc_runs), end: None };

/// A [`RawDpcObject`] in its block, initialized; on drop taken off the queue, flushed and freed.
pub struct RawDpc(NonNull<RawDpcObject>);

impl RawDpc {
    /// Allocates and initializes the DPC; `None` when the pool refuses.
    ///
    /// # Safety
    /// Call at `PASSIVE_LEVEL`.
    pub unsafe fn new() -> Option<Self> {
        // SAFETY: the caller runs at PASSIVE_LEVEL.
        let object = unsafe { raw_block::<RawDpcObject>() }?;
        // SAFETY: a fresh, zeroed non-paged block (ExAllocatePool2 zeroes), 16-byte aligned, that
        // stays put until `drop` frees it; zeroed bytes are a valid KDPC and count; the KDPC is the
        // object's first field (`repr(C)`); the context is the object itself.
        unsafe { sys::KeInitializeDpc(object.as_ptr().cast(), RAW_DPC_ROUTINES.deferred, object.as_ptr().cast()) };
        Some(RawDpc(object))
    }

    /// The KDPC, for [`ntpool_bench_dpc_raw`]: the object's first field.
    pub fn as_ptr(&self) -> *mut KDPC {
        self.0.as_ptr().cast()
    }

    /// How many times the routine ran.
    pub fn runs(&self) -> u64 {
        // SAFETY: the live object.
        unsafe { &*self.0.as_ptr() }.runs.load(Ordering::Relaxed)
    }
}

impl Drop for RawDpc {
    fn drop(&mut self) {
        // SAFETY: an initialized KDPC.
        unsafe { sys::KeRemoveQueueDpc(self.as_ptr()) };
        // SAFETY: at PASSIVE_LEVEL (made and dropped there), where the flush may wait for a routine
        // that runs.
        unsafe { sys::KeFlushQueuedDpcs() };
        // SAFETY: allocated in `new` with this tag; no routine can run any more.
        unsafe { sys::ExFreePoolWithTag(self.0.as_ptr().cast(), BENCH_TAG) };
    }
}

/// A DPC queued by hand: `KeInsertQueueDpc` with no arguments. True if it queued it.
///
/// # Safety
/// `dpc` is the KDPC of a live [`RawDpc`].
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe fn ntpool_bench_dpc_raw(dpc: *mut KDPC) -> bool {
    let null = core::ptr::null_mut();
    // SAFETY: an initialized KDPC whose context outlives it (the caller's `RawDpc`).
    unsafe { sys::KeInsertQueueDpc(dpc, null, null) != 0 }
}

/// The `work_item` pair's ntpool work item: its context counts the routine's runs.
pub type BenchWorkItem = WorkItem<AtomicU64, BenchTag>;

/// The `work_item` pair's ntpool routine, at `PASSIVE_LEVEL`: counts its runs.
fn count_work_item_runs(_passive: &mut Passive, runs: &AtomicU64) {
    runs.fetch_add(1, Ordering::Relaxed);
}

/// The routines of the `work_item` pair's ntpool side, exported as
/// `ntpool_bench_work_item_ntpool_indirect`: the one the kernel calls and the driver's.
#[repr(C)]
pub struct NtpoolWorkItemRoutines {
    /// What [`BenchWorkItem`] gives `IoQueueWorkItem`.
    pub worker: sys::PIO_WORKITEM_ROUTINE,
    /// The driver's routine, which [`bench_work_item`] gives [`WorkItem::try_new`].
    pub routine: fn(&mut Passive, &AtomicU64),
    /// The end of the table: null.
    pub end: Option<fn()>,
}

/// See [`NtpoolWorkItemRoutines`].
#[unsafe(export_name = "ntpool_bench_work_item_ntpool_indirect")]
pub static NTPOOL_WORK_ITEM_ROUTINES: NtpoolWorkItemRoutines =
    NtpoolWorkItemRoutines { worker: BenchWorkItem::WORKER_ROUTINE, routine: count_work_item_runs, end: None };

/// The `work_item` pair's ntpool work item for `device`, its count at 0.
///
/// # Safety
/// `device` is a device object of the calling driver, which outlives the work item.
pub unsafe fn bench_work_item(passive: &Passive, device: PDEVICE_OBJECT) -> Result<BenchWorkItem, ntpool::AllocError> {
    // SAFETY: the caller's device object.
    unsafe { WorkItem::try_new(passive, device, AtomicU64::new(0), NTPOOL_WORK_ITEM_ROUTINES.routine) }
}

/// A work item queued through ntpool ([`WorkItem::queue`]); its routine counts the run. True if it
/// queued it (false while it is queued and has not started).
#[unsafe(no_mangle)]
#[inline(never)]
pub fn ntpool_bench_work_item_ntpool(passive: Passive, work: &BenchWorkItem) -> bool {
    work.queue(&passive)
}

/// The `work_item` pair's raw work item, with what a driver needs to queue it safely by hand: the
/// `IO_WORKITEM`, a flag that keeps it from being queued twice (a bug check), a count of routines
/// running (for the drop to wait for), and the count of runs; in non-paged pool (tag [`BenchTag`]).
#[repr(C)]
pub struct RawWorkObject {
    item: PIO_WORKITEM,
    queued: AtomicBool,
    running: AtomicU32,
    runs: AtomicU64,
}

/// The `work_item` pair's raw routine, at `PASSIVE_LEVEL`: counts its runs, with the flags kept as
/// ntpool's routine keeps them.
///
/// # Safety
/// Called by the I/O manager with the context [`ntpool_bench_work_item_raw`] queued it with.
unsafe extern "system" fn raw_count_work_item_runs(_device: PDEVICE_OBJECT, context: PVOID) {
    // SAFETY: the context is the live `RawWorkObject` (`RawWorkItem` waits for the routine before
    // freeing it).
    let object = unsafe { &*context.cast::<RawWorkObject>() };
    object.running.fetch_add(1, Ordering::SeqCst);
    object.queued.store(false, Ordering::SeqCst);
    object.runs.fetch_add(1, Ordering::Relaxed);
    object.running.fetch_sub(1, Ordering::SeqCst);
}

/// The routine of the `work_item` pair's raw side, exported as `ntpool_bench_work_item_raw_indirect`.
#[repr(C)]
pub struct RawWorkItemRoutines {
    /// What [`ntpool_bench_work_item_raw`] gives `IoQueueWorkItem`.
    pub worker: sys::PIO_WORKITEM_ROUTINE,
    /// The end of the table: null.
    pub end: Option<fn()>,
}

/// See [`RawWorkItemRoutines`].
#[unsafe(export_name = "ntpool_bench_work_item_raw_indirect")]
pub static RAW_WORK_ITEM_ROUTINES: RawWorkItemRoutines =
    RawWorkItemRoutines { worker: Some(raw_count_work_item_runs), end: None };

/// A [`RawWorkObject`] in its block with its `IO_WORKITEM`; on drop, once neither queued nor
/// running, the work item and the block are freed.
pub struct RawWorkItem(NonNull<RawWorkObject>);

impl RawWorkItem {
    /// Allocates the work item for `device` and its block; `None` when either is refused.
    ///
    /// # Safety
    /// Call at `PASSIVE_LEVEL`; `device` is a device object of the calling driver, which outlives
    /// the work item.
    pub unsafe fn new(device: PDEVICE_OBJECT) -> Option<Self> {
        // SAFETY: the caller's device object, at PASSIVE_LEVEL.
        let item = unsafe { sys::IoAllocateWorkItem(device) };
        if item.is_null() {
            return None;
        }
        // SAFETY: the caller runs at PASSIVE_LEVEL.
        let Some(object) = (unsafe { raw_block::<RawWorkObject>() }) else {
            // SAFETY: allocated above, never queued.
            unsafe { sys::IoFreeWorkItem(item) };
            return None;
        };
        let fields =
            RawWorkObject { item, queued: AtomicBool::new(false), running: AtomicU32::new(0), runs: AtomicU64::new(0) };
        // SAFETY: a fresh non-paged block of the object's size, 16-byte aligned.
        unsafe { object.as_ptr().write(fields) };
        Some(RawWorkItem(object))
    }

    /// The object, for [`ntpool_bench_work_item_raw`].
    pub fn as_ptr(&self) -> *const RawWorkObject {
        self.0.as_ptr()
    }

    /// How many times the routine ran.
    pub fn runs(&self) -> u64 {
        // SAFETY: the live object.
        unsafe { self.0.as_ref() }.runs.load(Ordering::Relaxed)
    }
}

impl Drop for RawWorkItem {
    fn drop(&mut self) {
        // SAFETY: the live object.
        let object = unsafe { self.0.as_ref() };
        while object.queued.load(Ordering::SeqCst) || object.running.load(Ordering::SeqCst) != 0 {
            let mut interval = sys::LARGE_INTEGER { QuadPart: -10_000 };
            // SAFETY: below DISPATCH_LEVEL (made and dropped at PASSIVE_LEVEL), a valid interval.
            unsafe { sys::KeDelayExecutionThread(sys::KERNEL_MODE, 0, &mut interval) };
        }
        // SAFETY: allocated in `new`, neither queued nor running.
        unsafe { sys::IoFreeWorkItem(object.item) };
        // SAFETY: allocated in `new` with this tag; no routine can reach it any more.
        unsafe { sys::ExFreePoolWithTag(self.0.as_ptr().cast(), BENCH_TAG) };
    }
}

/// A work item queued by hand: unless it is queued and has not started, `IoQueueWorkItem` on the
/// delayed work queue. True if it queued it.
///
/// # Safety
/// Call at `PASSIVE_LEVEL`, with the object of a live [`RawWorkItem`].
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe fn ntpool_bench_work_item_raw(work: *const RawWorkObject) -> bool {
    // SAFETY: the caller's live object.
    let object = unsafe { &*work };
    if object.queued.swap(true, Ordering::SeqCst) {
        return false;
    }
    let context = work.cast_mut().cast();
    // SAFETY: an allocated work item, not queued (the flag was clear), whose object outlives the
    // routine (`RawWorkItem` waits for it); PASSIVE_LEVEL.
    unsafe { sys::IoQueueWorkItem(object.item, RAW_WORK_ITEM_ROUTINES.worker, sys::DelayedWorkQueue, context) };
    true
}
