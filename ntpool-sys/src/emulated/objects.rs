//! The bookkeeping of the kernel objects whose routines the emulated kernel calls back: the DPC
//! queue, the armed timers and the clock they run on, the work items and their queue. Data and the
//! checks made on it only; the routines that fill it are in `dpc`, `timer` and `work`.
//!
//! The checks, as Driver Verifier makes them:
//!
//! * pool freed while it holds a queued DPC or an armed timer: bug check 0xC7 `TIMER_OR_DPC_INVALID`,
//!   parameter 1 = 0 (timer) or 1 (DPC), 2 = the object's address, 3 and 4 = the start and end of the
//!   memory range being freed
//!   (<https://learn.microsoft.com/windows-hardware/drivers/debugger/bug-check-0xc7--timer-or-dpc-invalid>:
//!   "usually caused by a driver failing to cancel a timer or DPC before freeing the memory where it
//!   resides");
//! * a timer still armed, a DPC still queued, a work item still queued or running, or a work item not
//!   freed, when the driver unloads: bug check 0xCE `DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS`,
//!   parameter 1 = the object's address (the memory the kernel would reference after the unload),
//!   parameter 2 = 1 (the kernel writes the object when it dequeues it), parameter 3 = the routine
//!   that would run, if known
//!   (<https://learn.microsoft.com/windows-hardware/drivers/debugger/bug-check-0xce--driver-unloaded-without-cancelling-pending-operations>).

use std::collections::{BTreeMap, VecDeque};
use std::format;
use std::string::String;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, LockResult, Mutex, MutexGuard};
use std::vec::Vec;

use super::checks::{self, Check};
use super::reports::BugCheck;

/// A bug check of `check`'s row with `parameters`.
fn stop(check: &Check, parameters: [u64; 4]) -> BugCheck {
    BugCheck::new(check.code, check.parameters(parameters))
}

/// A timer set with `KeSetTimerEx` and not yet expired (one-shot) or cancelled.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ArmedTimer {
    /// When it expires, on the kernel's clock (100 ns units).
    pub(crate) due: u64,
    /// Its period in 100 ns units; 0 for a one-shot timer.
    pub(crate) period: u64,
    /// The `KDPC` it queues when it expires (0: none).
    pub(crate) dpc: usize,
}

/// A work item `IoAllocateWorkItem` made and `IoFreeWorkItem` did not free yet.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WorkItemRecord {
    /// The device object it was allocated for (and keeps referenced).
    pub(crate) device: usize,
    /// Queued and not yet started.
    pub(crate) queued: bool,
    /// Its routine is running.
    pub(crate) running: bool,
    /// The routine it was last queued with.
    pub(crate) routine: usize,
    /// Tells this work item from an earlier one at the same address.
    pub(crate) serial: u64,
}

/// The kernel objects of one emulated kernel.
#[derive(Debug, Default)]
pub(crate) struct Objects {
    /// Queued DPCs (`KDPC` addresses) in the order they run.
    pub(crate) dpc_queue: VecDeque<usize>,
    /// DPC routines running now, on any thread.
    pub(crate) running_dpcs: usize,
    /// The interrupt-time clock timers run on, in 100 ns units since the kernel started.
    pub(crate) clock: u64,
    /// Armed timers, by `KTIMER` address.
    pub(crate) timers: BTreeMap<usize, ArmedTimer>,
    /// Work items, by address.
    pub(crate) work_items: BTreeMap<usize, WorkItemRecord>,
    /// Bug checks raised by routines on worker threads, for [`Kernel::wait_for_work_items`](super::Kernel::wait_for_work_items).
    pub(crate) worker_bug_checks: Vec<BugCheck>,
    /// The last work item's serial number.
    pub(crate) serial: u64,
    /// Work item routines queued or running (also those whose item was freed by its routine).
    pub(crate) running_work: usize,
    /// Every routine the kernel has called back, by kind: (DPCs, work items), for tests.
    pub(crate) calls: (u64, u64),
}

impl Objects {
    /// Whether the DPC at `dpc` is queued.
    pub(crate) fn is_queued(&self, dpc: usize) -> bool {
        self.dpc_queue.contains(&dpc)
    }

    /// Bug check 0xC7 if `start..end`, about to be freed, holds an armed timer or a queued DPC.
    pub(crate) fn check_free(&self, start: usize, end: usize) -> Option<BugCheck> {
        let inside = |address: usize| address >= start && address < end;
        let found = self
            .timers
            .keys()
            .find(|&&timer| inside(timer))
            .map(|&timer| (0, timer))
            .or_else(|| self.dpc_queue.iter().find(|&&dpc| inside(dpc)).map(|&dpc| (1, dpc)));
        let (kind, address) = found?;
        let check = if kind == 0 { &checks::ARMED_TIMER_FREED } else { &checks::QUEUED_DPC_FREED };
        let mut bug_check = stop(check, [kind, address as u64, start as u64, end as u64]);
        bug_check.report = format!(
            "pool freed at {start:#x}..{end:#x} holds {} at {address:#x}: cancel it before freeing its memory",
            if kind == 0 { "an armed timer" } else { "a queued DPC" }
        );
        Some(bug_check)
    }

    /// Bug check 0xCE if a timer is armed, a DPC queued, or a work item queued, running or not freed:
    /// what the kernel would touch after the driver is gone.
    pub(crate) fn check_unload(&self, driver_name: &str) -> Option<BugCheck> {
        let mut left: Vec<(usize, String)> = Vec::new();
        for (&timer, armed) in &self.timers {
            let kind = if armed.period == 0 { "one-shot" } else { "periodic" };
            left.push((timer, format!("  {kind} timer at {timer:#x}, due at {} (DPC {:#x})\n", armed.due, armed.dpc)));
        }
        for &dpc in &self.dpc_queue {
            left.push((dpc, format!("  queued DPC at {dpc:#x}\n")));
        }
        for (&item, record) in &self.work_items {
            let state = match (record.queued, record.running) {
                (true, _) => "queued",
                (_, true) => "running",
                _ => "allocated and not freed",
            };
            left.push((item, format!("  work item at {item:#x} ({state}) for device {:#x}\n", record.device)));
        }
        let &(first, _) = left.first()?;
        let routine = self.work_items.get(&first).map_or(0, |record| record.routine);
        let mut bug_check = stop(&checks::KERNEL_OBJECT_PENDING_AT_UNLOAD, [first as u64, 1, routine as u64, 0]);
        bug_check.report = format!("{driver_name} is unloading with {} kernel object(s) pending:\n", left.len());
        for (_, line) in left {
            bug_check.report.push_str(&line);
        }
        Some(bug_check)
    }
}

/// [`Objects`] behind a lock, with a condition variable signalled whenever a routine finishes.
#[derive(Debug, Default)]
pub(crate) struct KernelObjects {
    objects: Mutex<Objects>,
    pub(crate) changed: Changed,
    /// How many DPCs are queued: read without the lock on every lowering of the IRQL.
    pub(crate) queued: AtomicUsize,
    /// Whether a timer is armed or a DPC queued, as of the last release of the lock: a free looks
    /// for one in the block it frees (bug check 0xC7) only then, without taking the lock otherwise.
    holding: AtomicBool,
}

impl KernelObjects {
    pub(crate) fn lock(&self) -> ObjectsGuard<'_> {
        ObjectsGuard { guard: Some(self.objects.lock().unwrap_or_else(|p| p.into_inner())), holding: &self.holding }
    }

    /// Whether a timer may be armed or a DPC queued. Every change is made under the lock, and the
    /// flag is written before the lock is released, so a thread that armed a timer (or was told so
    /// by the thread that did) sees it set.
    #[inline(always)]
    pub(crate) fn may_hold_any(&self) -> bool {
        self.holding.load(Ordering::Acquire)
    }
}

/// The objects, locked; on release it records whether any timer is armed or DPC queued
/// ([`KernelObjects::may_hold_any`]).
///
/// # Invariants
/// `guard` is `Some` until the guard is dropped (or handed to [`Changed::wait`], which gives it back).
#[derive(Debug)]
pub(crate) struct ObjectsGuard<'a> {
    guard: Option<MutexGuard<'a, Objects>>,
    holding: &'a AtomicBool,
}

impl ObjectsGuard<'_> {
    fn record(&self) {
        if let Some(objects) = &self.guard {
            self.holding.store(!objects.timers.is_empty() || !objects.dpc_queue.is_empty(), Ordering::Release);
        }
    }
}

impl core::ops::Deref for ObjectsGuard<'_> {
    type Target = Objects;

    fn deref(&self) -> &Objects {
        self.guard.as_ref().expect("held until dropped")
    }
}

impl core::ops::DerefMut for ObjectsGuard<'_> {
    fn deref_mut(&mut self) -> &mut Objects {
        self.guard.as_mut().expect("held until dropped")
    }
}

impl Drop for ObjectsGuard<'_> {
    fn drop(&mut self) {
        self.record();
    }
}

/// The condition variable of [`KernelObjects`], waited on with an [`ObjectsGuard`].
#[derive(Debug, Default)]
pub(crate) struct Changed(Condvar);

impl Changed {
    /// Releases the lock while waiting for a notification, as [`Condvar::wait`].
    pub(crate) fn wait<'a>(&self, mut objects: ObjectsGuard<'a>) -> LockResult<ObjectsGuard<'a>> {
        objects.record();
        let holding = objects.holding;
        let guard = objects.guard.take().expect("held until dropped");
        let guard = self.0.wait(guard).unwrap_or_else(|p| p.into_inner());
        Ok(ObjectsGuard { guard: Some(guard), holding })
    }

    pub(crate) fn notify_all(&self) {
        self.0.notify_all();
    }
}
