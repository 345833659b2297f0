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
//! | Driver Verifier option | violation | bug check (code / parameter 1) |
//! |---|---|---|
//! | IRQL checking | paged allocation above `APC_LEVEL`, non-paged above `DISPATCH_LEVEL` | 0xC4 / 0x01, 0x02 (without verifier 0xC2 / 0x08) |
//! | | paged free above `APC_LEVEL`, non-paged above `DISPATCH_LEVEL` | 0xC4 / 0x11, 0x12 (without verifier 0xC2 / 0x09) |
//! | | a raise to a lower IRQL, a lower to a higher one | 0xC4 / 0x30, 0x31 |
//! | pool checks | zero-byte request | 0xC4 / 0x00 (without verifier 0xC2 / 0x00) |
//! | | tag 0; tag without a letter or digit | 0xC2 / 0x9B; 0xC2 / 0x9D |
//! | | `ExFreePoolWithTag` with another tag | 0xC2 / 0x0A |
//! | | free of an address never allocated; double free | 0xC4 / 0x10; 0xC4 / 0x13 (0xC2 / 0x99; 0xC2 / 0x07) |
//! | | `NonPagedPoolMustSucceed` | 0xC2 / 0x9A |
//! | pool tracking | blocks left at unload ([`Kernel::verify_unload`]), with tag, pool, size and source line of each | 0xC4 / 0x62 |
//! | | `ExFreePool` of a block whose tag has `PROTECTED_POOL` set; `ExFreePoolWithTag` with another tag | 0xC2 / 0x0A (address, allocator's tag, tag used, both without the protected bit) |
//! | | a lookaside list not deleted at unload ([`Kernel::verify_unload`]) | 0xCE (list address) |
//! | | a lookaside list deleted twice, or never initialized | 0x139 / 3 (`LIST_ENTRY` corruption) |
//! | | the raising form of `ExAllocatePoolWithQuotaTag` failing | 0x1E (`STATUS_QUOTA_EXCEEDED`) |
//! | VideoPort pool (`videoport` feature) | `VideoPortAllocatePool` / `VideoPortFreePool`, checked and tracked as the `ExAllocatePoolWithTag` / `ExFreePool` that `videoprt.sys` makes of them: a `VpPaged*` free at `DISPATCH_LEVEL` | 0xC4 / 0x11 (without verifier 0xC2 / 0x09) |
//! | special pool ([`KernelBuilder::special_pool`][special_pool]) | write into the page beside the block, found at free | 0xC1 / parameter 4 = 0x23 (before), 0x24 (after) |
//! | | touch of the guard page | 0xCD |
//! | | touch of a freed block | 0xCC |
//! | Force IRQL Checking ([`KernelBuilder::force_irql_checking`][force_irql_checking]) | paged memory touched at `DISPATCH_LEVEL` or above | 0xD1 (address, IRQL, read/write, instruction) |
//! | low resources simulation | random failures by seed and rate ([`KernelBuilder::low_resources_simulation`]); the `n`th request ([`KernelBuilder::fail_allocation`]) | `NULL` |
//!
//! The pool usage table ([`Kernel::pool_usage`], poolmon's columns) is available at any time and is
//! part of every leak report. Each thread has its own IRQL; spin locks exclude for real; tracking is
//! safe under concurrency. Stops found by the page-fault handler (0xCD, 0xCC, 0xD1) end the process
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
//! 4. `pages` (Linux on x86_64): page-backed blocks and the fault handler of special pool and Force
//!    IRQL Checking;
//! 5. `table`: the pool's bookkeeping (live blocks, quarantine, spare blocks, its lock);
//! 6. `state`: one kernel's state, and which kernel a thread has entered;
//! 7. `irql`: raising and lowering the IRQL, checked;
//! 8. `pool`: allocation and free;
//! 9. `sync`: spin locks and fast mutexes;
//! 10. `lookaside`: lookaside lists and `SLIST`s;
//! 11. [`io`]: the I/O manager's routines;
//! 12. `kernel`: [`Kernel`] and [`KernelBuilder`].
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

mod config;
pub mod io;
pub(crate) mod irql;
mod kernel;
pub(crate) mod lookaside;
#[cfg(ntpool_pages)]
mod pages;
pub(crate) mod pool;
pub(crate) mod reports;
mod state;
pub(crate) mod sync;
mod table;
mod thread;

pub use config::{PoolAlignment, SpecialPoolAlignment};
pub use kernel::{Kernel, KernelBuilder};
pub use reports::{
    Allocation, AllocationSite, BugCheck, PoolKind, PoolUsage, PoolUsageRow, QuotaCharge, RawTag, catch_bug_check,
    expect_stop_in_child,
};
#[doc(hidden)]
pub use thread::__set_irql;
pub use thread::in_process;
