use ntpool::videoport::{HwDeviceExtension, VpBox, VpPagedPool};
use ntpool::*;
pool_tag!(struct Tg = b"DvTs");

fn main() {
    let mut extension = [0u64; 8];
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        // SAFETY: stands for the miniport's device extension, which outlives the block.
        let device = unsafe { HwDeviceExtension::from_raw(extension.as_mut_ptr().cast()) }.unwrap();
        let b = VpBox::<u32, Tg, VpPagedPool>::try_new(&passive, device, 1).unwrap();
        // VideoPortFreePool of VpPagedPool memory at DISPATCH_LEVEL.
        passive.raise_to_dispatch(b, |_dispatch, b| drop(b));
    });
}
