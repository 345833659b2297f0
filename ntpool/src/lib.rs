//! Tagged, IRQL-typed Windows kernel pool memory for Rust drivers, on stable Rust.
//!
//! * **Tags**: every allocation carries a [`PoolTag`] chosen per site or type ([`pool_tag!`]), checked
//!   at compile time, and is freed with `ExFreePoolWithTag` and that same tag. A tag known only at
//!   run time (a [`PoolTag`] value, from a request say) is accepted wherever a tag type is, and
//!   stored beside the pointer: [`PoolBox::try_new_with_tag`], [`PoolArc::try_new_with_tag`],
//!   [`PoolAllocator::with_tag`], [`Paged::with_tag`], and `try_new_with_tag` for
//!   [`LookasideList`], [`FastMutex`], [`Dpc`], [`Timer`], [`WorkItem`], [`SystemThread`],
//!   [`IoRequest`], [`Reclaimer`] and `videoport::VpBox`; only [`GlobalPoolAllocator`], a `static`
//!   made without arguments, takes a tag type alone.
//! * **Pools as types**: [`NonPagedPool`] (no-execute, the default), [`PagedPool`],
//!   [`NonPagedPoolExecute`], each optionally [`CacheAligned`].
//! * **Fallible**: every constructor returns `Result<_, AllocError>`; nothing panics or bug-checks
//!   on out-of-memory. Memory is zeroed unless you ask for `MaybeUninit`; a zeroed block of a
//!   [`Zeroable`] type (integers, arrays, `#[derive(Zeroable)]` structs) is that type at once,
//!   without `unsafe` ([`PoolBox::try_alloc_zeroed`], [`PoolBox::try_alloc_zeroed_slice`]).
//! * **Aligned on every kernel**: any `Layout` alignment, over-aligned types included; zero-sized
//!   types allocate nothing. The kernel's alignment promises are checked, not trusted: a page-sized
//!   block that does not start on a page (Wine's pool is a heap) is replaced by one the data sits
//!   inside, and a block that breaks even 16 bytes for its type fails the allocation. A type aligned
//!   on more than 16 bytes may therefore sit inside a larger block: [`PoolBox::into_raw`] gives the
//!   content's address, [`PoolBox::into_kernel_block`] and [`PoolBox::try_into_kernel_block`] the
//!   kernel's block, for routines that free it.
//! * **Collections on stable**: [`PoolAllocator`] implements `allocator_api2`'s `Allocator`, with a
//!   tag type or a run-time tag ([`PoolAllocator::with_tag`]); with the feature `allocator-api2-02`
//!   (which the feature `hashbrown` turns on), also allocator-api2 0.2's, so hashbrown's `HashMap`
//!   and `HashSet` live in pool memory too (`ntpool::hashbrown`). Grow with `try_reserve` first: an
//!   infallible `push` that runs out of pool ends in a bug check (see [`PoolAllocator`]).
//! * **Shared ownership**: [`PoolArc`] ([`NonPagedArc`], [`PagedArc`]) is an `Arc` whose block is
//!   allocated and freed with its tag, under the same IRQL rules as a box.
//! * **Paged collections**: [`Paged`] ([`PagedVec`], and `PagedHashMap` / `PagedHashSet` with the
//!   feature `hashbrown`) holds a collection in paged pool that is reached only through a token; no
//!   allocator of paged pool exists outside one.
//! * **IRQL tokens**: [`Passive`], [`Apc`], [`Dispatch`], [`High`]: allocating, touching or freeing
//!   paged memory at `DISPATCH_LEVEL` does not compile.
//! * **Any Windows 10+ or older**: `ExAllocatePool2` is resolved at run time and replaced by
//!   `ExAllocatePoolWithTag` where the kernel lacks it, so the driver loads before Windows 10 2004.
//!   An allocation with a [`Priority`] or a [`NumaNode`] ([`Alloc::priority`], [`Alloc::numa_node`])
//!   goes to `ExAllocatePool3`, resolved the same way, with `ExAllocatePool2` standing in without
//!   them where it is missing (see [`Alloc`] for what is lost).
//! * **The rest of the pool surface**: [`ExPoolBuffer`] for buffers a system routine hands back to be
//!   freed with `ExFreePool`, quota-charged allocations ([`PoolBox::try_new_with_quota`]), and typed
//!   lookaside lists ([`LookasideList`]), all under the same tag and IRQL rules.
//! * **Tested on Linux**: on a non-Windows target the crate runs on an [emulated kernel][emulated]
//!   that checks every call as Driver Verifier does.
//! * **x64 and ARM64**: drivers for `x86_64-pc-windows-msvc` and `aarch64-pc-windows-msvc`.
//! * **VideoPort pool** (feature `videoport`): `ntpool::videoport::VpBox` for video miniport
//!   drivers, over `VideoPortAllocatePool` / `VideoPortFreePool` from `videoprt.sys`, with the four
//!   `VP_POOL_TYPE`s as types and the same IRQL rules.
//!
//! ```
//! use ntpool::{NonPagedBox, PagedBox, Passive, SpinLock};
//! ntpool::pool_tag!(struct Requests = b"NpRq");
//! ntpool::pool_tag!(struct Config = b"NpCf");
//!
//! # ntpool::emulated::Kernel::new().run(|| {
//! // DriverEntry runs at PASSIVE_LEVEL.
//! // SAFETY: this entry point runs at PASSIVE_LEVEL and holds no other token.
//! let mut passive = unsafe { Passive::assume() };
//!
//! let config = PagedBox::<[u8], Config>::try_from_slice(&passive, b"verbose")?;
//! let queue = SpinLock::new(Option::<NonPagedBox<u32, Requests>>::None);
//!
//! let request = NonPagedBox::<u32, Requests>::try_new(&passive, 42)?;
//! queue.with(&mut passive, request, |_dispatch, slot, request| {
//!     // DISPATCH_LEVEL: non-paged memory only. `config` cannot get in here.
//!     *slot = Some(request);
//! });
//! assert_eq!(config.get(&passive).len(), 7);
//! # Ok::<(), ntpool::AllocError>(())
//! # }).unwrap();
//! ```
//!
//! # How the IRQL rules are enforced
//!
//! `Drop::drop` takes no argument, so no token can be demanded at the moment memory is freed. The
//! guarantee comes instead from controlling what is *reachable* while the IRQL is raised:
//!
//! 1. **Tokens prove the IRQL.** A token is a zero-sized, `!Send`, `!Sync` value that cannot be
//!    built in safe code: an entry point vouches for its IRQL with an `unsafe` `assume`
//!    ([`Passive::assume`], [`AnyIrql::assume`] whose [`AnyIrql::current`] checks at run time), and
//!    the contract of `assume` includes that no other token is in use on the thread. Every
//!    allocation needs a token that [`Allows`] the pool: `Passive` or `Apc` for paged pool,
//!    additionally `Dispatch` for non-paged pools, none above.
//! 2. **Code above `APC_LEVEL` runs only inside regions of this crate**: [`Passive::raise_to_dispatch`],
//!    [`SpinLock::with`], [`Dispatch::raise_above_dispatch`]. A region takes the token it raises from
//!    by `&mut`, so that token (and any reference borrowed from it) is unusable until the IRQL is
//!    back. The region's body is a plain `fn` pointer, which a closure only coerces to when it
//!    captures nothing; the only values it can reach are the explicit context argument and
//!    `static`s.
//! 3. **What may enter.** The context (and a spin lock's data) must be [`DispatchSafe`]: implemented
//!    for primitives, references to and containers of `DispatchSafe` values, non-paged boxes and
//!    allocators, and user structs through a derive that checks every field; never for a paged box.
//!    So no paged box can be dropped, `take()`n out of an `Option` through `&mut`, swapped out, or
//!    replaced inside a region: it never gets in. Above `DISPATCH_LEVEL` the context must be
//!    [`HighSafe`], which no owner of pool memory is.
//! 4. **Paged memory is only reachable through a token.** A [`PagedBox`] does not dereference;
//!    [`PoolBox::get`] and [`PoolBox::get_mut`] take a `Passive` or `Apc` token and return a
//!    reference that borrows it. While such a reference lives, the token cannot be borrowed mutably,
//!    so no region can start: a `&u32` into paged memory can never be read at `DISPATCH_LEVEL`,
//!    even though `&u32` itself is `DispatchSafe`.
//! 5. **Frees are the box's.** The tag and pool are type parameters and the box is the only owner,
//!    so the safe API cannot free with another tag, free twice, or free into another pool.
//!
//! The compile-fail suite in `tests/ui` shows each rule failing to compile with the error it
//! names, and `tests/ui/pass` shows the legitimate patterns compiling.
//!
//! ## The errors, and what each means
//!
//! | the compiler says | the rule | the fix |
//! |---|---|---|
//! | expected fn pointer, found closure; *closures can only be coerced to `fn` types if they do not capture any variables* | 2: a region's body reaches only its context | pass what the body needs as the region's context argument (it must be `DispatchSafe`) |
//! | *`X` may own or reach paged memory, so it cannot enter code that runs at DISPATCH_LEVEL* | 3: nothing paged gets in | keep the paged value outside the region, or allocate it from a non-paged pool |
//! | *`PagedPool` is paged memory, which must not be touched, allocated or freed at DISPATCH_LEVEL* | 1: the token does not allow the pool | allocate or reach it with a `Passive` or `Apc` token, outside the region |
//! | type `PoolBox<_, _, PagedPool>` cannot be dereferenced (E0614) | 4: paged memory only through a token | `b.get(&token)` / `b.get_mut(&token)` with a `Passive` or `Apc` token |
//! | cannot borrow `passive` as mutable because it is also borrowed as immutable, at a region | 4: a reference into paged memory borrows the token | end the use of the reference (or copy the value out) before raising the IRQL |
//! | *`ntpool::Dispatch` does not prove an IRQL below DISPATCH_LEVEL* | quota and fast mutexes need IRQL < `DISPATCH_LEVEL` | charge quota or acquire the mutex with a `Passive` or `Apc` token |
//!
//! The region methods ([`Passive::raise_to_dispatch`], [`SpinLock::with`], ...) link here: a closure
//! error names the method, whose documentation is the way in.
//!
//! ## What is out of reach, and the backstop
//!
//! * **`unsafe` code**: a token assumed at the wrong IRQL, two tokens assumed on one thread, raw
//!   pointers into paged memory, IRQL changed behind the crate's back.
//! * **Global state outside this crate**: a region's body can name what is global without it
//!   being passed in. In a `no_std` kernel that means `static`s made `Sync` by another crate (a
//!   third-party mutex holding a paged box, say); `core` and `alloc` have no safe `Sync` container
//!   that can hold a box, and [`SpinLock`] requires `DispatchSafe` data. On a host build, std adds
//!   `thread_local!`, `static Mutex` and panic hooks.
//! * **The global allocator**: the rules cover ntpool's pools and [`PoolAllocator`]. `alloc`'s
//!   `Box`, `Vec`, `String` and `format!` use the driver's `#[global_allocator]`, which no token
//!   guards; a driver that has one must not use them above `DISPATCH_LEVEL` (or from paged pool at
//!   `DISPATCH_LEVEL`). The sample driver has none.
//! * **Compiler bugs**: rust-lang/rust#25860 (implied bounds on nested references) lets safe code
//!   stretch a reference to `'static`, including one returned by [`PoolBox::get`], which then
//!   outlives the token it borrowed and could be read inside a region. It takes a deliberately
//!   contrived function signature; the issue is open upstream and the crate cannot defend against
//!   it.
//! * **Callbacks the kernel calls directly, written by hand** (an `extern "system"` DPC routine, an
//!   ISR, a completion routine): they start from an `unsafe` `assume`. The crate's own kernel
//!   objects hand their routines the token instead (next section).
//!
//! For these, the `irql-backstop` feature (on by default) checks the IRQL at run time before a
//! paged block is dropped and freed (one read of CR8) and stops with bug check 0xC2 / 0x09, the
//! kernel's own code for a free at an invalid IRQL (the backstop is not Driver Verifier, so it does
//! not claim Verifier's 0xC4 / 0x11). It catches frees, not reads or writes through a stretched
//! reference. The static guarantees are rules 1-5; the backstop only ever fires in code that used
//! `unsafe`, global state or a compiler bug.
//!
//! # Routines the kernel calls
//!
//! **The driver's own entry points** get their token from this crate too, so that a driver has no
//! `assume` of its own: [`driver_entry!`] generates `DriverEntry` around a safe
//! `fn(&mut DRIVER_OBJECT, &UNICODE_STRING, &mut Passive) -> NTSTATUS`, and [`DriverRoutines`]
//! registers `DriverUnload` ([`DriverUnload`]) and dispatch routines behind trampolines: a
//! top-level device's create, close and device-control routines with a `Passive` token
//! ([`PassiveDispatch`]; why that IRQL holds is documented there), any other with an [`AnyIrql`]
//! ([`AnyIrqlDispatch`]). A helper that works at any IRQL takes `&mut AnyIrql`, which any token
//! lends ([`Passive::as_any_irql`]).
//!
//! A driver's raised-IRQL code mostly runs in routines the kernel calls. [`Dpc`], [`Timer`] and
//! [`WorkItem`] own their kernel object (`KDPC`, `KTIMER` + `KDPC`, `IO_WORKITEM`) in non-paged pool
//! and call the driver's routine with the token the kernel's contract proves, under the rules of the
//! regions: the routine is a plain `fn`, and it reaches only its context.
//!
//! | object | routine gets | context must be | queued from | dropping it |
//! |---|---|---|---|---|
//! | [`Dpc`] | `&mut Dispatch`, `&C` | `DispatchSafe + Sync` | any IRQL ([`DpcHandle`], `DispatchSafe` and `HighSafe`) | dequeues, `KeFlushQueuedDpcs`, frees |
//! | [`Timer`] | `&mut Dispatch`, `&C` | `DispatchSafe + Sync` | up to `DISPATCH_LEVEL` (a token) | cancels, dequeues, flushes, frees |
//! | [`WorkItem`] | `&mut Passive`, `&C` | `Send + Sync` (may own paged memory) | up to `DISPATCH_LEVEL` ([`WorkTrigger`], which cannot reach the context) | waits until neither queued nor running, `IoFreeWorkItem` |
//! | [`IoRequest`] (completion routine) | `&mut UpToDispatch`, `&C`, [`Completion`] | `DispatchSafe + Sync` | sent at up to `DISPATCH_LEVEL` | waits until no IRP is in flight |
//! | [`Interrupt::synchronize`] | `&mut High`, `C` | `HighSafe` | up to `DISPATCH_LEVEL` (a token, borrowed) | (a handle) |
//! | [`SystemThread`] | `&mut Passive`, `&C` | `Send + Sync` (may own paged memory) | started at `PASSIVE_LEVEL` | joins (`KeWaitForSingleObject` on the thread object) |
//!
//! None of the three is `DispatchSafe`, so none is dropped (or freed) at `DISPATCH_LEVEL`; their
//! drops wait for the kernel to be done with them. Microsoft documents `KeFlushQueuedDpcs` for
//! `PASSIVE_LEVEL` only: a `Dpc` or `Timer` dropped at `APC_LEVEL` (inside
//! [`Passive::raise_to_apc`] or a fast mutex) leaks its block instead of freeing it under a routine
//! that may still run.
//!
//! **Deferred free**: a [`Reclaimer`] parks any value ([`Reclaimer::park`] gives a [`Parked`], which
//! is `DispatchSafe` because nothing reaches the value through it without a token below
//! `DISPATCH_LEVEL`). Dropped at `DISPATCH_LEVEL` (in a DPC, a timer routine, a spin-locked region),
//! a `Parked` hands its value to the reclaimer's work item, which drops it at `PASSIVE_LEVEL`: paged
//! memory released "from a DPC", in safe code.
//!
//! # Kernels
//!
//! All calls into the kernel go through [`sys`], the crate `ntpool-sys` (re-exported here). On a
//! Windows target they are imports from `ntoskrnl.exe` (and, on x64, CR8 accesses for the IRQL), and
//! with the `videoport` feature from `videoprt.sys`; everywhere else, and on Windows with the
//! `emulated` feature, they go to the [emulated kernel][emulated]. `ntpool-sys` chooses, and this
//! crate follows its choice.
//!
//! On docs.rs, the Windows targets (`x86_64-pc-windows-msvc`, the default, and
//! `aarch64-pc-windows-msvc`) show the real kernel with every feature but `emulated`, which would
//! replace it; the Linux target (`x86_64-unknown-linux-gnu`) shows the emulated kernel, the module
//! `ntpool::emulated` that tests use.
//!
#![cfg_attr(ntpool_emulated, doc = "[emulated]: crate::emulated")]
#![cfg_attr(
    not(ntpool_emulated),
    doc = "[emulated]: https://docs.rs/ntpool/latest/x86_64-unknown-linux-gnu/ntpool/emulated/"
)]
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(ntpool_emulated)]
extern crate std;

// Lets the derive macros name `::ntpool` inside this crate's own tests.
extern crate self as ntpool;

mod alloc;
mod arc;
mod boxed;
mod dpc;
mod entry;
mod ex_pool;
mod fast_mutex;
mod interrupt;
mod io_request;
mod irql;
mod lookaside;
mod options;
mod paged;
mod pool;
mod quota;
mod reclaim;
mod release;
mod safe;
mod spin_lock;
mod system_thread;
mod tag;
mod timer;
mod wait;
mod work_item;
mod zeroable;

/// The kernel interface: every routine ntpool calls, with the names and types of the WDK, on the
/// real kernel or the emulated one (the crate `ntpool-sys`).
pub use ntpool_sys as sys;

#[cfg(ntpool_emulated)]
pub mod emulated;

#[cfg(feature = "videoport")]
#[cfg_attr(docsrs, doc(cfg(feature = "videoport")))]
pub mod videoport;

pub use alloc::{AllocError, GlobalPoolAllocator, PoolAllocator};
pub use arc::{NonPagedArc, PagedArc, PoolArc};
pub use boxed::{NonPagedBox, PagedBox, PoolBox, Release};
pub use dpc::{Dpc, DpcHandle};
#[doc(hidden)]
pub use entry::__driver_entry;
pub use entry::{AnyIrqlDispatch, Device, DriverRoutines, DriverUnload, Irp, PassiveDispatch, PassiveMajor};
pub use ex_pool::{ExFreePoolOwner, ExPoolBuffer};
pub use fast_mutex::FastMutex;
pub use interrupt::Interrupt;
pub use io_request::{Completion, IoRequest};
pub use irql::{
    Allows, AnyIrql, Apc, AtMostDispatch, BelowDispatch, CurrentIrql, Dispatch, High, HighIrql, Irql, Passive,
    UpToDispatch,
};
pub use lookaside::{LookasideBox, LookasideList, LookasideStatistics};
pub use options::{Alloc, Charge, NoQuota, NumaNode, Priority, Quota};
pub use paged::{Paged, PagedCollection, PagedVec};
#[cfg(feature = "hashbrown")]
#[cfg_attr(docsrs, doc(cfg(feature = "hashbrown")))]
pub use paged::{PagedHashMap, PagedHashSet};
pub use pool::{
    CacheAligned, NonPagedPool, NonPagedPoolExecute, NonPagedPoolType, PagedPool, PoolType, SystemPool, UnknownPool,
};
pub use reclaim::{Parked, Reclaimer};
pub use safe::{DispatchSafe, HighSafe};
pub use spin_lock::SpinLock;
pub use system_thread::SystemThread;
pub use tag::{InvalidTag, PoolTag, Tag, TagSource};
pub use timer::Timer;
pub use wait::delay;
pub use work_item::{WorkItem, WorkTrigger};
pub use zeroable::Zeroable;

/// allocator-api2 0.4, whose `Allocator` [`PoolAllocator`] implements: its `Vec` and `Box` in pool
/// memory without naming the version.
pub use allocator_api2;
/// allocator-api2 0.2 (feature `allocator-api2-02`), whose `Allocator` [`PoolAllocator`] implements
/// too: the version hashbrown's collections take.
#[cfg(feature = "allocator-api2-02")]
#[cfg_attr(docsrs, doc(cfg(feature = "allocator-api2-02")))]
pub use allocator_api2_02;
/// hashbrown (feature `hashbrown`), whose `HashMap` and `HashSet` take a [`PoolAllocator`]: the
/// version ntpool's impls are for, without a version to match.
#[cfg(feature = "hashbrown")]
#[cfg_attr(docsrs, doc(cfg(feature = "hashbrown")))]
pub use hashbrown;

/// Derives [`DispatchSafe`](trait@DispatchSafe) for a struct or enum whose every field is
/// `DispatchSafe`; a field that is not (a paged box, say) is a compile error.
pub use ntpool_macros::DispatchSafe;
/// Derives [`HighSafe`](trait@HighSafe) for a struct or enum whose every field is `HighSafe`.
pub use ntpool_macros::HighSafe;
/// Derives [`Zeroable`](trait@Zeroable) for a struct whose every field is `Zeroable`; enums are
/// refused (all-zero bytes may be no variant).
pub use ntpool_macros::Zeroable;

/// The crate README's examples, compiled and run as doc tests (the repository's README is the sample
/// driver's, which tests its own).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
