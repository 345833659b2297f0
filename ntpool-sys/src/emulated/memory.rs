//! Where a block's memory comes from, and what the pool writes in and around it: the host's heap
//! (the common case inline: a block below a page with the 16-byte alignment Windows promises, the
//! memory of a block leaving quarantine taken back with its record), pages of its own for special
//! pool ([`special`](super::special)) and for pageable memory under Force IRQL Checking
//! ([`pages`](super::pages)); the fills of new and freed blocks, and pool tracking's overrun zone.

use std::alloc::Layout;

use super::config::PoolAlignment;
#[cfg(ntpool_pages)]
use super::pages;
use super::reports::PoolKind;
#[cfg(ntpool_pages)]
use super::special;
use super::state::State;
use super::table::{CACHE_LINE, Memory, OVERRUN_FILL, PAGE_SIZE, POOL_ALIGNMENT, Pool, Reserved, TRAILER};
use crate::ULONG;

/// The bytes after a block of `size` bytes at `address` that pool tracking checks: up to the next
/// 16-byte boundary, and [`TRAILER`] more.
pub(crate) fn overrun_zone(address: usize, size: usize) -> core::ops::Range<usize> {
    address + size..address + size.next_multiple_of(POOL_ALIGNMENT) + TRAILER
}

/// [`OVERRUN_FILL`] in every byte of a 16-byte word.
const OVERRUN_WORD: [u8; 16] = [OVERRUN_FILL; 16];

/// Fills the overrun zone of a block of `size` bytes at `address` with [`OVERRUN_FILL`]: two
/// unaligned 16-byte stores that overlap (the zone is 16 to 31 bytes long).
///
/// # Safety
/// The zone ([`overrun_zone`]) is valid for writes and belongs to no one.
#[inline(always)]
pub(crate) unsafe fn fill_overrun_zone(address: usize, size: usize) {
    let zone = overrun_zone(address, size);
    // SAFETY: the zone is at least 16 bytes long and valid for writes (the caller's contract).
    unsafe { (zone.start as *mut [u8; 16]).write_unaligned(OVERRUN_WORD) };
    // SAFETY: as above: the last 16 bytes of the zone.
    unsafe { ((zone.end - 16) as *mut [u8; 16]).write_unaligned(OVERRUN_WORD) };
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
    if unsafe { intact(zone.start, zone.end - 16) } {
        return None;
    }
    // SAFETY: as above, byte by byte.
    zone.into_iter().find(|&a| unsafe { *(a as *const u8) } != OVERRUN_FILL)
}

/// Whether the 16 bytes at `first` and the 16 at `last` all hold [`OVERRUN_FILL`] (compared as
/// one 32-byte array: two vector comparisons where the target has them).
///
/// # Safety
/// Both are valid for reads.
#[inline(always)]
unsafe fn intact(first: usize, last: usize) -> bool {
    // SAFETY: valid for reads (the caller's contract).
    let first = unsafe { (first as *const [u8; 16]).read_unaligned() };
    // SAFETY: as above.
    let last = unsafe { (last as *const [u8; 16]).read_unaligned() };
    [first, last] == [OVERRUN_WORD; 2]
}

/// Fills `len` bytes at `start` with `byte`: with overlapping 16-byte stores, inline, from 16 to 64
/// bytes (the common sizes), with `memset` otherwise.
///
/// # Safety
/// `start..start + len` is valid for writes.
#[inline(always)]
pub(crate) unsafe fn fill(start: *mut u8, byte: u8, len: usize) {
    if !(16..=64).contains(&len) {
        // SAFETY: the caller's contract.
        return unsafe { start.write_bytes(byte, len) };
    }
    let word = [byte; 16];
    let (start, end) = (start as usize, start as usize + len);
    // SAFETY: `len` is 16 to 64: the first 16 bytes are in the range.
    unsafe { (start as *mut [u8; 16]).write_unaligned(word) };
    // SAFETY: as above, the last 16.
    unsafe { ((end - 16) as *mut [u8; 16]).write_unaligned(word) };
    if len > 32 {
        // SAFETY: `len` is 33 to 64: the 16 bytes after the first 16 are in the range.
        unsafe { ((start + 16) as *mut [u8; 16]).write_unaligned(word) };
        // SAFETY: as above, the 16 before the last 16.
        unsafe { ((end - 32) as *mut [u8; 16]).write_unaligned(word) };
    }
}

/// Finds memory for a request. The common case inline: a block below a page with the 16-byte
/// alignment Windows promises, from the host's heap (or the shard's spare blocks); the rest in
/// [`back_other`].
#[inline(always)]
pub(crate) fn back(
    state: &State,
    pool: &mut Pool,
    size: usize,
    tag: ULONG,
    kind: PoolKind,
    cache_aligned: bool,
) -> Option<(*mut u8, Reserved)> {
    if !state.hot.heap_inline || cache_aligned || size >= PAGE_SIZE {
        return back_other(state, pool, OtherRequest { size, tag, kind, cache_aligned });
    }
    heap_block(pool, size, 0)
}

/// What [`back_other`] needs of a request (made only on its path).
#[derive(Clone, Copy)]
#[cfg_attr(not(ntpool_pages), allow(dead_code))]
struct OtherRequest {
    size: usize,
    tag: ULONG,
    kind: PoolKind,
    cache_aligned: bool,
}

/// A heap block of `size` bytes (below a page) that starts `below` bytes past a 16-byte boundary that
/// is not a 32-byte one.
#[inline(always)]
fn heap_block(pool: &mut Pool, size: usize, below: usize) -> Option<(*mut u8, Reserved)> {
    // The host's plain allocator already aligns on 16 (no aligned-allocation path): take 16 bytes
    // more (and `below`) and start the block 16 bytes in when the host's block is 32-byte aligned,
    // then `below` bytes further. The host block reaches [`TRAILER`] bytes past the block rounded to
    // 16 (pool tracking's overrun zone), wherever in it the block starts.
    let extra = POOL_ALIGNMENT + below + TRAILER;
    let rounded = size.checked_next_multiple_of(POOL_ALIGNMENT)?;
    let layout = Layout::from_size_align(rounded.checked_add(extra)?, POOL_ALIGNMENT).ok()?;
    // A block of the host's allocated with this layout, new or no longer used by anyone.
    let reserved = pool.reserve_heap(layout)?;
    if reserved.address != 0 {
        // The memory of a block of the same size: the block starts where that one did.
        return Some((reserved.address as *mut u8, reserved));
    }
    let base = Pool::reserved_backing(&reserved).0;
    let offset = if base % (2 * POOL_ALIGNMENT) == 0 { POOL_ALIGNMENT } else { 0 } + below;
    // `rounded + extra` bytes were allocated at `base`, and `offset` is at most `extra`.
    Some(((base + offset) as *mut u8, reserved))
}

/// Finds memory for the requests [`back`] does not serve inline: pages of its own for special pool
/// (blocks under a page) and for pageable memory under Force IRQL Checking, the host's heap with the
/// alignment asked for otherwise.
#[inline(never)]
fn back_other(state: &State, pool: &mut Pool, request: OtherRequest) -> Option<(*mut u8, Reserved)> {
    let align = if request.cache_aligned { CACHE_LINE } else { POOL_ALIGNMENT };
    #[cfg(ntpool_pages)]
    if state.config.special_pool.is_some() || state.config.force_irql_checking {
        let config = &state.config;
        let special = config
            .special_pool
            .filter(|_| request.size < PAGE_SIZE && config.special_pool_tag.is_none_or(|tag| tag == request.tag));
        let paged = request.kind == PoolKind::Paged;
        if let Some(alignment) = special {
            pages::install_handler();
            if let Some((slot, data)) = special::allocate(request.size, align, paged, alignment) {
                return Some((data as *mut u8, pool.reserve(slot as usize, 0, 0, Memory::Special)));
            }
            // Special pool is used up (every slot holds a live or quarantined block): the block
            // comes from the normal pool, as on Windows when special pool runs out.
        }
        if paged && config.force_irql_checking {
            let (pages, data) = pages::allocate(request.size, align)?;
            return Some((data as *mut u8, pool.reserve(pages.slot() as usize, 0, 0, Memory::Pages)));
        }
    }
    // Exactly the alignment Windows promises and not more, so that code relying on more fails here:
    // a page for a page or more, a cache line when asked, else 16 bytes (and never 32). A kernel that
    // breaks the promises (`PoolAlignment`) takes the small-block path for every size and alignment.
    let below = match state.config.pool_alignment {
        PoolAlignment::Windows if request.size >= PAGE_SIZE || align != POOL_ALIGNMENT => None,
        PoolAlignment::Windows | PoolAlignment::Heap => Some(0),
        PoolAlignment::Eight => Some(8),
    };
    if let Some(below) = below {
        return heap_block(pool, request.size, below);
    }
    let (align, offset) = if request.size >= PAGE_SIZE { (PAGE_SIZE, 0) } else { (2 * align, align) };
    let rounded = request.size.checked_next_multiple_of(POOL_ALIGNMENT)?;
    let layout = Layout::from_size_align(rounded.checked_add(offset + TRAILER)?, align).ok()?;
    // SAFETY: `layout` has a non-zero size (a request's size is not zero).
    let base = unsafe { std::alloc::alloc(layout) };
    if base.is_null() {
        return None;
    }
    // `offset + rounded + TRAILER` bytes were allocated at `base`.
    Some(((base as usize + offset) as *mut u8, pool.reserve(base as usize, layout.size(), align as u32, Memory::Heap)))
}
