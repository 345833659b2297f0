//! The driver's and ntpool's hand-written kernel declarations, checked against a source nobody here
//! wrote: mingw-w64's DDK headers (`<ddk/wdm.h>`, `<ddk/ntddk.h>`, `<ddk/ntifs.h>`).
//!
//! The test generates a C file of `_Static_assert`s whose expected values come from the Rust side
//! (`size_of`, `offset_of!`, the constants' values), e.g.
//! `_Static_assert(offsetof(IRP, Tail.Overlay.CurrentStackLocation) == 184, "...")`, and has
//! `x86_64-w64-mingw32-gcc -fsyntax-only -std=c11` compile it: the C compiler evaluates the C side
//! for Windows x64. The host's layout of these fixed-width `repr(C)` types is the same as x64
//! Windows', so `size_of` and `offset_of!` on the host give the driver's layout.
//!
//! Rust field paths follow `wdk-sys` (bindgen's `__bindgen_anon_N` for anonymous unions and
//! structs) and differ from C's: the table below maps each Rust path to its C path. Where the Rust
//! side stands in for something C has no name for (an anonymous union, the tail of a union, padding
//! that newer WDKs named), the table gives the C expression for its offset and size.
//!
//! What mingw-w64's headers (version 10) lack or cannot express, and how the test deals with it:
//!
//! * `POOL_FLAGS`, `ExAllocatePool2` and every `POOL_FLAG_*`: the headers predate them (Windows 10
//!   version 2004). The flags are checked `#ifdef` they are defined, so as soon as the headers have
//!   them; until then the compiler lists them in a note. The typedef cannot be tested with `#ifdef`:
//!   its size is not checked.
//! * The bug-check codes `DRIVER_VERIFIER_DETECTED_VIOLATION` (0xC4),
//!   `PAGE_FAULT_IN_FREED_SPECIAL_POOL` (0xCC) and `PAGE_FAULT_BEYOND_END_OF_ALLOCATION` (0xCD):
//!   mingw's `bugcodes.h` skips them; checked `#ifdef` defined, like the flags.
//! * IRP's `AllocationProcessorNumber` and `Reserved`: newer WDKs name these two `USHORT`s in what
//!   mingw's `IRP` leaves as padding between `Size` and `MdlAddress`; checked as exactly filling that
//!   padding.
//! * The SIDs' identifier authority bytes: `SECURITY_NT_AUTHORITY` is a brace initializer, not a
//!   constant expression; not checked.
//!
//! Each Rust field is checked because the table lists it: a field added to a declaration without a
//! line in the table is noticed only through the offsets and sizes it changes.
//!
//! The wire structures of `ntpool-protocol` are the driver's own and have no C counterpart; its IOCTL
//! codes are checked against `CTL_CODE` and its status codes against `ntstatus.h`.

use core::mem::{align_of, offset_of, size_of};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

// The kernel declarations of ntpool and of the driver: all in ntpool-sys (the driver's `kernel`
// module re-exports its WDM part).
use ntpool_driver::device::{ADMINISTRATORS_SID, SYSTEM_SID};
use ntpool_protocol::status;
use ntpool_protocol::{
    FILE_READ_DATA, FILE_WRITE_DATA, IOCTL_NTPOOL_ALLOCATE, IOCTL_NTPOOL_FREE, IOCTL_NTPOOL_QUERY_ALLOCATIONS,
    IOCTL_NTPOOL_QUERY_STATISTICS, IOCTL_NTPOOL_READ, METHOD_BUFFERED,
};
use ntpool_sys::*;

/// The cross compiler that carries mingw-w64's DDK headers.
const COMPILER: &str = "x86_64-w64-mingw32-gcc";
/// How to get it.
const INSTALL: &str = "apt-get install gcc-mingw-w64-x86-64";

/// What a check compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Size,
    Alignment,
    Offset,
    Signedness,
    Constant,
}

/// One `_Static_assert((c) == rust, "label")`.
#[derive(Clone, Debug)]
struct Check {
    kind: Kind,
    /// Names what is checked (Rust path, and C path where it differs); the assertion's message.
    label: String,
    /// The C constant expression, evaluated by the compiler against the headers.
    c: String,
    /// What the Rust declarations say it is.
    rust: i128,
    /// A macro the headers may not define: the check is made only `#ifdef` it.
    guard: Option<&'static str>,
}

impl Check {
    fn new(kind: Kind, label: impl Into<String>, c: impl Into<String>, rust: i128) -> Check {
        Check { kind, label: label.into(), c: c.into(), rust, guard: None }
    }

    /// Made only where the headers define `name`.
    fn if_defined(self, name: &'static str) -> Check {
        Check { guard: Some(name), ..self }
    }

    /// The C line.
    fn assertion(&self) -> String {
        let (c, label) = (&self.c, &self.label);
        let expected = match self.rust {
            // A negative value must be negative in C too, not an unsigned value that wraps to it.
            v if v < 0 => format!("(({c}) < 0 && ({c}) == {v}LL)"),
            v if v <= i128::from(i64::MAX) => format!("({c}) == {v}LL"),
            v => format!("({c}) == {v}ULL"),
        };
        let assertion = format!("_Static_assert({expected}, \"{label}\");");
        match self.guard {
            None => assertion,
            Some(name) => format!(
                "#ifdef {name}\n{assertion}\n#else\n\
                 #pragma message(\"not checked: {name} is not declared by these headers\")\n#endif"
            ),
        }
    }
}

/// A field as Rust declares it: where it is in its outermost type and how big it is.
struct RustField {
    ty: &'static str,
    path: String,
    offset: usize,
    size: usize,
}

impl RustField {
    /// Checked against the C member at `c_path` (by default the Rust path) of the same type.
    fn at_c_path(self, c_path: Option<&str>) -> Vec<Check> {
        let (ty, c_path) = (self.ty, c_path.unwrap_or(&self.path).to_string());
        let label = if c_path == self.path {
            format!("{ty}.{}", self.path)
        } else {
            format!("{ty}.{} (C: {ty}.{c_path})", self.path)
        };
        self.checks(label, format!("offsetof({ty}, {c_path})"), format!("RTL_FIELD_SIZE({ty}, {c_path})"))
    }

    /// Checked against C expressions for its offset and size, for what C has no name for.
    fn against(self, c_offset: &str, c_size: &str) -> Vec<Check> {
        let label = format!("{}.{}", self.ty, self.path);
        self.checks(label, c_offset.to_string(), c_size.to_string())
    }

    /// Padding declared as a field: it must fill the C gap between `before` and `after` exactly.
    fn between(self, before: &str, after: &str) -> Vec<Check> {
        let ty = self.ty;
        let end_of_before = format!("RTL_SIZEOF_THROUGH_FIELD({ty}, {before})");
        let gap = format!("offsetof({ty}, {after}) - {end_of_before}");
        self.against(&end_of_before, &gap)
    }

    fn checks(self, label: String, c_offset: String, c_size: String) -> Vec<Check> {
        vec![
            Check::new(Kind::Offset, format!("{label} offset"), c_offset, self.offset as i128),
            Check::new(Kind::Size, format!("{label} size"), c_size, self.size as i128),
        ]
    }
}

/// The size of the field that an accessor (never called) reaches, from its type alone.
fn size_of_field<T, F>(_: impl Fn(&T) -> &F) -> usize {
    size_of::<F>()
}

/// The size of a union member, from the union's constructor with that member (never called):
/// reading a union member needs `unsafe`, constructing a union does not.
fn size_of_member<U, F>(_: impl Fn(F) -> U) -> usize {
    size_of::<F>()
}

/// `prefix.member`, or `member` for an empty prefix.
fn c_member(prefix: &str, member: &str) -> String {
    if prefix.is_empty() { member.to_string() } else { format!("{prefix}.{member}") }
}

/// `size!(T)`: `sizeof(T)` and `_Alignof(T)` are Rust's size and alignment of `T`.
/// `size!(T => "C expression")`: for a Rust type that stands for an unnamed C union or struct.
macro_rules! size {
    ($t:ident) => {
        vec![
            Check::new(Kind::Size, concat!(stringify!($t), " size"), concat!("sizeof(", stringify!($t), ")"), {
                size_of::<$t>() as i128
            }),
            Check::new(
                Kind::Alignment,
                concat!(stringify!($t), " alignment"),
                concat!("_Alignof(", stringify!($t), ")"),
                { align_of::<$t>() as i128 },
            ),
        ]
    };
    ($t:ident => $c:expr) => {
        vec![Check::new(Kind::Size, concat!(stringify!($t), " size"), $c, size_of::<$t>() as i128)]
    };
}

/// `signed!(T)`: an integer type is signed in C exactly when it is in Rust.
macro_rules! signed {
    ($t:ident) => {
        vec![Check::new(
            Kind::Signedness,
            concat!(stringify!($t), " is signed"),
            concat!("(", stringify!($t), ")-1 < 0"),
            i128::from(<$t>::MIN != 0),
        )]
    };
}

/// The [`RustField`] at a path of a type.
macro_rules! rust_field {
    ($t:ident, $($f:ident).+) => {
        RustField {
            ty: stringify!($t),
            path: [$(stringify!($f)),+].join("."),
            offset: offset_of!($t, $($f).+),
            size: size_of_field(|s: &$t| &s.$($f).+),
        }
    };
}

/// Offset and size of a field of `T`, against `offsetof(T, c_path)` and `RTL_FIELD_SIZE(T, c_path)`:
/// * `field!(T, a.b)`: the C path is the Rust path;
/// * `field!(T, a.__bindgen_anon_1.b => "a.b")`: the C path, where it differs;
/// * `field!(T, a._Pad0 => between "a.x", "a.y")`: padding declared as a field, which must fill the
///   C gap between the two members exactly;
/// * `field!(T, a => at "C offset", size "C size")`: anything else C has no name for.
macro_rules! field {
    ($t:ident, $($f:ident).+) => {
        rust_field!($t, $($f).+).at_c_path(None)
    };
    ($t:ident, $($f:ident).+ => $c:literal) => {
        rust_field!($t, $($f).+).at_c_path(Some($c))
    };
    ($t:ident, $($f:ident).+ => between $before:literal, $after:literal) => {
        rust_field!($t, $($f).+).between($before, $after)
    };
    ($t:ident, $($f:ident).+ => at $offset:expr, size $size:expr) => {
        rust_field!($t, $($f).+).against($offset, $size)
    };
}

/// `members!(T, path: U => "c_prefix" { a, b })`: the members of the union of Rust type `U` at `path`
/// in `T`, which C reaches at `c_prefix.a` (`a` for an empty prefix): offset and size of each.
macro_rules! members {
    ($t:ident, $($f:ident).+ : $u:ident => $c:literal { $($m:ident),+ $(,)? }) => {{
        // The path does lead to a `$u` (checked by the compiler, never run).
        let _: fn(&$t) -> &$u = |s| &s.$($f).+;
        let union = rust_field!($t, $($f).+);
        let mut checks = Vec::new();
        $(
            let member = RustField {
                ty: union.ty,
                path: format!("{}.{}", union.path, stringify!($m)),
                offset: union.offset + offset_of!($u, $m),
                size: size_of_member(|v| $u { $m: v }),
            };
            checks.extend(member.at_c_path(Some(&c_member($c, stringify!($m)))));
        )+
        checks
    }};
}

/// A constant's value. `constant!(NAME)` compares with the C macro or enumerator of the same name,
/// `constant!(NAME => "C expression")` with an expression, `constant!(NAME, if defined)` only where
/// the headers define `NAME`.
macro_rules! constant {
    ($name:ident) => {
        constant!($name => stringify!($name))
    };
    ($name:ident, if defined) => {
        vec![constant!($name).remove(0).if_defined(stringify!($name))]
    };
    ($name:path => $c:expr) => {
        vec![Check::new(Kind::Constant, stringify!($name), $c, $name as i128)]
    };
}

// C has no name for these anonymous unions and struct: their sizes as C expressions.
/// `IO_STATUS_BLOCK`'s `Status` / `Pointer` union.
const IO_STATUS_UNION: &str =
    "LARGER(RTL_FIELD_SIZE(IO_STATUS_BLOCK, Status), RTL_FIELD_SIZE(IO_STATUS_BLOCK, Pointer))";
/// `IRP.Tail.Overlay`'s `CurrentStackLocation` / `PacketType` union.
const STACK_LOCATION_UNION: &str =
    "LARGER(RTL_FIELD_SIZE(IRP, Tail.Overlay.CurrentStackLocation), RTL_FIELD_SIZE(IRP, Tail.Overlay.PacketType))";
/// `IRP.Tail.Overlay`'s struct of `ListEntry` and that union: up to `OriginalFileObject`.
const LIST_ENTRY_STRUCT: &str =
    "offsetof(IRP, Tail.Overlay.OriginalFileObject) - offsetof(IRP, Tail.Overlay.ListEntry)";

/// Everything checked: the table.
fn checks() -> Vec<Check> {
    let checks = [
        // --- Basic types (ntpool-sys/src/wdm.rs, ntpool-sys/src/lib.rs) ---
        size!(UCHAR),
        signed!(UCHAR),
        size!(CCHAR),
        signed!(CCHAR),
        size!(USHORT),
        signed!(USHORT),
        size!(CSHORT),
        signed!(CSHORT),
        size!(LONG),
        signed!(LONG),
        size!(ULONG),
        signed!(ULONG),
        size!(BOOLEAN),
        signed!(BOOLEAN),
        size!(ULONG_PTR),
        signed!(ULONG_PTR),
        size!(SIZE_T),
        signed!(SIZE_T),
        size!(KIRQL),
        signed!(KIRQL),
        size!(KSPIN_LOCK),
        signed!(KSPIN_LOCK),
        size!(NTSTATUS),
        signed!(NTSTATUS),
        size!(ACCESS_MASK),
        signed!(ACCESS_MASK),
        size!(SECURITY_INFORMATION),
        signed!(SECURITY_INFORMATION),
        size!(DEVICE_TYPE),
        signed!(DEVICE_TYPE),
        size!(KPROCESSOR_MODE),
        signed!(KPROCESSOR_MODE),
        // An enum in C: GCC makes it unsigned (no negative enumerator), MSVC `int`; size only.
        size!(POOL_TYPE),
        size!(PVOID),
        size!(HANDLE),
        size!(PDEVICE_OBJECT),
        size!(PIRP),
        size!(PDRIVER_UNLOAD),
        size!(PDRIVER_DISPATCH),
        // --- UNICODE_STRING, LIST_ENTRY ---
        size!(UNICODE_STRING),
        field!(UNICODE_STRING, Length),
        field!(UNICODE_STRING, MaximumLength),
        field!(UNICODE_STRING, Buffer),
        size!(LIST_ENTRY),
        field!(LIST_ENTRY, Flink),
        field!(LIST_ENTRY, Blink),
        // --- DRIVER_OBJECT ---
        size!(DRIVER_OBJECT),
        field!(DRIVER_OBJECT, Type),
        field!(DRIVER_OBJECT, Size),
        field!(DRIVER_OBJECT, DeviceObject),
        field!(DRIVER_OBJECT, Flags),
        field!(DRIVER_OBJECT, DriverStart),
        field!(DRIVER_OBJECT, DriverSize),
        field!(DRIVER_OBJECT, DriverSection),
        field!(DRIVER_OBJECT, DriverExtension),
        field!(DRIVER_OBJECT, DriverName),
        field!(DRIVER_OBJECT, HardwareDatabase),
        field!(DRIVER_OBJECT, FastIoDispatch),
        field!(DRIVER_OBJECT, DriverInit),
        field!(DRIVER_OBJECT, DriverStartIo),
        field!(DRIVER_OBJECT, DriverUnload),
        field!(DRIVER_OBJECT, MajorFunction),
        // --- KDEVICE_QUEUE (on x64 `Busy` shares an 8-byte union with `Hint`) ---
        size!(KDEVICE_QUEUE),
        field!(KDEVICE_QUEUE, Type),
        field!(KDEVICE_QUEUE, Size),
        field!(KDEVICE_QUEUE, DeviceListHead),
        field!(KDEVICE_QUEUE, Lock),
        field!(KDEVICE_QUEUE, Busy),
        // --- DEVICE_OBJECT (the opaque byte arrays must cover the C members exactly) ---
        size!(DEVICE_OBJECT),
        field!(DEVICE_OBJECT, Type),
        field!(DEVICE_OBJECT, Size),
        field!(DEVICE_OBJECT, ReferenceCount),
        field!(DEVICE_OBJECT, DriverObject),
        field!(DEVICE_OBJECT, NextDevice),
        field!(DEVICE_OBJECT, AttachedDevice),
        field!(DEVICE_OBJECT, CurrentIrp),
        field!(DEVICE_OBJECT, Timer),
        field!(DEVICE_OBJECT, Flags),
        field!(DEVICE_OBJECT, Characteristics),
        field!(DEVICE_OBJECT, Vpb),
        field!(DEVICE_OBJECT, DeviceExtension),
        field!(DEVICE_OBJECT, DeviceType),
        field!(DEVICE_OBJECT, StackSize),
        field!(DEVICE_OBJECT, Queue),
        field!(DEVICE_OBJECT, AlignmentRequirement),
        field!(DEVICE_OBJECT, DeviceQueue),
        field!(DEVICE_OBJECT, Dpc),
        field!(DEVICE_OBJECT, ActiveThreadCount),
        field!(DEVICE_OBJECT, SecurityDescriptor),
        field!(DEVICE_OBJECT, DeviceLock),
        field!(DEVICE_OBJECT, SectorSize),
        field!(DEVICE_OBJECT, Spare1),
        field!(DEVICE_OBJECT, DeviceObjectExtension),
        field!(DEVICE_OBJECT, Reserved),
        // --- IO_STATUS_BLOCK (its `Status` / `Pointer` union is anonymous in C) ---
        size!(IO_STATUS_BLOCK),
        size!(IO_STATUS_BLOCK__bindgen_ty_1 => IO_STATUS_UNION),
        field!(IO_STATUS_BLOCK, __bindgen_anon_1 => at "offsetof(IO_STATUS_BLOCK, Status)", size IO_STATUS_UNION),
        members!(IO_STATUS_BLOCK, __bindgen_anon_1: IO_STATUS_BLOCK__bindgen_ty_1 => "" { Status, Pointer }),
        field!(IO_STATUS_BLOCK, Information),
        // --- IRP ---
        size!(IRP),
        field!(IRP, Type),
        field!(IRP, Size),
        // mingw's IRP predates these two: they must fill the padding between `Size` and `MdlAddress`.
        field!(IRP, AllocationProcessorNumber => at "RTL_SIZEOF_THROUGH_FIELD(IRP, Size)", size "sizeof(USHORT)"),
        field!(IRP, Reserved => at "offsetof(IRP, MdlAddress) - sizeof(USHORT)", size "sizeof(USHORT)"),
        field!(IRP, MdlAddress),
        field!(IRP, Flags),
        size!(IRP__bindgen_ty_1 => "RTL_FIELD_SIZE(IRP, AssociatedIrp)"),
        field!(IRP, AssociatedIrp),
        members!(IRP, AssociatedIrp: IRP__bindgen_ty_1 => "AssociatedIrp" { MasterIrp, IrpCount, SystemBuffer }),
        field!(IRP, ThreadListEntry),
        field!(IRP, IoStatus),
        members!(IRP, IoStatus.__bindgen_anon_1: IO_STATUS_BLOCK__bindgen_ty_1 => "IoStatus" { Status, Pointer }),
        field!(IRP, IoStatus.Information),
        field!(IRP, RequestorMode),
        field!(IRP, PendingReturned),
        field!(IRP, StackCount),
        field!(IRP, CurrentLocation),
        field!(IRP, Cancel),
        field!(IRP, CancelIrql),
        field!(IRP, ApcEnvironment),
        field!(IRP, AllocationFlags),
        field!(IRP, UserIosb),
        field!(IRP, UserEvent),
        field!(IRP, Overlay),
        field!(IRP, CancelRoutine),
        field!(IRP, UserBuffer),
        // `Tail` is a union (`Overlay`, `Apc`, `CompletionKey`); Rust declares it as `Overlay` followed by
        // `_KapcTail`, the rest of the union: both Rust types have the size of the whole union.
        size!(IRP__bindgen_ty_3 => "RTL_FIELD_SIZE(IRP, Tail)"),
        field!(IRP, Tail),
        size!(IRP__bindgen_ty_3__bindgen_ty_1 => "RTL_FIELD_SIZE(IRP, Tail)"),
        field!(IRP, Tail.Overlay => at "offsetof(IRP, Tail.Overlay)", size "RTL_FIELD_SIZE(IRP, Tail)"),
        field!(IRP, Tail.Overlay.DriverContext),
        field!(IRP, Tail.Overlay.Thread),
        field!(IRP, Tail.Overlay.AuxiliaryBuffer),
        size!(IRP__bindgen_ty_3__bindgen_ty_1__bindgen_ty_2 => LIST_ENTRY_STRUCT),
        field!(IRP, Tail.Overlay.__bindgen_anon_2 =>
            at "offsetof(IRP, Tail.Overlay.ListEntry)", size LIST_ENTRY_STRUCT),
        field!(IRP, Tail.Overlay.__bindgen_anon_2.ListEntry => "Tail.Overlay.ListEntry"),
        size!(IRP__bindgen_ty_3__bindgen_ty_1__bindgen_ty_2__bindgen_ty_1 => STACK_LOCATION_UNION),
        field!(IRP, Tail.Overlay.__bindgen_anon_2.__bindgen_anon_1 =>
            at "offsetof(IRP, Tail.Overlay.CurrentStackLocation)", size STACK_LOCATION_UNION),
        members!(IRP, Tail.Overlay.__bindgen_anon_2.__bindgen_anon_1:
            IRP__bindgen_ty_3__bindgen_ty_1__bindgen_ty_2__bindgen_ty_1 =>
            "Tail.Overlay" { CurrentStackLocation, PacketType }),
        field!(IRP, Tail.Overlay.OriginalFileObject),
        field!(IRP, Tail.Overlay._KapcTail =>
            at "offsetof(IRP, Tail) + RTL_FIELD_SIZE(IRP, Tail.Overlay)",
            size "RTL_FIELD_SIZE(IRP, Tail) - RTL_FIELD_SIZE(IRP, Tail.Overlay)"),
        // --- IO_STACK_LOCATION (`Parameters` declared as its `DeviceIoControl` member) ---
        size!(IO_STACK_LOCATION),
        field!(IO_STACK_LOCATION, MajorFunction),
        field!(IO_STACK_LOCATION, MinorFunction),
        field!(IO_STACK_LOCATION, Flags),
        field!(IO_STACK_LOCATION, Control),
        size!(IO_STACK_LOCATION__bindgen_ty_1 => "RTL_FIELD_SIZE(IO_STACK_LOCATION, Parameters)"),
        field!(IO_STACK_LOCATION, Parameters),
        size!(IO_STACK_LOCATION__bindgen_ty_1__bindgen_ty_16 =>
            "RTL_FIELD_SIZE(IO_STACK_LOCATION, Parameters.DeviceIoControl)"),
        field!(IO_STACK_LOCATION, Parameters.DeviceIoControl),
        field!(IO_STACK_LOCATION, Parameters.DeviceIoControl.OutputBufferLength),
        field!(IO_STACK_LOCATION, Parameters.DeviceIoControl._Pad0 => between
            "Parameters.DeviceIoControl.OutputBufferLength", "Parameters.DeviceIoControl.InputBufferLength"),
        field!(IO_STACK_LOCATION, Parameters.DeviceIoControl.InputBufferLength),
        field!(IO_STACK_LOCATION, Parameters.DeviceIoControl._Pad1 => between
            "Parameters.DeviceIoControl.InputBufferLength", "Parameters.DeviceIoControl.IoControlCode"),
        field!(IO_STACK_LOCATION, Parameters.DeviceIoControl.IoControlCode),
        field!(IO_STACK_LOCATION, Parameters.DeviceIoControl._Pad2 => between
            "Parameters.DeviceIoControl.IoControlCode", "Parameters.DeviceIoControl.Type3InputBuffer"),
        field!(IO_STACK_LOCATION, Parameters.DeviceIoControl.Type3InputBuffer),
        field!(IO_STACK_LOCATION, DeviceObject),
        field!(IO_STACK_LOCATION, FileObject),
        field!(IO_STACK_LOCATION, CompletionRoutine),
        field!(IO_STACK_LOCATION, Context),
        // --- KEVENT, FAST_MUTEX (ntpool-sys/src/lib.rs) ---
        size!(KEVENT),
        field!(KEVENT, Header),
        size!(FAST_MUTEX),
        field!(FAST_MUTEX, Count),
        field!(FAST_MUTEX, Owner),
        field!(FAST_MUTEX, Contention),
        field!(FAST_MUTEX, Event),
        field!(FAST_MUTEX, OldIrql),
        // --- Constants of ntpool-sys/src/wdm.rs (the driver's) ---
        constant!(STATUS_SUCCESS),
        constant!(STATUS_UNSUCCESSFUL),
        constant!(STATUS_INSUFFICIENT_RESOURCES),
        constant!(IRP_MJ_CREATE),
        constant!(IRP_MJ_CLOSE),
        constant!(IRP_MJ_DEVICE_CONTROL),
        constant!(IRP_MJ_MAXIMUM_FUNCTION),
        constant!(IO_NO_INCREMENT),
        constant!(DO_BUFFERED_IO),
        constant!(DO_DEVICE_INITIALIZING),
        constant!(FILE_DEVICE_SECURE_OPEN),
        constant!(SECURITY_DESCRIPTOR_REVISION),
        constant!(ACL_REVISION),
        constant!(DACL_SECURITY_INFORMATION),
        constant!(OBJ_KERNEL_HANDLE),
        constant!(WRITE_DAC),
        constant!(KernelMode),
        constant!(FILE_ALL_ACCESS),
        constant!(SECURITY_DESCRIPTOR_SIZE => "sizeof(SECURITY_DESCRIPTOR)"),
        // --- Constants of ntpool-sys/src/lib.rs ---
        constant!(PASSIVE_LEVEL),
        constant!(APC_LEVEL),
        constant!(DISPATCH_LEVEL),
        constant!(PROFILE_LEVEL),
        constant!(CLOCK_LEVEL),
        constant!(IPI_LEVEL),
        constant!(POWER_LEVEL),
        constant!(HIGH_LEVEL),
        // mingw-w64 10 predates ExAllocatePool2 and its flags (see the top of the file).
        constant!(POOL_FLAG_USE_QUOTA, if defined),
        constant!(POOL_FLAG_UNINITIALIZED, if defined),
        constant!(POOL_FLAG_SESSION, if defined),
        constant!(POOL_FLAG_CACHE_ALIGNED, if defined),
        constant!(POOL_FLAG_RAISE_ON_FAILURE, if defined),
        constant!(POOL_FLAG_NON_PAGED, if defined),
        constant!(POOL_FLAG_NON_PAGED_EXECUTE, if defined),
        constant!(POOL_FLAG_PAGED, if defined),
        constant!(POOL_FLAG_SPECIAL_POOL, if defined),
        constant!(POOL_FLAG_REQUIRED_MASK, if defined),
        constant!(NonPagedPool),
        constant!(NonPagedPoolExecute),
        constant!(PagedPool),
        constant!(NonPagedPoolMustSucceed),
        constant!(NonPagedPoolCacheAligned),
        constant!(PagedPoolCacheAligned),
        constant!(NonPagedPoolNx),
        constant!(NonPagedPoolNxCacheAligned),
        constant!(PROTECTED_POOL),
        // mingw's bugcodes.h lacks 0xC4, 0xCC and 0xCD (see the top of the file).
        constant!(DRIVER_VERIFIER_DETECTED_VIOLATION, if defined),
        constant!(BAD_POOL_CALLER),
        constant!(DRIVER_IRQL_NOT_LESS_OR_EQUAL),
        constant!(IRQL_NOT_GREATER_OR_EQUAL),
        constant!(IRQL_NOT_LESS_OR_EQUAL),
        constant!(SPECIAL_POOL_DETECTED_MEMORY_CORRUPTION),
        constant!(PAGE_FAULT_BEYOND_END_OF_ALLOCATION, if defined),
        constant!(PAGE_FAULT_IN_FREED_SPECIAL_POOL, if defined),
        constant!(SynchronizationEvent),
        // --- The protocol (protocol/src/lib.rs) ---
        constant!(METHOD_BUFFERED),
        constant!(FILE_READ_DATA),
        constant!(FILE_WRITE_DATA),
        // `CTL_CODE` shifts an `int`: with a device type of 0x8000 or more the C value is negative; the
        // driver compares it as the `ULONG` `IoControlCode`.
        constant!(IOCTL_NTPOOL_ALLOCATE =>
            "(ULONG)CTL_CODE(0x8A50, 0x800, METHOD_BUFFERED, FILE_READ_DATA | FILE_WRITE_DATA)"),
        constant!(IOCTL_NTPOOL_FREE =>
            "(ULONG)CTL_CODE(0x8A50, 0x801, METHOD_BUFFERED, FILE_READ_DATA | FILE_WRITE_DATA)"),
        constant!(IOCTL_NTPOOL_READ => "(ULONG)CTL_CODE(0x8A50, 0x802, METHOD_BUFFERED, FILE_READ_DATA)"),
        constant!(IOCTL_NTPOOL_QUERY_ALLOCATIONS => "(ULONG)CTL_CODE(0x8A50, 0x803, METHOD_BUFFERED, FILE_READ_DATA)"),
        constant!(IOCTL_NTPOOL_QUERY_STATISTICS => "(ULONG)CTL_CODE(0x8A50, 0x804, METHOD_BUFFERED, FILE_READ_DATA)"),
        constant!(status::SUCCESS => "STATUS_SUCCESS"),
        constant!(status::INVALID_DEVICE_REQUEST => "STATUS_INVALID_DEVICE_REQUEST"),
        constant!(status::INFO_LENGTH_MISMATCH => "STATUS_INFO_LENGTH_MISMATCH"),
        constant!(status::BUFFER_TOO_SMALL => "STATUS_BUFFER_TOO_SMALL"),
        constant!(status::INVALID_PARAMETER_1 => "STATUS_INVALID_PARAMETER_1"),
        constant!(status::INVALID_PARAMETER_2 => "STATUS_INVALID_PARAMETER_2"),
        constant!(status::INVALID_PARAMETER_3 => "STATUS_INVALID_PARAMETER_3"),
        constant!(status::INVALID_PARAMETER_4 => "STATUS_INVALID_PARAMETER_4"),
        constant!(status::NOT_FOUND => "STATUS_NOT_FOUND"),
        constant!(status::QUOTA_EXCEEDED => "STATUS_QUOTA_EXCEEDED"),
        constant!(status::INSUFFICIENT_RESOURCES => "STATUS_INSUFFICIENT_RESOURCES"),
        lookaside_layouts(),
        deferred_layouts(),
        // --- The device's SIDs (src/device.rs), as bytes: revision, length, relative ids ---
        sid_layout(),
        sid("SYSTEM_SID", &SYSTEM_SID, &["SECURITY_LOCAL_SYSTEM_RID"]),
        sid("ADMINISTRATORS_SID", &ADMINISTRATORS_SID, &["SECURITY_BUILTIN_DOMAIN_RID", "DOMAIN_ALIAS_RID_ADMINS"]),
    ];
    checks.into_iter().flatten().collect()
}

/// The lookaside list and SLIST structures (`ntpool-sys/src/lookaside.rs`), the quota flag, and the
/// `GUID` of `IoGetDeviceInterfaces` (`ntpool-sys/src/wdm.rs`). The counters' and callbacks' unions are
/// anonymous in C: their first member names them.
fn lookaside_layouts() -> Vec<Check> {
    let checks = [
        constant!(POOL_QUOTA_FAIL_INSTEAD_OF_RAISE),
        size!(SLIST_ENTRY),
        size!(SLIST_HEADER),
        field!(SLIST_HEADER, Alignment),
        field!(SLIST_HEADER, Region),
        size!(GENERAL_LOOKASIDE_POOL),
        field!(GENERAL_LOOKASIDE_POOL, ListHead),
        field!(GENERAL_LOOKASIDE_POOL, Depth),
        field!(GENERAL_LOOKASIDE_POOL, MaximumDepth),
        field!(GENERAL_LOOKASIDE_POOL, TotalAllocates),
        field!(GENERAL_LOOKASIDE_POOL, AllocateMisses),
        field!(GENERAL_LOOKASIDE_POOL, TotalFrees),
        field!(GENERAL_LOOKASIDE_POOL, FreeMisses),
        field!(GENERAL_LOOKASIDE_POOL, Type),
        field!(GENERAL_LOOKASIDE_POOL, Tag),
        field!(GENERAL_LOOKASIDE_POOL, Size),
        field!(GENERAL_LOOKASIDE_POOL, Allocate => "AllocateEx"),
        field!(GENERAL_LOOKASIDE_POOL, Free => "FreeEx"),
        field!(GENERAL_LOOKASIDE_POOL, ListEntry),
        field!(GENERAL_LOOKASIDE_POOL, LastTotalAllocates),
        field!(GENERAL_LOOKASIDE_POOL, LastAllocateMisses),
        field!(GENERAL_LOOKASIDE_POOL, Future),
        size!(GENERAL_LOOKASIDE),
        size!(LOOKASIDE_LIST_EX),
        field!(LOOKASIDE_LIST_EX, L),
        size!(NPAGED_LOOKASIDE_LIST),
        field!(NPAGED_LOOKASIDE_LIST, L),
        size!(PAGED_LOOKASIDE_LIST),
        field!(PAGED_LOOKASIDE_LIST, L),
        size!(PALLOCATE_FUNCTION),
        size!(PFREE_FUNCTION),
        size!(PALLOCATE_FUNCTION_EX),
        size!(PFREE_FUNCTION_EX),
        size!(GUID),
        field!(GUID, Data1),
        field!(GUID, Data2),
        field!(GUID, Data3),
        field!(GUID, Data4),
    ];
    checks.into_iter().flatten().collect()
}

/// The objects whose routines the kernel calls back (`ntpool-sys/src/deferred.rs`): `KDPC`, `KTIMER`
/// with its `DISPATCHER_HEADER`, `LARGE_INTEGER`, and the constants their routines take.
///
/// mingw-w64's `KDPC` has the layout before Windows 8, with a `LIST_ENTRY DpcListEntry` where newer
/// WDKs have a `SINGLE_LIST_ENTRY DpcListEntry` and a `KAFFINITY ProcessorHistory`: the two are
/// checked as exactly filling mingw's `DpcListEntry`. `DISPATCHER_HEADER`'s first four bytes are a
/// union of anonymous structs in C; the Rust `Lock` stands for all of it.
fn deferred_layouts() -> Vec<Check> {
    let checks = [
        size!(LARGE_INTEGER),
        large_integer_members(),
        size!(SINGLE_LIST_ENTRY),
        field!(SINGLE_LIST_ENTRY, Next),
        size!(KAFFINITY),
        size!(KDPC),
        field!(KDPC, Type),
        field!(KDPC, Importance),
        field!(KDPC, Number),
        field!(KDPC, DpcListEntry => at "offsetof(KDPC, DpcListEntry)", size "sizeof(SINGLE_LIST_ENTRY)"),
        field!(KDPC, ProcessorHistory => at "offsetof(KDPC, DpcListEntry) + sizeof(SINGLE_LIST_ENTRY)", size "RTL_FIELD_SIZE(KDPC, DpcListEntry) - sizeof(SINGLE_LIST_ENTRY)"),
        field!(KDPC, DeferredRoutine),
        field!(KDPC, DeferredContext),
        field!(KDPC, SystemArgument1),
        field!(KDPC, SystemArgument2),
        field!(KDPC, DpcData),
        size!(PKDEFERRED_ROUTINE),
        size!(DISPATCHER_HEADER),
        field!(DISPATCHER_HEADER, Lock => at "0", size "offsetof(DISPATCHER_HEADER, SignalState)"),
        field!(DISPATCHER_HEADER, SignalState),
        field!(DISPATCHER_HEADER, WaitListHead),
        size!(KTIMER),
        field!(KTIMER, Header),
        field!(KTIMER, DueTime),
        field!(KTIMER, TimerListEntry),
        field!(KTIMER, Dpc),
        field!(KTIMER, Processor),
        field!(KTIMER, Period),
        size!(PIO_WORKITEM),
        size!(PIO_WORKITEM_ROUTINE),
        constant!(NotificationTimer),
        constant!(SynchronizationTimer),
        constant!(CriticalWorkQueue),
        constant!(DelayedWorkQueue),
        constant!(KERNEL_MODE => "KernelMode"),
        // System threads (`ntpool-sys/src/threads.rs`).
        size!(OBJECT_ATTRIBUTES),
        field!(OBJECT_ATTRIBUTES, Length),
        field!(OBJECT_ATTRIBUTES, RootDirectory),
        field!(OBJECT_ATTRIBUTES, ObjectName),
        field!(OBJECT_ATTRIBUTES, Attributes),
        field!(OBJECT_ATTRIBUTES, SecurityDescriptor),
        field!(OBJECT_ATTRIBUTES, SecurityQualityOfService),
        size!(PKSTART_ROUTINE),
        constant!(SYNCHRONIZE),
        constant!(Executive),
    ];
    checks.into_iter().flatten().collect()
}

/// `LARGE_INTEGER`'s members (a union: reading a member is `unsafe`, so `field!` does not apply):
/// `QuadPart` at 0, and the anonymous struct's `LowPart` and `HighPart`.
fn large_integer_members() -> Vec<Check> {
    let member = |label: &str, c: &str, rust: usize| Check::new(Kind::Offset, label, c, rust as i128);
    vec![
        member(
            "LARGE_INTEGER.QuadPart offset",
            "offsetof(LARGE_INTEGER, QuadPart)",
            offset_of!(LARGE_INTEGER, QuadPart),
        ),
        member(
            "LARGE_INTEGER.__bindgen_anon_1.LowPart offset (C: LowPart)",
            "offsetof(LARGE_INTEGER, LowPart)",
            offset_of!(LARGE_INTEGER, __bindgen_anon_1) + offset_of!(LARGE_INTEGER__bindgen_ty_1, LowPart),
        ),
        member(
            "LARGE_INTEGER.__bindgen_anon_1.HighPart offset (C: HighPart)",
            "offsetof(LARGE_INTEGER, HighPart)",
            offset_of!(LARGE_INTEGER, __bindgen_anon_1) + offset_of!(LARGE_INTEGER__bindgen_ty_1, HighPart),
        ),
        Check::new(Kind::Size, "LARGE_INTEGER__bindgen_ty_1 size (C: u)", "RTL_FIELD_SIZE(LARGE_INTEGER, u)", {
            size_of::<LARGE_INTEGER__bindgen_ty_1>() as i128
        }),
    ]
}

/// Where the test reads a SID's sub-authorities (relative ids): `offsetof(SID, SubAuthority)`.
const SID_SUB_AUTHORITIES: usize = 8;

/// The SIDs, kept as bytes: `SID.SubAuthority`'s offset, where their relative ids are read from.
fn sid_layout() -> Vec<Check> {
    let label = "SID.SubAuthority offset (where the SIDs' relative ids are read from)";
    vec![Check::new(Kind::Offset, label, "offsetof(SID, SubAuthority)", SID_SUB_AUTHORITIES as i128)]
}

/// A SID kept as bytes: its revision, its length for its sub-authority count, and its relative ids,
/// one for each of `rids`.
fn sid(name: &str, bytes: &[u8], rids: &[&str]) -> Vec<Check> {
    assert_eq!(usize::from(bytes[1]), rids.len(), "{name}: the table names one constant per sub-authority");
    let mut checks = vec![
        Check::new(Kind::Constant, format!("{name} revision"), "SID_REVISION", i128::from(bytes[0])),
        Check::new(
            Kind::Size,
            format!("{name} length"),
            format!("offsetof(SID, SubAuthority) + {} * sizeof(ULONG)", bytes[1]),
            bytes.len() as i128,
        ),
    ];
    for (i, rid) in rids.iter().enumerate() {
        let at = SID_SUB_AUTHORITIES + 4 * i;
        let value = bytes.get(at..at + 4).map_or(-1, |b| i128::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])));
        checks.push(Check::new(Kind::Constant, format!("{name} sub-authority {i}"), *rid, value));
    }
    checks
}

/// The C file: the headers, the helper macro, one `_Static_assert` a line.
fn c_file(checks: &[Check]) -> String {
    let mut c = String::from(
        "/* Generated by tests/declarations.rs: the Rust declarations' values, checked by the C compiler. */\n\
         #include <ddk/wdm.h>\n#include <ddk/ntddk.h>\n#include <ddk/ntifs.h>\n#include <stddef.h>\n\
         #define LARGER(a, b) ((a) > (b) ? (a) : (b))\n",
    );
    for check in checks {
        c.push_str(&check.assertion());
        c.push('\n');
    }
    c
}

/// Runs the compiler; a missing compiler fails the test with how to install it.
fn run_compiler(args: &[&str], file: &Path) -> Output {
    // The C locale: plain ASCII quotes in the diagnostics, which are parsed.
    match Command::new(COMPILER).env("LC_ALL", "C").args(args).arg(file).output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`{COMPILER}` was not found: these checks need mingw-w64's cross compiler and DDK headers. \
             Install them with `{INSTALL}` (Debian/Ubuntu, as root)."
        ),
        Err(e) => panic!("cannot run `{COMPILER}`: {e}"),
    }
}

/// A scratch file under cargo's directory for integration tests' temporary files.
fn scratch(name: &str, contents: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("declarations");
    std::fs::create_dir_all(&dir).expect("create the scratch directory");
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write a scratch file");
    path
}

/// The directory of `<ddk/wdm.h>`, which `ntddk.h` and `ntifs.h` include as `<wdm.h>`, `<ntddk.h>`.
/// `test` names the probe file: tests run in parallel.
fn ddk_dir(test: &str) -> String {
    let probe = scratch(&format!("{test}-find-ddk.c"), "#include <ddk/wdm.h>\n");
    let output = run_compiler(&["-M", "-MT", "probe"], &probe);
    let deps = String::from_utf8_lossy(&output.stdout);
    let header = deps.split_whitespace().find(|p| p.ends_with("ddk/wdm.h")).unwrap_or_else(|| {
        panic!(
            "`{COMPILER}` cannot find <ddk/wdm.h> (mingw-w64's DDK headers): install them with `{INSTALL}`.\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    header.trim_end_matches("/wdm.h").to_string()
}

/// One compilation of a C file of checks.
struct Compiled {
    path: PathBuf,
    success: bool,
    diagnostics: String,
}

impl Compiled {
    /// The labels of the assertions that failed.
    fn failed(&self) -> BTreeSet<String> {
        let marker = "static assertion failed: \"";
        self.diagnostics
            .lines()
            .filter_map(|line| line.split_once(marker))
            .map(|(_, rest)| rest.split('"').next().unwrap_or_default().to_string())
            .collect()
    }

    /// The diagnostics without the notes of the names the headers do not declare.
    fn errors(&self) -> String {
        let mut out = String::new();
        let mut in_note = false;
        for line in self.diagnostics.lines() {
            // A note is three lines: the message, the source line, the caret.
            in_note = line.contains("#pragma message") || (in_note && line.trim_start().starts_with('|'));
            if !in_note {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// The names the headers do not declare, from the `#pragma message` notes.
    fn not_declared(&self) -> BTreeSet<String> {
        let marker = "not checked: ";
        self.diagnostics
            .lines()
            .filter(|line| line.contains("#pragma message"))
            .filter_map(|line| line.split_once(marker))
            .map(|(_, rest)| rest.split(' ').next().unwrap_or_default().to_string())
            .collect()
    }
}

fn compile(name: &str, checks: &[Check], ddk: &str) -> Compiled {
    let path = scratch(name, &c_file(checks));
    let include = format!("-I{ddk}");
    let output = run_compiler(&["-fsyntax-only", "-std=c11", &include], &path);
    let diagnostics = String::from_utf8_lossy(&output.stderr).into_owned();
    Compiled { path, success: output.status.success(), diagnostics }
}

/// The values C gives the expressions of `checks`, for the report of a failure: each is made part of
/// an array type that the compiler prints in a warning (`char (*)[index][negative][magnitude]`).
fn c_values(checks: &[&Check], ddk: &str) -> Vec<Option<i128>> {
    let mut c = c_file(&[]);
    c.push_str("void ntpool_values(void) {\n");
    for (i, check) in checks.iter().enumerate() {
        let x = &check.c;
        let guarded = check.guard.map(|g| format!("#ifdef {g}\n"));
        c.push_str(guarded.as_deref().unwrap_or_default());
        writeln!(c, "  int v{i} = (char (*)[{}][({x}) < 0][({x}) < 0 ? -({x}) : ({x})])0;", i + 1).expect("write");
        c.push_str(if guarded.is_some() { "#endif\n" } else { "" });
    }
    c.push_str("}\n");
    let path = scratch("values.c", &c);
    let include = format!("-I{ddk}");
    let output = run_compiler(&["-fsyntax-only", "-std=c11", &include], &path);
    let mut values = vec![None; checks.len()];
    for line in String::from_utf8_lossy(&output.stderr).lines() {
        let Some((_, dims)) = line.split_once("char (*)[") else { continue };
        let dims: Vec<i128> = dims.split(']').map_while(|d| d.trim_start_matches('[').parse().ok()).collect();
        if let [index, negative, magnitude] = dims[..] {
            if let Some(slot) = usize::try_from(index - 1).ok().and_then(|i| values.get_mut(i)) {
                *slot = Some(if negative == 1 { -magnitude } else { magnitude });
            }
        }
    }
    values
}

/// What failed, with both sides' values, then the compiler's own diagnostics.
fn report(compiled: &Compiled, checks: &[Check], ddk: &str) -> String {
    let failed = compiled.failed();
    let failing: Vec<&Check> = checks.iter().filter(|c| failed.contains(&c.label)).collect();
    let values = c_values(&failing, ddk);
    let path = compiled.path.display();
    let mut report = if failing.is_empty() {
        format!("the generated C file {path} does not compile:\n")
    } else {
        format!(
            "{} of {} declaration checks disagree with mingw-w64's DDK headers ({path}):\n",
            failing.len(),
            checks.len()
        )
    };
    for (check, c) in failing.iter().zip(values) {
        let c = c.map_or_else(|| "?".to_string(), |v| v.to_string());
        writeln!(report, "  {}: Rust {}, C {c}   [{}]", check.label, check.rust, check.c).expect("write");
    }
    let errors = compiled.errors();
    write!(report, "\n{COMPILER} says (without its notes on what these headers lack):\n{errors}").expect("write");
    report
}

fn labels_are_unique(checks: &[Check]) {
    let mut seen = BTreeSet::new();
    for check in checks {
        assert!(seen.insert(&check.label), "two checks are labelled {:?}", check.label);
        assert!(!check.label.contains(['"', '\\']), "label {:?} cannot be a C string as it is", check.label);
    }
}

#[test]
fn kernel_declarations_match_mingw_w64_ddk_headers() {
    let checks = checks();
    labels_are_unique(&checks);
    let ddk = ddk_dir("declarations");
    let compiled = compile("declarations.c", &checks, &ddk);
    assert!(compiled.success, "{}", report(&compiled, &checks, &ddk));
    let count = |kind| checks.iter().filter(|c| c.kind == kind).count();
    let missing = compiled.not_declared();
    println!(
        "{} of {} assertions checked against {ddk}: {} sizes, {} alignments, {} offsets, {} signedness, \
         {} constants; not declared by these headers, so not checked: {missing:?}",
        checks.len() - missing.len(),
        checks.len(),
        count(Kind::Size),
        count(Kind::Alignment),
        count(Kind::Offset),
        count(Kind::Signedness),
        count(Kind::Constant) - missing.len(),
    );
}

#[test]
fn a_wrong_expectation_is_rejected_and_named() {
    let checks = checks();
    let ddk = ddk_dir("sabotaged");
    let wrong = "DRIVER_OBJECT.DriverUnload offset";
    let mut sabotaged = checks.clone();
    let check = sabotaged.iter_mut().find(|c| c.label == wrong).expect("the table checks DriverUnload's offset");
    check.rust += 8;
    let honest = compile("honest.c", &checks, &ddk);
    let broken = compile("sabotaged.c", &sabotaged, &ddk);
    assert!(!broken.success, "the compiler accepted a wrong offset:\n{}", broken.diagnostics);
    assert!(
        broken.diagnostics.contains(&format!("static assertion failed: \"{wrong}\"")),
        "the compiler did not name the wrong assertion:\n{}",
        broken.diagnostics
    );
    // Whatever else disagrees today, the wrong expectation is the only difference.
    let mut expected = honest.failed();
    expected.insert(wrong.to_string());
    assert_eq!(broken.failed(), expected, "{}", broken.diagnostics);
}
