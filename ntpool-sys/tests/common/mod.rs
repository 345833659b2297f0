//! What the Driver Verifier tests share: a tag, running a violation on a kernel and catching its
//! bug check, and the assertion that a bug check is a row of the check table with all four
//! parameters.
#![allow(dead_code)]

use ntpool_sys::emulated::checks::{Check, Subcode};
use ntpool_sys::emulated::{BugCheck, Kernel, catch_bug_check};
use ntpool_sys::{self as sys, PVOID};

/// The tests' tag, `Vrf2`.
pub const TAG: u32 = u32::from_le_bytes(*b"Vrf2");
pub const NX: u64 = sys::NonPagedPoolNx as u64;
pub const PAGED: u64 = sys::PagedPool as u64;

/// Runs `f` on `kernel` and returns the bug check it raised.
pub fn stop<R>(kernel: &Kernel, f: impl FnOnce() -> R) -> BugCheck {
    kernel.run(|| catch_bug_check(f).err()).expect("a bug check")
}

/// Asserts that `stop` is `check` (its code and subcode) with exactly `parameters`.
#[track_caller]
pub fn assert_row(stop: &BugCheck, check: &Check, parameters: [u64; 4]) {
    assert_eq!(stop.code, check.code, "{}: {stop}", check.name);
    match check.subcode {
        Subcode::First(subcode) => assert_eq!(parameters[0], subcode, "{}", check.name),
        Subcode::Fourth(subcode) => assert_eq!(parameters[3], subcode, "{}", check.name),
        Subcode::None => {}
    }
    assert_eq!(stop.parameters, parameters, "{}: {stop}", check.name);
}

/// A live block of `size` bytes with [`TAG`], allocated at the current IRQL.
pub fn block(flags: sys::POOL_FLAGS, size: u64) -> PVOID {
    // SAFETY: a plain allocation; the emulated kernel checks it.
    let block = unsafe { sys::ExAllocatePool2(flags, size, TAG) };
    assert!(!block.is_null());
    block
}

/// Raises to `irql` (from a lower IRQL), runs `f`, and lowers again.
pub fn at_irql<R>(irql: sys::KIRQL, f: impl FnOnce() -> R) -> R {
    // SAFETY: a raise from a lower IRQL; `catch_bug_check` or the line below lowers it again.
    let old = unsafe { sys::KfRaiseIrql(irql) };
    let result = f();
    // SAFETY: `old` is what the raise returned.
    unsafe { sys::KeLowerIrql(old) };
    result
}

/// Whether `address` lies in the first `len` bytes of the code of `function`.
pub fn in_function(address: u64, function: *const (), len: u64) -> bool {
    let start = function as u64;
    (start..start + len).contains(&address)
}
