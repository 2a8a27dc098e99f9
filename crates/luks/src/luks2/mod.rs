//! LUKS2: two checksummed binary headers, each followed by JSON metadata.

pub(crate) mod binary;
pub(crate) mod json;
