use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let mut paged = PagedBox::<u32, Tg>::try_new(&passive, 1).unwrap();
        let counter = NonPagedBox::<u32, Tg>::try_new(&passive, 0).unwrap();
        let irqls = passive.raise_to_apc(|apc| {
            *paged.get_mut(apc) += 1;
            let at_dispatch = apc.raise_to_dispatch(counter, |_dispatch, counter| {
                drop(counter);
                sys::KeGetCurrentIrql()
            });
            (sys::KeGetCurrentIrql(), at_dispatch)
        });
        assert_eq!(irqls, (sys::APC_LEVEL, sys::DISPATCH_LEVEL));
        assert_eq!(*paged.get(&passive), 2);
    });
}
