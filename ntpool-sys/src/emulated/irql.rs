//! The IRQL routines: raising and lowering the calling thread's IRQL with Driver Verifier's checks
//! (a raise to a lower level, a lower to a higher one), and Force IRQL Checking's trim of pageable
//! memory on every raise to `DISPATCH_LEVEL`.
#![allow(non_snake_case)]

#[cfg(ntpool_pages)]
use super::pages;
use super::state::{bug_check, current};
use super::thread::{current_irql, set_irql};
#[cfg(ntpool_pages)]
use crate::DISPATCH_LEVEL;
use crate::{DRIVER_VERIFIER_DETECTED_VIOLATION, KIRQL};

/// Driver Verifier: 0xC4 / 0x30, raising to a lower IRQL.
const VERIFIER_RAISE_TO_LOWER: u64 = 0x30;
/// Driver Verifier: 0xC4 / 0x31, lowering to a higher IRQL.
const VERIFIER_LOWER_TO_HIGHER: u64 = 0x31;

pub(crate) fn raise_irql(new: KIRQL) -> KIRQL {
    let old = current_irql();
    #[cfg(ntpool_pages)]
    if new >= DISPATCH_LEVEL && old < DISPATCH_LEVEL && current().config.force_irql_checking {
        pages::trim_paged_blocks();
    }
    if new < old {
        let state = current();
        let code =
            if state.config.verifier { DRIVER_VERIFIER_DETECTED_VIOLATION } else { crate::IRQL_NOT_GREATER_OR_EQUAL };
        let parameters = if state.config.verifier {
            [VERIFIER_RAISE_TO_LOWER, old.into(), new.into(), 0]
        } else {
            [old.into(), new.into(), 0, 0]
        };
        bug_check(&state, code, parameters);
        return old;
    }
    set_irql(new);
    old
}

pub(crate) fn lower_irql(new: KIRQL) {
    let old = current_irql();
    if new > old {
        let state = current();
        let code =
            if state.config.verifier { DRIVER_VERIFIER_DETECTED_VIOLATION } else { crate::IRQL_NOT_LESS_OR_EQUAL };
        let parameters = if state.config.verifier {
            [VERIFIER_LOWER_TO_HIGHER, old.into(), new.into(), 0]
        } else {
            [0, new.into(), 0, 0]
        };
        bug_check(&state, code, parameters);
        return;
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
