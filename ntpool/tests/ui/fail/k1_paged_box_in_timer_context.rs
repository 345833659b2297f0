use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let paged = PagedBox::<u32, Tg>::try_new(&passive, 1).unwrap();
        // A timer's DPC runs at DISPATCH_LEVEL: a spin lock around the paged box does not help.
        let _timer = Timer::<_, Tg>::try_new(&mut passive, SpinLock::new(Some(paged)), |_dispatch, _slot| {});
    });
}
