//! latchkey-sys: the one crate of latchkey that talks to the kernel.
//!
//! ```text
//!   agent ──────────┬──► latchkey-sys ──► kernel (and, in the companion, libcryptsetup)
//!   latchkey-luks ──┘
//!             ├─ alloc     the agent's allocator: a pool that keeps small blocks
//!             ├─ dm        device-mapper ioctls on /dev/mapper/control
//!             ├─ netlink   rtnetlink: links, addresses, routes
//!             ├─ packet    AF_PACKET socket for DHCP before an address exists
//!             ├─ mount     mount/umount, mlockall
//!             ├─ kmsg      /dev/kmsg writer
//!             ├─ proc      /proc/cmdline, /sys/class/block, uname
//!             ├─ file      small configuration files, bounded in time and bytes
//!             ├─ blkid     ext4/FAT/LUKS UUID and label, without udev
//!             ├─ keyring   a `user` key of the kernel keyring (`luks bind -e`)
//!             ├─ rng       the kernel's CSPRNG (getrandom), for every binary and test
//!             ├─ cryptsetup (feature) a LUKS2 token written from text (the companion)
//!             └─ wipecheck tests only: an allocator that finds secrets in freed memory
//! ```
//!
//! Everything here is a thin, typed wrapper over a system call; protocol
//! logic (DHCP, dm table lines, command-line parsing) lives in the callers.
//! Every `unsafe` block carries a `// SAFETY:` comment.

mod error;

pub mod alloc;
pub mod blkid;
#[cfg(feature = "cryptsetup")]
pub mod cryptsetup;
pub mod dm;
pub mod file;
pub mod keyring;
pub mod kmsg;
pub mod mount;
pub mod netlink;
pub mod packet;
pub mod proc;
pub mod rng;
#[cfg(feature = "wipe-check")]
pub mod wipecheck;

pub use error::{Error, Result};
pub use rustix::io::Errno;
