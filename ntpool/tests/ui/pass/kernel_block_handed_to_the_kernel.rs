//! A block whose content starts it (alignment of 16 bytes or less) handed to the kernel, which frees
//! it with `ExFreePoolWithTag` and the box's tag: Driver Verifier finds its own address and tag.
use ntpool::*;
pool_tag!(struct Tg = b"Test");

fn main() {
    let kernel = ntpool::emulated::Kernel::new();
    kernel.run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let passive = unsafe { Passive::assume() };
        let request = PagedBox::<[u128; 4], Tg>::try_new(&passive, [7; 4]).unwrap();
        let tag = request.tag().to_ulong();
        let block = PagedBox::into_kernel_block(request);
        // SAFETY: the start of the kernel's block, allocated with `tag`, given up by its box.
        unsafe { sys::ExFreePoolWithTag(block.cast(), tag) };
    });
    assert!(kernel.verify_unload().is_ok());
}
