use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let mut b = PagedBox::<u32, Tg>::try_new(&passive, 1).unwrap();
        let other = PagedBox::<u32, Tg>::try_new(&passive, 2).unwrap();
        passive.raise_to_dispatch((&mut b, other), |_dispatch, (b, other)| drop(core::mem::replace(b, other)));
    });
}
