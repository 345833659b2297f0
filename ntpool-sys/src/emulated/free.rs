//! Freeing pool (`ExFreePoolWithTag`, `ExFreePool`, and `VideoPortFreePool`'s), checked as the
//! kernel and Driver Verifier check it: an address that is not a live block (never allocated, freed
//! already, or inside a block), the IRQL, the tag, special pool's slack, pool tracking's overrun
//! zone, a lookaside list still live in the block, and an armed timer or a queued DPC in it. Every
//! check happens before the first change to the pool, so a bug check leaves it as it was. The block
//! is looked for in the calling thread's shard first, then in the others ([`shards`](super::shards)).

use std::vec::Vec;

use super::checks::{self, Check};
use super::memory::{fill, overrun_in_zone};
use super::pool::FREED_FILL;
use super::reports::PoolKind;
use super::shards::{PoolGuard, Shard};
#[cfg(ntpool_pages)]
use super::special;
use super::state::{State, with_current_shard};
use super::table::{Backing, Entry, Memory, PAGE_SIZE, POOL_ALIGNMENT, Pool, RecordIndex};
use super::thread::current_irql;
use crate::{APC_LEVEL, DISPATCH_LEVEL, PVOID, ULONG};

pub(crate) fn free_pool(pointer: PVOID, tag: Option<ULONG>) {
    with_current_shard(|state, shard| free_pool_in(state, shard, pointer, tag));
}

/// The first 8 bytes of the x64 `POOL_HEADER` of a freed block of `size` bytes with `tag`, as bug
/// checks 0xC4 / 0x13 and 0xC2 / 0x07 report them: `PreviousSize` and `PoolIndex` 0, `BlockSize`
/// (header and data in 16-byte units) in bits 16-23, `PoolType` 0 (a free block) in bits 24-31, and
/// `PoolTag` in bits 32-63. Blocks of a page or more have no header on Windows: `BlockSize` 0.
pub(crate) fn freed_header(size: usize, tag: ULONG) -> u64 {
    let block_size = if size < PAGE_SIZE { (size + POOL_ALIGNMENT).div_ceil(POOL_ALIGNMENT) as u64 } else { 0 };
    (u64::from(tag) << 32) | ((block_size & 0xFF) << 16)
}

/// Raises `check` with `parameters` once the shard locks in `locked` are given back.
#[cold]
#[inline(never)]
fn stop<L>(state: &State, locked: L, check: &Check, parameters: [u64; 4]) {
    drop(locked);
    checks::raise(state, check, parameters);
}

#[inline(always)]
fn free_pool_in(state: &State, shard: &Shard, pointer: PVOID, tag: Option<ULONG>) {
    let address = pointer as usize;
    let guard = shard.lock();
    match guard.find(address) {
        // The block allocated last (the common case), apart: its copy of the checks knows where the
        // entry is.
        Some((Entry::Recent, index)) => free_block(state, guard, Entry::Recent, index, address, tag),
        Some((entry, index)) => free_block(state, guard, entry, index, address, tag),
        None => {
            drop(guard);
            free_elsewhere(state, shard, address, tag);
        }
    }
}

/// A free of an address the calling thread's shard does not hold: a block another thread allocated
/// (found in its shard, one lock at a time), or else no live block at all, which is told apart with
/// every shard locked.
#[cold]
#[inline(never)]
fn free_elsewhere(state: &State, own: &Shard, address: usize, tag: Option<ULONG>) {
    for shard in state.shards.iter().filter(|&shard| !core::ptr::eq(shard, own)) {
        let guard = shard.lock();
        if let Some((entry, index)) = guard.find(address) {
            return free_block(state, guard, entry, index, address, tag);
        }
    }
    let mut guards = state.shards.lock_all();
    // Allocated meanwhile (only a driver that frees what it has not been given yet gets here).
    let found = guards.iter().enumerate().find_map(|(i, pool)| Some((i, pool.find(address)?)));
    if let Some((shard, (entry, index))) = found {
        let guard = guards.swap_remove(shard);
        drop(guards);
        return free_block(state, guard, entry, index, address, tag);
    }
    free_of_no_block(state, guards, address)
}

/// Frees the live block at `address` (its `entry` and record `index` in the locked shard `guard`)
/// after the checks of a free, each of which leaves the pool as it was when it fails. The checks
/// that find something, and those that need another lock, are out of line.
#[inline(always)]
fn free_block(
    state: &State,
    mut guard: PoolGuard<'_, Pool>,
    entry: Entry,
    index: RecordIndex,
    address: usize,
    tag: Option<ULONG>,
) {
    let irql = current_irql();
    let block = guard.record(index);
    let (size, kind, memory, block_tag, charged, reusable) =
        (block.size, block.kind, block.memory, block.tag, block.charged, block.reusable());
    let max_irql = if kind == PoolKind::Paged { APC_LEVEL } else { DISPATCH_LEVEL };
    if irql > max_irql {
        let pool_type = block.pool_type;
        return free_at_bad_irql(state, guard, address, kind, pool_type, irql);
    }
    if let Some((allocated_with, used)) = wrong_tag(block_tag, tag) {
        let parameters = [0x0A, address as u64, allocated_with.into(), used.into()];
        return stop(state, guard, &checks::WRONG_TAG_ON_FREE, parameters);
    }
    if state.objects.may_hold_any() {
        let Some(kept) = unless_timer_or_dpc(state, guard, address, size) else { return };
        guard = kept;
    }
    #[cfg(ntpool_pages)]
    if memory == Memory::Special {
        let Some(kept) = unless_slack_corrupted(state, guard, index, address, size) else { return };
        guard = kept;
    }
    if memory == Memory::Heap && state.hot.tracking {
        // SAFETY: the zone lies inside the host block behind this live block (`pool::back` made it so).
        if let Some(beyond) = unsafe { overrun_in_zone(address, size) } {
            let parameters = [0x51, address as u64, beyond as u64, size as u64];
            return stop(state, guard, &checks::OVERRUN_FOUND_AT_FREE, parameters);
        }
    }
    if state.config.verifier && state.live_lists.load(core::sync::atomic::Ordering::Relaxed) > 0 {
        let Some(kept) = unless_lookaside_list(state, guard, address, size) else { return };
        guard = kept;
    }
    if charged {
        give_back(state, address, kind, size);
    }
    if memory == Memory::Heap {
        // SAFETY: the block is `size` bytes at `address`, owned by the pool and no longer live.
        unsafe { fill(address as *mut u8, FREED_FILL, size) };
    } else {
        retire(guard.record(index).backing(), address, size);
    }
    guard.retire(entry, block_tag, kind, reusable);
}

/// A free above the IRQL the block's pool allows: 0xC4 / 0x11, 0x12, or without Driver Verifier
/// 0xC2 / 0x09.
#[cold]
#[inline(never)]
fn free_at_bad_irql(
    state: &State,
    guard: PoolGuard<'_, Pool>,
    address: usize,
    kind: PoolKind,
    pool_type: crate::POOL_TYPE,
    irql: crate::KIRQL,
) {
    let (pool_type, address) = (pool_type as u64, address as u64);
    match (state.config.verifier, kind == PoolKind::Paged) {
        (true, true) => stop(state, guard, &checks::PAGED_FREE_ABOVE_APC, [0x11, irql.into(), pool_type, address]),
        (true, false) => {
            stop(state, guard, &checks::NON_PAGED_FREE_ABOVE_DISPATCH, [0x12, irql.into(), pool_type, address])
        }
        (false, _) => stop(state, guard, &checks::BAD_POOL_CALLER_FREE_IRQL, [0x09, irql.into(), pool_type, address]),
    }
}

/// Bug check 0xC7 if the block of `size` bytes at `address` holds an armed timer or a queued DPC,
/// raised once the shard's lock is given back; the lock otherwise.
#[cold]
#[inline(never)]
fn unless_timer_or_dpc<'a>(
    state: &State,
    guard: PoolGuard<'a, Pool>,
    address: usize,
    size: usize,
) -> Option<PoolGuard<'a, Pool>> {
    let Some(found) = state.objects.lock().check_free(address, address + size) else { return Some(guard) };
    drop(guard);
    super::state::raise(state, found);
    None
}

/// Bug check 0xC4 / 0xCC if the block of `size` bytes at `address` holds a live lookaside list,
/// raised once the shard's lock is given back; the lock otherwise.
#[cold]
#[inline(never)]
fn unless_lookaside_list<'a>(
    state: &State,
    guard: PoolGuard<'a, Pool>,
    address: usize,
    size: usize,
) -> Option<PoolGuard<'a, Pool>> {
    let lists = state.lookaside.lock().unwrap_or_else(|p| p.into_inner());
    let Some((&list, _)) = lists.live.range(address..address + size).next() else { return Some(guard) };
    drop(lists);
    stop(state, guard, &checks::FREE_OF_ACTIVE_LOOKASIDE, [0xCC, list as u64, address as u64, size as u64]);
    None
}

/// Gives back the quota charged for the block of `size` bytes of pool `kind` at `address`.
#[cold]
#[inline(never)]
fn give_back(state: &State, address: usize, kind: PoolKind, size: usize) {
    let mut quota = state.quota_charges();
    let Some(process) = quota.blocks.remove(&address) else { return };
    if let Some(charge) = quota.processes.get_mut(&process) {
        *if kind == PoolKind::Paged { &mut charge.0 } else { &mut charge.1 } -= size as u64;
    }
}

/// Bug check 0xC1 if the slack around the special pool block of `size` bytes at `address` (record
/// `index`) was written, raised once the shard's lock is given back; the lock otherwise.
#[cfg(ntpool_pages)]
#[cold]
#[inline(never)]
fn unless_slack_corrupted<'a>(
    state: &State,
    guard: PoolGuard<'a, Pool>,
    index: RecordIndex,
    address: usize,
    size: usize,
) -> Option<PoolGuard<'a, Pool>> {
    let Backing::Special { slot } = guard.record(index).backing() else { return Some(guard) };
    let Some((corrupted, subcode)) = special::corrupted_slack(slot, address, size) else { return Some(guard) };
    let check =
        if subcode == 0x23 { &checks::SPECIAL_POOL_UNDERRUN_AT_FREE } else { &checks::SPECIAL_POOL_OVERRUN_AT_FREE };
    stop(state, guard, check, [address as u64, corrupted as u64, 0, subcode]);
    None
}

/// A free of an address that is not a live block's: a block freed already (still in quarantine), an
/// address inside a live block, or one no allocation returned. `guards` hold every shard.
#[cold]
fn free_of_no_block(state: &State, guards: Vec<PoolGuard<'_, Pool>>, address: usize) {
    let freed = guards.iter().find_map(|pool| pool.freed(address));
    let inside =
        |pool: &Pool| pool.live_blocks().any(|block| block.address < address && address < block.address + block.size);
    let interior = freed.is_none() && guards.iter().any(|pool| inside(pool));
    let verifier = state.config.verifier;
    let address = address as u64;
    match (freed, verifier) {
        (Some((tag, size)), true) => {
            let parameters = [0x13, 0, address.wrapping_sub(16), freed_header(size, tag)];
            stop(state, guards, &checks::DOUBLE_FREE, parameters);
        }
        (Some((tag, size)), false) => {
            stop(state, guards, &checks::BAD_POOL_CALLER_DOUBLE_FREE, [0x07, 0, freed_header(size, tag), address]);
        }
        (None, true) if interior => stop(state, guards, &checks::FREE_AT_INTERIOR_ADDRESS, [0x16, 0, address, 0]),
        (None, true) => stop(state, guards, &checks::FREE_OF_UNKNOWN_ADDRESS, [0x10, address, 0, 0]),
        (None, false) => stop(state, guards, &checks::BAD_POOL_CALLER_INVALID_ADDRESS, [0x99, address, 0, 0]),
    }
}

/// Whether a free with `tag` (`None`: `ExFreePool`, which is `ExFreePoolWithTag(P, 0)`) of a block
/// allocated with `allocated` is the wrong tag, and if so the tags bug check 0xC2 / 0x0A reports
/// (parameters 3 and 4).
///
/// * `ExFreePoolWithTag` with another tag than the block's: reported with both tags as given.
/// * A block whose tag has [`PROTECTED_POOL`](crate::PROTECTED_POOL) set must be freed with
///   `ExFreePoolWithTag` and its tag: the kernel compares the two tags without that bit, and reports
///   them without it; `ExFreePool` passes tag 0, which never matches.
/// * `ExFreePool` of an unprotected block is fine.
fn wrong_tag(allocated: ULONG, tag: Option<ULONG>) -> Option<(ULONG, ULONG)> {
    let protected = allocated & crate::PROTECTED_POOL != 0;
    match tag {
        None if protected => Some((allocated & !crate::PROTECTED_POOL, 0)),
        None => None,
        Some(tag) if protected && (tag & !crate::PROTECTED_POOL) != (allocated & !crate::PROTECTED_POOL) => {
            Some((allocated & !crate::PROTECTED_POOL, tag & !crate::PROTECTED_POOL))
        }
        Some(tag) if !protected && tag != allocated => Some((allocated, tag)),
        Some(_) => None,
    }
}

/// Makes a freed block unusable while it sits in quarantine: special pool pages become inaccessible
/// (a later touch is bug check 0xCC), other memory is filled with [`FREED_FILL`].
#[inline(always)]
fn retire(backing: Backing, address: usize, size: usize) {
    match backing {
        #[cfg(ntpool_pages)]
        Backing::Special { slot } => special::retire(slot),
        #[cfg(ntpool_pages)]
        Backing::Pages(pages) => {
            pages.touch();
            // SAFETY: the block is `size` bytes at `address`, owned by the pool and no longer live.
            unsafe { (address as *mut u8).write_bytes(FREED_FILL, size) };
        }
        // SAFETY: as above.
        Backing::Heap { .. } => unsafe { fill(address as *mut u8, FREED_FILL, size) },
    }
}
