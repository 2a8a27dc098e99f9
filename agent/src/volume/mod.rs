//! The volumes to open: where they are, the local boot key, and the
//! dm-crypt mapping that opens them.
//!
//! ```text
//!   rd.luks.* + crypttab ─► discovery (block devices, LUKS headers) ─► Volume
//!   boot partition ─► boot_key                    unlocked key ─► dm_table ─► activate
//! ```

pub(crate) mod activate;
pub(crate) mod boot_key;
pub mod crypttab;
mod discovery;
pub(crate) mod dm_table;

pub use discovery::Volume;
pub(crate) use discovery::{
    describe, discover, distinct, existing, find_device, locate, read_header, wanted,
};
