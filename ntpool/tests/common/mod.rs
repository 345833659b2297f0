//! What ntpool's integration tests share: running a test body on an emulated kernel with its
//! `Passive` token, and the leak check after it.

use ntpool::Passive;
use ntpool::emulated::Kernel;

/// Runs `f` with a Passive token on `kernel`, then checks that nothing leaked.
pub fn with_kernel<R>(kernel: &Kernel, f: impl FnOnce(&mut Passive) -> R) -> R {
    let result = kernel.run(|| {
        // SAFETY: a fresh emulated thread runs at PASSIVE_LEVEL, and this is its only token.
        let mut passive = unsafe { Passive::assume() };
        f(&mut passive)
    });
    if let Err(leak) = kernel.verify_unload() {
        panic!("{leak}");
    }
    result
}
