//! The pool's bookkeeping, one [`Pool`] per shard ([`shards`](super::shards)): the records of the
//! blocks (a slab: a record is written once, where it stays while its block is live and while it is
//! in quarantine), the table of live blocks (open addressing, one multiplication per lookup, from
//! address to record), the quarantine of freed blocks (a ring of records), the heap blocks kept for
//! reuse, poolmon's counts of frees, the allocation sites and the count of requests. The lock that guards a
//! shard is in [`shards`](super::shards). Data structures only: the allocation and free routines that
//! use them are in [`pool`](super::pool) and [`free`](super::free).

use std::alloc::Layout;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::panic::Location;
use std::vec::Vec;

use super::containers::{AddressHasher, LiveBlocks, Quarantine, Spare};
#[cfg(ntpool_pages)]
use super::pages::Pages;
use super::reports::PoolKind;
#[cfg(ntpool_pages)]
use super::special;
use crate::{POOL_TYPE, ULONG};

/// x64 pool blocks below a page are aligned on 16 bytes, and never more than that is promised.
pub(crate) const POOL_ALIGNMENT: usize = 16;
pub(crate) const PAGE_SIZE: usize = 4096;
pub(crate) const CACHE_LINE: usize = 64;
/// Bytes past the end of every heap block, beyond its rounding to 16 bytes, that belong to no one:
/// pool tracking fills them (with the rounding slack) with [`OVERRUN_FILL`] and checks them at free
/// (bug check 0xC4 / 0x51).
pub(crate) const TRAILER: usize = 16;
/// What the bytes after a heap block hold until someone writes past the block's end.
pub(crate) const OVERRUN_FILL: u8 = 0x5B;

/// The memory behind a block.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Backing {
    /// From the host's allocator: `base`, allocated with `layout`.
    Heap { base: usize, layout: Layout },
    /// Pageable memory on pages of its own under Force IRQL Checking.
    #[cfg(ntpool_pages)]
    Pages(Pages),
    /// A special pool slot ([`special`]): a data page between guard pages, reused block after block.
    #[cfg(ntpool_pages)]
    Special { slot: u32 },
}

impl Backing {
    /// Gives back the memory of the block of `size` bytes at `address` when it leaves quarantine. A
    /// special pool slot goes back to the free slots knowing that only the block's own bytes need the
    /// slack pattern again: the rest of its page was checked at free and stayed inaccessible since.
    pub(crate) fn release_freed(self, address: usize, size: usize) {
        #[cfg(ntpool_pages)]
        if let Backing::Special { slot } = self {
            return special::release_freed(slot, address, size);
        }
        #[cfg(not(ntpool_pages))]
        let _ = (address, size);
        self.release();
    }

    /// Gives the memory of a block that was never freed (left live when its kernel goes) back to the
    /// host, or to special pool's free slots.
    pub(crate) fn release(self) {
        match self {
            // SAFETY: every heap block was allocated with exactly this layout, and is released once:
            // its record is dropped with it.
            Backing::Heap { base, layout } => unsafe { std::alloc::dealloc(base as *mut u8, layout) },
            #[cfg(ntpool_pages)]
            Backing::Pages(pages) => pages.unmap(),
            #[cfg(ntpool_pages)]
            Backing::Special { slot } => special::release_live(slot),
        }
    }
}

/// Where a record's memory comes from (the variant of [`Backing`], a byte tested with one comparison).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Memory {
    Heap,
    #[cfg(ntpool_pages)]
    Pages,
    #[cfg(ntpool_pages)]
    Special,
}

/// The record of one pool block, live or in quarantine. The memory behind it ([`Block::backing`])
/// is kept as plain fields: `memory` says what `base` and `layout_size` hold.
///
/// # Invariants
/// For [`Memory::Heap`], `base` was allocated by the host with the layout of `layout_size` bytes
/// aligned on `align` (a valid layout); for the others, `base` is the slot.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Block {
    pub(crate) address: usize,
    /// The size the block was asked for.
    pub(crate) size: usize,
    /// Where it was allocated, and by which routine: an index into its shard's origins
    /// ([`Pool::origin`]).
    pub(crate) origin: u32,
    /// Charged to a process's quota (the process is in [`State`](super::state::State)'s quota).
    pub(crate) charged: bool,
    base: usize,
    layout_size: usize,
    pub(crate) tag: ULONG,
    pub(crate) pool_type: POOL_TYPE,
    align: u32,
    /// What [`Block::reusable`] says, worked out when the memory was found.
    reusable: u32,
    pub(crate) kind: PoolKind,
    pub(crate) memory: Memory,
}

impl Block {
    /// A record of no block, for slots about to be written.
    const EMPTY: Block = Block {
        address: 0,
        size: 0,
        origin: 0,
        charged: false,
        base: 0,
        layout_size: 1,
        tag: 0,
        pool_type: 0,
        align: 1,
        reusable: 0,
        kind: PoolKind::NonPaged,
        memory: Memory::Heap,
    };

    /// The memory behind the block.
    #[inline(always)]
    pub(crate) fn backing(&self) -> Backing {
        match self.memory {
            Memory::Heap => {
                // SAFETY: the layout the block was allocated with (invariant).
                let layout = unsafe { Layout::from_size_align_unchecked(self.layout_size, self.align as usize) };
                Backing::Heap { base: self.base, layout }
            }
            #[cfg(ntpool_pages)]
            Memory::Pages => Backing::Pages(Pages::from_slot(self.base as u32)),
            #[cfg(ntpool_pages)]
            Memory::Special => Backing::Special { slot: self.base as u32 },
        }
    }

    /// The host size an allocation reusing this block's memory asks for (0: it cannot be reused so):
    /// a heap block of the small-block path, of the sizes [`Spare`] keeps.
    #[inline(always)]
    pub(crate) fn reusable(&self) -> u32 {
        self.reusable
    }

    /// [`Block::reusable`] of memory with `layout_size`, `align` and `memory`.
    fn reusable_for(layout_size: usize, align: u32, memory: Memory) -> u32 {
        let small_heap = memory == Memory::Heap && align as usize == POOL_ALIGNMENT;
        if small_heap && layout_size < Spare::LARGEST { layout_size as u32 } else { 0 }
    }

    /// Gives the memory back when the block leaves quarantine (or its kernel goes).
    pub(crate) fn release_freed(self) {
        self.backing().release_freed(self.address, self.size);
    }
}

/// What an allocation fills in of a block's record; the memory comes separately.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NewBlock {
    pub(crate) address: usize,
    pub(crate) size: usize,
    /// Its origin's index ([`Pool::count`]).
    pub(crate) origin: u32,
    pub(crate) charged: bool,
    pub(crate) tag: ULONG,
    pub(crate) pool_type: POOL_TYPE,
    pub(crate) kind: PoolKind,
}

/// Where a record is in [`Records`].
pub(crate) type RecordIndex = u32;

/// No record (an index [`Records`] never hands out).
pub(crate) const NO_RECORD: RecordIndex = RecordIndex::MAX;

/// The records of a shard's blocks (a slab): a record is written when its block is allocated, and
/// stays in place until its block leaves quarantine, when its index is reused.
///
/// # Invariants
/// Every index in `free` is below `blocks.len()` and appears once; the record at such an index is
/// no block's.
#[derive(Default)]
pub(crate) struct Records {
    blocks: Vec<Block>,
    free: Vec<RecordIndex>,
}

impl Records {
    /// An index for a new record.
    #[inline(always)]
    fn next(&mut self) -> RecordIndex {
        match self.free.pop() {
            Some(index) if (index as usize) < self.blocks.len() => index,
            _ => self.grow(),
        }
    }

    #[cold]
    #[inline(never)]
    fn grow(&mut self) -> RecordIndex {
        self.blocks.push(Block::EMPTY);
        (self.blocks.len() - 1) as RecordIndex
    }

    /// The record at `index`.
    #[inline(always)]
    pub(crate) fn get(&self, index: RecordIndex) -> Option<&Block> {
        self.blocks.get(index as usize)
    }

    /// The record at `index`, an index [`Records::next`] handed out.
    #[inline(always)]
    fn at(&self, index: RecordIndex) -> &Block {
        debug_assert!((index as usize) < self.blocks.len());
        // SAFETY: `next` hands out indices below `blocks.len()`, and `blocks` never shrinks (it only
        // grows, in `grow`); the pool only asks for indices it was handed (`Pool`'s invariant).
        unsafe { self.blocks.get_unchecked(index as usize) }
    }

    /// The record at `index`, an index [`Records::next`] handed out, to write.
    #[inline(always)]
    fn at_mut(&mut self, index: RecordIndex) -> &mut Block {
        debug_assert!((index as usize) < self.blocks.len());
        // SAFETY: as in `at`.
        unsafe { self.blocks.get_unchecked_mut(index as usize) }
    }

    /// Frees the index of a record whose block left quarantine.
    #[inline(always)]
    fn free(&mut self, index: RecordIndex) {
        self.free.push(index);
    }
}

/// Where the entry of a live block is: the slot of the block allocated last, or a slot of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    Recent,
    Table(usize),
}

/// The memory for a new block (its record already says where it is), and where its record goes;
/// `address`: where the block of the memory's last user started, when it is reused (0 otherwise).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reserved {
    index: RecordIndex,
    base: usize,
    memory: Memory,
    pub(crate) address: usize,
}

/// The bookkeeping of one shard of the pool. An allocation writes one record and makes one insertion
/// into the table of live blocks, a free one removal and one step of the quarantine's ring, with a
/// cheap hash, and neither allocates once the tables have grown; only the error paths search the
/// quarantine.
///
/// Four shortcuts for the most common patterns, each exact:
///
/// * the block allocated last is kept out of the table, in `recent`, until the next allocation: most
///   blocks are freed before another is allocated (a buffer for one call, a box dropped at the end of
///   a scope), and their free then finds them with one comparison. The table and `recent` together
///   are the live blocks; every query looks at both;
/// * an allocation takes the oldest block in quarantine, memory and record, when the quarantine is
///   full and that block's host size is the one needed: the block would leave at the next free;
/// * a heap block that leaves quarantine otherwise keeps its record (`ready`) for the next
///   allocation of the same host size, which then takes both at once;
/// * poolmon's counts of allocations and bytes in use are not kept: they are the frees plus the live
///   blocks, and the live blocks' sizes, added up when the table is asked for (every allocation that
///   succeeded is either live or freed).
///
/// # Invariants
/// Every record index in `recent` (when its address is not 0), `live`, `quarantine` and `ready`
/// (when its size is not 0) was handed out by `records` ([`Records::next`]) and not freed since.
pub(crate) struct Pool {
    /// The records of the live and quarantined blocks this shard holds (and of `ready`).
    records: Records,
    /// The address and record of the block allocated last, while it is live and no block was
    /// allocated after it (`(0, NO_RECORD)`: none).
    recent: (usize, RecordIndex),
    /// The other live blocks this shard holds, by address.
    live: LiveBlocks,
    /// Freed blocks; at most [`QUARANTINE`](super::containers::QUARANTINE) + 1.
    quarantine: Quarantine,
    /// A heap block that left quarantine with its record, kept for the next allocation of its host
    /// size: its record, host size and base (`(NO_RECORD, 0, 0)`: none).
    ready: (RecordIndex, usize, usize),
    /// Other heap blocks that left quarantine, kept for reuse.
    spare: Spare,
    /// The frees counted per tag and pool, in the order the rows were first needed.
    frees: Vec<(ULONG, PoolKind, u64)>,
    /// Where the row of a (tag, pool) is in `frees`.
    rows: HashMap<(ULONG, PoolKind), usize, BuildHasherDefault<AddressHasher>>,
    /// The row counted last, which the next free most often counts again: its key ([`row_key`];
    /// `u64::MAX`, no key's: none), its index, and the frees counted to it that `frees` does not
    /// have yet.
    last_row: (u64, usize, u64),
    /// Per origin (an allocation site and the routine called there): the site, the routine, its
    /// requests, and how many of them the simulation failed.
    origins: Vec<(&'static Location<'static>, &'static str, u64, u64)>,
    /// Where an origin is in `origins`, by the addresses of its site and its routine's name (cheaper
    /// than by their text).
    origin_index: HashMap<(usize, usize), usize, BuildHasherDefault<AddressHasher>>,
    /// The origin counted last (its site's and routine's addresses, 0 for none), its index in
    /// `origins`, and the requests counted to it that `origins` does not have yet: the next
    /// allocation most often comes from it again.
    last_origin: (usize, usize, u32, u64),
    /// Allocation requests counted on this shard but at no site: those refused for quota, and those
    /// the host could not serve (see [`Pool::calls`]).
    pub(crate) unsited_calls: u64,
}

impl Default for Pool {
    fn default() -> Self {
        Pool {
            records: Records::default(),
            recent: (0, NO_RECORD),
            live: LiveBlocks::default(),
            quarantine: Quarantine::default(),
            ready: (NO_RECORD, 0, 0),
            spare: Spare::default(),
            frees: Vec::new(),
            rows: HashMap::default(),
            last_row: (u64::MAX, 0, 0),
            origins: Vec::new(),
            origin_index: HashMap::default(),
            last_origin: (0, 0, 0, 0),
            unsited_calls: 0,
        }
    }
}

impl Pool {
    /// Memory for a heap block allocated with `layout` (16-byte aligned, below a page): the block
    /// kept with its record if it has that size, a spare one, or the host's.
    #[inline(always)]
    pub(crate) fn reserve_heap(&mut self, layout: Layout) -> Option<Reserved> {
        // Only blocks of the small-block path are reused so (`Block::reusable`), all aligned on 16.
        if let Some(oldest) = self.quarantine.take_oldest(layout.size()) {
            let block = self.records.at(oldest);
            return Some(Reserved { index: oldest, base: block.base, memory: Memory::Heap, address: block.address });
        }
        if self.ready.1 == layout.size() {
            // Its record already says where its memory is.
            let (index, _, base) = core::mem::replace(&mut self.ready, (NO_RECORD, 0, 0));
            let address = self.records.at(index).address;
            return Some(Reserved { index, base, memory: Memory::Heap, address });
        }
        let base = match self.spare.take(layout) {
            Some(base) => base,
            None => host_allocate(layout)?,
        };
        Some(self.reserve(base, layout.size(), layout.align() as u32, Memory::Heap))
    }

    /// A record for a block whose memory is `base` (or the slot), with `layout_size` and `align`.
    #[inline(always)]
    pub(crate) fn reserve(&mut self, base: usize, layout_size: usize, align: u32, memory: Memory) -> Reserved {
        let index = self.records.next();
        let reusable = Block::reusable_for(layout_size, align, memory);
        if let Some(block) = self.records.blocks.get_mut(index as usize) {
            (block.base, block.layout_size, block.align, block.memory, block.reusable) =
                (base, layout_size, align, memory, reusable);
        }
        Reserved { index, base, memory, address: 0 }
    }

    /// The memory [`Pool::reserve_heap`] or [`Pool::reserve`] found (the host block's base, or the
    /// slot), and what kind of memory it is.
    #[inline(always)]
    pub(crate) fn reserved_backing(reserved: &Reserved) -> (usize, Memory) {
        (reserved.base, reserved.memory)
    }

    /// Records the block `new` in the place `reserved`, live; it becomes the block allocated last.
    #[inline(always)]
    pub(crate) fn insert(&mut self, reserved: Reserved, new: NewBlock) {
        let block = self.records.at_mut(reserved.index);
        block.address = new.address;
        block.size = new.size;
        block.origin = new.origin;
        block.charged = new.charged;
        block.tag = new.tag;
        block.pool_type = new.pool_type;
        block.kind = new.kind;
        let (previous, previous_index) = core::mem::replace(&mut self.recent, (new.address, reserved.index));
        if previous != 0 {
            self.live.insert(previous, previous_index);
        }
    }

    /// The entry and record index of the live block at `address`.
    #[inline(always)]
    pub(crate) fn find(&self, address: usize) -> Option<(Entry, RecordIndex)> {
        if self.recent.0 == address && self.recent.1 != NO_RECORD {
            return Some((Entry::Recent, self.recent.1));
        }
        let (slot, index) = self.live.find(address)?;
        Some((Entry::Table(slot), index))
    }

    /// The record at `index` (found by [`Pool::find`]).
    #[inline(always)]
    pub(crate) fn record(&self, index: RecordIndex) -> &Block {
        self.records.at(index)
    }

    /// Moves the live block at `entry` (found by [`Pool::find`]) to quarantine, counting its free in
    /// its row; the oldest block in quarantine leaves when it makes room, and its memory is kept or
    /// given back.
    #[inline(always)]
    pub(crate) fn retire(&mut self, entry: Entry, tag: ULONG, kind: PoolKind, reusable: u32) {
        let key = row_key(tag, kind);
        if self.last_row.0 == key {
            self.last_row.2 += 1;
        } else {
            self.switch_row(key, tag, kind);
        }
        let index = match entry {
            Entry::Recent => core::mem::replace(&mut self.recent, (0, NO_RECORD)).1,
            Entry::Table(slot) => match self.live.remove(slot) {
                Some(index) => index,
                None => return,
            },
        };
        if let Some(oldest) = self.quarantine.retire(index, reusable) {
            self.recycle(oldest);
        }
    }

    /// The block of record `oldest` left quarantine: kept with its record for the next allocation
    /// of its size (a small heap block, when none is kept yet), kept alone, or given back.
    #[inline(always)]
    fn recycle(&mut self, oldest: RecordIndex) {
        let block = *self.records.at(oldest);
        if block.reusable() != 0 && self.ready.0 == NO_RECORD {
            self.ready = (oldest, block.layout_size, block.base);
            return;
        }
        self.records.free(oldest);
        if let Some(backing) = self.spare.keep(block.backing()) {
            backing.release_freed(block.address, block.size);
        }
    }

    /// Every live block.
    pub(crate) fn live_blocks(&self) -> impl Iterator<Item = &Block> {
        let recent = Some(self.recent.1).filter(|&index| index != NO_RECORD);
        recent.into_iter().chain(self.live.iter()).filter_map(|index| self.records.get(index))
    }

    /// The frees counted per tag and pool.
    pub(crate) fn frees(&self) -> impl Iterator<Item = (ULONG, PoolKind, u64)> + '_ {
        let (_, last, pending) = self.last_row;
        self.frees
            .iter()
            .enumerate()
            .map(move |(row, &(tag, kind, frees))| (tag, kind, frees + if row == last { pending } else { 0 }))
    }

    /// Every origin: the site, its requests, and how many of them the simulation failed.
    pub(crate) fn sites(&self) -> impl Iterator<Item = (&'static Location<'static>, u64, u64)> + '_ {
        let (_, _, last, pending) = self.last_origin;
        self.origins.iter().enumerate().map(move |(index, &(site, _, calls, failed))| {
            (site, calls + if index == last as usize { pending } else { 0 }, failed)
        })
    }

    /// The site and the routine of origin `index` (a record's [`Block::origin`]).
    pub(crate) fn origin(&self, index: u32) -> (&'static Location<'static>, &'static str) {
        self.origins.get(index as usize).map_or((Location::caller(), ""), |&(site, routine, _, _)| (site, routine))
    }

    /// The tag and size of the freed block at `address`, while it is in quarantine.
    pub(crate) fn freed(&self, address: usize) -> Option<(ULONG, usize)> {
        self.quarantine
            .newest_first()
            .filter_map(|index| self.records.get(index))
            .find(|block| block.address == address)
            .map(|block| (block.tag, block.size))
    }

    /// How many allocation requests reached this shard.
    pub(crate) fn calls(&self) -> u64 {
        self.unsited_calls + self.sites().map(|(_, calls, _)| calls).sum::<u64>()
    }

    /// Makes `tag` in pool `kind` (`key`) the row counted last, with one free, after giving the
    /// frees pending to the previous one.
    #[cold]
    #[inline(never)]
    fn switch_row(&mut self, key: u64, tag: ULONG, kind: PoolKind) {
        let (_, last, pending) = self.last_row;
        if let Some((_, _, frees)) = self.frees.get_mut(last) {
            *frees += pending;
        }
        let frees = &mut self.frees;
        let row = *self.rows.entry((tag, kind)).or_insert_with(|| {
            frees.push((tag, kind, 0));
            frees.len() - 1
        });
        self.last_row = (key, row, 1);
    }

    /// Counts one allocation request from `site` to `routine`, `failed` by the low resources
    /// simulation or not; the index of that origin.
    #[inline(always)]
    pub(crate) fn count(&mut self, site: &'static Location<'static>, routine: &'static str, failed: bool) -> u32 {
        let key = (core::ptr::from_ref(site) as usize, routine.as_ptr() as usize);
        if (self.last_origin.0, self.last_origin.1) == key && !failed {
            self.last_origin.3 += 1;
            return self.last_origin.2;
        }
        self.count_other(site, routine, failed)
    }

    /// Counts a request from an origin other than the last one (or a failed one): gives the
    /// requests pending to the last origin, and makes this one the last.
    #[cold]
    #[inline(never)]
    fn count_other(&mut self, site: &'static Location<'static>, routine: &'static str, failed: bool) -> u32 {
        let (_, _, last, pending) = self.last_origin;
        if let Some(counts) = self.origins.get_mut(last as usize) {
            counts.2 += pending;
        }
        let key = (core::ptr::from_ref(site) as usize, routine.as_ptr() as usize);
        let origins = &mut self.origins;
        let index = *self.origin_index.entry(key).or_insert_with(|| {
            origins.push((site, routine, 0, 0));
            origins.len() - 1
        });
        if let Some(counts) = self.origins.get_mut(index) {
            counts.2 += 1;
            counts.3 += u64::from(failed);
        }
        self.last_origin = (key.0, key.1, index as u32, 0);
        index as u32
    }

    /// Empties the shard: every block it holds, live or freed, and its spare heap blocks go back.
    pub(crate) fn release_all(&mut self) {
        let recent = core::mem::replace(&mut self.recent, (0, NO_RECORD)).1;
        for index in self.live.drain().chain(Some(recent).filter(|&index| index != NO_RECORD)) {
            if let Some(block) = self.records.get(index) {
                block.backing().release();
            }
        }
        let ready = core::mem::replace(&mut self.ready, (NO_RECORD, 0, 0)).0;
        for index in self.quarantine.drain().chain(Some(ready).filter(|&index| index != NO_RECORD)) {
            if let Some(&block) = self.records.get(index) {
                block.release_freed();
            }
        }
        for backing in self.spare.drain() {
            backing.release();
        }
    }
}

/// A (tag, pool) in one word: the tag, and the pool above it.
#[inline(always)]
fn row_key(tag: ULONG, kind: PoolKind) -> u64 {
    let kind = match kind {
        PoolKind::Paged => 0,
        PoolKind::NonPaged => 1,
        PoolKind::NonPagedExecute => 2,
    };
    u64::from(tag) | kind << 32
}

/// A block of the host's allocator.
#[cold]
#[inline(never)]
fn host_allocate(layout: Layout) -> Option<usize> {
    // SAFETY: `layout` has a non-zero size (the caller's block is not empty).
    let base = unsafe { std::alloc::alloc(layout) };
    (!base.is_null()).then_some(base as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulated::containers::QUARANTINE;

    fn new_block(address: usize, size: usize) -> NewBlock {
        NewBlock {
            address,
            size,
            origin: 0,
            charged: false,
            tag: 0x6E42704E,
            pool_type: crate::NonPagedPoolNx,
            kind: PoolKind::NonPaged,
        }
    }

    /// The table of live blocks agrees with a `HashMap` through inserts and removals in a mixed
    /// order (runs that wrap around, holes closed by moving entries back, growth), and records are
    /// found again after their blocks were retired and their indices reused.
    #[test]
    fn live_blocks_agree_with_a_map() {
        let mut pool = Pool::default();
        let mut model = HashMap::new();
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for step in 0..20_000usize {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Few distinct addresses, so that removals often hit and runs collide (and bits of `x`
            // other than the address's decide between insertion and removal).
            let address = 16 * (1 + (x % 3000) as usize);
            if (x >> 40) % 3 == 0 {
                if let Some((entry, index)) = pool.find(address) {
                    let (size, reusable) = (pool.record(index).size, pool.record(index).reusable());
                    assert_eq!(size, model[&address]);
                    pool.retire(entry, 0x6E42704E, PoolKind::NonPaged, reusable);
                    model.remove(&address);
                    assert_eq!(pool.freed(address).map(|(_, size)| size), Some(size));
                } else {
                    assert!(!model.contains_key(&address), "step {step}: {address:#x} lost");
                }
            } else if let std::collections::hash_map::Entry::Vacant(vacant) = model.entry(address) {
                let reserved = pool.reserve_heap(Layout::from_size_align(64, 16).unwrap()).unwrap();
                pool.insert(reserved, new_block(address, step));
                vacant.insert(step);
            }
            assert_eq!(pool.live_blocks().count(), model.len());
        }
        for (&address, &size) in &model {
            assert_eq!(pool.find(address).map(|(_, index)| pool.record(index).size), Some(size));
        }
        let mut all: Vec<(usize, usize)> = pool.live_blocks().map(|b| (b.address, b.size)).collect();
        let mut expected: Vec<(usize, usize)> = model.into_iter().collect();
        all.sort_unstable();
        expected.sort_unstable();
        assert_eq!(all, expected);
        let frees: u64 = pool.frees().map(|(_, _, frees)| frees).sum();
        assert!(frees > 1000, "{frees} frees counted");
        pool.release_all();
    }

    /// The quarantine keeps the last [`QUARANTINE`] blocks and gives back the oldest.
    #[test]
    fn quarantine_is_a_ring_of_the_newest() {
        let mut quarantine = Quarantine::default();
        for index in 1..=QUARANTINE as RecordIndex {
            assert!(quarantine.retire(index, 64).is_none());
        }
        // One more than QUARANTINE is held: the oldest may leave, for a free or an allocation (of
        // its host size only).
        assert_eq!(quarantine.take_oldest(64), None);
        assert!(quarantine.retire(QUARANTINE as RecordIndex + 1, 64).is_none());
        assert_eq!(quarantine.take_oldest(80), None);
        assert_eq!(quarantine.retire(QUARANTINE as RecordIndex + 2, 0), Some(1));
        assert_eq!(quarantine.take_oldest(64), Some(2));
        assert_eq!(quarantine.take_oldest(64), None);
        assert_eq!(quarantine.newest_first().count(), QUARANTINE);
        // The hole is filled without a block leaving.
        assert_eq!(quarantine.retire(QUARANTINE as RecordIndex + 3, 64), None);
        let newest: Vec<RecordIndex> = quarantine.newest_first().take(3).collect();
        assert_eq!(
            newest,
            [QUARANTINE as RecordIndex + 3, QUARANTINE as RecordIndex + 2, QUARANTINE as RecordIndex + 1]
        );
        assert_eq!(quarantine.newest_first().count(), QUARANTINE + 1);
        // A block that no allocation may reuse is never offered.
        assert_eq!(quarantine.take_oldest(0), None);
        assert_eq!(quarantine.drain().count(), QUARANTINE + 1);
    }
}
