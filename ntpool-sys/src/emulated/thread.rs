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
}

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
