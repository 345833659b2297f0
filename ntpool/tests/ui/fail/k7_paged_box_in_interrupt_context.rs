use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let mut passive = unsafe { Passive::assume() };
        let raw = ntpool::sys::emulated::irp::connect_interrupt(6);
        // SAFETY: connected above.
        let interrupt = unsafe { Interrupt::from_raw(raw) };
        let paged = PagedBox::<u32, Tg>::try_new(&passive, 1).unwrap();
        // Code synchronized with an ISR runs above DISPATCH_LEVEL: no pool memory may be owned there.
        interrupt.synchronize(&mut passive, paged, |_high, _paged| {});
    });
}
