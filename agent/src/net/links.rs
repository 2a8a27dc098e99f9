//! The `vlan=` and `bond=` options in dracut's grammar: virtual interfaces
//! created over netlink before `ip=` addresses them as any other. Pure
//! parsing, no I/O.
//!
//! ```text
//!   vlan=NAME:PARENT                      the VLAN ID is NAME's number: vlan0005, eth0.5
//!   bond=NAME[:SLAVES[:OPTIONS[:MTU]]]    SLAVES a,b; OPTIONS mode=...,miimon=...
//!   bond                                  bond0:eth0,eth1:mode=balance-rr
//! ```

/// `IFNAMSIZ` less the terminating NUL.
pub const MAX_IFNAME: usize = 15;
/// Most slaves of one bond.
pub const MAX_SLAVES: usize = 8;

/// One `vlan=`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vlan {
    /// The VLAN interface to create.
    pub name: String,
    /// The interface it rides on.
    pub parent: String,
    /// The 802.1Q VLAN ID (1 to 4094).
    pub id: u16,
}

/// The bonding modes of the kernel's bonding driver, by their numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BondMode {
    /// 0: round robin.
    BalanceRr = 0,
    /// 1: one slave active, another takes over when it fails.
    ActiveBackup = 1,
    /// 2: by transmit hash.
    BalanceXor = 2,
    /// 3: every slave sends everything.
    Broadcast = 3,
    /// 4: IEEE 802.3ad link aggregation (LACP).
    Lacp = 4,
    /// 5: adaptive transmit load balancing.
    BalanceTlb = 5,
    /// 6: adaptive load balancing.
    BalanceAlb = 6,
}

impl BondMode {
    /// The name the bonding driver and dracut use.
    pub fn name(self) -> &'static str {
        match self {
            BondMode::BalanceRr => "balance-rr",
            BondMode::ActiveBackup => "active-backup",
            BondMode::BalanceXor => "balance-xor",
            BondMode::Broadcast => "broadcast",
            BondMode::Lacp => "802.3ad",
            BondMode::BalanceTlb => "balance-tlb",
            BondMode::BalanceAlb => "balance-alb",
        }
    }

    fn parse(s: &str) -> Option<BondMode> {
        use BondMode::*;
        Some(match s {
            "balance-rr" | "0" => BalanceRr,
            "active-backup" | "1" => ActiveBackup,
            "balance-xor" | "2" => BalanceXor,
            "broadcast" | "3" => Broadcast,
            "802.3ad" | "4" => Lacp,
            "balance-tlb" | "5" => BalanceTlb,
            "balance-alb" | "6" => BalanceAlb,
            _ => return None,
        })
    }
}

/// One `bond=`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bond {
    /// The bond interface to create.
    pub name: String,
    /// Its slaves, in order.
    pub slaves: Vec<String>,
    /// `mode=`.
    pub mode: BondMode,
    /// `miimon=`: link monitoring interval in milliseconds.
    pub miimon: Option<u32>,
    /// `updelay=`, milliseconds.
    pub updelay: Option<u32>,
    /// `downdelay=`, milliseconds.
    pub downdelay: Option<u32>,
    /// `primary=`: the preferred slave (active-backup).
    pub primary: Option<String>,
    /// `lacp_rate=fast` (true) or `slow` (802.3ad).
    pub lacp_fast: Option<bool>,
    /// The MTU field.
    pub mtu: Option<u32>,
}

/// An interface name the kernel accepts.
pub fn valid_ifname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_IFNAME
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':' && b != b',')
}

fn ifname(opt: &str, v: &str, s: &str, what: &str) -> Result<String, String> {
    if valid_ifname(s) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{opt}={v}: {what} {s:?} is not an interface name (1 to {MAX_IFNAME} characters, no '/', ':' or ','); ignored"
        ))
    }
}

/// Parses one `vlan=NAME:PARENT`.
pub fn parse_vlan(v: &str) -> Result<Vlan, String> {
    let Some((name, parent)) = v.split_once(':') else {
        return Err(format!("vlan={v}: expected NAME:PARENT; ignored"));
    };
    let name = ifname("vlan", v, name, "name")?;
    let parent = ifname("vlan", v, parent, "parent")?;
    // dracut takes the ID from the name: vlan0005, vlan5, eth0.0005, eth0.5.
    let digits = match name.strip_prefix("vlan") {
        Some(d) => d,
        None => name.rsplit_once('.').map_or("", |(_, d)| d),
    };
    let id = match digits.parse::<u16>() {
        Ok(id @ 1..=4094) if digits.bytes().all(|b| b.is_ascii_digit()) => id,
        _ => {
            return Err(format!(
                "vlan={v}: no VLAN ID (1 to 4094) in the name {name:?} (name it vlanN or PARENT.N); ignored"
            ));
        }
    };
    if name == parent {
        return Err(format!(
            "vlan={v}: the VLAN and its parent have one name; ignored"
        ));
    }
    Ok(Vlan { name, parent, id })
}

/// Parses one `bond=...` (`None` for a bare `bond`); the warnings are for
/// options it leaves out.
pub fn parse_bond(v: Option<&str>) -> Result<(Bond, Vec<String>), String> {
    let v = v.unwrap_or("bond0:eth0,eth1:mode=balance-rr");
    let f: Vec<&str> = v.split(':').collect();
    if f.len() > 4 {
        return Err(format!(
            "bond={v}: too many fields (NAME:SLAVES:OPTIONS:MTU); ignored"
        ));
    }
    let name = ifname("bond", v, f[0], "name")?;
    let slaves_field = f
        .get(1)
        .copied()
        .filter(|s| !s.is_empty())
        .unwrap_or("eth0,eth1");
    let mut slaves = Vec::new();
    for s in slaves_field.split(',') {
        let s = ifname("bond", v, s, "slave")?;
        if s == name || slaves.contains(&s) {
            return Err(format!(
                "bond={v}: slave {s:?} named twice or as the bond; ignored"
            ));
        }
        slaves.push(s);
    }
    if slaves.len() > MAX_SLAVES {
        return Err(format!("bond={v}: more than {MAX_SLAVES} slaves; ignored"));
    }
    let mut bond = Bond {
        name,
        slaves,
        mode: BondMode::BalanceRr,
        miimon: None,
        updelay: None,
        downdelay: None,
        primary: None,
        lacp_fast: None,
        mtu: None,
    };
    let mut warn = Vec::new();
    let ms = |k: &str, x: &str| {
        x.parse::<u32>()
            .ok()
            .filter(|n| *n <= 3_600_000)
            .ok_or_else(|| format!("bond={v}: {k}={x:?} is not a number of milliseconds; ignored"))
    };
    for opt in f
        .get(2)
        .copied()
        .unwrap_or("")
        .split(',')
        .filter(|o| !o.is_empty())
    {
        let (k, x) = opt.split_once('=').unwrap_or((opt, ""));
        match k {
            "mode" => {
                bond.mode = BondMode::parse(x).ok_or_else(|| {
                    format!(
                        "bond={v}: unknown mode {x:?} (balance-rr, active-backup, balance-xor, \
                         broadcast, 802.3ad, balance-tlb, balance-alb); ignored"
                    )
                })?
            }
            "miimon" => bond.miimon = Some(ms(k, x)?),
            "updelay" => bond.updelay = Some(ms(k, x)?),
            "downdelay" => bond.downdelay = Some(ms(k, x)?),
            "primary" => {
                let p = ifname("bond", v, x, "primary")?;
                if !bond.slaves.contains(&p) {
                    return Err(format!("bond={v}: primary {p:?} is not one of its slaves; ignored"));
                }
                bond.primary = Some(p);
            }
            "lacp_rate" => {
                bond.lacp_fast = Some(match x {
                    "fast" | "1" => true,
                    "slow" | "0" => false,
                    _ => return Err(format!("bond={v}: lacp_rate={x:?} is neither fast nor slow; ignored")),
                })
            }
            _ => warn.push(format!(
                "bond={v}: option {k:?} is not supported (mode, miimon, updelay, downdelay, primary, lacp_rate); left out"
            )),
        }
    }
    if let Some(m) = f.get(3).filter(|m| !m.is_empty()) {
        bond.mtu = Some(
            m.parse::<u32>()
                .ok()
                .filter(|n| (68..=65535).contains(n))
                .ok_or_else(|| format!("bond={v}: MTU {m:?} is not 68 to 65535; ignored"))?,
        );
    }
    Ok((bond, warn))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vlan_ids_come_from_the_name() {
        for (v, name, parent, id) in [
            ("vlan0005:eth0", "vlan0005", "eth0", 5),
            ("vlan5:eth0", "vlan5", "eth0", 5),
            ("eth0.0005:eth0", "eth0.0005", "eth0", 5),
            ("eth0.4094:eth0", "eth0.4094", "eth0", 4094),
            ("bond0.12:bond0", "bond0.12", "bond0", 12),
        ] {
            assert_eq!(
                parse_vlan(v).unwrap(),
                Vlan {
                    name: name.into(),
                    parent: parent.into(),
                    id
                },
                "vlan={v}"
            );
        }
        for bad in [
            "eth0.5",
            "mgmt:eth0",
            "vlan0:eth0",
            "vlan4095:eth0",
            "eth0.+5:eth0",
            "vlan5:",
            ":eth0",
            "averyveryverylongname.5:eth0",
            "vlan5:eth/0",
            "eth0.5:eth0.5",
        ] {
            let e = parse_vlan(bad).unwrap_err();
            assert!(
                e.starts_with(&format!("vlan={bad}: ")) && e.ends_with("; ignored"),
                "{e}"
            );
        }
    }

    #[test]
    fn bonds_in_dracut_form() {
        let (b, w) = parse_bond(Some(
            "bond0:eth0,eth1:mode=active-backup,miimon=100,primary=eth1",
        ))
        .unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(b.name, "bond0");
        assert_eq!(b.slaves, vec!["eth0", "eth1"]);
        assert_eq!(b.mode, BondMode::ActiveBackup);
        assert_eq!((b.miimon, b.primary.as_deref()), (Some(100), Some("eth1")));
        let (b, w) = parse_bond(Some(
            "bond1:ens3,ens4:mode=802.3ad,miimon=50,lacp_rate=fast,xmit_hash_policy=layer3+4:9000",
        ))
        .unwrap();
        assert_eq!(
            (b.mode, b.lacp_fast, b.mtu),
            (BondMode::Lacp, Some(true), Some(9000))
        );
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("xmit_hash_policy"), "{w:?}");
        let (b, _) = parse_bond(None).unwrap();
        assert_eq!(
            (b.name.as_str(), b.slaves.len(), b.mode),
            ("bond0", 2, BondMode::BalanceRr)
        );
        let (b, _) = parse_bond(Some("bond2")).unwrap();
        assert_eq!(b.slaves, vec!["eth0", "eth1"]);
        let (b, _) = parse_bond(Some("bond2:eth3::")).unwrap();
        assert_eq!(
            (b.slaves.len(), b.mode, b.mtu),
            (1, BondMode::BalanceRr, None)
        );
        assert_eq!(
            parse_bond(Some("b:e0:mode=4")).unwrap().0.mode,
            BondMode::Lacp
        );
        for bad in [
            "bond0:eth0,eth0",
            "bond0:bond0",
            "bond0:eth0:mode=fastest",
            "bond0:eth0:miimon=often",
            "bond0:eth0:primary=eth9",
            "bond0:eth0:lacp_rate=medium",
            "bond0:eth0::10",
            "bond0:eth0:::1500:x",
            "bond0:a,b,c,d,e,f,g,h,i",
            ":eth0",
        ] {
            let e = parse_bond(Some(bad)).unwrap_err();
            assert!(e.starts_with(&format!("bond={bad}: ")), "{e}");
        }
    }
}
