//! The hostile-input table: every kind of bad input the driver can get from user mode, with the
//! NTSTATUS it must answer. [`CASES`] is the one table: [`run_table`] sends each row to a driver
//! (the real `.sys` under Wine from `ntpool-client.exe`, or the driver's code on the emulated kernel
//! in the host tests), and [`render_markdown`] prints it for `docs/hostile-inputs.md`, which a test
//! keeps identical to it.
//!
//! Each row runs on its own: it sets up what it needs (a block, a freed block, a block of another
//! handle, a handle or the whole driver filled to a limit), sends the bad request through the first
//! handle, and undoes its set-up. It passes when the status is the row's, `Information` is the row's
//! (0 for a refusal), no byte of the output buffer past `Information` changed, the blocks of the
//! set-up are still there (a refused request destroyed nothing), and the driver's outstanding
//! counters are back where they were.
//!
//! This file holds the table and its markdown; the runner that sends the rows is `hostile/runner.rs`.

use core::fmt::{self, Write};

use ntpool_protocol::{
    AllocateReply, AllocateRequest, FILE_DEVICE_NTPOOL, FILE_READ_DATA, IOCTL_NTPOOL_ALLOCATE, IOCTL_NTPOOL_FREE,
    IOCTL_NTPOOL_QUERY_ALLOCATIONS, IOCTL_NTPOOL_QUERY_STATISTICS, IOCTL_NTPOOL_READ, MAX_ALLOCATIONS,
    MAX_HANDLE_ALLOCATIONS, MAX_HANDLE_NON_PAGED_BYTES, MAX_HANDLE_PAGED_BYTES, MAX_NON_PAGED_BYTES, MAX_PAGED_BYTES,
    MAX_SIZE, METHOD_BUFFERED, POOL_CHARGE_QUOTA, POOL_NON_PAGED, POOL_PAGED, Statistics, ctl_code, status,
};

use crate::display::tag;

mod runner;

pub use runner::{MAX_HANDLES, run_table};

/// Several open handles to the driver, by index: what [`run_table`] needs to reach the driver-wide
/// limits, which one handle cannot.
pub trait Devices {
    /// Opens one more handle to the device: its index, or `None` when it cannot be opened.
    fn open(&mut self) -> Option<usize>;
    /// Sends a request through handle `handle`, as [`Device::control`](crate::Device::control) does.
    fn control(&mut self, handle: usize, code: u32, input: &[u8], output: &mut [u8]) -> (i32, usize);
    /// Closes handle `handle`.
    fn close(&mut self, handle: usize);
}

/// What a row sets up before it sends its request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setup {
    /// Nothing.
    None,
    /// A 100-byte paged block of the first handle (the request's id is its id).
    Block,
    /// A block of the first handle, freed again (the request's id is its id).
    Freed,
    /// A 100-byte paged block of a second handle (the request's id is its id).
    OtherHandle,
    /// The first handle at one of its limits, or the whole driver at one of its limits (the request
    /// then goes through a handle that has nothing of its own).
    Full(Limit),
}

/// A limit of the driver's, reached by allocating blocks of `block` bytes in `pool`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// [`MAX_HANDLE_ALLOCATIONS`] blocks through one handle.
    HandleCount,
    /// [`MAX_HANDLE_NON_PAGED_BYTES`] through one handle.
    HandleNonPaged,
    /// [`MAX_HANDLE_PAGED_BYTES`] through one handle.
    HandlePaged,
    /// [`MAX_ALLOCATIONS`] blocks, over all handles.
    DriverCount,
    /// [`MAX_NON_PAGED_BYTES`], over all handles.
    DriverNonPaged,
    /// [`MAX_PAGED_BYTES`], over all handles.
    DriverPaged,
}

impl Limit {
    /// The blocks that fill one handle: (pool, size, how many).
    const fn per_handle(self) -> (u32, u32, u32) {
        match self {
            Limit::HandleCount | Limit::DriverCount => (POOL_NON_PAGED, 16, MAX_HANDLE_ALLOCATIONS),
            Limit::HandleNonPaged | Limit::DriverNonPaged => {
                (POOL_NON_PAGED, MAX_SIZE, (MAX_HANDLE_NON_PAGED_BYTES / MAX_SIZE as u64) as u32)
            }
            Limit::HandlePaged | Limit::DriverPaged => {
                (POOL_PAGED, MAX_SIZE, (MAX_HANDLE_PAGED_BYTES / MAX_SIZE as u64) as u32)
            }
        }
    }

    /// How many handles are filled: one, or as many as it takes to fill the driver.
    const fn handles(self) -> usize {
        match self {
            Limit::HandleCount | Limit::HandleNonPaged | Limit::HandlePaged => 1,
            Limit::DriverCount => (MAX_ALLOCATIONS / MAX_HANDLE_ALLOCATIONS) as usize,
            Limit::DriverNonPaged => (MAX_NON_PAGED_BYTES / MAX_HANDLE_NON_PAGED_BYTES) as usize,
            Limit::DriverPaged => (MAX_PAGED_BYTES / MAX_HANDLE_PAGED_BYTES) as usize,
        }
    }

    /// Whether the limit is the driver's (the request goes through a fresh handle).
    const fn driver_wide(self) -> bool {
        self.handles() > 1
    }
}

/// The request's input buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// No input buffer.
    Empty,
    /// `len` zero bytes.
    Zeros(usize),
    /// An `ALLOCATE` request.
    Allocate(AllocateRequest),
    /// A good `ALLOCATE` request (paged, 32 bytes, tag `Hst1`) cut or padded with zeros to `len` bytes.
    AllocateLen(usize),
    /// A `FREE` of the set-up's block.
    Free,
    /// A `FREE` of `id`.
    FreeId(u64),
    /// A `FREE` of the set-up's block, cut or padded to `len` bytes.
    FreeLen(usize),
    /// A `READ` of the set-up's block.
    Read {
        /// Where.
        offset: u32,
        /// How many bytes.
        length: u32,
    },
    /// A `READ` of `id`, 1 byte at 0.
    ReadId(u64),
    /// A `READ` of the set-up's block (offset 0, length 1), cut or padded to `len` bytes.
    ReadLen(usize),
}

/// One row of the table.
#[derive(Clone, Copy, Debug)]
pub struct Case {
    /// The request, as the table names it.
    pub request: &'static str,
    /// What is wrong with it.
    pub bad: &'static str,
    /// What the row sets up first.
    pub setup: Setup,
    /// The IOCTL code sent.
    pub code: u32,
    /// The input buffer.
    pub input: Input,
    /// The output buffer's length.
    pub output: usize,
    /// The status the driver must answer.
    pub status: i32,
    /// The `Information` it must return (0 for a refusal).
    pub information: usize,
}

/// The good allocation the rows vary.
const GOOD: AllocateRequest = AllocateRequest { pool: POOL_PAGED, tag: tag(*b"Hst1"), size: 32, reserved: 0 };
const REPLY: usize = core::mem::size_of::<AllocateReply>();
const STATISTICS: usize = core::mem::size_of::<Statistics>();
/// The largest input and output buffers of the table.
const HUGE: usize = 4096;
/// An identifier no driver hands out while the table runs.
const NEVER: u64 = u64::MAX;
/// `METHOD_IN_DIRECT`, `METHOD_OUT_DIRECT`, `METHOD_NEITHER`.
const METHOD_IN_DIRECT: u32 = 1;
const METHOD_OUT_DIRECT: u32 = 2;
const METHOD_NEITHER: u32 = 3;
/// `FILE_DEVICE_UNKNOWN`.
const FILE_DEVICE_UNKNOWN: u32 = 0x22;
/// The access bits of an IOCTL code.
const ACCESS_BITS: u32 = 3 << 14;

const fn case(request: &'static str, bad: &'static str, code: u32, input: Input, output: usize, status: i32) -> Case {
    Case { request, bad, setup: Setup::None, code, input, output, status, information: 0 }
}

const fn allocate(bad: &'static str, request: AllocateRequest, status: i32) -> Case {
    case("ALLOCATE", bad, IOCTL_NTPOOL_ALLOCATE, Input::Allocate(request), REPLY, status)
}

const fn bad_tag(bad: &'static str, tag: u32) -> Case {
    allocate(bad, AllocateRequest { tag, ..GOOD }, status::INVALID_PARAMETER_2)
}

const fn with_setup(case: Case, setup: Setup) -> Case {
    Case { setup, ..case }
}

const fn limit(bad: &'static str, limit: Limit) -> Case {
    let (pool, size, _) = limit.per_handle();
    // One more block like those that filled it (one byte when the limit is in bytes).
    let size = if size == MAX_SIZE { 1 } else { size };
    let request = AllocateRequest { pool, tag: tag(*b"Hst2"), size, reserved: 0 };
    with_setup(allocate(bad, request, status::QUOTA_EXCEEDED), Setup::Full(limit))
}

const fn read(bad: &'static str, offset: u32, length: u32, output: usize, status: i32) -> Case {
    with_setup(case("READ", bad, IOCTL_NTPOOL_READ, Input::Read { offset, length }, output, status), Setup::Block)
}

const fn unknown(bad: &'static str, code: u32, input: Input, output: usize) -> Case {
    case("other code", bad, code, input, output, status::INVALID_DEVICE_REQUEST)
}

/// Every bad input, with the status it gets. The order of the rows is the table's.
pub const CASES: &[Case] = &[
    case("ALLOCATE", "no input buffer", IOCTL_NTPOOL_ALLOCATE, Input::Empty, REPLY, status::INFO_LENGTH_MISMATCH),
    case(
        "ALLOCATE",
        "input 15 bytes (short by one)",
        IOCTL_NTPOOL_ALLOCATE,
        Input::AllocateLen(15),
        REPLY,
        status::INFO_LENGTH_MISMATCH,
    ),
    case(
        "ALLOCATE",
        "input 17 bytes (one too many)",
        IOCTL_NTPOOL_ALLOCATE,
        Input::AllocateLen(17),
        REPLY,
        status::INFO_LENGTH_MISMATCH,
    ),
    case(
        "ALLOCATE",
        "input 4096 bytes (oversized)",
        IOCTL_NTPOOL_ALLOCATE,
        Input::AllocateLen(HUGE),
        REPLY,
        status::INFO_LENGTH_MISMATCH,
    ),
    case("ALLOCATE", "no output buffer", IOCTL_NTPOOL_ALLOCATE, Input::Allocate(GOOD), 0, status::BUFFER_TOO_SMALL),
    case(
        "ALLOCATE",
        "output 7 bytes (short by one)",
        IOCTL_NTPOOL_ALLOCATE,
        Input::Allocate(GOOD),
        REPLY - 1,
        status::BUFFER_TOO_SMALL,
    ),
    Case {
        information: REPLY,
        ..case(
            "ALLOCATE",
            "output 4096 bytes (oversized): only the 8-byte reply comes back",
            IOCTL_NTPOOL_ALLOCATE,
            Input::Allocate(GOOD),
            HUGE,
            status::SUCCESS,
        )
    },
    allocate("reserved field 1", AllocateRequest { reserved: 1, ..GOOD }, status::INVALID_PARAMETER_4),
    allocate(
        "reserved field 0x80000000",
        AllocateRequest { reserved: 0x8000_0000, ..GOOD },
        status::INVALID_PARAMETER_4,
    ),
    allocate("pool 2 (unknown)", AllocateRequest { pool: 2, ..GOOD }, status::INVALID_PARAMETER_1),
    allocate("pool 0xFFFFFFFF", AllocateRequest { pool: u32::MAX, ..GOOD }, status::INVALID_PARAMETER_1),
    allocate(
        "pool 2 with the quota flag (0x102)",
        AllocateRequest { pool: 2 | POOL_CHARGE_QUOTA, ..GOOD },
        status::INVALID_PARAMETER_1,
    ),
    allocate(
        "non-paged with the quota flag and an unknown flag (0x300)",
        AllocateRequest { pool: 0x200 | POOL_CHARGE_QUOTA, ..GOOD },
        status::INVALID_PARAMETER_1,
    ),
    bad_tag("tag 0", 0),
    bad_tag("tag with a NUL byte (`Ab\\0c`)", tag(*b"Ab\0c")),
    bad_tag("tag with a control byte (`Ab\\x01c`)", tag(*b"Ab\x01c")),
    bad_tag("tag with DEL (`Ab\\x7Fc`)", tag(*b"Ab\x7fc")),
    bad_tag("tag with a byte above 0x7F (`Ab\\xE9c`)", tag(*b"Ab\xe9c")),
    bad_tag("tag with the protected bit 0x80000000 (`Hst1` | 0x80000000)", tag(*b"Hst1") | 0x8000_0000),
    bad_tag("tag without a letter or digit (`----`)", tag(*b"----")),
    bad_tag("tag `Wdm ` (the WDK's default)", tag(*b"Wdm ")),
    bad_tag("tag `Ddk ` (the WDK's default)", tag(*b"Ddk ")),
    allocate("size 0", AllocateRequest { size: 0, ..GOOD }, status::INVALID_PARAMETER_3),
    allocate("size 65537 (MAX_SIZE + 1)", AllocateRequest { size: MAX_SIZE + 1, ..GOOD }, status::INVALID_PARAMETER_3),
    allocate("size 0xFFFFFFFF", AllocateRequest { size: u32::MAX, ..GOOD }, status::INVALID_PARAMETER_3),
    allocate(
        "every field bad: reserved is checked first",
        AllocateRequest { pool: 2, tag: 0, size: 0, reserved: 1 },
        status::INVALID_PARAMETER_4,
    ),
    limit("17th block through one handle (MAX_HANDLE_ALLOCATIONS = 16)", Limit::HandleCount),
    limit(
        "1 byte past 64 KiB of non-paged pool through one handle (MAX_HANDLE_NON_PAGED_BYTES)",
        Limit::HandleNonPaged,
    ),
    limit("1 byte past 256 KiB of paged pool through one handle (MAX_HANDLE_PAGED_BYTES)", Limit::HandlePaged),
    limit("65th block, through a fresh handle (MAX_ALLOCATIONS = 64)", Limit::DriverCount),
    limit("1 byte past 256 KiB of non-paged pool, through a fresh handle (MAX_NON_PAGED_BYTES)", Limit::DriverNonPaged),
    limit("1 byte past 1 MiB of paged pool, through a fresh handle (MAX_PAGED_BYTES)", Limit::DriverPaged),
    case("FREE", "no input buffer", IOCTL_NTPOOL_FREE, Input::Empty, 0, status::INFO_LENGTH_MISMATCH),
    with_setup(
        case(
            "FREE",
            "input 7 bytes (short by one)",
            IOCTL_NTPOOL_FREE,
            Input::FreeLen(7),
            0,
            status::INFO_LENGTH_MISMATCH,
        ),
        Setup::Block,
    ),
    with_setup(
        case(
            "FREE",
            "input 9 bytes (one too many)",
            IOCTL_NTPOOL_FREE,
            Input::FreeLen(9),
            0,
            status::INFO_LENGTH_MISMATCH,
        ),
        Setup::Block,
    ),
    case("FREE", "id 0", IOCTL_NTPOOL_FREE, Input::FreeId(0), 0, status::NOT_FOUND),
    case("FREE", "an id never allocated", IOCTL_NTPOOL_FREE, Input::FreeId(NEVER), 0, status::NOT_FOUND),
    with_setup(
        case("FREE", "an id freed before (double free)", IOCTL_NTPOOL_FREE, Input::Free, 0, status::NOT_FOUND),
        Setup::Freed,
    ),
    with_setup(
        case("FREE", "the id of another handle's block", IOCTL_NTPOOL_FREE, Input::Free, 0, status::NOT_FOUND),
        Setup::OtherHandle,
    ),
    with_setup(
        case(
            "READ",
            "input 15 bytes (short by one)",
            IOCTL_NTPOOL_READ,
            Input::ReadLen(15),
            1,
            status::INFO_LENGTH_MISMATCH,
        ),
        Setup::Block,
    ),
    with_setup(
        case(
            "READ",
            "input 17 bytes (one too many)",
            IOCTL_NTPOOL_READ,
            Input::ReadLen(17),
            1,
            status::INFO_LENGTH_MISMATCH,
        ),
        Setup::Block,
    ),
    case("READ", "an id never allocated", IOCTL_NTPOOL_READ, Input::ReadId(NEVER), 1, status::NOT_FOUND),
    with_setup(
        case(
            "READ",
            "an id freed before (use after free)",
            IOCTL_NTPOOL_READ,
            Input::Read { offset: 0, length: 1 },
            1,
            status::NOT_FOUND,
        ),
        Setup::Freed,
    ),
    with_setup(
        case(
            "READ",
            "the id of another handle's block",
            IOCTL_NTPOOL_READ,
            Input::Read { offset: 0, length: 1 },
            1,
            status::NOT_FOUND,
        ),
        Setup::OtherHandle,
    ),
    read("offset 101 in a 100-byte block", 101, 0, 1, status::INVALID_PARAMETER_2),
    read("offset 0xFFFFFFFF", u32::MAX, 1, 1, status::INVALID_PARAMETER_2),
    read(
        "51 bytes from offset 50 of a 100-byte block (reading beyond the block)",
        50,
        51,
        64,
        status::INVALID_PARAMETER_3,
    ),
    read(
        "offset 1, length 0xFFFFFFFF (offset + length overflows 32 bits)",
        1,
        u32::MAX,
        64,
        status::INVALID_PARAMETER_3,
    ),
    read("100 bytes into a 99-byte output buffer", 0, 100, 99, status::BUFFER_TOO_SMALL),
    read("1 byte with no output buffer", 0, 1, 0, status::BUFFER_TOO_SMALL),
    case(
        "QUERY_ALLOCATIONS",
        "output 7 bytes (no room for the header)",
        IOCTL_NTPOOL_QUERY_ALLOCATIONS,
        Input::Empty,
        7,
        status::BUFFER_TOO_SMALL,
    ),
    case(
        "QUERY_ALLOCATIONS",
        "no output buffer",
        IOCTL_NTPOOL_QUERY_ALLOCATIONS,
        Input::Empty,
        0,
        status::BUFFER_TOO_SMALL,
    ),
    case(
        "QUERY_STATISTICS",
        "output 63 bytes (short by one)",
        IOCTL_NTPOOL_QUERY_STATISTICS,
        Input::Empty,
        STATISTICS - 1,
        status::BUFFER_TOO_SMALL,
    ),
    case(
        "QUERY_STATISTICS",
        "no output buffer",
        IOCTL_NTPOOL_QUERY_STATISTICS,
        Input::Empty,
        0,
        status::BUFFER_TOO_SMALL,
    ),
    Case {
        information: STATISTICS,
        ..case(
            "QUERY_STATISTICS",
            "output 4096 bytes (oversized): only the 64-byte reply comes back",
            IOCTL_NTPOOL_QUERY_STATISTICS,
            Input::Zeros(HUGE),
            HUGE,
            status::SUCCESS,
        )
    },
    unknown("code 0", 0, Input::Empty, 0),
    unknown("code 0 with an ALLOCATE request", 0, Input::Allocate(GOOD), REPLY),
    unknown(
        "function 0x806 (after the last one)",
        ctl_code(FILE_DEVICE_NTPOOL, 0x806, METHOD_BUFFERED, FILE_READ_DATA),
        Input::Allocate(GOOD),
        REPLY,
    ),
    unknown(
        "function 0xFFF",
        ctl_code(FILE_DEVICE_NTPOOL, 0xFFF, METHOD_BUFFERED, FILE_READ_DATA),
        Input::Allocate(GOOD),
        REPLY,
    ),
    unknown(
        "ALLOCATE's function with device type FILE_DEVICE_UNKNOWN",
        (IOCTL_NTPOOL_ALLOCATE & 0xFFFF) | (FILE_DEVICE_UNKNOWN << 16),
        Input::Allocate(GOOD),
        REPLY,
    ),
    unknown("ALLOCATE with METHOD_IN_DIRECT", IOCTL_NTPOOL_ALLOCATE | METHOD_IN_DIRECT, Input::Allocate(GOOD), REPLY),
    unknown("ALLOCATE with METHOD_OUT_DIRECT", IOCTL_NTPOOL_ALLOCATE | METHOD_OUT_DIRECT, Input::Allocate(GOOD), REPLY),
    unknown("ALLOCATE with METHOD_NEITHER", IOCTL_NTPOOL_ALLOCATE | METHOD_NEITHER, Input::Allocate(GOOD), REPLY),
    unknown("ALLOCATE with FILE_ANY_ACCESS", IOCTL_NTPOOL_ALLOCATE & !ACCESS_BITS, Input::Allocate(GOOD), REPLY),
    with_setup(
        unknown("FREE with METHOD_NEITHER (the block stays)", IOCTL_NTPOOL_FREE | METHOD_NEITHER, Input::Free, 0),
        Setup::Block,
    ),
];

// ---------------------------------------------------------------------------------------------
// The markdown
// ---------------------------------------------------------------------------------------------

/// Writes [`CASES`] as a markdown table: number, request, bad input, status name and value.
pub fn render_markdown(out: &mut impl Write) -> fmt::Result {
    writeln!(out, "| # | Request | Bad input | Answer |")?;
    writeln!(out, "|---|---|---|---|")?;
    for (index, case) in CASES.iter().enumerate() {
        let setup = match case.setup {
            Setup::None | Setup::Block | Setup::Freed | Setup::OtherHandle => "",
            Setup::Full(limit) if limit.driver_wide() => "driver full: ",
            Setup::Full(_) => "handle full: ",
        };
        write!(
            out,
            "| {} | `{}` | {setup}{} | `{}` ({:#010X})",
            index + 1,
            case.request,
            case.bad,
            status::name(case.status),
            case.status as u32
        )?;
        if case.information > 0 {
            write!(out, ", {} bytes", case.information)?;
        }
        writeln!(out, " |")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_expects_a_status_the_protocol_names_and_information_only_on_success() {
        for case in CASES {
            assert_ne!(status::name(case.status), "another status", "{case:?}");
            assert_eq!(case.information > 0, case.status == status::SUCCESS, "{case:?}");
        }
        assert!(CASES.len() > 50);
    }
}
