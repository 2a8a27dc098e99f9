//! The dm-crypt table line and DM UUID exactly as cryptsetup 2.6 writes
//! them (lib/libdevmapper.c: `get_dm_crypt_params`, `dm_prepare_uuid`), so
//! that `cryptsetup status`, `lsblk` and systemd see our mapping as theirs.
//!
//! ```text
//! 0 <sectors> crypt <cipher> <key> <iv_offset> <device> <offset>[ <#opts> <opts…>]
//! ```
//! The key is written in hex.

use core::fmt::{self, Write};

use latchkey_luks::{DmFlags, Version};
use zeroize::Zeroizing;

/// Longest DM UUID the kernel takes (`DM_UUID_LEN` less the NUL).
const DM_UUID_MAX: usize = 128;

/// `CRYPT-LUKS2-<uuid without dashes>-<name>`, cut at 128 bytes as
/// cryptsetup's snprintf cuts it.
pub fn dm_uuid(version: Version, luks_uuid: &str, name: &str) -> String {
    let kind = match version {
        Version::Luks1 => "LUKS1",
        Version::Luks2 => "LUKS2",
    };
    let hex: String = luks_uuid.chars().filter(|&c| c != '-').collect();
    let mut s = format!("CRYPT-{kind}-{hex}-{name}");
    if s.len() > DM_UUID_MAX {
        let mut cut = DM_UUID_MAX;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// Where the key comes from: the volume key itself, written in lower-case hex (the
/// agent never hands keys to the kernel keyring).
pub enum Key<'a> {
    /// The volume key.
    Raw(&'a [u8]),
}

/// The data device, by `major:minor`, which needs no udev to name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataDevice {
    /// A device number.
    Dev(u32, u32),
}

/// dm-crypt's optional features named by crypttab / `rd.luks.options=` options, as
/// cryptsetup spells them (`discard` is crypttab's name for `allow-discards`). Other
/// options are left for others to interpret.
pub fn features_from_options<S: AsRef<str>>(opts: &[S]) -> DmFlags {
    let mut f = DmFlags::default();
    for o in opts {
        match o.as_ref() {
            "discard" => f.set("allow-discards"),
            o => f.set(o),
        }
    }
    f
}

/// One dm-crypt target.
pub struct CryptTarget<'a> {
    /// Length of the mapping in 512-byte sectors.
    pub sectors: u64,
    /// Cipher spec, e.g. `aes-xts-plain64`.
    pub cipher: &'a str,
    /// The key.
    pub key: Key<'a>,
    /// IV offset in 512-byte sectors (LUKS2 `iv_tweak`, 0 for LUKS1).
    pub iv_offset: u64,
    /// The encrypted device.
    pub device: DataDevice,
    /// Start of the data on `device`, in 512-byte sectors.
    pub offset: u64,
    /// Encryption sector size in bytes (512 is the default and not written).
    pub sector_size: u32,
    /// Optional features.
    pub features: DmFlags,
}

impl CryptTarget<'_> {
    /// The parameter string (what follows `crypt` in the table line). It holds the key,
    /// so it is zeroized on drop, and it is allocated once at its exact length: a string
    /// that grew would leave a copy of part of the key in each buffer it outgrew.
    pub fn params(&self) -> Zeroizing<String> {
        exact(|w| self.write_params(w))
    }

    fn write_params(&self, s: &mut dyn Write) -> fmt::Result {
        let f = &self.features;
        let flags = [
            (f.allow_discards, "allow_discards"),
            (f.same_cpu_crypt, "same_cpu_crypt"),
            (f.submit_from_crypt_cpus, "submit_from_crypt_cpus"),
            (f.no_read_workqueue, "no_read_workqueue"),
            (f.no_write_workqueue, "no_write_workqueue"),
        ];
        let count =
            flags.iter().filter(|(on, _)| *on).count() + usize::from(self.sector_size != 512);
        write!(s, "{} ", self.cipher)?;
        match self.key {
            Key::Raw(k) => {
                for b in k {
                    write!(s, "{b:02x}")?;
                }
            }
        }
        write!(s, " {} ", self.iv_offset)?;
        match &self.device {
            DataDevice::Dev(ma, mi) => write!(s, "{ma}:{mi}")?,
        }
        write!(s, " {}", self.offset)?;
        if count > 0 {
            write!(s, " {count}")?;
            for (_, name) in flags.iter().filter(|(on, _)| *on) {
                write!(s, " {name}")?;
            }
            if self.sector_size != 512 {
                write!(s, " sector_size:{}", self.sector_size)?;
            }
        }
        Ok(())
    }
}

/// What `write` writes, in a string allocated once at exactly that length (the first
/// pass only counts bytes).
fn exact(write: impl Fn(&mut dyn Write) -> fmt::Result) -> Zeroizing<String> {
    struct Count(usize);
    impl Write for Count {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0 += s.len();
            Ok(())
        }
    }
    let mut n = Count(0);
    write(&mut n).expect("counting cannot fail");
    let mut s = Zeroizing::new(String::with_capacity(n.0));
    write(&mut *s).expect("writing to a String cannot fail");
    debug_assert_eq!(s.capacity(), n.0, "the string grew");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected strings follow cryptsetup v2.6.1, lib/libdevmapper.c:
    //   get_dm_crypt_params(): "%s %s %" PRIu64 " %s %" PRIu64 "%s" with
    //   features " %d%s%s%s%s%s%s%s%s" in the order allow_discards,
    //   same_cpu_crypt, submit_from_crypt_cpus, no_read_workqueue,
    //   no_write_workqueue, iv_large_sectors, " sector_size:%u", integrity;
    //   dm_prepare_uuid(): "CRYPT-" "%s%s%s%s%s" = type "-" uuid-without-dashes "-" name.
    // The key is 64 bytes 00..3f, as a LUKS2 aes-xts-plain64 512-bit volume key.

    const UUID: &str = "0d3f1b52-7a37-4c2b-9b0e-3c1f5e2a9d10";

    fn key() -> Vec<u8> {
        (0u8..64).collect()
    }

    /// The whole table line as `dmsetup table --showkeys` lists a single-target table.
    fn line(t: &CryptTarget<'_>) -> String {
        format!("0 {} crypt {}", t.sectors, *t.params())
    }

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\
                       202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f";

    #[test]
    fn dm_uuids() {
        assert_eq!(
            dm_uuid(Version::Luks2, UUID, "cryptroot"),
            "CRYPT-LUKS2-0d3f1b527a374c2b9b0e3c1f5e2a9d10-cryptroot"
        );
        assert_eq!(
            dm_uuid(Version::Luks1, UUID, &format!("luks-{UUID}")),
            "CRYPT-LUKS1-0d3f1b527a374c2b9b0e3c1f5e2a9d10-luks-0d3f1b52-7a37-4c2b-9b0e-3c1f5e2a9d10"
        );
        let long = dm_uuid(Version::Luks2, UUID, &"n".repeat(200));
        assert_eq!(long.len(), 128);
        assert!(long.starts_with("CRYPT-LUKS2-0d3f1b527a374c2b9b0e3c1f5e2a9d10-nnn"));
    }

    #[test]
    fn plain_luks2_line() {
        let k = key();
        let t = CryptTarget {
            sectors: 114688,
            cipher: "aes-xts-plain64",
            key: Key::Raw(&k),
            iv_offset: 0,
            device: DataDevice::Dev(254, 0),
            offset: 32768,
            sector_size: 512,
            features: DmFlags::default(),
        };
        assert_eq!(
            line(&t),
            format!("0 114688 crypt aes-xts-plain64 {HEX} 0 254:0 32768")
        );
    }

    #[test]
    fn features_and_sector_size_in_cryptsetup_order() {
        let k = key();
        let t = CryptTarget {
            sectors: 2048,
            cipher: "aes-xts-plain64",
            key: Key::Raw(&k),
            iv_offset: 0,
            device: DataDevice::Dev(252, 2),
            offset: 32768,
            sector_size: 4096,
            features: features_from_options(&[
                "luks",
                "no-write-workqueue",
                "discard",
                "no-read-workqueue",
            ]),
        };
        assert_eq!(
            *t.params(),
            format!(
                "aes-xts-plain64 {HEX} 0 252:2 32768 4 allow_discards no_read_workqueue no_write_workqueue sector_size:4096"
            )
        );
        let t = CryptTarget {
            sector_size: 512,
            features: features_from_options(&["same-cpu-crypt"]),
            ..t
        };
        assert_eq!(
            *t.params(),
            format!("aes-xts-plain64 {HEX} 0 252:2 32768 1 same_cpu_crypt")
        );
    }

    #[test]
    fn largest_key_is_written_without_growing_the_string() {
        // LUKS2 allows 512-byte volume keys; with every option and the longest numbers,
        // the strings must still be allocated once (capacity = length), or a freed
        // buffer would keep part of the hex key.
        let k = vec![0xa5u8; 512];
        let t = CryptTarget {
            sectors: u64::MAX,
            cipher: "aes-xts-plain64",
            key: Key::Raw(&k),
            iv_offset: u64::MAX,
            device: DataDevice::Dev(u32::MAX, u32::MAX),
            offset: u64::MAX,
            sector_size: 4096,
            features: features_from_options(&[
                "discard",
                "same-cpu-crypt",
                "submit-from-crypt-cpus",
                "no-read-workqueue",
                "no-write-workqueue",
            ]),
        };
        let s = t.params();
        assert!(s.contains(&"a5".repeat(512)));
        assert_eq!(s.capacity(), s.len(), "{} bytes", s.len());
    }

    #[test]
    fn luks1_cbc_essiv() {
        let k = &key()[..32];
        let t = CryptTarget {
            sectors: 100,
            cipher: "aes-cbc-essiv:sha256",
            key: Key::Raw(k),
            iv_offset: 0,
            device: DataDevice::Dev(252, 1),
            offset: 4096,
            sector_size: 512,
            features: DmFlags::default(),
        };
        assert_eq!(
            *t.params(),
            format!("aes-cbc-essiv:sha256 {} 0 252:1 4096", &HEX[..64])
        );
    }

    /// Lines recorded from the real cryptsetup 2.6.1 in a VM
    /// (tests/data/dm/record.sh): ours must be identical, byte for byte.
    #[test]
    fn identical_to_recorded_cryptsetup_tables() {
        let text = include_str!("../../tests/data/dm/cryptsetup-2.6.1-tables.txt");
        let field = |kind: &str, name: &str| -> String {
            let prefix = format!("REC-{kind} {name} ");
            let line = text
                .lines()
                .find(|l| l.starts_with(&prefix))
                .unwrap_or_else(|| panic!("no {prefix}"));
            line[prefix.len()..].to_owned()
        };
        let u1 = "0d3f1b52-7a37-4c2b-9b0e-3c1f5e2a9d10";
        let u2 = "1e4f2c63-8b48-4d3c-8c1f-4d2a6f3bae21";
        let u3 = "2f5a3d74-9c59-4e4d-9d2a-5e3b7a4cbf32";
        let k = key();
        let all = features_from_options(&[
            "discard",
            "same-cpu-crypt",
            "submit-from-crypt-cpus",
            "no-read-workqueue",
            "no-write-workqueue",
        ]);
        let cases: Vec<(&str, Version, &str, CryptTarget<'_>)> = vec![
            (
                "root-hex",
                Version::Luks2,
                u1,
                CryptTarget {
                    sectors: 32768,
                    cipher: "aes-xts-plain64",
                    key: Key::Raw(&k),
                    iv_offset: 0,
                    device: DataDevice::Dev(254, 0),
                    offset: 32768,
                    sector_size: 4096,
                    features: features_from_options(&["discard"]),
                },
            ),
            (
                "luks-1e4f2c63-8b48-4d3c-8c1f-4d2a6f3bae21",
                Version::Luks2,
                u2,
                CryptTarget {
                    sectors: 32768,
                    cipher: "aes-xts-plain64",
                    key: Key::Raw(&k),
                    iv_offset: 0,
                    device: DataDevice::Dev(254, 16),
                    offset: 32768,
                    sector_size: 4096,
                    features: all,
                },
            ),
            (
                "data",
                Version::Luks2,
                u2,
                CryptTarget {
                    sectors: 32768,
                    cipher: "aes-xts-plain64",
                    key: Key::Raw(&k),
                    iv_offset: 0,
                    device: DataDevice::Dev(254, 16),
                    offset: 32768,
                    sector_size: 4096,
                    features: DmFlags::default(),
                },
            ),
            (
                "old",
                Version::Luks1,
                u3,
                CryptTarget {
                    sectors: 61440,
                    cipher: "aes-xts-plain64",
                    key: Key::Raw(&k),
                    iv_offset: 0,
                    device: DataDevice::Dev(254, 32),
                    offset: 4096,
                    sector_size: 512,
                    features: DmFlags::default(),
                },
            ),
            (
                "old-discard",
                Version::Luks1,
                u3,
                CryptTarget {
                    sectors: 61440,
                    cipher: "aes-xts-plain64",
                    key: Key::Raw(&k),
                    iv_offset: 0,
                    device: DataDevice::Dev(254, 32),
                    offset: 4096,
                    sector_size: 512,
                    features: features_from_options(&[
                        "allow-discards",
                        "no-read-workqueue",
                        "luks",
                    ]),
                },
            ),
        ];
        for (name, version, uuid, target) in &cases {
            assert_eq!(line(target), field("TABLE", name), "table of {name}");
            assert_eq!(
                dm_uuid(*version, uuid, name),
                field("UUID", name),
                "DM UUID of {name}"
            );
        }
    }
}
