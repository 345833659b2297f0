//! Driver Verifier's options as [`KernelBuilder`] settings, each turning on the checks Windows ties
//! to it ([`checks`](super::checks) names the option of every check). Driver Verifier itself is
//! [`KernelBuilder::driver_verifier`]; special pool and Force IRQL Checking are
//! [`KernelBuilder::special_pool`] and [`KernelBuilder::force_irql_checking`].

use super::kernel::KernelBuilder;

impl KernelBuilder {
    /// Driver Verifier's pool tracking (on by default; nothing without
    /// [`driver_verifier`](KernelBuilder::driver_verifier)): blocks left at unload
    /// ([`Kernel::verify_unload`](super::Kernel::verify_unload): 0xC4 / 0x62), and a block written
    /// past its end, found when it is freed (0xC4 / 0x51: base address, first byte written beyond
    /// it, bytes charged). <https://learn.microsoft.com/windows-hardware/drivers/devtest/pool-tracking>
    ///
    /// ```
    /// use ntpool_sys::emulated::{catch_bug_check, Kernel};
    /// use ntpool_sys as sys;
    ///
    /// let overrun = |kernel: Kernel| {
    ///     kernel.run(|| {
    ///         let tag = u32::from_le_bytes(*b"Doc1");
    ///         // SAFETY: 20 bytes at PASSIVE_LEVEL, freed below.
    ///         let block = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_NON_PAGED, 20, tag) }.cast::<u8>();
    ///         // SAFETY: deliberately wrong, but inside the host's block: one byte past the end.
    ///         unsafe { block.add(20).write(0) };
    ///         // SAFETY: allocated above with this tag.
    ///         catch_bug_check(|| unsafe { sys::ExFreePoolWithTag(block.cast(), tag) }).err().map(|s| s.parameters)
    ///     })
    /// };
    /// let found = overrun(Kernel::new()).unwrap();
    /// assert_eq!((found[0], found[2] - found[1], found[3]), (0x51, 20, 20));
    /// assert!(overrun(Kernel::builder().pool_tracking(false).build()).is_none());
    /// ```
    pub fn pool_tracking(mut self, on: bool) -> Self {
        self.config.pool_tracking = on;
        self
    }

    /// Driver Verifier's code integrity checking (off by default, as in Windows' standard
    /// settings): an allocation of executable pool (`NonPagedPool`, `NonPagedPoolCacheAligned`,
    /// `POOL_FLAG_NON_PAGED_EXECUTE`, `VpNonPagedPool`) is bug check 0xC4 / 0x2000 (the caller's
    /// address, the pool type, the tag).
    /// <https://learn.microsoft.com/windows-hardware/drivers/devtest/code-integrity-checking>
    ///
    /// ```
    /// use ntpool_sys::emulated::{catch_bug_check, Kernel};
    /// use ntpool_sys as sys;
    ///
    /// let kernel = Kernel::builder().code_integrity(true).build();
    /// let tag = u32::from_le_bytes(*b"Doc1");
    /// let stop = kernel.run(|| {
    ///     // SAFETY: a deliberate violation that the emulated kernel reports.
    ///     catch_bug_check(|| unsafe { sys::ExAllocatePoolWithTag(sys::NonPagedPool, 8, tag) }).unwrap_err()
    /// });
    /// assert_eq!((stop.code, stop.parameters[0], stop.parameters[2], stop.parameters[3]), (0xC4, 0x2000, 0, tag.into()));
    /// ```
    pub fn code_integrity(mut self, on: bool) -> Self {
        self.config.code_integrity = on;
        self
    }

    /// Driver Verifier's deadlock detection (on by default): a spin lock or fast mutex acquired again
    /// by the thread that holds it is 0xC4 / 0x1000; a release by a thread that does not hold it is
    /// 0xC4 / 0x1004 (another thread holds it) or 0x1007 (nobody does). Without it Windows releases
    /// whatever the lock's state, and a second acquire hangs: the emulation then panics rather than
    /// hang the test. <https://learn.microsoft.com/windows-hardware/drivers/devtest/deadlock-detection>
    ///
    /// ```
    /// use ntpool_sys::emulated::{catch_bug_check, Kernel};
    /// use ntpool_sys::{self as sys, KSPIN_LOCK};
    ///
    /// let mut lock: KSPIN_LOCK = 0;
    /// let stop = Kernel::new().run(|| {
    ///     // SAFETY: a deliberate violation (a release of a lock nobody holds) at DISPATCH_LEVEL.
    ///     let old = unsafe { sys::KfRaiseIrql(sys::DISPATCH_LEVEL) };
    ///     // SAFETY: as above.
    ///     catch_bug_check(|| unsafe { sys::KeReleaseSpinLock(&mut lock, old) }).unwrap_err()
    /// });
    /// assert_eq!(stop.parameters, [0x1007, &raw mut lock as u64, 0, 0]);
    /// ```
    pub fn deadlock_detection(mut self, on: bool) -> Self {
        self.config.deadlock_detection = on;
        self
    }
}
