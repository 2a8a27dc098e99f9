//! The kernel command line: the `rd.luks.*`, `ip=`, `nameserver=`,
//! `vlan=`, `bond=`, `BOOTIF=` and `rd.neednet=` options dracut and
//! systemd understand, and
//! the agent's own `latchkey.*` options.
//!
//! Parsing never fails: a malformed or unknown option yields a warning
//! naming it and the default is kept, because a typo on the command line
//! must not keep a machine from booting.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use latchkey_client::{Fingerprint, Trust};

use crate::net::ip::{IpParam, parse_bootif, parse_ip, parse_ip_addr};
use crate::net::links::{Bond, Vlan, parse_bond, parse_vlan};
use crate::volume::crypttab::DeviceSpec;

/// Default overall deadline for unattended unlock.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(60);
/// Default timeout of one Tang request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default delay before the passphrase prompt appears beside the network attempt.
pub const DEFAULT_PROMPT_DELAY: Duration = Duration::from_secs(10);
/// Default path of the local boot key on the boot partition.
pub const DEFAULT_KEY_PATH: &str = "/boot/nbde/local-boot.key";

/// Everything the agent takes from the command line, in one part per consumer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    /// Which volumes, named how, with which options.
    pub volumes: VolumeOptions,
    /// How to bring the network up.
    pub network: NetworkOptions,
    /// How long unattended unlock may take.
    pub timing: Timing,
    /// Where the local boot key is.
    pub boot_key: BootKeyOptions,
    /// `latchkey.ca=`, `latchkey.tls-pin=`: which certificates `https://` Tang
    /// servers may show (the last of the two given wins).
    pub trust: Trust,
    /// `latchkey.debug`.
    pub debug: bool,
}

/// `rd.luks*`: which volumes to open and how.
#[derive(Clone, Debug, PartialEq)]
pub struct VolumeOptions {
    /// `rd.luks=0` turns LUKS handling off.
    pub enabled: bool,
    /// `rd.luks.uuid=`: LUKS UUIDs to open (lower case, no `luks-` prefix).
    pub uuids: Vec<String>,
    /// `rd.luks.name=UUID=NAME`: mapping names by UUID.
    pub names: Vec<(String, String)>,
    /// `rd.luks.options=`: options for one UUID, or for all (`uuid: None`).
    pub options: Vec<LuksOptions>,
}

impl Default for VolumeOptions {
    fn default() -> VolumeOptions {
        VolumeOptions {
            enabled: true,
            uuids: Vec::new(),
            names: Vec::new(),
            options: Vec::new(),
        }
    }
}

impl VolumeOptions {
    /// The mapping name for LUKS `uuid`: from `rd.luks.name=` (as the
    /// kernel gets it from cryptsetup, [`crate::volume::dm_name`]), else
    /// `luks-UUID` as systemd-cryptsetup-generator and dracut name it.
    pub fn name_for(&self, uuid: &str) -> String {
        let uuid = normalize_uuid(uuid);
        self.names
            .iter()
            .find(|(u, _)| *u == uuid)
            .map(|(_, n)| crate::volume::dm_name(n))
            .unwrap_or_else(|| default_name(&uuid))
    }

    /// The options for LUKS `uuid`: its own `rd.luks.options=UUID=` if given,
    /// else the global ones.
    pub fn options_for(&self, uuid: &str) -> Vec<String> {
        let uuid = normalize_uuid(uuid);
        let own = self
            .options
            .iter()
            .rev()
            .find(|o| o.uuid.as_deref() == Some(uuid.as_str()));
        let global = self.options.iter().rev().find(|o| o.uuid.is_none());
        own.or(global)
            .map(|o| o.options.clone())
            .unwrap_or_default()
    }
}

/// `ip=`, `nameserver=`, `vlan=`, `bond=`, `BOOTIF=`, `rd.neednet=`: the network.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NetworkOptions {
    /// Every `ip=`, in order.
    pub ip: Vec<IpParam>,
    /// `nameserver=`, in order.
    pub nameservers: Vec<IpAddr>,
    /// `vlan=`, in order.
    pub vlans: Vec<Vlan>,
    /// `bond=`, in order.
    pub bonds: Vec<Bond>,
    /// `BOOTIF=`: the MAC of the interface the machine booted from.
    pub bootif: Option<[u8; 6]>,
    /// `rd.neednet=`.
    pub neednet: Option<bool>,
}

/// `latchkey.deadline=`, `.timeout=`, `.prompt-delay=`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    /// Overall time for unattended unlock.
    pub deadline: Duration,
    /// Time for one Tang request.
    pub timeout: Duration,
    /// Delay before the passphrase prompt appears.
    pub prompt_delay: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            deadline: DEFAULT_DEADLINE,
            timeout: DEFAULT_TIMEOUT,
            prompt_delay: DEFAULT_PROMPT_DELAY,
        }
    }
}

/// `latchkey.key=`, `latchkey.boot=`: the local boot key.
#[derive(Clone, Debug, PartialEq)]
pub struct BootKeyOptions {
    /// The key file.
    pub path: PathBuf,
    /// The partition holding it, if not already mounted.
    pub partition: Option<DeviceSpec>,
}

impl Default for BootKeyOptions {
    fn default() -> BootKeyOptions {
        BootKeyOptions {
            path: PathBuf::from(DEFAULT_KEY_PATH),
            partition: None,
        }
    }
}

/// One `rd.luks.options=` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LuksOptions {
    /// The UUID it applies to, or `None` for all.
    pub uuid: Option<String>,
    /// Comma-separated options, split.
    pub options: Vec<String>,
}

/// `luks-UUID`, the mapping name a volume gets when nothing names it.
pub fn default_name(uuid: &str) -> String {
    format!("luks-{}", normalize_uuid(uuid))
}

/// Strips `luks-` and lower-cases, so that UUIDs compare as LUKS headers
/// store them.
pub fn normalize_uuid(s: &str) -> String {
    let s = s.strip_prefix("luks-").unwrap_or(s);
    s.to_ascii_lowercase()
}

fn looks_like_uuid(s: &str) -> bool {
    let s = s.strip_prefix("luks-").unwrap_or(s);
    s.chars().filter(|c| c.is_ascii_hexdigit()).count() == 32
        && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}

/// Splits the command line into words as the kernel does: whitespace
/// separates, double quotes group and are removed.
pub fn split(cmdline: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut in_word = false;
    for c in cmdline.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

fn parse_bool(v: Option<&str>) -> Option<bool> {
    match v {
        None | Some("1" | "yes" | "true" | "on" | "y") => Some(true),
        Some("0" | "no" | "false" | "off" | "n") => Some(false),
        _ => None,
    }
}

/// What a boolean option accepts, for its warning.
const BOOLEANS: &str = "expected 1/0, yes/no, true/false or on/off";

/// Seconds as an integer or decimal (`2`, `0.5`).
fn parse_seconds(v: &str) -> Option<Duration> {
    let d = v.strip_suffix('s').unwrap_or(v);
    if d.is_empty() || !d.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let secs: f64 = d.parse().ok()?;
    (secs.is_finite() && secs <= 86_400.0).then(|| Duration::from_secs_f64(secs))
}

/// Parses a whole command line into a [`Config`] and warnings.
pub fn parse(cmdline: &str) -> (Config, Vec<String>) {
    let mut cfg = Config::default();
    let mut warn = Vec::new();
    for word in split(cmdline) {
        let (key, value) = match word.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (word.as_str(), None),
        };
        match (key, value) {
            ("rd.luks", v) => match parse_bool(v) {
                Some(b) => cfg.volumes.enabled = b,
                None => warn.push(format!("{word}: {BOOLEANS}; ignored")),
            },
            ("rd.luks.uuid", Some(v)) if looks_like_uuid(v) => {
                let u = normalize_uuid(v);
                if !cfg.volumes.uuids.contains(&u) {
                    cfg.volumes.uuids.push(u);
                }
            }
            ("rd.luks.name", Some(v)) => match v.split_once('=') {
                Some((u, n)) if looks_like_uuid(u) && !n.is_empty() && !n.contains('/') => {
                    let u = normalize_uuid(u);
                    cfg.volumes.names.retain(|(x, _)| *x != u);
                    cfg.volumes.names.push((u.clone(), n.to_owned()));
                    if !cfg.volumes.uuids.contains(&u) {
                        cfg.volumes.uuids.push(u);
                    }
                }
                _ => warn.push(format!("{word}: expected rd.luks.name=UUID=NAME; ignored")),
            },
            ("rd.luks.options", Some(v)) => {
                let (uuid, opts) = match v.split_once('=') {
                    Some((u, o)) if looks_like_uuid(u) => (Some(normalize_uuid(u)), o),
                    _ => (None, v),
                };
                let options = opts
                    .split(',')
                    .filter(|o| !o.is_empty())
                    .map(str::to_owned)
                    .collect();
                cfg.volumes.options.push(LuksOptions { uuid, options });
            }
            ("rd.luks.uuid" | "ip" | "nameserver" | "BOOTIF" | "vlan", _)
                if value.is_none_or(str::is_empty) =>
            {
                warn.push(format!("{word}: missing value; ignored"))
            }
            ("rd.luks.uuid", Some(v)) => warn.push(format!(
                "rd.luks.uuid={v}: expected a LUKS UUID (32 hex digits and dashes, \
                     luks- prefix allowed); ignored"
            )),
            ("ip", Some(v)) => match parse_ip(v) {
                Ok(p) => cfg.network.ip.push(p),
                Err(w) => warn.push(w),
            },
            ("nameserver", Some(v)) => match parse_ip_addr(v) {
                Some(a) => cfg.network.nameservers.push(a),
                None => warn.push(format!(
                    "nameserver={v}: expected an IPv4 or IPv6 address; ignored"
                )),
            },
            ("vlan", Some(v)) => match parse_vlan(v) {
                Ok(l) if cfg.network.vlans.iter().any(|x| x.name == l.name) => {
                    warn.push(format!("vlan={v}: {} is already defined; ignored", l.name))
                }
                Ok(l) => cfg.network.vlans.push(l),
                Err(w) => warn.push(w),
            },
            ("bond", v) => match parse_bond(v.filter(|v| !v.is_empty())) {
                Ok((b, w)) if cfg.network.bonds.iter().any(|x| x.name == b.name) => {
                    warn.extend(w);
                    warn.push(format!("{word}: {} is already defined; ignored", b.name))
                }
                Ok((b, w)) => {
                    warn.extend(w);
                    cfg.network.bonds.push(b)
                }
                Err(w) => warn.push(w),
            },
            ("BOOTIF", Some(v)) => match parse_bootif(v) {
                Some(m) => cfg.network.bootif = Some(m),
                None => warn.push(format!(
                    "BOOTIF={v}: expected 01-aa-bb-cc-dd-ee-ff; ignored"
                )),
            },
            ("rd.neednet", v) => match parse_bool(v) {
                Some(b) => cfg.network.neednet = Some(b),
                None => warn.push(format!("{word}: {BOOLEANS}; ignored")),
            },
            (k, v) if k.starts_with("latchkey.") => {
                latchkey_option(&mut cfg, &mut warn, &k[9..], v)
            }
            _ => {}
        }
    }
    if cfg.timing.timeout > cfg.timing.deadline {
        warn.push(format!(
            "latchkey.timeout={}s is longer than latchkey.deadline={}s; using the deadline",
            cfg.timing.timeout.as_secs_f64(),
            cfg.timing.deadline.as_secs_f64()
        ));
        cfg.timing.timeout = cfg.timing.deadline;
    }
    (cfg, warn)
}

fn latchkey_option(cfg: &mut Config, warn: &mut Vec<String>, key: &str, value: Option<&str>) {
    let seconds = |warn: &mut Vec<String>, default: Duration, positive: bool| match value
        .map(parse_seconds)
    {
        Some(Some(d)) if !positive || !d.is_zero() => d,
        _ => {
            warn.push(format!(
                "latchkey.{key}={}: expected a {}number of seconds; using {}s",
                value.unwrap_or(""),
                if positive { "positive " } else { "" },
                default.as_secs_f64()
            ));
            default
        }
    };
    match key {
        "deadline" => cfg.timing.deadline = seconds(warn, DEFAULT_DEADLINE, true),
        "timeout" => cfg.timing.timeout = seconds(warn, DEFAULT_TIMEOUT, true),
        "prompt-delay" => cfg.timing.prompt_delay = seconds(warn, DEFAULT_PROMPT_DELAY, false),
        "key" => match value {
            Some(p) if p.starts_with('/') => cfg.boot_key.path = PathBuf::from(p),
            _ => warn.push(format!(
                "latchkey.key={}: expected an absolute path; using {DEFAULT_KEY_PATH}",
                value.unwrap_or("")
            )),
        },
        "boot" => match value.and_then(DeviceSpec::parse) {
            Some(d) => cfg.boot_key.partition = Some(d),
            None => warn.push(format!(
                "latchkey.boot={}: expected UUID=, PARTUUID=, LABEL= or a /dev path; ignored",
                value.unwrap_or("")
            )),
        },
        "ca" => match value {
            Some(p) if p.starts_with('/') => cfg.trust = Trust::CaFile(PathBuf::from(p)),
            _ => warn.push(format!(
                "latchkey.ca={}: expected the absolute path of a PEM CA bundle in the initrd; ignored",
                value.unwrap_or("")
            )),
        },
        "tls-pin" => match Fingerprint::parse(value.unwrap_or("")) {
            Ok(fp) => cfg.trust = Trust::Pin(fp),
            Err(e) => warn.push(format!("latchkey.tls-pin: {e}; ignored")),
        },
        "debug" => match parse_bool(value) {
            Some(b) => cfg.debug = b,
            None => warn.push(format!(
                "latchkey.debug={}: {BOOLEANS}; ignored",
                value.unwrap_or("")
            )),
        },
        _ => warn.push(format!(
            "latchkey.{key}: unknown option (known: latchkey.deadline, .timeout, .prompt-delay, \
             .key, .boot, .ca, .tls-pin, .debug); ignored"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "0d3f1b52-7a37-4c2b-9b0e-3c1f5e2a9d10";

    #[test]
    fn splitting_follows_kernel_quoting() {
        assert_eq!(
            split("  a b=\"c d\"  \"e f=g\"\tx\n"),
            vec!["a", "b=c d", "e f=g", "x"]
        );
        assert_eq!(split("k=\"\""), vec!["k="]);
        assert!(split("   ").is_empty());
    }

    #[test]
    fn luks_options() {
        let line = format!(
            "BOOT_IMAGE=/vmlinuz root=/dev/mapper/r rd.luks.uuid=luks-{} rd.luks.uuid={U} \
             rd.luks.name={}=root rd.luks.options=discard rd.luks.options={U}=discard,no-read-workqueue",
            U.to_uppercase(),
            "11111111-2222-3333-4444-555555555555"
        );
        let (c, w) = parse(&line);
        assert!(w.is_empty(), "{w:?}");
        assert!(c.volumes.enabled);
        assert_eq!(
            c.volumes.uuids,
            vec![
                U.to_owned(),
                "11111111-2222-3333-4444-555555555555".to_owned()
            ]
        );
        assert_eq!(
            c.volumes.name_for("11111111-2222-3333-4444-555555555555"),
            "root"
        );
        assert_eq!(c.volumes.name_for(U), format!("luks-{U}"));
        assert_eq!(
            c.volumes.options_for(U),
            vec!["discard", "no-read-workqueue"]
        );
        assert_eq!(
            c.volumes
                .options_for("11111111-2222-3333-4444-555555555555"),
            vec!["discard"]
        );
        let (c, _) = parse("rd.luks=0");
        assert!(!c.volumes.enabled);
        let (_, w) = parse("rd.luks.uuid=nope rd.luks.name=bad");
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("rd.luks.uuid=nope"));
    }

    #[test]
    fn other_network_options() {
        let (c, w) = parse(
            "nameserver=1.1.1.1 nameserver=[2606:4700::1111] BOOTIF=01-52-54-00-ab-cd-ef rd.neednet=1 ip=dhcp",
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.network.nameservers.len(), 2);
        assert_eq!(c.network.bootif, Some([0x52, 0x54, 0, 0xab, 0xcd, 0xef]));
        assert_eq!(c.network.neednet, Some(true));
        assert_eq!(c.network.ip.len(), 1);
        let (c, w) = parse(
            "vlan=eth0.5:eth0 vlan=eth0.5:eth1 vlan=mgmt:eth0 bond=bond0:eth0,eth1:mode=802.3ad,miimon=100,ad_select=0 bond",
        );
        assert_eq!(c.network.vlans.len(), 1);
        assert_eq!(
            (c.network.vlans[0].id, c.network.vlans[0].parent.as_str()),
            (5, "eth0")
        );
        assert_eq!(c.network.bonds.len(), 1);
        assert_eq!(c.network.bonds[0].miimon, Some(100));
        assert_eq!(w.len(), 4, "{w:?}");
        assert!(
            w[0].contains("already defined") && w[1].contains("no VLAN ID"),
            "{w:?}"
        );
        assert!(
            w[2].contains("ad_select") && w[3].contains("bond0 is already defined"),
            "{w:?}"
        );
        let (c, w) = parse("BOOTIF=zz nameserver=x ip=");
        assert_eq!(w.len(), 3, "{w:?}");
        assert_eq!(
            (
                c.network.bootif,
                c.network.nameservers.len(),
                c.network.ip.len()
            ),
            (None, 0, 0)
        );
        assert_eq!(parse("ip=off").0.network.ip, vec![IpParam::Off]);
    }

    #[test]
    fn latchkey_options() {
        let (c, w) = parse(
            "latchkey.deadline=120 latchkey.timeout=2.5 latchkey.prompt-delay=0 latchkey.key=/boot/k \
             latchkey.boot=LABEL=boot latchkey.debug",
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.timing.deadline, Duration::from_secs(120));
        assert_eq!(c.timing.timeout, Duration::from_millis(2500));
        assert_eq!(c.timing.prompt_delay, Duration::ZERO);
        assert_eq!(c.boot_key.path, PathBuf::from("/boot/k"));
        assert_eq!(c.boot_key.partition, Some(DeviceSpec::Label("boot".into())));
        assert!(c.debug);

        let (c, w) = parse(
            "latchkey.deadline=soon latchkey.timeout=0 latchkey.key=rel latchkey.frobnicate=1 latchkey.boot=",
        );
        assert_eq!(c, Config::default());
        assert_eq!(
            w,
            vec![
                "latchkey.deadline=soon: expected a positive number of seconds; using 60s",
                "latchkey.timeout=0: expected a positive number of seconds; using 5s",
                "latchkey.key=rel: expected an absolute path; using /boot/nbde/local-boot.key",
                "latchkey.frobnicate: unknown option (known: latchkey.deadline, .timeout, \
                 .prompt-delay, .key, .boot, .ca, .tls-pin, .debug); ignored",
                "latchkey.boot=: expected UUID=, PARTUUID=, LABEL= or a /dev path; ignored",
            ]
        );
        let (c, w) = parse("latchkey.deadline=3 latchkey.timeout=10");
        assert_eq!(c.timing.timeout, Duration::from_secs(3));
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn trust_options() {
        let pin = "sha256:d6182255e5739d55fc9781759c7a823d4dff3d2b7d17949e7085ee7c0cc22acf";
        let (c, w) = parse("latchkey.ca=/etc/latchkey/tang-ca.pem");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.trust, Trust::CaFile("/etc/latchkey/tang-ca.pem".into()));
        // initrd.conf comes first, the kernel's command line after it: the last one wins.
        let (c, w) = parse(&format!("latchkey.ca=/ca.pem latchkey.tls-pin={pin}"));
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.trust, Trust::Pin(Fingerprint::parse(pin).unwrap()));
        let (c, _) = parse(&format!("latchkey.tls-pin={pin} latchkey.ca=/ca.pem"));
        assert_eq!(c.trust, Trust::CaFile("/ca.pem".into()));

        let (c, w) =
            parse("latchkey.ca=ca.pem latchkey.ca latchkey.tls-pin=sha256:12ab latchkey.tls-pin");
        assert_eq!(c.trust, Trust::System);
        assert_eq!(
            w,
            vec![
                "latchkey.ca=ca.pem: expected the absolute path of a PEM CA bundle in the initrd; ignored",
                "latchkey.ca=: expected the absolute path of a PEM CA bundle in the initrd; ignored",
                "latchkey.tls-pin: certificate pin \"sha256:12ab\": a SHA-256 fingerprint has 64 hex digits; ignored",
                "latchkey.tls-pin: certificate pin \"\": expected sha256: and 64 hex digits; ignored",
            ]
        );
    }

    /// Every warning names the option, what was expected and what happens.
    #[test]
    fn warnings_say_what_was_expected() {
        let (_, w) = parse(
            "rd.luks=maybe rd.neednet=2 rd.luks.uuid=root nameserver=dns.example \
             ip=dhcpp ip=eth0:dhcp:big ip=eth0:dhcp:1500:zz ip=10.0.0.2::10.0.0.1:24::eth0:static \
             latchkey.debug=loud",
        );
        assert_eq!(
            w,
            vec![
                "rd.luks=maybe: expected 1/0, yes/no, true/false or on/off; ignored",
                "rd.neednet=2: expected 1/0, yes/no, true/false or on/off; ignored",
                "rd.luks.uuid=root: expected a LUKS UUID (32 hex digits and dashes, luks- prefix allowed); ignored",
                "nameserver=dns.example: expected an IPv4 or IPv6 address; ignored",
                "ip=dhcpp: \"dhcpp\" is neither a method (dhcp, on, any, dhcp6, auto6, either6, ibft, off or none) nor an address; ignored",
                "ip=eth0:dhcp:big: MTU \"big\" is not a number; ignored",
                "ip=eth0:dhcp:1500:zz: MAC \"zz\" is not six hex pairs joined by colons; ignored",
                "ip=10.0.0.2::10.0.0.1:24::eth0:static: unknown method \"static\" (expected dhcp, on, any, dhcp6, auto6, either6, ibft, off or none); ignored",
                "latchkey.debug=loud: expected 1/0, yes/no, true/false or on/off; ignored",
            ]
        );
    }

    /// Random command lines built from the characters that matter never
    /// panic the parser (a cheap stand-in until fuzz/ has a target).
    #[test]
    fn random_lines_do_not_panic() {
        use latchkey_client::time::{Jitter, XorShift};
        let pieces = [
            "ip=",
            "rd.luks",
            ".uuid=",
            ".name=",
            ".options=",
            "latchkey.",
            "deadline=",
            "boot=",
            "LABEL=",
            "UUID=",
            ":",
            "::",
            "[",
            "]",
            "\"",
            " ",
            "=",
            "dhcp",
            "off",
            "eth0",
            "10.0.0.1",
            "255.255.0.0",
            "2001:db8::1",
            "0d3f1b52-7a37-4c2b-9b0e-3c1f5e2a9d10",
            "BOOTIF=01-",
            "aa-",
            "nameserver=",
            "1",
            "0",
            ".",
            "-",
            "luks-",
            ",",
            "é",
            "\t",
        ];
        let mut rng = XorShift::new(99);
        for _ in 0..20_000 {
            let n = rng.next_u32() % 24;
            let line: String = (0..n)
                .map(|_| pieces[rng.next_u32() as usize % pieces.len()])
                .collect();
            let (cfg, _) = parse(&line);
            let _ = crate::net::plan::plan(&cfg.network);
            let _ = crate::volume::crypttab::parse(&line.replace(' ', "\n"));
        }
    }
}
