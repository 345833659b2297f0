//! ntpool's allocations on the emulated kernel: tags, alignment, zeroing, zero-sized types, slices,
//! allocator-api2 collections, sizes, and what the kernel sees of each.

mod common;

use common::with_kernel;
use core::mem::{MaybeUninit, size_of};

use allocator_api2::vec::Vec as PoolVec;
use ntpool::emulated::{Kernel, PoolKind, catch_bug_check};
use ntpool::{
    AllocError, CacheAligned, Dispatch, NonPagedBox, NonPagedPool, NonPagedPoolExecute, PagedBox, PagedPool, Passive,
    PoolAllocator, PoolBox, PoolType, Tag, sys,
};

ntpool::pool_tag!(struct T1 = b"Tst1");
ntpool::pool_tag!(struct T2 = b"Tst2");

#[test]
fn each_box_is_freed_with_its_own_tag_and_pool() {
    let kernel = Kernel::new();
    with_kernel(&kernel, |passive| {
        let a = NonPagedBox::<u32, T1>::try_new(passive, 1).unwrap();
        let b = PagedBox::<u64, T2>::try_new(passive, 2).unwrap();
        let live = kernel.outstanding();
        assert_eq!(live.len(), 2);
        let find = |tag: &str| live.iter().find(|a| a.tag.to_string() == tag).unwrap().clone();
        assert_eq!((find("Tst1").pool, find("Tst1").size), (PoolKind::NonPaged, 4));
        assert_eq!((find("Tst2").pool, find("Tst2").size), (PoolKind::Paged, 8));
        assert_eq!(find("Tst1").routine, "ExAllocatePool2");
        // The leak report points at this file, not into ntpool.
        assert!(find("Tst1").file.ends_with("tests/pool.rs"), "{}", find("Tst1").file);
        drop((a, b));
    });
    let usage = kernel.pool_usage();
    let rows: Vec<_> = usage.rows.iter().map(|r| (r.tag.to_string(), r.pool, r.allocs, r.frees, r.bytes)).collect();
    assert_eq!(
        rows,
        [("Tst1".into(), PoolKind::NonPaged, 1, 1, 0), ("Tst2".into(), PoolKind::Paged, 1, 1, 0)],
        "\n{usage}"
    );
}

/// Allocates a `[u8; N]` aligned to `ALIGN` in pool `P` through the box and through the allocator,
/// and checks the alignment and the contents.
fn check_alignment<P: PoolType, const ALIGN: usize>(passive: &Passive)
where
    Passive: ntpool::Allows<P>,
{
    for size in [1usize, 8, 15, 16, 17, 100, 4095, 4096, 5000] {
        let layout = core::alloc::Layout::from_size_align(size, ALIGN).unwrap();
        let boxed = PoolBox::<[u8], T1, P>::try_from_fn(passive, size, |i| i as u8).unwrap();
        assert_eq!(boxed.get(passive).len(), size);
        assert!(boxed.get(passive).iter().enumerate().all(|(i, &b)| b == i as u8));
        drop(boxed);
        if !P::PAGED {
            // SAFETY: an allocator made for a non-paged pool (`P` is not paged here).
            let block = unsafe { raw_allocate::<P>(passive, layout) };
            assert_eq!(block as usize % ALIGN, 0, "size {size}, align {ALIGN} in {}", P::NAME);
        }
    }
}

/// Allocates `layout` through the allocator of a non-paged pool `P` and frees it again, returning
/// the address it had.
///
/// # Safety
/// `P` must be a non-paged pool.
unsafe fn raw_allocate<P: PoolType>(passive: &Passive, layout: core::alloc::Layout) -> *mut u8 {
    use allocator_api2::alloc::Allocator;
    fn with<Q: ntpool::NonPagedPoolType>(passive: &Passive, layout: core::alloc::Layout) -> *mut u8 {
        let allocator = PoolAllocator::<T1, Q>::new(passive);
        let block = allocator.allocate_zeroed(layout).unwrap();
        // SAFETY: freshly allocated with this layout and zeroed.
        let bytes = unsafe { block.as_ref() };
        assert!(bytes.iter().all(|&b| b == 0));
        let address = block.as_ptr().cast::<u8>();
        // SAFETY: allocated above by this allocator with this layout.
        unsafe { allocator.deallocate(block.cast(), layout) };
        address
    }
    match P::FLAGS & !sys::POOL_FLAG_CACHE_ALIGNED {
        sys::POOL_FLAG_NON_PAGED if P::ALIGN == 64 => with::<CacheAligned<NonPagedPool>>(passive, layout),
        sys::POOL_FLAG_NON_PAGED => with::<NonPagedPool>(passive, layout),
        _ => with::<NonPagedPoolExecute>(passive, layout),
    }
}

macro_rules! alignments {
    ($pool:ty, $passive:expr, $($align:literal),*) => {$(
        check_alignment::<$pool, $align>($passive);
    )*};
}

#[test]
fn every_alignment_from_1_to_4096_is_honoured_in_every_pool() {
    let kernel = Kernel::new();
    with_kernel(&kernel, |passive| {
        alignments!(NonPagedPool, passive, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096);
        alignments!(PagedPool, passive, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096);
        alignments!(NonPagedPoolExecute, passive, 1, 16, 32, 4096);
        alignments!(CacheAligned<NonPagedPool>, passive, 1, 16, 32, 64, 128, 4096);
    });
}

#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Align64([u8; 3]);
#[repr(C, align(512))]
#[derive(Clone, Copy)]
struct Align512(u16);
#[repr(C, align(4096))]
struct Align4096(u8);

#[test]
fn over_aligned_types_are_aligned_and_freed_with_the_original_pointer() {
    let kernel = Kernel::new();
    with_kernel(&kernel, |passive| {
        let a = NonPagedBox::<Align64, T1>::try_new(passive, Align64([1, 2, 3])).unwrap();
        let b = PagedBox::<Align512, T1>::try_new(passive, Align512(7)).unwrap();
        let c = NonPagedBox::<Align4096, T1>::try_new(passive, Align4096(9)).unwrap();
        let slice = NonPagedBox::<[Align64], T1>::try_from_fn(passive, 5, |_| Align64([4; 3])).unwrap();
        assert_eq!(a.as_ptr() as usize % 64, 0);
        assert_eq!(b.as_ptr() as usize % 512, 0);
        assert_eq!(c.as_ptr() as usize % 4096, 0);
        assert_eq!(slice.as_ptr() as *const u8 as usize % 64, 0);
        assert_eq!((a.0, b.get(passive).0, c.0, slice[4].0), ([1, 2, 3], 7, 9, [4; 3]));
        // The kernel sees one block per box, each bigger than the value to make room for alignment.
        let live = kernel.outstanding();
        assert_eq!(live.len(), 4);
        assert!(live.iter().all(|block| block.address % 16 == 0));
    });
}

#[test]
fn the_emulated_kernel_gives_16_byte_alignment_and_no_more() {
    // So that code which relies on more than Windows promises fails in tests.
    let kernel = Kernel::new();
    with_kernel(&kernel, |_| {
        let tag = T1::TAG.to_ulong();
        // SAFETY: plain allocations, freed below with their tag.
        let blocks: Vec<_> =
            (0..8).map(|_| unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_NON_PAGED, 48, tag) }).collect();
        assert!(blocks.iter().all(|&b| b as usize % 16 == 0 && b as usize % 32 == 16));
        for block in blocks {
            // SAFETY: allocated above with this tag.
            unsafe { sys::ExFreePoolWithTag(block, tag) };
        }
    });
}

#[test]
fn memory_is_zeroed_unless_maybe_uninit_is_asked_for() {
    let kernel = Kernel::new();
    with_kernel(&kernel, |passive| {
        let zeroed = NonPagedBox::<[u8; 256], T1>::try_new_zeroed(passive).unwrap();
        // SAFETY: zero bytes are a valid byte array.
        assert!(unsafe { zeroed.assume_init() }.iter().all(|&b| b == 0));
        let slice = PoolBox::<[u32], T1, PagedPool>::try_new_zeroed_slice(passive, 64).unwrap();
        // SAFETY: zero bytes are valid u32s.
        let slice = unsafe { slice.assume_init() };
        assert!(slice.get(passive).iter().all(|&v| v == 0));
        // Uninitialized memory really is uninitialized on the emulated kernel (filled with 0xCD), so
        // a test that forgot to initialize would see it.
        let uninit = NonPagedBox::<[u8], T1>::try_new_uninit_slice(passive, 32).unwrap();
        // SAFETY: reading the raw bytes as MaybeUninit is fine; checking the emulator's fill pattern.
        let bytes: Vec<u8> = uninit.iter().map(|b| unsafe { b.assume_init() }).collect();
        assert!(bytes.iter().all(|&b| b == 0xCD), "{bytes:?}");
    });
}

#[test]
fn the_fallback_allocator_zeroes_too() {
    let kernel = Kernel::builder().ex_allocate_pool2(false).build();
    with_kernel(&kernel, |passive| {
        assert!(!sys::uses_ex_allocate_pool2());
        let zeroed = NonPagedBox::<[u8; 100], T1>::try_new_zeroed(passive).unwrap();
        // SAFETY: zero bytes are a valid byte array.
        assert!(unsafe { zeroed.assume_init() }.iter().all(|&b| b == 0));
        assert!(kernel.outstanding().iter().all(|a| a.routine == "ExAllocatePoolWithTag"));
        let paged = PagedBox::<u64, T2>::try_new(passive, 3).unwrap();
        assert_eq!(kernel.outstanding().iter().filter(|a| a.pool == PoolKind::Paged).count(), 1);
        drop(paged);
    });
}

#[test]
fn zero_sized_values_and_empty_slices_allocate_nothing() {
    struct Unit;
    let kernel = Kernel::new();
    with_kernel(&kernel, |passive| {
        let unit = NonPagedBox::<Unit, T1>::try_new(passive, Unit).unwrap();
        let units = NonPagedBox::<[Unit], T1>::try_from_fn(passive, 1000, |_| Unit).unwrap();
        let empty = PagedBox::<[u64], T1>::try_from_slice(passive, &[]).unwrap();
        assert_eq!((units.len(), empty.get(passive).len()), (1000, 0));
        assert_eq!(empty.as_ptr() as *const u64 as usize % 8, 0);
        drop((unit, units, empty));
    });
    assert_eq!(kernel.allocation_calls(), 0);
    assert!(kernel.pool_usage().rows.is_empty());
}

#[test]
fn slices_hold_their_elements_and_drop_each_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    struct Counted(u32);
    impl Drop for Counted {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }
    let kernel = Kernel::new();
    with_kernel(&kernel, |passive| {
        let slice = NonPagedBox::<[Counted], T1>::try_from_fn(passive, 10, |i| Counted(i as u32)).unwrap();
        assert_eq!(slice.iter().map(|c| c.0).sum::<u32>(), 45);
        let copy = PagedBox::<[u8], T2>::try_from_slice(passive, b"hello").unwrap();
        assert_eq!(copy.get(passive), b"hello");
        drop(slice);
        assert_eq!(DROPS.load(Ordering::SeqCst), 10);
        drop(copy);
    });
}

#[test]
fn a_panicking_element_constructor_drops_what_it_built_and_frees_the_block() {
    let kernel = Kernel::new();
    with_kernel(&kernel, |passive| {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            NonPagedBox::<[String], T1>::try_from_fn(passive, 5, |i| {
                if i == 3 { panic!("element 3") } else { i.to_string() }
            })
        }));
        assert!(result.is_err());
    });
}

#[test]
fn allocator_api2_vectors_grow_in_the_tagged_pool_and_free_every_block() {
    let kernel = Kernel::new();
    with_kernel(&kernel, |passive| {
        let mut v = PoolVec::new_in(PoolAllocator::<T2>::new(passive));
        for i in 0..10_000u64 {
            v.push(i);
        }
        assert_eq!(v.iter().sum::<u64>(), 49_995_000);
        let live = kernel.outstanding();
        assert_eq!(live.len(), 1, "only the current buffer is live");
        assert!(live[0].size >= 10_000 * 8);
        let row = &kernel.pool_usage().rows[0];
        assert_eq!(row.tag.to_string(), "Tst2");
        assert!(row.allocs > 5, "the vector grew several times: {row:?}");
        let boxed = allocator_api2::boxed::Box::new_in(5u8, PoolAllocator::<T1>::new(passive));
        assert_eq!(*boxed, 5);
    });
}

#[test]
fn a_box_is_one_pointer_wide_and_so_is_its_option() {
    assert_eq!(size_of::<NonPagedBox<u64, T1>>(), size_of::<usize>());
    assert_eq!(size_of::<Option<NonPagedBox<u64, T1>>>(), size_of::<usize>());
    assert_eq!(size_of::<PagedBox<[u8; 4096], T1>>(), size_of::<usize>());
    assert_eq!(size_of::<Option<PoolBox<u8, T1, CacheAligned<PagedPool>>>>(), size_of::<usize>());
    assert_eq!(size_of::<NonPagedBox<[u8], T1>>(), 2 * size_of::<usize>());
    assert_eq!(size_of::<Option<PagedBox<u64, T1>>>(), size_of::<usize>());
    assert_eq!(size_of::<Option<PoolBox<u64, T1, NonPagedPoolExecute>>>(), size_of::<usize>());
    assert_eq!(size_of::<Option<PoolBox<[u8; 3], T1, CacheAligned<NonPagedPool>>>>(), size_of::<usize>());
    assert_eq!(size_of::<Option<NonPagedBox<[u8], T1>>>(), 2 * size_of::<usize>());
    // A vector with ntpool's allocator is as wide as one with the global allocator.
    assert_eq!(size_of::<PoolVec<u8, PoolAllocator<T1>>>(), size_of::<std::vec::Vec<u8>>());
    // A spin lock is its KSPIN_LOCK and its data, nothing more.
    assert_eq!(size_of::<ntpool::SpinLock<u64>>(), size_of::<sys::KSPIN_LOCK>() + size_of::<u64>());
}

#[test]
fn tokens_tags_pools_and_allocators_are_zero_sized() {
    assert_eq!(size_of::<Passive>(), 0);
    assert_eq!(size_of::<ntpool::Apc>(), 0);
    assert_eq!(size_of::<Dispatch>(), 0);
    assert_eq!(size_of::<ntpool::High>(), 0);
    assert_eq!(size_of::<ntpool::AnyIrql>(), 0);
    assert_eq!(size_of::<T1>(), 0);
    assert_eq!(size_of::<PoolAllocator<T1>>(), 0);
    assert_eq!(size_of::<NonPagedPool>() + size_of::<PagedPool>() + size_of::<CacheAligned<PagedPool>>(), 0);
    assert_eq!(size_of::<NonPagedPoolExecute>() + size_of::<CacheAligned<NonPagedPool>>(), 0);
    assert_eq!(size_of::<ntpool::GlobalPoolAllocator<T1>>(), 0);
}

#[test]
fn an_allocation_failure_is_an_error_and_loses_nothing() {
    for k in 1..=3 {
        let kernel = Kernel::builder().fail_allocation(k).build();
        with_kernel(&kernel, |passive| {
            let a = NonPagedBox::<u32, T1>::try_new(passive, 1);
            let b = PagedBox::<[u8], T1>::try_from_slice(passive, b"abc");
            let mut v = PoolVec::<u32, _>::new_in(PoolAllocator::<T1>::new(passive));
            let c = v.try_reserve(10);
            let failures = [a.is_err(), b.is_err(), c.is_err()];
            assert_eq!(failures.iter().filter(|&&f| f).count(), 1, "allocation {k}");
            assert!(failures[k as usize - 1]);
        });
    }
}

#[test]
fn huge_sizes_fail_with_alloc_error_and_no_bug_check() {
    let kernel = Kernel::new();
    with_kernel(&kernel, |passive| {
        let result =
            catch_bug_check(|| PoolBox::<[u64], T1, NonPagedPool>::try_new_zeroed_slice(passive, usize::MAX / 4));
        assert_eq!(result.expect("no bug check").err(), Some(AllocError));
        let result =
            catch_bug_check(|| PoolBox::<[u8], T1, PagedPool>::try_new_uninit_slice(passive, isize::MAX as usize - 8));
        assert_eq!(result.expect("no bug check").err(), Some(AllocError));
        let mut v = PoolVec::<u8, _>::new_in(PoolAllocator::<T1>::new(passive));
        assert!(v.try_reserve(usize::MAX / 2).is_err());
    });
}

#[test]
fn into_raw_and_from_raw_hand_ownership_back_and_forth() {
    let kernel = Kernel::new();
    with_kernel(&kernel, |passive| {
        let raw = PagedBox::into_raw(PagedBox::<String, T1>::try_new(passive, "kept".into()).unwrap());
        assert_eq!(kernel.outstanding().len(), 1);
        // SAFETY: `raw` came from `into_raw` of this very type.
        let back = unsafe { PagedBox::<String, T1>::from_raw(raw) };
        assert_eq!(back.into_inner(passive), "kept");
        assert!(kernel.outstanding().is_empty());
    });
}

#[test]
fn uninit_boxes_can_be_written_once() {
    let kernel = Kernel::new();
    with_kernel(&kernel, |passive| {
        let b: NonPagedBox<MaybeUninit<[u16; 3]>, T1> = NonPagedBox::try_new_uninit(passive).unwrap();
        assert_eq!(*b.write([1, 2, 3]), [1, 2, 3]);
    });
}

#[test]
fn a_raw_free_with_the_wrong_tag_bug_checks_0xc2_0x0a() {
    let kernel = Kernel::new();
    let (bug_check, block) = kernel.run(|| {
        let tag = T1::TAG.to_ulong();
        // SAFETY: a plain allocation.
        let block = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_PAGED, 24, tag) };
        // SAFETY: the emulated kernel checks the free; it is expected to bug-check.
        let bug_check = catch_bug_check(|| unsafe { sys::ExFreePoolWithTag(block, T2::TAG.to_ulong()) }).unwrap_err();
        (bug_check, block)
    });
    assert_eq!(bug_check.code, sys::BAD_POOL_CALLER);
    assert_eq!(bug_check.name(), "BAD_POOL_CALLER");
    assert_eq!(
        bug_check.parameters,
        [0x0A, block as u64, u64::from(T1::TAG.to_ulong()), u64::from(T2::TAG.to_ulong())]
    );
    // The block was not freed by the bad call.
    assert_eq!(kernel.outstanding().len(), 1);
    kernel.run(|| {
        // SAFETY: the block is still live and this is its tag.
        unsafe { sys::ExFreePoolWithTag(block, T1::TAG.to_ulong()) }
    });
    kernel.verify_unload().unwrap();
}

#[test]
fn a_box_with_a_run_time_tag_frees_with_that_tag() {
    let kernel = Kernel::new();
    with_kernel(&kernel, |passive| {
        let tag = ntpool::PoolTag::from_raw(u32::from_le_bytes(*b"Rt01")).unwrap();
        let value = PagedBox::<u64, ntpool::PoolTag>::try_new_with_tag(passive, tag, 9).unwrap();
        // SAFETY: zero bytes are valid `u8`s.
        let bytes = unsafe {
            NonPagedBox::<[u8], ntpool::PoolTag>::try_new_zeroed_slice_with_tag(passive, tag, 10).unwrap().assume_init()
        };
        assert_eq!((*value.get(passive), bytes.len(), value.tag(), bytes.tag()), (9, 10, tag, tag));
        assert!(kernel.outstanding().iter().all(|a| a.tag.to_string() == "Rt01"));
        // Two words: the pointer and the tag.
        assert_eq!(size_of::<PagedBox<u64, ntpool::PoolTag>>(), 2 * size_of::<usize>());
    });
    let usage = kernel.pool_usage();
    assert!(usage.rows.iter().all(|row| row.tag.to_string() == "Rt01" && row.frees == row.allocs), "{usage}");
}
