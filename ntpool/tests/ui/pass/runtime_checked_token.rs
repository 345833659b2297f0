use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let passive = unsafe { Passive::assume() };
        drop(passive);
        // SAFETY: no other token is in use on this thread.
        let mut any = unsafe { AnyIrql::assume() };
        match any.current() {
            CurrentIrql::Passive(passive) => {
                let b = PagedBox::<u32, Tg>::try_new(&*passive, 3).unwrap();
                assert_eq!(*b.get(&*passive), 3);
            }
            CurrentIrql::Apc(apc) => drop(PagedBox::<u32, Tg>::try_new(&*apc, 3)),
            CurrentIrql::Dispatch(dispatch) => drop(NonPagedBox::<u32, Tg>::try_new(&*dispatch, 3)),
            CurrentIrql::High(_) => unreachable!(),
        }
    });
}
