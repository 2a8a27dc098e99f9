//! Reading what the kernel tells through /proc and /sys: the command line,
//! block devices, the kernel release.

use std::path::Path;

use crate::dm::DevId;
use crate::{Error, Result};

/// Reads `/proc/cmdline`.
pub fn read_cmdline() -> Result<String> {
    read_string(Path::new("/proc/cmdline"))
}

/// The running kernel's release (`uname -r`).
pub fn kernel_release() -> String {
    rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned()
}

/// True when running with effective uid 0.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A block device as `/sys/class/block` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockDevice {
    /// Kernel name, e.g. `vda2`, `nvme0n1p3`, `dm-0`.
    pub name: String,
    /// Device number.
    pub dev: DevId,
    /// Size in 512-byte sectors.
    pub sectors: u64,
    /// A partition of another device.
    pub partition: bool,
    /// The `ro` attribute is set.
    pub read_only: bool,
}

impl BlockDevice {
    /// `/dev/NAME`, where devtmpfs puts the node.
    pub fn dev_path(&self) -> std::path::PathBuf {
        Path::new("/dev").join(&self.name)
    }
}

/// Parses a `MAJOR:MINOR` string.
pub fn parse_dev(s: &str) -> Option<DevId> {
    let (ma, mi) = s.split_once(':')?;
    Some(DevId {
        major: ma.parse().ok()?,
        minor: mi.parse().ok()?,
    })
}

fn read_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::File {
        path: path.display().to_string(),
        source,
    })
}

/// Every block device under `/sys/class/block`.
pub fn block_devices() -> Result<Vec<BlockDevice>> {
    block_devices_in(Path::new("/sys/class/block"))
}

/// Every block device under `root` (a `/sys/class/block`-shaped directory),
/// sorted by name. Devices that vanish while being read are skipped.
pub fn block_devices_in(root: &Path) -> Result<Vec<BlockDevice>> {
    let dir = std::fs::read_dir(root).map_err(|source| Error::File {
        path: root.display().to_string(),
        source,
    })?;
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let base = root.join(&name);
        let Ok(dev) = read_string(&base.join("dev")) else {
            continue;
        };
        let dev = parse_dev(dev.trim()).ok_or_else(|| Error::Format {
            path: base.join("dev").display().to_string(),
            what: "not MAJOR:MINOR",
        })?;
        let sectors = read_string(&base.join("size"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let read_only = read_string(&base.join("ro")).is_ok_and(|s| s.trim() == "1");
        let partition = base.join("partition").exists();
        out.push(BlockDevice {
            name,
            dev,
            sectors,
            partition,
            read_only,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// A device-mapper mapping, as sysfs shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DmMapping {
    /// Its name (`/dev/mapper/NAME`).
    pub name: String,
    /// Its dm UUID (`CRYPT-LUKS2-…-NAME` when cryptsetup made it); may be empty.
    pub uuid: String,
    /// Its own device number.
    pub dev: DevId,
    /// The devices its table maps (sysfs `slaves`).
    pub slaves: Vec<DevId>,
}

/// Every device-mapper mapping under `/sys/class/block`.
pub fn dm_mappings() -> Result<Vec<DmMapping>> {
    dm_mappings_in(Path::new("/sys/class/block"))
}

/// Every mapping under `root` (a `/sys/class/block`-shaped directory): the
/// entries with a `dm/name`. Mappings that vanish while being read are
/// skipped.
pub fn dm_mappings_in(root: &Path) -> Result<Vec<DmMapping>> {
    let mut out = Vec::new();
    for dev in block_devices_in(root)? {
        let base = root.join(&dev.name);
        let Ok(name) = read_string(&base.join("dm/name")) else {
            continue;
        };
        let uuid = read_string(&base.join("dm/uuid")).unwrap_or_default();
        let mut slaves = Vec::new();
        if let Ok(dir) = std::fs::read_dir(base.join("slaves")) {
            for e in dir.flatten() {
                if let Some(d) = read_string(&e.path().join("dev"))
                    .ok()
                    .and_then(|s| parse_dev(s.trim()))
                {
                    slaves.push(d);
                }
            }
        }
        slaves.sort_by_key(|d| (d.major, d.minor));
        out.push(DmMapping {
            name: name.trim().to_owned(),
            uuid: uuid.trim().to_owned(),
            dev: dev.dev,
            slaves,
        });
    }
    Ok(out)
}

/// The size in 512-byte sectors of the block device with number `dev`.
pub fn block_device_sectors(dev: DevId) -> Result<u64> {
    let path = format!("/sys/dev/block/{}:{}/size", dev.major, dev.minor);
    let s = read_string(Path::new(&path))?;
    s.trim().parse().map_err(|_| Error::Format {
        path,
        what: "not a number",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_numbers() {
        assert_eq!(
            parse_dev("253:0"),
            Some(DevId {
                major: 253,
                minor: 0
            })
        );
        assert_eq!(parse_dev("8"), None);
        assert_eq!(parse_dev("a:1"), None);
    }

    #[test]
    fn fake_sysfs() {
        let root = std::env::temp_dir().join(format!("latchkey-sys-block-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for (n, d, s, part) in [
            ("vda", "252:0", "2097152", false),
            ("vda1", "252:1", "1024", true),
        ] {
            let p = root.join(n);
            std::fs::create_dir_all(&p).unwrap();
            std::fs::write(p.join("dev"), format!("{d}\n")).unwrap();
            std::fs::write(p.join("size"), format!("{s}\n")).unwrap();
            std::fs::write(p.join("ro"), "0\n").unwrap();
            if part {
                std::fs::write(p.join("partition"), "1\n").unwrap();
            }
        }
        std::fs::create_dir_all(root.join("gone")).unwrap();
        let l = block_devices_in(&root).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].name, "vda");
        assert_eq!(l[0].sectors, 2097152);
        assert!(!l[0].partition && l[1].partition);
        assert_eq!(
            l[1].dev,
            DevId {
                major: 252,
                minor: 1
            }
        );
        assert_eq!(l[1].dev_path(), Path::new("/dev/vda1"));
    }

    #[test]
    fn fake_sysfs_mappings() {
        let root = std::env::temp_dir().join(format!("latchkey-sys-dm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dev = |p: &Path, d: &str| {
            std::fs::create_dir_all(p).unwrap();
            std::fs::write(p.join("dev"), format!("{d}\n")).unwrap();
        };
        dev(&root.join("vda"), "252:0");
        dev(&root.join("vda2"), "252:2");
        dev(&root.join("dm-0"), "253:0");
        std::fs::create_dir_all(root.join("dm-0/dm")).unwrap();
        std::fs::write(root.join("dm-0/dm/name"), "root\n").unwrap();
        std::fs::write(root.join("dm-0/dm/uuid"), "CRYPT-LUKS2-0123-root\n").unwrap();
        std::fs::create_dir_all(root.join("dm-0/slaves")).unwrap();
        std::os::unix::fs::symlink(root.join("vda2"), root.join("dm-0/slaves/vda2")).unwrap();
        let m = dm_mappings_in(&root).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(
            m,
            vec![DmMapping {
                name: "root".into(),
                uuid: "CRYPT-LUKS2-0123-root".into(),
                dev: DevId {
                    major: 253,
                    minor: 0
                },
                slaves: vec![DevId {
                    major: 252,
                    minor: 2
                }],
            }]
        );
    }

    #[test]
    fn live_system() {
        assert!(!kernel_release().is_empty());
        assert!(!read_cmdline().unwrap().is_empty());
    }
}
