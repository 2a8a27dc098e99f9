//! Bounded reads from the device, and the text fields of both binary headers.

use crate::Error;
use std::io::{Read, Seek, SeekFrom};

/// Largest single read this crate makes (a 4 MiB LUKS2 header copy or a
/// keyslot's AF material). Every length from the disk is checked against it
/// before anything is allocated.
pub(crate) const MAX_READ: u64 = 64 << 20;

/// Read exactly `len` bytes at `offset`.
pub(crate) fn read_at<R: Read + Seek>(
    dev: &mut R,
    offset: u64,
    len: u64,
    what: &'static str,
) -> Result<Vec<u8>, Error> {
    if len > MAX_READ {
        return Err(Error::meta(
            what,
            format!("length {len} exceeds {MAX_READ}"),
        ));
    }
    dev.seek(SeekFrom::Start(offset))
        .map_err(|e| Error::io(what, e))?;
    let mut buf = vec![0u8; len as usize];
    dev.read_exact(&mut buf).map_err(|e| Error::io(what, e))?;
    Ok(buf)
}

/// A NUL-padded text field of a binary header (LUKS1 or LUKS2).
pub(crate) fn cstr(b: &[u8], field: &str) -> Result<String, Error> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    std::str::from_utf8(&b[..end])
        .map(str::to_owned)
        .map_err(|_| Error::meta(field, "is not UTF-8"))
}
