//! Reading an input: [`decode`] turns the fuzzer's bytes into a [`Setup`] and [`Op`]s, as the crate's
//! documentation describes the format.

use crate::input::{Choice, Code, Id, Op, Output, Setup, Value};

/// A cursor over the input's bytes.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    fn bytes<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (first, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*first)
    }

    fn u32(&mut self) -> Option<u32> {
        self.bytes().map(u32::from_le_bytes)
    }

    fn choice(&mut self) -> Option<Choice> {
        match self.byte()? {
            0xF8..=0xFF => self.u32().map(Choice::Raw),
            pick => Some(Choice::Pick(pick)),
        }
    }

    fn value(&mut self) -> Option<Value> {
        let byte = self.byte()?;
        Some(match byte >> 6 {
            0 => Value::Small(byte & 63),
            1 => Value::Near((byte >> 3) & 3, byte & 7),
            2 => Value::Power(byte & 31, byte & 32 != 0),
            _ => Value::Raw(self.u32()?),
        })
    }

    fn output(&mut self) -> Option<Output> {
        let byte = self.byte()?;
        Some(match byte {
            0x00..=0x3F => Output::Fit(0),
            0x40..=0x7F => Output::Fit(byte & 63),
            0x80..=0xBF => Output::Short(byte & 63),
            0xC0..=0xFE => Output::Small(byte & 63),
            0xFF => Output::Raw(self.u32()?),
        })
    }

    fn id(&mut self) -> Option<Id> {
        Some(match self.byte()? {
            byte @ 0x00..=0xDF => Id::Recent(byte),
            byte @ 0xE0..=0xEF => Id::Special(byte & 3),
            0xF0..=0xFF => Id::Raw(u64::from_le_bytes(self.bytes()?)),
        })
    }

    fn code(&mut self) -> Option<Code> {
        match self.byte()? {
            0xF0..=0xFF => self.u32().map(Code::Raw),
            pick => Some(Code::Pick(pick)),
        }
    }
}

/// Reads an input; a truncated last operation is dropped.
pub fn decode(data: &[u8]) -> (Setup, Vec<Op>) {
    let mut input = Reader(data);
    let setup = match input.byte().unwrap_or(0) % 8 {
        4 => Setup::FailAllocation(u16::from(input.byte().unwrap_or(0)) + 1),
        5 => Setup::LowResources(input.byte().unwrap_or(0), input.byte().unwrap_or(0) % 32),
        6 => Setup::NoExAllocatePool2,
        7 => Setup::ProcessQuota(u16::from(input.byte().unwrap_or(0)) + 1),
        _ => Setup::Verifier,
    };
    let mut ops = Vec::new();
    while let Some(op) = decode_op(&mut input) {
        ops.push(op);
    }
    (setup, ops)
}

fn decode_op(input: &mut Reader<'_>) -> Option<Op> {
    let byte = input.byte()?;
    let handle = byte >> 4;
    Some(match byte & 15 {
        0 | 14 => Op::Open,
        1 => Op::Close(handle),
        2 => Op::Reload,
        3..=5 => Op::Allocate {
            handle,
            pool: input.choice()?,
            tag: input.choice()?,
            size: input.value()?,
            output: input.output()?,
        },
        6 | 7 => Op::Free { handle, id: input.id()? },
        8..=10 => Op::Read {
            handle,
            id: input.id()?,
            offset: input.value()?,
            length: input.value()?,
            output: input.output()?,
        },
        11 => Op::List { handle, output: input.output()? },
        12 => Op::Statistics { handle, output: input.output()? },
        _ => {
            let (code, output, length) = (input.code()?, input.output()?, input.byte()?);
            let bytes: Vec<u8> = (0..length).map_while(|_| input.byte()).collect();
            Op::Raw { handle, code, output, input: bytes }
        }
    })
}
