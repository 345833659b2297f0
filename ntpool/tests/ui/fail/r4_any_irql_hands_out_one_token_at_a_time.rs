use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let passive = unsafe { Passive::assume() };
        drop(passive);
        // SAFETY: no other token is in use on this thread.
        let mut any = unsafe { AnyIrql::assume() };
        let first = any.current();
        let second = any.current();
        drop((first, second));
    });
}
