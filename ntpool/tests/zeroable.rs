//! Zeroed boxes of `Zeroable` types: `try_alloc_zeroed` and `try_alloc_zeroed_slice` hand out zeroed
//! memory whatever the `Alloc` says (the emulated kernel fills a block allocated with
//! `POOL_FLAG_UNINITIALIZED` with 0xCD, so a block that was not zeroed shows), with the `Alloc`'s tag,
//! pool and quota, and `#[derive(Zeroable)]` makes a struct of zeroable fields one.

mod common;

use common::with_kernel;
use core::sync::atomic::{AtomicU32, Ordering};
use ntpool::emulated::{Kernel, PoolKind};
use ntpool::{Alloc, NonPagedBox, PagedBox, PoolTag, Zeroable};

ntpool::pool_tag!(struct Zt = b"Zero");

#[derive(Zeroable)]
#[repr(C, align(64))]
struct Counters {
    hits: AtomicU32,
    misses: [u16; 7],
    last: Option<core::ptr::NonNull<u8>>,
    seen: (bool, char),
}

#[test]
fn a_zeroed_value_is_zero_even_when_the_alloc_says_uninit() {
    let kernel = Kernel::new();
    with_kernel(&kernel, |passive| {
        // The emulated kernel fills uninitialized blocks: the same Alloc without zeroing shows it.
        let raw = NonPagedBox::<[u8; 96], Zt>::try_alloc(passive, Alloc::new().uninit()).unwrap();
        // SAFETY: the emulated kernel writes every byte of an uninitialized block (0xCD), so they
        // are initialized `u8`s.
        let raw = unsafe { raw.assume_init() };
        assert!(raw.iter().all(|&byte| byte == 0xCD), "the emulated kernel's fill shows");
        drop(raw);
        let zeroed = NonPagedBox::<[u8; 96], Zt>::try_alloc_zeroed(passive, Alloc::new().uninit()).unwrap();
        assert!(zeroed.iter().all(|&byte| byte == 0));
        let counters = NonPagedBox::<Counters, Zt>::try_alloc_zeroed(passive, Alloc::new().uninit()).unwrap();
        assert_eq!(counters.hits.load(Ordering::Relaxed), 0);
        assert_eq!((counters.misses, counters.last, counters.seen), ([0; 7], None, (false, '\0')));
        assert_eq!(counters.as_ptr() as usize % 64, 0, "aligned for the type");
    });
}

#[test]
fn a_zeroed_slice_keeps_the_allocs_tag_pool_and_quota() {
    let kernel = Kernel::new();
    with_kernel(&kernel, |passive| {
        let tag = PoolTag::from_raw(u32::from_le_bytes(*b"Req7")).unwrap();
        let alloc = Alloc::with_tag(tag).uninit().quota();
        let words = PagedBox::<[u64], PoolTag>::try_alloc_zeroed_slice(passive, alloc, 300).unwrap();
        assert_eq!(words.get(passive).len(), 300);
        assert!(words.get(passive).iter().all(|&word| word == 0));
        let blocks = kernel.outstanding();
        assert_eq!(blocks.len(), 1);
        assert_eq!((blocks[0].tag.to_string(), blocks[0].pool, blocks[0].size), ("Req7".into(), PoolKind::Paged, 2400));
        let charge = kernel.quota_charges()[0];
        assert_eq!((charge.paged, charge.non_paged), (2400, 0), "charged to the process");
    });
}

#[test]
fn an_empty_zeroed_slice_allocates_nothing() {
    let kernel = Kernel::new();
    with_kernel(&kernel, |passive| {
        let empty = NonPagedBox::<[u32], Zt>::try_alloc_zeroed_slice(passive, Alloc::new(), 0).unwrap();
        assert!(empty.is_empty());
        assert!(kernel.outstanding().is_empty());
    });
}
