//! How the checks spell values in their lines: NTSTATUS names, pool tags, pools, allocation
//! requests and `QUERY_ALLOCATIONS` entries; and [`tag`], a tag from its four characters.

use core::fmt::{self, Write};

use ntpool_protocol::{AllocateRequest, AllocationInfo, POOL_CHARGE_QUOTA, POOL_NON_PAGED, POOL_PAGED, status};

/// The pool tag `bytes`, as the kernel stores it.
pub(crate) const fn tag(bytes: [u8; 4]) -> u32 {
    u32::from_le_bytes(bytes)
}

/// An NTSTATUS, by name when the protocol knows it.
pub(crate) struct Status(pub(crate) i32);

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match status::name(self.0) {
            "another status" => write!(f, "NTSTATUS {:#010X}", self.0 as u32),
            name => f.write_str(name),
        }
    }
}

/// A pool tag, quoted, with bytes outside printable ASCII escaped: `"Tst1"`, `"Ab\x00c"`.
pub(crate) struct Tag(pub(crate) u32);

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        for byte in self.0.to_le_bytes() {
            match byte {
                b'"' | b'\\' => write!(f, "\\{}", char::from(byte))?,
                0x20..=0x7E => f.write_char(char::from(byte))?,
                _ => write!(f, "\\x{byte:02x}")?,
            }
        }
        f.write_char('"')
    }
}

/// A pool number.
pub(crate) struct Pool(u32);

impl fmt::Display for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            POOL_NON_PAGED => f.write_str("non-paged"),
            POOL_PAGED => f.write_str("paged"),
            pool if pool & !POOL_CHARGE_QUOTA <= POOL_PAGED => write!(f, "{} (quota)", Pool(pool & !POOL_CHARGE_QUOTA)),
            other => write!(f, "pool {other:#x}"),
        }
    }
}

/// An allocation request: `paged 100 bytes tag "Tst1"`.
pub(crate) struct Request<'a>(pub(crate) &'a AllocateRequest);

impl fmt::Display for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let request = self.0;
        write!(f, "{} {} bytes tag {}", Pool(request.pool), request.size, Tag(request.tag))?;
        if request.reserved != 0 {
            write!(f, " reserved {:#x}", request.reserved)?;
        }
        Ok(())
    }
}

/// An entry of `QUERY_ALLOCATIONS`.
pub(crate) struct Info<'a>(pub(crate) &'a AllocationInfo);

impl fmt::Display for Info<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = self.0;
        write!(f, "{{id {} {} {} bytes tag {}", info.id, Pool(info.pool), info.size, Tag(info.tag))?;
        if info.reserved != 0 {
            write!(f, " reserved {:#x}", info.reserved)?;
        }
        f.write_char('}')
    }
}
