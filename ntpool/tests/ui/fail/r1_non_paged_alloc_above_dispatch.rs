use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        passive.raise_above_dispatch(HighIrql::CLOCK, (), |high, ()| {
            let _b = NonPagedBox::<u32, Tg>::try_new(high, 1);
        });
    });
}
