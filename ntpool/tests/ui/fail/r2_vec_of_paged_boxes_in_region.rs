use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let mut v = allocator_api2::vec::Vec::new_in(PoolAllocator::<Tg>::new(&passive));
        v.push(PagedBox::<u32, Tg>::try_new(&passive, 1).unwrap());
        passive.raise_to_dispatch(v, |_dispatch, v| drop(v));
    });
}
