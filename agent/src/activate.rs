//! Maps an unlocked volume with dm-crypt, as `cryptsetup open` would: the
//! same table, the same `CRYPT-LUKS2-<uuid>-<name>` DM UUID, and the
//! `/dev/mapper/NAME` node made by hand since no udev runs.

use latchkey_luks::{DataSize, Unlocked};
use latchkey_sys::dm::{self, Control, Target};

use crate::dm_table::{CryptTarget, DataDevice, Features, Key, LuksVersion, dm_uuid};
use crate::volumes::Volume;

/// The crypt target for `vol` opened as `u`. Options from crypttab and
/// `rd.luks.options=` add to the header's persistent flags.
pub fn target<'a>(vol: &Volume, u: &'a Unlocked) -> CryptTarget<'a> {
    let d = &u.dm;
    let mut features = Features::from_options(&vol.options);
    features.allow_discards |= d.flags.allow_discards;
    features.same_cpu_crypt |= d.flags.same_cpu_crypt;
    features.submit_from_crypt_cpus |= d.flags.submit_from_crypt_cpus;
    features.no_read_workqueue |= d.flags.no_read_workqueue;
    features.no_write_workqueue |= d.flags.no_write_workqueue;
    let offset_bytes = d.offset_sectors * 512;
    let sectors = match d.size {
        DataSize::Dynamic => DataSize::Dynamic.sectors(offset_bytes, vol.sectors * 512),
        fixed => fixed.sectors(offset_bytes, 0),
    };
    CryptTarget {
        sectors,
        cipher: &d.cipher,
        key: Key::Raw(u.volume_key.expose()),
        iv_offset: d.iv_offset,
        device: DataDevice::Dev(vol.dev.major, vol.dev.minor),
        offset: d.offset_sectors,
        sector_size: d.sector_size,
        features,
    }
}

fn version(u: &Unlocked) -> LuksVersion {
    if u.dm.version.number() == 1 {
        LuksVersion::Luks1
    } else {
        LuksVersion::Luks2
    }
}

/// Creates `/dev/mapper/NAME`. An existing mapping of that name is an error
/// (the caller checks [`is_active`] first); a failure after the device was
/// created removes it again.
pub fn activate(vol: &Volume, u: &Unlocked) -> Result<std::path::PathBuf, String> {
    let ctl = Control::open().map_err(|e| e.to_string())?;
    let uuid = dm_uuid(version(u), &u.dm.uuid, &vol.name);
    let t = target(vol, u);
    if t.sectors == 0 {
        return Err(format!(
            "{}: no data area after the LUKS header",
            vol.path.display()
        ));
    }
    let params = t.params();
    let read_only = vol
        .options
        .iter()
        .any(|o| o == "readonly" || o == "read-only");
    ctl.create(&vol.name, &uuid)
        .map_err(|e| format!("creating dm device {}: {e}", vol.name))?;
    let loaded = ctl
        .load_table(
            &vol.name,
            &[Target {
                start: 0,
                len: t.sectors,
                kind: "crypt",
                params: &params,
            }],
            read_only,
        )
        .and_then(|()| ctl.resume(&vol.name));
    let dev = match loaded {
        Ok(dev) => dev,
        Err(e) => {
            let _ = ctl.remove(&vol.name);
            return Err(format!("loading the dm-crypt table of {}: {e}", vol.name));
        }
    };
    if dm::node_exists(&vol.name) {
        return Ok(std::path::Path::new("/dev/mapper").join(&vol.name));
    }
    dm::make_node(&vol.name, dev).map_err(|e| format!("creating /dev/mapper/{}: {e}", vol.name))
}

/// True when a mapping called `name` already exists (opened by someone else).
pub fn is_active(name: &str) -> bool {
    Control::open()
        .ok()
        .and_then(|c| c.status(name).ok().flatten())
        .is_some()
}
