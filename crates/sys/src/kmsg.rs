//! Writing records to the kernel log through `/dev/kmsg`, the only log an
//! initrd without a syslog daemon has.

use std::fs::{File, OpenOptions};
use std::io::Write;

use crate::{Error, Result};

/// Path of the kernel log device.
pub const KMSG_PATH: &str = "/dev/kmsg";

/// syslog severity of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// 3
    Err = 3,
    /// 4
    Warning = 4,
    /// 5
    Notice = 5,
    /// 6
    Info = 6,
    /// 7
    Debug = 7,
}

/// Records written on one open file before it is reopened: the kernel
/// rate-limits each open `/dev/kmsg` to a burst of 10 records per 5 s and
/// silently drops the rest (`printk.devkmsg=ratelimit`, the default), and
/// a fresh open starts a fresh limit.
const RECORDS_PER_OPEN: u32 = 8;

/// An open `/dev/kmsg`.
pub struct Kmsg {
    file: File,
    written: u32,
}

fn open_kmsg() -> Result<File> {
    OpenOptions::new()
        .write(true)
        .open(KMSG_PATH)
        .map_err(|source| Error::File {
            path: KMSG_PATH.to_owned(),
            source,
        })
}

/// Formats one record as the kernel expects it: `<level>text` and one
/// record per write; newlines inside `text` would start a second record
/// without a level, so they become spaces.
pub fn format_record(level: Level, text: &str) -> Vec<u8> {
    let mut rec = format!("<{}>", level as u8).into_bytes();
    rec.extend(text.bytes().map(|b| if b == b'\n' { b' ' } else { b }));
    rec.push(b'\n');
    rec
}

impl Kmsg {
    /// Opens [`KMSG_PATH`] for writing.
    pub fn open() -> Result<Kmsg> {
        Ok(Kmsg {
            file: open_kmsg()?,
            written: 0,
        })
    }

    /// Writes one record.
    pub fn write(&mut self, level: Level, text: &str) -> Result<()> {
        if self.written >= RECORDS_PER_OPEN {
            self.file = open_kmsg()?;
            self.written = 0;
        }
        self.written += 1;
        self.file
            .write_all(&format_record(level, text))
            .map_err(|source| Error::File {
                path: KMSG_PATH.to_owned(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_format() {
        assert_eq!(
            format_record(Level::Info, "latchkey: a\nb"),
            b"<6>latchkey: a b\n"
        );
        assert_eq!(format_record(Level::Err, "x"), b"<3>x\n");
    }
}
