use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        passive.raise_to_dispatch((), |dispatch, ()| {
            // A quota charge decided at run time still needs a token below DISPATCH_LEVEL.
            let _b = NonPagedBox::<[u8], Tg>::try_alloc_slice(dispatch, Alloc::new().quota_if(false), 8);
        });
    });
}
