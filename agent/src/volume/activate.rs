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
use latchkey_sys::file::DirWatch;

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
/// How often the database is read again without a watch on it, and how
/// long the node may lag behind the database entry.
const UDEV_POLL: Duration = Duration::from_millis(10);
/// The longest wait for a change in the database directory before reading
/// the entry again anyway.
const UDEV_RECHECK: Duration = Duration::from_millis(100);

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
    let nodes = nodes();
    // Watched before the resume, so that udev's entry for it cannot be missed.
    let watch = match nodes {
        Nodes::Udev => DirWatch::new(Path::new(UDEV_DATA)).ok(),
        Nodes::Caller => None,
    };
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
        .and_then(|()| ctl.resume(&vol.name, nodes));
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
    if nodes == Nodes::Udev {
        let until = Instant::now() + UDEV_WAIT;
        match wait_for_udev(Path::new(UDEV_DATA), &vol.name, dev, watch.as_ref(), until) {
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
/// `/dev/mapper/NAME` exists. With a `watch` on the database directory it
/// looks again as soon as udev writes an entry; without one, every
/// [`UDEV_POLL`].
fn wait_for_udev(
    data: &Path,
    name: &str,
    dev: DevId,
    watch: Option<&DirWatch>,
    until: Instant,
) -> UdevOutcome {
    let db = data.join(format!("b{}:{}", dev.major, dev.minor));
    loop {
        let processed = std::fs::read_to_string(&db).is_ok_and(|t| change_processed(&t));
        if processed {
            // udev makes the symlinks before it writes the database; a moment more if not.
            if !dm::node_exists(name) {
                thread::sleep(UDEV_POLL);
            }
            return match dm::node_exists(name) {
                true => UdevOutcome::Ready,
                false => UdevOutcome::NoNode,
            };
        }
        let now = Instant::now();
        if now >= until {
            return UdevOutcome::TimedOut;
        }
        let left = until - now;
        match watch.map(|w| w.wait(UDEV_RECHECK.min(left))) {
            Some(Ok(_)) => {}
            Some(Err(_)) | None => thread::sleep(UDEV_POLL.min(left)),
        }
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
            Path::new(UDEV_DATA),
            "latchkey-no-such-volume",
            DevId {
                major: 253,
                minor: 4095,
            },
            None,
            Instant::now() + Duration::from_millis(50),
        );
        assert_eq!(out, UdevOutcome::TimedOut);
    }

    #[test]
    fn a_watched_udev_database_entry_ends_the_wait_when_it_is_written() {
        let data = std::env::temp_dir().join(format!("latchkey-udev-data-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data).unwrap();
        let watch = DirWatch::new(&data).unwrap();
        let dev = DevId {
            major: 253,
            minor: 4094,
        };
        // udev's way: the entry is written aside, then renamed into place.
        let writer = std::thread::spawn({
            let data = data.clone();
            move || {
                std::thread::sleep(Duration::from_millis(150));
                let tmp = data.join(".b253:4094.tmp");
                std::fs::write(&tmp, "S:mapper/x\nE:DM_UDEV_PRIMARY_SOURCE_FLAG=1\n").unwrap();
                std::fs::rename(&tmp, data.join("b253:4094")).unwrap();
            }
        });
        let start = Instant::now();
        let out = wait_for_udev(
            &data,
            "latchkey-no-such-volume",
            dev,
            Some(&watch),
            start + Duration::from_secs(30),
        );
        let waited = start.elapsed();
        writer.join().unwrap();
        // Processed, but no /dev/mapper node was made (no udev rules here).
        assert_eq!(out, UdevOutcome::NoNode);
        assert!(waited >= Duration::from_millis(140), "{waited:?}");
        assert!(waited < Duration::from_secs(20), "{waited:?}");
        std::fs::remove_dir_all(&data).unwrap();
    }
}
