//! The emulated kernel's public face: [`Kernel`], a handle to one kernel (its pool, its
//! configuration, the bug checks it deferred) that code runs in, and [`KernelBuilder`], which
//! configures it. The top of the emulated kernel: it reads what the modules below it keep.

use core::fmt;
use std::sync::Arc;
use std::vec::Vec;

#[cfg(ntpool_pages)]
use super::config::SpecialPoolAlignment;
use super::config::{Config, PoolAlignment};
#[cfg(ntpool_pages)]
use super::reports::RawTag;
use super::reports::{self, Allocation, AllocationSite, BugCheck, PoolUsage, QuotaCharge, install_panic_hook};
use super::state::{self, State};

/// One emulated kernel: its pool, its configuration, and the bug checks it deferred.
///
/// Cloning a `Kernel` gives another handle to the same kernel (for other threads).
///
/// ```
/// use ntpool_sys::emulated::Kernel;
/// use ntpool_sys as sys;
///
/// let kernel = Kernel::new();
/// let handle = kernel.clone();
/// let tag = u32::from_le_bytes(*b"Doc1");
/// let block = std::thread::spawn(move || {
///     // SAFETY: a plain allocation at PASSIVE_LEVEL, freed below with its tag.
///     handle.run(|| unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_NON_PAGED, 4, tag) }) as usize
/// })
/// .join()
/// .unwrap();
/// // The other thread allocated from the same kernel.
/// assert_eq!(kernel.outstanding().len(), 1);
/// // SAFETY: allocated above with this tag, freed once.
/// kernel.run(|| unsafe { sys::ExFreePoolWithTag(block as sys::PVOID, tag) });
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
    /// let kernel = ntpool_sys::emulated::Kernel::new();
    /// assert!(kernel.outstanding().is_empty());
    /// ```
    pub fn new() -> Self {
        KernelBuilder::default().build()
    }

    /// A builder to configure the kernel.
    ///
    /// ```
    /// let kernel = ntpool_sys::emulated::Kernel::builder().ex_allocate_pool2(false).build();
    /// kernel.run(|| assert!(!ntpool_sys::uses_ex_allocate_pool2()));
    /// ```
    pub fn builder() -> KernelBuilder {
        KernelBuilder::default()
    }

    /// Runs `f` on the calling thread with this kernel as the thread's kernel. Threads that `f`
    /// spawns must enter it themselves (with `run` on a clone of this handle).
    ///
    /// ```
    /// use ntpool_sys::emulated::Kernel;
    /// let kernel = Kernel::new();
    /// let irql = kernel.run(|| ntpool_sys::KeGetCurrentIrql());
    /// assert_eq!(irql, ntpool_sys::PASSIVE_LEVEL);
    /// ```
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        install_panic_hook();
        let _entered = state::enter(self.state.clone());
        f()
    }

    /// The poolmon-style table of this kernel: per tag and pool, allocations, frees and bytes in use.
    ///
    /// ```
    /// use ntpool_sys as sys;
    /// let kernel = ntpool_sys::emulated::Kernel::new();
    /// kernel.run(|| {
    ///     let tag = u32::from_le_bytes(*b"Doc1");
    ///     // SAFETY: a plain allocation at PASSIVE_LEVEL, freed at once with its tag.
    ///     unsafe { sys::ExFreePoolWithTag(sys::ExAllocatePool2(sys::POOL_FLAG_NON_PAGED, 8, tag), tag) };
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
    /// let kernel = ntpool_sys::emulated::Kernel::new();
    /// assert!(kernel.outstanding().is_empty());
    /// ```
    pub fn outstanding(&self) -> Vec<Allocation> {
        self.state.outstanding()
    }

    /// How many allocation requests reached the pool so far (failed ones included, invalid ones not).
    ///
    /// ```
    /// let kernel = ntpool_sys::emulated::Kernel::new();
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
    /// use ntpool_sys::emulated::Kernel;
    /// use ntpool_sys as sys;
    ///
    /// let kernel = Kernel::builder().fail_allocation(2).build();
    /// kernel.run(|| {
    ///     let tag = u32::from_le_bytes(*b"Doc1");
    ///     for _ in 0..3 {
    ///         // SAFETY: plain allocations at PASSIVE_LEVEL, each freed at once (NULL when it failed).
    ///         let block = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_NON_PAGED, 4, tag) };
    ///         if !block.is_null() {
    ///             // SAFETY: allocated just above with this tag, freed once.
    ///             unsafe { sys::ExFreePoolWithTag(block, tag) };
    ///         }
    ///     }
    /// });
    /// let sites = kernel.allocation_sites();
    /// assert_eq!(sites.len(), 1); // one call site, three requests, the second one failed
    /// assert_eq!((sites[0].line, sites[0].calls, sites[0].failed), (line!() - 9, 3, 1));
    /// ```
    pub fn allocation_sites(&self) -> Vec<AllocationSite> {
        self.state.allocation_sites()
    }

    /// What Driver Verifier checks when the driver unloads: `Ok` if every lookaside list was deleted
    /// ([`Kernel::verify_lookaside_lists_deleted`]) and, with pool tracking
    /// ([`KernelBuilder::pool_tracking`]), every block freed; else the bug check: for blocks, 0xC4 /
    /// 0x62 (`DRIVER_VERIFIER_DETECTED_VIOLATION`, driver unloading with outstanding allocations) with
    /// a report naming every leaked block, its tag, pool, size and the source location that allocated
    /// it, followed by the pool usage table. Without pool tracking leaks are not looked for, as on
    /// Windows ([`Kernel::outstanding`] still lists them).
    ///
    /// ```
    /// let kernel = ntpool_sys::emulated::Kernel::new();
    /// assert!(kernel.verify_unload().is_ok());
    /// ```
    pub fn verify_unload(&self) -> Result<(), BugCheck> {
        self.verify_lookaside_lists_deleted()?;
        self.verify_kernel_objects_idle()?;
        let leaks = self.outstanding();
        if leaks.is_empty() || !self.state.config.pool_tracking() {
            return Ok(());
        }
        Err(reports::leaked_blocks(&self.state.config.driver_name, &leaks, &self.pool_usage()))
    }

    /// The driver's file name reports use; bug check 0xC4 / 0x62 points at it (parameter 2).
    ///
    /// ```
    /// let kernel = ntpool_sys::emulated::Kernel::builder().driver_name("mine.sys").build();
    /// assert_eq!(kernel.driver_name(), "mine.sys");
    /// ```
    pub fn driver_name(&self) -> &str {
        &self.state.config.driver_name
    }

    /// Bug checks that were raised while the thread was already unwinding from another one. They do
    /// not panic (a second panic would abort the test process); they are collected here.
    ///
    /// ```
    /// let kernel = ntpool_sys::emulated::Kernel::new();
    /// assert!(kernel.deferred_bug_checks().is_empty());
    /// ```
    pub fn deferred_bug_checks(&self) -> Vec<BugCheck> {
        self.state.take_deferred()
    }
}

impl Kernel {
    /// Moves the clock that timers run on forward by `by` (in 100 ns steps), on the calling thread:
    /// every timer that comes due on the way is signaled and queues its DPC, which runs at once at
    /// `DISPATCH_LEVEL`; periodic timers fire once per period passed. See `KeSetTimerEx`.
    ///
    /// ```
    /// let kernel = ntpool_sys::emulated::Kernel::new();
    /// kernel.advance_clock(std::time::Duration::from_millis(5));
    /// assert_eq!(kernel.clock(), 50_000);
    /// ```
    pub fn advance_clock(&self, by: core::time::Duration) {
        let ticks = u64::try_from(by.as_nanos() / 100).unwrap_or(u64::MAX);
        self.run(|| super::timer::advance(ticks));
    }

    /// The clock timers run on, in 100 ns units since the kernel was made.
    ///
    /// ```
    /// assert_eq!(ntpool_sys::emulated::Kernel::new().clock(), 0);
    /// ```
    pub fn clock(&self) -> u64 {
        self.state.objects.lock().clock
    }

    /// Waits until every queued work item has run; `Err` with the first bug check a work item's
    /// routine raised on its worker thread, if any did.
    ///
    /// ```
    /// assert!(ntpool_sys::emulated::Kernel::new().wait_for_work_items().is_ok());
    /// ```
    pub fn wait_for_work_items(&self) -> Result<(), BugCheck> {
        super::work::wait_idle(&self.state).into_iter().next().map_or(Ok(()), Err)
    }

    /// How many DPC routines and work item routines this kernel has called so far.
    ///
    /// ```
    /// assert_eq!(ntpool_sys::emulated::Kernel::new().routines_called(), (0, 0));
    /// ```
    pub fn routines_called(&self) -> (u64, u64) {
        self.state.objects.lock().calls
    }

    /// Bug check 0xCE (`DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS`) if a timer is still
    /// armed, a DPC still queued, or a work item still queued, running or not freed: the kernel would
    /// call into, or write, the unloaded driver's memory. Parameter 1 is the first such object,
    /// parameter 2 is 1 (a write), parameter 3 the work item's routine where there is one; the report
    /// lists them all. Part of [`Kernel::verify_unload`].
    ///
    /// ```
    /// use ntpool_sys as sys;
    /// let kernel = ntpool_sys::emulated::Kernel::new();
    /// let mut timer = Box::new(core::mem::MaybeUninit::<sys::KTIMER>::uninit());
    /// kernel.run(|| {
    ///     // SAFETY: the timer stays put; it is deliberately left armed.
    ///     unsafe {
    ///         sys::KeInitializeTimerEx(timer.as_mut_ptr(), sys::NotificationTimer);
    ///         sys::KeSetTimerEx(timer.as_mut_ptr(), sys::LARGE_INTEGER { QuadPart: -1 }, 0, core::ptr::null_mut());
    ///     }
    /// });
    /// let stop = kernel.verify_kernel_objects_idle().unwrap_err();
    /// assert_eq!((stop.code, stop.parameters[0]), (0xCE, timer.as_ptr() as u64));
    /// ```
    pub fn verify_kernel_objects_idle(&self) -> Result<(), BugCheck> {
        self.state.objects.lock().check_unload(&self.state.config.driver_name).map_or(Ok(()), Err)
    }
}

/// Configures a [`Kernel`].
///
/// ```
/// use ntpool_sys::emulated::Kernel;
/// let kernel = Kernel::builder().driver_name("mydriver.sys").ex_allocate_pool2(false).build();
/// assert!(!kernel.run(ntpool_sys::uses_ex_allocate_pool2));
/// ```
#[derive(Clone, Debug, Default)]
pub struct KernelBuilder {
    pub(super) config: Config,
}

impl KernelBuilder {
    /// With Driver Verifier's checks (the default): violations are reported with the codes of bug
    /// check 0xC4. Without them, the kernel's own `BAD_POOL_CALLER` (0xC2) codes are used, and a zero
    /// tag makes `ExAllocatePool2` return NULL.
    ///
    /// ```
    /// use ntpool_sys::emulated::{catch_bug_check, Kernel};
    /// use ntpool_sys as sys;
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
    /// like Windows before 10 version 2004 or Wine, and [`ExAllocatePool2`](crate::ExAllocatePool2)
    /// falls back to `ExAllocatePoolWithTag`.
    ///
    /// ```
    /// use ntpool_sys::emulated::Kernel;
    /// use ntpool_sys as sys;
    ///
    /// let kernel = Kernel::builder().ex_allocate_pool2(false).build();
    /// kernel.run(|| {
    ///     let tag = u32::from_le_bytes(*b"Doc1");
    ///     // SAFETY: a plain allocation at PASSIVE_LEVEL, freed below with its tag.
    ///     let block = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_NON_PAGED, 8, tag) };
    ///     // The fallback routine served the request, and the block is still zeroed.
    ///     assert_eq!(kernel.outstanding()[0].routine, "ExAllocatePoolWithTag");
    ///     // SAFETY: the block holds 8 bytes.
    ///     assert_eq!(unsafe { block.cast::<[u8; 8]>().read() }, [0; 8]);
    ///     // SAFETY: allocated above with this tag, freed once.
    ///     unsafe { sys::ExFreePoolWithTag(block, tag) };
    /// });
    /// ```
    pub fn ex_allocate_pool2(mut self, exported: bool) -> Self {
        self.config.ex_allocate_pool2 = exported;
        self
    }

    /// Whether the kernel exports `ExAllocatePool3` (the default; as Windows 10 version 2004 and later,
    /// and only where `ExAllocatePool2` is exported too). Without it, [`ExAllocatePool3`](crate::ExAllocatePool3)
    /// falls back to `ExAllocatePool2` without the extended parameters. The emulated kernel has one
    /// NUMA node, node 0.
    ///
    /// ```
    /// use ntpool_sys::{self as sys, emulated::Kernel, POOL_EXTENDED_PARAMETER as Parameter};
    ///
    /// let tag = u32::from_le_bytes(*b"Doc1");
    /// let node_1 = [Parameter::numa_node(1)]; // a required node this machine does not have
    /// for exported in [true, false] {
    ///     let kernel = Kernel::builder().ex_allocate_pool3(exported).build();
    ///     kernel.run(|| {
    ///         assert_eq!(sys::uses_ex_allocate_pool3(), exported);
    ///         // SAFETY: a plain allocation at PASSIVE_LEVEL with one parameter.
    ///         let block = unsafe { sys::ExAllocatePool3(sys::POOL_FLAG_NON_PAGED, 8, tag, node_1.as_ptr(), 1) };
    ///         // ExAllocatePool3 refuses the node; the fallback drops it and allocates.
    ///         assert_eq!(block.is_null(), exported);
    ///         if !block.is_null() {
    ///             assert_eq!(kernel.outstanding()[0].routine, "ExAllocatePool2");
    ///             // SAFETY: allocated above with this tag, freed once.
    ///             unsafe { sys::ExFreePoolWithTag(block, tag) };
    ///         }
    ///     });
    /// }
    /// ```
    pub fn ex_allocate_pool3(mut self, exported: bool) -> Self {
        self.config.ex_allocate_pool3 = exported;
        self
    }

    /// Makes the `n`th allocation request (counting from 1) fail, as Driver Verifier's systematic
    /// low resources simulation does.
    ///
    /// ```
    /// use ntpool_sys::emulated::Kernel;
    /// use ntpool_sys as sys;
    ///
    /// Kernel::builder().fail_allocation(2).build().run(|| {
    ///     let tag = u32::from_le_bytes(*b"Doc1");
    ///     // SAFETY: plain allocations at PASSIVE_LEVEL; those that succeed are freed below.
    ///     let blocks = [(); 3].map(|()| unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_NON_PAGED, 4, tag) });
    ///     assert_eq!(blocks.map(|block| block.is_null()), [false, true, false]);
    ///     for block in [blocks[0], blocks[2]] {
    ///         // SAFETY: allocated above with this tag, freed once.
    ///         unsafe { sys::ExFreePoolWithTag(block, tag) };
    ///     }
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
    /// use ntpool_sys as sys;
    /// let kernel = ntpool_sys::emulated::Kernel::builder().low_resources_simulation(7, 50).build();
    /// let failed = kernel.run(|| {
    ///     let tag = u32::from_le_bytes(*b"Doc1");
    ///     let fails = || {
    ///         // SAFETY: a plain allocation at PASSIVE_LEVEL, freed at once when it succeeded.
    ///         let block = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_NON_PAGED, 1, tag) };
    ///         if !block.is_null() {
    ///             // SAFETY: allocated just above with this tag, freed once.
    ///             unsafe { sys::ExFreePoolWithTag(block, tag) };
    ///         }
    ///         block.is_null()
    ///     };
    ///     (0..200).filter(|_| fails()).count()
    /// });
    /// assert!((60..140).contains(&failed), "{failed} of 200 failed");
    /// ```
    pub fn low_resources_simulation(mut self, seed: u64, percent: u8) -> Self {
        self.config.low_resources = Some((seed, percent.min(100)));
        self
    }

    /// Driver Verifier's special pool for every allocation below a page: each block gets a page of
    /// its own next to an inaccessible guard page (after it for [`SpecialPoolAlignment::VerifyEnd`],
    /// before it for [`SpecialPoolAlignment::VerifyStart`]); the rest of its page is filled with a
    /// pattern checked at free (bug check 0xC1); a touch of the guard page stops with 0xCD; freed
    /// blocks stay inaccessible while in quarantine (and after, until their page is reused), so a use
    /// after free stops with 0xCC. The pages are slots of an arena, reused from block to block: a
    /// free makes its page inaccessible with one `mprotect`, and pages leaving quarantine are made
    /// accessible again in batches. `NTPOOL_SPECIAL_POOL=1` turns it on for every kernel
    /// ([`KernelBuilder::build`]).
    ///
    /// Faults end the process with the stop line (they cannot unwind): test them with
    /// [`expect_stop_in_child`](super::expect_stop_in_child). Linux on x86_64 only.
    ///
    /// ```
    /// use ntpool_sys::emulated::{Kernel, SpecialPoolAlignment};
    /// use ntpool_sys as sys;
    /// let kernel = Kernel::builder().special_pool(SpecialPoolAlignment::VerifyEnd).build();
    /// kernel.run(|| {
    ///     let tag = u32::from_le_bytes(*b"Doc1");
    ///     // SAFETY: a plain allocation at PASSIVE_LEVEL, freed below with its tag.
    ///     let b = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_NON_PAGED, 24, tag) };
    ///     // The block ends 8 bytes short of a page boundary: 24 rounded up to 16-byte alignment.
    ///     assert_eq!((b as usize + 24 + 8) % 4096, 0);
    ///     // SAFETY: allocated above with this tag, freed once.
    ///     unsafe { sys::ExFreePoolWithTag(b, tag) };
    /// });
    /// ```
    #[cfg(ntpool_pages)]
    pub fn special_pool(mut self, alignment: SpecialPoolAlignment) -> Self {
        self.config.special_pool = Some(alignment);
        self.config.special_pool_chosen = true;
        self
    }

    /// No special pool (the default), even when the environment variable `NTPOOL_SPECIAL_POOL` turns
    /// it on for every other kernel ([`KernelBuilder::build`]): for a test of what special pool
    /// changes (the heap pool's overrun zone, where a block starts on its page).
    ///
    /// ```
    /// use ntpool_sys::emulated::Kernel;
    /// use ntpool_sys as sys;
    /// let kernel = Kernel::builder().no_special_pool().build();
    /// kernel.run(|| {
    ///     let tag = u32::from_le_bytes(*b"Doc1");
    ///     // SAFETY: a plain allocation at PASSIVE_LEVEL, freed below with its tag.
    ///     let b = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_NON_PAGED, 24, tag) };
    ///     // A heap block, whatever NTPOOL_SPECIAL_POOL says: it does not end against a guard page.
    ///     assert_ne!((b as usize + 32) % 4096, 0);
    ///     // SAFETY: allocated above with this tag, freed once.
    ///     unsafe { sys::ExFreePoolWithTag(b, tag) };
    /// });
    /// ```
    pub fn no_special_pool(mut self) -> Self {
        self.config.special_pool = None;
        self.config.special_pool_tag = None;
        self.config.special_pool_chosen = true;
        self
    }

    /// Special pool for blocks of this tag only (see [`KernelBuilder::special_pool`]). The tag is a
    /// [`RawTag`] (or a `ULONG`; ntpool's `PoolTag` converts too).
    ///
    /// ```
    /// use ntpool_sys::emulated::{Kernel, RawTag, SpecialPoolAlignment};
    /// use ntpool_sys as sys;
    /// let (suspect, other) = (u32::from_le_bytes(*b"Susp"), u32::from_le_bytes(*b"Othr"));
    /// let kernel = Kernel::builder().special_pool_tag(RawTag(suspect), SpecialPoolAlignment::VerifyEnd).build();
    /// kernel.run(|| {
    ///     let flags = sys::POOL_FLAG_NON_PAGED;
    ///     // SAFETY: plain allocations at PASSIVE_LEVEL, freed below with their tags.
    ///     let (a, b) = unsafe { (sys::ExAllocatePool2(flags, 24, suspect), sys::ExAllocatePool2(flags, 24, other)) };
    ///     // Only the suspect's block ends where a guard page begins (24 bytes and 8 of slack).
    ///     assert!((a as usize + 32) % 4096 == 0 && (b as usize + 32) % 4096 != 0);
    ///     // SAFETY: allocated above with these tags, freed once.
    ///     unsafe { sys::ExFreePoolWithTag(a, suspect) };
    ///     // SAFETY: as above.
    ///     unsafe { sys::ExFreePoolWithTag(b, other) };
    /// });
    /// ```
    #[cfg(ntpool_pages)]
    pub fn special_pool_tag(mut self, tag: impl Into<RawTag>, alignment: SpecialPoolAlignment) -> Self {
        self.config.special_pool = Some(alignment);
        self.config.special_pool_tag = Some(tag.into().0);
        self.config.special_pool_chosen = true;
        self
    }

    /// Driver Verifier's Force IRQL Checking: every raise to `DISPATCH_LEVEL` makes all pageable
    /// blocks inaccessible, so that touching paged memory at `DISPATCH_LEVEL` or above stops with
    /// bug check 0xD1 (`DRIVER_IRQL_NOT_LESS_OR_EQUAL`: address, IRQL, 0 read / 1 write / 8
    /// execute, instruction address) every time, instead of only when the page happens to be out.
    /// Below `DISPATCH_LEVEL` a touch pages the block back in. Test the stop with
    /// [`expect_stop_in_child`](super::expect_stop_in_child). Linux on x86_64 only.
    ///
    /// ```
    /// use ntpool_sys as sys;
    /// let kernel = ntpool_sys::emulated::Kernel::builder().force_irql_checking(true).build();
    /// kernel.run(|| {
    ///     let tag = u32::from_le_bytes(*b"Doc1");
    ///     // SAFETY: a paged allocation at PASSIVE_LEVEL, freed below with its tag.
    ///     let b = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_PAGED, 4, tag) }.cast::<u32>();
    ///     // SAFETY: the block holds 4 bytes; touched at PASSIVE_LEVEL.
    ///     unsafe { b.write(5) };
    ///     // SAFETY: a raise and the matching lower, touching nothing in between.
    ///     unsafe { sys::KeLowerIrql(sys::KfRaiseIrql(sys::DISPATCH_LEVEL)) }; // trims all pageable memory
    ///     // SAFETY: as above: paged back in at PASSIVE_LEVEL.
    ///     assert_eq!(unsafe { b.read() }, 5);
    ///     // SAFETY: allocated above with this tag, freed once.
    ///     unsafe { sys::ExFreePoolWithTag(b.cast(), tag) };
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
    /// use ntpool_sys::emulated::Kernel;
    /// use ntpool_sys as sys;
    ///
    /// let kernel = Kernel::builder().driver_name("mydriver.sys").build();
    /// kernel.run(|| {
    ///     // SAFETY: a plain allocation at PASSIVE_LEVEL, deliberately never freed.
    ///     let _leaked = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_NON_PAGED, 4, u32::from_le_bytes(*b"Doc1")) };
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
    /// use ntpool_sys::emulated::Kernel;
    /// use ntpool_sys as sys;
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
    /// A kernel that breaks them shows whether code relies on more than it checks (ntpool's
    /// documentation of `ntpool::emulated` shows its boxes aligned on every one of them).
    ///
    /// ```
    /// use ntpool_sys::emulated::{Kernel, PoolAlignment};
    /// use ntpool_sys as sys;
    ///
    /// let page_aligned = |alignment| {
    ///     let kernel = Kernel::builder().pool_alignment(alignment).build();
    ///     kernel.run(|| {
    ///         let tag = u32::from_le_bytes(*b"Doc1");
    ///         // SAFETY: a plain allocation at PASSIVE_LEVEL, freed below with its tag.
    ///         let block = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_NON_PAGED, 8192, tag) };
    ///         // SAFETY: allocated above with this tag, freed once.
    ///         unsafe { sys::ExFreePoolWithTag(block, tag) };
    ///         block as usize % 4096 == 0
    ///     })
    /// };
    /// // Windows puts a block of a page or more on a page; a heap (Wine's pool) does not.
    /// assert!(page_aligned(PoolAlignment::Windows));
    /// assert!(!page_aligned(PoolAlignment::Heap));
    /// ```
    pub fn pool_alignment(mut self, alignment: PoolAlignment) -> Self {
        self.config.pool_alignment = alignment;
        self
    }

    /// The configured kernel.
    ///
    /// The environment variable `NTPOOL_SPECIAL_POOL` turns special pool on for every allocation
    /// below a page of every kernel whose builder did not choose (`KernelBuilder::special_pool`,
    /// `KernelBuilder::special_pool_tag`, [`KernelBuilder::no_special_pool`]) and that keeps
    /// Windows' alignment promises ([`KernelBuilder::pool_alignment`]), the process-wide default
    /// kernel included: `1` or `end` for `SpecialPoolAlignment::VerifyEnd`, `start` for
    /// `SpecialPoolAlignment::VerifyStart` (special pool exists on Linux on x86_64 only, so these are
    /// not links). A whole test suite then runs under special pool
    /// without a change to its code (`NTPOOL_SPECIAL_POOL=1 cargo test`), as Driver Verifier's
    /// settings apply to every driver they name. Linux on x86_64 only (elsewhere the variable is
    /// ignored).
    ///
    /// ```
    /// use ntpool_sys::emulated::Kernel;
    /// let kernel = Kernel::builder().build(); // the same as `Kernel::new()`
    /// assert!(kernel.run(ntpool_sys::uses_ex_allocate_pool2));
    /// assert!(kernel.outstanding().is_empty());
    /// ```
    pub fn build(self) -> Kernel {
        let mut config = self.config;
        config.apply_environment();
        Kernel { state: Arc::new(State::new(config)) }
    }
}

impl Kernel {
    /// A bug check if a lookaside list the driver initialized was not deleted: the kernel keeps every
    /// list on a global list and visits it to adjust its depth, so after the unload it would touch
    /// the driver's freed memory. With Driver Verifier, bug check 0xC7 (`TIMER_OR_DPC_INVALID`) at
    /// unload, as its automatic checks page says; the 0xC7 page documents no parameters for a
    /// lookaside list, so all four are 0 and the report names the lists. Without it, 0xCE
    /// (`DRIVER_UNLOADED_WITHOUT_CANCELLING_PENDING_OPERATIONS`), what the kernel's later visit runs
    /// into: parameter 1 the list's address (the memory the kernel would reference), parameter 2 zero
    /// (a read). Part of [`Kernel::verify_unload`].
    ///
    /// ```
    /// use ntpool_sys as sys;
    /// let kernel = ntpool_sys::emulated::Kernel::builder().driver_verifier(false).build();
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
        if lists.is_empty() {
            return Ok(());
        }
        let lists: Vec<_> = lists.into_iter().collect();
        Err(reports::undeleted_lookaside_lists(&self.state.config.driver_name, &lists, self.state.config.verifier))
    }

    /// The pool quota charged to each process that has been charged, by process id.
    ///
    /// ```
    /// use ntpool_sys as sys;
    /// let kernel = ntpool_sys::emulated::Kernel::new();
    /// kernel.run(|| {
    ///     let (flags, tag) = (sys::POOL_FLAG_PAGED | sys::POOL_FLAG_USE_QUOTA, u32::from_le_bytes(*b"Doc1"));
    ///     // SAFETY: a quota allocation at PASSIVE_LEVEL, freed below with its tag.
    ///     let block = ntpool_sys::emulated::in_process(1234, || unsafe { sys::ExAllocatePool2(flags, 100, tag) });
    ///     let charge = kernel.quota_charges()[0];
    ///     assert_eq!((charge.process, charge.paged, charge.non_paged), (1234, 100, 0));
    ///     // SAFETY: allocated above with this tag, freed once.
    ///     unsafe { sys::ExFreePoolWithTag(block, tag) };
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

impl KernelBuilder {
    /// Whether the kernel exports `ExInitializeLookasideListEx` and `ExDeleteLookasideListEx`
    /// (the default, as Windows since Vista). Without them the kernel behaves like Wine 8, and
    /// ntpool's `LookasideList` uses `NPAGED_LOOKASIDE_LIST` / `PAGED_LOOKASIDE_LIST`.
    ///
    /// ```
    /// let wine = ntpool_sys::emulated::Kernel::builder().lookaside_list_ex(false).build();
    /// assert!(!wine.run(ntpool_sys::uses_lookaside_list_ex));
    /// ```
    pub fn lookaside_list_ex(mut self, exported: bool) -> Self {
        self.config.lookaside_list_ex = exported;
        self
    }

    /// Limits every process's pool quota to `bytes` (paged and non-paged together): a quota
    /// allocation beyond it fails.
    ///
    /// ```
    /// use ntpool_sys as sys;
    /// let kernel = ntpool_sys::emulated::Kernel::builder().process_quota(64).build();
    /// kernel.run(|| {
    ///     let (flags, tag) = (sys::POOL_FLAG_NON_PAGED, u32::from_le_bytes(*b"Doc1"));
    ///     // SAFETY: allocations at PASSIVE_LEVEL; those that succeed are freed below with their tag.
    ///     let fits = unsafe { sys::ExAllocatePool2(flags | sys::POOL_FLAG_USE_QUOTA, 64, tag) };
    ///     // SAFETY: as above.
    ///     assert!(unsafe { sys::ExAllocatePool2(flags | sys::POOL_FLAG_USE_QUOTA, 1, tag) }.is_null());
    ///     // SAFETY: as above.
    ///     let not_charged = unsafe { sys::ExAllocatePool2(flags, 1, tag) }; // no limit
    ///     assert!(!fits.is_null() && !not_charged.is_null());
    ///     // SAFETY: allocated above with this tag, each freed once.
    ///     unsafe { sys::ExFreePoolWithTag(fits, tag) };
    ///     // SAFETY: as above.
    ///     unsafe { sys::ExFreePoolWithTag(not_charged, tag) };
    /// });
    /// ```
    pub fn process_quota(mut self, bytes: u64) -> Self {
        self.config.process_quota = Some(bytes);
        self
    }
}
