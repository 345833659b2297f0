//! Writing an input: [`encode`] is the inverse of [`decode`](crate::decode), for the seed corpus and
//! the structural mutator.

use crate::input::{Choice, Code, Id, Op, Output, Setup, Value};

/// Writes an input that [`decode`](crate::decode) reads back as `setup` and `ops` (for values in the ranges the
/// variants document).
pub fn encode(setup: Setup, ops: &[Op]) -> Vec<u8> {
    let mut data = match setup {
        Setup::Verifier => vec![0],
        Setup::FailAllocation(n) => vec![4, (n.clamp(1, 256) - 1) as u8],
        Setup::LowResources(seed, percent) => vec![5, seed, percent % 32],
        Setup::NoExAllocatePool2 => vec![6],
        Setup::ProcessQuota(kib) => vec![7, (kib.clamp(1, 256) - 1) as u8],
    };
    let choice = |data: &mut Vec<u8>, choice: &Choice| match *choice {
        Choice::Pick(pick) => data.push(pick.min(0xF7)),
        Choice::Raw(raw) => {
            data.push(0xFF);
            data.extend(raw.to_le_bytes());
        }
    };
    let value = |data: &mut Vec<u8>, value: &Value| match *value {
        Value::Small(n) => data.push(n & 63),
        Value::Near(r, d) => data.push(0x40 | (r & 3) << 3 | (d & 7)),
        Value::Power(k, minus) => data.push(0x80 | if minus { 32 } else { 0 } | (k & 31)),
        Value::Raw(raw) => {
            data.push(0xC0);
            data.extend(raw.to_le_bytes());
        }
    };
    let output = |data: &mut Vec<u8>, output: &Output| match *output {
        Output::Fit(n) => data.push(0x40 | (n & 63)),
        Output::Short(n) => data.push(0x80 | (n & 63)),
        Output::Small(n) => data.push(0xC0 | (n % 63)),
        Output::Raw(raw) => {
            data.push(0xFF);
            data.extend(raw.to_le_bytes());
        }
    };
    let id = |data: &mut Vec<u8>, id: &Id| match *id {
        Id::Recent(n) => data.push(n.min(0xDF)),
        Id::Special(k) => data.push(0xE0 | (k & 3)),
        Id::Raw(raw) => {
            data.push(0xF0);
            data.extend(raw.to_le_bytes());
        }
    };
    let op_byte = |handle: u8, kind: u8| (handle << 4) | kind;
    for op in ops {
        match op {
            Op::Open => data.push(0),
            Op::Close(handle) => data.push(op_byte(*handle, 1)),
            Op::Reload => data.push(2),
            Op::Allocate { handle, pool, tag, size, output: out } => {
                data.push(op_byte(*handle, 3));
                choice(&mut data, pool);
                choice(&mut data, tag);
                value(&mut data, size);
                output(&mut data, out);
            }
            Op::Free { handle, id: which } => {
                data.push(op_byte(*handle, 6));
                id(&mut data, which);
            }
            Op::Read { handle, id: which, offset, length, output: out } => {
                data.push(op_byte(*handle, 8));
                id(&mut data, which);
                value(&mut data, offset);
                value(&mut data, length);
                output(&mut data, out);
            }
            Op::List { handle, output: out } => {
                data.push(op_byte(*handle, 11));
                output(&mut data, out);
            }
            Op::Statistics { handle, output: out } => {
                data.push(op_byte(*handle, 12));
                output(&mut data, out);
            }
            Op::Raw { handle, code, output: out, input } => {
                data.push(op_byte(*handle, 13));
                match *code {
                    Code::Pick(pick) => data.push(pick.min(0xEF)),
                    Code::Raw(raw) => {
                        data.push(0xFF);
                        data.extend(raw.to_le_bytes());
                    }
                }
                output(&mut data, out);
                let input = &input[..input.len().min(255)];
                data.push(input.len() as u8);
                data.extend(input);
            }
        }
    }
    data
}
