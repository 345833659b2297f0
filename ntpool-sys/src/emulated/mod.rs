//! The emulated kernel: run driver code on Linux or macOS with the checks Driver Verifier makes.
//!
//! On a host build, every routine of [the crate root](crate) lands here instead of in `ntoskrnl.exe`
//! (or `videoprt.sys`). The
//! emulation keeps an IRQL per thread, a pool that records the tag, pool, size and source location of
//! every block, real spin locks, and it reports every violation as a bug check with Microsoft's code
//! and four parameters, raised as a panic whose payload is a [`BugCheck`] so that a test can catch
//! it ([`catch_bug_check`]) and assert on it.
//!
//! Each test makes its own [`Kernel`] (so parallel tests do not see each other's allocations) and
//! runs its code inside [`Kernel::run`]. Code that runs outside any `run` uses one process-wide
//! default kernel.
//!
//! # What it checks
//!
//! Every bug check the emulated kernel raises is a row of one table, [`checks::CHECKS`]: the code
//! and subcode, the condition, what each of the four parameters holds (as Microsoft's bug-check
//! reference documents it, or "undocumented" with what the emulation puts there), the Driver
//! Verifier option that turns the check on, the page it follows, and how sure that reading is.
//! `docs/verifier.md` is generated from it. In short:
//!
//! | Driver Verifier option | violations | bug check |
//! |---|---|---|
//! | automatic checks ([`KernelBuilder::driver_verifier`], on by default) | allocation and free at a bad IRQL, zero bytes, tag 0 or without a letter or digit, a free of an address never allocated, inside a block or freed already, `NonPagedPoolMustSucceed`, the IRQL of `KeRaiseIrql`, `KeLowerIrql`, every spin lock and fast mutex routine, lookaside lists initialized twice, deleted uninitialized, too small or freed with their pool, quota charged to the Idle process or from a DPC routine, lookaside lists left at unload | 0xC4 (0x00-0x42, 0xCA-0xCD, 0x10A, 0x10B), 0xC2 / 0x9A, 0x9B, 0x9D, 0xC7 |
//! | pool tracking ([`KernelBuilder::pool_tracking`], on) | blocks left at unload ([`Kernel::verify_unload`]); a block written past its end, found at free | 0xC4 / 0x62, 0x51 |
//! | deadlock detection ([`KernelBuilder::deadlock_detection`], on) | a lock acquired twice by its holder, released by another thread or by nobody's | 0xC4 / 0x1000, 0x1004, 0x1007 |
//! | code integrity checking ([`KernelBuilder::code_integrity`], off) | executable pool | 0xC4 / 0x2000 |
//! | special pool ([`KernelBuilder::special_pool`][special_pool]) | bytes around a block written, found at free; the guard page or a freed block touched | 0xC1 / 0x23, 0x24; 0xCD; 0xCC |
//! | Force IRQL Checking ([`KernelBuilder::force_irql_checking`][force_irql_checking]) | paged memory touched at `DISPATCH_LEVEL` or above | 0xD1 |
//! | none (Driver Verifier off) | the kernel's own checks | 0xC2 / 0x00, 0x07, 0x08, 0x09, 0x99; 0x139 / 3; 0xCE |
//! | any | `ExFreePoolWithTag` with another tag; an exception no one catches (`ExAllocatePoolWithQuotaTag`'s, `POOL_FLAG_RAISE_ON_FAILURE`'s) | 0xC2 / 0x0A; 0x1E |
//! | timers and DPCs | pool freed while it holds an armed timer or a queued DPC | 0xC7 / 0 (timer), 1 (DPC) |
//! | | a timer armed, a DPC queued, a work item queued, running or not freed at unload ([`Kernel::verify_unload`]) | 0xCE |
//! | | a work item queued twice, or freed while queued | 0x139 / 3 |
//! | low resources simulation | random failures by seed and rate ([`KernelBuilder::low_resources_simulation`]); the `n`th request ([`KernelBuilder::fail_allocation`]) | `NULL` |
//!
//! A caller's address (0xC2 / 0x9B, 0x9D, 0xC4 / 0x2000) is, as on Windows, the return address of
//! the driver's call into the kernel, found by unwinding the stack (`caller`). The one violation
//! reported with a plain panic is a lock acquired twice without deadlock detection: Windows hangs
//! there, and reports nothing.
//!
//! The pool usage table ([`Kernel::pool_usage`], poolmon's columns) is available at any time and is
//! part of every leak report. DPCs run at `DISPATCH_LEVEL` when a thread's IRQL falls below it,
//! timers on a clock a test advances ([`Kernel::advance_clock`]), work items on worker threads at
//! `PASSIVE_LEVEL` ([`Kernel::wait_for_work_items`]). Each thread has its own IRQL; spin locks exclude for real; tracking is
//! safe under concurrency and scales with it: each thread inside a kernel keeps its allocations'
//! records in a shard of the pool of its own (`shards`), and a block freed by another thread is found
//! in its owner's shard, with the same checks. The environment variable `NTPOOL_SPECIAL_POOL=1` turns
//! special pool on for every kernel a process builds ([`KernelBuilder::build`]). Stops found by the page-fault handler (0xCD, 0xCC, 0xD1) end the process
//! as a bug check ends the machine: test them with [`expect_stop_in_child`].
//!
//! ```
//! use ntpool_sys::emulated::{catch_bug_check, Kernel};
//! use ntpool_sys as sys;
//!
//! let kernel = Kernel::new();
//! let bug_check = kernel.run(|| {
//!     catch_bug_check(|| {
//!         let (tag, other) = (u32::from_le_bytes(*b"Tag1"), u32::from_le_bytes(*b"Tag2"));
//!         // SAFETY: the emulated kernel checks this call; it is expected to bug-check.
//!         unsafe {
//!             let p = sys::ExAllocatePool2(sys::POOL_FLAG_NON_PAGED, 32, tag);
//!             sys::ExFreePoolWithTag(p, other);
//!         }
//!     })
//!     .unwrap_err()
//! });
//! assert_eq!(bug_check.code, sys::BAD_POOL_CALLER);
//! assert_eq!(bug_check.parameters[0], 0x0A); // wrong tag on free
//! ```
//!
//! # Testing a driver on Linux
//!
//! A driver built on this crate (or on ntpool, which re-exports this module as `ntpool::emulated`,
//! with examples of its typed boxes) runs its kernel calls here when it is built for Linux, so
//! `cargo test` runs its allocation code with Driver Verifier's checks: each test makes a
//! [`Kernel`], runs the driver's code in it, and ends with [`Kernel::verify_unload`]. The
//! [`io`] module emulates the I/O manager's routines a WDM driver calls besides the pool's.
//! Code that breaks the rules on purpose is tested through the raw routines and `unsafe`: the
//! emulated kernel then reports what Driver Verifier would, and [`catch_bug_check`] hands the test the
//! code and parameters.
//!
//! # Layout
//!
//! One module per subject, each importing only from those listed before it (and from the crate root's
//! declarations):
//!
//! 1. `thread`: each thread's IRQL, id and process;
//! 2. `reports`: bug checks, and poolmon's table and the records reports are made of;
//! 3. `config`: what [`KernelBuilder`] sets;
//! 4. `special` and `pages` (Linux on x86_64): special pool's arena of reused slots (a data page
//!    between guard pages); Force IRQL Checking's page-backed blocks and the fault handler of both;
//! 5. `containers` and `table`: the pool's bookkeeping (records, live blocks, quarantine, blocks
//!    kept for reuse); `shards`: the shards of a kernel's pool, one per thread inside the kernel,
//!    each behind its lock;
//! 6. `objects`: the bookkeeping of DPCs, timers and work items, and the checks made on it (0xC7
//!    when pool holding an armed timer or a queued DPC is freed, 0xCE for what is pending at unload);
//! 7. `state`: one kernel's state, and which kernel a thread has entered;
//! 8. [`checks`]: every bug check the kernel raises, and how it raises one; `caller`: the caller's
//!    address some of them report;
//! 9. `dpc`: the DPC queue and the dispatcher that runs it at `DISPATCH_LEVEL`;
//! 10. `irql`: raising and lowering the IRQL, checked (lowering below `DISPATCH_LEVEL` runs the
//!     queued DPCs);
//! 11. `memory`: where a block's memory comes from, and the fills in and around it; `pool` and
//!     `free`: allocation and free;
//! 12. `sync`: spin locks and fast mutexes;
//! 13. `lookaside`: lookaside lists and `SLIST`s;
//! 14. `timer`: kernel timers on a clock tests advance;
//! 15. `work`: I/O work items on worker threads at `PASSIVE_LEVEL`; `system_thread`: system threads
//!     on host threads, and waiting for them;
//! 16. [`io`]: the I/O manager's routines; [`irp`]: IRPs a driver sends and their completion
//!     routines, and `KeSynchronizeExecution`;
//! 17. `kernel`: [`Kernel`] and [`KernelBuilder`]; `options`: Driver Verifier's options.
//!
// Special pool and Force IRQL Checking exist where page faults can be analysed (Linux on x64); on
// other targets the links go to their documentation for that one.
#![cfg_attr(ntpool_pages, doc = "[special_pool]: KernelBuilder::special_pool")]
#![cfg_attr(ntpool_pages, doc = "[force_irql_checking]: KernelBuilder::force_irql_checking")]
#![cfg_attr(
    not(ntpool_pages),
    doc = "[special_pool]: https://docs.rs/ntpool-sys/latest/x86_64-unknown-linux-gnu/ntpool_sys/emulated/struct.KernelBuilder.html#method.special_pool"
)]
#![cfg_attr(
    not(ntpool_pages),
    doc = "[force_irql_checking]: https://docs.rs/ntpool-sys/latest/x86_64-unknown-linux-gnu/ntpool_sys/emulated/struct.KernelBuilder.html#method.force_irql_checking"
)]

mod caller;
pub mod checks;
mod config;
mod containers;
pub(crate) mod dpc;
mod free;
pub mod io;
pub mod irp;
pub(crate) mod irql;
mod kernel;
pub(crate) mod lookaside;
mod memory;
mod objects;
mod options;
#[cfg(ntpool_pages)]
mod pages;
pub(crate) mod pool;
pub(crate) mod reports;
mod shards;
#[cfg(ntpool_pages)]
mod special;
mod state;
pub(crate) mod sync;
pub(crate) mod system_thread;
mod table;
mod thread;
pub(crate) mod timer;
pub(crate) mod work;

pub use config::{PoolAlignment, SpecialPoolAlignment};
pub use kernel::{Kernel, KernelBuilder};
pub use reports::{
    Allocation, AllocationSite, BugCheck, PoolKind, PoolUsage, PoolUsageRow, QuotaCharge, RawTag, catch_bug_check,
    expect_stop_in_child,
};
#[doc(hidden)]
pub use thread::__set_irql;
pub use thread::{current_thread, in_dpc_routine, in_process};
