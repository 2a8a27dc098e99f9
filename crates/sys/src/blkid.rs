//! Telling what a block device holds, for `UUID=`/`LABEL=` lookups in an
//! initrd without udev or blkid: ext2/3/4, FAT and LUKS signatures, read
//! from the first 2 KiB.

use std::io::Read;
use std::path::Path;

use crate::{Error, Result};

/// What was found on a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// File system type as `mount(2)` and blkid name it: `ext4`, `ext3`,
    /// `ext2`, `vfat` or `crypto_LUKS`.
    pub fstype: &'static str,
    /// The UUID as blkid prints it (lower-case dashed for ext and LUKS,
    /// `ABCD-1234` for FAT).
    pub uuid: Option<String>,
    /// The label, if any.
    pub label: Option<String>,
}

/// Bytes [`probe_bytes`] needs from the start of a device.
pub const PROBE_LEN: usize = 2048;

fn dashed_uuid(b: &[u8]) -> Option<String> {
    if b.iter().all(|&x| x == 0) {
        return None;
    }
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

fn text(b: &[u8]) -> Option<String> {
    let end = b.iter().position(|&x| x == 0).unwrap_or(b.len());
    let s = String::from_utf8_lossy(&b[..end])
        .trim_end_matches(' ')
        .to_owned();
    (!s.is_empty()).then_some(s)
}

fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// Identifies the signature in the first [`PROBE_LEN`] bytes of a device.
pub fn probe_bytes(b: &[u8]) -> Option<Probe> {
    if b.len() >= 512 && b[0..6] == *b"LUKS\xba\xbe" {
        let version = u16::from_be_bytes([b[6], b[7]]);
        let label = if version == 2 { text(&b[24..72]) } else { None };
        return Some(Probe {
            fstype: "crypto_LUKS",
            uuid: text(&b[168..208]),
            label,
        });
    }
    if b.len() >= 2048 && le16(b, 1024 + 0x38) == 0xef53 {
        let sb = &b[1024..];
        let compat = le32(sb, 0x5c);
        let incompat = le32(sb, 0x60);
        let ro_compat = le32(sb, 0x64);
        // Features only ext4 has: extents, 64bit, flex_bg, huge_file, dir_nlink, extra_isize.
        let fstype =
            if incompat & (0x40 | 0x80 | 0x200) != 0 || ro_compat & (0x8 | 0x20 | 0x40) != 0 {
                "ext4"
            } else if compat & 0x4 != 0 {
                "ext3"
            } else {
                "ext2"
            };
        return Some(Probe {
            fstype,
            uuid: dashed_uuid(&sb[0x68..0x78]),
            label: text(&sb[0x78..0x88]),
        });
    }
    if b.len() >= 512
        && b[510..512] == [0x55, 0xaa]
        && le16(b, 11).is_power_of_two()
        && le16(b, 11) >= 512
    {
        let (id_at, label_at) = if &b[0x52..0x57] == b"FAT32" {
            (0x43, 0x47)
        } else if &b[0x36..0x39] == b"FAT" {
            (0x27, 0x2b)
        } else {
            return None;
        };
        let id = &b[id_at..id_at + 4];
        let uuid = format!("{:02X}{:02X}-{:02X}{:02X}", id[3], id[2], id[1], id[0]);
        let label = text(&b[label_at..label_at + 11]).filter(|l| l != "NO NAME");
        return Some(Probe {
            fstype: "vfat",
            uuid: Some(uuid),
            label,
        });
    }
    None
}

/// Reads the start of the device at `path` and identifies it.
pub fn probe(path: &Path) -> Result<Option<Probe>> {
    let err = |source| Error::File {
        path: path.display().to_string(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(err)?;
    let mut buf = vec![0u8; PROBE_LEN];
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]).map_err(err)? {
            0 => break,
            k => n += k,
        }
    }
    Ok(probe_bytes(&buf[..n]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn tool(name: &str) -> bool {
        if Command::new(name).arg("-V").output().is_ok() {
            return true;
        }
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} missing (scripts/setup installs it)"
        );
        println!("skipped: {name} not installed");
        false
    }

    fn blkid_value(img: &Path, tag: &str) -> Option<String> {
        let out = Command::new("blkid")
            .args(["-p", "-o", "value", "-s", tag])
            .arg(img)
            .output()
            .ok()?;
        let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
        (!s.is_empty()).then_some(s)
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("latchkey-blkid-{}-{name}", std::process::id()))
    }

    /// The images are made by the real mkfs tools and compared with blkid.
    #[test]
    fn ext4_matches_blkid() {
        if !tool("mkfs.ext4") {
            return;
        }
        let img = scratch("ext4.img");
        let st = Command::new("mkfs.ext4")
            .args([
                "-q",
                "-F",
                "-L",
                "nbde-boot",
                "-U",
                "6f1c2a4e-0b7d-4a49-9d55-0c1e2f3a4b5c",
            ])
            .arg(&img)
            .arg("4M")
            .status()
            .unwrap();
        assert!(st.success());
        let p = probe(&img).unwrap().expect("ext4 found");
        assert_eq!(p.fstype, "ext4");
        assert_eq!(
            p.uuid.as_deref(),
            Some("6f1c2a4e-0b7d-4a49-9d55-0c1e2f3a4b5c")
        );
        assert_eq!(p.label.as_deref(), Some("nbde-boot"));
        if tool("blkid") {
            assert_eq!(p.uuid, blkid_value(&img, "UUID"));
            assert_eq!(p.label, blkid_value(&img, "LABEL"));
        }
        std::fs::remove_file(&img).unwrap();
    }

    #[test]
    fn vfat_matches_blkid() {
        if !tool("mkfs.vfat") {
            return;
        }
        for (bits, label) in [("32", Some("EFI")), ("16", None)] {
            let img = scratch(&format!("fat{bits}.img"));
            std::fs::write(&img, vec![0u8; 40 << 20]).unwrap();
            let mut cmd = Command::new("mkfs.vfat");
            cmd.args(["-F", bits, "-i", "1a2b3c4d"]);
            if let Some(l) = label {
                cmd.args(["-n", l]);
            }
            let out = cmd.arg(&img).output().unwrap();
            assert!(out.status.success(), "{out:?}");
            let p = probe(&img).unwrap().expect("FAT found");
            assert_eq!(p.fstype, "vfat");
            assert_eq!(p.uuid.as_deref(), Some("1A2B-3C4D"));
            assert_eq!(p.label.as_deref(), label);
            if tool("blkid") {
                assert_eq!(p.uuid, blkid_value(&img, "UUID"));
            }
            std::fs::remove_file(&img).unwrap();
        }
    }

    #[test]
    fn luks2_from_cryptsetup() {
        if !tool("cryptsetup") {
            return;
        }
        let img = scratch("luks2.img");
        let key = scratch("luks2.key");
        std::fs::write(&img, vec![0u8; 20 << 20]).unwrap();
        std::fs::write(&key, b"test").unwrap();
        let out = Command::new("cryptsetup")
            .args(["luksFormat", "--type", "luks2", "-q", "--pbkdf", "pbkdf2"])
            .args(["--pbkdf-force-iterations", "1000", "--label", "cryptroot"])
            .args([
                "--uuid",
                "0d3f1b52-7a37-4c2b-9b0e-3c1f5e2a9d10",
                "--key-file",
            ])
            .arg(&key)
            .arg(&img)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let p = probe(&img).unwrap().unwrap();
        assert_eq!(p.fstype, "crypto_LUKS");
        assert_eq!(
            p.uuid.as_deref(),
            Some("0d3f1b52-7a37-4c2b-9b0e-3c1f5e2a9d10")
        );
        assert_eq!(p.label.as_deref(), Some("cryptroot"));
        std::fs::remove_file(&img).unwrap();
        std::fs::remove_file(&key).unwrap();
    }

    #[test]
    fn luks_and_nothing() {
        let mut h = vec![0u8; 2048];
        h[0..6].copy_from_slice(b"LUKS\xba\xbe");
        h[7] = 2;
        h[24..28].copy_from_slice(b"root");
        h[168..204].copy_from_slice(b"0d3f1b52-7a37-4c2b-9b0e-3c1f5e2a9d10");
        let p = probe_bytes(&h).unwrap();
        assert_eq!(p.fstype, "crypto_LUKS");
        assert_eq!(
            p.uuid.as_deref(),
            Some("0d3f1b52-7a37-4c2b-9b0e-3c1f5e2a9d10")
        );
        assert_eq!(p.label.as_deref(), Some("root"));
        assert_eq!(probe_bytes(&[0u8; 2048]), None);
        assert_eq!(probe_bytes(&[0u8; 10]), None);
    }
}
