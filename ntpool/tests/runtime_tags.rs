//! Run-time tags wherever a tag type is accepted: each type that keeps kernel objects or entries in
//! pool, made with a `PoolTag` known only at run time (`try_new_with_tag`), allocates with that tag,
//! frees with that same tag (the emulated kernel stops with bug check 0xC2 / 0x0A on a free with
//! another), and leaves nothing behind.

mod common;

use common::with_kernel;
use ntpool::emulated::{Kernel, PoolKind};
use ntpool::{FastMutex, PoolTag};

/// A tag as a driver gets one at run time: from a `ULONG`, checked.
fn runtime_tag(bytes: &[u8; 4]) -> PoolTag {
    PoolTag::from_raw(u32::from_le_bytes(*bytes)).unwrap()
}

/// The tags of the blocks outstanding now.
fn outstanding_tags(kernel: &Kernel) -> Vec<String> {
    kernel.outstanding().iter().map(|block| block.tag.to_string()).collect()
}

/// The pool usage table as `(tag, pool, allocations, frees, bytes in use)` rows.
fn usage(kernel: &Kernel) -> Vec<(String, PoolKind, u64, u64, u64)> {
    kernel.pool_usage().rows.iter().map(|r| (r.tag.to_string(), r.pool, r.allocs, r.frees, r.bytes)).collect()
}

#[test]
fn a_fast_mutex_with_a_run_time_tag_allocates_and_frees_with_it() {
    let kernel = Kernel::new();
    let tag = runtime_tag(b"RtFm");
    with_kernel(&kernel, |passive| {
        let mutex = FastMutex::<u32, PoolTag>::try_new_with_tag(passive, tag, 1).unwrap();
        assert_eq!(outstanding_tags(&kernel), ["RtFm"]);
        mutex.lock(passive, |_apc, value| *value += 1);
        assert_eq!(mutex.into_inner(), 2);
        assert!(kernel.outstanding().is_empty());
    });
    assert_eq!(usage(&kernel), [("RtFm".to_string(), PoolKind::NonPaged, 1, 1, 0)]);
}
