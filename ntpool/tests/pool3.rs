//! `ExAllocatePool3`'s parameters through `Alloc` (`priority`, `numa_node`) on the emulated kernel,
//! on both paths: a kernel that exports `ExAllocatePool3` (Windows 10 version 2004 and later) checks
//! them and serves the block; one that does not serves it with `ExAllocatePool2` without them, or with
//! `ExAllocatePoolWithTag` where that is missing too.

use ntpool::emulated::Kernel;
use ntpool::{Alloc, AllocError, NonPagedBox, NumaNode, PagedBox, Passive, Priority};

ntpool::pool_tag!(struct Tg = b"Np3t");

/// A 64-byte aligned value, which sits inside a larger kernel block.
#[repr(align(64))]
struct Aligned {
    _bytes: [u8; 64],
}

/// Allocates a value and a slice with `alloc` on `kernel`, and returns the routines that served them.
fn routines(kernel: &Kernel, alloc: Alloc<Tg>) -> Result<Vec<&'static str>, AllocError> {
    kernel.run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let passive = unsafe { Passive::assume() };
        let value = NonPagedBox::<u64, Tg>::try_alloc(&passive, alloc)?;
        let slice = NonPagedBox::<[u16], Tg>::try_alloc_slice(&passive, alloc, 5)?;
        let aligned = NonPagedBox::<Aligned, Tg>::try_alloc(&passive, alloc)?;
        assert_eq!(aligned.as_ptr() as usize % 64, 0);
        let routines = kernel.outstanding().iter().map(|block| block.routine).collect();
        drop((value, slice, aligned));
        Ok(routines)
    })
}

#[test]
fn a_priority_or_a_node_goes_to_ex_allocate_pool3() {
    let kernel = Kernel::new();
    for alloc in [
        Alloc::new().priority(Priority::Low),
        Alloc::new().priority(Priority::High).numa_node(NumaNode::required(0)),
        Alloc::new().numa_node(NumaNode::preferred(7)).uninit(),
    ] {
        assert_eq!(routines(&kernel, alloc), Ok(vec!["ExAllocatePool3"; 3]));
    }
    assert_eq!(routines(&kernel, Alloc::new()), Ok(vec!["ExAllocatePool2"; 3]));
    assert!(kernel.verify_unload().is_ok());
}

#[test]
fn ex_allocate_pool3_refuses_what_it_cannot_serve() {
    let kernel = Kernel::new();
    // The emulated machine has one NUMA node: node 1 is refused unless any node will do.
    assert_eq!(routines(&kernel, Alloc::new().numa_node(NumaNode::required(1))), Err(AllocError));
    assert_eq!(routines(&kernel, Alloc::new().numa_node(NumaNode::preferred(1))), Ok(vec!["ExAllocatePool3"; 3]));
    // A node is for non-paged pool only.
    let paged = kernel.run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let passive = unsafe { Passive::assume() };
        PagedBox::<u32, Tg>::try_alloc(&passive, Alloc::new().numa_node(NumaNode::preferred(0))).map(drop)
    });
    assert_eq!(paged, Err(AllocError));
    assert!(kernel.verify_unload().is_ok());
}

#[test]
fn without_ex_allocate_pool3_the_parameters_are_dropped() {
    let kernel = Kernel::builder().ex_allocate_pool3(false).build();
    assert!(!kernel.run(ntpool::sys::uses_ex_allocate_pool3));
    let alloc = Alloc::new().priority(Priority::Low).numa_node(NumaNode::required(1));
    assert_eq!(routines(&kernel, alloc), Ok(vec!["ExAllocatePool2"; 3]));
    let paged = kernel.run(|| {
        // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
        let passive = unsafe { Passive::assume() };
        let block = PagedBox::<u32, Tg>::try_alloc(&passive, Alloc::new().numa_node(NumaNode::required(0)))?;
        // SAFETY: the block was zeroed.
        Ok::<u32, AllocError>(*unsafe { block.assume_init() }.get(&passive))
    });
    assert_eq!(paged, Ok(0));
    assert!(kernel.verify_unload().is_ok());

    let old_windows = Kernel::builder().ex_allocate_pool2(false).build();
    assert_eq!(routines(&old_windows, alloc), Ok(vec!["ExAllocatePoolWithTag"; 3]));
    assert!(old_windows.verify_unload().is_ok());
}
