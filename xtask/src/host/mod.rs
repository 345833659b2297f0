//! What every command needs of the Linux host: the workspace and its cargo ([`cargo`]), running
//! commands ([`process`]), Debian's apt ([`apt`]) and files and folders ([`files`]).

pub mod apt;
pub mod cargo;
pub mod files;
pub mod process;
