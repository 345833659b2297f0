use ntpool::*;

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        // SAFETY: a plain allocation at PASSIVE_LEVEL.
        let raw = unsafe { sys::ExAllocatePoolWithTag(sys::PagedPool, 4, u32::from_le_bytes(*b"Sys1")) };
        // SAFETY: a 4-byte block freed with ExFreePool, owned by nobody else; its pool is not known.
        let buffer = unsafe { ExPoolBuffer::<u32, UnknownPool>::from_raw(raw.cast()) }.unwrap();
        passive.raise_to_dispatch(buffer, |_dispatch, buffer| drop(buffer));
    });
}
