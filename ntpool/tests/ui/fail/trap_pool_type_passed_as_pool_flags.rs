use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let _passive = unsafe { Passive::assume() };
        // A pool type where pool flags go: `NonPagedPoolNx` is a `POOL_TYPE` (an `i32`), which the
        // legacy routines take, not `POOL_FLAGS` (a `u64`), which ExAllocatePool2 takes.
        let flags: sys::POOL_FLAGS = sys::NonPagedPoolNx;
        // SAFETY: never runs: the flags do not compile.
        let _p = unsafe { sys::ExAllocatePool2(flags, 16, Tg::TAG.to_ulong()) };
    });
}
