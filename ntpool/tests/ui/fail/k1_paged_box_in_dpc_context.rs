use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let paged = PagedBox::<u32, Tg>::try_new(&passive, 1).unwrap();
        // A DPC's context is reached at DISPATCH_LEVEL: paged memory cannot be in it.
        let _dpc = Dpc::<_, Tg>::try_new(&mut passive, paged, |_dispatch, _paged| {});
    });
}
