use ntpool::*;
pool_tag!(struct Tg = b"Test");

/// A callback that runs at DISPATCH_LEVEL and frees what it is given.
fn on_dispatch(_dispatch: &mut Dispatch, b: PagedBox<u32, Tg>) {
    drop(b);
}

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let b = PagedBox::<u32, Tg>::try_new(&passive, 1).unwrap();
        passive.raise_to_dispatch(b, on_dispatch);
    });
}
