//! Pool tags: four characters that name who owns a pool block, shown by poolmon and WinDbg's
//! `!poolused`.
//!
//! The kernel stores a tag as a little-endian `ULONG`: the tag whose bytes in memory are `b"Npl1"`
//! shows as `Npl1`. C code writes it as the reversed multi-character literal `'1lpN'`; in ntpool
//! there is one way to write it, the way it reads: `PoolTag::new(*b"Npl1")`.
//!
//! A tag is checked when it is built, at compile time where it is a constant: every byte must be
//! printable ASCII (0x20..=0x7E), at least one a letter or a digit (Driver Verifier bug-checks 0xC2 /
//! 0x9D otherwise), and it must not be one of the default tags `Wdm ` and `Ddk ` that code analysis
//! flags because they tell nobody anything.
//!
//! Each allocation site or type can have its own tag type, made with [`pool_tag!`](crate::pool_tag);
//! a box carries its tag in its type, so it costs nothing at run time and cannot be freed with
//! another.

use core::fmt;

/// A valid pool tag.
///
/// # Invariants
/// Every byte is printable ASCII (0x20..=0x7E), at least one is an ASCII letter or digit, and the
/// tag is not `Wdm ` or `Ddk `. In particular it is never zero and never has the
/// [`PROTECTED_POOL`](crate::sys::PROTECTED_POOL) bit set.
///
/// ```
/// use ntpool::PoolTag;
/// const REQUESTS: PoolTag = PoolTag::new(*b"NpRq");
/// assert_eq!(REQUESTS.to_string(), "NpRq");
/// assert_eq!(format!("{REQUESTS:?}"), r#"PoolTag("NpRq")"#);
/// assert_eq!(REQUESTS.to_ulong() & ntpool::sys::PROTECTED_POOL, 0);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct PoolTag(u32);

crate::safe::plain!(PoolTag, InvalidTag);

/// Why a tag was rejected.
///
/// ```
/// use ntpool::{InvalidTag, PoolTag};
/// let error = PoolTag::try_new(*b"Wdm ").unwrap_err();
/// assert_eq!(error, InvalidTag::DefaultTag);
/// assert_eq!(error.to_string(), "`Wdm ` and `Ddk ` are default tags that identify nobody");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidTag {
    /// A byte is outside printable ASCII (0x20..=0x7E); this includes a zero byte and a zero tag.
    NotPrintable,
    /// No byte is a letter or a digit.
    NoLetterOrDigit,
    /// `Wdm ` or `Ddk `, the WDK's default tags.
    DefaultTag,
}

impl fmt::Display for InvalidTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InvalidTag::NotPrintable => "a pool tag byte is not printable ASCII (0x20..=0x7E)",
            InvalidTag::NoLetterOrDigit => "a pool tag must contain a letter or a digit",
            InvalidTag::DefaultTag => "`Wdm ` and `Ddk ` are default tags that identify nobody",
        })
    }
}

impl core::error::Error for InvalidTag {}

impl PoolTag {
    /// The tag whose four bytes are `bytes`, in the order written: `PoolTag::new(*b"Npl1")` shows as
    /// `Npl1`.
    ///
    /// # Panics
    /// If the tag is invalid (see [`PoolTag::try_new`]). Used in a constant, which is how tags are
    /// meant to be built, that is a compile-time error, never a run-time panic:
    ///
    /// ```
    /// use ntpool::PoolTag;
    /// const REQUESTS: PoolTag = PoolTag::new(*b"NpRq");
    /// assert_eq!(REQUESTS.to_string(), "NpRq");
    /// assert_eq!(REQUESTS.to_ulong(), u32::from_le_bytes(*b"NpRq"));
    /// ```
    ///
    /// ```compile_fail
    /// const BAD: ntpool::PoolTag = ntpool::PoolTag::new(*b"Np\0\0"); // not printable
    /// ```
    #[track_caller]
    pub const fn new(bytes: [u8; 4]) -> PoolTag {
        match PoolTag::try_new(bytes) {
            Ok(tag) => tag,
            Err(InvalidTag::NotPrintable) => panic!("invalid pool tag: a byte is not printable ASCII (0x20..=0x7E)"),
            Err(InvalidTag::NoLetterOrDigit) => panic!("invalid pool tag: it has no letter or digit"),
            Err(InvalidTag::DefaultTag) => panic!("invalid pool tag: `Wdm ` and `Ddk ` are default tags"),
        }
    }

    /// The tag whose four bytes are `bytes`, or why it is invalid.
    ///
    /// ```
    /// use ntpool::{InvalidTag, PoolTag};
    /// assert!(PoolTag::try_new(*b"Npl1").is_ok());
    /// assert_eq!(PoolTag::try_new([0; 4]), Err(InvalidTag::NotPrintable));
    /// assert_eq!(PoolTag::try_new(*b"----"), Err(InvalidTag::NoLetterOrDigit));
    /// assert_eq!(PoolTag::try_new(*b"Wdm "), Err(InvalidTag::DefaultTag));
    /// ```
    pub const fn try_new(bytes: [u8; 4]) -> Result<PoolTag, InvalidTag> {
        let mut i = 0;
        while i < 4 {
            if !crate::sys::tag_byte_is_printable(bytes[i]) {
                return Err(InvalidTag::NotPrintable);
            }
            i += 1;
        }
        let value = u32::from_le_bytes(bytes);
        if !crate::sys::tag_has_letter_or_digit(value) {
            return Err(InvalidTag::NoLetterOrDigit);
        }
        if value == u32::from_le_bytes(*b"Wdm ") || value == u32::from_le_bytes(*b"Ddk ") {
            return Err(InvalidTag::DefaultTag);
        }
        // INVARIANT: checked above.
        Ok(PoolTag(value))
    }

    /// The tag with the `ULONG` value the kernel uses (for example one read from a user request), or
    /// why it is invalid.
    ///
    /// ```
    /// use ntpool::PoolTag;
    /// let tag = PoolTag::from_raw(0x316C_704E).unwrap();
    /// assert_eq!(tag.to_string(), "Npl1");
    /// assert!(PoolTag::from_raw(0).is_err());
    /// ```
    pub const fn from_raw(value: u32) -> Result<PoolTag, InvalidTag> {
        PoolTag::try_new(value.to_le_bytes())
    }

    /// The `ULONG` the kernel routines take.
    ///
    /// ```
    /// assert_eq!(ntpool::PoolTag::new(*b"Npl1").to_ulong(), 0x316C_704E);
    /// ```
    pub const fn to_ulong(self) -> u32 {
        self.0
    }

    /// The four bytes, in the order poolmon shows them.
    ///
    /// ```
    /// assert_eq!(&ntpool::PoolTag::new(*b"Npl1").to_bytes(), b"Npl1");
    /// ```
    pub const fn to_bytes(self) -> [u8; 4] {
        self.0.to_le_bytes()
    }
}

impl fmt::Display for PoolTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every byte is printable ASCII (invariant), so each shows as itself.
        for character in crate::sys::tag_text(self.0) {
            fmt::Write::write_char(f, character)?;
        }
        Ok(())
    }
}

/// The emulated kernel's view of a tag: its `ULONG`, so that a `PoolTag` goes wherever the kernel
/// takes a tag, for example [`KernelBuilder::special_pool_tag`](crate::emulated::KernelBuilder).
///
/// ```
/// use ntpool::emulated::RawTag;
/// let tag = ntpool::PoolTag::new(*b"Npl1");
/// assert_eq!(RawTag::from(tag), RawTag(0x316C_704E));
/// assert_eq!(RawTag::from(tag).to_string(), tag.to_string());
/// ```
#[cfg(ntpool_emulated)]
impl From<PoolTag> for crate::emulated::RawTag {
    fn from(tag: PoolTag) -> Self {
        crate::emulated::RawTag(tag.0)
    }
}

impl fmt::Debug for PoolTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PoolTag(\"{self}\")")
    }
}

/// A tag as a type, so that a box carries its tag at no run-time cost. Make one with
/// [`pool_tag!`](crate::pool_tag).
///
/// ```
/// use ntpool::Tag;
/// ntpool::pool_tag!(struct Requests = b"NpRq");
/// assert_eq!(Requests::TAG.to_string(), "NpRq");
/// ```
pub trait Tag: Copy + Default + 'static {
    /// The tag.
    const TAG: PoolTag;
}

/// Where a box's tag comes from: a [`Tag`] type (zero-sized, carried in the box's type, so the box
/// stays one pointer wide) or a [`PoolTag`] value (stored in the box, for tags only known at run
/// time, for example from a request).
///
/// ```
/// use ntpool::{PoolTag, TagSource};
/// ntpool::pool_tag!(struct Typed = b"Typd");
/// assert_eq!(Typed.tag(), PoolTag::new(*b"Typd"));
/// assert_eq!(PoolTag::new(*b"Dyn1").tag().to_string(), "Dyn1");
/// ```
///
/// Sealed: implemented for every [`Tag`] type and for [`PoolTag`] only, so that a box's tag is the
/// same at its free as at its allocation (a box frees with whatever `tag()` returns then).
pub trait TagSource: Copy + 'static + tag_source::Sealed {
    /// The tag.
    fn tag(self) -> PoolTag;
}

mod tag_source {
    use super::PoolTag;

    /// Keeps [`TagSource`](super::TagSource) to tag types and [`PoolTag`](super::PoolTag).
    pub trait Sealed {
        /// The tag when the type alone names it (a [`Tag`](super::Tag) type); `None` for a
        /// [`PoolTag`], whose tag is a value. For routines the kernel calls without a value of the
        /// type: a lookaside list's callbacks.
        const TYPE_TAG: Option<PoolTag>;
    }
    impl<G: super::Tag> Sealed for G {
        const TYPE_TAG: Option<PoolTag> = Some(G::TAG);
    }
    impl Sealed for PoolTag {
        const TYPE_TAG: Option<PoolTag> = None;
    }
}

impl<G: Tag> TagSource for G {
    #[inline(always)]
    fn tag(self) -> PoolTag {
        G::TAG
    }
}

impl TagSource for PoolTag {
    #[inline(always)]
    fn tag(self) -> PoolTag {
        self
    }
}

/// Defines a zero-sized type that implements [`Tag`], checking the tag at compile time.
///
/// ```
/// ntpool::pool_tag! {
///     /// Blocks that hold I/O requests.
///     pub struct RequestTag = b"NpRq";
/// }
/// use ntpool::Tag;
/// assert_eq!(RequestTag::TAG.to_bytes(), *b"NpRq");
/// ```
///
/// An invalid tag does not compile:
///
/// ```compile_fail
/// ntpool::pool_tag!(struct Default = b"Wdm ");
/// ```
#[macro_export]
macro_rules! pool_tag {
    ($(#[$attr:meta])* $vis:vis struct $name:ident = $bytes:expr $(;)?) => {
        $(#[$attr])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
        $vis struct $name;

        impl $crate::Tag for $name {
            const TAG: $crate::PoolTag = $crate::PoolTag::new(*$bytes);
        }

        // SAFETY: a tag type is a zero-sized value that owns and reaches nothing.
        unsafe impl $crate::DispatchSafe for $name {}
        // SAFETY: as above.
        unsafe impl $crate::HighSafe for $name {}

        const _: $crate::PoolTag = <$name as $crate::Tag>::TAG;
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn tags_round_trip_in_poolmon_order() {
        let tag = PoolTag::new(*b"Npl1");
        assert_eq!(tag.to_string(), "Npl1");
        assert_eq!(tag.to_bytes(), *b"Npl1");
        // The C multi-character literal '1lpN' has this value.
        assert_eq!(tag.to_ulong(), 0x316C_704E);
        assert_eq!(PoolTag::from_raw(tag.to_ulong()), Ok(tag));
    }

    #[test]
    fn short_tags_are_padded_with_spaces_and_stay_valid() {
        assert_eq!(PoolTag::new(*b"Ab  ").to_string(), "Ab  ");
    }

    #[test]
    fn invalid_tags_are_rejected_with_the_reason() {
        assert_eq!(PoolTag::try_new([0; 4]), Err(InvalidTag::NotPrintable));
        assert_eq!(PoolTag::try_new(*b"Ab\0c"), Err(InvalidTag::NotPrintable));
        assert_eq!(PoolTag::try_new([b'A', b'b', 0x7F, b'c']), Err(InvalidTag::NotPrintable));
        assert_eq!(PoolTag::from_raw(0x8000_0000 | u32::from_le_bytes(*b"Npl1")), Err(InvalidTag::NotPrintable));
        assert_eq!(PoolTag::try_new(*b"    "), Err(InvalidTag::NoLetterOrDigit));
        assert_eq!(PoolTag::try_new(*b"Ddk "), Err(InvalidTag::DefaultTag));
        assert_eq!(PoolTag::try_new(*b"Wdm "), Err(InvalidTag::DefaultTag));
    }

    #[test]
    fn every_printable_tag_with_a_letter_is_accepted() {
        for byte in 0x20u8..=0x7E {
            let tag = [b'N', byte, byte, byte];
            assert!(PoolTag::try_new(tag).is_ok(), "{tag:?}");
        }
    }
}
