//! The emulated kernel's machinery: per-thread IRQL, the pool with its bookkeeping, spin locks and
//! bug checks. The public face is in the parent module; the routines here are what
//! [`crate::sys`] calls on a host build.

use std::alloc::Layout;
#[cfg(ntpool_pages)]
use std::boxed::Box;
use std::cell::{Cell, RefCell, UnsafeCell};
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::panic::Location;
use std::string::String;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::vec::Vec;

#[cfg(ntpool_pages)]
use super::pages::{self, Pages};
use super::{
    Allocation, AllocationSite, BugCheck, PoolAlignment, PoolKind, PoolUsage, PoolUsageRow, RawTag,
    SpecialPoolAlignment,
};
use crate::sys::{
    self, APC_LEVEL, BAD_POOL_CALLER, DISPATCH_LEVEL, DRIVER_VERIFIER_DETECTED_VIOLATION, KIRQL, KSPIN_LOCK,
    PASSIVE_LEVEL, POOL_FLAGS, POOL_TYPE, PVOID, SIZE_T, ULONG,
};

/// x64 pool blocks below a page are aligned on 16 bytes, and never more than that is promised.
const POOL_ALIGNMENT: usize = 16;
const PAGE_SIZE: usize = 4096;
const CACHE_LINE: usize = 64;
/// Bytes a fresh block is filled with when the caller did not ask for zeroed memory, so that
/// reading uninitialized pool shows.
pub(crate) const UNINITIALIZED_FILL: u8 = 0xCD;
/// Bytes a freed block is filled with while it sits in quarantine.
pub(crate) const FREED_FILL: u8 = 0xFE;
/// How many freed blocks are kept (unusable) so that a double free is recognised as such.
const QUARANTINE: usize = 4096;

/// How an emulated kernel behaves; set through [`KernelBuilder`](super::KernelBuilder).
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) verifier: bool,
    pub(crate) ex_allocate_pool2: bool,
    pub(crate) fail_allocation: Option<u64>,
    /// Low resources simulation: a seed, and the percentage of requests that fail.
    pub(crate) low_resources: Option<(u64, u8)>,
    pub(crate) special_pool: Option<SpecialPoolAlignment>,
    /// Special pool for this tag only (all tags when `None`).
    pub(crate) special_pool_tag: Option<ULONG>,
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
            ex_allocate_pool2: true,
            fail_allocation: None,
            low_resources: None,
            special_pool: None,
            special_pool_tag: None,
            force_irql_checking: false,
            driver_name: "driver.sys".into(),
            uninitialized_fill: UNINITIALIZED_FILL,
            lookaside_list_ex: true,
            process_quota: None,
            pool_alignment: PoolAlignment::Windows,
        }
    }
}

/// The memory behind a block.
#[derive(Clone, Debug)]
enum Backing {
    /// From the host's allocator: `base`, allocated with `layout`.
    Heap { base: usize, layout: Layout },
    /// Pages of its own: special pool, or pageable memory under Force IRQL Checking. (Boxed, so
    /// that the records of the far more common heap blocks stay small.)
    #[cfg(ntpool_pages)]
    Pages { pages: Box<Pages>, special: bool },
}

impl Backing {
    /// Gives the memory back to the host.
    fn release(&self) {
        match *self {
            // SAFETY: every heap block was allocated with exactly this layout, and is released once:
            // its record is dropped with it.
            Backing::Heap { base, layout } => unsafe { std::alloc::dealloc(base as *mut u8, layout) },
            #[cfg(ntpool_pages)]
            Backing::Pages { ref pages, .. } => pages.unmap(),
        }
    }
}

/// One live (or quarantined) pool block.
#[derive(Clone, Debug)]
struct Block {
    tag: ULONG,
    kind: PoolKind,
    pool_type: POOL_TYPE,
    size: usize,
    backing: Backing,
    site: &'static Location<'static>,
    routine: &'static str,
    /// The process the block is charged to, for quota allocations.
    charged: Option<u64>,
    /// Its row in [`Pool::usage`].
    row: usize,
}

/// A freed block in quarantine: its memory is still held (unusable), so that a second free of the
/// address is recognised as a double free.
#[derive(Clone, Debug)]
struct Retired {
    address: usize,
    tag: ULONG,
    backing: Backing,
}

/// The pool's bookkeeping. An allocation and a free make one insertion into and one removal from
/// the table of live blocks, with a cheap hash, and allocate nothing once the tables have grown;
/// only the error paths search the quarantine.
#[derive(Default)]
struct Pool {
    /// The live blocks, by address.
    live: LiveBlocks,
    /// Freed blocks; at most [`QUARANTINE`].
    quarantine: Quarantine,
    /// Heap blocks that left quarantine, kept for reuse.
    spare: Spare,
    /// poolmon's table, one row per tag and pool, in the order the rows were first needed.
    usage: Vec<PoolUsageRow>,
    /// Where the row of a (tag, pool) is in `usage`.
    rows: HashMap<(ULONG, PoolKind), usize, BuildHasherDefault<AddressHasher>>,
    /// The row found last, which the next allocation most often needs again.
    last_row: Option<(ULONG, PoolKind, usize)>,
    /// Bytes charged per process: (paged, non-paged).
    quota: BTreeMap<u64, (u64, u64)>,
    /// Per allocation site: the site, its requests, and how many of them the simulation failed.
    sites: Vec<(&'static Location<'static>, u64, u64)>,
    /// Where a site is in `sites`, by its address (cheaper than by its text).
    site_index: HashMap<usize, usize, BuildHasherDefault<AddressHasher>>,
    /// The site counted last (its address, 0 for none) and its index in `sites`: the next allocation
    /// most often comes from it again.
    last_site: (usize, usize),
}

impl Pool {
    /// The row of `usage` for `tag` in pool `kind`, made on first use.
    fn row(&mut self, tag: ULONG, kind: PoolKind) -> usize {
        if let Some((last_tag, last_kind, row)) = self.last_row {
            if (last_tag, last_kind) == (tag, kind) {
                return row;
            }
        }
        let usage = &mut self.usage;
        let row = *self.rows.entry((tag, kind)).or_insert_with(|| {
            usage.push(PoolUsageRow::new(tag, kind));
            usage.len() - 1
        });
        self.last_row = Some((tag, kind, row));
        row
    }

    /// Counts one allocation request from `site`, `failed` by the low resources simulation or not.
    #[inline(always)]
    fn count_site(&mut self, site: &'static Location<'static>, failed: bool) {
        let key = core::ptr::from_ref(site) as usize;
        let index = if self.last_site.0 == key { self.last_site.1 } else { self.site_slot(site) };
        if let Some(counts) = self.sites.get_mut(index) {
            counts.1 += 1;
            counts.2 += u64::from(failed);
        }
    }

    /// The index of `site` in `sites`, made on first use; it becomes the site counted last.
    #[cold]
    #[inline(never)]
    fn site_slot(&mut self, site: &'static Location<'static>) -> usize {
        let key = core::ptr::from_ref(site) as usize;
        let sites = &mut self.sites;
        let index = *self.site_index.entry(key).or_insert_with(|| {
            sites.push((site, 0, 0));
            sites.len() - 1
        });
        self.last_site = (key, index);
        index
    }
}

/// The live blocks, by address: open addressing with linear probing in a power-of-two table kept at
/// most half full, and Fibonacci hashing (one multiplication; the slot is the product's high bits,
/// which depend on every bit of the address). Address 0, never a block's, marks an empty slot.
/// Removing an entry moves the following entries of its run back into the hole (no tombstones), so
/// that a lookup stays short however many blocks come and go. An insertion or a removal allocates
/// nothing once the table has grown.
///
/// # Invariants
/// `keys.len()` is 0 or a power of two equal to `blocks.len()`, `len` keys are non-zero, at most
/// half of the slots; `blocks[i]` is `Some` exactly when `keys[i]` is non-zero; every key sits in
/// its home slot or after it in an unbroken run of occupied slots; no key appears twice.
#[derive(Default)]
struct LiveBlocks {
    keys: Vec<usize>,
    blocks: Vec<Option<Block>>,
    len: usize,
    /// 64 minus log2 of the number of slots.
    shift: u32,
}

impl LiveBlocks {
    /// The slot `address` belongs in (the table is not empty).
    #[inline]
    fn home(&self, address: usize) -> usize {
        ((address as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    /// Records `block` at `address`, replacing the block recorded there if any.
    #[inline(always)]
    fn insert(&mut self, address: usize, block: Block) {
        if 2 * (self.len + 1) > self.keys.len() {
            self.grow();
        }
        let mask = self.keys.len() - 1;
        let mut slot = self.home(address);
        loop {
            let key = self.keys[slot];
            if key == 0 || key == address {
                self.len += usize::from(key == 0);
                self.keys[slot] = address;
                self.blocks[slot] = Some(block);
                return;
            }
            slot = (slot + 1) & mask;
        }
    }

    /// Doubles the table (at least 64 slots) and puts every entry in its new place.
    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        let slots = (2 * self.keys.len()).max(64);
        let keys = core::mem::replace(&mut self.keys, std::vec![0; slots]);
        let blocks = core::mem::replace(&mut self.blocks, (0..slots).map(|_| None).collect());
        self.shift = 64 - slots.trailing_zeros();
        self.len = 0;
        for (address, block) in keys.into_iter().zip(blocks) {
            if let Some(block) = block {
                self.insert(address, block);
            }
        }
    }

    /// The slot and block of `address`, when it is live.
    #[inline]
    fn find(&self, address: usize) -> Option<(usize, &Block)> {
        if self.len == 0 || address == 0 {
            return None;
        }
        let mask = self.keys.len() - 1;
        let mut slot = self.home(address);
        loop {
            match self.keys[slot] {
                key if key == address => return self.blocks[slot].as_ref().map(|block| (slot, block)),
                0 => return None,
                _ => slot = (slot + 1) & mask,
            }
        }
    }

    /// Takes the block out of `slot` (found by [`LiveBlocks::find`]), and closes the hole.
    fn remove(&mut self, slot: usize) -> Option<Block> {
        let block = self.blocks[slot].take()?;
        self.keys[slot] = 0;
        self.len -= 1;
        let mask = self.keys.len() - 1;
        let mut hole = slot;
        let mut next = (slot + 1) & mask;
        loop {
            let key = self.keys[next];
            if key == 0 {
                return Some(block);
            }
            // The entry may fill the hole when the hole lies between its home and its slot.
            if next.wrapping_sub(self.home(key)) & mask >= next.wrapping_sub(hole) & mask {
                self.keys[hole] = key;
                self.keys[next] = 0;
                self.blocks[hole] = self.blocks[next].take();
                hole = next;
            }
            next = (next + 1) & mask;
        }
    }

    /// Every live block with its address.
    fn iter(&self) -> impl Iterator<Item = (usize, &Block)> {
        self.keys.iter().zip(&self.blocks).filter_map(|(&address, block)| Some((address, block.as_ref()?)))
    }

    /// Empties the table.
    fn drain(&mut self) -> impl Iterator<Item = (usize, Block)> + use<> {
        let (keys, blocks) = (core::mem::take(&mut self.keys), core::mem::take(&mut self.blocks));
        self.len = 0;
        keys.into_iter().zip(blocks).filter_map(|(address, block)| Some((address, block?)))
    }
}

/// The freed blocks still held: a ring of at most [`QUARANTINE`], where each block freed once the
/// ring is full takes the place of the oldest, which goes back to the host. A retirement is one
/// store and one index step; only the error paths search the ring.
#[derive(Default)]
struct Quarantine {
    ring: Vec<Retired>,
    /// Where the next retired block goes: once the ring is full, the oldest.
    next: usize,
}

impl Quarantine {
    /// Puts `retired` in quarantine; returns the oldest block when it leaves to make room.
    fn retire(&mut self, retired: Retired) -> Option<Retired> {
        if self.ring.len() < QUARANTINE {
            self.ring.push(retired);
            return None;
        }
        let oldest = core::mem::replace(&mut self.ring[self.next], retired);
        self.next = (self.next + 1) % QUARANTINE;
        Some(oldest)
    }

    /// The tag of the freed block at `address`, while it is in quarantine (the newest first).
    fn freed_tag(&self, address: usize) -> Option<ULONG> {
        let (older, newer) = self.ring.split_at(self.next);
        older.iter().rev().chain(newer.iter().rev()).find(|retired| retired.address == address).map(|r| r.tag)
    }

    /// Empties the quarantine.
    fn drain(&mut self) -> impl Iterator<Item = Retired> + '_ {
        self.next = 0;
        self.ring.drain(..)
    }
}

/// Heap blocks that left quarantine, kept for the next allocation of the same size instead of going
/// back to the host's allocator, as a pool keeps its free blocks: at most one per size of host block
/// below a page and a pool header (in steps of 16 bytes), so at most 257 blocks and about 1 MiB. A
/// block is only reused after its time in quarantine, exactly as the host's allocator would reuse
/// it, and it is filled again (zeroes, or the uninitialized fill) before it is handed out.
#[derive(Default)]
struct Spare {
    /// By host block size / 16: the base of a block allocated with 16-byte alignment (0: none), and
    /// its size.
    slots: Vec<(usize, usize)>,
}

impl Spare {
    /// How many sizes are kept: host blocks of the small-block path are `size + 16` bytes, size
    /// below a page.
    const SLOTS: usize = (PAGE_SIZE + POOL_ALIGNMENT) / POOL_ALIGNMENT + 1;

    /// The base of a kept host block allocated with `layout`, if there is one.
    #[inline]
    fn take(&mut self, layout: Layout) -> Option<usize> {
        let slot = self.slots.get_mut(layout.size() / POOL_ALIGNMENT)?;
        if slot.0 == 0 || slot.1 != layout.size() || layout.align() != POOL_ALIGNMENT {
            return None;
        }
        Some(core::mem::take(slot).0)
    }

    /// Keeps `backing` for reuse when it is a small heap block and none of its size is kept yet;
    /// otherwise gives it back, to be released.
    #[inline]
    fn keep(&mut self, backing: Backing) -> Option<Backing> {
        let Backing::Heap { base, layout } = backing else { return Some(backing) };
        if layout.align() != POOL_ALIGNMENT || layout.size() / POOL_ALIGNMENT >= Self::SLOTS {
            return Some(backing);
        }
        if self.slots.is_empty() {
            self.slots.resize(Self::SLOTS, (0, 0));
        }
        match self.slots.get_mut(layout.size() / POOL_ALIGNMENT) {
            Some(slot) if slot.0 == 0 && base != 0 => {
                *slot = (base, layout.size());
                None
            }
            _ => Some(backing),
        }
    }

    /// Empties the cache: every kept block, to be released.
    fn drain(&mut self) -> impl Iterator<Item = Backing> + '_ {
        self.slots.drain(..).filter(|&(base, _)| base != 0).filter_map(|(base, size)| {
            Some(Backing::Heap { base, layout: Layout::from_size_align(size, POOL_ALIGNMENT).ok()? })
        })
    }
}

/// The pool's lock: taking it is one compare-exchange and releasing it one store when no other
/// thread holds it, which is the common case (a kernel per test); a waiting thread spins briefly,
/// then yields. Not poisoned by a panic: a bug check raised while it is held never leaves the pool
/// half-updated (every check happens before the first change), and the guard releases it while
/// unwinding.
///
/// # Invariants
/// `value` is only reached through a [`PoolGuard`], and at most one exists at a time: the one that
/// set `locked`.
struct PoolLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the value is reached by one thread at a time (invariant), so sharing the lock only moves
// the value between threads.
unsafe impl<T: Send> Sync for PoolLock<T> {}

impl<T> PoolLock<T> {
    fn new(value: T) -> Self {
        PoolLock { locked: AtomicBool::new(false), value: UnsafeCell::new(value) }
    }

    #[inline]
    fn lock(&self) -> PoolGuard<'_, T> {
        if self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            self.lock_contended();
        }
        // INVARIANT: this thread set `locked`.
        PoolGuard { lock: self, _exclusive: core::marker::PhantomData }
    }

    #[cold]
    #[inline(never)]
    fn lock_contended(&self) {
        let mut spins = 0u32;
        loop {
            while self.locked.load(Ordering::Relaxed) {
                if spins < 100 {
                    spins += 1;
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
            if self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                return;
            }
        }
    }

    fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }
}

/// The pool, locked: releases the lock when dropped. It gives `&mut T`, so it is `Sync` only when
/// `T` is (as `MutexGuard`), which the marker makes the compiler derive.
struct PoolGuard<'a, T> {
    lock: &'a PoolLock<T>,
    _exclusive: core::marker::PhantomData<&'a mut T>,
}

impl<T> core::ops::Deref for PoolGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: this guard is the only one (invariant of `PoolLock`).
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> core::ops::DerefMut for PoolGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes the access exclusive.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for PoolGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}

/// A hash for block addresses and small keys: one multiplication (Fibonacci hashing) per word,
/// folded so that both the low bits (the bucket) and the high bits (hashbrown's tag byte) depend on
/// every bit of the key. Addresses are not chosen by an adversary here, so no keyed hash is needed.
#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u8(&mut self, value: u8) {
        self.write_u64(value.into());
    }

    fn write_u32(&mut self, value: u32) {
        self.write_u64(value.into());
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn write_usize(&mut self, value: usize) {
        self.write_u64(value as u64);
    }

    fn write_isize(&mut self, value: isize) {
        self.write_u64(value as u64);
    }

    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 32)
    }
}

/// The state of one emulated kernel, shared by every thread that entered it.
pub(crate) struct State {
    pub(crate) config: Config,
    pool: PoolLock<Pool>,
    allocation_calls: AtomicU64,
    deferred: Mutex<Vec<BugCheck>>,
    /// The low resources simulation's generator (xorshift64*).
    random: Mutex<u64>,
    /// The lookaside lists initialized and not deleted, and those deleted.
    pub(crate) lookaside: Mutex<super::lookaside::Lists>,
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
            config,
            pool: PoolLock::new(Pool::default()),
            allocation_calls: AtomicU64::new(0),
            deferred: Mutex::default(),
            random: Mutex::new(seed),
            lookaside: Mutex::default(),
        }
    }

    /// The next number of the low resources simulation's sequence.
    fn next_random(&self) -> u64 {
        let mut x = self.random.lock().unwrap_or_else(|p| p.into_inner());
        *x ^= *x >> 12;
        *x ^= *x << 25;
        *x ^= *x >> 27;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn pool(&self) -> PoolGuard<'_, Pool> {
        self.pool.lock()
    }

    pub(crate) fn allocation_calls(&self) -> u64 {
        self.allocation_calls.load(Ordering::SeqCst)
    }

    pub(crate) fn usage(&self) -> PoolUsage {
        let mut rows: Vec<PoolUsageRow> = self.pool().usage.clone();
        // poolmon order: by tag as it reads, then by pool.
        rows.sort_by_key(|row| (row.tag.0.to_le_bytes(), row.pool));
        PoolUsage { rows }
    }

    pub(crate) fn outstanding(&self) -> Vec<Allocation> {
        let pool = self.pool();
        let mut list: Vec<Allocation> = pool
            .live
            .iter()
            .map(|(address, block)| Allocation {
                address,
                tag: RawTag(block.tag),
                pool: block.kind,
                size: block.size,
                routine: block.routine,
                file: block.site.file(),
                line: block.site.line(),
                column: block.site.column(),
            })
            .collect();
        list.sort_by_key(|a| a.address);
        list
    }

    /// Bytes charged to each process's pool quota: (process, paged, non-paged), by process.
    pub(crate) fn quota(&self) -> Vec<(u64, u64, u64)> {
        self.pool().quota.iter().map(|(&process, &(paged, non_paged))| (process, paged, non_paged)).collect()
    }

    pub(crate) fn allocation_sites(&self) -> Vec<AllocationSite> {
        // One source location may have more than one `Location` (one per codegen unit): merged.
        let mut sites: BTreeMap<(&'static str, u32, u32), (u64, u64)> = BTreeMap::new();
        for &(site, calls, failed) in &self.pool().sites {
            let counts = sites.entry((site.file(), site.line(), site.column())).or_default();
            counts.0 += calls;
            counts.1 += failed;
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
        let pool = self.pool.get_mut();
        let live = pool.live.drain().map(|(_, block)| block.backing);
        for backing in live.chain(pool.quarantine.drain().map(|r| r.backing)).chain(pool.spare.drain()) {
            backing.release();
        }
    }
}

std::thread_local! {
    static IRQL: Cell<KIRQL> = const { Cell::new(PASSIVE_LEVEL) };
    static ENTERED: RefCell<Vec<Arc<State>>> = const { RefCell::new(Vec::new()) };
    static THREAD_ID: u64 = {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        NEXT.fetch_add(1, Ordering::Relaxed)
    };
    static QUIET: Cell<u32> = const { Cell::new(0) };
    static PROCESS: Cell<u64> = const { Cell::new(SYSTEM_PROCESS) };
}

/// The System process's id: the process a thread of the emulated kernel belongs to unless it runs in
/// [`in_process`].
pub(crate) const SYSTEM_PROCESS: u64 = 4;

/// Runs `f` with the calling thread attached to process `process`: quota allocations are charged
/// to it.
pub(crate) fn in_process<R>(process: u64, f: impl FnOnce() -> R) -> R {
    struct Restore(u64);
    impl Drop for Restore {
        fn drop(&mut self) {
            PROCESS.with(|p| p.set(self.0));
        }
    }
    let _restore = Restore(PROCESS.with(|p| p.replace(process)));
    f()
}

static DEFAULT: OnceLock<Arc<State>> = OnceLock::new();

std::thread_local! {
    /// The state at the top of `ENTERED` (null when it is empty): what [`with_current`] reads, one
    /// load instead of a borrow of `ENTERED` and a reference count.
    static CURRENT: Cell<*const State> = const { Cell::new(core::ptr::null()) };
}

fn default_state() -> &'static Arc<State> {
    DEFAULT.get_or_init(|| Arc::new(State::new(Config::default())))
}

/// The kernel the calling thread has entered, or the process-wide default one.
pub(crate) fn current() -> Arc<State> {
    ENTERED.with(|entered| entered.borrow().last().cloned()).unwrap_or_else(|| default_state().clone())
}

/// Runs `f` with the kernel the calling thread has entered, or the process-wide default one: what
/// [`current`] returns, without taking a reference count (the pool routines' fast path).
pub(crate) fn with_current<R>(f: impl FnOnce(&State) -> R) -> R {
    let entered = CURRENT.with(Cell::get);
    if entered.is_null() {
        return f(default_state());
    }
    // SAFETY: `CURRENT` points to the state of the `Arc` at the top of this thread's `ENTERED`
    // (`enter` and `EnterGuard::drop` keep it so). That `Arc` stays in `ENTERED` until the guard of
    // the `Kernel::run` that pushed it is dropped, which happens after `f` returns, since kernel
    // routines never return from the `run` they were called in.
    f(unsafe { &*entered })
}

/// Makes `state` the calling thread's kernel until the returned guard is dropped.
pub(crate) fn enter(state: Arc<State>) -> EnterGuard {
    CURRENT.with(|current| current.set(Arc::as_ptr(&state)));
    ENTERED.with(|entered| entered.borrow_mut().push(state));
    EnterGuard(())
}

pub(crate) struct EnterGuard(());

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let top = ENTERED.with(|entered| {
            let mut entered = entered.borrow_mut();
            entered.pop();
            entered.last().map_or(core::ptr::null(), Arc::as_ptr)
        });
        CURRENT.with(|current| current.set(top));
    }
}

/// Runs `f` with bug-check reports silenced on this thread (they are being caught).
pub(crate) fn quietly<R>(f: impl FnOnce() -> R) -> R {
    struct Loud;
    impl Drop for Loud {
        fn drop(&mut self) {
            QUIET.with(|q| q.set(q.get() - 1));
        }
    }
    QUIET.with(|q| q.set(q.get() + 1));
    let _loud = Loud;
    f()
}

pub(crate) fn is_quiet() -> bool {
    QUIET.with(Cell::get) > 0
}

/// Stops the emulated machine: panics with a [`BugCheck`] payload.
pub(crate) fn bug_check_now(code: ULONG, parameters: [u64; 4]) -> ! {
    std::panic::panic_any(BugCheck::new(code, parameters))
}

/// Reports a violation. While the thread is already unwinding from an earlier bug check, a second
/// panic would abort the process, so the report is kept on the kernel (see
/// [`Kernel::deferred_bug_checks`](super::Kernel::deferred_bug_checks)) and the offending
/// operation is skipped.
fn bug_check(state: &State, code: ULONG, parameters: [u64; 4]) {
    if std::thread::panicking() {
        state.deferred.lock().unwrap_or_else(|p| p.into_inner()).push(BugCheck::new(code, parameters));
        return;
    }
    bug_check_now(code, parameters)
}

pub(crate) fn current_irql() -> KIRQL {
    IRQL.with(Cell::get)
}

/// Sets the thread's IRQL without any check: for a test that goes on after a bug check.
pub(crate) fn force_irql(irql: KIRQL) {
    set_irql(irql);
}

fn set_irql(irql: KIRQL) {
    IRQL.with(|cell| cell.set(irql));
}

/// Driver Verifier: 0xC4 / 0x30, raising to a lower IRQL.
const VERIFIER_RAISE_TO_LOWER: u64 = 0x30;
/// Driver Verifier: 0xC4 / 0x31, lowering to a higher IRQL.
const VERIFIER_LOWER_TO_HIGHER: u64 = 0x31;

pub(crate) fn raise_irql(new: KIRQL) -> KIRQL {
    let old = current_irql();
    #[cfg(ntpool_pages)]
    if new >= DISPATCH_LEVEL && old < DISPATCH_LEVEL && current().config.force_irql_checking {
        pages::trim_paged_blocks();
    }
    if new < old {
        let state = current();
        let code =
            if state.config.verifier { DRIVER_VERIFIER_DETECTED_VIOLATION } else { sys::IRQL_NOT_GREATER_OR_EQUAL };
        let parameters = if state.config.verifier {
            [VERIFIER_RAISE_TO_LOWER, old.into(), new.into(), 0]
        } else {
            [old.into(), new.into(), 0, 0]
        };
        bug_check(&state, code, parameters);
        return old;
    }
    set_irql(new);
    old
}

pub(crate) fn lower_irql(new: KIRQL) {
    let old = current_irql();
    if new > old {
        let state = current();
        let code = if state.config.verifier { DRIVER_VERIFIER_DETECTED_VIOLATION } else { sys::IRQL_NOT_LESS_OR_EQUAL };
        let parameters = if state.config.verifier {
            [VERIFIER_LOWER_TO_HIGHER, old.into(), new.into(), 0]
        } else {
            [0, new.into(), 0, 0]
        };
        bug_check(&state, code, parameters);
        return;
    }
    set_irql(new);
}

pub(crate) fn exports_ex_allocate_pool2() -> bool {
    with_current(|state| state.config.ex_allocate_pool2)
}

/// What an allocation request asks for, in the terms both allocation routines share.
struct Request {
    kind: PoolKind,
    pool_type: POOL_TYPE,
    size: usize,
    tag: ULONG,
    cache_aligned: bool,
    zeroed: bool,
    routine: &'static str,
    /// Charge the current process's quota.
    quota: bool,
}

pub(crate) fn allocate_pool2(flags: POOL_FLAGS, size: SIZE_T, tag: ULONG, site: &'static Location<'static>) -> PVOID {
    with_current(|state| allocate_pool2_in(state, flags, size, tag, site))
}

fn allocate_pool2_in(
    state: &State,
    flags: POOL_FLAGS,
    size: SIZE_T,
    tag: ULONG,
    site: &'static Location<'static>,
) -> PVOID {
    let pool_type = sys::pool_type_for_flags(flags & !sys::POOL_FLAG_USE_QUOTA);
    let quota = flags & sys::POOL_FLAG_USE_QUOTA != 0;
    let unknown = flags & sys::POOL_FLAG_REQUIRED_MASK & !sys::POOL_FLAG_REQUIRED_KNOWN;
    let (Some(pool_type), 0) = (pool_type, unknown) else {
        // No pool, two pools, or a required flag this kernel does not know: the call fails.
        return core::ptr::null_mut();
    };
    let request = Request {
        kind: PoolKind::of_pool_type(pool_type, flags & sys::POOL_FLAG_NON_PAGED_EXECUTE != 0),
        pool_type,
        size: size as usize,
        tag,
        cache_aligned: flags & sys::POOL_FLAG_CACHE_ALIGNED != 0,
        zeroed: flags & sys::POOL_FLAG_UNINITIALIZED == 0,
        routine: "ExAllocatePool2",
        quota,
    };
    if tag == 0 && !state.config.verifier {
        return core::ptr::null_mut();
    }
    allocate(state, request, site)
}

pub(crate) fn allocate_pool_with_tag(
    pool_type: POOL_TYPE,
    size: SIZE_T,
    tag: ULONG,
    site: &'static Location<'static>,
) -> PVOID {
    allocate_legacy(pool_type, size, tag, site, "ExAllocatePoolWithTag")
}

/// `VideoPortAllocatePool`: `videoprt.sys` hands the `VP_POOL_TYPE` (whose values are the
/// `POOL_TYPE` values of the same pools) to `ExAllocatePoolWithTag`; the block is recorded under the
/// miniport's call.
#[cfg(feature = "videoport")]
pub(crate) fn videoport_allocate_pool(
    pool_type: POOL_TYPE,
    size: SIZE_T,
    tag: ULONG,
    site: &'static Location<'static>,
) -> PVOID {
    allocate_legacy(pool_type, size, tag, site, "VideoPortAllocatePool")
}

/// An allocation by `POOL_TYPE`, as `ExAllocatePoolWithTag` makes it, on behalf of `routine`.
fn allocate_legacy(
    pool_type: POOL_TYPE,
    size: SIZE_T,
    tag: ULONG,
    site: &'static Location<'static>,
    routine: &'static str,
) -> PVOID {
    let state = current();
    if pool_type == sys::NonPagedPoolMustSucceed {
        bug_check(&state, BAD_POOL_CALLER, [0x9A, pool_type as u64, size, 0]);
        return core::ptr::null_mut();
    }
    let Some(request) = legacy_request(pool_type, size, tag, routine, false) else { return core::ptr::null_mut() };
    allocate(&state, request, site)
}

/// The request `ExAllocatePoolWithTag` (or its quota form, `quota`) makes of a `POOL_TYPE`, on behalf
/// of `routine`; `None` for a type it does not take, which fails the call.
fn legacy_request(
    pool_type: POOL_TYPE,
    size: SIZE_T,
    tag: ULONG,
    routine: &'static str,
    quota: bool,
) -> Option<Request> {
    let base_type = pool_type & !(0x200 | 4);
    if !(0..=1).contains(&base_type) || pool_type & !(0x200 | 4 | 1) != 0 {
        return None;
    }
    Some(Request {
        kind: PoolKind::of_pool_type(pool_type, pool_type & 0x201 == 0),
        pool_type,
        size: size as usize,
        tag,
        cache_aligned: pool_type & 4 != 0,
        zeroed: false,
        routine,
        quota,
    })
}

/// `STATUS_QUOTA_EXCEEDED`, the exception the raising form of `ExAllocatePoolWithQuotaTag` raises
/// when the process's quota is used up.
const STATUS_QUOTA_EXCEEDED: u64 = 0xC000_0044;
/// `STATUS_INSUFFICIENT_RESOURCES`, the exception it raises when the pool itself cannot serve it.
const STATUS_INSUFFICIENT_RESOURCES: u64 = 0xC000_009A;
/// `KMODE_EXCEPTION_NOT_HANDLED`: what an exception no handler catches ends in.
const KMODE_EXCEPTION_NOT_HANDLED: ULONG = 0x1E;

/// `ExAllocatePoolWithQuotaTag`: as `ExAllocatePoolWithTag`, charged to the current process. With
/// `POOL_QUOTA_FAIL_INSTEAD_OF_RAISE` a failure is NULL; without it, the routine raises an exception,
/// which Rust code cannot catch: bug check 0x1E (`KMODE_EXCEPTION_NOT_HANDLED`, parameter 1 the
/// exception code).
pub(crate) fn allocate_pool_with_quota_tag(
    pool_type: POOL_TYPE,
    size: SIZE_T,
    tag: ULONG,
    site: &'static Location<'static>,
) -> PVOID {
    let state = current();
    let raise = pool_type & sys::POOL_QUOTA_FAIL_INSTEAD_OF_RAISE == 0;
    let pool_type = pool_type & !sys::POOL_QUOTA_FAIL_INSTEAD_OF_RAISE;
    if pool_type == sys::NonPagedPoolMustSucceed {
        bug_check(&state, BAD_POOL_CALLER, [0x9A, pool_type as u64, size, 0]);
        return core::ptr::null_mut();
    }
    let Some(request) = legacy_request(pool_type, size, tag, "ExAllocatePoolWithQuotaTag", true) else {
        return core::ptr::null_mut();
    };
    // Which exception the raising form raises: the quota's, or the pool's own failure.
    let over_quota = !charge_fits(&state, PROCESS.with(Cell::get), size as usize);
    let block = allocate(&state, request, site);
    if block.is_null() && raise {
        let exception = if over_quota { STATUS_QUOTA_EXCEEDED } else { STATUS_INSUFFICIENT_RESOURCES };
        bug_check(&state, KMODE_EXCEPTION_NOT_HANDLED, [exception, 0, 0, 0]);
    }
    block
}

fn allocate(state: &State, request: Request, site: &'static Location<'static>) -> PVOID {
    let irql = current_irql();
    let verifier = state.config.verifier;
    let Request { kind, pool_type, size, tag, .. } = request;
    let pool_type_param = pool_type as u64;
    let max_irql = if kind == PoolKind::Paged { APC_LEVEL } else { DISPATCH_LEVEL };
    if irql > max_irql {
        let parameters = if verifier {
            [if kind == PoolKind::Paged { 0x01 } else { 0x02 }, irql.into(), pool_type_param, size as u64]
        } else {
            [0x08, irql.into(), pool_type_param, size as u64]
        };
        bug_check(state, if verifier { DRIVER_VERIFIER_DETECTED_VIOLATION } else { BAD_POOL_CALLER }, parameters);
        return core::ptr::null_mut();
    }
    if size == 0 {
        let (code, parameters) = if verifier {
            (DRIVER_VERIFIER_DETECTED_VIOLATION, [0x00, irql.into(), pool_type_param, 0])
        } else {
            (BAD_POOL_CALLER, [0x00, 0, pool_type_param, tag.into()])
        };
        bug_check(state, code, parameters);
        return core::ptr::null_mut();
    }
    if verifier && tag == 0 {
        bug_check(state, BAD_POOL_CALLER, [0x9B, pool_type_param, size as u64, 0]);
        return core::ptr::null_mut();
    }
    if verifier && !tag.to_le_bytes().iter().any(u8::is_ascii_alphanumeric) {
        bug_check(state, BAD_POOL_CALLER, [0x9D, tag.into(), pool_type_param, 0]);
        return core::ptr::null_mut();
    }
    let call = state.allocation_calls.fetch_add(1, Ordering::SeqCst) + 1;
    if state.config.fail_allocation == Some(call) {
        state.pool().count_site(site, true);
        return core::ptr::null_mut();
    }
    if let Some((_, percent)) = state.config.low_resources {
        if state.next_random() % 100 < u64::from(percent) {
            state.pool().count_site(site, true);
            return core::ptr::null_mut();
        }
    }
    let process = PROCESS.with(Cell::get);
    if request.quota && !charge_fits(state, process, size) {
        return core::ptr::null_mut();
    }
    let mut pool = state.pool();
    let Some((block, backing)) = back(state, &mut pool, &request) else {
        return core::ptr::null_mut();
    };
    let fill = if request.zeroed { 0 } else { state.config.uninitialized_fill };
    // SAFETY: `block` is valid for `size` bytes.
    unsafe { block.write_bytes(fill, size) };
    let address = block as usize;
    pool.count_site(site, false);
    let row = pool.row(tag, kind);
    if let Some(usage) = pool.usage.get_mut(row) {
        usage.allocs += 1;
        usage.bytes += size as u64;
    }
    let charged = request.quota.then_some(process);
    if charged.is_some() {
        let charge = pool.quota.entry(process).or_default();
        *if kind == PoolKind::Paged { &mut charge.0 } else { &mut charge.1 } += size as u64;
    }
    let block_record = Block { tag, kind, pool_type, size, backing, site, routine: request.routine, charged, row };
    pool.live.insert(address, block_record);
    block.cast()
}

/// Whether `size` more bytes fit in `process`'s pool quota.
fn charge_fits(state: &State, process: u64, size: usize) -> bool {
    let Some(limit) = state.config.process_quota else { return true };
    let (paged, non_paged) = state.pool().quota.get(&process).copied().unwrap_or_default();
    paged + non_paged + size as u64 <= limit
}

/// Finds memory for a request: pages of its own for special pool (blocks under a page) and for
/// pageable memory under Force IRQL Checking, the host's heap otherwise.
fn back(state: &State, pool: &mut Pool, request: &Request) -> Option<(*mut u8, Backing)> {
    let align = if request.cache_aligned { CACHE_LINE } else { POOL_ALIGNMENT };
    #[cfg(ntpool_pages)]
    if state.config.special_pool.is_some() || state.config.force_irql_checking {
        let config = &state.config;
        let special = config
            .special_pool
            .filter(|_| request.size < PAGE_SIZE && config.special_pool_tag.is_none_or(|tag| tag == request.tag));
        let paged = request.kind == PoolKind::Paged;
        if special.is_some() || (paged && config.force_irql_checking) {
            let pages = pages::allocate(request.size, align, paged, special)?;
            return Some((
                pages.data as *mut u8,
                Backing::Pages { pages: Box::new(pages), special: special.is_some() },
            ));
        }
    }
    // Exactly the alignment Windows promises and not more, so that code relying on more fails here:
    // a page for a page or more, a cache line when asked, else 16 bytes (and never 32). A kernel that
    // breaks the promises (`PoolAlignment`) takes this path for every size and alignment.
    let below = match state.config.pool_alignment {
        PoolAlignment::Windows if request.size >= PAGE_SIZE || align != POOL_ALIGNMENT => None,
        PoolAlignment::Windows | PoolAlignment::Heap => Some(0),
        PoolAlignment::Eight => Some(8),
    };
    if let Some(below) = below {
        // The host's plain allocator already aligns on 16 (no aligned-allocation path): take 16
        // bytes more (and `below`) and start the block 16 bytes in when the host's block is 32-byte
        // aligned, then `below` bytes further.
        let extra = POOL_ALIGNMENT + below;
        let layout = Layout::from_size_align(request.size.checked_add(extra)?, POOL_ALIGNMENT).ok()?;
        let base = match pool.spare.take(layout) {
            // A block of the host's allocated with this layout, no longer used by anyone.
            Some(base) => base as *mut u8,
            // SAFETY: `layout` has a non-zero size.
            None => unsafe { std::alloc::alloc(layout) },
        };
        if base.is_null() {
            return None;
        }
        let offset = if base as usize % (2 * POOL_ALIGNMENT) == 0 { POOL_ALIGNMENT } else { 0 } + below;
        // SAFETY: `size + extra` bytes were allocated at `base`, and `offset` is at most `extra`.
        return Some((unsafe { base.add(offset) }, Backing::Heap { base: base as usize, layout }));
    }
    let (align, offset) = if request.size >= PAGE_SIZE { (PAGE_SIZE, 0) } else { (2 * align, align) };
    let layout = Layout::from_size_align(request.size.checked_add(offset)?, align).ok()?;
    // SAFETY: `layout` has a non-zero size (the request's size is not zero).
    let base = unsafe { std::alloc::alloc(layout) };
    if base.is_null() {
        return None;
    }
    // SAFETY: `offset + size` bytes were allocated at `base`.
    Some((unsafe { base.add(offset) }, Backing::Heap { base: base as usize, layout }))
}

pub(crate) fn free_pool(pointer: PVOID, tag: Option<ULONG>) {
    with_current(|state| free_pool_in(state, pointer, tag));
}

fn free_pool_in(state: &State, pointer: PVOID, tag: Option<ULONG>) {
    let verifier = state.config.verifier;
    let address = pointer as usize;
    let irql = current_irql();
    let mut guard = state.pool();
    let pool = &mut *guard;
    let (slot, block) = match pool.live.find(address) {
        Some(found) => found,
        None => {
            let freed_tag = pool.quarantine.freed_tag(address);
            drop(guard);
            let (code, parameters) = match (freed_tag, verifier) {
                (Some(old_tag), true) => {
                    (DRIVER_VERIFIER_DETECTED_VIOLATION, [0x13, 0, address.wrapping_sub(16) as u64, old_tag.into()])
                }
                (Some(old_tag), false) => (BAD_POOL_CALLER, [0x07, 0, old_tag.into(), address as u64]),
                (None, true) => (DRIVER_VERIFIER_DETECTED_VIOLATION, [0x10, address as u64, 0, 0]),
                (None, false) => (BAD_POOL_CALLER, [0x99, address as u64, 0, 0]),
            };
            bug_check(state, code, parameters);
            return;
        }
    };
    let max_irql = if block.kind == PoolKind::Paged { APC_LEVEL } else { DISPATCH_LEVEL };
    if irql > max_irql {
        let pool_type = block.pool_type as u64;
        let paged = block.kind == PoolKind::Paged;
        drop(guard);
        let (code, parameters) = if verifier {
            (
                DRIVER_VERIFIER_DETECTED_VIOLATION,
                [if paged { 0x11 } else { 0x12 }, irql.into(), pool_type, address as u64],
            )
        } else {
            (BAD_POOL_CALLER, [0x09, irql.into(), pool_type, address as u64])
        };
        bug_check(state, code, parameters);
        return;
    }
    if let Some((allocated_with, used)) = wrong_tag(block.tag, tag) {
        drop(guard);
        bug_check(state, BAD_POOL_CALLER, [0x0A, address as u64, allocated_with.into(), used.into()]);
        return;
    }
    #[cfg(ntpool_pages)]
    if let Backing::Pages { pages, special: true } = &block.backing {
        if let Some((corrupted, subcode)) = pages.corrupted_slack() {
            drop(guard);
            bug_check(
                state,
                sys::SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION,
                [address as u64, corrupted as u64, 0, subcode],
            );
            return;
        }
    }
    let Some(block) = pool.live.remove(slot) else { return };
    let row = &mut pool.usage[block.row];
    row.frees += 1;
    row.bytes -= block.size as u64;
    if let Some(charge) = block.charged.and_then(|process| pool.quota.get_mut(&process)) {
        *if block.kind == PoolKind::Paged { &mut charge.0 } else { &mut charge.1 } -= block.size as u64;
    }
    retire(&block.backing, address, block.size);
    if let Some(oldest) = pool.quarantine.retire(Retired { address, tag: block.tag, backing: block.backing }) {
        if let Some(backing) = pool.spare.keep(oldest.backing) {
            backing.release();
        }
    }
}

/// Whether a free with `tag` (`None`: `ExFreePool`, which is `ExFreePoolWithTag(P, 0)`) of a block
/// allocated with `allocated` is the wrong tag, and if so the tags bug check 0xC2 / 0x0A reports
/// (parameters 3 and 4).
///
/// * `ExFreePoolWithTag` with another tag than the block's: reported with both tags as given.
/// * A block whose tag has [`PROTECTED_POOL`](sys::PROTECTED_POOL) set must be freed with
///   `ExFreePoolWithTag` and its tag: the kernel compares the two tags without that bit, and reports
///   them without it; `ExFreePool` passes tag 0, which never matches.
/// * `ExFreePool` of an unprotected block is fine.
fn wrong_tag(allocated: ULONG, tag: Option<ULONG>) -> Option<(ULONG, ULONG)> {
    let protected = allocated & sys::PROTECTED_POOL != 0;
    match tag {
        None if protected => Some((allocated & !sys::PROTECTED_POOL, 0)),
        None => None,
        Some(tag) if protected && (tag & !sys::PROTECTED_POOL) != (allocated & !sys::PROTECTED_POOL) => {
            Some((allocated & !sys::PROTECTED_POOL, tag & !sys::PROTECTED_POOL))
        }
        Some(tag) if !protected && tag != allocated => Some((allocated, tag)),
        Some(_) => None,
    }
}

/// Makes a freed block unusable while it sits in quarantine: special pool pages become inaccessible
/// (a later touch is bug check 0xCC), other memory is filled with [`FREED_FILL`].
fn retire(backing: &Backing, address: usize, size: usize) {
    match *backing {
        #[cfg(ntpool_pages)]
        Backing::Pages { ref pages, special: true } => pages.retire(),
        #[cfg(ntpool_pages)]
        Backing::Pages { ref pages, special: false } => {
            pages.touch();
            // SAFETY: the block is `size` bytes at `address`, owned by the pool and no longer live.
            unsafe { (address as *mut u8).write_bytes(FREED_FILL, size) };
        }
        // SAFETY: as above.
        Backing::Heap { .. } => unsafe { (address as *mut u8).write_bytes(FREED_FILL, size) },
    }
}

/// # Safety
/// `lock` points to an initialized `KSPIN_LOCK` that stays valid while held.
pub(crate) unsafe fn acquire_spin_lock(lock: *mut KSPIN_LOCK, raise: bool) -> KIRQL {
    let old = if raise { raise_irql(DISPATCH_LEVEL) } else { current_irql() };
    if !raise && old != DISPATCH_LEVEL {
        let state = current();
        if state.config.verifier {
            // Driver Verifier: 0xC4 / 0x40, KeAcquireSpinLockAtDpcLevel below DISPATCH_LEVEL.
            bug_check(&state, DRIVER_VERIFIER_DETECTED_VIOLATION, [0x40, old.into(), 0, 0]);
        }
    }
    let owner = THREAD_ID.with(|id| *id);
    // SAFETY: a KSPIN_LOCK is an aligned 64-bit word that only the spin-lock routines touch, and
    // the caller guarantees it is valid.
    let word = unsafe { AtomicU64::from_ptr(lock) };
    loop {
        match word.compare_exchange_weak(0, owner, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => return old,
            Err(current_owner) if current_owner == owner => {
                panic!("deadlock: this thread acquired a spin lock it already holds");
            }
            Err(_) => std::thread::yield_now(),
        }
    }
}

/// # Safety
/// `lock` is held by this thread.
pub(crate) unsafe fn release_spin_lock(lock: *mut KSPIN_LOCK, new_irql: Option<KIRQL>) {
    // SAFETY: as in `acquire_spin_lock`.
    let word = unsafe { AtomicU64::from_ptr(lock) };
    let owner = THREAD_ID.with(|id| *id);
    if word.load(Ordering::Relaxed) != owner {
        panic!("a spin lock was released by a thread that does not hold it");
    }
    word.store(0, Ordering::Release);
    if let Some(irql) = new_irql {
        lower_irql(irql);
    }
}

/// # Safety
/// `mutex` was initialized with `ExInitializeFastMutex` and stays valid while held.
pub(crate) unsafe fn acquire_fast_mutex(mutex: *mut sys::FAST_MUTEX) {
    let old = current_irql();
    if old > APC_LEVEL {
        panic!("ExAcquireFastMutex at IRQL {old}: a fast mutex needs IRQL <= APC_LEVEL");
    }
    let owner = THREAD_ID.with(|id| *id);
    // SAFETY: forwarded contract.
    let (count, owner_word) = unsafe { fast_mutex_words(mutex) };
    if owner_word.load(Ordering::Relaxed) == owner {
        panic!("deadlock: this thread acquired a fast mutex it already holds");
    }
    set_irql(APC_LEVEL);
    while count.compare_exchange_weak(1, 0, Ordering::Acquire, Ordering::Relaxed).is_err() {
        std::thread::yield_now();
    }
    owner_word.store(owner, Ordering::Relaxed);
    // SAFETY: the mutex is held by this thread; `OldIrql` is its to write.
    unsafe { (*mutex).OldIrql = u32::from(old) };
}

/// # Safety
/// The calling thread holds `mutex`.
pub(crate) unsafe fn release_fast_mutex(mutex: *mut sys::FAST_MUTEX) {
    let owner = THREAD_ID.with(|id| *id);
    // SAFETY: forwarded contract.
    let (count, owner_word) = unsafe { fast_mutex_words(mutex) };
    if owner_word.load(Ordering::Relaxed) != owner {
        panic!("a fast mutex was released by a thread that does not hold it");
    }
    // SAFETY: held by this thread.
    let old = unsafe { (*mutex).OldIrql } as KIRQL;
    owner_word.store(0, Ordering::Relaxed);
    count.store(1, Ordering::Release);
    lower_irql(old);
}

/// The words of a `FAST_MUTEX` the emulation synchronizes on: `Count` (1 when free) and `Owner`.
///
/// # Safety
/// `mutex` points to an initialized `FAST_MUTEX` that outlives the returned references and is only
/// touched through the fast-mutex routines.
unsafe fn fast_mutex_words<'a>(mutex: *mut sys::FAST_MUTEX) -> (&'a core::sync::atomic::AtomicI32, &'a AtomicU64) {
    // SAFETY: the caller guarantees `mutex` is valid.
    let count = unsafe { &raw mut (*mutex).Count };
    // SAFETY: as above.
    let owner = unsafe { &raw mut (*mutex).Owner }.cast::<u64>();
    // SAFETY: an aligned 32-bit word, touched only atomically by the fast-mutex routines.
    let count = unsafe { core::sync::atomic::AtomicI32::from_ptr(count) };
    // SAFETY: an aligned pointer-sized word, as above.
    let owner = unsafe { AtomicU64::from_ptr(owner) };
    (count, owner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(size: usize) -> Block {
        Block {
            tag: 0x6E42704E,
            kind: PoolKind::NonPaged,
            pool_type: sys::NonPagedPoolNx,
            size,
            backing: Backing::Heap { base: 0, layout: Layout::new::<u8>() },
            site: Location::caller(),
            routine: "ExAllocatePool2",
            charged: None,
            row: 0,
        }
    }

    /// The table of live blocks agrees with a `HashMap` through inserts and removals in a mixed
    /// order (runs that wrap around, holes closed by moving entries back, growth).
    #[test]
    fn live_blocks_agree_with_a_map() {
        let mut live = LiveBlocks::default();
        let mut model = HashMap::new();
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for step in 0..20_000usize {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Few distinct addresses, so that removals often hit and runs collide.
            let address = 16 * (1 + (x % 3000) as usize);
            if x % 3 == 0 {
                if let Some((slot, found)) = live.find(address) {
                    assert_eq!(found.size, model[&address]);
                    assert_eq!(live.remove(slot).map(|b| b.size), model.remove(&address));
                } else {
                    assert!(!model.contains_key(&address), "step {step}: {address:#x} lost");
                }
            } else {
                live.insert(address, block(step));
                model.insert(address, step);
            }
            assert_eq!(live.len, model.len());
        }
        for (&address, &size) in &model {
            assert_eq!(live.find(address).map(|(_, b)| b.size), Some(size));
        }
        let mut all: Vec<(usize, usize)> = live.iter().map(|(a, b)| (a, b.size)).collect();
        let mut expected: Vec<(usize, usize)> = model.into_iter().collect();
        all.sort_unstable();
        expected.sort_unstable();
        assert_eq!(all, expected);
        assert_eq!(live.drain().count(), all.len());
        assert!(live.find(16).is_none());
    }

    /// The quarantine keeps the last [`QUARANTINE`] blocks and gives back the oldest.
    #[test]
    fn quarantine_is_a_ring_of_the_newest() {
        let mut quarantine = Quarantine::default();
        let retired = |address| Retired { address, tag: address as ULONG, backing: block(0).backing };
        for address in 1..=QUARANTINE {
            assert!(quarantine.retire(retired(address)).is_none());
        }
        let oldest = quarantine.retire(retired(QUARANTINE + 1)).map(|r| r.address);
        assert_eq!(oldest, Some(1));
        assert_eq!(quarantine.freed_tag(1), None);
        assert_eq!(quarantine.freed_tag(2), Some(2));
        assert_eq!(quarantine.freed_tag(QUARANTINE + 1), Some((QUARANTINE + 1) as ULONG));
        assert_eq!(quarantine.drain().count(), QUARANTINE);
    }
}
