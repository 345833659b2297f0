//! What an input is made of: the kernel's configuration ([`Setup`]), the operations ([`Op`]) and
//! the values their fields choose from, and the tables those values pick from. The byte format is
//! in the crate's documentation; `decode` reads it and `encode` writes it.

use ntpool_protocol::{
    IOCTL_NTPOOL_ALLOCATE, IOCTL_NTPOOL_FREE, IOCTL_NTPOOL_QUERY_ALLOCATIONS, IOCTL_NTPOOL_QUERY_STATISTICS,
    IOCTL_NTPOOL_READ, MAX_SIZE, POOL_CHARGE_QUOTA, POOL_NON_PAGED, POOL_PAGED,
};

/// Handles open at once, at most: enough for the driver-wide limits to be reached through the
/// per-handle ones.
pub const MAX_HANDLES: usize = 6;

/// The largest output buffer a request gets (a whole block, and a page more).
pub const MAX_OUTPUT: u32 = MAX_SIZE + 4096;

/// The driver's five IOCTL codes, as [`Code::Pick`] selects them.
pub const CODES: [u32; 5] = [
    IOCTL_NTPOOL_ALLOCATE,
    IOCTL_NTPOOL_FREE,
    IOCTL_NTPOOL_READ,
    IOCTL_NTPOOL_QUERY_ALLOCATIONS,
    IOCTL_NTPOOL_QUERY_STATISTICS,
];

/// Pools [`Choice::Pick`] selects for an allocation: the two valid ones, each with and without
/// quota, and invalid ones.
pub const POOLS: [u32; 8] = [
    POOL_NON_PAGED,
    POOL_PAGED,
    POOL_NON_PAGED | POOL_CHARGE_QUOTA,
    POOL_PAGED | POOL_CHARGE_QUOTA,
    2,
    2 | POOL_CHARGE_QUOTA,
    0x200,
    u32::MAX,
];

/// Tags [`Choice::Pick`] selects for an allocation: valid ones (one of them with spaces), then no tag,
/// a default tag, one without a letter or digit, and one with a character that is not printable.
pub const TAGS: [[u8; 4]; 8] = [*b"Fz01", *b"Fz02", *b"Fz03", *b"a   ", [0; 4], *b"Wdm ", *b" !~-", *b"Fz\x7F1"];

/// What [`Value::Near`] adds to its reference.
pub const DELTAS: [i32; 8] = [0, -1, 1, -2, 2, -8, 8, 4096];

/// Processes the handles belong to (alternately, in the order they were opened).
pub const PROCESSES: [u64; 2] = [0x1000, 0x1004];

/// How the emulated kernel is configured for one input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setup {
    /// Driver Verifier's checks, nothing else.
    Verifier,
    /// The `n`th allocation request fails (1 to 256).
    FailAllocation(u16),
    /// Requests fail at random: seed, percent (0 to 31).
    LowResources(u8, u8),
    /// The kernel does not export `ExAllocatePool2`.
    NoExAllocatePool2,
    /// Every process's pool quota is this many KiB (1 to 256).
    ProcessQuota(u16),
}

/// One of a small table of values, or a raw one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// Entry `i % len` of the table.
    Pick(u8),
    /// This value.
    Raw(u32),
}

/// A number (size, offset, length), resolved against references that depend on the request (see
/// [`Op`]'s variants: a block's size, what a limit leaves, [`MAX_SIZE`]...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value {
    /// 0 to 63.
    Small(u8),
    /// Reference `r % 4`, plus [`DELTAS`]`[d % 8]` (wrapping).
    Near(u8, u8),
    /// `1 << (k % 32)`, minus one if asked.
    Power(u8, bool),
    /// This value.
    Raw(u32),
}

/// An output buffer's length, relative to what the reply needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Room for the reply and `n % 64` bytes more.
    Fit(u8),
    /// `1 + n % 64` bytes too short (0 at least).
    Short(u8),
    /// `n % 63` bytes.
    Small(u8),
    /// This many bytes (at most [`MAX_OUTPUT`]).
    Raw(u32),
}

/// A block id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Id {
    /// The `n % count`th most recent id the driver handed out in this input (0: the last one).
    Recent(u8),
    /// 0, the id the driver will hand out next, `u64::MAX`, or the last id with bit 32 set (`k % 4`).
    Special(u8),
    /// This id.
    Raw(u64),
}

/// An IOCTL code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// [`CODES`]`[i % 5]`.
    Pick(u8),
    /// This code.
    Raw(u32),
}

/// One operation of an input; `handle` selects an open handle (`% open handles`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Open a handle to `\\.\NtPool`.
    Open,
    /// Close a handle.
    Close(u8),
    /// Close every handle, unload the driver, check nothing leaked, and load it again.
    Reload,
    /// Allocate: pool ([`POOLS`]), tag ([`TAGS`]), size (references: [`MAX_SIZE`], what the handle's
    /// limit leaves in the pool, what the driver's leaves, the last size allocated).
    Allocate { handle: u8, pool: Choice, tag: Choice, size: Value, output: Output },
    /// Free.
    Free { handle: u8, id: Id },
    /// Read (offset references: the block's size, half of it, [`MAX_SIZE`], `u32::MAX`; length
    /// references: what is left after the offset, the block's size, [`MAX_SIZE`], `2^32 - offset`).
    Read { handle: u8, id: Id, offset: Value, length: Value, output: Output },
    /// List the handle's blocks.
    List { handle: u8, output: Output },
    /// Query the counters.
    Statistics { handle: u8, output: Output },
    /// Any code with any input (the output relative to nothing: `Fit(n)` is `n` bytes).
    Raw { handle: u8, code: Code, output: Output, input: Vec<u8> },
}
