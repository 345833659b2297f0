use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let passive = unsafe { Passive::assume() };
        let log = PagedVec::<u32, Tg>::new(&passive);
        // Only a borrow of the collection's own allocator, which borrows the token too.
        let escaped: PoolAllocator<Tg, PagedPool> = log.get(&passive).allocator().clone();
        let _outside = allocator_api2::vec::Vec::<u32, _>::new_in(escaped);
    });
}
