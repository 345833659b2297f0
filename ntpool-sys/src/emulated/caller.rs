//! The caller's address that bug checks 0xC2 / 0x9B, 0x9D and 0xC4 / 0x2000 report: as on Windows,
//! the return address of the call into the kernel, an address in the driver's code.
//!
//! Stable Rust has no return-address intrinsic, so the emulated kernel finds it by unwinding: each
//! allocation routine has a non-generic entry function that is never inlined (`#[inline(never)]`),
//! called from a public routine that is always inlined into the driver's code
//! (`#[inline(always)]`). On a violation the unwinder walks the stack until it finds the frame of an
//! entry function (`_Unwind_FindEnclosingFunction` of a frame's address is the entry's own address);
//! the next frame's address is where the entry returns to: the instruction after the driver's call.
//! Where no unwinder is linked (targets other than Linux and macOS) or the walk does not find an
//! entry (no unwind tables), the address is 0.

/// The return address of the innermost call into one of `entries` (the addresses of entry
/// functions) on the calling thread's stack, or 0 when it cannot be found.
#[cfg(any(target_os = "linux", target_os = "macos"))]
#[inline(never)]
pub(crate) fn return_address_of_call_to(entries: &[usize]) -> u64 {
    use core::ffi::{c_int, c_void};

    /// `_Unwind_Context`, opaque.
    #[repr(C)]
    struct UnwindContext {
        _opaque: [u8; 0],
    }
    const URC_NO_REASON: c_int = 0;
    const URC_END_OF_STACK: c_int = 5;

    // The unwinder's interface (libgcc_s or LLVM's libunwind, which Rust's standard library links on
    // these targets).
    unsafe extern "C" {
        fn _Unwind_Backtrace(
            trace: extern "C" fn(*mut UnwindContext, *mut c_void) -> c_int,
            argument: *mut c_void,
        ) -> c_int;
        fn _Unwind_GetIP(context: *mut UnwindContext) -> usize;
        fn _Unwind_FindEnclosingFunction(pc: *mut c_void) -> *mut c_void;
    }

    struct Walk<'a> {
        entries: &'a [usize],
        found_entry: bool,
        address: u64,
    }

    extern "C" fn visit(context: *mut UnwindContext, argument: *mut c_void) -> c_int {
        // SAFETY: `argument` is the `Walk` that `return_address_of_call_to` passes, alive for the walk.
        let walk = unsafe { &mut *argument.cast::<Walk<'_>>() };
        // SAFETY: `context` is the unwinder's context for the frame being visited.
        let ip = unsafe { _Unwind_GetIP(context) };
        if walk.found_entry {
            walk.address = ip as u64;
            return URC_END_OF_STACK;
        }
        // A frame's address is a return address (the instruction after a call): one byte before it
        // is still inside the calling function.
        // SAFETY: only looks the address up in the unwind tables.
        let function = unsafe { _Unwind_FindEnclosingFunction(ip.saturating_sub(1) as *mut c_void) } as usize;
        walk.found_entry = function != 0 && walk.entries.contains(&function);
        URC_NO_REASON
    }

    let mut walk = Walk { entries, found_entry: false, address: 0 };
    // SAFETY: `visit` only reads the context through the unwinder's accessors and writes `walk`,
    // which outlives the walk.
    unsafe { _Unwind_Backtrace(visit, (&raw mut walk).cast()) };
    walk.address
}

/// Without an unwinder the caller's address is not known: 0.
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
pub(crate) fn return_address_of_call_to(_entries: &[usize]) -> u64 {
    0
}
