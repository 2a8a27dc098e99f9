use core::fmt;

use rustix::io::Errno;

/// Result alias for this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Everything that can fail when talking to the kernel. Each variant names
/// the operation and the object (device, interface, path) it was about.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// `/dev/mapper/control` could not be opened (no device-mapper in this kernel,
    /// or the node is missing and could not be created).
    DmControl(Errno),
    /// The kernel has no device-mapper: `/proc/misc` does not list it, or
    /// the control node has no driver behind it (`dm_mod` is not loaded).
    DmMissing,
    /// The kernel's device-mapper ioctl interface is older than version 4.
    DmVersion {
        /// The version the kernel reported.
        kernel: [u32; 3],
    },
    /// A device-mapper ioctl failed; `cmd` is e.g. `DM_DEV_CREATE`, `name` the mapping.
    DmIoctl {
        /// The ioctl command.
        cmd: &'static str,
        /// The mapping it was about (may be empty for global commands).
        name: String,
        /// The kernel's error.
        errno: Errno,
    },
    /// A mapping name or UUID is too long, or contains a NUL or `/`.
    DmBadName(String),
    /// The kernel's reply to a device-mapper ioctl was malformed.
    DmReply(&'static str),
    /// Creating the `/dev/mapper/NAME` node failed.
    DmNode {
        /// The node path.
        path: String,
        /// The kernel's error.
        errno: Errno,
    },
    /// Opening or binding a netlink socket failed.
    NetlinkSocket(Errno),
    /// The kernel rejected a netlink request; `op` is e.g. `RTM_NEWADDR`.
    Netlink {
        /// The request.
        op: &'static str,
        /// The interface index it was about (0 when not applicable).
        ifindex: u32,
        /// The kernel's error.
        errno: Errno,
    },
    /// A netlink reply could not be parsed.
    NetlinkReply(&'static str),
    /// Opening, binding or using the AF_PACKET socket on `ifindex` failed.
    Packet {
        /// What was being done: "socket", "bind", "send", "recv", "poll".
        op: &'static str,
        /// The interface index.
        ifindex: u32,
        /// The kernel's error.
        errno: Errno,
    },
    /// `mount(2)` failed.
    Mount {
        /// The device.
        source: String,
        /// The mount point.
        target: String,
        /// The file system type tried.
        fstype: String,
        /// The kernel's error.
        errno: Errno,
    },
    /// `umount(2)` failed.
    Umount {
        /// The mount point.
        target: String,
        /// The kernel's error.
        errno: Errno,
    },
    /// `mlockall(2)` failed.
    Mlockall(Errno),
    /// Reading or writing a file under /proc, /sys or /dev failed.
    File {
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A file under /proc or /sys did not have the expected format.
    Format {
        /// The path.
        path: String,
        /// What was wrong.
        what: &'static str,
    },
    /// `unshare(2)` failed.
    Unshare(Errno),
    /// Finding or reading a key of the kernel keyring failed (ENOKEY: no such key
    /// in the caller's keyrings).
    Keyring {
        /// "request_key" or "keyctl read".
        op: &'static str,
        /// The key's description.
        description: String,
        /// The kernel's error.
        errno: Errno,
    },
    /// A libcryptsetup call failed.
    Cryptsetup {
        /// The call, e.g. "crypt_init" or "crypt_token_json_set".
        op: &'static str,
        /// The device.
        device: String,
        /// The error libcryptsetup returned.
        errno: Errno,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::DmControl(e) => write!(f, "opening /dev/mapper/control: {e}"),
            Error::DmMissing => write!(
                f,
                "device-mapper is missing from the kernel (no device-mapper in /proc/misc): \
                 load dm_mod and dm_crypt first"
            ),
            Error::DmVersion { kernel: [a, b, c] } => {
                write!(
                    f,
                    "device-mapper ioctl version {a}.{b}.{c} is too old (need 4.x)"
                )
            }
            Error::DmIoctl { cmd, name, errno } if name.is_empty() => write!(f, "{cmd}: {errno}"),
            Error::DmIoctl { cmd, name, errno } => write!(f, "{cmd} on {name:?}: {errno}"),
            Error::DmBadName(n) => write!(f, "invalid device-mapper name or uuid {n:?}"),
            Error::DmReply(w) => write!(f, "malformed device-mapper reply: {w}"),
            Error::DmNode { path, errno } => write!(f, "creating {path}: {errno}"),
            Error::NetlinkSocket(e) => write!(f, "opening rtnetlink socket: {e}"),
            Error::Netlink {
                op,
                ifindex: 0,
                errno,
            } => write!(f, "netlink {op}: {errno}"),
            Error::Netlink { op, ifindex, errno } => {
                write!(f, "netlink {op} on interface #{ifindex}: {errno}")
            }
            Error::NetlinkReply(w) => write!(f, "malformed netlink reply: {w}"),
            Error::Packet { op, ifindex, errno } => {
                write!(f, "packet socket {op} on interface #{ifindex}: {errno}")
            }
            Error::Mount {
                source,
                target,
                fstype,
                errno,
            } => {
                write!(f, "mounting {source} ({fstype}) on {target}: {errno}")
            }
            Error::Umount { target, errno } => write!(f, "unmounting {target}: {errno}"),
            Error::Mlockall(e) => write!(f, "mlockall: {e}"),
            Error::File { path, source } => write!(f, "{path}: {source}"),
            Error::Format { path, what } => write!(f, "{path}: {what}"),
            Error::Unshare(e) => write!(f, "unshare: {e}"),
            Error::Keyring {
                op,
                description,
                errno,
            } => write!(f, "{op} of user key {description:?}: {errno}"),
            Error::Cryptsetup { op, device, errno } => write!(f, "{op} on {device}: {errno}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::File { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl Error {
    /// The kernel error number behind this error, if there is one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::DmControl(e)
            | Error::NetlinkSocket(e)
            | Error::Mlockall(e)
            | Error::Unshare(e)
            | Error::DmIoctl { errno: e, .. }
            | Error::DmNode { errno: e, .. }
            | Error::Netlink { errno: e, .. }
            | Error::Packet { errno: e, .. }
            | Error::Mount { errno: e, .. }
            | Error::Umount { errno: e, .. }
            | Error::Keyring { errno: e, .. }
            | Error::Cryptsetup { errno: e, .. } => Some(*e),
            Error::File { source, .. } => source.raw_os_error().map(Errno::from_raw_os_error),
            _ => None,
        }
    }

    /// True when the error means "device-mapper is not available here"
    /// (missing control node, or ENODEV/ENXIO from the driver).
    pub fn is_no_device_mapper(&self) -> bool {
        matches!(self, Error::DmControl(_) | Error::DmMissing)
            || matches!(self, Error::DmIoctl { cmd: "DM_VERSION", errno, .. }
                if *errno == Errno::NODEV || *errno == Errno::NXIO)
    }
}
