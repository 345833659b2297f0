//! How an emulated kernel behaves: what [`KernelBuilder`](super::KernelBuilder) sets, and the
//! choices it offers for the pool's alignment and for special pool.

use std::string::String;

use crate::ULONG;

/// Bytes a fresh block is filled with when the caller did not ask for zeroed memory, so that
/// reading uninitialized pool shows.
pub(crate) const UNINITIALIZED_FILL: u8 = 0xCD;

/// How an emulated kernel behaves; set through [`KernelBuilder`](super::KernelBuilder).
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) verifier: bool,
    /// Driver Verifier's pool tracking (on by default): leaks at unload (0xC4 / 0x62), overruns found
    /// at free (0xC4 / 0x51).
    pub(crate) pool_tracking: bool,
    /// Driver Verifier's code integrity checking (off by default): executable pool (0xC4 / 0x2000).
    pub(crate) code_integrity: bool,
    /// Driver Verifier's deadlock detection (on by default): a lock acquired twice, or released by a
    /// thread that does not hold it (0xC4 / 0x1000, 0x1004, 0x1007).
    pub(crate) deadlock_detection: bool,
    pub(crate) ex_allocate_pool2: bool,
    /// Whether `ExAllocatePool3` is exported (only where `ExAllocatePool2` is too).
    pub(crate) ex_allocate_pool3: bool,
    pub(crate) fail_allocation: Option<u64>,
    /// Low resources simulation: a seed, and the percentage of requests that fail.
    pub(crate) low_resources: Option<(u64, u8)>,
    pub(crate) special_pool: Option<SpecialPoolAlignment>,
    /// Special pool for this tag only (all tags when `None`).
    pub(crate) special_pool_tag: Option<ULONG>,
    /// Special pool was set on or off by the builder: [`SPECIAL_POOL_VARIABLE`] does not change it.
    pub(crate) special_pool_chosen: bool,
    #[cfg_attr(not(ntpool_pages), allow(dead_code))]
    pub(crate) force_irql_checking: bool,
    pub(crate) driver_name: String,
    /// What blocks not asked for zeroed are filled with.
    pub(crate) uninitialized_fill: u8,
    /// Whether `ExInitializeLookasideListEx` and `ExDeleteLookasideListEx` are exported.
    pub(crate) lookaside_list_ex: bool,
    /// The pool quota of every process, in bytes (paged and non-paged together).
    pub(crate) process_quota: Option<u64>,
    /// Which alignment promises the pool keeps.
    pub(crate) pool_alignment: PoolAlignment,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            verifier: true,
            pool_tracking: true,
            code_integrity: false,
            deadlock_detection: true,
            ex_allocate_pool2: true,
            ex_allocate_pool3: true,
            fail_allocation: None,
            low_resources: None,
            special_pool: None,
            special_pool_tag: None,
            special_pool_chosen: false,
            force_irql_checking: false,
            driver_name: "driver.sys".into(),
            uninitialized_fill: UNINITIALIZED_FILL,
            lookaside_list_ex: true,
            process_quota: None,
            pool_alignment: PoolAlignment::Windows,
        }
    }
}

/// The environment variable that turns special pool on for every kernel whose builder does not choose
/// ([`KernelBuilder::build`](super::KernelBuilder::build)).
pub(crate) const SPECIAL_POOL_VARIABLE: &str = "NTPOOL_SPECIAL_POOL";

impl Config {
    /// The default configuration, with special pool as [`SPECIAL_POOL_VARIABLE`] says (the
    /// process-wide default kernel's).
    pub(crate) fn from_environment() -> Self {
        let mut config = Config::default();
        config.apply_environment();
        config
    }

    /// Special pool for every allocation below a page when [`SPECIAL_POOL_VARIABLE`] is `1` or `end`
    /// ([`SpecialPoolAlignment::VerifyEnd`]) or `start` ([`SpecialPoolAlignment::VerifyStart`]),
    /// unless the builder chose (special pool on or off) or the kernel emulates a pool with other
    /// alignment promises than Windows' (what such a kernel tests, special pool's pages would hide);
    /// nothing otherwise. Only where special pool exists (Linux on x86_64).
    pub(crate) fn apply_environment(&mut self) {
        if cfg!(ntpool_pages) && !self.special_pool_chosen && self.pool_alignment == PoolAlignment::Windows {
            self.special_pool = match std::env::var(SPECIAL_POOL_VARIABLE).as_deref() {
                Ok("1" | "end") => Some(SpecialPoolAlignment::VerifyEnd),
                Ok("start") => Some(SpecialPoolAlignment::VerifyStart),
                _ => None,
            };
        }
    }

    /// Whether Driver Verifier runs with pool tracking.
    pub(crate) fn pool_tracking(&self) -> bool {
        self.verifier && self.pool_tracking
    }

    /// Whether Driver Verifier runs with code integrity checking.
    pub(crate) fn code_integrity(&self) -> bool {
        self.verifier && self.code_integrity
    }

    /// Whether Driver Verifier runs with deadlock detection.
    pub(crate) fn deadlock_detection(&self) -> bool {
        self.verifier && self.deadlock_detection
    }
}

/// Which alignment promises an emulated pool keeps ([`KernelBuilder::pool_alignment`](super::KernelBuilder::pool_alignment)). Special pool
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
