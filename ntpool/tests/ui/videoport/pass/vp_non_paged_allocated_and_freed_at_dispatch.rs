use ntpool::videoport::{HwDeviceExtension, VpBox, VpNonPagedPool, VpNonPagedPoolCacheAligned};
use ntpool::*;
pool_tag!(struct Tg = b"DvTs");

fn main() {
    let mut extension = [0u64; 8];
    let kernel = ntpool::emulated::Kernel::new();
    kernel.run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        // SAFETY: stands for the miniport's device extension, which outlives the blocks.
        let device = unsafe { HwDeviceExtension::from_raw(extension.as_mut_ptr().cast()) }.unwrap();
        let kept = VpBox::<u32, Tg, VpNonPagedPool>::try_new(&passive, device, 1).unwrap();
        passive.raise_to_dispatch((kept, device), |dispatch, (kept, device)| {
            // VpNonPaged* memory is allocated, touched and freed at DISPATCH_LEVEL.
            let b = VpBox::<u32, Tg, VpNonPagedPoolCacheAligned>::try_new(dispatch, device, 2).unwrap();
            assert_eq!(*kept + *b, 3);
            drop(kept);
        });
    });
    assert!(kernel.verify_unload().is_ok());
}
