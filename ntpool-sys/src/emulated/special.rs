//! Special pool's pages: a process-wide arena of slots, each one data page between two guard pages,
//! reused from block to block instead of being mapped, protected and unmapped for every block.
//!
//! The arena is made of chunks of [`SLOTS_PER_CHUNK`] slots: `guard, data, guard, data, ..., guard`,
//! one anonymous mapping each, mapped when the slots made so far are all in use. Guard pages are
//! made inaccessible once, when their chunk is mapped: with Linux's guard markers
//! (`MADV_GUARD_INSTALL`, Linux 6.13), which fault on any access whatever the protection of the
//! pages around them, or else as `PROT_NONE` pages.
//!
//! A block's life in its slot, with every check special pool makes:
//!
//! * allocation: the slot's data page is accessible (read-write); the block is placed against the
//!   guard page after it (`VerifyEnd`) or before it (`VerifyStart`), and every other byte of the page
//!   holds [`SLACK_FILL`]. A touch of a guard page is bug check 0xCD.
//! * free: the slack (the page around the block) is checked (0xC1 / 0x23, 0x24), then the data page
//!   is made inaccessible before the free returns: one `mprotect`. A touch while the block is in
//!   quarantine is bug check 0xCC, as is a touch of a slot no block holds.
//! * leaving quarantine: the slot joins the idle slots, still inaccessible. Idle slots are made
//!   accessible again in batches of at least [`BATCH`], sorted by address, one `mprotect` per run of
//!   neighbouring slots (with guard markers; one per slot with guard pages, whose protection a
//!   range's `mprotect` would change). Their pages keep their contents: the slack was checked at free
//!   and nothing could write it since, so only the old block's own bytes need the pattern again.
//!
//! A pair of allocation and free therefore costs one `mprotect` and a fraction of another, instead
//! of an `mmap`, two `mprotect`s, a page fault and a `munmap`.
//!
//! The fault handler ([`pages`](super::pages), which the allocation routine installs) finds a slot
//! from an address with a division, without a lock: chunk bases and slot states are atomics.

use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::vec::Vec;

use super::config::SpecialPoolAlignment;

pub(crate) const PAGE: usize = 4096;
/// What the slack around a special-pool block is filled with, and checked for at free.
pub(crate) const SLACK_FILL: u8 = 0x5A;

/// Slots per chunk: the chunk is `2 * SLOTS_PER_CHUNK + 1` pages (4 MiB of address space).
const SLOTS_PER_CHUNK: usize = 512;
/// Chunks at most: 24 576 slots, 192 MiB of address space, one page of memory per slot used. Each
/// slot whose protection differs from its neighbours' costs the process up to two mappings (Linux
/// counts them against `vm.max_map_count`, 65 530 by default): at most 49 152 here, which leaves
/// the rest of the process room. When every slot holds a live or quarantined block, allocations
/// come from the normal pool ([`memory`](super::memory)), as on Windows when special pool runs out.
const MAX_CHUNKS: usize = 48;
const SLOTS: usize = SLOTS_PER_CHUNK * MAX_CHUNKS;
const CHUNK_BYTES: usize = (2 * SLOTS_PER_CHUNK + 1) * PAGE;
/// Idle slots are made accessible again this many at a time at least, while new slots can be made.
const BATCH: usize = 64;
/// `MADV_GUARD_INSTALL` (Linux 6.13): a guard marker on each page of the range.
const MADV_GUARD_INSTALL: libc::c_int = 102;
/// Set in the environment, guard pages of their own (`PROT_NONE`) even where the kernel has guard
/// markers: how the tests run the older kernels' way on a newer one.
const GUARD_PAGES_VARIABLE: &str = "NTPOOL_SPECIAL_POOL_GUARD_PAGES";

/// What a slot holds (the low bits of its state).
const FREE: u8 = 0;
const LIVE: u8 = 1;
/// A live pageable block (Force IRQL Checking trims it).
const LIVE_PAGED: u8 = 2;
/// A live pageable block, made inaccessible by Force IRQL Checking.
const TRIMMED: u8 = 3;
/// A freed block in quarantine.
const FREED: u8 = 4;
const PHASE: u8 = 0x0F;
/// The block is placed against the guard page before it (`VerifyStart`).
const AT_START: u8 = 0x10;

/// Where each chunk is mapped (0: not yet); chunks are mapped in order.
static CHUNKS: [AtomicUsize; MAX_CHUNKS] = [const { AtomicUsize::new(0) }; MAX_CHUNKS];
/// Each slot's phase and placement, for the fault handler.
static STATES: [AtomicU8; SLOTS] = [const { AtomicU8::new(FREE) }; SLOTS];
/// How many slots have ever been handed out (slots above it are untouched).
static MADE: AtomicUsize = AtomicUsize::new(0);

/// The bytes of a slot's data page that may hold something else than [`SLACK_FILL`]: `start..end`,
/// offsets in the page.
#[derive(Clone, Copy, Debug)]
struct Dirty {
    start: u16,
    end: u16,
}

impl Dirty {
    const PAGE: Dirty = Dirty { start: 0, end: PAGE as u16 };
}

/// How guard pages are made: not known yet (no chunk mapped), [`MARKERS`] or [`NONE_PAGES`].
static GUARDS: AtomicU8 = AtomicU8::new(0);
/// Guard markers: the protection of a range of slots may change in one call.
const MARKERS: u8 = 1;
/// `PROT_NONE` pages: a data page's protection changes alone.
const NONE_PAGES: u8 = 2;

/// The slots no block holds.
struct FreeSlots {
    /// Accessible, ready for a block (the lowest address last, taken first).
    ready: Vec<(u32, Dirty)>,
    /// Inaccessible (they left quarantine).
    idle: Vec<(u32, Dirty)>,
    /// Slots handed out so far, from the first chunk on.
    made: usize,
    /// Chunks mapped.
    chunks: usize,
}

static FREE_SLOTS: Mutex<FreeSlots> = Mutex::new(FreeSlots { ready: Vec::new(), idle: Vec::new(), made: 0, chunks: 0 });

fn free_slots() -> MutexGuard<'static, FreeSlots> {
    FREE_SLOTS.lock().unwrap_or_else(|p| p.into_inner())
}

/// The data page of `slot` (in a mapped chunk).
fn data_page(slot: usize) -> usize {
    CHUNKS[slot / SLOTS_PER_CHUNK].load(Ordering::Acquire) + (2 * (slot % SLOTS_PER_CHUNK) + 1) * PAGE
}

fn protect(start: usize, len: usize, protection: libc::c_int) -> bool {
    // SAFETY: `start..start + len` is inside a chunk of the arena, which only this module maps and
    // changes; no Rust reference points into it across the change (blocks are raw memory).
    unsafe { libc::mprotect(start as *mut libc::c_void, len, protection) == 0 }
}

impl FreeSlots {
    /// A slot for a new block, accessible, and what of its page needs the slack pattern again.
    fn take(&mut self) -> Option<(usize, Dirty)> {
        if self.ready.is_empty() {
            let can_grow = self.made < self.chunks * SLOTS_PER_CHUNK || self.chunks < MAX_CHUNKS;
            if self.idle.len() >= BATCH || !can_grow {
                self.reopen_idle();
            }
        }
        if let Some((slot, dirty)) = self.ready.pop() {
            return Some((slot as usize, dirty));
        }
        if self.made == self.chunks * SLOTS_PER_CHUNK && self.map_chunk().is_none() {
            // No new chunk: whatever idle slots there are.
            self.reopen_idle();
            return self.ready.pop().map(|(slot, dirty)| (slot as usize, dirty));
        }
        let slot = self.made;
        self.made += 1;
        MADE.store(self.made, Ordering::Release);
        // A page never used holds zeroes.
        Some((slot, Dirty::PAGE))
    }

    /// Makes every idle slot accessible: sorted by address, one `mprotect` per run of neighbouring
    /// slots (the guard page before each slot of a run included: its marker stays).
    fn reopen_idle(&mut self) {
        let mut idle = core::mem::take(&mut self.idle);
        idle.sort_unstable_by_key(|&(slot, _)| core::cmp::Reverse(slot));
        let mut rest = idle.as_slice();
        while let Some(&(last, _)) = rest.first() {
            // The run: slots `first..=last` of one chunk, at the front of `rest` (highest first).
            let mut len = 1;
            let markers = GUARDS.load(Ordering::Relaxed) == MARKERS;
            if markers {
                while len < rest.len()
                    && rest[len].0 + 1 == rest[len - 1].0
                    && rest[len].0 as usize / SLOTS_PER_CHUNK == last as usize / SLOTS_PER_CHUNK
                {
                    len += 1;
                }
            }
            let (run, after) = rest.split_at(len);
            let first = data_page(run[len - 1].0 as usize);
            let reopened = if markers {
                protect(first - PAGE, 2 * len * PAGE, libc::PROT_READ | libc::PROT_WRITE)
            } else {
                protect(first, PAGE, libc::PROT_READ | libc::PROT_WRITE)
            };
            if reopened {
                self.ready.extend_from_slice(run);
            } else {
                // Kept inaccessible (the kernel refused the change): never reused.
            }
            rest = after;
        }
    }

    /// Maps the next chunk and makes its guard pages.
    fn map_chunk(&mut self) -> Option<()> {
        if self.chunks == MAX_CHUNKS {
            return None;
        }
        // SAFETY: an anonymous private mapping at an address of the kernel's choosing: no existing
        // memory is affected.
        let base = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                CHUNK_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return None;
        }
        let base = base as usize;
        if self.chunks == 0 && std::env::var_os(GUARD_PAGES_VARIABLE).is_some() {
            GUARDS.store(NONE_PAGES, Ordering::Relaxed);
        }
        for guard in (0..=SLOTS_PER_CHUNK).map(|i| base + 2 * i * PAGE) {
            let guards = GUARDS.load(Ordering::Relaxed);
            if guards != NONE_PAGES {
                // SAFETY: a page of the mapping just made, not yet used: its marker faults on access.
                let marked = unsafe { libc::madvise(guard as *mut libc::c_void, PAGE, MADV_GUARD_INSTALL) } == 0;
                if marked {
                    GUARDS.store(MARKERS, Ordering::Relaxed);
                    continue;
                }
                if guards == MARKERS {
                    // Markers that worked before and fail now: nothing of this chunk is used.
                    // SAFETY: the mapping just made, which nothing refers to.
                    unsafe { libc::munmap(base as *mut libc::c_void, CHUNK_BYTES) };
                    return None;
                }
                // Linux before 6.13: guard pages of their own.
                GUARDS.store(NONE_PAGES, Ordering::Relaxed);
            }
            if !protect(guard, PAGE, libc::PROT_NONE) {
                // SAFETY: as above.
                unsafe { libc::munmap(base as *mut libc::c_void, CHUNK_BYTES) };
                return None;
            }
        }
        CHUNKS[self.chunks].store(base, Ordering::Release);
        self.chunks += 1;
        Some(())
    }
}

/// A special pool block of `size` bytes (below a page) aligned on `align` (16 or 64), `paged` or
/// not: its slot, and the block's address.
pub(crate) fn allocate(
    size: usize,
    align: usize,
    paged: bool,
    alignment: SpecialPoolAlignment,
) -> Option<(u32, usize)> {
    let rounded = size.checked_next_multiple_of(align).filter(|&rounded| rounded <= PAGE)?;
    let (slot, dirty) = free_slots().take()?;
    let page = data_page(slot);
    // SAFETY: the slot's data page is mapped read-write (a fresh slot, or one made accessible
    // again), and no block holds it.
    unsafe {
        ((page + usize::from(dirty.start)) as *mut u8).write_bytes(SLACK_FILL, usize::from(dirty.end - dirty.start))
    };
    let (data, placement) = match alignment {
        SpecialPoolAlignment::VerifyEnd => (page + PAGE - rounded, 0),
        SpecialPoolAlignment::VerifyStart => (page, AT_START),
    };
    STATES[slot].store(placement | if paged { LIVE_PAGED } else { LIVE }, Ordering::Release);
    Some((slot as u32, data))
}

/// Checks the slack around the block of `size` bytes at `data` in `slot`: the first corrupted byte
/// before the block (subcode 0x23) or after it (0x24), as bug check 0xC1 reports them. The slack is
/// the rest of the data page (up to the next 16-byte boundary after a `VerifyEnd` block, since the
/// block ends there).
pub(crate) fn corrupted_slack(slot: u32, data: usize, size: usize) -> Option<(usize, u64)> {
    touch(slot);
    let page = data & !(PAGE - 1);
    if let Some(address) = first_not_slack(page, data) {
        return Some((address, 0x23));
    }
    first_not_slack(data + size, page + PAGE).map(|address| (address, 0x24))
}

/// A page of [`SLACK_FILL`], to compare slack with.
static SLACK: [u8; PAGE] = [SLACK_FILL; PAGE];

/// The first byte of `start..end` (inside a live slot's data page) that is not [`SLACK_FILL`].
fn first_not_slack(start: usize, end: usize) -> Option<usize> {
    // SAFETY: the range is inside the data page of a live slot, mapped read-write; the slack belongs
    // to no one, and the driver has no business writing it (if it does, this finds it).
    let bytes = unsafe { core::slice::from_raw_parts(start as *const u8, end - start) };
    if bytes == &SLACK[..bytes.len()] {
        return None;
    }
    bytes.iter().position(|&byte| byte != SLACK_FILL).map(|offset| start + offset)
}

/// Makes a freed block's slot inaccessible for as long as the block is in quarantine: any touch is a
/// use after free (0xCC).
pub(crate) fn retire(slot: u32) {
    let slot = slot as usize;
    let state = &STATES[slot];
    state.store((state.load(Ordering::Relaxed) & AT_START) | FREED, Ordering::Release);
    let page = data_page(slot);
    let done = if GUARDS.load(Ordering::Relaxed) == MARKERS {
        // With the guard page before it, so that neighbouring freed slots merge into one mapping.
        protect(page - PAGE, 2 * PAGE, libc::PROT_NONE)
    } else {
        protect(page, PAGE, libc::PROT_NONE)
    };
    assert!(done, "special pool: mprotect of a freed block failed: {}", std::io::Error::last_os_error());
}

/// A freed block's slot leaves quarantine: idle (inaccessible) until made accessible again with
/// others. Only the block's own bytes need the slack pattern again.
pub(crate) fn release_freed(slot: u32, data: usize, size: usize) {
    let page = data & !(PAGE - 1);
    let dirty = Dirty { start: (data - page) as u16, end: (data - page + size).min(PAGE) as u16 };
    STATES[slot as usize].store(FREE, Ordering::Release);
    free_slots().idle.push((slot, dirty));
}

/// A live block's slot goes back when its kernel goes: nothing of its page is known.
pub(crate) fn release_live(slot: u32) {
    let state = STATES[slot as usize].swap(FREE, Ordering::AcqRel) & PHASE;
    let mut free = free_slots();
    if state == TRIMMED {
        free.idle.push((slot, Dirty::PAGE));
    } else {
        free.ready.push((slot, Dirty::PAGE));
    }
}

/// Makes a trimmed pageable block accessible again: the kernel itself is about to touch it.
pub(crate) fn touch(slot: u32) {
    let state = &STATES[slot as usize];
    let current = state.load(Ordering::Acquire);
    if current & PHASE == TRIMMED
        && state
            .compare_exchange(current, (current & AT_START) | LIVE_PAGED, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    {
        protect(data_page(slot as usize), PAGE, libc::PROT_READ | libc::PROT_WRITE);
    }
}

/// Force IRQL Checking: makes every live pageable special-pool block inaccessible.
pub(crate) fn trim_paged_blocks() {
    for (slot, state) in STATES.iter().enumerate().take(MADE.load(Ordering::Acquire)) {
        let current = state.load(Ordering::Acquire);
        if current & PHASE == LIVE_PAGED
            && state
                .compare_exchange(current, (current & AT_START) | TRIMMED, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            protect(data_page(slot), PAGE, libc::PROT_NONE);
        }
    }
}

/// What a fault at an address of the arena is.
pub(crate) enum Fault {
    /// Not in the arena.
    NotOurs,
    /// A guard page next to a block: 0xCD.
    BeyondEnd,
    /// A freed block, or a slot no block holds: 0xCC.
    Freed,
    /// A trimmed pageable block, in `slot`.
    Trimmed(usize),
    /// An accessible page (made accessible meanwhile): retry the access.
    Retry,
}

/// Classifies a fault at `address` (async-signal-safe: atomics only).
pub(crate) fn fault(address: usize) -> Fault {
    let Some((chunk, base)) = CHUNKS
        .iter()
        .map(|base| base.load(Ordering::Acquire))
        .take_while(|&base| base != 0)
        .enumerate()
        .find(|&(_, base)| base <= address && address < base + CHUNK_BYTES)
    else {
        return Fault::NotOurs;
    };
    let page = (address - base) / PAGE;
    let state = |index: usize| STATES[chunk * SLOTS_PER_CHUNK + index].load(Ordering::Acquire);
    if page % 2 == 1 {
        return match state(page / 2) & PHASE {
            LIVE | LIVE_PAGED => Fault::Retry,
            TRIMMED => Fault::Trimmed(chunk * SLOTS_PER_CHUNK + page / 2),
            _ => Fault::Freed,
        };
    }
    // Guard page `page / 2`: after slot `page / 2 - 1`, before slot `page / 2`. The slot whose
    // block touches it (a `VerifyEnd` block before, a `VerifyStart` block after) decides; else a
    // live neighbour makes it an access beyond that block, and none a touch of freed special pool.
    let guard = page / 2;
    let before = guard.checked_sub(1).map(state);
    let after = (guard < SLOTS_PER_CHUNK).then(|| state(guard));
    let adjacent = [before.filter(|s| s & AT_START == 0), after.filter(|s| s & AT_START != 0)];
    let live = |s: u8| matches!(s & PHASE, LIVE | LIVE_PAGED | TRIMMED);
    if adjacent.iter().flatten().any(|&s| live(s)) {
        Fault::BeyondEnd
    } else if adjacent.iter().flatten().any(|&s| s & PHASE == FREED) {
        Fault::Freed
    } else if [before, after].iter().flatten().any(|&s| live(s)) {
        Fault::BeyondEnd
    } else {
        Fault::Freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slots come back accessible and clean after their time idle, in batches, and a slot's page
    /// holds the slack pattern everywhere but in its block.
    #[test]
    fn slots_are_reused_with_their_slack_restored() {
        let mut seen = Vec::new();
        for round in 0..3 * BATCH {
            let (slot, data) = allocate(24, 16, false, SpecialPoolAlignment::VerifyEnd).unwrap();
            assert_eq!((data + 32) % PAGE, 0);
            // SAFETY: the block is 24 bytes at `data`.
            unsafe { (data as *mut u8).write_bytes(round as u8, 24) };
            assert_eq!(corrupted_slack(slot, data, 24), None);
            retire(slot);
            release_freed(slot, data, 24);
            seen.push(slot);
        }
        seen.sort_unstable();
        seen.dedup();
        assert!(seen.len() < 3 * BATCH, "slots were reused");
        let (slot, data) = allocate(100, 16, false, SpecialPoolAlignment::VerifyStart).unwrap();
        assert_eq!(data % PAGE, 0);
        assert_eq!(corrupted_slack(slot, data, 0), None, "the whole page holds the pattern");
        release_live(slot);
    }
}
