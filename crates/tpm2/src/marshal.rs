//! Big-endian TPM 2.0 marshalling: a writer for commands and a bounded reader for
//! responses. Every read checks what is left, so a short or lying response is an error,
//! never a panic or an allocation the TPM chose.

use crate::error::{Error, Result};

/// Appends TPM wire types to a buffer.
#[derive(Default)]
pub(crate) struct Writer(pub(crate) Vec<u8>);

/// Room for any command built here, so a buffer holding a secret never reallocates and
/// leaves a copy behind.
pub(crate) const COMMAND_CAPACITY: usize = 1024;

impl Writer {
    pub(crate) fn with_capacity() -> Writer {
        Writer(Vec::with_capacity(COMMAND_CAPACITY))
    }

    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }

    pub(crate) fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub(crate) fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub(crate) fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }

    /// A TPM2B: a u16 size, then the bytes. Callers keep `v` within the type's maximum,
    /// which is far below `u16::MAX`.
    pub(crate) fn tpm2b(&mut self, v: &[u8]) -> &mut Self {
        self.u16(v.len() as u16).bytes(v)
    }

    /// A TPM2B around whatever `f` writes (TPM2B_PUBLIC, TPM2B_SENSITIVE_CREATE).
    pub(crate) fn sized(&mut self, f: impl FnOnce(&mut Writer)) -> &mut Self {
        let at = self.0.len();
        self.u16(0);
        f(self);
        let len = (self.0.len() - at - 2) as u16;
        self.0[at..at + 2].copy_from_slice(&len.to_be_bytes());
        self
    }
}

/// Reads TPM wire types from a response, never past its end.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// For errors: which response is being read.
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader { buf, pos: 0, what }
    }

    fn short(&self, need: usize) -> Error {
        Error::Malformed {
            what: self.what,
            reason: format!(
                "{need} bytes needed at offset {}, {} left",
                self.pos,
                self.buf.len() - self.pos
            ),
        }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() - self.pos < n {
            return Err(self.short(n));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A TPM2B of at most `max` bytes: the contents, without the size.
    pub(crate) fn tpm2b(&mut self, max: usize, field: &'static str) -> Result<&'a [u8]> {
        let n = self.u16()? as usize;
        if n > max {
            return Err(Error::Malformed {
                what: self.what,
                reason: format!("{field} is {n} bytes, at most {max} allowed"),
            });
        }
        self.take(n)
    }

    /// A TPM2B of at most `max` bytes, size prefix included (as clevis stores
    /// TPM2B_PUBLIC and TPM2B_PRIVATE).
    pub(crate) fn tpm2b_raw(&mut self, max: usize, field: &'static str) -> Result<&'a [u8]> {
        let start = self.pos;
        self.tpm2b(max, field)?;
        Ok(&self.buf[start..self.pos])
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Fails unless everything was read.
    pub(crate) fn finish(&self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(Error::Malformed {
                what: self.what,
                reason: format!("{n} unexpected trailing bytes"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_sizes_and_reader_bounds() {
        let mut w = Writer::default();
        w.u8(1).u16(0x0203).u32(0x04050607).tpm2b(b"ab").sized(|w| {
            w.u16(9);
        });
        assert_eq!(w.0, [1, 2, 3, 4, 5, 6, 7, 0, 2, b'a', b'b', 0, 2, 0, 9]);
        let mut r = Reader::new(&w.0, "test");
        assert_eq!(r.u8().unwrap(), 1);
        assert_eq!(r.u16().unwrap(), 0x0203);
        assert_eq!(r.u32().unwrap(), 0x04050607);
        assert_eq!(r.tpm2b(2, "f").unwrap(), b"ab");
        assert!(r.finish().is_err());
        assert_eq!(r.tpm2b_raw(2, "f").unwrap(), [0, 2, 0, 9]);
        r.finish().unwrap();
        assert!(r.u8().is_err());

        // A size larger than the type allows, and one larger than what is left.
        let mut r = Reader::new(&[0, 5, 1, 2], "test");
        assert!(
            r.tpm2b(4, "f")
                .unwrap_err()
                .to_string()
                .contains("at most 4")
        );
        let mut r = Reader::new(&[0, 5, 1, 2], "test");
        assert!(
            r.tpm2b(64, "f")
                .unwrap_err()
                .to_string()
                .contains("5 bytes needed")
        );
    }
}
