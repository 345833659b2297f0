use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let passive = unsafe { Passive::assume() };
        let shared = PagedArc::<u32, Tg>::try_new(&passive, 1).unwrap();
        let _value: u32 = *shared;
    });
}
