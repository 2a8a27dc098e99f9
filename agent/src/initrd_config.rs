//! What the agent needs to know about the machine, recorded when its initrd
//! is built (`latchkey-agent initrd-config`, run by the initramfs-tools hook
//! and the dracut module) and read at boot from [`PATH`], so the kernel
//! command line needs none of latchkey's options.
//!
//! ```text
//!   build time: /etc/fstab + the local key file ┐
//!               the host's /etc/latchkey/initrd.conf ┴─► initrd-config ─► /etc/latchkey/initrd.conf
//!   boot:       /etc/latchkey/initrd.conf, then /proc/cmdline ─► cmdline::parse
//! ```
//! The file holds kernel command line options, one per line, `#` comments;
//! the real command line comes after it, so it wins. The host's file of the
//! same name holds what the administrator wants in every initrd (such as
//! `latchkey.ca=`, whose file the hooks copy in); it is carried over after
//! what is found.

use std::path::Path;

use latchkey_sys::file::read_text;

use crate::cmdline::DEFAULT_KEY_PATH;
use crate::volume::crypttab::DeviceSpec;
use crate::volume::describe;

/// Where the recorded options live in the initrd.
pub const PATH: &str = "/etc/latchkey/initrd.conf";

/// Largest options file, fstab or command-line file read: far beyond any real one.
pub const MAX_TEXT: u64 = 64 << 10;

/// The options recorded for the system under `root` (`/` when building the
/// initrd of the running system), as the file's text, and notes for the
/// person building it.
///
/// Degraded mode: when the local key file exists and `/boot` is a file
/// system of its own in `/etc/fstab`, `latchkey.boot=` names it, so the
/// agent reads the key from there without a network.
pub fn generate(root: &Path) -> (String, Vec<String>) {
    let mut text = String::from(
        "# latchkey-agent options recorded when this initrd was built\n\
         # (kernel command line syntax; the kernel command line wins)\n",
    );
    let mut notes = Vec::new();
    boot_key(root, &mut text, &mut notes);
    admin_options(root, &mut text, &mut notes);
    (text, notes)
}

/// The host's own `/etc/latchkey/initrd.conf`, carried over line by line.
fn admin_options(root: &Path, text: &mut String, notes: &mut Vec<String>) {
    let path = root.join(PATH.trim_start_matches('/'));
    let own = match read_text(&path, MAX_TEXT) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            notes.push(format!("{PATH}: {e}; its options are left out"));
            return;
        }
    };
    let lines: Vec<&str> = own
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    if lines.is_empty() {
        return;
    }
    text.push_str(&format!("# from {PATH} of the system\n"));
    for l in lines {
        if let Some(ca) = l.strip_prefix("latchkey.ca=") {
            if !root.join(ca.trim_start_matches('/')).is_file() {
                notes.push(format!(
                    "{l}: no such file; https:// Tang servers will be refused"
                ));
            }
        }
        notes.push(format!("{PATH}: {l}"));
        text.push_str(l);
        text.push('\n');
    }
}

/// `latchkey.boot=` when the local key file exists.
fn boot_key(root: &Path, text: &mut String, notes: &mut Vec<String>) {
    let key = root.join(DEFAULT_KEY_PATH.trim_start_matches('/'));
    if !key.exists() {
        return;
    }
    let fstab = read_text(&root.join("etc/fstab"), MAX_TEXT).unwrap_or_default();
    match boot_partition(&fstab) {
        Some(spec) => {
            let spec = describe(&spec);
            notes.push(format!(
                "local key {DEFAULT_KEY_PATH} found: the agent reads it from {spec} (/boot)"
            ));
            text.push_str(&format!("latchkey.boot={spec}\n"));
        }
        None => notes.push(format!(
            "local key {DEFAULT_KEY_PATH} found, but /etc/fstab names no /boot file system \
             of its own (UUID=, LABEL=, PARTUUID= or a device): the key cannot be read \
             before the root is open; degraded mode stays off"
        )),
    }
}

/// The device `/etc/fstab` mounts on `/boot`, if it is a block device.
fn boot_partition(fstab: &str) -> Option<DeviceSpec> {
    let spec = fstab.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let spec = f.next().filter(|s| !s.starts_with('#'))?;
        (f.next()? == "/boot").then_some(spec)
    })?;
    let by = |dir: &str| spec.strip_prefix(dir).map(unescape);
    if let Some(u) = by("/dev/disk/by-uuid/") {
        return DeviceSpec::parse(&format!("UUID={u}"));
    }
    if let Some(l) = by("/dev/disk/by-label/") {
        return DeviceSpec::parse(&format!("LABEL={l}"));
    }
    if let Some(u) = by("/dev/disk/by-partuuid/") {
        return DeviceSpec::parse(&format!("PARTUUID={u}"));
    }
    DeviceSpec::parse(spec)
}

/// fstab(5) escapes a space in a field as `\040`; udev's by-label links
/// escape `/` and spaces as `\x2f`, `\x20`.
fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\x20", " ")
        .replace("\\x2f", "/")
}

/// The recorded options of `text` as one command line (comments dropped),
/// to be put before the kernel's own.
pub fn options(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads [`PATH`]; empty when the initrd has none.
pub fn read() -> String {
    read_text(Path::new(PATH), MAX_TEXT)
        .map(|t| options(&t))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdline;

    fn system(fstab: &str, key: bool) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/fstab"), fstab).unwrap();
        if key {
            let k = root.path().join("boot/nbde/local-boot.key");
            std::fs::create_dir_all(k.parent().unwrap()).unwrap();
            std::fs::write(k, "k").unwrap();
        }
        root
    }

    const FSTAB: &str = "# /etc/fstab: static file system information.\n\
        /dev/mapper/cryptroot / ext4 errors=remount-ro 0 1\n\
        # /boot was on /dev/vda1 during installation\n\
        UUID=4c4b0801-0000-4000-8000-000000000002 /boot ext4 defaults 0 2\n";

    #[test]
    fn boot_partition_recorded_when_the_key_exists() {
        let root = system(FSTAB, true);
        let (text, notes) = generate(root.path());
        assert_eq!(
            options(&text),
            "latchkey.boot=UUID=4c4b0801-0000-4000-8000-000000000002"
        );
        assert_eq!(notes.len(), 1, "{notes:?}");
        // Read back as the agent does: the kernel command line wins.
        let (cfg, w) = cmdline::parse(&format!("{} ip=dhcp", options(&text)));
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            cfg.boot_key.partition,
            Some(DeviceSpec::Uuid(
                "4c4b0801-0000-4000-8000-000000000002".into()
            ))
        );
        let (cfg, _) = cmdline::parse(&format!("{} latchkey.boot=LABEL=b", options(&text)));
        assert_eq!(cfg.boot_key.partition, Some(DeviceSpec::Label("b".into())));
    }

    #[test]
    fn nothing_recorded_without_a_key_or_a_boot_partition() {
        let root = system(FSTAB, false);
        let (text, notes) = generate(root.path());
        assert_eq!(options(&text), "");
        assert!(notes.is_empty());
        let root = system("/dev/mapper/cryptroot / ext4 defaults 0 1\n", true);
        let (text, notes) = generate(root.path());
        assert_eq!(options(&text), "");
        assert!(notes[0].contains("names no /boot"), "{notes:?}");
    }

    #[test]
    fn the_systems_own_options_are_carried_over() {
        let root = system(FSTAB, false);
        std::fs::create_dir_all(root.path().join("etc/latchkey")).unwrap();
        std::fs::write(
            root.path().join("etc/latchkey/initrd.conf"),
            "# HTTPS to Tang\nlatchkey.ca=/etc/latchkey/tang-ca.pem\n\nlatchkey.timeout=3\n",
        )
        .unwrap();
        let (text, notes) = generate(root.path());
        assert_eq!(
            options(&text),
            "latchkey.ca=/etc/latchkey/tang-ca.pem latchkey.timeout=3"
        );
        assert!(
            notes[0].contains("latchkey.ca=/etc/latchkey/tang-ca.pem: no such file"),
            "{notes:?}"
        );
        std::fs::write(root.path().join("etc/latchkey/tang-ca.pem"), "pem").unwrap();
        let (_, notes) = generate(root.path());
        assert!(
            !notes.iter().any(|n| n.contains("no such file")),
            "{notes:?}"
        );
        let (cfg, w) = cmdline::parse(&options(&text));
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            cfg.trust,
            latchkey_client::Trust::CaFile("/etc/latchkey/tang-ca.pem".into())
        );
    }

    #[test]
    fn fstab_device_forms() {
        let spec = |l: &str| boot_partition(&format!("{l} /boot ext4 defaults 0 2\n"));
        assert_eq!(
            spec("/dev/disk/by-uuid/ABCD-1234"),
            Some(DeviceSpec::Uuid("abcd-1234".into()))
        );
        assert_eq!(
            spec("/dev/disk/by-label/my\\x20boot"),
            Some(DeviceSpec::Label("my boot".into()))
        );
        assert_eq!(
            spec("PARTUUID=0A-01"),
            Some(DeviceSpec::PartUuid("0a-01".into()))
        );
        assert_eq!(
            spec("/dev/vda1"),
            Some(DeviceSpec::Path("/dev/vda1".into()))
        );
        assert_eq!(spec("tmpfs"), None);
        assert_eq!(boot_partition("#UUID=x /boot ext4 defaults 0 2\n"), None);
        assert_eq!(boot_partition("UUID=x /boot/efi vfat defaults 0 2\n"), None);
    }
}
