//! What one check of the scenario compares, and why it failed: a [`Reply`] checked for its status,
//! its `Information` and the output bytes past it, values [`compare`]d, and the [`Problem`] a
//! failed check reports.

use core::fmt;

use ntpool_protocol::AllocationInfo;

use crate::display::{Info, Status};

/// Why a check failed.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Problem {
    Status {
        expected: i32,
        got: i32,
    },
    Information {
        expected: usize,
        got: usize,
    },
    /// The driver changed byte `offset` of the output buffer, past the `information` it returned.
    Stray {
        information: usize,
        offset: usize,
    },
    ZeroId,
    ReusedId(u64),
    Value {
        what: &'static str,
        expected: u64,
        got: u64,
    },
    Entry {
        index: usize,
        expected: AllocationInfo,
        got: AllocationInfo,
    },
    NotZero {
        offset: u64,
        value: u8,
    },
    NoBaseline,
    Busy {
        outstanding: u64,
    },
    Untracked(u32),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Problem::Status { expected, got } => write!(f, "expected {}, got {}", Status(expected), Status(got)),
            Problem::Information { expected, got } => {
                write!(f, "expected information {expected}, got {got}")
            }
            Problem::Stray { information, offset } => {
                write!(f, "returned {information} bytes but changed byte {offset} of the output buffer")
            }
            Problem::ZeroId => f.write_str("the reply's id is 0"),
            Problem::ReusedId(id) => write!(f, "id {id} was handed out before"),
            Problem::Value { what, expected, got } => write!(f, "{what}: expected {expected}, got {got}"),
            Problem::Entry { index, expected, got } => {
                write!(f, "entry {index}: expected {}, got {}", Info(&expected), Info(&got))
            }
            Problem::NotZero { offset, value } => write!(f, "byte {offset} is {value:#04x}, not zero"),
            Problem::NoBaseline => f.write_str("no statistics from the start to compare with"),
            Problem::Busy { outstanding } => write!(
                f,
                "{outstanding} blocks are outstanding already (another client?): the limit checks need an idle driver"
            ),
            Problem::Untracked(count) => {
                write!(f, "{count} blocks the driver allocated beyond its limits could not be tracked or freed")
            }
        }
    }
}

/// What the driver answered to one request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reply {
    pub(crate) status: i32,
    pub(crate) information: usize,
    /// The first byte of the output buffer past `information` that the driver changed.
    pub(crate) stray: Option<usize>,
    /// For a successful `ALLOCATE`: the id, and whether it had been handed out before.
    pub(crate) allocated: Option<(u64, bool)>,
}

impl Reply {
    /// `Ok` when the reply has `status` and `information` and left the rest of the output alone.
    pub(crate) fn expect(&self, status: i32, information: usize) -> Result<(), Problem> {
        if self.status != status {
            return Err(Problem::Status { expected: status, got: self.status });
        }
        if self.information != information {
            return Err(Problem::Information { expected: information, got: self.information });
        }
        match self.stray {
            Some(offset) => Err(Problem::Stray { information: self.information, offset }),
            None => Ok(()),
        }
    }
}

/// `Ok` when every `(what, expected, got)` matches; else the first mismatch.
pub(crate) fn compare(values: &[(&'static str, u64, u64)]) -> Result<(), Problem> {
    match values.iter().find(|(_, expected, got)| expected != got) {
        Some(&(what, expected, got)) => Err(Problem::Value { what, expected, got }),
        None => Ok(()),
    }
}
