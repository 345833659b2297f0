//! The pool's bookkeeping, one [`Pool`] per shard ([`shards`](super::shards)): the table of live
//! blocks (open addressing, one multiplication per lookup), the quarantine of freed blocks, the spare
//! heap blocks kept for reuse, poolmon's rows, the allocation sites and the count of requests, and
//! the lock that guards them. Data structures only: the allocation and free routines that use them
//! are in [`pool`](super::pool) and [`free`](super::free).

use std::alloc::Layout;
#[cfg(ntpool_pages)]
use std::boxed::Box;
use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::panic::Location;
use std::sync::atomic::{AtomicBool, Ordering};
use std::vec::Vec;

#[cfg(ntpool_pages)]
use super::pages::Pages;
use super::reports::{PoolKind, PoolUsageRow};
#[cfg(ntpool_pages)]
use super::special;
use crate::{POOL_TYPE, ULONG};

/// x64 pool blocks below a page are aligned on 16 bytes, and never more than that is promised.
pub(crate) const POOL_ALIGNMENT: usize = 16;
pub(crate) const PAGE_SIZE: usize = 4096;
pub(crate) const CACHE_LINE: usize = 64;
/// How many freed blocks each shard keeps (unusable) so that a double free is recognised as such: a
/// block stays in quarantine until its shard has retired this many blocks after it.
const QUARANTINE: usize = 4096;
/// Bytes past the end of every heap block, beyond its rounding to 16 bytes, that belong to no one:
/// pool tracking fills them (with the rounding slack) with [`OVERRUN_FILL`] and checks them at free
/// (bug check 0xC4 / 0x51).
pub(crate) const TRAILER: usize = 16;
/// What the bytes after a heap block hold until someone writes past the block's end.
pub(crate) const OVERRUN_FILL: u8 = 0x5B;

/// The bytes after a block of `size` bytes at `address` that pool tracking checks: up to the next
/// 16-byte boundary, and [`TRAILER`] more.
pub(crate) fn overrun_zone(address: usize, size: usize) -> core::ops::Range<usize> {
    address + size..address + size.next_multiple_of(POOL_ALIGNMENT) + TRAILER
}

/// [`OVERRUN_FILL`] in every byte of a 16-byte word.
const OVERRUN_WORD: u128 = u128::from_ne_bytes([OVERRUN_FILL; 16]);

/// Fills the overrun zone of a block of `size` bytes at `address` with [`OVERRUN_FILL`]: two
/// unaligned 16-byte stores that overlap (the zone is 16 to 31 bytes long).
///
/// # Safety
/// The zone ([`overrun_zone`]) is valid for writes and belongs to no one.
#[inline(always)]
pub(crate) unsafe fn fill_overrun_zone(address: usize, size: usize) {
    let zone = overrun_zone(address, size);
    // SAFETY: the zone is at least 16 bytes long and valid for writes (the caller's contract).
    unsafe { (zone.start as *mut u128).write_unaligned(OVERRUN_WORD) };
    // SAFETY: as above: the last 16 bytes of the zone.
    unsafe { ((zone.end - 16) as *mut u128).write_unaligned(OVERRUN_WORD) };
}

/// The first byte of the overrun zone of a block of `size` bytes at `address` that no longer holds
/// [`OVERRUN_FILL`], if any: two overlapping 16-byte loads in the common case, the byte only when
/// one of them differs.
///
/// # Safety
/// The zone ([`overrun_zone`]) is valid for reads.
#[inline(always)]
pub(crate) unsafe fn overrun_in_zone(address: usize, size: usize) -> Option<usize> {
    let zone = overrun_zone(address, size);
    // SAFETY: the zone is at least 16 bytes long and valid for reads (the caller's contract).
    let first = unsafe { (zone.start as *const u128).read_unaligned() };
    // SAFETY: as above: the last 16 bytes of the zone.
    let last = unsafe { ((zone.end - 16) as *const u128).read_unaligned() };
    if first == OVERRUN_WORD && last == OVERRUN_WORD {
        return None;
    }
    // SAFETY: as above, byte by byte.
    zone.into_iter().find(|&a| unsafe { *(a as *const u8) } != OVERRUN_FILL)
}

/// The memory behind a block.
#[derive(Clone, Debug)]
pub(crate) enum Backing {
    /// From the host's allocator: `base`, allocated with `layout`.
    Heap { base: usize, layout: Layout },
    /// Pageable memory on pages of its own under Force IRQL Checking. (Boxed, so that the records of
    /// the far more common heap blocks stay small.)
    #[cfg(ntpool_pages)]
    Pages { pages: Box<Pages> },
    /// A special pool slot ([`special`]): a data page between guard pages, reused block after block.
    #[cfg(ntpool_pages)]
    Special { slot: u32 },
}

impl Backing {
    /// Gives the memory of a block that was never freed (left live when its kernel goes) back to the
    /// host, or to special pool's free slots.
    pub(crate) fn release(&self) {
        match *self {
            // SAFETY: every heap block was allocated with exactly this layout, and is released once:
            // its record is dropped with it.
            Backing::Heap { base, layout } => unsafe { std::alloc::dealloc(base as *mut u8, layout) },
            #[cfg(ntpool_pages)]
            Backing::Pages { ref pages } => pages.unmap(),
            #[cfg(ntpool_pages)]
            Backing::Special { slot } => special::release_live(slot),
        }
    }
}

/// One live pool block.
#[derive(Clone, Debug)]
pub(crate) struct Block {
    pub(crate) tag: ULONG,
    pub(crate) kind: PoolKind,
    pub(crate) pool_type: POOL_TYPE,
    pub(crate) size: usize,
    pub(crate) backing: Backing,
    pub(crate) site: &'static Location<'static>,
    pub(crate) routine: &'static str,
    /// The process the block is charged to, for quota allocations.
    pub(crate) charged: Option<u64>,
    /// Its row in [`Pool::usage`] (of the shard that holds the block's record).
    pub(crate) row: usize,
}

/// A freed block in quarantine: its memory is still held (unusable), so that a second free of the
/// address is recognised as a double free.
#[derive(Clone, Debug)]
pub(crate) struct Retired {
    pub(crate) address: usize,
    pub(crate) tag: ULONG,
    /// The size the block was asked for.
    pub(crate) size: usize,
    pub(crate) backing: Backing,
}

impl Retired {
    /// Gives the memory back when the block leaves quarantine (or its kernel goes). A special pool
    /// slot goes back to the free slots knowing that only the block's own bytes need the slack
    /// pattern again: the rest of its page was checked at free and stayed inaccessible since.
    pub(crate) fn release(self) {
        match self.backing {
            #[cfg(ntpool_pages)]
            Backing::Special { slot } => special::release_freed(slot, self.address, self.size),
            backing => backing.release(),
        }
    }
}

/// The bookkeeping of one shard of the pool. An allocation and a free make one insertion into and
/// one removal from the table of live blocks, with a cheap hash, and allocate nothing once the
/// tables have grown; only the error paths search the quarantine.
#[derive(Default)]
pub(crate) struct Pool {
    /// The live blocks this shard holds the records of, by address.
    pub(crate) live: LiveBlocks,
    /// Freed blocks; at most [`QUARANTINE`].
    pub(crate) quarantine: Quarantine,
    /// Heap blocks that left quarantine, kept for reuse.
    pub(crate) spare: Spare,
    /// poolmon's table, one row per tag and pool, in the order the rows were first needed.
    pub(crate) usage: Vec<PoolUsageRow>,
    /// Where the row of a (tag, pool) is in `usage`.
    pub(crate) rows: HashMap<(ULONG, PoolKind), usize, BuildHasherDefault<AddressHasher>>,
    /// The row found last, which the next allocation most often needs again.
    pub(crate) last_row: Option<(ULONG, PoolKind, usize)>,
    /// Per allocation site: the site, its requests, and how many of them the simulation failed.
    pub(crate) sites: Vec<(&'static Location<'static>, u64, u64)>,
    /// Where a site is in `sites`, by its address (cheaper than by its text).
    pub(crate) site_index: HashMap<usize, usize, BuildHasherDefault<AddressHasher>>,
    /// The site counted last (its address, 0 for none) and its index in `sites`: the next allocation
    /// most often comes from it again.
    pub(crate) last_site: (usize, usize),
    /// Allocation requests counted on this shard (see [`State::allocation_calls`](super::state::State::allocation_calls)).
    pub(crate) calls: u64,
}

impl Pool {
    /// The row of `usage` for `tag` in pool `kind`, made on first use.
    #[inline(always)]
    pub(crate) fn row(&mut self, tag: ULONG, kind: PoolKind) -> usize {
        match self.last_row {
            Some((last_tag, last_kind, row)) if (last_tag, last_kind) == (tag, kind) => row,
            _ => self.row_slot(tag, kind),
        }
    }

    #[cold]
    #[inline(never)]
    fn row_slot(&mut self, tag: ULONG, kind: PoolKind) -> usize {
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
    pub(crate) fn count_site(&mut self, site: &'static Location<'static>, failed: bool) {
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

    /// Empties the shard: every block it holds, live or freed, and its spare heap blocks go back.
    pub(crate) fn release_all(&mut self) {
        for (_, block) in self.live.drain() {
            block.backing.release();
        }
        for retired in self.quarantine.drain() {
            retired.release();
        }
        for backing in self.spare.drain() {
            backing.release();
        }
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
pub(crate) struct LiveBlocks {
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
    pub(crate) fn insert(&mut self, address: usize, block: Block) {
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
    pub(crate) fn find(&self, address: usize) -> Option<(usize, &Block)> {
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

    /// The block in `slot` (found by [`LiveBlocks::find`]).
    #[inline(always)]
    pub(crate) fn at(&self, slot: usize) -> Option<&Block> {
        self.blocks.get(slot)?.as_ref()
    }

    /// Takes the block out of `slot` (found by [`LiveBlocks::find`]), and closes the hole.
    pub(crate) fn remove(&mut self, slot: usize) -> Option<Block> {
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
    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, &Block)> {
        self.keys.iter().zip(&self.blocks).filter_map(|(&address, block)| Some((address, block.as_ref()?)))
    }

    /// Empties the table.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = (usize, Block)> + use<> {
        let (keys, blocks) = (core::mem::take(&mut self.keys), core::mem::take(&mut self.blocks));
        self.len = 0;
        keys.into_iter().zip(blocks).filter_map(|(address, block)| Some((address, block?)))
    }
}

/// The freed blocks still held: a ring of at most [`QUARANTINE`], where each block freed once the
/// ring is full takes the place of the oldest, which goes back to the host. A retirement is one
/// store and one index step; only the error paths search the ring.
#[derive(Default)]
pub(crate) struct Quarantine {
    ring: Vec<Retired>,
    /// Where the next retired block goes: once the ring is full, the oldest.
    next: usize,
}

impl Quarantine {
    /// Puts `retired` in quarantine; returns the oldest block when it leaves to make room.
    pub(crate) fn retire(&mut self, retired: Retired) -> Option<Retired> {
        if self.ring.len() < QUARANTINE {
            self.ring.push(retired);
            return None;
        }
        let oldest = core::mem::replace(&mut self.ring[self.next], retired);
        self.next = (self.next + 1) % QUARANTINE;
        Some(oldest)
    }

    /// The tag and size of the freed block at `address`, while it is in quarantine (the newest
    /// first).
    pub(crate) fn freed(&self, address: usize) -> Option<(ULONG, usize)> {
        let (older, newer) = self.ring.split_at(self.next);
        let mut ring = older.iter().rev().chain(newer.iter().rev());
        ring.find(|retired| retired.address == address).map(|r| (r.tag, r.size))
    }

    /// Empties the quarantine.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Retired> + '_ {
        self.next = 0;
        self.ring.drain(..)
    }
}

/// Heap blocks that left quarantine, kept for the next allocation of the same size instead of going
/// back to the host's allocator, as a pool keeps its free blocks: at most one per size of host block
/// below a page and a pool header (in steps of 16 bytes), so at most 260 blocks and about 1 MiB. A
/// block is only reused after its time in quarantine, exactly as the host's allocator would reuse
/// it, and it is filled again (zeroes, or the uninitialized fill) before it is handed out.
#[derive(Default)]
pub(crate) struct Spare {
    /// By host block size / 16: the base of a block allocated with 16-byte alignment (0: none), and
    /// its size.
    slots: Vec<(usize, usize)>,
}

impl Spare {
    /// How many sizes are kept: host blocks of the small-block path are the size rounded to 16, 16
    /// bytes, at most 8 more and the [`TRAILER`], size below a page.
    const SLOTS: usize = (PAGE_SIZE + 2 * POOL_ALIGNMENT + 8 + TRAILER) / POOL_ALIGNMENT + 1;

    /// The base of a kept host block allocated with `layout`, if there is one.
    #[inline]
    pub(crate) fn take(&mut self, layout: Layout) -> Option<usize> {
        let slot = self.slots.get_mut(layout.size() / POOL_ALIGNMENT)?;
        if slot.0 == 0 || slot.1 != layout.size() || layout.align() != POOL_ALIGNMENT {
            return None;
        }
        Some(core::mem::take(slot).0)
    }

    /// Keeps the memory of `retired` (which leaves quarantine) for reuse when it is a small heap
    /// block and none of its size is kept yet; otherwise gives it back, to be released.
    #[inline]
    pub(crate) fn keep(&mut self, retired: Retired) -> Option<Retired> {
        let Backing::Heap { base, layout } = retired.backing else { return Some(retired) };
        if layout.align() != POOL_ALIGNMENT || layout.size() / POOL_ALIGNMENT >= Self::SLOTS {
            return Some(retired);
        }
        if self.slots.is_empty() {
            self.slots.resize(Self::SLOTS, (0, 0));
        }
        match self.slots.get_mut(layout.size() / POOL_ALIGNMENT) {
            Some(slot) if slot.0 == 0 && base != 0 => {
                *slot = (base, layout.size());
                None
            }
            _ => Some(retired),
        }
    }

    /// Empties the cache: every kept block, to be released.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Backing> + '_ {
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
pub(crate) struct PoolLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the value is reached by one thread at a time (invariant), so sharing the lock only moves
// the value between threads.
unsafe impl<T: Send> Sync for PoolLock<T> {}

impl<T: Default> Default for PoolLock<T> {
    fn default() -> Self {
        PoolLock { locked: AtomicBool::new(false), value: UnsafeCell::new(T::default()) }
    }
}

impl<T> PoolLock<T> {
    #[inline]
    pub(crate) fn lock(&self) -> PoolGuard<'_, T> {
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

    pub(crate) fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }
}

/// The pool, locked: releases the lock when dropped. It gives `&mut T`, so it is `Sync` only when
/// `T` is (as `MutexGuard`), which the marker makes the compiler derive.
pub(crate) struct PoolGuard<'a, T> {
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
pub(crate) struct AddressHasher(u64);

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
#[cfg(test)]
mod tests {
    use super::*;

    fn block(size: usize) -> Block {
        Block {
            tag: 0x6E42704E,
            kind: PoolKind::NonPaged,
            pool_type: crate::NonPagedPoolNx,
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
        let retired = |address| Retired { address, tag: address as ULONG, size: 8, backing: block(0).backing };
        for address in 1..=QUARANTINE {
            assert!(quarantine.retire(retired(address)).is_none());
        }
        let oldest = quarantine.retire(retired(QUARANTINE + 1)).map(|r| r.address);
        assert_eq!(oldest, Some(1));
        assert_eq!(quarantine.freed(1), None);
        assert_eq!(quarantine.freed(2), Some((2, 8)));
        assert_eq!(quarantine.freed(QUARANTINE + 1), Some(((QUARANTINE + 1) as ULONG, 8)));
        assert_eq!(quarantine.drain().count(), QUARANTINE);
    }
}
