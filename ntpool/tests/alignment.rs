//! Alignment on every kernel: ntpool hands out blocks aligned for their layout whether the kernel
//! keeps Windows' alignment promises ([`PoolAlignment::Windows`]) or only a heap's
//! ([`PoolAlignment::Heap`], as Wine's pool), through every allocation path: `PoolBox` values and
//! slices in every pool, quota, the allocator-api2 allocator, the global allocator, lookaside entries
//! and VideoPort pool. Every block lies inside a live kernel block of its tag, every free reaches the
//! kernel's own address with that tag (Driver Verifier, on in every test here, stops on anything
//! else), and nothing is left at unload. A kernel that does not even keep 16 bytes
//! ([`PoolAlignment::Eight`]) gets allocation failures, never a misaligned block.

use core::alloc::{GlobalAlloc, Layout};
use core::mem::MaybeUninit;

use allocator_api2::alloc::Allocator;
use ntpool::emulated::{Kernel, PoolAlignment};
use ntpool::{
    AllocError, CacheAligned, GlobalPoolAllocator, LookasideList, NonPagedPool, Passive, PoolAllocator, PoolBox,
    PoolType, sys,
};

ntpool::pool_tag!(struct Al = b"Algn");

const PAGE: usize = 4096;
const KEPT: [PoolAlignment; 2] = [PoolAlignment::Windows, PoolAlignment::Heap];

/// Every power of two from 1 to two pages.
fn alignments() -> impl Iterator<Item = usize> {
    (0..=13).map(|shift| 1 << shift)
}

/// Sizes around every threshold: the cache lines, a page, two pages.
const SIZES: [usize; 16] =
    [1, 8, 15, 16, 17, 63, 64, 65, 127, 128, 129, PAGE - 1, PAGE, PAGE + 1, 2 * PAGE - 8, 2 * PAGE];

/// Runs `body` at PASSIVE_LEVEL on a kernel that keeps `alignment`, with Driver Verifier, and checks
/// that nothing is left, and that every allocation was freed under its own tag.
fn on_kernel(alignment: PoolAlignment, body: impl FnOnce(&Kernel, &mut Passive)) {
    let kernel = Kernel::builder().pool_alignment(alignment).build();
    kernel.run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        body(&kernel, &mut passive);
    });
    assert_eq!(kernel.verify_unload(), Ok(()), "{alignment:?}: something was left at unload");
    for row in kernel.pool_usage().rows {
        assert_eq!(row.allocs, row.frees, "{alignment:?}: {row:?}");
    }
}

/// Checks that `size` bytes at `data` are aligned on `align` and lie inside one live kernel block of
/// the tag `Algn`, and that they can all be written.
fn check_block(kernel: &Kernel, data: *mut u8, size: usize, align: usize, what: &str) {
    let address = data as usize;
    assert_eq!(address % align, 0, "{what}: {address:#x} is not aligned on {align}");
    let outstanding = kernel.outstanding();
    let block = outstanding
        .iter()
        .find(|block| block.address <= address && address + size <= block.address + block.size)
        .unwrap_or_else(|| panic!("{what}: {address:#x}+{size} is inside no kernel block: {outstanding:?}"));
    assert_eq!(block.tag.to_string(), "Algn", "{what}");
    // SAFETY: `size` bytes inside a live block that the caller owns.
    unsafe { data.write_bytes(0x5A, size) };
}

#[test]
fn the_allocator_api2_allocator_aligns_every_layout_on_every_kernel() {
    for alignment in KEPT {
        on_kernel(alignment, |kernel, passive| {
            allocator_round::<NonPagedPool>(kernel, passive);
            allocator_round::<CacheAligned<NonPagedPool>>(kernel, passive);
        });
    }
}

fn allocator_round<P: ntpool::NonPagedPoolType>(kernel: &Kernel, passive: &Passive) {
    let allocator = PoolAllocator::<Al, P>::new(passive);
    for align in alignments() {
        for size in SIZES {
            let layout = Layout::from_size_align(size, align).unwrap();
            let what = format!("PoolAllocator<{}> {layout:?}", P::NAME);
            let block = allocator.allocate_zeroed(layout).unwrap();
            let data = block.cast::<u8>().as_ptr();
            // SAFETY: `size` zeroed bytes.
            assert!(unsafe { core::slice::from_raw_parts(data, size) }.iter().all(|&b| b == 0), "{what}");
            check_block(kernel, data, size, align, &what);
            // SAFETY: allocated above with this layout.
            unsafe { allocator.deallocate(block.cast(), layout) };
        }
    }
}

#[test]
fn the_global_allocator_aligns_every_layout_on_every_kernel() {
    static NON_PAGED: GlobalPoolAllocator<Al> = GlobalPoolAllocator::new();
    static CACHE_ALIGNED: GlobalPoolAllocator<Al, CacheAligned<NonPagedPool>> = GlobalPoolAllocator::new();
    for alignment in KEPT {
        on_kernel(alignment, |kernel, _| {
            for align in alignments() {
                for size in SIZES {
                    let layout = Layout::from_size_align(size, align).unwrap();
                    let global: [&dyn GlobalAlloc; 2] = [&NON_PAGED, &CACHE_ALIGNED];
                    for allocator in global {
                        // SAFETY: a layout of non-zero size, freed below with the same layout.
                        let data = unsafe { allocator.alloc(layout) };
                        assert!(!data.is_null(), "{layout:?}");
                        check_block(kernel, data, size, align, &format!("GlobalPoolAllocator {layout:?}"));
                        // SAFETY: allocated above with this layout.
                        unsafe { allocator.dealloc(data, layout) };
                    }
                }
            }
        });
    }
}

/// A type of each alignment from 1 to two pages, one alignment unit in size.
macro_rules! aligned_units {
    ($($name:ident = $align:literal),*) => {
        $(
            #[derive(Clone, Copy)]
            #[repr(C, align($align))]
            struct $name([u8; $align]);
        )*
        /// Runs `$check::<Unit>` for every unit type.
        macro_rules! for_each_unit {
            ($check:ident, $kernel:expr, $passive:expr, $alignment:expr) => {
                $($check::<$name>($kernel, $passive, $alignment);)*
            };
        }
    };
}

aligned_units!(
    U1 = 1,
    U2 = 2,
    U4 = 4,
    U8 = 8,
    U16 = 16,
    U32 = 32,
    U64 = 64,
    U128 = 128,
    U256 = 256,
    U512 = 512,
    U1k = 1024,
    U2k = 2048,
    U4k = 4096,
    U8k = 8192
);

#[test]
fn boxes_are_aligned_in_every_pool_with_and_without_quota_on_every_kernel() {
    for alignment in KEPT {
        on_kernel(alignment, |kernel, passive| {
            for_each_unit!(box_round, kernel, passive, alignment);
        });
    }
}

/// Lengths of a slice of `U` that give sizes around a page: one unit, a page less one unit, a page,
/// a page and one unit, two pages.
fn lengths<U>() -> impl Iterator<Item = usize> {
    let unit = size_of::<U>();
    [1, PAGE.saturating_sub(unit) / unit, PAGE / unit, (PAGE + unit) / unit, 2 * PAGE / unit]
        .into_iter()
        .filter(|&n| n > 0)
}

fn box_round<U>(kernel: &Kernel, passive: &Passive, alignment: PoolAlignment) {
    box_round_in::<U, NonPagedPool>(kernel, passive, alignment);
    box_round_in::<U, ntpool::PagedPool>(kernel, passive, alignment);
    box_round_in::<U, CacheAligned<NonPagedPool>>(kernel, passive, alignment);
    box_round_in::<U, CacheAligned<ntpool::PagedPool>>(kernel, passive, alignment);
}

fn box_round_in<U, P: PoolType>(kernel: &Kernel, passive: &Passive, alignment: PoolAlignment) {
    let align = align_of::<U>();
    let what = |how: &str, len: usize| format!("{how} [U{align}; {len}] in {}", P::NAME);
    let value = PoolBox::<U, Al, P>::try_new_zeroed(passive).unwrap();
    check_block(kernel, value.as_ptr() as *mut u8, size_of::<U>(), align, &what("value", 1));
    let value = PoolBox::<U, Al, P>::try_new_uninit(passive).unwrap();
    check_block(kernel, value.as_ptr() as *mut u8, size_of::<U>(), align, &what("uninit value", 1));
    let quota = PoolBox::<[U], Al, P>::try_new_zeroed_slice_with_quota(passive, 3).unwrap();
    check_block(kernel, quota.as_ptr() as *mut u8, 3 * size_of::<U>(), align, &what("quota", 3));
    drop((value, quota));
    for len in lengths::<U>() {
        let slice = PoolBox::<[U], Al, P>::try_new_zeroed_slice(passive, len).unwrap();
        let size = len * size_of::<U>();
        check_block(kernel, slice.as_ptr() as *mut u8, size, align, &what("slice", len));
        handed_to_the_kernel(slice, size, alignment, &what("slice", len));
    }
}

/// Gives a box's block to the kernel where its content starts it, as a driver hands a block to a
/// routine that frees it: the free goes to `ExFreePoolWithTag` directly, so Driver Verifier checks
/// that the address is the kernel's own. Where it does not start it, the box stays a box.
fn handed_to_the_kernel<U, P: PoolType>(
    slice: PoolBox<[MaybeUninit<U>], Al, P>,
    size: usize,
    alignment: PoolAlignment,
    what: &str,
) {
    let align = align_of::<U>();
    let starts = align <= 16 || (size >= PAGE && align < PAGE && alignment == PoolAlignment::Windows);
    let tag = slice.tag().to_ulong();
    match PoolBox::try_into_kernel_block(slice) {
        Ok(block) => {
            assert!(starts, "{what}: handed out as the kernel's block");
            // SAFETY: the start of the kernel's block, allocated with `tag` and given up by its box.
            unsafe { sys::ExFreePoolWithTag(block.cast(), tag) };
        }
        Err(slice) => {
            assert!(!starts, "{what}: kept, though the content starts the kernel's block");
            drop(slice);
        }
    }
}

#[test]
fn a_page_aligned_page_is_aligned_where_the_kernel_does_not_start_blocks_on_pages() {
    // The driver's self-test under Wine: a page-aligned page, by value.
    on_kernel(PoolAlignment::Heap, |kernel, passive| {
        let page = PoolBox::<U4k, Al, NonPagedPool>::try_new(passive, U4k([9; PAGE])).unwrap();
        check_block(kernel, page.as_ptr() as *mut u8, PAGE, PAGE, "page");
        assert!(kernel.outstanding().iter().all(|block| block.address % 32 == 16), "the kernel kept only 16 bytes");
    });
}

#[test]
fn lookaside_entries_are_aligned_on_every_kernel() {
    for alignment in KEPT {
        on_kernel(alignment, |kernel, passive| {
            let list = LookasideList::<[u8; 24], Al>::try_new(passive).unwrap();
            let wide = LookasideList::<u128, Al>::try_new(passive).unwrap();
            let entries: Vec<_> = (0..4).map(|_| list.try_alloc(passive, [1; 24]).unwrap()).collect();
            let wides: Vec<_> = (0..4).map(|_| wide.try_alloc(passive, 7).unwrap()).collect();
            for entry in &entries {
                check_block(kernel, core::ptr::from_ref(&**entry).cast_mut().cast(), 24, 16, "lookaside entry");
            }
            for entry in &wides {
                check_block(kernel, core::ptr::from_ref(&**entry).cast_mut().cast(), 16, 16, "u128 lookaside entry");
            }
        });
    }
}

#[cfg(feature = "videoport")]
#[test]
fn videoport_blocks_are_aligned_on_every_kernel() {
    use ntpool::videoport::{HwDeviceExtension, VpBox, VpNonPagedPool, VpPagedPoolCacheAligned};
    for alignment in KEPT {
        let mut extension = [0u64; 8];
        on_kernel(alignment, |kernel, passive| {
            // SAFETY: stands for the miniport's device extension; it outlives the blocks.
            let device = unsafe { HwDeviceExtension::from_raw(extension.as_mut_ptr().cast()) }.unwrap();
            let small = VpBox::<U16, Al, VpNonPagedPool>::try_new(passive, device, U16([1; 16])).unwrap();
            check_block(kernel, small.as_ptr() as *mut u8, 16, 16, "VpNonPagedPool");
            let page = VpBox::<[U8], Al, VpPagedPoolCacheAligned>::try_new_zeroed_slice(passive, device, 512).unwrap();
            check_block(kernel, page.as_ptr() as *mut u8, PAGE, 8, "VpPagedPoolCacheAligned");
        });
    }
}

#[test]
fn a_kernel_that_breaks_sixteen_bytes_gets_failures_and_never_a_misaligned_block() {
    on_kernel(PoolAlignment::Eight, |kernel, passive| {
        // Eight bytes are kept: what needs no more is served at the kernel's address.
        let word = PoolBox::<u64, Al, NonPagedPool>::try_new(passive, 1).unwrap();
        check_block(kernel, word.as_ptr() as *mut u8, 8, 8, "u64");
        // Sixteen bytes are not: the block goes back at once and the allocation fails.
        let calls = kernel.allocation_calls();
        assert_eq!(PoolBox::<u128, Al, NonPagedPool>::try_new(passive, 1).err(), Some(AllocError));
        assert_eq!(kernel.allocation_calls(), calls + 1);
        let allocator = PoolAllocator::<Al>::new(passive);
        assert!(allocator.allocate(Layout::from_size_align(32, 16).unwrap()).is_err());
        let list = LookasideList::<u64, Al>::try_new(passive);
        assert!(list.is_err() || list.unwrap().try_alloc(passive, 1).is_err(), "an entry on 8 bytes only");
        // More than 16 is arranged inside a larger block, as on every kernel.
        let line = PoolBox::<U64, Al, NonPagedPool>::try_new(passive, U64([2; 64])).unwrap();
        check_block(kernel, line.as_ptr() as *mut u8, 64, 64, "U64");
        let page = PoolBox::<[U32], Al, NonPagedPool>::try_new_zeroed_slice(passive, 256).unwrap();
        check_block(kernel, page.as_ptr() as *mut u8, PAGE * 2, 32, "[U32; 256]");
        drop((word, line, page));
    });
}

#[test]
fn a_block_that_starts_on_a_page_is_the_kernels_own_and_others_never_start_on_one() {
    // `StartIfPage` layouts: handed out at the kernel's address exactly when it is a page start, and
    // inside a larger block at an address that is not one otherwise, so that the free can tell.
    for alignment in KEPT {
        on_kernel(alignment, |kernel, passive| {
            for _ in 0..64 {
                let page = PoolBox::<[U64], Al, NonPagedPool>::try_new_zeroed_slice(passive, 64).unwrap();
                let address = page.as_ptr() as *const u8 as usize;
                let own = kernel.outstanding().iter().any(|block| block.address == address);
                assert_eq!(own, address % PAGE == 0, "{alignment:?}: {address:#x}");
                assert_eq!(own, alignment == PoolAlignment::Windows);
            }
        });
    }
}
