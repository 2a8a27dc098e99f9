//! Moving command bytes to a TPM and response bytes back, every step bounded in time
//! and size.
//!
//! - A character device is opened non-blocking, as tpm2-tss's device TCTI does: the
//!   command is one write, the response is awaited with poll(2) and read in one read.
//! - swtpm takes raw commands on its data port (one connection per command, as the
//!   swtpm TCTI does), and control commands (big-endian u32 code, parameters, u32
//!   result) on the next port; `CMD_INIT` there powers the TPM on.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};

use crate::error::{Error, Result};
use crate::tcti::{DEFAULT_DEVICES, Tcti};

/// The largest response accepted: tpm2-tss's and the kernel's TPM buffer size.
pub(crate) const MAX_RESPONSE: usize = 4096;
/// Response header: tag, size, response code.
pub(crate) const HEADER: usize = 10;

/// swtpm control channel: `CMD_INIT` (power on), see swtpm's `tpm_ioctl.h`.
const CMD_INIT: u32 = 0x02;

pub(crate) enum Transport {
    Device { file: File, path: String },
    Swtpm { host: String, port: u16 },
}

impl Transport {
    pub(crate) fn open(tcti: &Tcti, timeout: Duration) -> Result<Transport> {
        match tcti {
            Tcti::Device(Some(path)) => open_device(path),
            Tcti::Device(None) => match DEFAULT_DEVICES.iter().find(|p| Path::new(p).exists()) {
                Some(p) => open_device(Path::new(p)),
                None => Err(Error::NoDevice(DEFAULT_DEVICES.join(" and "))),
            },
            Tcti::Swtpm { host, port } => {
                // Nothing is kept open between commands; fail now if nobody listens.
                connect(host, *port, timeout)?;
                Ok(Transport::Swtpm {
                    host: host.clone(),
                    port: *port,
                })
            }
        }
    }

    /// The TCTI in use, for messages.
    pub(crate) fn name(&self) -> String {
        match self {
            Transport::Device { path, .. } => format!("device:{path}"),
            Transport::Swtpm { host, port } => format!("swtpm:host={host},port={port}"),
        }
    }

    /// Sends one command and returns the whole response, its size checked against its
    /// header.
    pub(crate) fn transact(
        &mut self,
        cmd: &[u8],
        command: &'static str,
        timeout: Duration,
    ) -> Result<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let name = self.name();
        let timed_out = || Error::Timeout {
            tcti: name.clone(),
            command,
            after: timeout,
        };
        let io = |source: std::io::Error| match source.kind() {
            ErrorKind::WouldBlock | ErrorKind::TimedOut => timed_out(),
            _ => Error::Io {
                tcti: name.clone(),
                source,
            },
        };
        let resp = match self {
            Transport::Device { file, .. } => {
                file.write_all(cmd).map_err(io)?;
                let left = deadline.saturating_duration_since(Instant::now());
                if !wait_readable(file, left).map_err(io)? {
                    return Err(timed_out());
                }
                let mut buf = vec![0u8; MAX_RESPONSE];
                let n = file.read(&mut buf).map_err(io)?;
                buf.truncate(n);
                buf
            }
            Transport::Swtpm { host, port } => {
                let mut s = connect(host, *port, timeout)?;
                s.set_write_timeout(Some(timeout.max(Duration::from_millis(1))))
                    .map_err(io)?;
                s.write_all(cmd).map_err(io)?;
                let mut head = [0u8; HEADER];
                read_exact_by(&mut s, &mut head, deadline).map_err(io)?;
                let size = declared_size(&head, command)?;
                let mut buf = vec![0u8; size];
                buf[..HEADER].copy_from_slice(&head);
                read_exact_by(&mut s, &mut buf[HEADER..], deadline).map_err(io)?;
                buf
            }
        };
        if resp.len() < HEADER || declared_size(&resp, command)? != resp.len() {
            return Err(Error::Malformed {
                what: command,
                reason: format!("{} bytes do not match the size in the header", resp.len()),
            });
        }
        Ok(resp)
    }

    /// Powers a software TPM on (`CMD_INIT`); false for a device, which the kernel keeps on.
    pub(crate) fn power_on(&mut self, timeout: Duration) -> Result<bool> {
        let Transport::Swtpm { host, port } = self else {
            return Ok(false);
        };
        let addr = format!("{host}:{}", *port + 1);
        let mut s = connect(host, *port + 1, timeout)?;
        let fail = |source| Error::Io {
            tcti: format!("swtpm control channel {addr}"),
            source,
        };
        s.set_write_timeout(Some(timeout)).map_err(fail)?;
        let mut req = CMD_INIT.to_be_bytes().to_vec();
        req.extend_from_slice(&0u32.to_be_bytes());
        s.write_all(&req).map_err(fail)?;
        let mut result = [0u8; 4];
        read_exact_by(&mut s, &mut result, Instant::now() + timeout).map_err(fail)?;
        match u32::from_be_bytes(result) {
            0 => Ok(true),
            rc => Err(Error::Config(format!(
                "swtpm control channel {addr}: CMD_INIT failed with {rc:#x}"
            ))),
        }
    }
}

fn open_device(path: &Path) -> Result<Transport> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(|source| {
            if source.kind() == ErrorKind::NotFound {
                Error::NoDevice(path.display().to_string())
            } else {
                Error::Open {
                    path: path.display().to_string(),
                    source,
                }
            }
        })?;
    Ok(Transport::Device {
        file,
        path: path.display().to_string(),
    })
}

fn wait_readable(file: &File, left: Duration) -> std::io::Result<bool> {
    let end = Instant::now() + left;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let ts = Timespec::try_from(left).map_err(|_| ErrorKind::InvalidInput)?;
        let mut fds = [PollFd::new(file, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

fn connect(host: &str, port: u16, timeout: Duration) -> Result<TcpStream> {
    let addr = format!("{host}:{port}");
    let fail = |source| Error::Connect {
        addr: addr.clone(),
        source,
    };
    let mut last = None;
    for a in (host, port).to_socket_addrs().map_err(fail)? {
        match TcpStream::connect_timeout(&a, timeout.max(Duration::from_millis(1))) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(fail(
        last.unwrap_or_else(|| ErrorKind::AddrNotAvailable.into()),
    ))
}

/// Fills `buf` before `deadline` (each read gets the time that is left).
fn read_exact_by(s: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> std::io::Result<()> {
    let mut at = 0;
    while at < buf.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ErrorKind::TimedOut.into());
        }
        s.set_read_timeout(Some(left))?;
        match s.read(&mut buf[at..]) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => at += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The size a response header declares, within [HEADER, MAX_RESPONSE].
fn declared_size(head: &[u8], command: &'static str) -> Result<usize> {
    let size = u32::from_be_bytes([head[2], head[3], head[4], head[5]]) as usize;
    if !(HEADER..=MAX_RESPONSE).contains(&size) {
        return Err(Error::Malformed {
            what: command,
            reason: format!("declared size {size} outside {HEADER}..={MAX_RESPONSE}"),
        });
    }
    Ok(size)
}
