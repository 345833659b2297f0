//! Strings as the kernel takes them: UTF-16 literals made at compile time, `UNICODE_STRING`, and
//! the names of the routines looked up at run time with `MmGetSystemRoutineAddress`.

/// `UNICODE_STRING`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct UNICODE_STRING {
    /// The text's bytes, without a NUL.
    pub Length: u16,
    /// The buffer's bytes.
    pub MaximumLength: u16,
    /// The text.
    pub Buffer: *mut u16,
}

/// ASCII to UTF-16 at compile time: the wide strings kernel routines take (object names,
/// `MmGetSystemRoutineAddress`'s routine names). The length is the literal's, checked by the type.
///
/// ```
/// static NAME: [u16; 7] = ntpool_sys::utf16(b"\\Device");
/// assert_eq!(NAME, [92, 68, 101, 118, 105, 99, 101]);
/// ```
pub const fn utf16<const N: usize>(ascii: &[u8; N]) -> [u16; N] {
    let mut wide = [0u16; N];
    let mut i = 0;
    while i < N {
        wide[i] = ascii[i] as u16;
        i += 1;
    }
    wide
}

/// A UTF-16 literal that ends with its NUL, described as `RtlInitUnicodeString` describes a literal:
/// `Length` without the NUL, `MaximumLength` with it. For `UNICODE_STRING`s of names the kernel
/// reads (routine names for `MmGetSystemRoutineAddress`, device and link names): a loader or
/// emulator that reads a name up to its NUL sees that name alone.
///
/// ```
/// use ntpool_sys::{utf16, UnicodeLiteral};
/// static NAME: UnicodeLiteral = UnicodeLiteral::new(&utf16(b"\\Device\\Ab\0"));
/// assert_eq!((NAME.length(), NAME.maximum_length()), (20, 22));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct UnicodeLiteral(&'static [u16]);

impl UnicodeLiteral {
    /// The text in `wide`, which must not be empty, end with its NUL and have no other, and fit a
    /// `USHORT` `MaximumLength` (checked at compile time in a `static` or `const`).
    ///
    /// ```compile_fail
    /// static NAME: ntpool_sys::UnicodeLiteral = ntpool_sys::UnicodeLiteral::new(&ntpool_sys::utf16(b"NoNul"));
    /// ```
    ///
    /// ```compile_fail
    /// // A NUL inside: read by its Length and read up to its NUL, it would be two different names.
    /// static NAME: ntpool_sys::UnicodeLiteral = ntpool_sys::UnicodeLiteral::new(&ntpool_sys::utf16(b"ab\0cd\0"));
    /// ```
    ///
    /// ```compile_fail
    /// // 32,767 characters and the NUL: 65,536 bytes, beyond a USHORT.
    /// static LONG: [u16; 32768] = {
    ///     let mut text = [b'a' as u16; 32768];
    ///     text[32767] = 0;
    ///     text
    /// };
    /// static NAME: ntpool_sys::UnicodeLiteral = ntpool_sys::UnicodeLiteral::new(&LONG);
    /// ```
    pub const fn new(wide: &'static [u16]) -> Self {
        assert!(matches!(wide, [first, .., 0] if *first != 0), "a UnicodeLiteral is not empty and ends with its NUL");
        assert!(wide.len() * 2 <= u16::MAX as usize, "a UnicodeLiteral's MaximumLength fits a USHORT");
        let mut i = 0;
        while i + 1 < wide.len() {
            assert!(wide[i] != 0, "a UnicodeLiteral has no NUL before its last unit");
            i += 1;
        }
        UnicodeLiteral(wide)
    }

    /// `Length`: the text's bytes, without the NUL.
    pub const fn length(self) -> u16 {
        ((self.0.len() - 1) * 2) as u16
    }

    /// `MaximumLength`: the buffer's bytes, the NUL included.
    pub const fn maximum_length(self) -> u16 {
        (self.0.len() * 2) as u16
    }

    /// `Buffer`: the text, followed by its NUL.
    pub const fn buffer(self) -> *const u16 {
        self.0.as_ptr()
    }
}

/// The routines ntpool looks up at run time (the real kernel's backend resolves them).
#[cfg_attr(ntpool_emulated, allow(dead_code))]
pub(crate) mod routine_names {
    use super::{UnicodeLiteral, utf16};

    pub(crate) static EX_ALLOCATE_POOL2: UnicodeLiteral = UnicodeLiteral::new(&utf16(b"ExAllocatePool2\0"));
    pub(crate) static EX_ALLOCATE_POOL3: UnicodeLiteral = UnicodeLiteral::new(&utf16(b"ExAllocatePool3\0"));
    pub(crate) static EX_INITIALIZE_LOOKASIDE_LIST_EX: UnicodeLiteral =
        UnicodeLiteral::new(&utf16(b"ExInitializeLookasideListEx\0"));
    pub(crate) static EX_DELETE_LOOKASIDE_LIST_EX: UnicodeLiteral =
        UnicodeLiteral::new(&utf16(b"ExDeleteLookasideListEx\0"));
}

/// A `UNICODE_STRING` over a static UTF-16 literal with its NUL (`Buffer` is only ever read).
///
/// ```
/// use ntpool_sys::{unicode, utf16, UnicodeLiteral};
/// static NAME: UnicodeLiteral = UnicodeLiteral::new(&utf16(b"\\Device\\Ab\0"));
/// let name = unicode(NAME);
/// assert_eq!((name.Length, name.MaximumLength), (20, 22));
/// ```
pub const fn unicode(text: UnicodeLiteral) -> UNICODE_STRING {
    UNICODE_STRING { Length: text.length(), MaximumLength: text.maximum_length(), Buffer: text.buffer() as *mut u16 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routine_names_end_with_a_nul_beyond_their_length() {
        use routine_names::*;
        for (name, text) in [
            (EX_ALLOCATE_POOL2, "ExAllocatePool2"),
            (EX_ALLOCATE_POOL3, "ExAllocatePool3"),
            (EX_INITIALIZE_LOOKASIDE_LIST_EX, "ExInitializeLookasideListEx"),
            (EX_DELETE_LOOKASIDE_LIST_EX, "ExDeleteLookasideListEx"),
        ] {
            let length = usize::from(name.length()) / 2;
            assert_eq!(usize::from(name.maximum_length()), 2 * (length + 1), "{text}");
            // SAFETY: the buffer holds `MaximumLength` bytes.
            let buffer = unsafe { core::slice::from_raw_parts(name.buffer(), length + 1) };
            assert!(buffer[..length].iter().copied().eq(text.encode_utf16()), "{text}");
            assert_eq!(buffer[length], 0, "{text}: the NUL beyond Length");
        }
    }
}
