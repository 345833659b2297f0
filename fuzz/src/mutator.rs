//! libFuzzer's custom mutator, [`mutate`]: structural changes of a decoded input, drawn from a
//! small deterministic generator.

use crate::decoding::decode;
use crate::encoding::encode;
use crate::input::{Choice, Code, Id, Op, Output, Setup, Value};

/// A small deterministic generator (xorshift64*), seeded by libFuzzer.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    fn choice(&mut self) -> Choice {
        if self.below(8) == 0 { Choice::Raw(self.next() as u32) } else { Choice::Pick(self.byte() % 8) }
    }

    fn value(&mut self) -> Value {
        match self.below(4) {
            0 => Value::Small(self.byte() % 64),
            1 => Value::Near(self.byte() % 4, self.byte() % 8),
            2 => Value::Power(self.byte() % 32, self.below(2) == 0),
            _ => Value::Raw(self.next() as u32),
        }
    }

    fn output(&mut self) -> Output {
        match self.below(8) {
            0 => Output::Short(self.byte() % 64),
            1 => Output::Small(self.byte() % 63),
            2 => Output::Raw(self.next() as u32),
            _ => Output::Fit(if self.below(2) == 0 { 0 } else { self.byte() % 64 }),
        }
    }

    fn id(&mut self) -> Id {
        match self.below(16) {
            0 => Id::Special(self.byte() % 4),
            1 => Id::Raw(self.next()),
            _ => Id::Recent(self.byte() % 4),
        }
    }

    fn op(&mut self) -> Op {
        let handle = self.byte() % 16;
        match self.below(16) {
            0 => Op::Open,
            1 => Op::Close(handle),
            2 => Op::Reload,
            3..=5 => Op::Allocate {
                handle,
                pool: self.choice(),
                tag: self.choice(),
                size: self.value(),
                output: self.output(),
            },
            6..=8 => Op::Free { handle, id: self.id() },
            9..=11 => {
                Op::Read { handle, id: self.id(), offset: self.value(), length: self.value(), output: self.output() }
            }
            12 => Op::List { handle, output: self.output() },
            13 => Op::Statistics { handle, output: self.output() },
            _ => {
                let code = if self.below(4) == 0 { Code::Raw(self.next() as u32) } else { Code::Pick(self.byte() % 5) };
                let input = (0..self.below(20)).map(|_| self.byte()).collect();
                Op::Raw { handle, code, output: self.output(), input }
            }
        }
    }

    /// A new value for one field of `op` (or a new handle).
    fn tweak(&mut self, op: &mut Op) {
        let field = self.below(4);
        match op {
            Op::Open | Op::Reload => *op = self.op(),
            Op::Close(handle) => *handle = self.byte() % 16,
            Op::Allocate { handle, pool, tag, size, output } => match field {
                0 => *pool = self.choice(),
                1 => *tag = self.choice(),
                2 => *size = self.value(),
                _ if self.below(2) == 0 => *output = self.output(),
                _ => *handle = self.byte() % 16,
            },
            Op::Free { handle, id } => match field {
                0 => *handle = self.byte() % 16,
                _ => *id = self.id(),
            },
            Op::Read { handle, id, offset, length, output } => match field {
                0 => *id = self.id(),
                1 => *offset = self.value(),
                2 => *length = self.value(),
                _ if self.below(2) == 0 => *output = self.output(),
                _ => *handle = self.byte() % 16,
            },
            Op::List { handle, output } | Op::Statistics { handle, output } => match field {
                0 => *handle = self.byte() % 16,
                _ => *output = self.output(),
            },
            Op::Raw { handle, code, output, input } => match field {
                0 => *handle = self.byte() % 16,
                1 => *code = Code::Pick(self.byte() % 5),
                2 => *output = self.output(),
                _ if input.is_empty() => input.push(self.byte()),
                _ => {
                    let at = self.below(input.len());
                    input[at] = self.byte();
                }
            },
        }
    }
}

/// libFuzzer's custom mutator: half the time a structural change of the decoded input (a field of
/// an operation given a new value of its kind, an operation inserted, copied, removed or moved, the
/// kernel's configuration changed), re-encoded; otherwise, or when that does not fit in `max_size`,
/// libFuzzer's own byte-level mutations (`fallback`). Either way the input stays bytes that
/// [`run`](crate::run) reads the usual way, so every input reproduces on its own.
pub fn mutate(
    data: &mut [u8],
    size: usize,
    max_size: usize,
    seed: u32,
    fallback: impl FnOnce(&mut [u8], usize, usize) -> usize,
) -> usize {
    let mut random = Random(u64::from(seed) << 32 | 0x9E37_79B9);
    if random.below(2) == 0 {
        return fallback(data, size, max_size);
    }
    let (mut setup, mut ops) = decode(&data[..size]);
    for _ in 0..1 + random.below(3) {
        let at = random.below(ops.len() + 1);
        match random.below(16) {
            0..=6 if !ops.is_empty() => {
                let at = at.min(ops.len() - 1);
                random.tweak(&mut ops[at]);
            }
            7 | 8 if !ops.is_empty() => {
                let copied = ops[random.below(ops.len())].clone();
                ops.insert(at, copied);
            }
            9 if !ops.is_empty() => {
                ops.remove(at.min(ops.len() - 1));
            }
            10 if ops.len() > 1 => {
                let from = ops.remove(random.below(ops.len()));
                ops.insert(random.below(ops.len() + 1), from);
            }
            11 => {
                setup = match random.below(8) {
                    4 => Setup::FailAllocation(1 + random.below(256) as u16),
                    5 => Setup::LowResources(random.byte(), random.byte() % 32),
                    6 => Setup::NoExAllocatePool2,
                    7 => Setup::ProcessQuota(1 + random.below(256) as u16),
                    _ => Setup::Verifier,
                }
            }
            _ => ops.insert(at, random.op()),
        }
    }
    let encoded = encode(setup, &ops);
    if encoded.len() > max_size || encoded.len() > data.len() {
        return fallback(data, size, max_size);
    }
    data[..encoded.len()].copy_from_slice(&encoded);
    encoded.len()
}
