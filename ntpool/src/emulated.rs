//! The emulated kernel (the crate `ntpool-sys`'s, re-exported): run driver code on Linux or macOS
//! with the checks Driver Verifier makes. Every ntpool call of a host build lands on it.
//!
//! See [`Kernel`] for how a test runs code in a kernel of its own, [`KernelBuilder`] for what can be
//! configured (Driver Verifier's options, the Windows version's exports, the pool's alignment), and
//! the kernel's reports: [`Kernel::verify_unload`], [`Kernel::pool_usage`] and [`BugCheck`]. The
//! examples of `ntpool-sys` call the kernel's routines directly; the ones below use ntpool's boxes.
//!
//! # Testing your driver on Linux
//!
//! Your driver depends on `ntpool`; on a Linux (or macOS) target every ntpool call lands on this
//! emulated kernel, so `cargo test` runs your driver's allocation code with Driver Verifier's checks.
//! A complete test of a driver-like component, with a leak check at "unload" and the systematic low
//! resources simulation (every allocation failing in turn):
//!
//! ```
//! use ntpool::emulated::{catch_bug_check, Kernel};
//! use ntpool::{AllocError, NonPagedBox, PagedBox, Passive, SpinLock};
//!
//! ntpool::pool_tag!(struct Names = b"MyNm");
//! ntpool::pool_tag!(struct Items = b"MyIt");
//!
//! /// The code under test: what a driver would run in DriverEntry.
//! struct Device {
//!     name: PagedBox<[u8], Names>,
//!     pending: SpinLock<Option<NonPagedBox<[u32; 4], Items>>>,
//! }
//!
//! fn start(passive: &mut Passive) -> Result<Device, AllocError> {
//!     let name = PagedBox::try_from_slice(passive, b"device0")?;
//!     let device = Device { name, pending: SpinLock::new(None) };
//!     let item = NonPagedBox::try_new(passive, [1, 2, 3, 4])?;
//!     device.pending.with(passive, item, |_dispatch, slot, item| *slot = Some(item));
//!     Ok(device)
//! }
//!
//! // 1. A normal run: works, and frees everything once the device is dropped ("unload").
//! let kernel = Kernel::builder().driver_name("mydriver.sys").build();
//! kernel.run(|| {
//!     // SAFETY: the test thread runs at PASSIVE_LEVEL (emulated) and holds no other token.
//!     let mut passive = unsafe { Passive::assume() };
//!     let device = start(&mut passive).expect("enough memory");
//!     assert_eq!(device.name.get(&passive), b"device0");
//! });
//! kernel.verify_unload().expect("no leak");
//! println!("{}", kernel.pool_usage()); // poolmon-style: tag, pool, allocs, frees, bytes
//!
//! // 2. Systematic low resources simulation: fail allocation k, for every k of the clean run.
//! for k in 1..=kernel.allocation_calls() {
//!     let faulty = Kernel::builder().fail_allocation(k).build();
//!     let outcome = faulty.run(|| {
//!         catch_bug_check(|| {
//!             // SAFETY: as above.
//!             let mut passive = unsafe { Passive::assume() };
//!             start(&mut passive).map(drop)
//!         })
//!     });
//!     assert_eq!(outcome, Ok(Err(AllocError)), "allocation {k} failing must be an error, not a bug check");
//!     faulty.verify_unload().expect("a failed start leaks nothing");
//! }
//! ```
//!
//! # Alignment on every kernel
//!
//! A kernel that keeps fewer alignment promises than Windows ([`KernelBuilder::pool_alignment`])
//! shows that ntpool does not rely on them: its boxes are aligned for their type on every one.
//!
//! ```
//! use ntpool::emulated::{Kernel, PoolAlignment};
//! use ntpool::{NonPagedBox, Passive};
//! ntpool::pool_tag!(struct Doc = b"Doc1");
//! #[repr(C, align(4096))]
//! struct Page([u8; 4096]);
//!
//! let kernel = Kernel::builder().pool_alignment(PoolAlignment::Heap).build();
//! kernel.run(|| {
//!     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
//!     let passive = unsafe { Passive::assume() };
//!     // The kernel's block of 8 KiB does not start on a page; the box's does all the same.
//!     let page = NonPagedBox::<Page, Doc>::try_new(&passive, Page([0; 4096])).unwrap();
//!     assert_eq!(page.as_ptr() as usize % 4096, 0);
//! });
//! assert!(kernel.verify_unload().is_ok());
//! ```
//!
//! # Tags
//!
//! The kernel sees a tag as a `ULONG` ([`RawTag`]); a [`PoolTag`](crate::PoolTag) converts, so
//! special pool can be asked for one tag by its type:
//!
//! ```
//! # #[cfg(all(target_os = "linux", target_arch = "x86_64"))] {
//! use ntpool::emulated::{Kernel, SpecialPoolAlignment};
//! use ntpool::{NonPagedBox, Passive, Tag};
//! ntpool::pool_tag!(struct Suspect = b"Susp");
//! let kernel = Kernel::builder().special_pool_tag(Suspect::TAG, SpecialPoolAlignment::VerifyEnd).build();
//! kernel.run(|| {
//!     // SAFETY: the emulated thread runs at PASSIVE_LEVEL and holds no other token.
//!     let passive = unsafe { Passive::assume() };
//!     let b = NonPagedBox::<[u8; 24], Suspect>::try_new(&passive, [1; 24]).unwrap();
//!     // The block ends 8 bytes short of a guard page: 24 rounded up to 16-byte alignment.
//!     assert_eq!((b.as_ptr() as usize + 24 + 8) % 4096, 0);
//! });
//! # }
//! ```

pub use ntpool_sys::emulated::*;
