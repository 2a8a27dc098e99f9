//! Which volumes to open, and on which block devices they are.
//!
//! Wanted volumes come from `rd.luks.uuid=` / `rd.luks.name=` and the
//! initrd's `/etc/crypttab`; with neither, every LUKS device that carries a
//! clevis binding. Devices are found by reading their first sectors
//! ([`latchkey_sys::blkid`]), so no udev is needed; a wanted device that has not
//! appeared yet is waited for until the deadline.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use latchkey_luks::Header;
use latchkey_sys::blkid::{self, Probe};
use latchkey_sys::dm::DevId;
use latchkey_sys::proc::{self, BlockDevice};

use crate::cmdline::{Config, normalize_uuid};
use crate::crypttab::{DeviceSpec, Entry};
use crate::kmsg_log::Log;

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
    /// `NAME (UUID)`, how messages name a volume.
    pub fn label(&self) -> String {
        format!("{} ({})", self.name, self.header.uuid())
    }
}

/// The volumes the command line and crypttab ask for, in that order, each
/// once. Crypttab entries marked `noauto` are left out unless the command line
/// names them too.
pub fn wanted(cfg: &Config, crypttab: &[Entry]) -> Vec<Wanted> {
    let mut out: Vec<Wanted> = Vec::new();
    let mut uuids: Vec<String> = cfg.luks_uuids.iter().map(|u| normalize_uuid(u)).collect();
    for (u, _) in &cfg.luks_names {
        let u = normalize_uuid(u);
        if !uuids.contains(&u) {
            uuids.push(u);
        }
    }
    for uuid in uuids {
        let tab = crypttab
            .iter()
            .find(|e| e.device == DeviceSpec::Uuid(uuid.clone()));
        let named_on_cmdline = cfg
            .luks_names
            .iter()
            .any(|(u, _)| normalize_uuid(u) == uuid);
        let name = match tab {
            Some(e) if !named_on_cmdline => e.name.clone(),
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
    if cfg.luks_uuids.is_empty() && cfg.luks_names.is_empty() {
        for e in crypttab.iter().filter(|e| !e.has("noauto")) {
            if !out.iter().any(|w| w.name == e.name) {
                out.push(Wanted {
                    name: e.name.clone(),
                    device: e.device.clone(),
                    options: e.options.clone(),
                });
            }
        }
    }
    out
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
        (DeviceSpec::Path(p), _) => same_device(p, &s.dev),
        _ => false,
    }
}

fn same_device(path: &Path, dev: &BlockDevice) -> bool {
    path == dev.dev_path()
        || std::fs::canonicalize(path).ok() == std::fs::canonicalize(dev.dev_path()).ok()
}

/// Finds the block device named by `spec` (UUID, LABEL or path), waiting for
/// it until `until`. Used for the boot partition too.
pub fn find_device(spec: &DeviceSpec, until: Instant) -> Option<BlockDevice> {
    loop {
        if let Some(s) = scan().into_iter().find(|s| matches(spec, s)) {
            return Some(s.dev);
        }
        if Instant::now() >= until {
            return None;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn open(name: &str, options: Vec<String>, dev: &BlockDevice) -> Result<Volume, String> {
    let path = dev.dev_path();
    let mut f = File::open(&path).map_err(|e| format!("opening {}: {e}", path.display()))?;
    let header = Header::read(&mut f)
        .map_err(|e| format!("reading the LUKS header of {}: {e}", path.display()))?;
    Ok(Volume {
        name: name.to_owned(),
        path,
        dev: dev.dev,
        sectors: dev.sectors,
        header,
        options,
    })
}

/// Locates every wanted volume, waiting for late devices until `until`.
/// Returns the volumes found and, for the rest, why not.
pub fn locate(
    wanted: &[Wanted],
    until: Instant,
    log: &Log,
) -> (Vec<Volume>, Vec<(String, String)>) {
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
                    format!("{} holds no LUKS header", s.dev.dev_path().display()),
                ));
                false
            }
            None => true,
        });
        if left.is_empty() || Instant::now() >= until {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    for w in left {
        missing.push((
            w.name.clone(),
            format!("no device with {} appeared", describe(&w.device)),
        ));
    }
    for v in &found {
        log.info(&format!("found {} on {}", v.label(), v.path.display()));
    }
    (found, missing)
}

/// Every LUKS device with at least one clevis binding, named `luks-UUID`
/// (what is opened when nothing names a volume). Waits briefly for devices to
/// show up: `settle` after the first LUKS device is seen.
pub fn discover(cfg: &Config, until: Instant) -> Vec<Volume> {
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
        if !vols.is_empty() || Instant::now() >= until {
            return vols;
        }
        thread::sleep(Duration::from_millis(100));
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
    use crate::{cmdline, crypttab};

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
        let w = wanted(&cfg, &tab);
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
        let w = wanted(&cfg, &tab);
        assert_eq!(
            w.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(),
            ["root"]
        );
    }

    #[test]
    fn nothing_named_means_nothing_wanted() {
        let (cfg, _) = cmdline::parse("root=/dev/mapper/x");
        assert!(wanted(&cfg, &[]).is_empty());
    }
}
