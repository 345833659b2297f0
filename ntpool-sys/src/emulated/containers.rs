//! The containers of a shard's bookkeeping ([`Pool`](super::table::Pool)): the table of live blocks
//! (from address to record), the quarantine's ring, the spare heap blocks, and the hash of the small
//! maps. Data structures only.

use std::alloc::Layout;
use std::hash::Hasher;
use std::vec::Vec;

use super::table::{Backing, PAGE_SIZE, POOL_ALIGNMENT, RecordIndex, TRAILER};

/// How many freed blocks each shard keeps (unusable) so that a double free is recognised as such: a
/// block stays in quarantine until its shard has retired this many blocks after it.
pub(crate) const QUARANTINE: usize = 4096;

/// The live blocks, by address, to the index of their records: open addressing with linear probing
/// in a power-of-two table kept at most half full, and Fibonacci hashing (one multiplication; the
/// slot is the product's high bits, which depend on every bit of the address). Address 0, never a
/// block's, marks an empty slot. Removing an entry moves the following entries of its run back into
/// the hole (no tombstones), so that a lookup stays short however many blocks come and go. An
/// insertion or a removal allocates nothing once the table has grown.
///
/// # Invariants
/// `slots.len()` is 0 or a power of two, at least 64; `len` slots have a non-zero address, at most
/// half of them; every address sits in its home slot or after it in an unbroken run of occupied
/// slots; no address appears twice.
#[derive(Default)]
pub(crate) struct LiveBlocks {
    slots: Vec<(usize, RecordIndex)>,
    len: usize,
    /// 64 minus log2 of the number of slots.
    shift: u32,
}

impl LiveBlocks {
    /// The slot `address` belongs in (the table is not empty).
    #[inline(always)]
    fn home(&self, address: usize) -> usize {
        ((address as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    /// Records that the block at `address` (not in the table) has its record at `index`.
    #[inline(always)]
    pub(crate) fn insert(&mut self, address: usize, index: RecordIndex) {
        if 2 * (self.len + 1) > self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut slot = self.home(address);
        while self.slots[slot].0 != 0 {
            slot = (slot + 1) & mask;
        }
        self.slots[slot] = (address, index);
        self.len += 1;
    }

    /// Doubles the table (at least 64 slots) and puts every entry in its new place.
    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        let size = (2 * self.slots.len()).max(64);
        let old = core::mem::replace(&mut self.slots, std::vec![(0, 0); size]);
        self.shift = 64 - size.trailing_zeros();
        self.len = 0;
        for (address, index) in old {
            if address != 0 {
                self.insert(address, index);
            }
        }
    }

    /// The slot of `address` and the index of its record, when it is live.
    #[inline(always)]
    pub(crate) fn find(&self, address: usize) -> Option<(usize, RecordIndex)> {
        if self.len == 0 || address == 0 {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut slot = self.home(address);
        loop {
            match self.slots[slot] {
                (key, index) if key == address => return Some((slot, index)),
                (0, _) => return None,
                _ => slot = (slot + 1) & mask,
            }
        }
    }

    /// Takes the entry out of `slot` (found by [`LiveBlocks::find`]), and closes the hole; the index
    /// of its record.
    #[inline(always)]
    pub(crate) fn remove(&mut self, slot: usize) -> Option<RecordIndex> {
        let (address, index) = *self.slots.get(slot)?;
        if address == 0 {
            return None;
        }
        self.slots[slot].0 = 0;
        self.len -= 1;
        let mask = self.slots.len() - 1;
        let mut hole = slot;
        let mut next = (slot + 1) & mask;
        loop {
            let (key, moved) = self.slots[next];
            if key == 0 {
                return Some(index);
            }
            // The entry may fill the hole when the hole lies between its home and its slot.
            if next.wrapping_sub(self.home(key)) & mask >= next.wrapping_sub(hole) & mask {
                self.slots[hole] = (key, moved);
                self.slots[next].0 = 0;
                hole = next;
            }
            next = (next + 1) & mask;
        }
    }

    /// The index of every live block's record.
    pub(crate) fn iter(&self) -> impl Iterator<Item = RecordIndex> + '_ {
        self.slots.iter().filter(|&&(address, _)| address != 0).map(|&(_, index)| index)
    }

    /// Empties the table: the index of every record it held.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = RecordIndex> + use<> {
        self.len = 0;
        core::mem::take(&mut self.slots).into_iter().filter(|&(address, _)| address != 0).map(|(_, index)| index)
    }
}

/// The freed blocks still held: a ring of `QUARANTINE + 1` entries, the oldest at `next` once the
/// ring is full. A free puts its block at `next`, and the block there (the oldest) leaves. An
/// allocation may take the oldest block out first, when its memory fits
/// ([`Quarantine::take_oldest`]): that leaves a hole at `next`, which the next free fills without
/// any block leaving. Either way the last [`QUARANTINE`] freed blocks are held at all times. A
/// retirement is one store and one index step; only the error paths search the ring.
///
/// An entry is a record's index in its low 32 bits and, for a heap block an allocation may reuse,
/// its host block's size in the high 32 bits (0 otherwise: no request needs a block of 0 bytes), so
/// that an allocation tests the oldest block without reading its record; [`HOLE`] for a hole.
#[derive(Default)]
pub(crate) struct Quarantine {
    ring: Vec<u64>,
    /// Where the next retired block goes: once the ring is full, the oldest.
    next: usize,
}

/// An entry of no block.
const HOLE: u64 = u64::MAX;

impl Quarantine {
    const RING: usize = QUARANTINE + 1;

    /// Puts the record at `index` in quarantine, its block reusable by allocations of `reusable`
    /// host bytes (0: by none); returns the oldest record's index when it leaves to make room.
    #[inline(always)]
    pub(crate) fn retire(&mut self, index: RecordIndex, reusable: u32) -> Option<RecordIndex> {
        let entry = u64::from(index) | u64::from(reusable) << 32;
        match self.ring.get_mut(self.next) {
            Some(oldest) => {
                let oldest = core::mem::replace(oldest, entry);
                self.next += 1;
                if self.next == Self::RING {
                    self.next = 0;
                }
                (oldest != HOLE).then_some(oldest as RecordIndex)
            }
            None => {
                self.ring.push(entry);
                self.next = self.ring.len() % Self::RING;
                None
            }
        }
    }

    /// Takes the oldest block out for reuse, when the ring is full (it has been in quarantine for
    /// `QUARANTINE` retirements at least, and may leave) and its host block has `bytes` bytes: its
    /// record's index. A hole is left in its place.
    #[inline(always)]
    pub(crate) fn take_oldest(&mut self, bytes: usize) -> Option<RecordIndex> {
        let entry = self.ring.get_mut(self.next)?;
        if (*entry >> 32) as usize != bytes {
            return None;
        }
        Some(core::mem::replace(entry, HOLE) as RecordIndex)
    }

    /// The records in quarantine, the newest first.
    pub(crate) fn newest_first(&self) -> impl Iterator<Item = RecordIndex> + '_ {
        let (older, newer) = self.ring.split_at(self.next.min(self.ring.len()));
        let entries = older.iter().rev().chain(newer.iter().rev());
        entries.filter(|&&entry| entry != HOLE).map(|&entry| entry as RecordIndex)
    }

    /// Empties the quarantine.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = RecordIndex> + use<> {
        self.next = 0;
        core::mem::take(&mut self.ring).into_iter().filter(|&entry| entry != HOLE).map(|entry| entry as RecordIndex)
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
    /// Host blocks below this size are kept.
    pub(crate) const LARGEST: usize = Self::SLOTS * POOL_ALIGNMENT;

    /// The base of a kept host block allocated with `layout`, if there is one.
    #[inline(always)]
    pub(crate) fn take(&mut self, layout: Layout) -> Option<usize> {
        let slot = self.slots.get_mut(layout.size() / POOL_ALIGNMENT)?;
        if slot.0 == 0 || slot.1 != layout.size() || layout.align() != POOL_ALIGNMENT {
            return None;
        }
        Some(core::mem::take(slot).0)
    }

    /// Keeps `backing` (of a block that leaves quarantine) for reuse when it is a small heap block
    /// and none of its size is kept yet; otherwise gives it back, to be released.
    #[inline(always)]
    #[cfg_attr(not(ntpool_pages), allow(irrefutable_let_patterns))]
    pub(crate) fn keep(&mut self, backing: Backing) -> Option<Backing> {
        let Backing::Heap { base, layout } = backing else { return Some(backing) };
        match self.slots.get_mut(layout.size() / POOL_ALIGNMENT) {
            Some(slot) if slot.0 == 0 && base != 0 && layout.align() == POOL_ALIGNMENT => {
                *slot = (base, layout.size());
                None
            }
            Some(_) => Some(backing),
            None => self.keep_first(backing),
        }
    }

    /// [`Spare::keep`] before the first block was kept: makes the slots.
    #[cold]
    #[inline(never)]
    #[cfg_attr(not(ntpool_pages), allow(irrefutable_let_patterns))]
    fn keep_first(&mut self, backing: Backing) -> Option<Backing> {
        let Backing::Heap { layout, .. } = backing else { return Some(backing) };
        if !self.slots.is_empty() || layout.size() / POOL_ALIGNMENT >= Self::SLOTS {
            return Some(backing);
        }
        self.slots.resize(Self::SLOTS, (0, 0));
        self.keep(backing)
    }

    /// Empties the cache: every kept block, to be released.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Backing> + '_ {
        self.slots.drain(..).filter(|&(base, _)| base != 0).filter_map(|(base, size)| {
            Some(Backing::Heap { base, layout: Layout::from_size_align(size, POOL_ALIGNMENT).ok()? })
        })
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
