use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let b = PagedBox::<SpinLock<u32>, Tg>::try_new(&passive, SpinLock::new(0)).unwrap();
        b.get(&passive).with(&mut passive, (), |_dispatch, count, ()| *count += 1);
    });
}
