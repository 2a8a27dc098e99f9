//! Tells what a block device holds from its first sectors: a LUKS header,
//! ext2/3/4 or FAT, with the UUID and label, so that `rd.luks.uuid=`,
//! crypttab's `UUID=` and `latchkey.boot=LABEL=` resolve without udev or
//! blkid.

use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Bytes read from the start of a device: enough for every signature here.
pub const PROBE_BYTES: usize = 4096;

/// What a device holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A LUKS header of this version.
    Luks(u16),
    /// ext2, ext3 or ext4.
    Ext,
    /// FAT12/16/32.
    Vfat,
}

/// A recognised device: its content type, UUID (lower case for LUKS and ext,
/// `XXXX-XXXX` for FAT, as blkid prints them) and label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ident {
    /// Content type.
    pub kind: Kind,
    /// UUID as blkid shows it.
    pub uuid: String,
    /// Label, if the format has one and it is set.
    pub label: Option<String>,
}

/// Reads the first [`PROBE_BYTES`] of `path` and identifies them.
pub fn probe_path(path: &Path) -> Option<Ident> {
    let mut buf = vec![0u8; PROBE_BYTES];
    let mut f = File::open(path).ok()?;
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return None,
        }
    }
    identify(&buf[..n])
}

/// Identifies a device from its first bytes.
pub fn identify(b: &[u8]) -> Option<Ident> {
    luks(b).or_else(|| ext(b)).or_else(|| vfat(b))
}

fn luks(b: &[u8]) -> Option<Ident> {
    // LUKS1 and LUKS2 both keep magic, version and a 40-byte UUID string at
    // the same offsets; LUKS2 has its label at 24 (48 bytes).
    if b.len() < 208 || &b[..6] != b"LUKS\xba\xbe" {
        return None;
    }
    let version = u16::from_be_bytes([b[6], b[7]]);
    let uuid = cstr(&b[168..208])?.to_ascii_lowercase();
    let label = if version == 2 {
        cstr(&b[24..72]).filter(|s| !s.is_empty())
    } else {
        None
    };
    Some(Ident {
        kind: Kind::Luks(version),
        uuid,
        label,
    })
}

fn ext(b: &[u8]) -> Option<Ident> {
    let sb = b.get(1024..1024 + 256)?;
    if u16::from_le_bytes([sb[0x38], sb[0x39]]) != 0xEF53 {
        return None;
    }
    let uuid = format_uuid(&sb[0x68..0x78]);
    let label = cstr(&sb[0x78..0x88]).filter(|s| !s.is_empty());
    Some(Ident {
        kind: Kind::Ext,
        uuid,
        label,
    })
}

fn vfat(b: &[u8]) -> Option<Ident> {
    if b.len() < 512 || b[510] != 0x55 || b[511] != 0xAA {
        return None;
    }
    let fat16_sectors = u16::from_le_bytes([b[0x16], b[0x17]]);
    // FAT32 keeps its extended boot record 28 bytes further on.
    let (id_at, label_at, type_at) = if fat16_sectors == 0 {
        (0x43, 0x47, 0x52)
    } else {
        (0x27, 0x2B, 0x36)
    };
    if &b[type_at..type_at + 3] != b"FAT" {
        return None;
    }
    let id = u32::from_le_bytes([b[id_at], b[id_at + 1], b[id_at + 2], b[id_at + 3]]);
    let uuid = format!("{:04X}-{:04X}", id >> 16, id & 0xffff);
    let raw = std::str::from_utf8(&b[label_at..label_at + 11])
        .ok()?
        .trim_end();
    let label = (!raw.is_empty() && raw != "NO NAME").then(|| raw.to_owned());
    Some(Ident {
        kind: Kind::Vfat,
        uuid,
        label,
    })
}

fn cstr(b: &[u8]) -> Option<String> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    std::str::from_utf8(&b[..end]).ok().map(str::to_owned)
}

fn format_uuid(u: &[u8]) -> String {
    let h: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn tool(name: &str) -> bool {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !found {
            assert!(
                std::env::var_os("CI").is_none(),
                "{name} is missing (scripts/setup installs it)"
            );
            eprintln!("skipped: {name} is not installed");
        }
        found
    }

    fn image(size: u64) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("img");
        File::create(&p).unwrap().set_len(size).unwrap();
        (dir, p)
    }

    #[test]
    fn ext4_made_by_mkfs() {
        if !tool("mkfs.ext4") {
            return;
        }
        let (_d, p) = image(8 << 20);
        let uuid = "0a1b2c3d-4e5f-4061-8293-a4b5c6d7e8f9";
        let st = Command::new("mkfs.ext4")
            .args(["-q", "-F", "-U", uuid, "-L", "nbdeboot"])
            .arg(&p)
            .status()
            .unwrap();
        assert!(st.success());
        let id = probe_path(&p).unwrap();
        assert_eq!(
            id,
            Ident {
                kind: Kind::Ext,
                uuid: uuid.into(),
                label: Some("nbdeboot".into())
            }
        );
    }

    #[test]
    fn vfat_made_by_mkfs() {
        if !tool("mkfs.vfat") {
            return;
        }
        let (_d, p) = image(16 << 20);
        let st = Command::new("mkfs.vfat")
            .args(["-i", "1234ABCD", "-n", "NBDEBOOT"])
            .arg(&p)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        let id = probe_path(&p).unwrap();
        assert_eq!(
            id,
            Ident {
                kind: Kind::Vfat,
                uuid: "1234-ABCD".into(),
                label: Some("NBDEBOOT".into())
            }
        );
    }

    #[test]
    fn luks2_made_by_cryptsetup() {
        if !tool("cryptsetup") {
            return;
        }
        let (d, p) = image(20 << 20);
        let key = d.path().join("key");
        std::fs::write(&key, b"probe-test").unwrap();
        let uuid = "4c4b0000-1111-4222-8333-444455556666";
        let st = Command::new("cryptsetup")
            .args(["luksFormat", "-q", "--type", "luks2", "--pbkdf", "pbkdf2"])
            .args([
                "--pbkdf-force-iterations",
                "1000",
                "--uuid",
                uuid,
                "--label",
                "rootvol",
                "--key-file",
            ])
            .arg(&key)
            .arg(&p)
            .status()
            .unwrap();
        assert!(st.success());
        let id = probe_path(&p).unwrap();
        assert_eq!(
            id,
            Ident {
                kind: Kind::Luks(2),
                uuid: uuid.into(),
                label: Some("rootvol".into())
            }
        );
    }

    #[test]
    fn zeros_and_short_input_are_nothing() {
        assert_eq!(identify(&[0u8; PROBE_BYTES]), None);
        assert_eq!(identify(b"LUKS\xba\xbe"), None);
        assert_eq!(identify(&[]), None);
    }
}
