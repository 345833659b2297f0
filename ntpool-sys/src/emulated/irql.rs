//! The IRQL routines: raising and lowering the calling thread's IRQL with Driver Verifier's checks
//! (a raise to a lower level, a lower to a higher one), and Force IRQL Checking's trim of pageable
//! memory on every raise to `DISPATCH_LEVEL`.
#![allow(non_snake_case)]

use super::checks::{self, LOWER_TO_HIGHER_IRQL, RAISE_TO_LOWER_IRQL};
#[cfg(ntpool_pages)]
use super::pages;
use super::state::current;
#[cfg(ntpool_pages)]
use super::state::with_current;
use super::thread::{current_irql, in_dpc, set_irql};
use crate::{DISPATCH_LEVEL, HIGH_LEVEL, KIRQL};

/// `KfRaiseIrql`. With Driver Verifier, a raise to a lower IRQL or above `HIGH_LEVEL` is
/// 0xC4 / 0x30 ([`checks::RAISE_TO_LOWER_IRQL`]). Without it nothing is checked: on x64 the WDK
/// inlines the raise as a write of CR8, so the IRQL simply changes.
pub(crate) fn raise_irql(new: KIRQL) -> KIRQL {
    let old = current_irql();
    if new >= DISPATCH_LEVEL && old < DISPATCH_LEVEL {
        entering_dispatch_level();
    }
    if new < old || new > HIGH_LEVEL {
        let state = current();
        if state.config.verifier {
            checks::raise(&state, &RAISE_TO_LOWER_IRQL, [0x30, old.into(), new.into(), 0]);
            return old;
        }
    }
    set_irql(new);
    old
}

/// A thread goes from below `DISPATCH_LEVEL` to it or above (a raise, or a DPC the dispatcher
/// runs): under Force IRQL Checking, every pageable block becomes inaccessible, so that a touch of
/// one is bug check 0xD1 (where the memory management unit serves the emulated kernel).
pub(crate) fn entering_dispatch_level() {
    #[cfg(ntpool_pages)]
    if with_current(|state| state.config.force_irql_checking) {
        pages::trim_paged_blocks();
    }
}

/// `KeLowerIrql`. With Driver Verifier, a lower to a higher IRQL or above `HIGH_LEVEL` is
/// 0xC4 / 0x31 with parameter 4 = 0, and a lower below `DISPATCH_LEVEL` inside a DPC routine the
/// same with parameter 4 = 1 ([`checks::LOWER_TO_HIGHER_IRQL`]). Without it nothing is checked (a
/// write of CR8 on x64).
pub(crate) fn lower_irql(new: KIRQL) {
    let old = current_irql();
    let bad = new > old || new > HIGH_LEVEL;
    if bad || (new < DISPATCH_LEVEL && in_dpc()) {
        let state = current();
        if state.config.verifier {
            let parameters = [0x31, old.into(), new.into(), u64::from(!bad)];
            checks::raise(&state, &LOWER_TO_HIGHER_IRQL, parameters);
            return;
        }
    }
    set_irql(new);
    // The DPC interrupt: queued DPCs run as the IRQL falls below DISPATCH_LEVEL.
    if old >= crate::DISPATCH_LEVEL && new < crate::DISPATCH_LEVEL {
        super::dpc::run_queued();
    }
}

/// `KeGetCurrentIrql`: the calling thread's emulated IRQL.
///
/// ```
/// # ntpool_sys::emulated::Kernel::new().run(|| {
/// assert_eq!(ntpool_sys::KeGetCurrentIrql(), ntpool_sys::PASSIVE_LEVEL);
/// # });
/// ```
pub fn KeGetCurrentIrql() -> KIRQL {
    current_irql()
}

/// `KfRaiseIrql`. Returns the previous IRQL.
///
/// # Safety
/// As for `KeRaiseIrql`.
///
/// ```
/// use ntpool_sys as sys;
/// # ntpool_sys::emulated::Kernel::new().run(|| {
/// // SAFETY: DISPATCH_LEVEL is above the current PASSIVE_LEVEL; lowered again below.
/// let old = unsafe { sys::KfRaiseIrql(sys::DISPATCH_LEVEL) };
/// assert_eq!((old, sys::KeGetCurrentIrql()), (sys::PASSIVE_LEVEL, sys::DISPATCH_LEVEL));
/// // SAFETY: back to what KfRaiseIrql returned.
/// unsafe { sys::KeLowerIrql(old) };
/// assert_eq!(sys::KeGetCurrentIrql(), sys::PASSIVE_LEVEL);
/// # });
/// ```
pub unsafe fn KfRaiseIrql(NewIrql: KIRQL) -> KIRQL {
    raise_irql(NewIrql)
}

/// `KeLowerIrql`.
///
/// # Safety
/// As for `KeLowerIrql`.
///
/// ```
/// use ntpool_sys::emulated::catch_bug_check;
/// use ntpool_sys as sys;
/// # ntpool_sys::emulated::Kernel::new().run(|| {
/// // SAFETY: APC_LEVEL is above the current PASSIVE_LEVEL; lowered again below.
/// let old = unsafe { sys::KfRaiseIrql(sys::APC_LEVEL) };
/// // SAFETY: back to what KfRaiseIrql returned.
/// unsafe { sys::KeLowerIrql(old) };
/// assert_eq!(sys::KeGetCurrentIrql(), sys::PASSIVE_LEVEL);
///
/// // "Lowering" to a higher IRQL is a bug check: 0xC4 / 0x31 under Driver Verifier.
/// let bug_check = catch_bug_check(|| {
///     // SAFETY: a deliberate violation that the emulated kernel reports.
///     unsafe { sys::KeLowerIrql(sys::DISPATCH_LEVEL) }
/// })
/// .unwrap_err();
/// assert_eq!((bug_check.code, bug_check.parameters[0]), (sys::DRIVER_VERIFIER_DETECTED_VIOLATION, 0x31));
/// # });
/// ```
pub unsafe fn KeLowerIrql(NewIrql: KIRQL) {
    lower_irql(NewIrql);
}
