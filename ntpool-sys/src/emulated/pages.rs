//! Page-backed pool blocks, for the checks that need the memory management unit: Force IRQL Checking
//! (pageable memory made inaccessible whenever a thread raises to `DISPATCH_LEVEL`), here, and the
//! `SIGSEGV` handler of it and of Driver Verifier's special pool (guard pages, freed pages left
//! inaccessible), whose pages are in [`special`](super::special).
//!
//! A fault on such a page is analysed by the handler. A touch of a guard page is bug check
//! 0xCD, of a freed block 0xCC, of trimmed paged memory at `DISPATCH_LEVEL` or above 0xD1; a touch of
//! trimmed paged memory below `DISPATCH_LEVEL` is an ordinary page fault: the page is made
//! accessible again and the access retried, as the memory manager would page it in. A bug check
//! found in the handler cannot unwind (it is not a Rust panic site), so the handler prints the stop
//! line and ends the process; tests run such scenarios in a child process
//! ([`expect_stop_in_child`](super::expect_stop_in_child)).
//!
//! Linux on x86_64 only: the handler reads the faulting access from the machine context.

use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use super::reports::bug_check_name;
use super::special::{self, Fault, PAGE};
use super::thread::current_irql;
use crate::{DISPATCH_LEVEL, KIRQL};

/// The exit code of a process stopped by a bug check found in the fault handler.
pub(crate) const STOP_EXIT_CODE: i32 = 0xC4;

const FREE: u8 = 0;
const RESERVED: u8 = 1;
const LIVE_PAGED: u8 = 3;
const TRIMMED: u8 = 4;

/// One page-backed block, in a registry the fault handler can read without taking a lock.
struct Slot {
    state: AtomicU8,
    /// The mapping.
    start: AtomicUsize,
    end: AtomicUsize,
}

const SLOTS: usize = 1 << 15;

static REGISTRY: [Slot; SLOTS] =
    [const { Slot { state: AtomicU8::new(FREE), start: AtomicUsize::new(0), end: AtomicUsize::new(0) } }; SLOTS];

/// A mapping that backs one pageable block under Force IRQL Checking (special pool's blocks are in
/// [`special`]'s slots): its entry in the registry, which holds where it is.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pages {
    slot: u32,
}

/// Maps pages for a pageable block of `size` bytes (non-zero) aligned on `align` (16 or 64), starting
/// on its own page; Force IRQL Checking trims it. The pages, and where the block starts.
pub(crate) fn allocate(size: usize, align: usize) -> Option<(Pages, usize)> {
    install_handler();
    let rounded = size.checked_add(align - 1)? & !(align - 1);
    let len = rounded.div_ceil(PAGE).checked_mul(PAGE)?;
    let slot = reserve_slot()?;
    // SAFETY: an anonymous private mapping; no existing memory is affected.
    let start = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if start == libc::MAP_FAILED {
        REGISTRY[slot].state.store(FREE, Ordering::Release);
        return None;
    }
    let start = start as usize;
    let entry = &REGISTRY[slot];
    entry.start.store(start, Ordering::Relaxed);
    entry.end.store(start + len, Ordering::Relaxed);
    entry.state.store(LIVE_PAGED, Ordering::Release);
    Some((Pages { slot: slot as u32 }, start))
}

fn reserve_slot() -> Option<usize> {
    REGISTRY
        .iter()
        .position(|slot| slot.state.compare_exchange(FREE, RESERVED, Ordering::AcqRel, Ordering::Relaxed).is_ok())
}

impl Pages {
    /// The pages of registry entry `slot` (as [`Pages::slot`] gave it).
    pub(crate) fn from_slot(slot: u32) -> Self {
        Pages { slot }
    }

    /// The block's entry in the registry.
    pub(crate) fn slot(self) -> u32 {
        self.slot
    }

    /// Unmaps the block (when it leaves quarantine, or the kernel is dropped).
    pub(crate) fn unmap(self) {
        let entry = &REGISTRY[self.slot as usize];
        let (start, end) = (entry.start.load(Ordering::Relaxed), entry.end.load(Ordering::Relaxed));
        // SAFETY: the mapping is ours and nothing refers to it any more.
        unsafe { libc::munmap(start as *mut libc::c_void, end - start) };
        entry.state.store(FREE, Ordering::Release);
    }

    /// Makes a trimmed paged block accessible again: the kernel itself is about to touch it (as the
    /// memory manager pages memory in for its own use).
    pub(crate) fn touch(self) {
        let entry = &REGISTRY[self.slot as usize];
        if entry.state.compare_exchange(TRIMMED, LIVE_PAGED, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            open(entry);
        }
    }
}

fn open(entry: &Slot) {
    let (start, end) = (entry.start.load(Ordering::Relaxed), entry.end.load(Ordering::Relaxed));
    // SAFETY: a live mapping of ours.
    unsafe { libc::mprotect(start as *mut libc::c_void, end - start, libc::PROT_READ | libc::PROT_WRITE) };
}

/// Force IRQL Checking: on a raise to `DISPATCH_LEVEL`, every pageable block is "trimmed" (made
/// inaccessible), so that a touch at raised IRQL faults every time instead of only when the page
/// happens to be out.
pub(crate) fn trim_paged_blocks() {
    special::trim_paged_blocks();
    for entry in &REGISTRY {
        if entry.state.compare_exchange(LIVE_PAGED, TRIMMED, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            let (start, end) = (entry.start.load(Ordering::Relaxed), entry.end.load(Ordering::Relaxed));
            // SAFETY: a live mapping of ours.
            unsafe { libc::mprotect(start as *mut libc::c_void, end - start, libc::PROT_NONE) };
        }
    }
}

static PREVIOUS: AtomicUsize = AtomicUsize::new(0);
static INSTALLED: std::sync::Once = std::sync::Once::new();

pub(crate) fn install_handler() {
    INSTALLED.call_once(|| {
        // SAFETY: `sigaction` is plain data, valid when zeroed.
        let mut action: libc::sigaction = unsafe { core::mem::zeroed() };
        let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) = on_fault;
        action.sa_sigaction = handler as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
        // SAFETY: `sa_mask` is a valid signal set to initialize.
        unsafe { libc::sigemptyset(&mut action.sa_mask) };
        // SAFETY: as above; the previous action is kept for good (the handler forwards to it).
        let previous =
            std::boxed::Box::into_raw(std::boxed::Box::new(unsafe { core::mem::zeroed::<libc::sigaction>() }));
        // SAFETY: installs `on_fault`, which only reads the registry and the thread's IRQL and calls
        // mprotect, write and _exit (async-signal-safe); the old action goes to `previous`.
        unsafe { libc::sigaction(libc::SIGSEGV, &action, previous) };
        PREVIOUS.store(previous as usize, Ordering::Release);
    });
}

extern "C" fn on_fault(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SIGSEGV.
    let info_ref = unsafe { &*info };
    // SAFETY: for SIGSEGV, `si_addr` is the field the kernel filled in.
    let address = unsafe { info_ref.si_addr() } as usize;
    // SAFETY: with SA_SIGINFO the third argument is the thread's ucontext.
    let gregs = unsafe { &(*(context as *const libc::ucontext_t)).uc_mcontext.gregs };
    let error = gregs[libc::REG_ERR as usize] as u64;
    let rip = gregs[libc::REG_RIP as usize] as u64;
    // x86 page-fault error code: bit 1 set for a write, bit 4 for an instruction fetch.
    let access = if error & 0x10 != 0 {
        8
    } else if error & 0x2 != 0 {
        1
    } else {
        0
    };
    let irql_stop =
        |irql: KIRQL| stop(crate::DRIVER_IRQL_NOT_LESS_OR_EQUAL, [address as u64, irql.into(), access, rip]);
    match special::fault(address) {
        Fault::NotOurs => {}
        Fault::Freed => stop(crate::PAGE_FAULT_IN_FREED_SPECIAL_POOL, [address as u64, access.min(1), rip, 0]),
        Fault::BeyondEnd => stop(crate::PAGE_FAULT_BEYOND_END_OF_ALLOCATION, [address as u64, access.min(1), rip, 0]),
        Fault::Trimmed(slot) => {
            let irql: KIRQL = current_irql();
            if irql >= DISPATCH_LEVEL {
                irql_stop(irql);
            }
            // Below DISPATCH_LEVEL a trimmed page is simply paged back in.
            return special::touch(slot as u32);
        }
        Fault::Retry => return,
    }
    let Some(entry) = REGISTRY.iter().find(|e| {
        e.state.load(Ordering::Acquire) != FREE
            && e.start.load(Ordering::Relaxed) <= address
            && address < e.end.load(Ordering::Relaxed)
    }) else {
        return forward(signal, info, context);
    };
    if entry.state.load(Ordering::Acquire) == TRIMMED {
        let irql: KIRQL = current_irql();
        if irql >= DISPATCH_LEVEL {
            irql_stop(irql);
        }
        // Below DISPATCH_LEVEL a trimmed page is simply paged back in.
        if entry.state.compare_exchange(TRIMMED, LIVE_PAGED, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            open(entry);
        }
    }
    // Otherwise opened meanwhile by another thread: the access is retried.
}

/// Hands a fault that is not ours to whoever handled SIGSEGV before (Rust's stack-overflow guard,
/// or the default action).
fn forward(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let previous = PREVIOUS.load(Ordering::Acquire) as *const libc::sigaction;
    // SAFETY: set once in `install_handler`, never freed.
    let previous = unsafe { &*previous };
    let handler = previous.sa_sigaction;
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // SAFETY: restoring the default action and returning re-runs the access, which then
        // terminates the process as it would have without this handler.
        unsafe { libc::signal(signal, libc::SIG_DFL) };
        return;
    }
    if previous.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed with this signature.
        let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { core::mem::transmute(handler) };
        handler(signal, info, context);
    } else {
        // SAFETY: the previous handler was installed with this signature.
        let handler: extern "C" fn(libc::c_int) = unsafe { core::mem::transmute(handler) };
        handler(signal);
    }
}

/// Prints the stop line as [`BugCheck`](super::BugCheck) displays it, and ends the process. Only
/// async-signal-safe calls: formatting into a stack buffer, `write`, `_exit`.
fn stop(code: u32, parameters: [u64; 4]) -> ! {
    let mut line = [0u8; 160];
    let mut len = 0;
    let mut put = |bytes: &[u8]| {
        let n = bytes.len().min(line.len() - len);
        line[len..len + n].copy_from_slice(&bytes[..n]);
        len += n;
    };
    put(b"*** STOP: 0x");
    put(&hex(u64::from(code), 8)[..8]);
    for (i, parameter) in parameters.iter().enumerate() {
        put(if i == 0 { b" (0x" } else { b", 0x" });
        put(&hex(*parameter, 16));
    }
    put(b") ");
    put(bug_check_name(code).as_bytes());
    put(b"\n");
    // SAFETY: writes `len` bytes of a stack buffer to stderr.
    unsafe { libc::write(2, line.as_ptr().cast(), len) };
    // SAFETY: ends the process at once, as a bug check ends the machine.
    unsafe { libc::_exit(STOP_EXIT_CODE) }
}

/// The last `digits` hexadecimal digits of `value`, upper case, in the first `digits` bytes.
fn hex(value: u64, digits: usize) -> [u8; 16] {
    let mut out = [b'0'; 16];
    for (i, digit) in out.iter_mut().take(digits).enumerate() {
        let nibble = (value >> (4 * (digits - 1 - i))) & 0xF;
        *digit = b"0123456789ABCDEF"[nibble as usize];
    }
    out
}
