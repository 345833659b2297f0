use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let list = LookasideList::<u32, Tg, PagedPool>::try_new(&passive).unwrap();
        let entry = list.try_alloc(&passive, 1).unwrap();
        passive.raise_to_dispatch(entry, |_dispatch, entry| drop(entry));
    });
}
