use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let _passive = unsafe { Passive::assume() };
        // SAFETY: never runs: the types do not match.
        let _p = unsafe { sys::ExAllocatePool2(sys::NonPagedPoolNx, 16, Tg::TAG.to_ulong()) };
    });
}
