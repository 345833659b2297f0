//! The ntpool-facing code of the windows-drivers-rs example driver (`examples/wdk-driver`, which
//! builds only on Windows with a WDK): its `src/convert.rs`, compiled here on Linux against a
//! stand-in for `wdk-sys` that declares the same aliases as `wdk-sys` generates them for x64 and
//! ARM64, and run on the emulated kernel. See docs/windows-drivers-rs.md.
#![allow(non_camel_case_types, non_snake_case)]

/// `wdk-sys`'s declarations of what `convert.rs` uses, as bindgen writes them from the WDK's headers:
/// `type` aliases of the same primitive types (and `UNICODE_STRING` with its fields).
#[allow(clippy::upper_case_acronyms)]
mod wdk_types {
    pub type ULONG = u32;
    pub type LONG = i32;
    pub type ULONG64 = u64;
    pub type ULONG_PTR = u64;
    pub type PVOID = *mut core::ffi::c_void;
    pub type POOL_FLAGS = ULONG64;
    pub type KSPIN_LOCK = ULONG_PTR;
    pub type NTSTATUS = LONG;
    #[repr(C)]
    pub struct _UNICODE_STRING {
        pub Length: u16,
        pub MaximumLength: u16,
        pub Buffer: *mut u16,
    }
    pub type UNICODE_STRING = _UNICODE_STRING;
    pub type PCUNICODE_STRING = *const UNICODE_STRING;
}

#[path = "../examples/wdk-driver/src/convert.rs"]
mod convert;

use ntpool::emulated::Kernel;
use ntpool::{AllocError, CacheAligned, NonPagedBox, NonPagedPool, PagedPool, Passive, PoolTag, sys};

ntpool::pool_tag!(struct Tg = b"WdT1");

#[test]
fn pool_flags_tags_and_statuses_are_the_kernels() {
    assert_eq!(convert::pool_flags::<NonPagedPool>(), sys::POOL_FLAG_NON_PAGED);
    assert_eq!(convert::pool_flags::<PagedPool>(), sys::POOL_FLAG_PAGED);
    assert_eq!(
        convert::pool_flags::<CacheAligned<NonPagedPool>>(),
        sys::POOL_FLAG_NON_PAGED | sys::POOL_FLAG_CACHE_ALIGNED
    );
    assert_eq!(convert::tag_of::<Tg>(), u32::from_le_bytes(*b"WdT1"));
    assert_eq!(convert::pool_tag(u32::from_le_bytes(*b"WdT1")), Some(PoolTag::new(*b"WdT1")));
    assert_eq!(convert::pool_tag(0), None);
    assert_eq!(convert::status(Ok(())), 0);
    assert_eq!(convert::status(Err(AllocError)), 0xC000_009A_u32 as i32);
}

#[test]
fn blocks_cross_to_wdk_routines_and_back() {
    let kernel = Kernel::new();
    kernel.run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let passive = unsafe { Passive::assume() };
        // An ntpool box handed to a routine that frees it with ExFreePoolWithTag and its tag.
        let request = NonPagedBox::<[u32; 4], Tg>::try_new(&passive, [7; 4]).unwrap();
        let tag = request.tag().to_ulong();
        let block: wdk_types::PVOID = convert::kernel_block(request);
        // SAFETY: the kernel's block, allocated with `tag`, given up by its box.
        unsafe { sys::ExFreePoolWithTag(block, tag) };

        // A buffer a routine returned for the caller to free with ExFreePool, adopted by ntpool.
        // SAFETY: a plain allocation at PASSIVE_LEVEL.
        let raw = unsafe { sys::ExAllocatePool2(sys::POOL_FLAG_PAGED, 8, u32::from_le_bytes(*b"Sys1")) };
        // SAFETY: 8 zeroed bytes of pool, freed with ExFreePool, owned by nobody else.
        let buffer = unsafe { convert::adopt_ex_pool_buffer::<u16>(raw, 4) }.unwrap();
        assert_eq!(buffer.get(&passive), &[0; 4]);
        drop(buffer);
        // SAFETY: NULL is allowed.
        assert!(unsafe { convert::adopt_ex_pool_buffer::<u16>(core::ptr::null_mut(), 0) }.is_none());

        // A spin lock a kernel structure owns, through ntpool's raw routines.
        let mut lock: wdk_types::KSPIN_LOCK = 0;
        let lock = convert::spin_lock(&mut lock);
        // SAFETY: an initialized, unheld lock that outlives the acquisition.
        let old = unsafe { sys::KeAcquireSpinLockRaiseToDpc(lock) };
        assert_eq!(sys::KeGetCurrentIrql(), sys::DISPATCH_LEVEL);
        // SAFETY: held by this thread; `old` is what the acquire returned.
        unsafe { sys::KeReleaseSpinLock(lock, old) };
    });
    assert!(kernel.verify_unload().is_ok());
}

#[test]
fn the_registry_path_becomes_a_slice() {
    let mut text: Vec<u16> = "\\Registry\\Machine".encode_utf16().collect();
    let string = wdk_types::UNICODE_STRING {
        Length: (text.len() * 2) as u16,
        MaximumLength: (text.len() * 2) as u16,
        Buffer: text.as_mut_ptr(),
    };
    // SAFETY: a valid string whose buffer outlives the slice.
    let units = unsafe { convert::unicode_string_units(&string) };
    assert_eq!(String::from_utf16(units).unwrap(), "\\Registry\\Machine");
    // SAFETY: NULL is allowed.
    assert!(unsafe { convert::unicode_string_units(core::ptr::null()) }.is_empty());
}
