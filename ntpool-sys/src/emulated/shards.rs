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
use std::cell::UnsafeCell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use super::table::Pool;
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

/// A shard's lock: taking it is one compare-exchange and releasing it one store when no other
/// thread holds it, which is the common case (each thread has a shard of its own); a waiting thread spins briefly,
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
