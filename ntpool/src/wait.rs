//! Waiting below `DISPATCH_LEVEL`: [`delay`] for drivers, and the short waits of the drops that wait
//! for a routine the kernel calls (a work item, a completion routine) to finish.

use core::time::Duration;

use crate::irql::BelowDispatch;
use crate::sys::{self, LARGE_INTEGER};

/// Puts the calling thread to sleep for `interval` (`KeDelayExecutionThread`, kernel mode, not
/// alertable; at least 100 ns, the kernel's unit). The token proves the IRQL allows waiting. On the
/// emulated kernel the interval also passes on the kernel's clock, so timers that come due meanwhile
/// run.
///
/// ```
/// use core::time::Duration;
/// let kernel = ntpool::emulated::Kernel::new();
/// kernel.run(|| {
///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
///     let passive = unsafe { ntpool::Passive::assume() };
///     ntpool::delay(&passive, Duration::from_millis(2));
/// });
/// assert_eq!(kernel.clock(), 20_000); // 2 ms in 100 ns units
/// ```
pub fn delay(_token: &impl BelowDispatch, interval: Duration) {
    // SAFETY: the token proves an IRQL below DISPATCH_LEVEL.
    unsafe { sleep(interval) }
}

/// [`delay`] without a token.
///
/// # Safety
/// The IRQL is below `DISPATCH_LEVEL`.
pub(crate) unsafe fn sleep(interval: Duration) {
    let mut relative = relative(interval);
    // SAFETY: below DISPATCH_LEVEL (the caller), a valid interval.
    unsafe { sys::KeDelayExecutionThread(sys::KERNEL_MODE, 0, &mut relative) };
}

/// A relative time in 100 ns units, as `KeDelayExecutionThread` and `KeSetTimerEx` take it
/// (negative), at least one unit.
pub(crate) fn relative(interval: Duration) -> LARGE_INTEGER {
    let ticks = i64::try_from(interval.as_nanos() / 100).unwrap_or(i64::MAX).max(1);
    LARGE_INTEGER { QuadPart: -ticks }
}
