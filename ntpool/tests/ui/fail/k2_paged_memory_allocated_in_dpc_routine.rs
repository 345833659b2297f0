use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let _dpc = Dpc::<(), Tg>::try_new(&mut passive, (), |dispatch, ()| {
            // The routine's token proves DISPATCH_LEVEL: no paged pool.
            let _paged = PagedBox::<u32, Tg>::try_new(dispatch, 1);
        });
    });
}
