use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        passive.raise_to_dispatch((), |_dispatch, ()| {
            let _b = PagedBox::<u32, Tg>::try_new(&passive, 1);
        });
    });
}
