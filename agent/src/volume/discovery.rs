//! Which volumes to open, and on which block devices they are.
//!
//! Wanted volumes come from `rd.luks.uuid=` / `rd.luks.name=` and the
//! initrd's `/etc/crypttab`; with neither, every LUKS device that carries a
//! clevis binding. Devices are found by reading their first sectors, or
//! their disk's partition table for `PARTUUID=`/`PARTLABEL=`
//! ([`latchkey_sys::blkid`]), so no udev is needed; a wanted device that has not
//! appeared yet is waited for until the deadline.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use latchkey_client::time::Deadline;
use latchkey_luks::Header;
use latchkey_sys::blkid::{self, Probe};
use latchkey_sys::dm::DevId;
use latchkey_sys::proc::{self, BlockDevice, DmMapping};

use super::crypttab::{DeviceSpec, Entry};
use crate::cmdline::{VolumeOptions, normalize_uuid};
use crate::error::Error;

/// A volume asked for, not yet located.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    /// Mapping name (`/dev/mapper/NAME`).
    pub name: String,
    /// Where it is.
    pub device: DeviceSpec,
    /// Activation options (`discard`, ...).
    pub options: Vec<String>,
}

/// A located LUKS volume with its parsed header.
pub struct Volume {
    /// Mapping name.
    pub name: String,
    /// The device holding the LUKS header.
    pub path: PathBuf,
    /// Its device number (for the dm table).
    pub dev: DevId,
    /// Its size in 512-byte sectors.
    pub sectors: u64,
    /// The header.
    pub header: Header,
    /// Activation options.
    pub options: Vec<String>,
}

impl Volume {
    /// The volume `name` on `path`.
    pub fn new(
        name: String,
        path: PathBuf,
        dev: DevId,
        sectors: u64,
        header: Header,
        options: Vec<String>,
    ) -> Volume {
        Volume {
            name,
            path,
            dev,
            sectors,
            header,
            options,
        }
    }

    /// `NAME (UUID)`, how messages name a volume; only `NAME` when that is
    /// `luks-UUID` and so names the UUID already.
    pub fn label(&self) -> String {
        let uuid = self.header.uuid();
        if self
            .name
            .eq_ignore_ascii_case(&crate::cmdline::default_name(uuid))
        {
            self.name.clone()
        } else {
            format!("{} ({uuid})", self.name)
        }
    }
}

/// The volumes the command line and crypttab ask for, in that order, each
/// once. Crypttab entries marked `noauto` are left out unless the command line
/// names them too.
pub fn wanted(cfg: &VolumeOptions, crypttab: &[Entry]) -> Vec<Wanted> {
    let mut out: Vec<Wanted> = Vec::new();
    let mut uuids: Vec<String> = cfg.uuids.iter().map(|u| normalize_uuid(u)).collect();
    for (u, _) in &cfg.names {
        let u = normalize_uuid(u);
        if !uuids.contains(&u) {
            uuids.push(u);
        }
    }
    for uuid in uuids {
        let tab = crypttab
            .iter()
            .find(|e| e.device == DeviceSpec::Uuid(uuid.clone()));
        let named_on_cmdline = cfg.names.iter().any(|(u, _)| normalize_uuid(u) == uuid);
        let name = match tab {
            Some(e) if !named_on_cmdline => dm_name(&e.name),
            _ => cfg.name_for(&uuid),
        };
        let mut options = tab.map(|e| e.options.clone()).unwrap_or_default();
        options.extend(cfg.options_for(&uuid));
        out.push(Wanted {
            name,
            device: DeviceSpec::Uuid(uuid),
            options,
        });
    }
    // With rd.luks.uuid= given, it is the whole list (as systemd-cryptsetup-generator does).
    if cfg.uuids.is_empty() && cfg.names.is_empty() {
        for e in crypttab.iter().filter(|e| !e.has("noauto")) {
            if !out.iter().any(|w| w.name == e.name) {
                out.push(Wanted {
                    name: dm_name(&e.name),
                    device: e.device.clone(),
                    options: e.options.clone(),
                });
            }
        }
    }
    out
}

/// The kernel's name for mapping `name`, mangled as cryptsetup's
/// libdevmapper does, so `/dev/mapper/` holds what the initrd waits for; a
/// name libdevmapper would refuse stays as given.
pub(crate) fn dm_name(name: &str) -> String {
    latchkey_sys::dm::mangle_name(name).unwrap_or_else(|| name.to_owned())
}

/// A block device and what it holds.
struct Seen {
    dev: BlockDevice,
    ident: Option<Probe>,
}

impl Seen {
    fn is_luks(&self) -> bool {
        self.ident
            .as_ref()
            .is_some_and(|p| p.fstype == "crypto_LUKS")
    }
}

fn scan() -> Vec<Seen> {
    proc::block_devices()
        .unwrap_or_default()
        .into_iter()
        .filter(|d| !d.name.starts_with("loop") && !d.name.starts_with("ram") && d.sectors > 0)
        .map(|dev| {
            let ident = blkid::probe(&dev.dev_path()).ok().flatten();
            Seen { dev, ident }
        })
        .collect()
}

fn matches(spec: &DeviceSpec, s: &Seen) -> bool {
    match (spec, &s.ident) {
        (DeviceSpec::Uuid(u), Some(id)) => id
            .uuid
            .as_deref()
            .is_some_and(|v| v.eq_ignore_ascii_case(u)),
        (DeviceSpec::Label(l), Some(id)) => id.label.as_deref() == Some(l.as_str()),
        (DeviceSpec::Path(p), _) => is_device(p, &s.dev),
        (DeviceSpec::PartUuid(u), _) => {
            partition(s).is_some_and(|p| p.uuid.eq_ignore_ascii_case(u))
        }
        (DeviceSpec::PartLabel(l), _) => {
            partition(s).is_some_and(|p| p.label.as_deref() == Some(l.as_str()))
        }
        _ => false,
    }
}

/// What the disk's partition table says about `s`, read only when a
/// `PARTUUID=`/`PARTLABEL=` is looked for; a table that cannot be read
/// matches nothing.
fn partition(s: &Seen) -> Option<blkid::PartitionId> {
    if !s.dev.partition {
        return None;
    }
    blkid::partition_id(&s.dev.name).ok().flatten()
}

fn is_device(path: &Path, dev: &BlockDevice) -> bool {
    path == dev.dev_path()
        || std::fs::canonicalize(path).ok() == std::fs::canonicalize(dev.dev_path()).ok()
}

/// Finds the block device named by `spec` (UUID, LABEL, PARTUUID, PARTLABEL
/// or path), waiting for
/// it until `until`. Used for the boot partition too.
pub fn find_device(spec: &DeviceSpec, until: Deadline) -> Option<BlockDevice> {
    loop {
        if let Some(s) = scan().into_iter().find(|s| matches(spec, s)) {
            return Some(s.dev);
        }
        if until.expired(Instant::now()) {
            return None;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn open(name: &str, options: Vec<String>, dev: &BlockDevice) -> Result<Volume, Error> {
    let path = dev.dev_path();
    let header = read_header(&path)?;
    Ok(Volume::new(
        name.to_owned(),
        path,
        dev.dev,
        dev.sectors,
        header,
        options,
    ))
}

/// Reads the LUKS header of the device or image at `path`.
pub(crate) fn read_header(path: &Path) -> Result<Header, Error> {
    let mut f = File::open(path).map_err(|source| Error::Open {
        path: path.to_owned(),
        source,
    })?;
    Header::read(&mut f).map_err(|source| Error::Header {
        path: path.to_owned(),
        source,
    })
}

/// Locates every wanted volume, waiting for late devices until `until`.
/// Returns the volumes found and, for the rest, why not.
pub fn locate(wanted: &[Wanted], until: Deadline) -> (Vec<Volume>, Vec<(String, Error)>) {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    let mut left: Vec<&Wanted> = wanted.iter().collect();
    loop {
        let seen = scan();
        left.retain(|w| match seen.iter().find(|s| matches(&w.device, s)) {
            Some(s) if s.is_luks() => {
                match open(&w.name, w.options.clone(), &s.dev) {
                    Ok(v) => found.push(v),
                    Err(e) => missing.push((w.name.clone(), e)),
                }
                false
            }
            Some(s) => {
                missing.push((
                    w.name.clone(),
                    Error::NotLuks {
                        path: s.dev.dev_path(),
                    },
                ));
                false
            }
            None => true,
        });
        if left.is_empty() || until.expired(Instant::now()) {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    for w in left {
        missing.push((
            w.name.clone(),
            Error::NoDevice {
                spec: describe(&w.device),
            },
        ));
    }
    (found, missing)
}

/// Every LUKS device with at least one clevis binding, named `luks-UUID`
/// (what is opened when nothing names a volume). Waits briefly for devices to
/// show up: `settle` after the first LUKS device is seen.
pub fn discover(cfg: &VolumeOptions, until: Deadline) -> Vec<Volume> {
    loop {
        let vols: Vec<Volume> = scan()
            .iter()
            .filter(|s| s.is_luks())
            .filter_map(|s| {
                let uuid = s
                    .ident
                    .as_ref()
                    .and_then(|i| i.uuid.clone())
                    .unwrap_or_default();
                open(&cfg.name_for(&uuid), cfg.options_for(&uuid), &s.dev).ok()
            })
            .filter(|v| !v.header.clevis_bindings().is_empty())
            .collect();
        if !vols.is_empty() || until.expired(Instant::now()) {
            return vols;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Why `b` is the same device as `a`, if it is.
fn same_device(a: &Volume, b: &Volume) -> Option<&'static str> {
    let known = |d: DevId| d != DevId { major: 0, minor: 0 };
    if known(a.dev) && a.dev == b.dev {
        Some("the same device number")
    } else if a.header.uuid().eq_ignore_ascii_case(b.header.uuid()) {
        // Two paths to one disk (multipath legs, a RAID member and its
        // array) show the same header.
        Some("the same LUKS UUID")
    } else if std::fs::canonicalize(&a.path)
        .is_ok_and(|p| Some(p) == std::fs::canonicalize(&b.path).ok())
    {
        Some("the same file")
    } else if a.name == b.name {
        Some("the same mapping name")
    } else {
        None
    }
}

/// Keeps the first volume of each device and refuses the others, naming
/// both: one device named twice (two crypttab lines, a UUID and a path,
/// two paths of one disk) must not be mapped twice.
pub fn distinct(vols: Vec<Volume>) -> (Vec<Volume>, Vec<(String, Error)>) {
    let mut kept: Vec<Volume> = Vec::new();
    let mut refused = Vec::new();
    for v in vols {
        match kept
            .iter()
            .find_map(|k| same_device(k, &v).map(|why| (k, why)))
        {
            Some((k, why)) => refused.push((
                v.label(),
                Error::SameDevice {
                    path: v.path.clone(),
                    why,
                    kept: k.path.clone(),
                    kept_label: k.label(),
                },
            )),
            None => kept.push(v),
        }
    }
    (kept, refused)
}

/// The hexadecimal LUKS UUID in a dm UUID made by cryptsetup (or us):
/// `CRYPT-LUKS2-<hex>-<name>`.
fn dm_uuid_luks_hex(dm_uuid: &str) -> Option<&str> {
    let rest = dm_uuid
        .strip_prefix("CRYPT-LUKS2-")
        .or_else(|| dm_uuid.strip_prefix("CRYPT-LUKS1-"))?;
    rest.split('-').next()
}

/// What the existing device-mapper mappings say about `vol`: `Ok(true)`
/// when it is open already under its name, `Ok(false)` when nothing is in
/// the way, and an error when its name is taken by a mapping of another
/// device, or the device is mapped already under another name. A mapping
/// is this volume's when its dm UUID carries the volume's LUKS UUID or its
/// table maps the volume's device.
pub fn existing(vol: &Volume, mappings: &[DmMapping]) -> Result<bool, Error> {
    let hex: String = vol
        .header
        .uuid()
        .chars()
        .filter(|&c| c != '-')
        .collect::<String>()
        .to_ascii_lowercase();
    let known = vol.dev != DevId { major: 0, minor: 0 };
    let ours = |m: &DmMapping| {
        dm_uuid_luks_hex(&m.uuid).is_some_and(|h| h.eq_ignore_ascii_case(&hex))
            || (known && m.slaves.contains(&vol.dev))
    };
    if let Some(m) = mappings.iter().find(|m| m.name == vol.name) {
        if ours(m) {
            return Ok(true);
        }
        return Err(Error::NameTaken {
            name: vol.name.clone(),
            uuid: m.uuid.clone(),
            on: m.slaves.iter().map(|d| d.to_string()).collect(),
            path: vol.path.clone(),
        });
    }
    match mappings.iter().find(|m| ours(m)) {
        Some(m) => Err(Error::MappedElsewhere {
            path: vol.path.clone(),
            existing: m.name.clone(),
            name: vol.name.clone(),
        }),
        None => Ok(false),
    }
}

/// `UUID=…`, `LABEL=…` or the path, for messages.
pub fn describe(spec: &DeviceSpec) -> String {
    match spec {
        DeviceSpec::Uuid(u) => format!("UUID={u}"),
        DeviceSpec::PartUuid(u) => format!("PARTUUID={u}"),
        DeviceSpec::Label(l) => format!("LABEL={l}"),
        DeviceSpec::PartLabel(l) => format!("PARTLABEL={l}"),
        DeviceSpec::Path(p) => p.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdline;
    use crate::volume::crypttab;

    #[test]
    fn cmdline_names_win_and_crypttab_fills_in() {
        let (cfg, _) = cmdline::parse(
            "rd.luks.uuid=luks-AAAAAAAA-0000-4000-8000-000000000001 \
             rd.luks.name=aaaaaaaa-0000-4000-8000-000000000002=data rd.luks.options=discard",
        );
        let (tab, _) = crypttab::parse(
            "cryptroot UUID=aaaaaaaa-0000-4000-8000-000000000001 none luks,same-cpu-crypt\n\
             other UUID=bbbbbbbb-0000-4000-8000-000000000009 none luks\n",
        );
        let w = wanted(&cfg.volumes, &tab);
        assert_eq!(w.len(), 2, "{w:?}");
        assert_eq!(w[0].name, "cryptroot");
        assert_eq!(
            w[0].device,
            DeviceSpec::Uuid("aaaaaaaa-0000-4000-8000-000000000001".into())
        );
        assert_eq!(w[0].options, ["luks", "same-cpu-crypt", "discard"]);
        assert_eq!(w[1].name, "data");
    }

    #[test]
    fn crypttab_alone_skips_noauto() {
        let (cfg, _) = cmdline::parse("quiet");
        let (tab, _) = crypttab::parse(
            "root UUID=aaaaaaaa-0000-4000-8000-000000000001 none luks\n\
             backup /dev/vdc none luks,noauto\n",
        );
        let w = wanted(&cfg.volumes, &tab);
        assert_eq!(
            w.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(),
            ["root"]
        );
    }

    #[test]
    fn names_as_the_kernel_gets_them_from_cryptsetup() {
        let (cfg, _) =
            cmdline::parse("rd.luks.name=bbbbbbbb-0000-4000-8000-000000000002=cmd\\x20line");
        let (tab, _) = crypttab::parse_with(
            "my\\040disk UUID=aaaaaaaa-0000-4000-8000-000000000001 none luks\n",
            crypttab::Escapes::Debian,
        );
        assert_eq!(wanted(&cfg.volumes, &tab)[0].name, "cmd\\x20line");
        let (cfg, _) = cmdline::parse("quiet");
        assert_eq!(wanted(&cfg.volumes, &tab)[0].name, "my\\x20disk");
    }

    const LUKS2: &[u8] =
        include_bytes!("../../../crates/luks/tests/data/luks2/luks2-bound.first32KiB.bin");
    const LUKS1: &[u8] =
        include_bytes!("../../../crates/luks/tests/data/luks1/luks1-bound.first2MiB.img");
    const LUKS2_UUID: &str = "a5910823-ec8f-46fc-a8c2-7e55a6c70994";

    fn vol(name: &str, path: &str, dev: (u32, u32), header: &[u8]) -> Volume {
        Volume::new(
            name.into(),
            path.into(),
            DevId {
                major: dev.0,
                minor: dev.1,
            },
            1 << 20,
            Header::from_bytes(header).unwrap(),
            vec![],
        )
    }

    #[test]
    fn a_label_names_the_uuid_once() {
        assert_eq!(
            vol("root", "/dev/vda2", (252, 2), LUKS2).label(),
            format!("root ({LUKS2_UUID})")
        );
        let named = format!("luks-{LUKS2_UUID}");
        assert_eq!(vol(&named, "/dev/vda2", (252, 2), LUKS2).label(), named);
        let upper = format!("luks-{}", LUKS2_UUID.to_uppercase());
        assert_eq!(vol(&upper, "/dev/vda2", (252, 2), LUKS2).label(), upper);
        // Another volume's UUID in the name is no reason to leave this one's out.
        let other = "luks-00000000-0000-4000-8000-000000000001";
        assert_eq!(
            vol(other, "/dev/vda2", (252, 2), LUKS2).label(),
            format!("{other} ({LUKS2_UUID})")
        );
    }

    #[test]
    fn one_device_is_opened_once() {
        let (kept, refused) = distinct(vec![
            vol("root", "/dev/vda2", (252, 2), LUKS2),
            vol("other", "/dev/vdb", (252, 16), LUKS1),
            // crypttab named the same partition by path under another name
            vol("again", "/dev/disk/by-x/vda2", (252, 2), LUKS2),
            // a second path to the same disk: another device number, the same header
            vol("leg", "/dev/sdb", (8, 16), LUKS2),
        ]);
        let names: Vec<&str> = kept.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["root", "other"]);
        assert_eq!(refused.len(), 2);
        assert_eq!(refused[0].0, format!("again ({LUKS2_UUID})"));
        assert_eq!(
            refused[0].1.to_string(),
            format!(
                "/dev/disk/by-x/vda2 has the same device number as /dev/vda2 (root ({LUKS2_UUID})); a device is opened once"
            )
        );
        assert!(
            refused[1]
                .1
                .to_string()
                .contains("the same LUKS UUID as /dev/vda2"),
            "{refused:?}"
        );
    }

    #[test]
    fn existing_mappings_are_judged_by_device_not_name() {
        let root = vol("root", "/dev/vda2", (252, 2), LUKS2);
        let mapping = |name: &str, uuid: &str, slave: (u32, u32)| DmMapping {
            name: name.into(),
            uuid: uuid.into(),
            dev: DevId {
                major: 253,
                minor: 0,
            },
            slaves: vec![DevId {
                major: slave.0,
                minor: slave.1,
            }],
        };
        let hex = LUKS2_UUID.replace('-', "");
        assert_eq!(existing(&root, &[]).ok(), Some(false));
        // Opened before, by cryptsetup or an earlier run: fine.
        let ours = mapping("root", &format!("CRYPT-LUKS2-{hex}-root"), (252, 2));
        assert_eq!(existing(&root, &[ours]).ok(), Some(true));
        // The name is taken by another device's mapping.
        let e = existing(
            &root,
            &[mapping(
                "root",
                "CRYPT-LUKS2-00000000000040008000000000000001-root",
                (252, 16),
            )],
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "a mapping named root already exists for another device \
             (dm UUID CRYPT-LUKS2-00000000000040008000000000000001-root, on 252:16); not opening /dev/vda2 over it"
        );
        let e = existing(&root, &[mapping("root", "", (7, 0))])
            .unwrap_err()
            .to_string();
        assert!(e.contains("(no dm UUID, on 7:0)"), "{e}");
        // The device is mapped already, under another name.
        let e = existing(
            &root,
            &[mapping(
                "cryptroot",
                &format!("CRYPT-LUKS2-{hex}-cryptroot"),
                (252, 2),
            )],
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "/dev/vda2 is already open as /dev/mapper/cryptroot; not mapping it a second time as root"
        );
    }

    #[test]
    fn nothing_named_means_nothing_wanted() {
        let (cfg, _) = cmdline::parse("root=/dev/mapper/x");
        assert!(wanted(&cfg.volumes, &[]).is_empty());
    }
}
