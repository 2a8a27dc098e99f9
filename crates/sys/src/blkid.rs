//! Telling what a block device holds, for `UUID=`/`LABEL=` lookups in an
//! initrd without udev or blkid: ext2/3/4, FAT and LUKS signatures, read
//! from the first 2 KiB; and, for `PARTUUID=`/`PARTLABEL=`, what the
//! partition table of its disk says about a partition (GPT or MBR).

use std::io::{Read, Seek, SeekFrom};
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

/// What a disk's partition table says about one partition, as blkid names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionId {
    /// `PARTUUID`: the GPT unique partition GUID (lower-case dashed), or for
    /// MBR the disk signature and partition number (`1a2b3c4d-02`).
    pub uuid: String,
    /// `PARTLABEL`: the GPT partition name; MBR has none.
    pub label: Option<String>,
}

/// The most GPT entries looked at (the usual table has 128; the kernel reads
/// no more than fit the disk).
const GPT_MAX_ENTRIES: u32 = 4096;

fn read_at<R: Read + Seek>(disk: &mut R, at: u64, buf: &mut [u8]) -> std::io::Result<()> {
    disk.seek(SeekFrom::Start(at))?;
    disk.read_exact(buf)
}

/// Reads entry `number` (1-based, as the kernel numbers partitions) of the
/// partition table on `disk`, whose logical sectors are `sector` bytes.
/// `start` (in 512-byte units, as sysfs gives it), when known, must match the
/// entry's first sector, so an entry is never taken for another partition.
/// `Ok(None)` when there is no table or no such entry.
///
/// The GPT checksums are not verified here: the kernel checked them before
/// it created the partition, and `start` ties the entry to what it found.
pub fn read_partition<R: Read + Seek>(
    disk: &mut R,
    sector: u64,
    number: u32,
    start: Option<u64>,
) -> std::io::Result<Option<PartitionId>> {
    if !(512..=65536).contains(&sector) || !sector.is_power_of_two() || number == 0 {
        return Ok(None);
    }
    let mut header = [0u8; 92];
    if read_at(disk, sector, &mut header).is_ok() && header[0..8] == *b"EFI PART" {
        let entries_lba = u64::from_le_bytes(header[72..80].try_into().unwrap_or_default());
        let count = le32(&header, 80);
        let size = le32(&header, 84);
        if number > count.min(GPT_MAX_ENTRIES) || !(128..=4096).contains(&size) || size % 8 != 0 {
            return Ok(None);
        }
        let Some(at) = entries_lba
            .checked_mul(sector)
            .and_then(|b| b.checked_add(u64::from(number - 1) * u64::from(size)))
        else {
            return Ok(None);
        };
        let mut e = [0u8; 128];
        read_at(disk, at, &mut e)?;
        if e[0..16].iter().all(|&b| b == 0) {
            return Ok(None);
        }
        let first = u64::from_le_bytes(e[32..40].try_into().unwrap_or_default());
        if start.is_some_and(|s| first.checked_mul(sector / 512) != Some(s)) {
            return Ok(None);
        }
        let g = &e[16..32];
        let uuid = format!(
            "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{}",
            le32(g, 0),
            le16(g, 4),
            le16(g, 6),
            g[8],
            g[9],
            g[10..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let units = e[56..128]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0);
        let label: String = char::decode_utf16(units)
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect();
        return Ok(Some(PartitionId {
            uuid,
            label: (!label.is_empty()).then_some(label),
        }));
    }
    let mut mbr = [0u8; 512];
    read_at(disk, 0, &mut mbr)?;
    if mbr[510..512] != [0x55, 0xaa] || number > 255 {
        return Ok(None);
    }
    Ok(Some(PartitionId {
        uuid: format!("{:08x}-{number:02x}", le32(&mbr, 440)),
        label: None,
    }))
}

/// `PARTUUID`/`PARTLABEL` of the block device `name` (e.g. `vda2`), read from
/// its disk's table through sysfs (`partition`, `start`, the parent's
/// `queue/logical_block_size`) and `/dev`. `Ok(None)` when it is not a
/// partition.
pub fn partition_id(name: &str) -> Result<Option<PartitionId>> {
    let sys = Path::new("/sys/class/block").join(name);
    let file = |p: &Path| -> Result<Option<u64>> {
        match crate::file::read_text(p, 64) {
            Ok(s) => Ok(s.trim().parse().ok()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::File {
                path: p.display().to_string(),
                source,
            }),
        }
    };
    let Some(number) = file(&sys.join("partition"))? else {
        return Ok(None);
    };
    let start = file(&sys.join("start"))?;
    let real = std::fs::canonicalize(&sys).map_err(|source| Error::File {
        path: sys.display().to_string(),
        source,
    })?;
    let Some(disk) = real.parent().and_then(Path::file_name) else {
        return Ok(None);
    };
    let parent = Path::new("/sys/class/block").join(disk);
    let sector = file(&parent.join("queue/logical_block_size"))?.unwrap_or(512);
    let dev = Path::new("/dev").join(disk);
    let err = |source| Error::File {
        path: dev.display().to_string(),
        source,
    };
    let mut f = std::fs::File::open(&dev).map_err(err)?;
    let number = u32::try_from(number).unwrap_or(0);
    read_partition(&mut f, sector, number, start).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::time::Duration;

    fn tool(name: &str) -> bool {
        latchkey_testkit::have(&[name])
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

    /// An image partitioned by the real sfdisk, with its script on stdin.
    fn sfdisk_image(name: &str, script: &str) -> std::path::PathBuf {
        let img = scratch(name);
        std::fs::write(&img, vec![0u8; 8 << 20]).unwrap();
        let mut cmd = Command::new("sfdisk");
        cmd.arg("-q").arg(&img);
        let out = latchkey_testkit::run_with(&mut cmd, script.as_bytes(), Duration::from_secs(60));
        assert!(out.status.success(), "{out:?}");
        img
    }

    fn read_img(img: &Path, number: u32, start: Option<u64>) -> Option<PartitionId> {
        let mut f = std::fs::File::open(img).unwrap();
        read_partition(&mut f, 512, number, start).unwrap()
    }

    #[test]
    fn gpt_partitions_as_sfdisk_made_them() {
        if !tool("sfdisk") {
            return;
        }
        let img = sfdisk_image(
            "gpt.img",
            "label: gpt\n\
             size=2M, name=nbdeboot, uuid=00626A0E-7BB1-C740-A4F6-BD2DA8D29A51\n\
             uuid=39CFBEE4-844D-F243-8A62-08ED868C820B\n",
        );
        let p1 = read_img(&img, 1, Some(2048)).expect("partition 1");
        assert_eq!(p1.uuid, "00626a0e-7bb1-c740-a4f6-bd2da8d29a51");
        assert_eq!(p1.label.as_deref(), Some("nbdeboot"));
        let p2 = read_img(&img, 2, None).expect("partition 2");
        assert_eq!(p2.uuid, "39cfbee4-844d-f243-8a62-08ed868c820b");
        assert_eq!(p2.label, None);
        // The kernel's start for partition 2 is not partition 1's: no match.
        assert_eq!(read_img(&img, 1, Some(6144)), None);
        assert_eq!(read_img(&img, 3, None), None);
        assert_eq!(read_img(&img, 0, None), None);
        std::fs::remove_file(&img).unwrap();
    }

    #[test]
    fn mbr_partuuid_is_the_disk_signature_and_number() {
        if !tool("sfdisk") {
            return;
        }
        let img = sfdisk_image("mbr.img", "label: dos\nlabel-id: 0x1a2b3c4d\nsize=2M\n,\n");
        let p2 = read_img(&img, 2, None).expect("partition 2");
        assert_eq!(p2.uuid, "1a2b3c4d-02");
        assert_eq!(p2.label, None);
        std::fs::remove_file(&img).unwrap();
    }

    #[test]
    fn no_table_and_hostile_tables() {
        let blank = vec![0u8; 64 << 10];
        let mut c = std::io::Cursor::new(blank.clone());
        assert_eq!(read_partition(&mut c, 512, 1, None).unwrap(), None);
        // A GPT header pointing its entries past the end of the disk, or
        // claiming absurd sizes, gives no partition and no panic.
        for (lba, count, size) in [
            (u64::MAX, 128u32, 128u32),
            (2, u32::MAX, 128),
            (2, 128, 7),
            (2, 128, 1u32 << 20),
        ] {
            let mut d = blank.clone();
            d[512..520].copy_from_slice(b"EFI PART");
            d[512 + 72..512 + 80].copy_from_slice(&lba.to_le_bytes());
            d[512 + 80..512 + 84].copy_from_slice(&count.to_le_bytes());
            d[512 + 84..512 + 88].copy_from_slice(&size.to_le_bytes());
            let r = read_partition(&mut std::io::Cursor::new(d), 512, 1, None);
            assert!(
                matches!(r, Ok(None) | Err(_)),
                "{lba} {count} {size}: {r:?}"
            );
        }
        assert_eq!(read_partition(&mut c, 100, 1, None).unwrap(), None);
    }
}
