//! The pool's shards: one kernel's bookkeeping ([`Pool`]) split so that threads allocating from the
//! same kernel do not share a lock, as Windows keeps per-processor lookaside lists and per-node pools
//! for the same reason.
//!
//! A thread that enters a kernel ([`Kernel::run`](super::Kernel::run)) claims a shard of its own for
//! as long as it stays in it ([`Shards::claim`]); threads outside any `run` (the process-wide default
//! kernel) share shards by thread id. An allocation records its block in the calling thread's shard,
//! under that shard's lock alone, so the lock's cache line stays with the thread's core. A free looks
//! in the calling thread's shard first, then in the others one at a time (a block freed by another
//! thread than the one that allocated it), and finally, for an address no shard holds, takes every
//! lock in shard order to tell a double free, an address inside a block and an unknown address apart
//! from a consistent view. A block's record, its poolmon row and its place in quarantine stay in the
//! shard that allocated it, whichever thread frees it: every count is exact, and reports add the
//! shards up.
//!
//! Lock order: a thread holds at most one shard lock, except on that last path, where it takes them
//! all in index order while holding none.

use std::boxed::Box;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use super::table::{Pool, PoolGuard, PoolLock};
use super::thread::thread_id;

/// At most this many shards per kernel; threads beyond it share them (by thread id).
pub(crate) const MAX_SHARDS: usize = 64;

/// One shard: its bookkeeping behind its lock, on cache lines of its own (the alignment keeps a
/// shard's lock off its neighbours' lines, prefetched pairs included).
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct Shard {
    pool: PoolLock<Pool>,
    /// Whether a thread inside [`Kernel::run`](super::Kernel::run) has this shard to itself.
    claimed: AtomicBool,
}

impl Shard {
    #[inline(always)]
    pub(crate) fn lock(&self) -> PoolGuard<'_, Pool> {
        self.pool.lock()
    }

    pub(crate) fn get_mut(&mut self) -> &mut Pool {
        self.pool.get_mut()
    }
}

/// The shards of one kernel, made on first use and kept until the kernel goes.
pub(crate) struct Shards {
    slots: [OnceLock<Box<Shard>>; MAX_SHARDS],
}

/// A shard a thread uses while it is inside a kernel: its own (`owned`: given back when the thread
/// leaves), or one it shares.
#[derive(Clone, Copy)]
pub(crate) struct Claim {
    pub(crate) shard: *const Shard,
    pub(crate) owned: bool,
}

impl Default for Shards {
    fn default() -> Self {
        Shards { slots: [const { OnceLock::new() }; MAX_SHARDS] }
    }
}

impl Shards {
    fn get(&self, index: usize) -> &Shard {
        self.slots[index].get_or_init(Box::default)
    }

    /// A shard for the calling thread to use alone: the first one no thread has claimed (a new one
    /// when all that exist are), or, when every shard is claimed, one shared by thread id.
    pub(crate) fn claim(&self) -> Claim {
        for index in 0..MAX_SHARDS {
            let shard = self.get(index);
            if shard.claimed.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                return Claim { shard, owned: true };
            }
        }
        Claim { shard: self.for_thread(), owned: false }
    }

    /// Gives back a shard [`Shards::claim`] handed out (when `owned`).
    pub(crate) fn release(claim: Claim) {
        if claim.owned {
            // SAFETY: the shard belongs to a kernel that the releasing thread still holds a reference
            // to (`EnterGuard` drops its `Arc` after this).
            unsafe { &*claim.shard }.claimed.store(false, Ordering::Release);
        }
    }

    /// The shard of a thread that has not entered this kernel: one of all shards, by thread id.
    pub(crate) fn for_thread(&self) -> &Shard {
        self.get(thread_id() as usize % MAX_SHARDS)
    }

    /// Every shard made so far.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Shard> {
        self.slots.iter().filter_map(|slot| slot.get().map(|shard| &**shard))
    }

    /// Every shard made so far, for the kernel's own drop.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Shard> {
        self.slots.iter_mut().filter_map(|slot| slot.get_mut().map(|shard| &mut **shard))
    }

    /// Every shard, locked, in index order (the lock order of the paths that need them all).
    pub(crate) fn lock_all(&self) -> std::vec::Vec<PoolGuard<'_, Pool>> {
        self.iter().map(Shard::lock).collect()
    }
}
