//! The emulated kernel: run driver code on Linux or macOS with the checks Driver Verifier makes.
//!
//! On a host build, every routine in [`crate::sys`] lands here instead of in `ntoskrnl.exe`. The
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
//! | special pool ([`KernelBuilder::special_pool`]) | write into the page beside the block, found at free | 0xC1 / parameter 4 = 0x23 (before), 0x24 (after) |
//! | | touch of the guard page | 0xCD |
//! | | touch of a freed block | 0xCC |
//! | Force IRQL Checking ([`KernelBuilder::force_irql_checking`]) | paged memory touched at `DISPATCH_LEVEL` or above | 0xD1 (address, IRQL, read/write, instruction) |
//! | low resources simulation | random failures by seed and rate ([`KernelBuilder::low_resources_simulation`]); the `n`th request ([`KernelBuilder::fail_allocation`]) | `NULL` |
//!
//! The pool usage table ([`Kernel::pool_usage`], poolmon's columns) is available at any time and is
//! part of every leak report. Each thread has its own IRQL; spin locks exclude for real; tracking is
//! safe under concurrency. Stops found by the page-fault handler (0xCD, 0xCC, 0xD1) end the process
//! as a bug check ends the machine: test them with [`expect_stop_in_child`].
//!
//! ```
//! use ntpool::emulated::{catch_bug_check, Kernel};
//! use ntpool::sys;
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
//! # Testing your driver on Linux
//!
//! Your driver depends on `ntpool`; on a Linux (or macOS) target every ntpool call lands on this
//! emulated kernel, so `cargo test` runs your driver's allocation code with Driver Verifier's checks.
//! A complete test of a driver-like component, with a leak check at "unload" and the systematic low
//! resources simulation (every allocation failing in turn):
//!
//! ```
//! use ntpool::emulated::{catch_bug_check, Kernel};
//! use ntpool::{AllocError, NonPagedBox, PagedBox, Passive, SpinLock};
//!
//! ntpool::pool_tag!(struct Names = b"MyNm");
//! ntpool::pool_tag!(struct Items = b"MyIt");
//!
//! /// The code under test: what a driver would run in DriverEntry.
//! struct Device {
//!     name: PagedBox<[u8], Names>,
//!     pending: SpinLock<Option<NonPagedBox<[u32; 4], Items>>>,
//! }
//!
//! fn start(passive: &mut Passive) -> Result<Device, AllocError> {
//!     let name = PagedBox::try_from_slice(passive, b"device0")?;
//!     let device = Device { name, pending: SpinLock::new(None) };
//!     let item = NonPagedBox::try_new(passive, [1, 2, 3, 4])?;
//!     device.pending.with(passive, item, |_dispatch, slot, item| *slot = Some(item));
//!     Ok(device)
//! }
//!
//! // 1. A normal run: works, and frees everything once the device is dropped ("unload").
//! let kernel = Kernel::builder().driver_name("mydriver.sys").build();
//! kernel.run(|| {
//!     // SAFETY: the test thread runs at PASSIVE_LEVEL (emulated) and holds no other token.
//!     let mut passive = unsafe { Passive::assume() };
//!     let device = start(&mut passive).expect("enough memory");
//!     assert_eq!(device.name.get(&passive), b"device0");
//! });
//! kernel.verify_unload().expect("no leak");
//! println!("{}", kernel.pool_usage()); // poolmon-style: tag, pool, allocs, frees, bytes
//!
//! // 2. Systematic low resources simulation: fail allocation k, for every k of the clean run.
//! for k in 1..=kernel.allocation_calls() {
//!     let faulty = Kernel::builder().fail_allocation(k).build();
//!     let outcome = faulty.run(|| {
//!         catch_bug_check(|| {
//!             // SAFETY: as above.
//!             let mut passive = unsafe { Passive::assume() };
//!             start(&mut passive).map(drop)
//!         })
//!     });
//!     assert_eq!(outcome, Ok(Err(AllocError)), "allocation {k} failing must be an error, not a bug check");
//!     faulty.verify_unload().expect("a failed start leaks nothing");
//! }
//! ```
//!
//! Code the safe API forbids can still be tested through [`crate::sys`] and `unsafe`: the emulated
//! kernel then reports what Driver Verifier would, and [`catch_bug_check`] hands the test the code and
//! parameters.

pub(crate) mod kernel;
pub(crate) mod lookaside;
#[cfg(ntpool_pages)]
mod pages;

use kernel::{Config, State, current_irql};

use core::fmt;
use std::boxed::Box;
use std::string::String;
use std::sync::{Arc, Once};
use std::vec::Vec;

use crate::sys::{self, POOL_TYPE, ULONG};
use crate::tag::PoolTag;

/// One emulated kernel: its pool, its configuration, and the bug checks it deferred.
///
/// Cloning a `Kernel` gives another handle to the same kernel (for other threads).
///
/// ```
/// use ntpool::emulated::Kernel;
/// use ntpool::{NonPagedBox, Passive};
/// ntpool::pool_tag!(struct Doc = b"Doc1");
///
/// let kernel = Kernel::new();
/// let handle = kernel.clone();
/// let block = std::thread::spawn(move || {
///     handle.run(|| {
///         // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
///         let passive = unsafe { Passive::assume() };
///         NonPagedBox::<u32, Doc>::try_new(&passive, 7).unwrap()
///     })
/// })
/// .join()
/// .unwrap();
/// // The other thread allocated from the same kernel.
/// assert_eq!(kernel.outstanding().len(), 1);
/// kernel.run(|| drop(block));
/// assert!(kernel.verify_unload().is_ok());
/// ```
#[derive(Clone)]
pub struct Kernel {
    state: Arc<State>,
}

impl fmt::Debug for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kernel").field("config", &self.state.config).finish_non_exhaustive()
    }
}

impl Default for Kernel {
    fn default() -> Self {
        Self::new()
    }
}

impl Kernel {
    /// A kernel that exports `ExAllocatePool2` (Windows 10 2004 and later), with Driver Verifier's
    /// checks on.
    ///
    /// ```
    /// let kernel = ntpool::emulated::Kernel::new();
    /// assert!(kernel.outstanding().is_empty());
    /// ```
    pub fn new() -> Self {
        KernelBuilder::default().build()
    }

    /// A builder to configure the kernel.
    ///
    /// ```
    /// let kernel = ntpool::emulated::Kernel::builder().ex_allocate_pool2(false).build();
    /// kernel.run(|| assert!(!ntpool::sys::uses_ex_allocate_pool2()));
    /// ```
    pub fn builder() -> KernelBuilder {
        KernelBuilder::default()
    }

    /// Runs `f` on the calling thread with this kernel as the thread's kernel. Threads that `f`
    /// spawns must enter it themselves (with `run` on a clone of this handle).
    ///
    /// ```
    /// use ntpool::emulated::Kernel;
    /// let kernel = Kernel::new();
    /// let irql = kernel.run(|| ntpool::sys::KeGetCurrentIrql());
    /// assert_eq!(irql, ntpool::sys::PASSIVE_LEVEL);
    /// ```
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        install_panic_hook();
        let _entered = kernel::enter(self.state.clone());
        f()
    }

    /// The poolmon-style table of this kernel: per tag and pool, allocations, frees and bytes in use.
    ///
    /// ```
    /// use ntpool::{NonPagedBox, Passive};
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// let kernel = ntpool::emulated::Kernel::new();
    /// kernel.run(|| {
    ///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    ///     let passive = unsafe { Passive::assume() };
    ///     let _b = NonPagedBox::<u64, Doc>::try_new(&passive, 7).unwrap();
    /// });
    /// let row = &kernel.pool_usage().rows[0];
    /// assert_eq!((row.tag.to_string().as_str(), row.allocs, row.frees, row.bytes), ("Doc1", 1, 1, 0));
    /// ```
    pub fn pool_usage(&self) -> PoolUsage {
        self.state.usage()
    }

    /// Every block allocated and not yet freed, in address order.
    ///
    /// ```
    /// let kernel = ntpool::emulated::Kernel::new();
    /// assert!(kernel.outstanding().is_empty());
    /// ```
    pub fn outstanding(&self) -> Vec<Allocation> {
        self.state.outstanding()
    }

    /// How many allocation requests reached the pool so far (failed ones included, invalid ones not).
    ///
    /// ```
    /// let kernel = ntpool::emulated::Kernel::new();
    /// assert_eq!(kernel.allocation_calls(), 0);
    /// ```
    pub fn allocation_calls(&self) -> u64 {
        self.state.allocation_calls()
    }

    /// Every source location that asked this kernel for pool (the first caller outside ntpool, as
    /// [`Allocation`] records it), in file and line order, with its number of requests and how many
    /// of them the low resources simulation failed. Invalid requests (bug checks) are not counted.
    ///
    /// ```
    /// use ntpool::emulated::Kernel;
    /// use ntpool::{NonPagedBox, Passive};
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    ///
    /// let kernel = Kernel::builder().fail_allocation(2).build();
    /// kernel.run(|| {
    ///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    ///     let passive = unsafe { Passive::assume() };
    ///     for _ in 0..3 {
    ///         let _ = NonPagedBox::<u32, Doc>::try_new(&passive, 1);
    ///     }
    /// });
    /// let sites = kernel.allocation_sites();
    /// assert_eq!(sites.len(), 1); // one call site, three requests, the second one failed
    /// assert_eq!((sites[0].line, sites[0].calls, sites[0].failed), (line!() - 5, 3, 1));
    /// ```
    pub fn allocation_sites(&self) -> Vec<AllocationSite> {
        self.state.allocation_sites()
    }

    /// What Driver Verifier checks when the driver unloads: `Ok` if every block was freed, else the
    /// bug check 0xC4 / 0x62 (`DRIVER_VERIFIER_DETECTED_VIOLATION`, driver unloading with outstanding
    /// allocations) with a report naming every leaked block, its tag, pool, size and the source
    /// location that allocated it, followed by the pool usage table.
    ///
    /// ```
    /// let kernel = ntpool::emulated::Kernel::new();
    /// assert!(kernel.verify_unload().is_ok());
    /// ```
    pub fn verify_unload(&self) -> Result<(), BugCheck> {
        self.verify_lookaside_lists_deleted()?;
        let leaks = self.outstanding();
        if leaks.is_empty() {
            return Ok(());
        }
        let mut report = std::format!(
            "{} is unloading with {} outstanding pool allocation(s):\n",
            self.state.config.driver_name,
            leaks.len()
        );
        for leak in &leaks {
            report.push_str(&std::format!("  {leak}\n"));
        }
        report.push_str(&std::format!("{}", self.pool_usage()));
        // Parameter 2 is the driver's name: here, the address of the name this kernel was given.
        let name = self.state.config.driver_name.as_ptr() as u64;
        let mut bug_check = BugCheck::new(sys::DRIVER_VERIFIER_DETECTED_VIOLATION, [0x62, name, 0, leaks.len() as u64]);
        bug_check.report = report;
        Err(bug_check)
    }

    /// The driver's file name reports use; bug check 0xC4 / 0x62 points at it (parameter 2).
    ///
    /// ```
    /// let kernel = ntpool::emulated::Kernel::builder().driver_name("mine.sys").build();
    /// assert_eq!(kernel.driver_name(), "mine.sys");
    /// ```
    pub fn driver_name(&self) -> &str {
        &self.state.config.driver_name
    }

    /// Bug checks that were raised while the thread was already unwinding from another one. They do
    /// not panic (a second panic would abort the test process); they are collected here.
    ///
    /// ```
    /// let kernel = ntpool::emulated::Kernel::new();
    /// assert!(kernel.deferred_bug_checks().is_empty());
    /// ```
    pub fn deferred_bug_checks(&self) -> Vec<BugCheck> {
        self.state.take_deferred()
    }
}

/// Configures a [`Kernel`].
///
/// ```
/// use ntpool::emulated::Kernel;
/// let kernel = Kernel::builder().driver_name("mydriver.sys").ex_allocate_pool2(false).build();
/// assert!(!kernel.run(ntpool::sys::uses_ex_allocate_pool2));
/// ```
#[derive(Clone, Debug, Default)]
pub struct KernelBuilder {
    config: Config,
}

impl KernelBuilder {
    /// With Driver Verifier's checks (the default): violations are reported with the codes of bug
    /// check 0xC4. Without them, the kernel's own `BAD_POOL_CALLER` (0xC2) codes are used, and a zero
    /// tag makes `ExAllocatePool2` return NULL.
    ///
    /// ```
    /// use ntpool::emulated::{catch_bug_check, Kernel};
    /// use ntpool::sys;
    ///
    /// // A zero-byte request is a violation; who reports it depends on Driver Verifier.
    /// let violation = || {
    ///     catch_bug_check(|| {
    ///         // SAFETY: a deliberate violation that the emulated kernel reports.
    ///         let _ = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_NON_PAGED, 0, u32::from_le_bytes(*b"Doc1")) };
    ///     })
    ///     .unwrap_err()
    /// };
    /// let verified = Kernel::new().run(violation);
    /// assert_eq!((verified.code, verified.parameters[0]), (sys::DRIVER_VERIFIER_DETECTED_VIOLATION, 0x00));
    /// let plain = Kernel::builder().driver_verifier(false).build();
    /// let unverified = plain.run(violation);
    /// assert_eq!((unverified.code, unverified.parameters[0]), (sys::BAD_POOL_CALLER, 0x00));
    ///
    /// // SAFETY: a zero tag, which this kernel answers with NULL instead of a bug check.
    /// let block = plain.run(|| unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_NON_PAGED, 8, 0) });
    /// assert!(block.is_null());
    /// ```
    pub fn driver_verifier(mut self, on: bool) -> Self {
        self.config.verifier = on;
        self
    }

    /// Whether the kernel exports `ExAllocatePool2` (the default). Without it, the kernel behaves
    /// like Windows before 10 version 2004 or Wine, and ntpool falls back to
    /// `ExAllocatePoolWithTag`.
    ///
    /// ```
    /// use ntpool::emulated::Kernel;
    /// use ntpool::{NonPagedBox, Passive};
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    ///
    /// let kernel = Kernel::builder().ex_allocate_pool2(false).build();
    /// kernel.run(|| {
    ///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    ///     let passive = unsafe { Passive::assume() };
    ///     let block = NonPagedBox::<[u8; 8], Doc>::try_new_zeroed(&passive).unwrap();
    ///     // The fallback routine served the request, and the block is still zeroed.
    ///     assert_eq!(kernel.outstanding()[0].routine, "ExAllocatePoolWithTag");
    ///     // SAFETY: all-zero bytes are a valid `[u8; 8]`.
    ///     assert_eq!(*unsafe { block.assume_init() }, [0; 8]);
    /// });
    /// ```
    pub fn ex_allocate_pool2(mut self, exported: bool) -> Self {
        self.config.ex_allocate_pool2 = exported;
        self
    }

    /// Makes the `n`th allocation request (counting from 1) fail, as Driver Verifier's systematic
    /// low resources simulation does.
    ///
    /// ```
    /// use ntpool::emulated::Kernel;
    /// use ntpool::{AllocError, NonPagedBox, Passive};
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    ///
    /// Kernel::builder().fail_allocation(2).build().run(|| {
    ///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    ///     let passive = unsafe { Passive::assume() };
    ///     let first = NonPagedBox::<u32, Doc>::try_new(&passive, 1);
    ///     let second = NonPagedBox::<u32, Doc>::try_new(&passive, 2);
    ///     let third = NonPagedBox::<u32, Doc>::try_new(&passive, 3);
    ///     assert!(first.is_ok() && third.is_ok());
    ///     assert_eq!(second.unwrap_err(), AllocError);
    /// });
    /// ```
    pub fn fail_allocation(mut self, n: u64) -> Self {
        self.config.fail_allocation = Some(n);
        self
    }

    /// Driver Verifier's low resources simulation: each allocation request fails with probability
    /// `percent` / 100, drawn from a generator seeded with `seed` (the same seed fails the same
    /// requests).
    ///
    /// ```
    /// use ntpool::{NonPagedBox, Passive};
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// let kernel = ntpool::emulated::Kernel::builder().low_resources_simulation(7, 50).build();
    /// let failed = kernel.run(|| {
    ///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    ///     let passive = unsafe { Passive::assume() };
    ///     (0..200).filter(|_| NonPagedBox::<u8, Doc>::try_new(&passive, 0).is_err()).count()
    /// });
    /// assert!((60..140).contains(&failed), "{failed} of 200 failed");
    /// ```
    pub fn low_resources_simulation(mut self, seed: u64, percent: u8) -> Self {
        self.config.low_resources = Some((seed, percent.min(100)));
        self
    }

    /// Driver Verifier's special pool for every allocation below a page: each block gets pages of its
    /// own next to an inaccessible guard page (after it for [`SpecialPoolAlignment::VerifyEnd`],
    /// before it for [`SpecialPoolAlignment::VerifyStart`]); the rest of its page is filled with a
    /// pattern checked at free (bug check 0xC1); a touch of the guard page stops with 0xCD; freed
    /// blocks stay inaccessible while in quarantine, so a use after free stops with 0xCC.
    ///
    /// Faults end the process with the stop line (they cannot unwind): test them with
    /// [`expect_stop_in_child`]. Linux on x86_64 only.
    ///
    /// ```
    /// use ntpool::emulated::{Kernel, SpecialPoolAlignment};
    /// use ntpool::{NonPagedBox, Passive};
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// let kernel = Kernel::builder().special_pool(SpecialPoolAlignment::VerifyEnd).build();
    /// kernel.run(|| {
    ///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    ///     let passive = unsafe { Passive::assume() };
    ///     let b = NonPagedBox::<[u8; 24], Doc>::try_new(&passive, [1; 24]).unwrap();
    ///     // The block ends 8 bytes short of a page boundary: 24 rounded up to 16-byte alignment.
    ///     assert_eq!((b.as_ptr() as usize + 24 + 8) % 4096, 0);
    /// });
    /// ```
    #[cfg(ntpool_pages)]
    pub fn special_pool(mut self, alignment: SpecialPoolAlignment) -> Self {
        self.config.special_pool = Some(alignment);
        self
    }

    /// Special pool for blocks of this tag only (see [`KernelBuilder::special_pool`]).
    ///
    /// ```
    /// use ntpool::emulated::{Kernel, SpecialPoolAlignment};
    /// use ntpool::{PoolTag, Tag};
    /// ntpool::pool_tag!(struct Suspect = b"Susp");
    /// let kernel = Kernel::builder().special_pool_tag(Suspect::TAG, SpecialPoolAlignment::VerifyEnd).build();
    /// # drop(kernel);
    /// ```
    #[cfg(ntpool_pages)]
    pub fn special_pool_tag(mut self, tag: crate::PoolTag, alignment: SpecialPoolAlignment) -> Self {
        self.config.special_pool = Some(alignment);
        self.config.special_pool_tag = Some(tag.to_ulong());
        self
    }

    /// Driver Verifier's Force IRQL Checking: every raise to `DISPATCH_LEVEL` makes all pageable
    /// blocks inaccessible, so that touching paged memory at `DISPATCH_LEVEL` or above stops with
    /// bug check 0xD1 (`DRIVER_IRQL_NOT_LESS_OR_EQUAL`: address, IRQL, 0 read / 1 write / 8
    /// execute, instruction address) every time, instead of only when the page happens to be out.
    /// Below `DISPATCH_LEVEL` a touch pages the block back in. Test the stop with
    /// [`expect_stop_in_child`]. Linux on x86_64 only.
    ///
    /// ```
    /// use ntpool::{PagedBox, Passive};
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// let kernel = ntpool::emulated::Kernel::builder().force_irql_checking(true).build();
    /// kernel.run(|| {
    ///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    ///     let mut passive = unsafe { Passive::assume() };
    ///     let b = PagedBox::<u32, Doc>::try_new(&passive, 5).unwrap();
    ///     passive.raise_to_dispatch((), |_, ()| ()); // trims all pageable memory
    ///     assert_eq!(*b.get(&passive), 5); // paged back in at PASSIVE_LEVEL
    /// });
    /// ```
    #[cfg(ntpool_pages)]
    pub fn force_irql_checking(mut self, on: bool) -> Self {
        self.config.force_irql_checking = on;
        self
    }

    /// The driver's file name, as reports show it (`driver.sys` by default).
    ///
    /// ```
    /// use ntpool::emulated::Kernel;
    /// use ntpool::{NonPagedBox, Passive};
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    ///
    /// let kernel = Kernel::builder().driver_name("mydriver.sys").build();
    /// kernel.run(|| {
    ///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    ///     let passive = unsafe { Passive::assume() };
    ///     NonPagedBox::leak(NonPagedBox::<u32, Doc>::try_new(&passive, 1).unwrap());
    /// });
    /// let leak = kernel.verify_unload().unwrap_err();
    /// assert!(leak.report.starts_with("mydriver.sys is unloading"));
    /// ```
    pub fn driver_name(mut self, name: &str) -> Self {
        self.config.driver_name = name.into();
        self
    }

    /// What a block allocated without zeroing is filled with (0xCD by default), so that a test can
    /// run the same code with two patterns and see whether any uninitialized byte gets out.
    ///
    /// ```
    /// use ntpool::emulated::Kernel;
    /// use ntpool::sys;
    ///
    /// let kernel = Kernel::builder().uninitialized_fill(0x5A).build();
    /// kernel.run(|| {
    ///     // SAFETY: 8 bytes, a valid tag, freed below with it.
    ///     let block = unsafe { sys::ExAllocatePoolWithTag(sys::NonPagedPoolNx, 8, u32::from_le_bytes(*b"Doc1")) };
    ///     // SAFETY: the block holds 8 bytes.
    ///     assert_eq!(unsafe { *block.cast::<u8>() }, 0x5A);
    ///     // SAFETY: allocated above with this tag, freed once.
    ///     unsafe { sys::ExFreePoolWithTag(block, u32::from_le_bytes(*b"Doc1")) };
    /// });
    /// ```
    pub fn uninitialized_fill(mut self, fill: u8) -> Self {
        self.config.uninitialized_fill = fill;
        self
    }

    /// Which alignment promises the pool keeps ([`PoolAlignment::Windows`] unless told otherwise).
    /// A kernel that breaks them shows whether code relies on more than it checks: ntpool itself
    /// hands out blocks aligned for their layout on every one of them.
    ///
    /// ```
    /// use ntpool::emulated::{Kernel, PoolAlignment};
    /// use ntpool::{NonPagedBox, Passive};
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// #[repr(C, align(4096))]
    /// struct Page([u8; 4096]);
    ///
    /// let kernel = Kernel::builder().pool_alignment(PoolAlignment::Heap).build();
    /// kernel.run(|| {
    ///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    ///     let passive = unsafe { Passive::assume() };
    ///     // The kernel's block of 8 KiB does not start on a page; the box's does all the same.
    ///     let page = NonPagedBox::<Page, Doc>::try_new(&passive, Page([0; 4096])).unwrap();
    ///     assert_eq!(page.as_ptr() as usize % 4096, 0);
    /// });
    /// assert!(kernel.verify_unload().is_ok());
    /// ```
    pub fn pool_alignment(mut self, alignment: PoolAlignment) -> Self {
        self.config.pool_alignment = alignment;
        self
    }

    /// The configured kernel.
    ///
    /// ```
    /// use ntpool::emulated::Kernel;
    /// let kernel = Kernel::builder().build(); // the same as `Kernel::new()`
    /// assert!(kernel.run(ntpool::sys::uses_ex_allocate_pool2));
    /// assert!(kernel.outstanding().is_empty());
    /// ```
    pub fn build(self) -> Kernel {
        Kernel { state: Arc::new(State::new(self.config)) }
    }
}

/// Which alignment promises an emulated pool keeps ([`KernelBuilder::pool_alignment`]). Special pool
/// and Force IRQL Checking place their blocks on pages of their own as Windows does, whatever this
/// says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PoolAlignment {
    /// Windows' promises, and no more: every block on 16 bytes (`MEMORY_ALLOCATION_ALIGNMENT`, never
    /// on 32 unless asked), a cache line with `POOL_FLAG_CACHE_ALIGNED` or a cache-aligned pool type,
    /// and a page for blocks of a page or more.
    #[default]
    Windows,
    /// A heap's, as Wine 8's pool: every block on 16 bytes and never on 32, so none starts on a cache
    /// line or a page, whatever its size or pool type.
    Heap,
    /// Not even `MEMORY_ALLOCATION_ALIGNMENT`: every block starts 8 bytes past a 16-byte boundary.
    Eight,
}

/// Where Driver Verifier's special pool puts a block on its page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpecialPoolAlignment {
    /// "Verify End" (Driver Verifier's default): the block ends where a guard page begins, so
    /// overruns fault.
    VerifyEnd,
    /// "Verify Start": the block starts right after a guard page, so underruns fault.
    VerifyStart,
}

/// The environment variable that tells a test binary which scenario to run as a child.
const CHILD_SCENARIO: &str = "NTPOOL_STOP_SCENARIO";

/// Runs `scenario` in a child process (the current test binary, re-run for the test named
/// `test_name` alone) and returns the bug check that stopped it.
///
/// For the stops that cannot unwind: those found by the page-fault handler of special pool and
/// Force IRQL Checking, which end the process as a real bug check ends the machine. In the child
/// this function runs `scenario` and exits; in the parent it spawns the child, reads the stop line
/// from its error output and panics if there is none. `test_name` must be the test's full name as
/// the test harness knows it (for an integration test, the function's name).
///
/// ```no_run
/// use ntpool::emulated::{expect_stop_in_child, Kernel, SpecialPoolAlignment};
/// use ntpool::{NonPagedBox, Passive};
/// ntpool::pool_tag!(struct Doc = b"Doc1");
///
/// #[test]
/// fn overrun_stops_with_0xcd() {
///     let stop = expect_stop_in_child("overrun_stops_with_0xcd", || {
///         let kernel = Kernel::builder().special_pool(SpecialPoolAlignment::VerifyEnd).build();
///         kernel.run(|| {
///             // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
///             let passive = unsafe { Passive::assume() };
///             let b = NonPagedBox::<[u8; 16], Doc>::try_new(&passive, [0; 16]).unwrap();
///             // SAFETY: deliberately wrong: one byte past the block.
///             unsafe { b.as_ptr().cast::<u8>().add(16).read_volatile() };
///         });
///     });
///     assert_eq!(stop.code, 0xCD);
/// }
/// ```
pub fn expect_stop_in_child(test_name: &str, scenario: impl FnOnce()) -> BugCheck {
    if std::env::var(CHILD_SCENARIO).as_deref() == Ok(test_name) {
        scenario();
        std::eprintln!("ntpool: the scenario ended without a bug check");
        std::process::exit(0);
    }
    let executable = std::env::current_exe().expect("the test binary's path");
    let output = std::process::Command::new(executable)
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_SCENARIO, test_name)
        .output()
        .expect("the test binary runs");
    let stderr = std::string::String::from_utf8_lossy(&output.stderr);
    stderr
        .lines()
        .find_map(BugCheck::parse_stop_line)
        .unwrap_or_else(|| panic!("{test_name}: the child stopped without a bug check ({})\n{stderr}", output.status))
}

/// A bug check: Microsoft's stop code and its four parameters, as `KeBugCheckEx` takes them.
///
/// ```
/// use ntpool::emulated::Kernel;
/// use ntpool::{NonPagedBox, Passive};
/// ntpool::pool_tag!(struct Doc = b"Doc1");
///
/// let kernel = Kernel::new();
/// kernel.run(|| {
///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
///     let passive = unsafe { Passive::assume() };
///     NonPagedBox::leak(NonPagedBox::<u32, Doc>::try_new(&passive, 1).unwrap());
/// });
/// let bug_check = kernel.verify_unload().unwrap_err();
/// assert_eq!(bug_check.code, ntpool::sys::DRIVER_VERIFIER_DETECTED_VIOLATION);
/// let name = kernel.driver_name().as_ptr() as u64;
/// assert_eq!(bug_check.parameters, [0x62, name, 0, 1]); // one block left at unload
/// assert!(bug_check.to_string().starts_with("*** STOP: 0x000000C4"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BugCheck {
    /// The stop code, for example `0xC2` (`BAD_POOL_CALLER`).
    pub code: u32,
    /// The four parameters; the first is the subcode for 0xC2 and 0xC4.
    pub parameters: [u64; 4],
    /// Extra detail where the emulated kernel has it (for example the list of leaked blocks).
    pub report: String,
}

impl BugCheck {
    pub(crate) fn new(code: u32, parameters: [u64; 4]) -> Self {
        BugCheck { code, parameters, report: String::new() }
    }

    /// Reads a stop line as [`BugCheck`]'s `Display` writes it (`*** STOP: 0x000000C2 (0x..., ...)`).
    fn parse_stop_line(line: &str) -> Option<BugCheck> {
        let rest = line.trim().strip_prefix("*** STOP: 0x")?;
        let (code, rest) = rest.split_once(" (")?;
        let (list, _) = rest.split_once(')')?;
        let mut parameters = [0u64; 4];
        let mut values = list.split(", ");
        for parameter in &mut parameters {
            *parameter = u64::from_str_radix(values.next()?.strip_prefix("0x")?, 16).ok()?;
        }
        Some(BugCheck::new(u32::from_str_radix(code, 16).ok()?, parameters))
    }

    /// The stop code's name as Microsoft spells it.
    ///
    /// ```
    /// let bug_check = ntpool::emulated::BugCheck { code: 0xC2, parameters: [0x0A, 0, 0, 0], report: String::new() };
    /// assert_eq!(bug_check.name(), "BAD_POOL_CALLER");
    /// ```
    pub fn name(&self) -> &'static str {
        bug_check_name(self.code)
    }
}

/// The name of a stop code as Microsoft spells it.
pub(crate) fn bug_check_name(code: u32) -> &'static str {
    match code {
        0x09 => "IRQL_NOT_GREATER_OR_EQUAL",
        0x0A => "IRQL_NOT_LESS_OR_EQUAL",
        0xC1 => "SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION",
        0xC2 => "BAD_POOL_CALLER",
        0xC4 => "DRIVER_VERIFIER_DETECTED_VIOLATION",
        0xCC => "PAGE_FAULT_IN_FREED_SPECIAL_POOL",
        0xCD => "PAGE_FAULT_BEYOND_END_OF_ALLOCATION",
        0xD1 => "DRIVER_IRQL_NOT_LESS_OR_EQUAL",
        0x1E => "KMODE_EXCEPTION_NOT_HANDLED",
        0xCE => "DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS",
        0x139 => "KERNEL_SECURITY_CHECK_FAILURE",
        _ => "UNKNOWN_BUG_CHECK",
    }
}

impl fmt::Display for BugCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [p1, p2, p3, p4] = self.parameters;
        write!(
            f,
            "*** STOP: 0x{:08X} (0x{p1:016X}, 0x{p2:016X}, 0x{p3:016X}, 0x{p4:016X}) {}",
            self.code,
            self.name()
        )?;
        if !self.report.is_empty() {
            write!(f, "\n{}", self.report)?;
        }
        Ok(())
    }
}

/// Runs `f` and returns the bug check it raised, if any; any other panic goes on unwinding.
///
/// ```
/// use ntpool::emulated::{catch_bug_check, Kernel};
/// let kernel = Kernel::new();
/// let result = kernel.run(|| catch_bug_check(|| {
///     // SAFETY: a deliberate bug check on the emulated kernel.
///     unsafe { ntpool::sys::KeBugCheckEx(0xC2, 0x0A, 1, 2, 3) }
/// }));
/// assert_eq!(result.unwrap_err().parameters, [0x0A, 1, 2, 3]);
/// ```
pub fn catch_bug_check<R>(f: impl FnOnce() -> R) -> Result<R, BugCheck> {
    install_panic_hook();
    let irql = current_irql();
    let result = kernel::quietly(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    match result {
        Ok(value) => Ok(value),
        Err(payload) => match payload.downcast::<BugCheck>() {
            Ok(bug_check) => {
                // A bug check ends the machine; this test goes on, at the IRQL it started with.
                if current_irql() != irql {
                    kernel::force_irql(irql);
                }
                Err(*bug_check)
            }
            Err(other) => std::panic::resume_unwind(other),
        },
    }
}

fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| match info.payload().downcast_ref::<BugCheck>() {
            Some(_) if kernel::is_quiet() => {}
            Some(bug_check) => std::eprintln!("{bug_check}\n  raised at {}", DisplayLocation(info.location())),
            None => previous(info),
        }));
    });
}

struct DisplayLocation<'a>(Option<&'a std::panic::Location<'a>>);

impl fmt::Display for DisplayLocation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(location) => write!(f, "{location}"),
            None => f.write_str("an unknown location"),
        }
    }
}

/// Which pool a block lives in, as poolmon groups them.
///
/// ```
/// use ntpool::emulated::{Kernel, PoolKind};
/// use ntpool::{NonPagedBox, PagedBox, Passive};
/// ntpool::pool_tag!(struct Doc = b"Doc1");
///
/// let kernel = Kernel::new();
/// kernel.run(|| {
///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
///     let passive = unsafe { Passive::assume() };
///     let _paged = PagedBox::<u32, Doc>::try_new(&passive, 1).unwrap();
///     let _non_paged = NonPagedBox::<u32, Doc>::try_new(&passive, 2).unwrap();
///     let mut pools: Vec<PoolKind> = kernel.outstanding().iter().map(|block| block.pool).collect();
///     pools.sort();
///     assert_eq!(pools, [PoolKind::Paged, PoolKind::NonPaged]);
/// });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PoolKind {
    /// Paged pool.
    Paged,
    /// Non-paged, non-executable pool.
    NonPaged,
    /// Non-paged, executable pool.
    NonPagedExecute,
}

impl PoolKind {
    pub(crate) fn of_pool_type(pool_type: POOL_TYPE, executable: bool) -> Self {
        if sys::pool_type_is_paged(pool_type) {
            PoolKind::Paged
        } else if executable {
            PoolKind::NonPagedExecute
        } else {
            PoolKind::NonPaged
        }
    }

    /// The short name poolmon uses (`Paged`, `Nonp`, `NonpX`).
    ///
    /// ```
    /// use ntpool::emulated::PoolKind;
    /// assert_eq!(PoolKind::Paged.short_name(), "Paged");
    /// assert_eq!(PoolKind::NonPaged.short_name(), "Nonp");
    /// assert_eq!(PoolKind::NonPagedExecute.short_name(), "NonpX");
    /// ```
    pub fn short_name(self) -> &'static str {
        match self {
            PoolKind::Paged => "Paged",
            PoolKind::NonPaged => "Nonp",
            PoolKind::NonPagedExecute => "NonpX",
        }
    }
}

/// One block that is still allocated.
///
/// ```
/// use ntpool::emulated::{Kernel, PoolKind};
/// use ntpool::{NonPagedBox, Passive};
/// ntpool::pool_tag!(struct Doc = b"Doc1");
///
/// let kernel = Kernel::new();
/// kernel.run(|| {
///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
///     let passive = unsafe { Passive::assume() };
///     let _block = NonPagedBox::<[u8; 24], Doc>::try_new(&passive, [0; 24]).unwrap();
///     let line = line!() - 1;
///     let allocation = &kernel.outstanding()[0];
///     assert_eq!(allocation.tag.to_string(), "Doc1");
///     assert_eq!((allocation.pool, allocation.size), (PoolKind::NonPaged, 24));
///     assert_eq!(allocation.routine, "ExAllocatePool2");
///     assert_eq!(allocation.line, line); // the allocation site is this example, not ntpool
/// });
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allocation {
    /// The block's address.
    pub address: usize,
    /// Its tag, as the allocation routine received it.
    pub tag: RawTag,
    /// Its pool.
    pub pool: PoolKind,
    /// The size the caller asked for.
    pub size: usize,
    /// The routine that allocated it (`ExAllocatePool2`, `ExAllocatePoolWithTag`, or
    /// `VideoPortAllocatePool` with the `videoport` feature).
    pub routine: &'static str,
    /// The source file of the allocation site (the first caller outside ntpool).
    pub file: &'static str,
    /// Its line.
    pub line: u32,
    /// Its column.
    pub column: u32,
}

impl fmt::Display for Allocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:5} {:>8} bytes at {:#x}, allocated by {} at {}:{}:{}",
            self.tag,
            self.pool.short_name(),
            self.size,
            self.address,
            self.routine,
            self.file,
            self.line,
            self.column
        )
    }
}

/// A source location that requested pool, with its counts ([`Kernel::allocation_sites`]).
///
/// ```
/// use ntpool::emulated::Kernel;
/// use ntpool::{PagedBox, Passive};
/// ntpool::pool_tag!(struct Doc = b"Doc1");
///
/// let kernel = Kernel::new();
/// kernel.run(|| {
///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
///     let passive = unsafe { Passive::assume() };
///     let _block = PagedBox::<u8, Doc>::try_new(&passive, 1).unwrap();
/// });
/// let site = &kernel.allocation_sites()[0];
/// assert!(site.file.ends_with(".rs"));
/// assert_eq!((site.calls, site.failed), (1, 0));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AllocationSite {
    /// The source file.
    pub file: &'static str,
    /// The line.
    pub line: u32,
    /// The column.
    pub column: u32,
    /// Allocation requests made from here.
    pub calls: u64,
    /// Requests the low resources simulation failed.
    pub failed: u64,
}

impl fmt::Display for AllocationSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// The pool usage table of an emulated kernel, as poolmon shows it.
///
/// ```
/// use ntpool::emulated::Kernel;
/// use ntpool::{NonPagedBox, PagedBox, Passive};
/// ntpool::pool_tag!(struct Names = b"MyNm");
/// ntpool::pool_tag!(struct Items = b"MyIt");
///
/// let kernel = Kernel::new();
/// kernel.run(|| {
///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
///     let passive = unsafe { Passive::assume() };
///     let _name = PagedBox::<[u8], Names>::try_from_slice(&passive, b"device0").unwrap();
///     let _item = NonPagedBox::<u64, Items>::try_new(&passive, 1).unwrap();
///     let usage = kernel.pool_usage();
///     let tags: Vec<String> = usage.rows.iter().map(|row| row.tag.to_string()).collect();
///     assert_eq!(tags, ["MyIt", "MyNm"]); // in tag order
///     assert!(usage.to_string().starts_with(" Tag  Type")); // poolmon's header
/// });
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolUsage {
    /// One row per tag and pool, in tag order.
    pub rows: Vec<PoolUsageRow>,
}

/// One row of the pool usage table.
///
/// ```
/// use ntpool::emulated::{Kernel, PoolKind};
/// use ntpool::{PagedBox, Passive};
/// ntpool::pool_tag!(struct Doc = b"Doc1");
///
/// let kernel = Kernel::new();
/// kernel.run(|| {
///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
///     let passive = unsafe { Passive::assume() };
///     let _kept = PagedBox::<[u8], Doc>::try_from_slice(&passive, b"abc").unwrap();
///     drop(PagedBox::<u32, Doc>::try_new(&passive, 1).unwrap());
///     let row = &kernel.pool_usage().rows[0];
///     assert_eq!((row.pool, row.allocs, row.frees, row.bytes), (PoolKind::Paged, 2, 1, 3));
/// });
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolUsageRow {
    /// The tag (shown `.` for unprintable bytes when it is not a valid tag).
    pub tag: RawTag,
    /// The pool.
    pub pool: PoolKind,
    /// Successful allocations.
    pub allocs: u64,
    /// Frees.
    pub frees: u64,
    /// Bytes in use (allocated and not yet freed).
    pub bytes: u64,
}

impl PoolUsageRow {
    pub(crate) fn new(tag: ULONG, pool: PoolKind) -> Self {
        PoolUsageRow { tag: RawTag(tag), pool, allocs: 0, frees: 0, bytes: 0 }
    }

    /// Allocations not yet freed.
    ///
    /// ```
    /// use ntpool::emulated::Kernel;
    /// use ntpool::{NonPagedBox, Passive};
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    ///
    /// let kernel = Kernel::new();
    /// kernel.run(|| {
    ///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    ///     let passive = unsafe { Passive::assume() };
    ///     let _kept = NonPagedBox::<u32, Doc>::try_new(&passive, 1).unwrap();
    ///     drop(NonPagedBox::<u32, Doc>::try_new(&passive, 2).unwrap());
    ///     assert_eq!(kernel.pool_usage().rows[0].diff(), 1);
    /// });
    /// assert_eq!(kernel.pool_usage().rows[0].diff(), 0);
    /// ```
    pub fn diff(&self) -> u64 {
        self.allocs - self.frees
    }
}

/// A tag value as the kernel received it, valid or not; displays as poolmon does.
///
/// ```
/// use ntpool::emulated::RawTag;
/// assert_eq!(RawTag(u32::from_le_bytes(*b"Doc1")).to_string(), "Doc1");
/// assert_eq!(RawTag(u32::from_le_bytes(*b"ab\0\n")).to_string(), "ab.."); // invalid: shown as poolmon does
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RawTag(pub ULONG);

impl fmt::Display for RawTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match PoolTag::from_raw(self.0) {
            Ok(tag) => fmt::Display::fmt(&tag, f),
            Err(_) => {
                for byte in self.0.to_le_bytes() {
                    let printable = (0x20..0x7F).contains(&byte);
                    fmt::Write::write_char(f, if printable { byte as char } else { '.' })?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for PoolUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, " Tag  Type       Allocs      Frees       Diff      Bytes")?;
        for row in &self.rows {
            writeln!(
                f,
                " {} {:5} {:>10} {:>10} {:>10} {:>10}",
                row.tag,
                row.pool.short_name(),
                row.allocs,
                row.frees,
                row.diff(),
                row.bytes
            )?;
        }
        Ok(())
    }
}

impl Kernel {
    /// Bug check 0xCE (`DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS`) if a lookaside list
    /// the driver initialized was not deleted: the kernel keeps every list on a global list and
    /// visits it to adjust its depth, so after the unload it would touch the driver's freed memory.
    /// Parameter 1 is the list's address (the memory the kernel would reference), parameter 2 zero
    /// (a read). Part of [`Kernel::verify_unload`].
    ///
    /// ```
    /// use ntpool::sys;
    /// let kernel = ntpool::emulated::Kernel::new();
    /// let mut list = Box::new(core::mem::MaybeUninit::<sys::NPAGED_LOOKASIDE_LIST>::uninit());
    /// kernel.run(|| {
    ///     // SAFETY: the list stays put; it is deliberately not deleted.
    ///     unsafe { sys::ExInitializeNPagedLookasideList(list.as_mut_ptr(), None, None, 0x200, 32, 0x31636F44, 0) };
    /// });
    /// let stop = kernel.verify_lookaside_lists_deleted().unwrap_err();
    /// assert_eq!((stop.code, stop.parameters[0]), (0xCE, list.as_ptr() as u64));
    /// assert!(stop.report.contains("ExInitializeNPagedLookasideList"));
    /// ```
    pub fn verify_lookaside_lists_deleted(&self) -> Result<(), BugCheck> {
        let lists = self.state.lookaside.lock().unwrap_or_else(|p| p.into_inner()).live.clone();
        let Some((&first, _)) = lists.iter().next() else { return Ok(()) };
        let mut report = std::format!(
            "{} is unloading without deleting {} lookaside list(s):\n",
            self.state.config.driver_name,
            lists.len()
        );
        for (address, list) in &lists {
            report.push_str(&std::format!(
                "  {} {:5} entries of {} bytes, list at {address:#x}, initialized by {} at {}:{}:{}\n",
                RawTag(list.tag),
                PoolKind::of_pool_type(list.pool_type, list.pool_type & 0x201 == 0).short_name(),
                list.size,
                list.routine,
                list.site.file(),
                list.site.line(),
                list.site.column()
            ));
        }
        let mut bug_check =
            BugCheck::new(lookaside::DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS, [first as u64, 0, 0, 0]);
        bug_check.report = report;
        Err(bug_check)
    }

    /// The pool quota charged to each process that has been charged, by process id.
    ///
    /// ```
    /// use ntpool::{PagedBox, Passive};
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// let kernel = ntpool::emulated::Kernel::new();
    /// kernel.run(|| {
    ///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    ///     let passive = unsafe { Passive::assume() };
    ///     let block = ntpool::emulated::in_process(1234, || PagedBox::<[u8], Doc>::try_new_zeroed_slice_with_quota(&passive, 100));
    ///     let charge = kernel.quota_charges()[0];
    ///     assert_eq!((charge.process, charge.paged, charge.non_paged), (1234, 100, 0));
    ///     drop(block);
    /// });
    /// assert_eq!(kernel.quota_charges()[0].paged, 0); // returned with the free
    /// ```
    pub fn quota_charges(&self) -> Vec<QuotaCharge> {
        self.state
            .quota()
            .into_iter()
            .map(|(process, paged, non_paged)| QuotaCharge { process, paged, non_paged })
            .collect()
    }
}

/// Bytes of pool charged to one process's quota (allocations with `POOL_FLAG_USE_QUOTA` or
/// `ExAllocatePoolWithQuotaTag` that are not freed yet).
///
/// ```
/// let charge = ntpool::emulated::QuotaCharge { process: 4, paged: 0, non_paged: 16 };
/// assert_eq!(charge.paged + charge.non_paged, 16);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaCharge {
    /// The process id.
    pub process: u64,
    /// Paged bytes.
    pub paged: u64,
    /// Non-paged bytes.
    pub non_paged: u64,
}

/// Runs `f` with the calling thread attached to the process `process` (an id of your choosing): quota
/// allocations made in `f` are charged to it. Outside, threads belong to the System process (4).
///
/// ```
/// use ntpool::emulated::{in_process, Kernel};
/// use ntpool::{NonPagedBox, Passive};
/// ntpool::pool_tag!(struct Doc = b"Doc1");
/// let kernel = Kernel::new();
/// kernel.run(|| {
///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
///     let passive = unsafe { Passive::assume() };
///     let _a = in_process(100, || NonPagedBox::<u32, Doc>::try_new_with_quota(&passive, 1)).unwrap();
///     let _b = NonPagedBox::<u32, Doc>::try_new_with_quota(&passive, 2).unwrap();
///     let processes: Vec<u64> = kernel.quota_charges().iter().map(|c| c.process).collect();
///     assert_eq!(processes, [4, 100]);
/// });
/// ```
pub fn in_process<R>(process: u64, f: impl FnOnce() -> R) -> R {
    kernel::in_process(process, f)
}

impl KernelBuilder {
    /// Whether the kernel exports `ExInitializeLookasideListEx` and `ExDeleteLookasideListEx`
    /// (the default, as Windows since Vista). Without them the kernel behaves like Wine 8, and
    /// [`LookasideList`](crate::LookasideList) uses `NPAGED_LOOKASIDE_LIST` / `PAGED_LOOKASIDE_LIST`.
    ///
    /// ```
    /// let wine = ntpool::emulated::Kernel::builder().lookaside_list_ex(false).build();
    /// assert!(!wine.run(ntpool::sys::uses_lookaside_list_ex));
    /// ```
    pub fn lookaside_list_ex(mut self, exported: bool) -> Self {
        self.config.lookaside_list_ex = exported;
        self
    }

    /// Limits every process's pool quota to `bytes` (paged and non-paged together): a quota
    /// allocation beyond it fails.
    ///
    /// ```
    /// use ntpool::{NonPagedBox, Passive};
    /// ntpool::pool_tag!(struct Doc = b"Doc1");
    /// let kernel = ntpool::emulated::Kernel::builder().process_quota(64).build();
    /// kernel.run(|| {
    ///     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
    ///     let passive = unsafe { Passive::assume() };
    ///     let _fits = NonPagedBox::<[u8; 64], Doc>::try_new_with_quota(&passive, [0; 64]).unwrap();
    ///     assert!(NonPagedBox::<u8, Doc>::try_new_with_quota(&passive, 0).is_err());
    ///     assert!(NonPagedBox::<u8, Doc>::try_new(&passive, 0).is_ok()); // not charged: no limit
    /// });
    /// ```
    pub fn process_quota(mut self, bytes: u64) -> Self {
        self.config.process_quota = Some(bytes);
        self
    }
}
