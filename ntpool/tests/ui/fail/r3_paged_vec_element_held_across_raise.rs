use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let mut log = PagedVec::<u32, Tg>::new(&passive);
        log.get_mut(&passive).try_reserve(1).unwrap();
        log.get_mut(&passive).push(1);
        // `&u32` may enter the region, but this one borrows the token it was reached with.
        let first: &u32 = &log.get(&passive)[0];
        passive.raise_to_dispatch(first, |_dispatch, first| *first);
    });
}
