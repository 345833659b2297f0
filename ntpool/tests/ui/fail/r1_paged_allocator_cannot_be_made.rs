use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let passive = unsafe { Passive::assume() };
        // A collection over it would hand out plain references to paged memory.
        let _paged = PoolAllocator::<Tg, PagedPool>::new(&passive);
    });
}
