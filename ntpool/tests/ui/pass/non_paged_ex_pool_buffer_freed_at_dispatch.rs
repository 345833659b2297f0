use ntpool::*;

fn main() {
    let kernel = ntpool::emulated::Kernel::new();
    kernel.run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        // SAFETY: a plain allocation at PASSIVE_LEVEL.
        let raw = unsafe { sys::ExAllocatePoolWithTag(sys::NonPagedPoolNx, 4, u32::from_le_bytes(*b"Sys1")) };
        // SAFETY: a non-paged 4-byte block freed with ExFreePool, owned by nobody else.
        let buffer = unsafe { ExPoolBuffer::<u32, NonPagedPool>::from_raw(raw.cast()) }.unwrap();
        passive.raise_to_dispatch(buffer, |_dispatch, mut buffer| {
            assert_eq!(sys::KeGetCurrentIrql(), sys::DISPATCH_LEVEL);
            *buffer = 5;
            drop(buffer); // ExFreePool at DISPATCH_LEVEL: allowed for non-paged memory
        });
    });
    kernel.verify_unload().unwrap();
}
