use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let paged = PagedBox::<u32, Tg>::try_new(&passive, 1).unwrap();
        // SAFETY: any address stands for the device here.
        let work = unsafe { WorkItem::<_, Tg>::try_new(&passive, 8 as _, paged, |_passive, _paged| {}) }.unwrap();
        passive.raise_to_dispatch(work.trigger(), |dispatch, trigger| {
            // The context's accessor needs a token below DISPATCH_LEVEL, and a trigger has none.
            let _paged = trigger.context(dispatch);
        });
    });
}
