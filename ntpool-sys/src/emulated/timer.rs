//! Kernel timers: `KeInitializeTimerEx`, `KeSetTimerEx` (one-shot and periodic, with a DPC),
//! `KeCancelTimer`, on a clock that only moves when a test advances it
//! ([`Kernel::advance_clock`](super::Kernel::advance_clock)) or a thread of the kernel waits
//! (`KeDelayExecutionThread`): each timer that comes due on the way
//! is signaled and queues its DPC, in the order of their due times, and a periodic timer is set
//! again for its next period. The DPCs run at `DISPATCH_LEVEL` as the clock passes their due time,
//! when the thread that advances it is below `DISPATCH_LEVEL`.
#![allow(non_snake_case)]

use super::dpc;
use super::objects::ArmedTimer;
use super::state::with_current;
use crate::{BOOLEAN, KDPC, KTIMER, LARGE_INTEGER, LONG, TIMER_TYPE};

/// `TimerNotificationObject`, the dispatcher type of a notification timer.
const TIMER_NOTIFICATION_OBJECT: i32 = 8;
/// 100 ns units in a millisecond.
const TICKS_PER_MS: u64 = 10_000;

/// `KeInitializeTimerEx`.
///
/// # Safety
/// `Timer` points to writable memory for a `KTIMER` that is not set.
pub unsafe fn KeInitializeTimerEx(Timer: *mut KTIMER, Type: TIMER_TYPE) {
    // SAFETY: KTIMER is plain data for which all-zero bytes are valid (null pointers).
    let mut timer: KTIMER = unsafe { core::mem::zeroed() };
    timer.Header.Lock = TIMER_NOTIFICATION_OBJECT + Type;
    // SAFETY: the caller guarantees `Timer` is writable.
    unsafe { Timer.write(timer) };
}

/// `KeSetTimerEx`: sets the timer to expire at `DueTime` (negative: relative, in 100 ns units;
/// positive: absolute, on the kernel's clock), then every `Period` milliseconds if `Period` is
/// positive, queuing `Dpc` each time. TRUE if the timer was already set.
///
/// # Safety
/// `Timer` was initialized with `KeInitializeTimerEx`; it and `Dpc` (if not null, initialized with
/// `KeInitializeDpc`) stay valid until the timer is cancelled or, for a one-shot timer, has
/// expired and its DPC has run.
///
/// ```
/// use ntpool_sys as sys;
/// unsafe extern "system" fn tick(_: *mut sys::KDPC, count: sys::PVOID, _: sys::PVOID, _: sys::PVOID) {
///     // SAFETY: the context is the counter below, which outlives the timer.
///     unsafe { *count.cast::<u32>() += 1 };
/// }
/// let kernel = ntpool_sys::emulated::Kernel::new();
/// let mut count = 0u32;
/// let mut timer = core::mem::MaybeUninit::<sys::KTIMER>::uninit();
/// let mut dpc = core::mem::MaybeUninit::<sys::KDPC>::uninit();
/// kernel.run(|| {
///     // SAFETY: the timer, its DPC and the counter outlive the timer, which is cancelled below.
///     unsafe {
///         sys::KeInitializeTimerEx(timer.as_mut_ptr(), sys::NotificationTimer);
///         sys::KeInitializeDpc(dpc.as_mut_ptr(), Some(tick), (&raw mut count).cast());
///         sys::KeSetTimerEx(timer.as_mut_ptr(), sys::LARGE_INTEGER { QuadPart: -10_000 }, 5, dpc.as_mut_ptr());
///     }
/// });
/// kernel.advance_clock(std::time::Duration::from_millis(11)); // due at 1 ms, then 6 and 11
/// assert_eq!(count, 3);
/// // SAFETY: initialized above.
/// assert_eq!(kernel.run(|| unsafe { sys::KeCancelTimer(timer.as_mut_ptr()) }), 1);
/// assert!(kernel.verify_unload().is_ok());
/// ```
pub unsafe fn KeSetTimerEx(Timer: *mut KTIMER, DueTime: LARGE_INTEGER, Period: LONG, Dpc: *mut KDPC) -> BOOLEAN {
    // SAFETY: every bit pattern is a valid i64.
    let due = unsafe { DueTime.QuadPart };
    let period = u64::try_from(Period).unwrap_or(0) * TICKS_PER_MS;
    let was_set = with_current(|state| {
        let mut objects = state.objects.lock();
        let due = if due < 0 { objects.clock.saturating_add(due.unsigned_abs()) } else { due as u64 };
        // SAFETY: the caller guarantees the KTIMER is valid; the kernel's lock is held.
        let timer = unsafe { &mut *Timer };
        timer.DueTime = due;
        timer.Period = u32::try_from(Period).unwrap_or(0);
        timer.Dpc = Dpc;
        timer.Header.SignalState = 0;
        objects.timers.insert(Timer as usize, ArmedTimer { due, period, dpc: Dpc as usize }).is_some()
    });
    BOOLEAN::from(was_set)
}

/// `KeCancelTimer`: TRUE if the timer was set. A DPC it already queued stays queued.
///
/// # Safety
/// `Timer` was initialized with `KeInitializeTimerEx`.
pub unsafe fn KeCancelTimer(Timer: *mut KTIMER) -> BOOLEAN {
    BOOLEAN::from(with_current(|state| state.objects.lock().timers.remove(&(Timer as usize)).is_some()))
}

/// Moves the calling thread's kernel's clock on by `ticks` (100 ns units), expiring the timers that
/// come due on the way, each when the clock reaches it.
pub(crate) fn advance(ticks: u64) {
    let target = with_current(|state| state.objects.lock().clock.saturating_add(ticks));
    loop {
        let expired = with_current(|state| {
            let mut objects = state.objects.lock();
            let (&timer, &armed) =
                objects.timers.iter().filter(|(_, armed)| armed.due <= target).min_by_key(|(_, armed)| armed.due)?;
            objects.clock = objects.clock.max(armed.due);
            if armed.period == 0 {
                objects.timers.remove(&timer);
            } else if let Some(next) = objects.timers.get_mut(&timer) {
                next.due = armed.due + armed.period;
            }
            // SAFETY: an armed KTIMER is valid until cancelled or expired (KeSetTimerEx's contract).
            unsafe { (*(timer as *mut KTIMER)).Header.SignalState = 1 };
            Some((armed.dpc, objects.clock))
        });
        let Some((dpc, now)) = expired else { break };
        if dpc != 0 {
            // SAFETY: the timer's DPC is valid while the timer is armed (KeSetTimerEx's contract);
            // the arguments are the interrupt time, as Windows passes them.
            unsafe {
                dpc::KeInsertQueueDpc(dpc as *mut KDPC, (now & 0xFFFF_FFFF) as usize as _, (now >> 32) as usize as _)
            };
        }
    }
    with_current(|state| {
        let mut objects = state.objects.lock();
        objects.clock = objects.clock.max(target);
    });
}
