//! The state of one emulated kernel (its configuration, its pool's shards, its lookaside lists, the
//! bug checks it deferred) and which kernel a thread has entered ([`Kernel::run`](super::Kernel::run))
//! with the shard it uses there, with the queries its reports are made from. The routines above it reach their kernel through
//! [`current`] and [`with_current`].

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::vec::Vec;

use super::config::Config;
use super::objects::KernelObjects;
use super::reports::{
    Allocation, AllocationSite, BugCheck, ListRecord, PoolKind, PoolUsage, PoolUsageRow, RawTag, bug_check_now,
};
use super::shards::{Claim, Shard, Shards};
use crate::ULONG;

/// The lookaside lists of one emulated kernel.
#[derive(Debug, Default)]
pub(crate) struct Lists {
    /// Initialized and not deleted, by address.
    pub(crate) live: BTreeMap<usize, ListRecord>,
    /// Deleted (and not initialized again).
    pub(crate) deleted: HashSet<usize>,
}

/// The pool quota charged: bytes per process, and the process of each charged block (by address).
#[derive(Debug, Default)]
pub(crate) struct Quota {
    /// Bytes charged per process: (paged, non-paged).
    pub(crate) processes: BTreeMap<u64, (u64, u64)>,
    /// The process each live charged block is charged to.
    pub(crate) blocks: HashMap<usize, u64>,
}

/// What the allocation and free routines test of the configuration on every call, worked out once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hot {
    /// Blocks below a page with 16-byte alignment come from the heap, inline: no special pool, no
    /// Force IRQL Checking, Windows' alignment promises.
    pub(crate) heap_inline: bool,
    /// Failures are simulated (`fail_allocation` or the low resources simulation).
    pub(crate) simulated: bool,
    /// Pool tracking (with Driver Verifier): the overrun zone after heap blocks.
    pub(crate) tracking: bool,
}

impl Hot {
    fn of(config: &Config) -> Self {
        #[cfg(ntpool_pages)]
        let own_pages = config.special_pool.is_some() || config.force_irql_checking;
        #[cfg(not(ntpool_pages))]
        let own_pages = false;
        Hot {
            heap_inline: !own_pages && config.pool_alignment == super::config::PoolAlignment::Windows,
            simulated: config.fail_allocation.is_some() || config.low_resources.is_some(),
            tracking: config.pool_tracking(),
        }
    }
}

/// The state of one emulated kernel, shared by every thread that entered it. What an allocation and
/// a free write is in the calling thread's shard; the rest is read-only on that path, or written
/// only by the configurations that need it (the numbering of requests for
/// [`KernelBuilder::fail_allocation`](super::KernelBuilder::fail_allocation), the low resources
/// simulation's generator, quota), so that threads do not share a written cache line.
pub(crate) struct State {
    pub(crate) config: Config,
    pub(crate) hot: Hot,
    /// The pool's bookkeeping, one shard per thread inside the kernel.
    pub(crate) shards: Shards,
    /// The requests numbered in the order they reach the pool, for `fail_allocation` only (the
    /// count [`State::allocation_calls`] reports is the shards').
    pub(crate) numbered_calls: AtomicU64,
    /// Pool quota charged.
    quota: Mutex<Quota>,
    deferred: Mutex<Vec<BugCheck>>,
    /// The low resources simulation's generator (xorshift64*).
    random: Mutex<u64>,
    /// The lookaside lists initialized and not deleted, and those deleted.
    pub(crate) lookaside: Mutex<Lists>,
    /// DPCs, timers and work items.
    pub(crate) objects: KernelObjects,
    /// How many lookaside lists are live: a free looks for one in the block it frees (bug check
    /// 0xC4 / 0xCC) only when some are.
    pub(crate) live_lists: AtomicUsize,
}

impl State {
    pub(crate) fn new(config: Config) -> Self {
        // splitmix64 of the seed: every seed, zero included, gives a distinct non-zero state.
        let seed = config.low_resources.map_or(0, |(seed, _)| seed);
        let mut mixed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        let seed = (mixed ^ (mixed >> 31)).max(1);
        State {
            hot: Hot::of(&config),
            config,
            shards: Shards::default(),
            numbered_calls: AtomicU64::new(0),
            quota: Mutex::default(),
            deferred: Mutex::default(),
            random: Mutex::new(seed),
            lookaside: Mutex::default(),
            objects: KernelObjects::default(),
            live_lists: AtomicUsize::new(0),
        }
    }

    /// The next number of the low resources simulation's sequence.
    pub(crate) fn next_random(&self) -> u64 {
        let mut x = self.random.lock().unwrap_or_else(|p| p.into_inner());
        *x ^= *x >> 12;
        *x ^= *x << 25;
        *x ^= *x >> 27;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// The calling thread's shard of this kernel: the one it claimed when it entered the kernel, or
    /// (outside any [`Kernel::run`](super::Kernel::run) of it) one by thread id.
    #[inline(always)]
    pub(crate) fn shard(&self) -> &Shard {
        let (state, shard) = CURRENT.with(Cell::get);
        if core::ptr::eq(state, self) {
            // SAFETY: `enter` sets `CURRENT` to a state and the shard it claimed of that state, which
            // lives as long as the state does; the state is `self`, borrowed for the result's lifetime.
            return unsafe { &*shard };
        }
        self.shards.for_thread()
    }

    /// The charges of every process.
    pub(crate) fn quota_charges(&self) -> MutexGuard<'_, Quota> {
        self.quota.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many allocation requests reached the pool, on every shard.
    pub(crate) fn allocation_calls(&self) -> u64 {
        self.shards.iter().map(|shard| shard.lock().calls()).sum()
    }

    pub(crate) fn usage(&self) -> PoolUsage {
        // poolmon order: by tag as it reads, then by pool; one row per tag and pool, all shards added.
        // A shard counts its frees; its allocations are those and its live blocks.
        let mut rows: BTreeMap<([u8; 4], PoolKind), PoolUsageRow> = BTreeMap::new();
        let mut add = |tag: ULONG, kind: PoolKind, allocs: u64, frees: u64, bytes: u64| {
            let row = rows.entry((tag.to_le_bytes(), kind)).or_insert_with(|| PoolUsageRow::new(tag, kind));
            row.allocs += allocs;
            row.frees += frees;
            row.bytes += bytes;
        };
        for shard in self.shards.iter() {
            let pool = shard.lock();
            for (tag, kind, frees) in pool.frees() {
                add(tag, kind, frees, frees, 0);
            }
            for block in pool.live_blocks() {
                add(block.tag, block.kind, 1, 0, block.size as u64);
            }
        }
        PoolUsage { rows: rows.into_values().collect() }
    }

    pub(crate) fn outstanding(&self) -> Vec<Allocation> {
        let mut list = Vec::new();
        for shard in self.shards.iter() {
            let pool = shard.lock();
            list.extend(pool.live_blocks().map(|block| {
                let (site, routine) = pool.origin(block.origin);
                Allocation {
                    address: block.address,
                    tag: RawTag(block.tag),
                    pool: block.kind,
                    size: block.size,
                    routine,
                    file: site.file(),
                    line: site.line(),
                    column: site.column(),
                }
            }));
        }
        list.sort_by_key(|a| a.address);
        list
    }

    /// Bytes charged to each process's pool quota: (process, paged, non-paged), by process.
    pub(crate) fn quota(&self) -> Vec<(u64, u64, u64)> {
        self.quota_charges()
            .processes
            .iter()
            .map(|(&process, &(paged, non_paged))| (process, paged, non_paged))
            .collect()
    }

    pub(crate) fn allocation_sites(&self) -> Vec<AllocationSite> {
        // One source location may have more than one `Location` (one per codegen unit), and be
        // counted on more than one shard: merged.
        let mut sites: BTreeMap<(&'static str, u32, u32), (u64, u64)> = BTreeMap::new();
        for shard in self.shards.iter() {
            for (site, calls, failed) in shard.lock().sites() {
                let counts = sites.entry((site.file(), site.line(), site.column())).or_default();
                counts.0 += calls;
                counts.1 += failed;
            }
        }
        let sites = sites.into_iter();
        sites
            .map(|((file, line, column), (calls, failed))| AllocationSite { file, line, column, calls, failed })
            .collect()
    }

    pub(crate) fn take_deferred(&self) -> Vec<BugCheck> {
        core::mem::take(&mut *self.deferred.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Drop for State {
    fn drop(&mut self) {
        for shard in self.shards.iter_mut() {
            shard.get_mut().release_all();
        }
    }
}

static DEFAULT: OnceLock<Arc<State>> = OnceLock::new();

/// A kernel a thread has entered, and the shard it uses there.
struct Entered {
    state: Arc<State>,
    claim: Claim,
}

std::thread_local! {
    static ENTERED: RefCell<Vec<Entered>> = const { RefCell::new(Vec::new()) };
    /// The state at the top of `ENTERED` and its shard (both null when it is empty): what
    /// [`with_current`] and [`State::shard`] read, one load instead of a borrow of `ENTERED` and a
    /// reference count.
    static CURRENT: Cell<(*const State, *const Shard)> = const { Cell::new((core::ptr::null(), core::ptr::null())) };
}

fn default_state() -> &'static Arc<State> {
    DEFAULT.get_or_init(|| Arc::new(State::new(Config::from_environment())))
}

/// The kernel the calling thread has entered, or the process-wide default one.
pub(crate) fn current() -> Arc<State> {
    ENTERED.with(|entered| entered.borrow().last().map(|e| e.state.clone())).unwrap_or_else(|| default_state().clone())
}

/// Runs `f` with the kernel the calling thread has entered, or the process-wide default one: what
/// [`current`] returns, without taking a reference count (the pool routines' fast path).
#[inline(always)]
pub(crate) fn with_current<R>(f: impl FnOnce(&State) -> R) -> R {
    let (entered, _) = CURRENT.with(Cell::get);
    if entered.is_null() {
        return f(default_state());
    }
    // SAFETY: `CURRENT` points to the state of the `Arc` at the top of this thread's `ENTERED`
    // (`enter` and `EnterGuard::drop` keep it so). That `Arc` stays in `ENTERED` until the guard of
    // the `Kernel::run` that pushed it is dropped, which happens after `f` returns, since kernel
    // routines never return from the `run` they were called in.
    f(unsafe { &*entered })
}

/// Runs `f` with the kernel the calling thread has entered and the thread's shard of it, or the
/// process-wide default kernel and a shard by thread id: [`with_current`] and [`State::shard`] with
/// one read of the thread's state.
#[inline(always)]
pub(crate) fn with_current_shard<R>(f: impl FnOnce(&State, &Shard) -> R) -> R {
    let (mut entered, mut shard) = CURRENT.with(Cell::get);
    if entered.is_null() {
        (entered, shard) = default_and_shard();
    }
    // SAFETY: as in `with_current`, or the default state, which lives as long as the process;
    // `CURRENT`'s shard belongs to its state (`enter` sets both) and lives as long as the state.
    let state = unsafe { &*entered };
    // SAFETY: as above.
    f(state, unsafe { &*shard })
}

/// The default state and the calling thread's shard of it.
#[cold]
#[inline(never)]
fn default_and_shard() -> (*const State, *const Shard) {
    let state = default_state();
    (Arc::as_ptr(state), state.shards.for_thread())
}

/// Makes `state` the calling thread's kernel until the returned guard is dropped, with a shard of
/// its pool for the thread ([`Shards::claim`]).
pub(crate) fn enter(state: Arc<State>) -> EnterGuard {
    let claim = state.shards.claim();
    CURRENT.with(|current| current.set((Arc::as_ptr(&state), claim.shard)));
    ENTERED.with(|entered| entered.borrow_mut().push(Entered { state, claim }));
    EnterGuard(())
}

pub(crate) struct EnterGuard(());

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let left = ENTERED.with(|entered| {
            let mut entered = entered.borrow_mut();
            let left = entered.pop();
            let top = entered
                .last()
                .map_or((core::ptr::null(), core::ptr::null()), |e| (Arc::as_ptr(&e.state), e.claim.shard));
            CURRENT.with(|current| current.set(top));
            left
        });
        if let Some(left) = left {
            // Given back before the state's reference goes (the shard lives in the state).
            Shards::release(left.claim);
            drop(left.state);
        }
    }
}

/// Reports a violation. While the thread is already unwinding from an earlier bug check, a second
/// panic would abort the process, so the report is kept on the kernel (see
/// [`Kernel::deferred_bug_checks`](super::Kernel::deferred_bug_checks)) and the offending
/// operation is skipped.
pub(crate) fn bug_check(state: &State, code: ULONG, parameters: [u64; 4]) {
    if std::thread::panicking() {
        state.deferred.lock().unwrap_or_else(|p| p.into_inner()).push(BugCheck::new(code, parameters));
        return;
    }
    bug_check_now(code, parameters)
}

/// Reports a violation with its full report, as [`bug_check`] does.
pub(crate) fn raise(state: &State, stop: BugCheck) {
    if std::thread::panicking() {
        state.deferred.lock().unwrap_or_else(|p| p.into_inner()).push(stop);
        return;
    }
    std::panic::panic_any(stop)
}
