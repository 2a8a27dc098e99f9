//! Maps an unlocked volume with dm-crypt, as `cryptsetup open` would: the
//! same table, the same `CRYPT-LUKS2-<uuid>-<name>` DM UUID, and the same
//! udev cookie flags. Where udev runs (a distribution's initrd) it makes
//! `/dev/mapper/NAME` and marks the device ready for the initrd's own root
//! wait (systemd's device unit, initramfs-tools' wait-for-root), and the
//! agent waits for that, bounded; where none runs the agent makes the node.

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use latchkey_luks::{DataSize, Unlocked};
use latchkey_sys::dm::{self, Control, DevId, Nodes, Target};

use super::Volume;
use super::dm_table::{CryptTarget, DataDevice, Key, dm_uuid, features_from_options};
use crate::error::Error;
use crate::kmsg_log::Log;

/// udev's control socket: present while udevd runs (what libudev's
/// `udev_queue_get_udev_is_active` looks at).
const UDEV_CONTROL: &str = "/run/udev/control";
/// udev's database, one file per device (`b253:0`).
const UDEV_DATA: &str = "/run/udev/data";
/// How long udev gets to run its rules on a new mapping before the agent
/// makes the node itself.
const UDEV_WAIT: Duration = Duration::from_secs(10);
const UDEV_POLL: Duration = Duration::from_millis(10);

/// The crypt target for `vol` opened as `u`. Options from crypttab and
/// `rd.luks.options=` add to the header's persistent flags.
pub fn target<'a>(vol: &Volume, u: &'a Unlocked) -> CryptTarget<'a> {
    let d = &u.dm;
    let features = features_from_options(&vol.options).union(d.flags);
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

/// Creates `/dev/mapper/NAME`. An existing mapping of that name is an error
/// (the caller checks [`crate::volume::existing`] first); a failure after the device was
/// created removes it again.
pub fn activate(vol: &Volume, u: &Unlocked, log: &Log) -> Result<PathBuf, Error> {
    let ctl = Control::open().map_err(Error::DmControl)?;
    let uuid = dm_uuid(u.dm.version, &u.dm.uuid, &vol.name);
    let t = target(vol, u);
    if t.sectors == 0 {
        return Err(Error::NoDataArea {
            path: vol.path.clone(),
        });
    }
    let params = t.params();
    let read_only = vol
        .options
        .iter()
        .any(|o| o == "readonly" || o == "read-only");
    let dm_err = |doing: String| move |source| Error::Dm { doing, source };
    ctl.create(&vol.name, &uuid)
        .map_err(dm_err(format!("creating dm device {}", vol.name)))?;
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
        .and_then(|()| ctl.resume(&vol.name, nodes()));
    let dev = match loaded {
        Ok(dev) => dev,
        Err(e) => {
            let _ = ctl.remove(&vol.name);
            return Err(dm_err(format!(
                "loading the dm-crypt table of {}",
                vol.name
            ))(e));
        }
    };
    if nodes() == Nodes::Udev {
        match wait_for_udev(&vol.name, dev, Instant::now() + UDEV_WAIT) {
            UdevOutcome::Ready => return Ok(Path::new("/dev/mapper").join(&vol.name)),
            UdevOutcome::NoNode => log.warn(&format!(
                "udev processed {} ({dev}) but made no /dev/mapper/{}; making it",
                vol.name, vol.name
            )),
            UdevOutcome::TimedOut => log.warn(&format!(
                "udev did not process {} ({dev}) within {}s; making /dev/mapper/{} without it",
                vol.name,
                UDEV_WAIT.as_secs(),
                vol.name
            )),
        }
    }
    if dm::node_exists(&vol.name) {
        return Ok(Path::new("/dev/mapper").join(&vol.name));
    }
    dm::make_node(&vol.name, dev).map_err(dm_err(format!("creating /dev/mapper/{}", vol.name)))
}

/// udev runs when its control socket exists; then it owns the nodes.
fn nodes() -> Nodes {
    if Path::new(UDEV_CONTROL).exists() {
        Nodes::Udev
    } else {
        Nodes::Caller
    }
}

#[derive(Debug, PartialEq, Eq)]
enum UdevOutcome {
    /// The rules ran on the resume's event and `/dev/mapper/NAME` exists.
    Ready,
    /// The rules ran, but left no `/dev/mapper/NAME` (no dm rules in this initrd).
    NoNode,
    TimedOut,
}

/// Waits until udev's database records the resume's change event of `dev`
/// (the flag the cookie carried, which only that event has) and
/// `/dev/mapper/NAME` exists.
fn wait_for_udev(name: &str, dev: DevId, until: Instant) -> UdevOutcome {
    let db = Path::new(UDEV_DATA).join(format!("b{}:{}", dev.major, dev.minor));
    loop {
        let processed = std::fs::read_to_string(&db).is_ok_and(|t| change_processed(&t));
        if processed {
            // udev writes the database after the symlinks; a moment more if not.
            thread::sleep(UDEV_POLL);
            return match dm::node_exists(name) {
                true => UdevOutcome::Ready,
                false => UdevOutcome::NoNode,
            };
        }
        if Instant::now() >= until {
            return UdevOutcome::TimedOut;
        }
        thread::sleep(UDEV_POLL);
    }
}

/// True when a udev database entry (`E:KEY=VALUE` lines) shows the dm rules
/// decoded a cookie marking the event as the activation itself.
fn change_processed(db: &str) -> bool {
    db.lines().any(|l| l == "E:DM_UDEV_PRIMARY_SOURCE_FLAG=1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udev_database_after_the_activation_event() {
        // /run/udev/data/b253:0 after 55-dm.rules ran on the resume's change event.
        let after = "S:mapper/cryptroot\nS:disk/by-id/dm-name-cryptroot\nI:4173211\n\
                     E:DM_UDEV_DISABLE_LIBRARY_FALLBACK_FLAG=1\nE:DM_UDEV_PRIMARY_SOURCE_FLAG=1\n\
                     E:DM_ACTIVATION=1\nE:DM_NAME=cryptroot\nG:systemd\n";
        assert!(change_processed(after));
        // After the add event of DM_DEV_CREATE: no cookie, rules disabled.
        let add = "I:4172011\nE:DM_UDEV_DISABLE_SUBSYSTEM_RULES_FLAG=1\n\
                   E:DM_UDEV_DISABLE_DISK_RULES_FLAG=1\nE:DM_UDEV_DISABLE_OTHER_RULES_FLAG=1\n";
        assert!(!change_processed(add));
        assert!(!change_processed("E:DM_UDEV_PRIMARY_SOURCE_FLAG=10\n"));
    }

    #[test]
    fn udev_wait_is_bounded() {
        let out = wait_for_udev(
            "latchkey-no-such-volume",
            DevId {
                major: 253,
                minor: 4095,
            },
            Instant::now() + Duration::from_millis(50),
        );
        assert_eq!(out, UdevOutcome::TimedOut);
    }
}
