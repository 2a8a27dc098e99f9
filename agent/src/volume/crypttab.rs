//! The crypttab the initrd generator wrote (crypttab(5)): one volume per
//! line, `NAME DEVICE [KEYFILE [OPTIONS]]`, `#` comments. Its names are the
//! ones the initrd's own unlock step and root wait look for.

use std::path::{Path, PathBuf};

/// Largest crypttab read: far beyond any real one (a line per volume).
const MAX_CRYPTTAB: u64 = 1 << 20;

/// Where initrd generators keep the crypttab of the volumes they open, and
/// how its fields are read there: dracut, systemd and mkinitcpio at
/// `/etc/crypttab`, as written; initramfs-tools (Debian's
/// cryptsetup-initramfs) at `/cryptroot/crypttab`, with no `/etc/crypttab`
/// at all, its escapes decoded as Debian's cryptroot does.
pub const INITRD_PATHS: &[(&str, Escapes)] = &[
    ("/etc/crypttab", Escapes::None),
    ("/cryptroot/crypttab", Escapes::Debian),
];

/// How the fields of a crypttab are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escapes {
    /// As systemd (and dracut's own scripts) read them: a field is taken
    /// as it stands, a backslash included.
    None,
    /// As Debian's cryptsetup reads them (crypttab(5), `printf '%b'` in
    /// dash): octal `\0NNN` and `\NNN`, `\\`, and `\a \b \f \n \r \t \v`;
    /// `\c` ends the field; any other backslash stays.
    Debian,
}

/// Decodes one field written with `esc`.
pub fn unescape(field: &str, esc: Escapes) -> String {
    if esc == Escapes::None || !field.contains('\\') {
        return field.to_owned();
    }
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 == b.len() {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let c = b[i + 1];
        i += 2;
        let simple = match c {
            b'\\' => Some(b'\\'),
            b'a' => Some(7),
            b'b' => Some(8),
            b'f' => Some(12),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(11),
            _ => None,
        };
        if let Some(v) = simple {
            out.push(v);
        } else if c == b'c' {
            break;
        } else if c.is_ascii_digit() && c < b'8' {
            // `\0` takes up to three more digits; `\N` up to two more.
            let (mut v, mut n) = if c == b'0' {
                (0u32, 3)
            } else {
                (u32::from(c - b'0'), 2)
            };
            while n > 0 && i < b.len() && (b'0'..b'8').contains(&b[i]) {
                v = v * 8 + u32::from(b[i] - b'0');
                i += 1;
                n -= 1;
            }
            out.push(v as u8);
        } else {
            out.push(b'\\');
            out.push(c);
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How a device is named in crypttab and on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    /// `UUID=` (file system or LUKS UUID, lower case).
    Uuid(String),
    /// `PARTUUID=` (GPT partition UUID, lower case).
    PartUuid(String),
    /// `LABEL=`.
    Label(String),
    /// `PARTLABEL=`.
    PartLabel(String),
    /// A path such as `/dev/vda2`.
    Path(PathBuf),
}

impl DeviceSpec {
    /// Parses `UUID=…`, `PARTUUID=…`, `LABEL=…`, `PARTLABEL=…` or an
    /// absolute path; `None` for anything else or an empty value.
    pub fn parse(s: &str) -> Option<DeviceSpec> {
        let (tag, v) = s.split_once('=').unwrap_or(("", s));
        let v = v.trim_matches('"');
        if v.is_empty() {
            return None;
        }
        Some(match tag {
            "UUID" => DeviceSpec::Uuid(v.strip_prefix("luks-").unwrap_or(v).to_ascii_lowercase()),
            "PARTUUID" => DeviceSpec::PartUuid(v.to_ascii_lowercase()),
            "LABEL" => DeviceSpec::Label(v.to_owned()),
            "PARTLABEL" => DeviceSpec::PartLabel(v.to_owned()),
            "" if v.starts_with('/') => DeviceSpec::Path(PathBuf::from(v)),
            _ => return None,
        })
    }
}

/// One crypttab line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Mapping name (`/dev/mapper/NAME`).
    pub name: String,
    /// The encrypted device.
    pub device: DeviceSpec,
    /// Key file; `None` for `none`, `-` or an absent field.
    pub key_file: Option<PathBuf>,
    /// Options in order, e.g. `luks`, `discard`, `keyfile-timeout=10s`.
    pub options: Vec<String>,
}

impl Entry {
    /// True when the flag option `opt` is present.
    pub fn has(&self, opt: &str) -> bool {
        self.options.iter().any(|o| o == opt)
    }
}

/// Parses crypttab text as systemd does (no escapes). Bad lines are
/// skipped with a warning naming the line number.
pub fn parse(text: &str) -> (Vec<Entry>, Vec<String>) {
    parse_with(text, Escapes::None)
}

/// Parses crypttab text whose fields are written with `esc`.
pub fn parse_with(text: &str, esc: Escapes) -> (Vec<Entry>, Vec<String>) {
    let mut out = Vec::new();
    let mut warn = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<String> = line.split_whitespace().map(|f| unescape(f, esc)).collect();
        let lineno = n + 1;
        if f.len() < 2 || f.len() > 4 {
            warn.push(format!(
                "crypttab line {lineno}: expected 2 to 4 fields, found {}; skipped",
                f.len()
            ));
            continue;
        }
        if f[0].contains('/') {
            warn.push(format!(
                "crypttab line {lineno}: name {:?} contains '/'; skipped",
                f[0]
            ));
            continue;
        }
        let Some(device) = DeviceSpec::parse(&f[1]) else {
            warn.push(format!(
                "crypttab line {lineno}: device {:?} is not UUID=, PARTUUID=, LABEL=, \
                 PARTLABEL= or an absolute path; skipped",
                f[1]
            ));
            continue;
        };
        let key_file = match f.get(2).map(String::as_str) {
            None | Some("none") | Some("-") | Some("") => None,
            Some(k) => Some(PathBuf::from(k)),
        };
        let options = f.get(3).map(|o| {
            o.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        });
        out.push(Entry {
            name: f[0].clone(),
            device,
            key_file,
            options: options.unwrap_or_default(),
        });
    }
    (out, warn)
}

/// Reads every crypttab of [`INITRD_PATHS`] that exists under `root` (`/`
/// in the initrd), in that order; a name already seen keeps its first
/// entry. Warnings name the file and line.
pub fn load(root: &Path) -> (Vec<Entry>, Vec<String>) {
    let files: Vec<(PathBuf, Escapes)> = INITRD_PATHS
        .iter()
        .map(|(p, esc)| (root.join(p.trim_start_matches('/')), *esc))
        .collect();
    load_with(&files)
}

/// Reads each of `files` that exists, as [`load`] does, fields as written
/// (systemd's syntax).
pub fn load_files(files: &[PathBuf]) -> (Vec<Entry>, Vec<String>) {
    let files: Vec<(PathBuf, Escapes)> = files.iter().map(|p| (p.clone(), Escapes::None)).collect();
    load_with(&files)
}

fn load_with(files: &[(PathBuf, Escapes)]) -> (Vec<Entry>, Vec<String>) {
    let mut out: Vec<Entry> = Vec::new();
    let mut warn = Vec::new();
    for (path, esc) in files {
        let text = match latchkey_sys::file::read_text(path, MAX_CRYPTTAB) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                warn.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        let (entries, w) = parse_with(&text, *esc);
        warn.extend(w.into_iter().map(|w| format!("{}: {w}", path.display())));
        for e in entries {
            if !out.iter().any(|o| o.name == e.name) {
                out.push(e);
            }
        }
    }
    (out, warn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_style_file() {
        // The line the Debian QEMU reference image uses, and common variants.
        let text = "# <target name> <source device> <key file> <options>\n\
                    \n\
                    cryptroot /dev/vda none luks,initramfs\n\
                    \tdata UUID=0D3F1B52-7A37-4C2B-9B0E-3C1F5E2A9D10  -  luks,discard,_netdev,keyfile-timeout=10s\n\
                    swap PARTUUID=ABCD-01 /dev/urandom swap,cipher=aes-xts-plain64\n\
                    home LABEL=home\n";
        let (e, w) = parse(text);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(e.len(), 4);
        assert_eq!(e[0].name, "cryptroot");
        assert_eq!(e[0].device, DeviceSpec::Path("/dev/vda".into()));
        assert_eq!(e[0].key_file, None);
        assert!(e[0].has("initramfs") && !e[0].has("discard"));
        assert_eq!(
            e[1].device,
            DeviceSpec::Uuid("0d3f1b52-7a37-4c2b-9b0e-3c1f5e2a9d10".into())
        );
        assert!(e[1].has("discard") && e[1].has("_netdev"));
        assert!(e[1].has("keyfile-timeout=10s"));
        assert_eq!(e[2].device, DeviceSpec::PartUuid("abcd-01".into()));
        assert_eq!(e[2].key_file, Some(PathBuf::from("/dev/urandom")));
        assert_eq!(e[3].device, DeviceSpec::Label("home".into()));
        assert!(e[3].options.is_empty());
    }

    #[test]
    fn bad_lines_are_named() {
        let (e, w) = parse(
            "lonely\nx UUID= none luks\na/b /dev/sda\nok /dev/sdb none luks extra\nfine /dev/sdc\n",
        );
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].name, "fine");
        assert_eq!(w.len(), 4);
        assert!(w[0].starts_with("crypttab line 1:"));
        assert_eq!(
            w[1],
            "crypttab line 2: device \"UUID=\" is not UUID=, PARTUUID=, LABEL=, PARTLABEL= or an absolute path; skipped"
        );
        assert!(w[2].contains("contains '/'"));
        assert!(w[3].starts_with("crypttab line 4:"));
    }

    #[test]
    fn initramfs_tools_keeps_it_in_cryptroot() {
        // What Debian's cryptsetup-initramfs puts in the initrd: no /etc/crypttab.
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("cryptroot")).unwrap();
        std::fs::write(
            root.path().join("cryptroot/crypttab"),
            "cryptroot UUID=4c4b0001-0000-4000-8000-000000000001 none luks,initramfs\n",
        )
        .unwrap();
        let (e, w) = load(root.path());
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].name, "cryptroot");
        assert_eq!(
            e[0].device,
            DeviceSpec::Uuid("4c4b0001-0000-4000-8000-000000000001".into())
        );
    }

    #[test]
    fn a_fifo_or_an_oversized_crypttab_is_named_not_waited_on() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::create_dir_all(root.path().join("cryptroot")).unwrap();
        let fifo = root.path().join("etc/crypttab");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let big = "# padding\n".repeat((MAX_CRYPTTAB / 10) as usize + 1);
        std::fs::write(root.path().join("cryptroot/crypttab"), big).unwrap();
        let (e, w) = load(root.path());
        assert!(e.is_empty());
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].ends_with("etc/crypttab: not a regular file"), "{w:?}");
        assert!(
            w[1].ends_with(&format!(
                "cryptroot/crypttab: larger than {MAX_CRYPTTAB} bytes"
            )),
            "{w:?}"
        );
    }

    #[test]
    fn etc_crypttab_first_names_once() {
        let root = tempfile::tempdir().unwrap();
        for (p, t) in [
            ("etc/crypttab", "root /dev/vda none luks\nbad\n"),
            (
                "cryptroot/crypttab",
                "root /dev/vdb none luks\nswap /dev/vdc none luks\n",
            ),
        ] {
            let f = root.path().join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, t).unwrap();
        }
        let (e, w) = load(root.path());
        let got: Vec<_> = e.iter().map(|e| (e.name.as_str(), &e.device)).collect();
        assert_eq!(
            got,
            [
                ("root", &DeviceSpec::Path("/dev/vda".into())),
                ("swap", &DeviceSpec::Path("/dev/vdc".into()))
            ]
        );
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("etc/crypttab: crypttab line 2"), "{w:?}");
        assert!(load(&root.path().join("none")).0.is_empty());
    }

    #[test]
    fn debian_escapes_in_cryptroot_only() {
        // What cryptsetup-initramfs copies from /etc/crypttab, escapes kept.
        let root = tempfile::tempdir().unwrap();
        for (p, t) in [
            ("etc/crypttab", "sys\\040tem /dev/vda none luks\n"),
            (
                "cryptroot/crypttab",
                "my\\040disk /dev/vdb none luks\nlab\\x2del LABEL=a\\0040b none luks,discard\n",
            ),
        ] {
            let f = root.path().join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, t).unwrap();
        }
        let (e, w) = load(root.path());
        assert!(w.is_empty(), "{w:?}");
        let got: Vec<_> = e.iter().map(|e| (e.name.as_str(), &e.device)).collect();
        assert_eq!(
            got,
            [
                ("sys\\040tem", &DeviceSpec::Path("/dev/vda".into())),
                ("my disk", &DeviceSpec::Path("/dev/vdb".into())),
                ("lab\\x2del", &DeviceSpec::Label("a b".into())),
            ]
        );
    }

    #[test]
    fn unescape_as_dash_printf_b() {
        let cases = [
            ("plain", "plain"),
            ("a\\040b", "a b"),
            ("a\\0040b", "a b"),
            ("a\\101b", "aAb"),
            ("a\\x2db", "a\\x2db"),
            ("a\\\\b", "a\\b"),
            ("a\\tb\\n", "a\tb\n"),
            ("a\\cb", "a"),
            ("a\\08b", "a\u{0}8b"),
            ("end\\", "end\\"),
        ];
        for (raw, want) in cases {
            assert_eq!(unescape(raw, Escapes::Debian), want, "{raw}");
            assert_eq!(unescape(raw, Escapes::None), raw);
        }
        // The same decoding as Debian's own: dash's printf %b.
        if std::path::Path::new("/bin/dash").exists() {
            for (raw, want) in cases {
                let out = std::process::Command::new("/bin/dash")
                    .args(["-c", "printf '%b' \"$1\"", "sh", raw])
                    .output()
                    .unwrap();
                assert_eq!(String::from_utf8_lossy(&out.stdout), want, "dash on {raw}");
            }
        }
    }

    #[test]
    fn device_specs() {
        assert_eq!(
            DeviceSpec::parse("UUID=luks-ABC"),
            Some(DeviceSpec::Uuid("abc".into()))
        );
        assert_eq!(
            DeviceSpec::parse("PARTLABEL=esp"),
            Some(DeviceSpec::PartLabel("esp".into()))
        );
        assert_eq!(
            DeviceSpec::parse("LABEL=\"my disk\""),
            Some(DeviceSpec::Label("my disk".into()))
        );
        assert_eq!(DeviceSpec::parse("sda1"), None);
        assert_eq!(DeviceSpec::parse("ID=x"), None);
    }
}
