use ntpool::*;
pool_tag!(struct Tg = b"Test");

#[repr(C, align(64))]
struct Line([u8; 64]);

fn main() {
    ntpool::emulated::Kernel::new().run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let passive = unsafe { Passive::assume() };
        let line = NonPagedBox::<Line, Tg>::try_new(&passive, Line([0; 64])).unwrap();
        // A 64-byte alignment may put the line inside a larger block: there is no block to hand over.
        let _block = NonPagedBox::into_kernel_block(line);
    });
}
