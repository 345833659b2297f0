use core::marker::PhantomData;
use core::ptr::NonNull;
use ntpool::*;
pool_tag!(struct Tg = b"Test");

// A hand-written box: it owns its target through a pointer. The derive must not make it
// `DispatchSafe` for a paged target.
#[derive(DispatchSafe)]
struct Owned<T> {
    ptr: NonNull<T>,
    _owns: PhantomData<T>,
}

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let paged = PagedBox::<u32, Tg>::try_new(&passive, 7).unwrap();
        let owned = Owned { ptr: NonNull::from(Box::leak(Box::new(paged))), _owns: PhantomData };
        passive.raise_to_dispatch(owned, |_dispatch, owned| drop(owned));
    });
}
