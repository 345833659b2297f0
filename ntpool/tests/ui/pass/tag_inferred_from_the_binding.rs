//! Constructors and `from_raw` need no turbofish when the binding names the box's type: the tag is
//! inferred from it, and no other kind of box (VideoPort, ExFreePool buffers) makes that ambiguous.
use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    let kernel = ntpool::emulated::Kernel::new();
    kernel.run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let passive = unsafe { Passive::assume() };
        let value: NonPagedBox<u32, Tg> = NonPagedBox::try_new(&passive, 1).unwrap();
        let slice: PagedBox<[u8], Tg> = PagedBox::try_from_slice(&passive, b"abc").unwrap();
        let raw = PagedBox::into_raw(slice);
        // SAFETY: `raw` came from `into_raw` of a paged box tagged `Tg`.
        let slice: PagedBox<[u8], Tg> = unsafe { PagedBox::from_raw(raw) };
        assert_eq!((*value, slice.get(&passive)), (1, &b"abc"[..]));
    });
    assert!(kernel.verify_unload().is_ok());
}
