//! From an operation to the request it sends: ids picked from those handed out, values resolved
//! against references taken from the model's state (a block's size, what a limit leaves), output
//! buffers sized relative to the reply.

use std::collections::BTreeMap;

use ntpool_protocol::model::{LIMITS, Model};
use ntpool_protocol::{
    AllocateRequest, FreeRequest, IOCTL_NTPOOL_ALLOCATE, IOCTL_NTPOOL_FREE, IOCTL_NTPOOL_QUERY_ALLOCATIONS,
    IOCTL_NTPOOL_QUERY_STATISTICS, IOCTL_NTPOOL_READ, MAX_SIZE, POOL_CHARGE_QUOTA, POOL_NON_PAGED, POOL_PAGED,
    ReadRequest, Wire,
};

use crate::input::{CODES, Choice, Code, DELTAS, Id, MAX_OUTPUT, Op, Output, POOLS, TAGS, Value};

/// The blocks handed out since the driver loaded (freed ones too), for references.
#[derive(Default)]
pub(crate) struct Sizes {
    /// Each block's size, by id.
    by_id: BTreeMap<u64, u32>,
    /// The last block's size.
    last: u32,
}

impl Sizes {
    /// Block `id` of `size` bytes was handed out.
    pub(crate) fn record(&mut self, id: u64, size: u32) {
        self.by_id.insert(id, size);
        self.last = size;
    }
}

/// A [`Value`] against its references.
fn value(value: Value, references: [u32; 4]) -> u32 {
    match value {
        Value::Small(n) => u32::from(n & 63),
        Value::Near(r, d) => references[usize::from(r % 4)].wrapping_add_signed(DELTAS[usize::from(d % 8)]),
        Value::Power(k, minus) => (1u32 << (k % 32)).wrapping_sub(u32::from(minus)),
        Value::Raw(raw) => raw,
    }
}

/// An [`Output`] for a reply of `needed` bytes.
fn output(output: Output, needed: u32) -> usize {
    let length = match output {
        Output::Fit(n) => needed.saturating_add(u32::from(n & 63)),
        Output::Short(n) => needed.saturating_sub(1 + u32::from(n & 63)),
        Output::Small(n) => u32::from(n % 63),
        Output::Raw(raw) => raw,
    };
    length.min(MAX_OUTPUT) as usize
}

/// The request an operation makes: code, input, output length.
pub(crate) fn resolve(model: &Model, sizes: &Sizes, ids: &[u64], owner: u64, op: &Op) -> (u32, Vec<u8>, usize) {
    let id = |id: Id| match id {
        Id::Recent(n) if !ids.is_empty() => ids[ids.len() - 1 - usize::from(n) % ids.len()],
        Id::Recent(n) => u64::from(n),
        Id::Special(k) => match k % 4 {
            0 => 0,
            1 => model.next_id(),
            2 => u64::MAX,
            _ => ids.last().copied().unwrap_or(1) | 1 << 32,
        },
        Id::Raw(raw) => raw,
    };
    match *op {
        Op::Allocate { pool, tag, size, output: out, .. } => {
            let pool = match pool {
                Choice::Pick(pick) => POOLS[usize::from(pick) % POOLS.len()],
                Choice::Raw(raw) => raw,
            };
            let tag = match tag {
                Choice::Pick(pick) => u32::from_le_bytes(TAGS[usize::from(pick) % TAGS.len()]),
                Choice::Raw(raw) => raw,
            };
            let kind = if pool & !POOL_CHARGE_QUOTA == POOL_PAGED { POOL_PAGED } else { POOL_NON_PAGED };
            let (handle_limit, driver_limit) = (LIMITS.handle.bytes(kind), LIMITS.driver.bytes(kind));
            let left = |owner, limit: u64| limit.saturating_sub(model.usage(owner).bytes(kind)) as u32;
            let references = [MAX_SIZE, left(Some(owner), handle_limit), left(None, driver_limit), sizes.last];
            let request = AllocateRequest { pool, tag, size: value(size, references), reserved: 0 };
            (IOCTL_NTPOOL_ALLOCATE, request.as_bytes().to_vec(), output(out, 8))
        }
        Op::Free { id: which, .. } => (IOCTL_NTPOOL_FREE, FreeRequest { id: id(which) }.as_bytes().to_vec(), 0),
        Op::Read { id: which, offset, length, output: out, .. } => {
            let id = id(which);
            let size = sizes.by_id.get(&id).copied().unwrap_or(0);
            let offset = value(offset, [size, size / 2, MAX_SIZE, u32::MAX]);
            let length = value(length, [size.wrapping_sub(offset), size, MAX_SIZE, 0u32.wrapping_sub(offset)]);
            let request = ReadRequest { id, offset, length };
            (IOCTL_NTPOOL_READ, request.as_bytes().to_vec(), output(out, length))
        }
        Op::List { output: out, .. } => {
            let needed = 8 + 24 * model.usage(Some(owner)).blocks;
            (IOCTL_NTPOOL_QUERY_ALLOCATIONS, Vec::new(), output(out, needed))
        }
        Op::Statistics { output: out, .. } => (IOCTL_NTPOOL_QUERY_STATISTICS, Vec::new(), output(out, 64)),
        Op::Raw { code, output: out, ref input, .. } => {
            let code = match code {
                Code::Pick(pick) => CODES[usize::from(pick) % CODES.len()],
                Code::Raw(raw) => raw,
            };
            (code, input.clone(), output(out, 0))
        }
        Op::Open | Op::Close(_) | Op::Reload => unreachable!("not a request"),
    }
}
