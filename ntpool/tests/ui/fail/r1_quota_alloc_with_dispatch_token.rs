use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        passive.raise_to_dispatch((), |dispatch, ()| {
            // Non-paged pool is allowed at DISPATCH_LEVEL, but charging the "current process" is not.
            let _b = NonPagedBox::<u32, Tg>::try_new_with_quota(dispatch, 1);
        });
    });
}
