//! What each thread of the emulated kernel has of its own: its IRQL, an id (the owner a spin lock or
//! a fast mutex records), and the process it is attached to (the one quota allocations are charged
//! to). The bottom of the emulated kernel: it imports nothing from the other modules.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{KIRQL, PASSIVE_LEVEL};

std::thread_local! {
    static IRQL: Cell<KIRQL> = const { Cell::new(PASSIVE_LEVEL) };
    static THREAD_ID: u64 = {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        NEXT.fetch_add(1, Ordering::Relaxed)
    };
    static PROCESS: Cell<u64> = const { Cell::new(SYSTEM_PROCESS) };
    static IN_DPC: Cell<bool> = const { Cell::new(false) };
}

/// The Idle process's id: quota must never be charged to it (Driver Verifier: 0xC4 / 0x10A).
pub(crate) const IDLE_PROCESS: u64 = 0;

/// The System process's id: the process a thread of the emulated kernel belongs to unless it runs in
/// [`in_process`].
pub(crate) const SYSTEM_PROCESS: u64 = 4;

/// The calling thread's IRQL.
pub(crate) fn current_irql() -> KIRQL {
    IRQL.with(Cell::get)
}

/// Sets the calling thread's IRQL, without any check (the checked routines are in
/// [`irql`](super::irql)).
pub(crate) fn set_irql(irql: KIRQL) {
    IRQL.with(|cell| cell.set(irql));
}

/// Sets the calling thread's emulated IRQL without any check; for the documentation's examples
/// (ntpool's among them) only.
///
/// # Safety
/// Changes the IRQL behind the back of whatever relies on it (ntpool's tokens): only for examples
/// that then act as code running at the level set.
#[doc(hidden)]
pub unsafe fn __set_irql(irql: KIRQL) {
    set_irql(irql);
}

/// A non-zero id of the calling thread, unique in the process.
pub(crate) fn thread_id() -> u64 {
    THREAD_ID.with(|id| *id)
}

/// The id the emulated kernel gives the calling thread: what a spin lock it holds contains, and
/// what bug check 0xC4 / 0x1004 reports for a thread (where Windows reports a `KTHREAD` address).
///
/// ```
/// let id = ntpool_sys::emulated::current_thread();
/// assert_ne!(id, 0);
/// assert_ne!(std::thread::spawn(ntpool_sys::emulated::current_thread).join().unwrap(), id);
/// ```
pub fn current_thread() -> u64 {
    thread_id()
}

/// The process the calling thread is attached to.
pub(crate) fn current_process() -> u64 {
    PROCESS.with(Cell::get)
}

/// Runs `f` with the calling thread attached to the process `process` (an id of your choosing): quota
/// allocations made in `f` are charged to it. Outside, threads belong to the System process (4).
///
/// ```
/// use ntpool_sys::emulated::{in_process, Kernel};
/// use ntpool_sys as sys;
/// let kernel = Kernel::new();
/// kernel.run(|| {
///     let (flags, tag) = (sys::POOL_FLAG_NON_PAGED | sys::POOL_FLAG_USE_QUOTA, u32::from_le_bytes(*b"Doc1"));
///     // SAFETY: quota allocations at PASSIVE_LEVEL, freed below with their tag.
///     let a = in_process(100, || unsafe { sys::ExAllocatePool2(flags, 4, tag) });
///     // SAFETY: as above.
///     let b = unsafe { sys::ExAllocatePool2(flags, 8, tag) };
///     let charges: Vec<(u64, u64)> = kernel.quota_charges().iter().map(|c| (c.process, c.non_paged)).collect();
///     assert_eq!(charges, [(4, 8), (100, 4)]);
///     // SAFETY: allocated above with this tag, freed once.
///     unsafe { sys::ExFreePoolWithTag(a, tag) };
///     // SAFETY: as above.
///     unsafe { sys::ExFreePoolWithTag(b, tag) };
/// });
/// ```
pub fn in_process<R>(process: u64, f: impl FnOnce() -> R) -> R {
    struct Restore(u64);
    impl Drop for Restore {
        fn drop(&mut self) {
            PROCESS.with(|p| p.set(self.0));
        }
    }
    let _restore = Restore(PROCESS.with(|p| p.replace(process)));
    f()
}

/// Whether the calling thread runs a DPC routine ([`in_dpc_routine`]).
pub(crate) fn in_dpc() -> bool {
    IN_DPC.with(Cell::get)
}

/// Runs `f` as the kernel runs a DPC routine: at `DISPATCH_LEVEL`, in whatever process the processor
/// happens to be in. Driver Verifier checks what a DPC routine must not do: charge pool quota
/// (0xC4 / 0x10B, the current process is arbitrary), lower the IRQL below `DISPATCH_LEVEL`
/// (0xC4 / 0x31 with parameter 4 = 1). Back at the caller's IRQL afterwards.
///
/// ```
/// use ntpool_sys::emulated::{catch_bug_check, in_dpc_routine, Kernel};
/// use ntpool_sys as sys;
/// let stop = Kernel::new().run(|| {
///     catch_bug_check(|| in_dpc_routine(|| {
///         assert_eq!(sys::KeGetCurrentIrql(), sys::DISPATCH_LEVEL);
///         let flags = sys::POOL_FLAG_NON_PAGED | sys::POOL_FLAG_USE_QUOTA;
///         // SAFETY: a deliberate violation that the emulated kernel reports.
///         unsafe { sys::ExAllocatePool2(flags, 8, u32::from_le_bytes(*b"Doc1")) }
///     }))
///     .unwrap_err()
/// });
/// assert_eq!((stop.code, stop.parameters), (0xC4, [0x10B, 0, 0, 0]));
/// ```
pub fn in_dpc_routine<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool, KIRQL);
    impl Drop for Restore {
        fn drop(&mut self) {
            IN_DPC.with(|d| d.set(self.0));
            set_irql(self.1);
        }
    }
    let _restore = Restore(IN_DPC.with(|d| d.replace(true)), current_irql());
    set_irql(crate::DISPATCH_LEVEL);
    f()
}
