//! Collections and shared ownership in pool memory on the emulated kernel: hashbrown's maps and sets
//! over `PoolAllocator` (allocator-api2 0.2 beside 0.4), run-time tags for the allocator, `PoolArc`,
//! and paged collections reached only through a token; every block freed with its tag.

mod common;

use common::with_kernel;
use core::mem::size_of;
use std::sync::atomic::{AtomicUsize, Ordering};

use allocator_api2::vec::Vec as PoolVec;
use hashbrown::{DefaultHashBuilder, HashMap, HashSet};
use ntpool::emulated::{BugCheck, Kernel, PoolKind, catch_bug_check};
use ntpool::sys::{self, BAD_POOL_CALLER, DISPATCH_LEVEL};
use ntpool::{
    AllocError, DispatchSafe, NonPagedArc, PagedArc, PagedHashMap, PagedHashSet, PagedPool, PagedVec, Passive,
    PoolAllocator, PoolArc, PoolTag, SpinLock,
};

ntpool::pool_tag!(struct Hb = b"Hash");
ntpool::pool_tag!(struct Shared = b"Shrd");
ntpool::pool_tag!(struct Pg = b"Pgcl");

/// The kernel's pool usage as `(tag, pool, allocations, frees, bytes in use)` rows.
fn usage(kernel: &Kernel) -> Vec<(String, PoolKind, u64, u64, u64)> {
    kernel.pool_usage().rows.iter().map(|r| (r.tag.to_string(), r.pool, r.allocs, r.frees, r.bytes)).collect()
}

/// Runs `f` at `irql`, behind the crate's back (as `unsafe` code could), restoring the IRQL
/// afterwards; a bug check inside is caught and returned.
fn at_irql(irql: sys::KIRQL, f: impl FnOnce()) -> Result<(), BugCheck> {
    catch_bug_check(|| {
        // SAFETY: a raise from PASSIVE_LEVEL; the line below, or `catch_bug_check` after a bug
        // check, lowers it again.
        let old = unsafe { sys::KfRaiseIrql(irql) };
        f();
        // SAFETY: `old` is what the raise returned.
        unsafe { sys::KeLowerIrql(old) };
    })
}

/// Counts the drops of its values.
struct Counted<'a>(&'a AtomicUsize);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

// --- hashbrown over PoolAllocator (allocator-api2 0.2) ---

#[test]
fn a_hashbrown_map_and_set_grow_in_the_tagged_non_paged_pool_and_free_every_block() {
    let kernel = Kernel::new();
    with_kernel(&kernel, |passive| {
        // hashbrown as a driver depends on it itself: no allocator-api2 version to name.
        let mut map = HashMap::with_hasher_in(DefaultHashBuilder::default(), PoolAllocator::<Hb>::new(passive));
        let mut set = HashSet::with_hasher_in(DefaultHashBuilder::default(), PoolAllocator::<Hb>::new(passive));
        for i in 0..2_000u64 {
            map.try_reserve(1).unwrap();
            assert_eq!(map.insert(i, i * 2), None);
            set.try_reserve(1).unwrap();
            assert!(set.insert(i as u32));
        }
        for i in (0..2_000u64).step_by(2) {
            assert_eq!(map.remove(&i), Some(i * 2));
            assert!(set.remove(&(i as u32)));
        }
        assert_eq!((map.len(), set.len()), (1_000, 1_000));
        assert_eq!(map.get(&7), Some(&14));
        assert!(set.contains(&7) && !set.contains(&8));
        // Only each table's current block is live, both in non-paged pool with the tag.
        let live = kernel.outstanding();
        assert_eq!(live.len(), 2, "{live:?}");
        assert!(live.iter().all(|a| a.tag.to_string() == "Hash" && a.pool == PoolKind::NonPaged), "{live:?}");
        // Shrinking and clearing free through the same path.
        map.shrink_to_fit();
        set.clear();
        set.shrink_to_fit();
    });
    let rows = usage(&kernel);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (tag, pool, allocs, frees, bytes) = rows[0].clone();
    assert_eq!((tag.as_str(), pool, bytes), ("Hash", PoolKind::NonPaged, 0));
    assert_eq!(allocs, frees);
    assert!(allocs > 10, "the tables grew several times: {allocs}");
}

#[test]
fn ntpools_hashbrown_is_the_one_a_driver_depends_on() {
    let kernel = Kernel::new();
    with_kernel(&kernel, |passive| {
        // The re-export and the driver's own dependency are one crate, so their types are one.
        let mut map: HashMap<u8, u8, DefaultHashBuilder, PoolAllocator<Hb>> =
            ntpool::hashbrown::HashMap::with_hasher_in(Default::default(), PoolAllocator::<Hb>::new(passive));
        map.try_reserve(1).unwrap();
        map.insert(1, 2);
        let allocator: &dyn ntpool::allocator_api2_02::alloc::Allocator = map.allocator();
        let layout = core::alloc::Layout::new::<u64>();
        let block = allocator.allocate(layout).unwrap();
        // SAFETY: allocated just above with this layout, not used afterwards.
        unsafe { allocator.deallocate(block.cast(), layout) };
    });
}

#[test]
fn both_allocator_api2_versions_allocate_and_free_through_one_path() {
    use allocator_api2::alloc::Allocator as Api04;
    use ntpool::allocator_api2_02::alloc::Allocator as Api02;
    let kernel = Kernel::new();
    with_kernel(&kernel, |passive| {
        let allocator = PoolAllocator::<Hb>::new(passive);
        for align in [1, 8, 16, 64, 4096] {
            let layout = core::alloc::Layout::from_size_align(100, align).unwrap();
            // Allocated through one version, freed through the other: one path, one placement.
            let a = Api02::allocate_zeroed(&allocator, layout).unwrap();
            assert_eq!(a.cast::<u8>().as_ptr() as usize % align, 0);
            // SAFETY: 100 bytes just allocated, zeroed.
            assert!(unsafe { a.as_ref() }.iter().all(|&b| b == 0));
            let b = Api04::allocate(&allocator, layout).unwrap();
            // SAFETY: each block was allocated by this allocator with `layout`, and is not used again.
            unsafe { Api04::deallocate(&allocator, a.cast(), layout) };
            // SAFETY: as above.
            unsafe { Api02::deallocate(&allocator, b.cast(), layout) };
        }
    });
    let rows = usage(&kernel);
    assert!(rows.iter().all(|r| r.0 == "Hash" && r.2 == r.3 && r.2 > 0), "{rows:?}");
}

#[test]
fn a_hashbrown_try_reserve_fails_with_an_error_when_the_pool_is_out_and_nothing_bug_checks() {
    let kernel = Kernel::builder().fail_allocation(1).build();
    with_kernel(&kernel, |passive| {
        let mut map = HashMap::with_hasher_in(DefaultHashBuilder::default(), PoolAllocator::<Hb>::new(passive));
        let result = catch_bug_check(|| map.try_reserve(8)).expect("no bug check");
        assert!(result.is_err(), "the first allocation fails");
        assert!(map.is_empty() && map.capacity() == 0);
        // The next allocation succeeds; after `try_reserve`, `insert` does not allocate.
        map.try_reserve(8).unwrap();
        let calls = kernel.allocation_calls();
        for i in 0..8u32 {
            map.insert(i, i);
        }
        assert_eq!(kernel.allocation_calls(), calls, "insert after try_reserve allocated");
    });
}

#[test]
fn a_non_paged_hash_map_is_dispatch_safe_and_grows_under_a_spin_lock() {
    fn dispatch_safe<C: DispatchSafe>(_: &C) {}
    let kernel = Kernel::new();
    with_kernel(&kernel, |passive| {
        let map = HashMap::with_hasher_in(DefaultHashBuilder::default(), PoolAllocator::<Hb>::new(passive));
        dispatch_safe(&map);
        let lock = SpinLock::new(map);
        for key in 0..100u32 {
            let inserted = lock.with(passive, key, |_dispatch, map, key| {
                assert_eq!(sys::KeGetCurrentIrql(), DISPATCH_LEVEL);
                // Non-paged pool may be allocated at DISPATCH_LEVEL.
                map.try_reserve(1).is_ok() && map.insert(key, key + 1).is_none()
            });
            assert!(inserted);
        }
        assert_eq!(lock.with(passive, (), |_, map, ()| map.get(&99).copied()), Some(100));
    });
}

// --- Run-time tags for PoolAllocator ---

#[test]
fn an_allocator_with_a_run_time_tag_frees_every_block_with_that_tag() {
    let kernel = Kernel::new();
    let tag = PoolTag::from_raw(u32::from_le_bytes(*b"Rt02")).unwrap();
    with_kernel(&kernel, |passive| {
        let mut v = PoolVec::new_in(PoolAllocator::<PoolTag>::with_tag(passive, tag));
        for i in 0..1_000u32 {
            v.try_reserve(1).unwrap();
            v.push(i);
        }
        assert_eq!(v.allocator().tag(), tag);
        assert_eq!(format!("{:?}", v.allocator()), "PoolAllocator(Rt02, NonPagedPoolNx)");
        let mut set = HashSet::with_hasher_in(DefaultHashBuilder::default(), *v.allocator());
        set.try_reserve(3).unwrap();
        set.extend([1, 2, 3]);
        assert!(kernel.outstanding().iter().all(|a| a.tag.to_string() == "Rt02"));
    });
    let rows = usage(&kernel);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].0.as_str(), rows[0].1, rows[0].2 == rows[0].3), ("Rt02", PoolKind::NonPaged, true));
}

#[test]
fn a_run_time_tagged_allocator_is_as_wide_as_its_tag_and_a_typed_one_zero_sized() {
    assert_eq!(size_of::<PoolAllocator<Hb>>(), 0);
    assert_eq!(size_of::<PoolAllocator<Hb, PagedPool>>(), 0);
    assert_eq!(size_of::<PoolAllocator<PoolTag>>(), size_of::<u32>());
    // A vector with a typed tag is as wide as one with the global allocator.
    assert_eq!(size_of::<PoolVec<u8, PoolAllocator<Hb>>>(), size_of::<Vec<u8>>());
    assert_eq!(size_of::<PagedVec<u8, Hb>>(), size_of::<Vec<u8>>());
    assert_eq!(size_of::<HashMap<u8, u8, DefaultHashBuilder, PoolAllocator<Hb>>>(), size_of::<HashMap<u8, u8>>());
}

// --- PoolArc ---

#[test]
fn arc_clones_share_one_block_and_the_last_drop_frees_it_once_with_its_tag() {
    let kernel = Kernel::new();
    let drops = AtomicUsize::new(0);
    with_kernel(&kernel, |passive| {
        let first = NonPagedArc::<(u64, Counted), Shared>::try_new(passive, (7, Counted(&drops))).unwrap();
        let mut clones: Vec<_> = (0..5).map(|_| first.clone()).collect();
        assert_eq!(kernel.outstanding().len(), 1, "one block for every reference");
        assert!(clones.iter().all(|c| NonPagedArc::ptr_eq(c, &first) && c.0 == 7));
        assert_eq!(NonPagedArc::strong_count(&first, passive), 6);
        let block = &kernel.outstanding()[0];
        assert_eq!((block.tag.to_string().as_str(), block.pool), ("Shrd", PoolKind::NonPaged));
        assert!(block.file.ends_with("tests/collections.rs"), "the leak report points here: {}", block.file);
        let last = clones.pop().unwrap();
        drop((first, clones));
        assert_eq!((kernel.outstanding().len(), drops.load(Ordering::Relaxed)), (1, 0));
        assert_eq!(NonPagedArc::strong_count(&last, passive), 1);
        drop(last);
        assert!(kernel.outstanding().is_empty());
    });
    // The last clone dropped the value once and freed the block once, with its tag.
    assert_eq!(drops.load(Ordering::Relaxed), 1);
    assert_eq!(usage(&kernel), [("Shrd".to_string(), PoolKind::NonPaged, 1, 1, 0)]);
}

#[test]
fn arc_references_on_many_threads_free_the_block_once() {
    const THREADS: usize = 4;
    let kernel = Kernel::new();
    let drops = AtomicUsize::new(0);
    let arc = kernel.run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let passive = unsafe { Passive::assume() };
        NonPagedArc::<Counted, Shared>::try_new(&passive, Counted(&drops)).unwrap()
    });
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            let mine = arc.clone();
            let kernel = &kernel;
            scope.spawn(move || {
                kernel.run(move || {
                    for _ in 0..1_000 {
                        drop(mine.clone());
                    }
                    drop(mine);
                })
            });
        }
    });
    assert_eq!(drops.load(Ordering::Relaxed), 0);
    kernel.run(|| drop(arc));
    assert_eq!(drops.load(Ordering::Relaxed), 1);
    kernel.verify_unload().unwrap();
    assert_eq!(usage(&kernel), [("Shrd".to_string(), PoolKind::NonPaged, 1, 1, 0)]);
}

#[test]
fn a_non_paged_arc_is_dispatch_safe_and_may_be_dropped_at_dispatch_level() {
    let kernel = Kernel::new();
    with_kernel(&kernel, |passive| {
        let arc = NonPagedArc::<u32, Shared>::try_new(passive, 3).unwrap();
        let seen = passive.raise_to_dispatch(arc.clone(), |_dispatch, arc| {
            let copy = arc.clone();
            *copy + *arc // both dropped here, at DISPATCH_LEVEL
        });
        assert_eq!(seen, 6);
        assert_eq!(NonPagedArc::strong_count(&arc, passive), 1);
        // The last reference dropped at DISPATCH_LEVEL frees non-paged pool there.
        passive.raise_to_dispatch(arc, |_dispatch, arc| drop(arc));
    });
}

#[test]
fn a_paged_arc_is_reached_through_a_token_and_freed_with_its_tag() {
    let kernel = Kernel::new();
    with_kernel(&kernel, |passive| {
        let arc = PagedArc::<[u8; 4], Shared>::try_new(passive, *b"disk").unwrap();
        let other = arc.clone();
        assert_eq!(other.get(passive), b"disk");
        assert_eq!(PagedArc::strong_count(&arc, passive), 2);
        assert_eq!(kernel.outstanding()[0].pool, PoolKind::Paged);
        assert_eq!(PagedArc::into_inner(other, passive), None);
        assert_eq!(PagedArc::into_inner(arc, passive), Some(*b"disk"));
        assert!(kernel.outstanding().is_empty());
    });
    assert_eq!(usage(&kernel), [("Shrd".to_string(), PoolKind::Paged, 1, 1, 0)]);
}

#[test]
fn an_arc_with_a_run_time_tag_frees_with_that_tag() {
    let kernel = Kernel::new();
    let tag = PoolTag::from_raw(u32::from_le_bytes(*b"Rt03")).unwrap();
    with_kernel(&kernel, |passive| {
        let arc = PoolArc::<u64, PoolTag, PagedPool>::try_new_with_tag(passive, tag, 9).unwrap();
        let other = arc.clone();
        assert_eq!((*other.get(passive), other.tag()), (9, tag));
    });
    assert_eq!(usage(&kernel), [("Rt03".to_string(), PoolKind::Paged, 1, 1, 0)]);
}

#[test]
fn an_arc_is_one_pointer_wide_and_so_is_its_option() {
    assert_eq!(size_of::<NonPagedArc<[u8; 64], Shared>>(), size_of::<usize>());
    assert_eq!(size_of::<Option<PagedArc<u64, Shared>>>(), size_of::<usize>());
    assert_eq!(size_of::<PoolArc<u64, PoolTag>>(), 2 * size_of::<usize>());
}

#[test]
fn an_arc_allocation_failure_is_an_error() {
    let kernel = Kernel::builder().fail_allocation(1).build();
    with_kernel(&kernel, |passive| {
        assert_eq!(PagedArc::<u32, Shared>::try_new(passive, 1).err(), Some(AllocError));
        assert!(PagedArc::<u32, Shared>::try_new(passive, 1).is_ok());
    });
}

#[test]
fn a_paged_arc_dropped_at_dispatch_level_through_unsafe_code_hits_the_backstop() {
    let kernel = Kernel::new();
    with_kernel(&kernel, |passive| {
        let arc = PagedArc::<u64, Shared>::try_new(passive, 7).unwrap();
        let clone = arc.clone();
        // SAFETY: a bitwise copy of `clone`'s reference, dropped below in its place once the stopped
        // drop has been shown to leave the count alone.
        let stand_in = unsafe { core::ptr::read(&clone) };
        let block = kernel.outstanding()[0].address as u64;
        // Deliberately wrong, and only possible behind the crate's back: the IRQL raised without a
        // region, and a paged arc dropped there.
        let bug_check = at_irql(DISPATCH_LEVEL, || drop(clone)).unwrap_err();
        assert_eq!(bug_check.code, BAD_POOL_CALLER);
        assert_eq!(
            bug_check.parameters,
            [0x09, u64::from(DISPATCH_LEVEL), sys::PagedPool as u64, block],
            "{bug_check}"
        );
        // Stopped before the count was touched: both references still count.
        assert_eq!(PagedArc::strong_count(&arc, passive), 2);
        drop(stand_in);
        assert_eq!(kernel.outstanding().len(), 1);
        drop(arc);
    });
}

// --- Paged collections ---

#[test]
fn a_paged_vec_grows_in_paged_pool_through_a_token_and_frees_every_block_with_its_tag() {
    let kernel = Kernel::new();
    let drops = AtomicUsize::new(0);
    with_kernel(&kernel, |passive| {
        let mut v = PagedVec::<Counted, Pg>::new(passive);
        assert!(kernel.outstanding().is_empty(), "an empty collection allocates nothing");
        for _ in 0..500 {
            let entries = v.get_mut(passive);
            entries.try_reserve(1).unwrap();
            entries.push(Counted(&drops));
        }
        assert_eq!(v.get(passive).len(), 500);
        assert_eq!(v.tag().to_string(), "Pgcl");
        let live = kernel.outstanding();
        assert_eq!(live.len(), 1, "only the current buffer is live");
        assert_eq!((live[0].tag.to_string().as_str(), live[0].pool), ("Pgcl", PoolKind::Paged));
        v.get_mut(passive).truncate(100);
        assert_eq!(drops.load(Ordering::Relaxed), 400);
        // An APC_LEVEL token reaches it too.
        passive.raise_to_apc(|apc| assert_eq!(v.get(apc).len(), 100));
    });
    assert_eq!(drops.load(Ordering::Relaxed), 500);
    let rows = usage(&kernel);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].0.as_str(), rows[0].1, rows[0].4), ("Pgcl", PoolKind::Paged, 0));
    assert!(rows[0].2 > 5 && rows[0].2 == rows[0].3, "grew several times, each block freed: {rows:?}");
}

#[test]
fn paged_hash_maps_and_sets_live_in_paged_pool_and_free_every_block_with_their_tag() {
    let kernel = Kernel::new();
    with_kernel(&kernel, |passive| {
        let mut map = PagedHashMap::<u32, u64, Pg>::new(passive);
        let mut set = PagedHashSet::<u32, Pg>::new(passive);
        for i in 0..1_000u32 {
            let m = map.get_mut(passive);
            m.try_reserve(1).unwrap();
            m.insert(i, u64::from(i) * 3);
            let s = set.get_mut(passive);
            s.try_reserve(1).unwrap();
            s.insert(i);
        }
        for i in 0..500u32 {
            assert_eq!(map.get_mut(passive).remove(&i), Some(u64::from(i) * 3));
            assert!(set.get_mut(passive).remove(&i));
        }
        assert_eq!(map.get(passive).get(&999), Some(&2_997));
        assert_eq!(set.get(passive).len(), 500);
        let live = kernel.outstanding();
        assert_eq!(live.len(), 2);
        assert!(live.iter().all(|a| a.tag.to_string() == "Pgcl" && a.pool == PoolKind::Paged), "{live:?}");
    });
    let rows = usage(&kernel);
    assert!(rows.iter().all(|r| r.0 == "Pgcl" && r.1 == PoolKind::Paged && r.2 == r.3), "{rows:?}");
}

#[test]
fn a_paged_vec_with_a_run_time_tag_frees_with_that_tag() {
    let kernel = Kernel::new();
    let tag = PoolTag::from_raw(u32::from_le_bytes(*b"Rt04")).unwrap();
    with_kernel(&kernel, |passive| {
        let mut v = PagedVec::<u16, PoolTag>::with_tag(passive, tag);
        v.get_mut(passive).try_reserve(10).unwrap();
        v.get_mut(passive).extend(0..10);
        assert_eq!((v.tag(), v.get(passive).allocator().tag()), (tag, tag));
        let mut set = PagedHashSet::<u16, PoolTag>::with_tag(passive, tag);
        set.get_mut(passive).try_reserve(1).unwrap();
        set.get_mut(passive).insert(1);
    });
    let rows = usage(&kernel);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].0.as_str(), rows[0].1, rows[0].2, rows[0].3), ("Rt04", PoolKind::Paged, 2, 2));
}

#[test]
fn a_paged_vec_dropped_at_dispatch_level_through_unsafe_code_hits_the_backstop_before_its_elements() {
    let kernel = Kernel::new();
    let drops = AtomicUsize::new(0);
    with_kernel(&kernel, |passive| {
        let mut v = PagedVec::<Counted, Pg>::new(passive);
        v.get_mut(passive).try_reserve(2).unwrap();
        v.get_mut(passive).push(Counted(&drops));
        let buffer = v.get(passive).as_ptr() as u64;
        // SAFETY: a bitwise copy, dropped below in the original's place once the stopped drop has
        // been shown to have touched nothing.
        let stand_in = unsafe { core::ptr::read(&v) };
        // Deliberately wrong, and only possible behind the crate's back.
        let bug_check = at_irql(DISPATCH_LEVEL, || drop(v)).unwrap_err();
        assert_eq!(bug_check.code, BAD_POOL_CALLER);
        assert_eq!(bug_check.parameters, [0x09, u64::from(DISPATCH_LEVEL), sys::PagedPool as u64, buffer]);
        // Stopped before any element was dropped or any block freed.
        assert_eq!((drops.load(Ordering::Relaxed), kernel.outstanding().len()), (0, 1));
        drop(stand_in);
        assert_eq!(drops.load(Ordering::Relaxed), 1);
    });
}

#[test]
fn a_paged_hash_map_dropped_at_dispatch_level_through_unsafe_code_hits_the_backstop() {
    let kernel = Kernel::new();
    with_kernel(&kernel, |passive| {
        let mut map = PagedHashMap::<u8, u8, Pg>::new(passive);
        map.get_mut(passive).try_reserve(1).unwrap();
        map.get_mut(passive).insert(1, 1);
        // SAFETY: as in the test above.
        let stand_in = unsafe { core::ptr::read(&map) };
        let bug_check = at_irql(DISPATCH_LEVEL, || drop(map)).unwrap_err();
        // hashbrown does not show its table's address: the fourth parameter is 0.
        assert_eq!(bug_check.parameters, [0x09, u64::from(DISPATCH_LEVEL), sys::PagedPool as u64, 0]);
        assert_eq!(kernel.outstanding().len(), 1);
        drop(stand_in);
    });
}

#[test]
fn the_paged_allocator_is_reached_only_by_reference_through_a_token() {
    use allocator_api2::alloc::Allocator;
    let kernel = Kernel::new();
    with_kernel(&kernel, |passive| {
        let v = PagedVec::<u8, Pg>::new(passive);
        // The allocator is the collection's, borrowed with the token; it cannot be copied out.
        let allocator: &PoolAllocator<Pg, PagedPool> = v.get(passive).allocator();
        assert_eq!(format!("{allocator:?}"), "PoolAllocator(Pgcl, PagedPool)");
        // What is built with the borrow lives no longer than the token's borrow.
        let mut scratch = PoolVec::new_in(allocator.by_ref());
        scratch.try_reserve(4).unwrap();
        scratch.extend_from_slice(b"page");
        assert_eq!(kernel.outstanding()[0].pool, PoolKind::Paged);
    });
}
