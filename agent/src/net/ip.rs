//! The `ip=` grammar of the kernel command line, as the kernel
//! (`Documentation/admin-guide/nfs/nfsroot.rst`) and dracut write it, and
//! the `BOOTIF=` MAC: pure parsing, no I/O.

use std::net::{IpAddr, Ipv4Addr};

/// How an interface gets its address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Autoconf {
    /// `off`, `none`: static only.
    Off,
    /// `dhcp`, `on`, `any`, `bootp`, `both`, `single-dhcp`: DHCPv4.
    Dhcp,
    /// `dhcp6`.
    Dhcp6,
    /// `auto6`, `link6`: IPv6 router advertisements.
    Auto6,
    /// `either6`: RA, or DHCPv6.
    Either6,
    /// `ibft`: from the iSCSI firmware table.
    Ibft,
}

impl Autoconf {
    fn parse(s: &str) -> Option<Autoconf> {
        Some(match s {
            "off" | "none" => Autoconf::Off,
            "dhcp" | "on" | "any" | "bootp" | "both" | "single-dhcp" | "rarp" => Autoconf::Dhcp,
            "dhcp6" => Autoconf::Dhcp6,
            "auto6" | "link6" => Autoconf::Auto6,
            "either6" => Autoconf::Either6,
            "ibft" => Autoconf::Ibft,
            _ => return None,
        })
    }
}

/// One `ip=` option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IpParam {
    /// `ip=off`/`ip=none`: no network configuration.
    Off,
    /// `ip=METHOD` or `ip=IFACE:METHOD[:MTU[:MAC]]`.
    Auto {
        /// The interface, or all.
        iface: Option<String>,
        /// The method.
        method: Autoconf,
        /// `MTU` field.
        mtu: Option<u32>,
        /// `MAC` field: use this hardware address.
        mac: Option<[u8; 6]>,
    },
    /// `ip=CLIENT:PEER:GATEWAY:NETMASK:HOSTNAME:IFACE:AUTOCONF[:DNS0[:DNS1]]`
    /// (or `[:MTU[:MAC]]` in dracut's variant).
    Static(StaticIp),
}

/// The fields of the long `ip=` form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticIp {
    /// Client address; `None` with a DHCP method.
    pub client: Option<IpAddr>,
    /// Peer (server) address, unused by the agent.
    pub peer: Option<IpAddr>,
    /// Default gateway.
    pub gateway: Option<IpAddr>,
    /// Prefix length (from a dotted netmask or a number).
    pub prefix: Option<u8>,
    /// Host name.
    pub hostname: Option<String>,
    /// Interface name.
    pub iface: Option<String>,
    /// Method (`Off` when the field is empty and a client address is given).
    pub autoconf: Autoconf,
    /// DNS servers from the 8th and 9th fields.
    pub dns: Vec<IpAddr>,
    /// MTU from dracut's 8th field.
    pub mtu: Option<u32>,
    /// MAC from dracut's 9th field.
    pub mac: Option<[u8; 6]>,
}

/// The `ip=` methods understood, for the warning about another.
const IP_METHODS: &str = "dhcp, on, any, dhcp6, auto6, either6, ibft, off or none";

/// Parses a MAC as `aa:bb:cc:dd:ee:ff` or `aa-bb-…`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (m, p) in mac.iter_mut().zip(&parts) {
        if p.len() != 2 {
            return None;
        }
        *m = u8::from_str_radix(p, 16).ok()?;
    }
    Some(mac)
}

/// `BOOTIF=01-aa-bb-cc-dd-ee-ff` (PXELINUX: hardware type 01 = Ethernet).
pub(crate) fn parse_bootif(s: &str) -> Option<[u8; 6]> {
    let s = if s.len() == 20 {
        s.strip_prefix("01-")?
    } else {
        s
    };
    parse_mac(s)
}

/// A dotted IPv4 netmask or a prefix length.
fn parse_prefix(s: &str) -> Option<u8> {
    if let Ok(n) = s.parse::<u8>() {
        return (n <= 128).then_some(n);
    }
    let m = u32::from(s.parse::<Ipv4Addr>().ok()?);
    let ones = m.leading_ones();
    (m.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

pub(crate) fn parse_ip_addr(s: &str) -> Option<IpAddr> {
    let s = s
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(s);
    s.parse().ok()
}

/// Splits on `:` outside `[...]`.
fn split_fields(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ':' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn opt_str(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// Parses one `ip=` value.
pub fn parse_ip(v: &str) -> Result<IpParam, String> {
    let mut f = split_fields(v);
    // dracut puts a colon-separated MAC last: glue its six parts back.
    let joined;
    if f.len() >= 8
        && f[f.len() - 6..]
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
    {
        joined = f[f.len() - 6..].join(":");
        f.truncate(f.len() - 6);
        f.push(&joined);
    }
    let bad = |what: &str| format!("ip={v}: {what}; ignored");
    if f.len() == 1 {
        return match Autoconf::parse(f[0]) {
            Some(Autoconf::Off) => Ok(IpParam::Off),
            Some(method) => Ok(IpParam::Auto {
                iface: None,
                method,
                mtu: None,
                mac: None,
            }),
            None => match parse_ip_addr(f[0]) {
                Some(ip) => Ok(IpParam::Static(StaticIp {
                    client: Some(ip),
                    peer: None,
                    gateway: None,
                    prefix: None,
                    hostname: None,
                    iface: None,
                    autoconf: Autoconf::Off,
                    dns: Vec::new(),
                    mtu: None,
                    mac: None,
                })),
                None => Err(bad(&format!(
                    "{:?} is neither a method ({IP_METHODS}) nor an address",
                    f[0]
                ))),
            },
        };
    }
    let short_method = if f.len() <= 4 {
        Autoconf::parse(f[1])
    } else {
        None
    };
    if let Some(method) = short_method {
        {
            if f[0].is_empty() {
                return Err(bad("empty interface name"));
            }
            let mtu = match f.get(2).filter(|s| !s.is_empty()) {
                Some(m) => Some(
                    m.parse()
                        .map_err(|_| bad(&format!("MTU {m:?} is not a number")))?,
                ),
                None => None,
            };
            let mac = match f.get(3).filter(|s| !s.is_empty()) {
                Some(m) => Some(parse_mac(m).ok_or_else(|| {
                    bad(&format!("MAC {m:?} is not six hex pairs joined by colons"))
                })?),
                None => None,
            };
            return Ok(IpParam::Auto {
                iface: Some(f[0].to_owned()),
                method,
                mtu,
                mac,
            });
        }
    }
    if f.len() > 10 {
        return Err(bad("too many fields"));
    }
    let field = |i: usize| f.get(i).copied().unwrap_or("");
    let addr = |i: usize, what: &str| -> Result<Option<IpAddr>, String> {
        match field(i) {
            "" => Ok(None),
            s => parse_ip_addr(s)
                .map(Some)
                .ok_or_else(|| bad(&format!("bad {what} address {s:?}"))),
        }
    };
    let client = addr(0, "client")?;
    let peer = addr(1, "peer")?;
    let gateway = addr(2, "gateway")?;
    let prefix = match field(3) {
        "" => None,
        s => Some(parse_prefix(s).ok_or_else(|| bad(&format!("bad netmask {s:?}")))?),
    };
    let autoconf = match field(6) {
        "" if client.is_some() => Autoconf::Off,
        "" => Autoconf::Dhcp,
        s => Autoconf::parse(s)
            .ok_or_else(|| bad(&format!("unknown method {s:?} (expected {IP_METHODS})")))?,
    };
    let mut ip = StaticIp {
        client,
        peer,
        gateway,
        prefix,
        hostname: opt_str(field(4)),
        iface: opt_str(field(5)),
        autoconf,
        dns: Vec::new(),
        mtu: None,
        mac: None,
    };
    // The 8th and 9th fields are DNS servers (kernel, dracut) or MTU and
    // MAC (dracut): tell them apart by their shape.
    for i in 7..f.len().min(9) {
        let s = field(i);
        if s.is_empty() {
            continue;
        }
        if let Some(a) = parse_ip_addr(s) {
            ip.dns.push(a);
        } else if let (7, Ok(m)) = (i, s.parse::<u32>()) {
            ip.mtu = Some(m);
        } else if let (8, Some(m)) = (i, parse_mac(s)) {
            ip.mac = Some(m);
        } else {
            return Err(bad(&format!(
                "field {} {s:?} is neither an address, an MTU nor a MAC",
                i + 1
            )));
        }
    }
    if ip.client.is_none() && ip.autoconf == Autoconf::Off {
        return Err(bad("no client address and no autoconfiguration"));
    }
    Ok(IpParam::Static(ip))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    #[test]
    fn ip_short_forms() {
        use IpParam::*;
        let auto = |iface: Option<&str>, method| Auto {
            iface: iface.map(str::to_owned),
            method,
            mtu: None,
            mac: None,
        };
        for (s, want) in [
            ("dhcp", auto(None, Autoconf::Dhcp)),
            ("on", auto(None, Autoconf::Dhcp)),
            ("any", auto(None, Autoconf::Dhcp)),
            ("dhcp6", auto(None, Autoconf::Dhcp6)),
            ("auto6", auto(None, Autoconf::Auto6)),
            ("off", Off),
            ("none", Off),
            ("eth0:dhcp", auto(Some("eth0"), Autoconf::Dhcp)),
            ("ens3:auto6", auto(Some("ens3"), Autoconf::Auto6)),
        ] {
            assert_eq!(parse_ip(s).unwrap(), want, "ip={s}");
        }
        assert_eq!(
            parse_ip("eth0:dhcp:9000:52:54:00:12:34:56").unwrap(),
            Auto {
                iface: Some("eth0".into()),
                method: Autoconf::Dhcp,
                mtu: Some(9000),
                mac: Some([0x52, 0x54, 0, 0x12, 0x34, 0x56])
            }
        );
        assert_eq!(
            parse_ip("1:2:3:4:5:6:7:8:9:10:11").unwrap_err(),
            "ip=1:2:3:4:5:6:7:8:9:10:11: too many fields; ignored"
        );
        assert_eq!(
            parse_ip("eth0:dhcp:9000").unwrap(),
            Auto {
                iface: Some("eth0".into()),
                method: Autoconf::Dhcp,
                mtu: Some(9000),
                mac: None
            }
        );
        assert!(parse_ip("bogus").is_err());
    }

    #[test]
    fn ip_long_form() {
        let IpParam::Static(s) = parse_ip(
            "192.168.1.10::192.168.1.1:255.255.255.0:myhost:eth0:none:192.168.1.53:9.9.9.9",
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(s.client, Some("192.168.1.10".parse().unwrap()));
        assert_eq!(s.peer, None);
        assert_eq!(s.gateway, Some("192.168.1.1".parse().unwrap()));
        assert_eq!(s.prefix, Some(24));
        assert_eq!(s.hostname.as_deref(), Some("myhost"));
        assert_eq!(s.iface.as_deref(), Some("eth0"));
        assert_eq!(s.autoconf, Autoconf::Off);
        assert_eq!(
            s.dns,
            vec![
                "192.168.1.53".parse::<IpAddr>().unwrap(),
                "9.9.9.9".parse().unwrap()
            ]
        );

        let IpParam::Static(s) = parse_ip("10.0.0.5:::16::eth1:off").unwrap() else {
            panic!()
        };
        assert_eq!((s.prefix, s.gateway, s.hostname), (Some(16), None, None));

        let IpParam::Static(s) = parse_ip("[2001:db8::5]::[2001:db8::1]:64::eth0:none").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            s.client,
            Some(IpAddr::V6("2001:db8::5".parse::<Ipv6Addr>().unwrap()))
        );
        assert_eq!(
            s.gateway,
            Some(IpAddr::V6("2001:db8::1".parse::<Ipv6Addr>().unwrap()))
        );
        assert_eq!(s.prefix, Some(64));

        let IpParam::Static(s) = parse_ip(":::::eth0:dhcp").unwrap() else {
            panic!()
        };
        assert_eq!(
            (s.client, s.iface.as_deref(), s.autoconf),
            (None, Some("eth0"), Autoconf::Dhcp)
        );

        let IpParam::Static(s) =
            parse_ip("10.1.1.2::10.1.1.1:255.255.255.0::eth0:none:1400:52:54:00:12:34:56").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (s.mtu, s.mac),
            (Some(1400), Some([0x52, 0x54, 0, 0x12, 0x34, 0x56]))
        );

        for bad in [
            "10.0.0.5::10.0.0.1:255.0.255.0::eth0:none",
            "10.0.0.x::::::",
            "::::::off",
            "1.2.3.4::::::weird",
            "1.2.3.4:::::eth0:none:hello",
        ] {
            let e = parse_ip(bad).unwrap_err();
            assert!(e.starts_with(&format!("ip={bad}:")), "{e}");
        }
    }

    #[test]
    fn netmasks() {
        assert_eq!(parse_prefix("255.255.255.0"), Some(24));
        assert_eq!(parse_prefix("255.255.255.255"), Some(32));
        assert_eq!(parse_prefix("0.0.0.0"), Some(0));
        assert_eq!(parse_prefix("255.0.255.0"), None);
        assert_eq!(parse_prefix("64"), Some(64));
    }
}
