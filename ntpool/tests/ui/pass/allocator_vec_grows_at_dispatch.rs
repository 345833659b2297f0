use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let v = allocator_api2::vec::Vec::new_in(PoolAllocator::<Tg>::new(&passive));
        let v = passive.raise_to_dispatch(v, |_dispatch, mut v| {
            for i in 0..100u32 {
                v.push(i);
            }
            v
        });
        assert_eq!(v.len(), 100);
    });
}
