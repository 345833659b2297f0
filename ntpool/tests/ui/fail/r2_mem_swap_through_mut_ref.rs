use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let mut a = Some(PagedBox::<u32, Tg>::try_new(&passive, 1).unwrap());
        let mut b: Option<PagedBox<u32, Tg>> = None;
        passive.raise_to_dispatch((&mut a, &mut b), |_dispatch, (a, b)| {
            core::mem::swap(a, b);
            *b = None;
        });
    });
}
