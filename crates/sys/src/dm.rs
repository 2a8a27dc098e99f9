//! Device-mapper ioctls on `/dev/mapper/control`, enough to activate one
//! dm-crypt mapping without libdevmapper: create, load, resume, remove,
//! status and list.
//!
//! A resume carries the udev flags libdevmapper would put in its cookie
//! ([`Nodes`]): the kernel passes them to udev as `DM_COOKIE`, and udev's dm
//! rules only treat a device as ready (`/dev/mapper/NAME`, blkid, systemd's
//! device unit) when they say the event came from the activating program.
//!
//! The table line carries the volume key, so the ioctl buffer for
//! `DM_TABLE_LOAD` is flagged `DM_SECURE_DATA_FLAG` (the kernel wipes its
//! copy) and our own copy is zeroized when dropped.

use std::fs::File;
use std::io::ErrorKind;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{CWD, FileType, Mode, OFlags};
use rustix::io::Errno;
use rustix::ioctl::{Ioctl, IoctlOutput, Opcode, opcode};
use zeroize::Zeroizing;

use crate::{Error, Result};

/// Path of the device-mapper control node.
pub const CONTROL_PATH: &str = "/dev/mapper/control";

const HEADER_LEN: usize = 312;
const NAME_LEN: usize = 128;
const UUID_LEN: usize = 129;
const SPEC_LEN: usize = 40;

const OFF_DATA_SIZE: usize = 12;
const OFF_DATA_START: usize = 16;
const OFF_TARGET_COUNT: usize = 20;
const OFF_OPEN_COUNT: usize = 24;
const OFF_FLAGS: usize = 28;
const OFF_EVENT_NR: usize = 32;
const OFF_DEV: usize = 40;
const OFF_NAME: usize = 48;
const OFF_UUID: usize = OFF_NAME + NAME_LEN;

const DM_READONLY_FLAG: u32 = 1 << 0;
const DM_SUSPEND_FLAG: u32 = 1 << 1;
const DM_ACTIVE_PRESENT_FLAG: u32 = 1 << 5;
const DM_INACTIVE_PRESENT_FLAG: u32 = 1 << 6;
const DM_BUFFER_FULL_FLAG: u32 = 1 << 8;
const DM_SECURE_DATA_FLAG: u32 = 1 << 15;

/// The misc device minor of device-mapper's control node (`MAPPER_CTRL_MINOR`),
/// and the misc major.
const MISC_MAJOR: u32 = 10;

// udev flags of libdevmapper (libdevmapper.h), sent in the high 16 bits of
// the cookie; the low 16 bits name a semaphore, and 0 there means "flags
// only, nobody waits" (dmsetup udevcomplete then does nothing).
const DM_UDEV_FLAGS_SHIFT: u32 = 16;
const DM_UDEV_DISABLE_LIBRARY_FALLBACK: u16 = 0x0020;
const DM_UDEV_PRIMARY_SOURCE_FLAG: u16 = 0x0040;

/// Who creates `/dev/mapper/NAME` once a device is resumed; told to udev in
/// the resume's cookie, as cryptsetup does through libdevmapper.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nodes {
    /// udev runs and makes the node from its dm rules
    /// (`DM_UDEV_PRIMARY_SOURCE_FLAG | DM_UDEV_DISABLE_LIBRARY_FALLBACK`).
    Udev,
    /// No udev: the caller makes the node itself ([`make_node`]); the event
    /// is still marked as coming from the activating program
    /// (`DM_UDEV_PRIMARY_SOURCE_FLAG`), as libdevmapper always marks it.
    Caller,
}

impl Nodes {
    /// The `event_nr` of the resume: the flags in the cookie's high half,
    /// no semaphore.
    pub fn cookie(self) -> u32 {
        let flags = match self {
            Nodes::Udev => DM_UDEV_PRIMARY_SOURCE_FLAG | DM_UDEV_DISABLE_LIBRARY_FALLBACK,
            Nodes::Caller => DM_UDEV_PRIMARY_SOURCE_FLAG,
        };
        u32::from(flags) << DM_UDEV_FLAGS_SHIFT
    }
}

#[derive(Clone, Copy)]
enum Cmd {
    Version = 0,
    ListDevices = 2,
    DevCreate = 3,
    DevRemove = 4,
    DevSuspend = 6,
    DevStatus = 7,
    TableLoad = 9,
}

impl Cmd {
    fn name(self) -> &'static str {
        match self {
            Cmd::Version => "DM_VERSION",
            Cmd::ListDevices => "DM_LIST_DEVICES",
            Cmd::DevCreate => "DM_DEV_CREATE",
            Cmd::DevRemove => "DM_DEV_REMOVE",
            Cmd::DevSuspend => "DM_DEV_SUSPEND",
            Cmd::DevStatus => "DM_DEV_STATUS",
            Cmd::TableLoad => "DM_TABLE_LOAD",
        }
    }
}

/// A block device number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DevId {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

impl DevId {
    /// Decodes the kernel's `huge_encode_dev` form used in `struct dm_ioctl`.
    pub fn from_huge(dev: u64) -> DevId {
        DevId {
            major: ((dev >> 8) & 0xfff) as u32,
            minor: ((dev & 0xff) | ((dev >> 12) & 0xfff00)) as u32,
        }
    }
}

impl core::fmt::Display for DevId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

/// What `DM_DEV_STATUS` says about a mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevInfo {
    /// The mapping's block device number.
    pub dev: DevId,
    /// How many openers the device has.
    pub open_count: i32,
    /// Number of targets in the live table.
    pub target_count: u32,
    /// A live table is loaded.
    pub active: bool,
    /// An inactive table is loaded and waiting for a resume.
    pub inactive_loaded: bool,
    /// The device is suspended.
    pub suspended: bool,
    /// The device is read-only.
    pub read_only: bool,
}

/// One target of a table: `start` and `len` in 512-byte sectors, a target
/// type such as `crypt`, and its parameter string (which may hold a key).
pub struct Target<'a> {
    /// First sector covered.
    pub start: u64,
    /// Number of sectors covered.
    pub len: u64,
    /// Target type, e.g. `crypt`.
    pub kind: &'a str,
    /// Target parameters (for `crypt`: cipher, key, iv offset, device, offset, options).
    pub params: &'a str,
}

/// An open `/dev/mapper/control`.
pub struct Control {
    fd: OwnedFd,
}

struct DmCall<'a> {
    nr: u8,
    buf: &'a mut [u8],
}

// SAFETY: every device-mapper ioctl is `_IOWR(0xfd, nr, struct dm_ioctl)`;
// the kernel reads `data_size` bytes from the pointer and writes at most
// `data_size` bytes back. `DmCall` is only built by `Control::call`, which
// makes `buf` at least `HEADER_LEN` long and writes `buf.len()` as
// `data_size`, so the kernel never touches memory outside `buf`.
unsafe impl Ioctl for DmCall<'_> {
    type Output = ();
    const IS_MUTATING: bool = true;

    fn opcode(&self) -> Opcode {
        opcode::read_write::<[u8; HEADER_LEN]>(0xfd, self.nr)
    }

    fn as_ptr(&mut self) -> *mut core::ffi::c_void {
        self.buf.as_mut_ptr().cast()
    }

    unsafe fn output_from_ptr(_: IoctlOutput, _: *mut core::ffi::c_void) -> rustix::io::Result<()> {
        Ok(())
    }
}

fn put_u32(buf: &mut [u8], off: usize, v: u32) {
    buf[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

fn get_u32(buf: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(buf[off..off + 4].try_into().expect("4 bytes"))
}

fn get_u64(buf: &[u8], off: usize) -> u64 {
    u64::from_ne_bytes(buf[off..off + 8].try_into().expect("8 bytes"))
}

/// The name libdevmapper gives the kernel for `name` under its default
/// ("auto") mangling, which is what cryptsetup and systemd-cryptsetup
/// create: every byte udev would not keep in `/dev/mapper/` (anything but
/// ASCII letters, digits and `#+-.:=@_`) becomes `\xNN`, and a name
/// already in that form (`\xNN` sequences only) stays as it is. `None` for
/// a name mixing both, which libdevmapper refuses.
pub fn mangle_name(name: &str) -> Option<String> {
    let b = name.as_bytes();
    let (mut mangled, mut plain) = (false, false);
    let mut out = Vec::with_capacity(name.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            if b.len() - i < 4 || plain {
                return None;
            }
            out.extend_from_slice(&b[i..i + 4]);
            mangled = true;
            i += 4;
            continue;
        }
        match b[i] {
            b'0'..=b'9'
            | b'A'..=b'Z'
            | b'a'..=b'z'
            | b'#'
            | b'+'
            | b'-'
            | b'.'
            | b':'
            | b'='
            | b'@'
            | b'_' => out.push(b[i]),
            c => {
                if mangled {
                    return None;
                }
                plain = true;
                out.extend_from_slice(format!("\\x{c:02x}").as_bytes());
            }
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn check_name(s: &str, max: usize) -> Result<()> {
    if s.len() >= max || s.bytes().any(|b| b == 0) || s.contains('/') {
        return Err(Error::DmBadName(s.to_owned()));
    }
    Ok(())
}

/// A zeroed ioctl buffer with header and `extra` bytes of payload.
fn buffer(extra: usize, flags: u32, name: &str, uuid: &str) -> Zeroizing<Vec<u8>> {
    let len = (HEADER_LEN + extra).next_multiple_of(8);
    let mut buf = Zeroizing::new(vec![0u8; len]);
    put_u32(&mut buf, 0, 4);
    put_u32(&mut buf, 4, 0);
    put_u32(&mut buf, 8, 0);
    put_u32(&mut buf, OFF_DATA_SIZE, len as u32);
    put_u32(&mut buf, OFF_DATA_START, HEADER_LEN as u32);
    put_u32(&mut buf, OFF_FLAGS, flags);
    buf[OFF_NAME..OFF_NAME + name.len()].copy_from_slice(name.as_bytes());
    buf[OFF_UUID..OFF_UUID + uuid.len()].copy_from_slice(uuid.as_bytes());
    buf
}

impl Control {
    /// Opens [`CONTROL_PATH`], creating the node from device-mapper's
    /// minor in `/proc/misc` when nobody made it, and checks that the kernel
    /// speaks ioctl version 4. [`Error::DmMissing`] when the kernel has no
    /// device-mapper (`dm_mod` not loaded).
    pub fn open() -> Result<Control> {
        let fd = match open_control(Path::new(CONTROL_PATH)) {
            Err(Errno::NOENT) => {
                let misc = std::fs::read_to_string("/proc/misc").map_err(|source| Error::File {
                    path: "/proc/misc".into(),
                    source,
                })?;
                let minor = misc_minor(&misc, "device-mapper").ok_or(Error::DmMissing)?;
                make_control_node(DevId {
                    major: MISC_MAJOR,
                    minor,
                })
                .map_err(Error::DmControl)?;
                open_control(Path::new(CONTROL_PATH)).map_err(Error::DmControl)?
            }
            // A node made in advance (kmod's static nodes) without the driver behind it.
            Err(Errno::NODEV | Errno::NXIO) => return Err(Error::DmMissing),
            r => r.map_err(Error::DmControl)?,
        };
        let ctl = Control { fd };
        let v = ctl.version()?;
        if v[0] != 4 {
            return Err(Error::DmVersion { kernel: v });
        }
        Ok(ctl)
    }

    fn call(&self, cmd: Cmd, name: &str, buf: &mut [u8]) -> Result<()> {
        debug_assert!(buf.len() >= HEADER_LEN);
        let call = DmCall { nr: cmd as u8, buf };
        // SAFETY: see the `Ioctl` impl of `DmCall`: the buffer is a complete
        // `struct dm_ioctl` whose `data_size` equals the buffer length.
        unsafe { rustix::ioctl::ioctl(self.fd.as_fd(), call) }.map_err(|errno| Error::DmIoctl {
            cmd: cmd.name(),
            name: name.to_owned(),
            errno,
        })
    }

    /// The kernel's device-mapper ioctl interface version.
    pub fn version(&self) -> Result<[u32; 3]> {
        let mut buf = buffer(0, 0, "", "");
        self.call(Cmd::Version, "", &mut buf)?;
        Ok([get_u32(&buf, 0), get_u32(&buf, 4), get_u32(&buf, 8)])
    }

    /// `DM_DEV_CREATE`: a new, empty mapping `name` with DM UUID `uuid`
    /// (empty for none). Returns its device number.
    pub fn create(&self, name: &str, uuid: &str) -> Result<DevId> {
        check_name(name, NAME_LEN)?;
        check_name(uuid, UUID_LEN)?;
        let mut buf = buffer(0, 0, name, uuid);
        self.call(Cmd::DevCreate, name, &mut buf)?;
        Ok(DevId::from_huge(get_u64(&buf, OFF_DEV)))
    }

    /// `DM_TABLE_LOAD` into the inactive slot of `name`. The parameters may
    /// hold a key: the request carries `DM_SECURE_DATA_FLAG` and our buffer
    /// is zeroized on return.
    pub fn load_table(&self, name: &str, targets: &[Target<'_>], read_only: bool) -> Result<()> {
        check_name(name, NAME_LEN)?;
        let mut extra = 0;
        for t in targets {
            if t.kind.len() >= 16 || t.kind.contains('\0') || t.params.contains('\0') {
                return Err(Error::DmBadName(t.kind.to_owned()));
            }
            extra += (SPEC_LEN + t.params.len() + 1).next_multiple_of(8);
        }
        let mut flags = DM_SECURE_DATA_FLAG;
        if read_only {
            flags |= DM_READONLY_FLAG;
        }
        let mut buf = buffer(extra, flags, name, "");
        put_u32(&mut buf, OFF_TARGET_COUNT, targets.len() as u32);
        let mut off = HEADER_LEN;
        for t in targets {
            let step = (SPEC_LEN + t.params.len() + 1).next_multiple_of(8);
            buf[off..off + 8].copy_from_slice(&t.start.to_ne_bytes());
            buf[off + 8..off + 16].copy_from_slice(&t.len.to_ne_bytes());
            put_u32(&mut buf, off + 20, step as u32);
            buf[off + 24..off + 24 + t.kind.len()].copy_from_slice(t.kind.as_bytes());
            let p = off + SPEC_LEN;
            buf[p..p + t.params.len()].copy_from_slice(t.params.as_bytes());
            off += step;
        }
        self.call(Cmd::TableLoad, name, &mut buf)
    }

    /// `DM_DEV_SUSPEND` without the suspend flag: makes the loaded table
    /// live, and tells udev through the cookie who makes the node. Returns
    /// the device number.
    pub fn resume(&self, name: &str, nodes: Nodes) -> Result<DevId> {
        let mut buf = resume_buffer(name, nodes)?;
        self.call(Cmd::DevSuspend, name, &mut buf)?;
        Ok(DevId::from_huge(get_u64(&buf, OFF_DEV)))
    }

    /// `DM_DEV_REMOVE`: deletes the mapping `name`.
    pub fn remove(&self, name: &str) -> Result<()> {
        check_name(name, NAME_LEN)?;
        let mut buf = buffer(0, 0, name, "");
        self.call(Cmd::DevRemove, name, &mut buf)
    }

    /// `DM_DEV_STATUS`: `None` when no mapping `name` exists.
    pub fn status(&self, name: &str) -> Result<Option<DevInfo>> {
        check_name(name, NAME_LEN)?;
        let mut buf = buffer(0, 0, name, "");
        match self.call(Cmd::DevStatus, name, &mut buf) {
            Err(Error::DmIoctl {
                errno: Errno::NXIO, ..
            }) => return Ok(None),
            r => r?,
        }
        let flags = get_u32(&buf, OFF_FLAGS);
        Ok(Some(DevInfo {
            dev: DevId::from_huge(get_u64(&buf, OFF_DEV)),
            open_count: get_u32(&buf, OFF_OPEN_COUNT) as i32,
            target_count: get_u32(&buf, OFF_TARGET_COUNT),
            active: flags & DM_ACTIVE_PRESENT_FLAG != 0,
            inactive_loaded: flags & DM_INACTIVE_PRESENT_FLAG != 0,
            suspended: flags & DM_SUSPEND_FLAG != 0,
            read_only: flags & DM_READONLY_FLAG != 0,
        }))
    }

    /// `DM_LIST_DEVICES`: every mapping's name and device number.
    pub fn list(&self) -> Result<Vec<(String, DevId)>> {
        let mut extra = 4096;
        loop {
            let mut buf = buffer(extra, 0, "", "");
            self.call(Cmd::ListDevices, "", &mut buf)?;
            if get_u32(&buf, OFF_FLAGS) & DM_BUFFER_FULL_FLAG != 0 {
                extra *= 4;
                if extra > 1 << 24 {
                    return Err(Error::DmReply("device list does not fit in 16 MiB"));
                }
                continue;
            }
            return parse_name_list(&buf);
        }
    }
}

fn resume_buffer(name: &str, nodes: Nodes) -> Result<Zeroizing<Vec<u8>>> {
    check_name(name, NAME_LEN)?;
    let mut buf = buffer(0, 0, name, "");
    put_u32(&mut buf, OFF_EVENT_NR, nodes.cookie());
    Ok(buf)
}

/// The minor of misc device `name` in `/proc/misc` text (`" 236 device-mapper"` lines).
fn misc_minor(misc: &str, name: &str) -> Option<u32> {
    misc.lines().find_map(|l| {
        let (minor, n) = l.trim().split_once(' ')?;
        (n.trim() == name).then(|| minor.parse().ok())?
    })
}

fn parse_name_list(buf: &[u8]) -> Result<Vec<(String, DevId)>> {
    let start = get_u32(buf, OFF_DATA_START) as usize;
    let end = (get_u32(buf, OFF_DATA_SIZE) as usize).min(buf.len());
    let mut out = Vec::new();
    let mut off = start;
    loop {
        if off + 12 > end {
            return Err(Error::DmReply("name list entry past the end"));
        }
        let dev = get_u64(buf, off);
        let next = get_u32(buf, off + 8) as usize;
        if dev == 0 && out.is_empty() && next == 0 {
            return Ok(out);
        }
        let name = &buf[off + 12..end];
        let nul = name
            .iter()
            .position(|&b| b == 0)
            .ok_or(Error::DmReply("unterminated name"))?;
        let name = String::from_utf8_lossy(&name[..nul]).into_owned();
        out.push((name, DevId::from_huge(dev)));
        if next == 0 {
            return Ok(out);
        }
        off += next;
    }
}

fn open_control(path: &Path) -> rustix::io::Result<OwnedFd> {
    rustix::fs::open(path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
}

fn make_control_node(dev: DevId) -> rustix::io::Result<()> {
    create_dir(Path::new("/dev/mapper"))?;
    let rdev = rustix::fs::makedev(dev.major, dev.minor);
    rustix::fs::mknodat(
        CWD,
        CONTROL_PATH,
        FileType::CharacterDevice,
        Mode::from_raw_mode(0o600),
        rdev,
    )
}

fn create_dir(p: &Path) -> rustix::io::Result<()> {
    match std::fs::create_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Errno::from_io_error(&e).unwrap_or(Errno::IO)),
    }
}

/// Creates the block node `dir/NAME` for `dev` (mode 0600), replacing a
/// stale node, as udev would have for `/dev/mapper/NAME`. Returns the path.
pub fn make_node_in(dir: &Path, name: &str, dev: DevId) -> Result<PathBuf> {
    check_name(name, NAME_LEN)?;
    let path = dir.join(name);
    let err = |errno| Error::DmNode {
        path: path.display().to_string(),
        errno,
    };
    create_dir(dir).map_err(err)?;
    match rustix::fs::unlink(&path) {
        Ok(()) | Err(Errno::NOENT) => {}
        Err(e) => return Err(err(e)),
    }
    let rdev = rustix::fs::makedev(dev.major, dev.minor);
    rustix::fs::mknodat(
        CWD,
        &path,
        FileType::BlockDevice,
        Mode::from_raw_mode(0o600),
        rdev,
    )
    .map_err(err)?;
    Ok(path)
}

/// [`make_node_in`] for `/dev/mapper`.
pub fn make_node(name: &str, dev: DevId) -> Result<PathBuf> {
    make_node_in(Path::new("/dev/mapper"), name, dev)
}

/// True when `/dev/mapper/NAME` exists (whoever made it).
pub fn node_exists(name: &str) -> bool {
    File::open(Path::new("/dev/mapper").join(name)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_mangled_as_libdevmapper_does() {
        assert_eq!(mangle_name("cryptroot").as_deref(), Some("cryptroot"));
        assert_eq!(
            mangle_name("luks-4c4b.x#+:=@_").as_deref(),
            Some("luks-4c4b.x#+:=@_")
        );
        assert_eq!(mangle_name("my disk").as_deref(), Some("my\\x20disk"));
        assert_eq!(mangle_name("é").as_deref(), Some("\\xc3\\xa9"));
        // Already mangled: kept.
        assert_eq!(mangle_name("my\\x20disk").as_deref(), Some("my\\x20disk"));
        assert_eq!(mangle_name("a\\x2db").as_deref(), Some("a\\x2db"));
        // Mixed, or a truncated sequence: refused.
        assert_eq!(mangle_name("my\\x20big disk"), None);
        assert_eq!(mangle_name("big disk\\x20"), None);
        assert_eq!(mangle_name("a\\x2"), None);
    }

    #[test]
    fn huge_dev_decoding() {
        // huge_encode_dev(MKDEV(253, 0)) and MKDEV(259, 300)
        assert_eq!(
            DevId::from_huge(253 << 8),
            DevId {
                major: 253,
                minor: 0
            }
        );
        let enc = (300 & 0xff) | (259 << 8) | ((300 & !0xff) << 12);
        assert_eq!(
            DevId::from_huge(enc),
            DevId {
                major: 259,
                minor: 300
            }
        );
    }

    #[test]
    fn header_layout() {
        let buf = buffer(10, DM_SECURE_DATA_FLAG, "root", "CRYPT-LUKS2-x-root");
        assert_eq!(buf.len(), 328);
        assert_eq!(get_u32(&buf, 0), 4);
        assert_eq!(get_u32(&buf, OFF_DATA_SIZE), 328);
        assert_eq!(get_u32(&buf, OFF_DATA_START), 312);
        assert_eq!(get_u32(&buf, OFF_FLAGS), 1 << 15);
        assert_eq!(&buf[48..52], b"root");
        assert_eq!(&buf[176..194], b"CRYPT-LUKS2-x-root");
    }

    #[test]
    fn resume_carries_the_udev_cookie() {
        // cryptsetup with udev: DM_UDEV_DISABLE_LIBRARY_FALLBACK, plus the
        // DM_UDEV_PRIMARY_SOURCE_FLAG libdevmapper adds to every resume.
        assert_eq!(Nodes::Udev.cookie(), 0x0060_0000);
        assert_eq!(Nodes::Caller.cookie(), 0x0040_0000);
        let buf = resume_buffer("cryptroot", Nodes::Udev).unwrap();
        assert_eq!(get_u32(&buf, OFF_EVENT_NR), 0x0060_0000);
        assert_eq!(&buf[OFF_NAME..OFF_NAME + 10], b"cryptroot\0");
        assert_eq!(get_u32(&buf, OFF_FLAGS), 0, "a resume, not a suspend");
        assert!(resume_buffer("a/b", Nodes::Caller).is_err());
    }

    #[test]
    fn control_minor_from_proc_misc() {
        let misc = "229 fuse\n 61 vga_arbiter\n236 device-mapper\n 60 device-mapper-x\n";
        assert_eq!(misc_minor(misc, "device-mapper"), Some(236));
        assert_eq!(misc_minor(misc, "fuse"), Some(229));
        assert_eq!(misc_minor("229 fuse\n", "device-mapper"), None);
        assert_eq!(misc_minor("x device-mapper\n", "device-mapper"), None);
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("root", NAME_LEN).is_ok());
        assert!(check_name("a/b", NAME_LEN).is_err());
        assert!(check_name(&"x".repeat(128), NAME_LEN).is_err());
    }

    #[test]
    fn name_list_parsing() {
        let mut buf = buffer(64, 0, "", "");
        let o = HEADER_LEN;
        buf[o..o + 8].copy_from_slice(&(253u64 << 8).to_ne_bytes());
        put_u32(&mut buf, o + 8, 24);
        buf[o + 12..o + 14].copy_from_slice(b"a\0");
        buf[o + 24..o + 32].copy_from_slice(&((253u64 << 8) | 1).to_ne_bytes());
        buf[o + 36..o + 39].copy_from_slice(b"bc\0");
        let l = parse_name_list(&buf).unwrap();
        assert_eq!(
            l,
            vec![
                (
                    "a".into(),
                    DevId {
                        major: 253,
                        minor: 0
                    }
                ),
                (
                    "bc".into(),
                    DevId {
                        major: 253,
                        minor: 1
                    }
                )
            ]
        );
        let empty = buffer(64, 0, "", "");
        assert!(parse_name_list(&empty).unwrap().is_empty());
    }
}
