//! From the command line to a network plan: which interfaces, and static
//! or DHCP for each. Pure; [`super::bring_up`] carries the plan out.

use std::net::{IpAddr, Ipv4Addr};

use super::ip::{Autoconf, IpParam};
use super::links::{Bond, Vlan};
use crate::cmdline::NetworkOptions;

/// Which interface(s) an entry applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Iface {
    /// The interface with this name.
    Name(String),
    /// The interface with this MAC (from `BOOTIF=`).
    Mac([u8; 6]),
    /// Every Ethernet interface with carrier; the first lease wins.
    AnyWithCarrier,
}

/// How to configure it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    /// DHCPv4.
    Dhcp,
    /// A fixed IPv4 or IPv6 address.
    Static {
        /// The address.
        address: IpAddr,
        /// Prefix length.
        prefix: u8,
        /// Default gateway, of the address's family.
        gateway: Option<IpAddr>,
    },
    /// DHCPv6 (one address, DNS servers); the on-link prefix and the
    /// default route from router advertisements.
    Dhcp6,
    /// IPv6 stateless autoconfiguration by the kernel (router
    /// advertisements), waited for until a global address is usable.
    Auto6,
}

/// One interface to bring up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Which interface.
    pub iface: Iface,
    /// How.
    pub method: Method,
}

/// The whole plan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Bonds to create first (`bond=`), then VLANs (`vlan=`, perhaps on a
    /// bond); steps then address them as any interface.
    pub bonds: Vec<Bond>,
    /// VLANs to create.
    pub vlans: Vec<Vlan>,
    /// Interfaces to configure, in command-line order.
    pub steps: Vec<Step>,
    /// Name servers given on the command line (`nameserver=`, `ip=` DNS fields).
    pub nameservers: Vec<IpAddr>,
    /// Host name from `ip=`.
    pub hostname: Option<String>,
}

impl Plan {
    /// True when there is nothing to configure (`ip=off`).
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty() && self.bonds.is_empty() && self.vlans.is_empty()
    }
}

fn default_iface(cfg: &NetworkOptions) -> Iface {
    match cfg.bootif {
        Some(mac) => Iface::Mac(mac),
        None => Iface::AnyWithCarrier,
    }
}

/// Builds the plan. With no `ip=` at all the agent still needs the network
/// for Tang, so it does DHCP on the `BOOTIF=` interface or on every
/// interface with carrier. Warnings name what cannot be honoured.
pub fn plan(cfg: &NetworkOptions) -> (Plan, Vec<String>) {
    let mut warn = Vec::new();
    let mut p = Plan {
        bonds: cfg.bonds.clone(),
        vlans: cfg.vlans.clone(),
        steps: Vec::new(),
        nameservers: cfg.nameservers.clone(),
        hostname: None,
    };
    if cfg.ip.is_empty() {
        p.steps.push(Step {
            iface: default_iface(cfg),
            method: Method::Dhcp,
        });
    }
    for ip in &cfg.ip {
        let (iface, method) = match ip {
            IpParam::Off => continue,
            IpParam::Auto { iface, method, .. } => {
                let iface = iface
                    .clone()
                    .map(Iface::Name)
                    .unwrap_or_else(|| default_iface(cfg));
                (iface, *method)
            }
            IpParam::Static(s) => {
                p.nameservers.extend(s.dns.iter().copied());
                if p.hostname.is_none() {
                    p.hostname = s.hostname.clone();
                }
                let iface = s
                    .iface
                    .clone()
                    .map(Iface::Name)
                    .unwrap_or_else(|| default_iface(cfg));
                match (s.client, s.autoconf) {
                    (Some(address), Autoconf::Off) => {
                        let max = if address.is_ipv4() { 32 } else { 128 };
                        let gateway = match s.gateway {
                            Some(g) if g.is_ipv4() != address.is_ipv4() => {
                                warn.push(format!(
                                    "ip=: gateway {g} is not of the family of the address {address}; ignored"
                                ));
                                None
                            }
                            g => g,
                        };
                        let prefix = match (s.prefix, address) {
                            (Some(n), _) if n <= max => n,
                            (Some(n), _) => {
                                warn.push(format!(
                                    "ip=: prefix /{n} is too long for {address}; using /{max}"
                                ));
                                max
                            }
                            (None, IpAddr::V4(a)) => classful(a),
                            (None, IpAddr::V6(_)) => 64,
                        };
                        p.steps.push(Step {
                            iface,
                            method: Method::Static {
                                address,
                                prefix,
                                gateway,
                            },
                        });
                        continue;
                    }
                    (_, m) => (iface, m),
                }
            }
        };
        let method = match method {
            Autoconf::Dhcp => Method::Dhcp,
            Autoconf::Auto6 | Autoconf::Either6 => Method::Auto6,
            Autoconf::Dhcp6 => Method::Dhcp6,
            Autoconf::Ibft => {
                warn.push("ip=ibft: iBFT is not supported; using DHCP".to_owned());
                Method::Dhcp
            }
            Autoconf::Off => continue,
        };
        p.steps.push(Step { iface, method });
    }
    p.nameservers.dedup();
    (p, warn)
}

fn classful(a: Ipv4Addr) -> u8 {
    match a.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdline::parse;

    fn plan_of(line: &str) -> (Plan, Vec<String>) {
        let (cfg, w) = parse(line);
        assert!(w.is_empty(), "{w:?}");
        plan(&cfg.network)
    }

    #[test]
    fn default_is_dhcp_on_every_interface_with_carrier() {
        let (p, w) = plan_of("root=/dev/mapper/root");
        assert!(w.is_empty());
        assert_eq!(
            p.steps,
            vec![Step {
                iface: Iface::AnyWithCarrier,
                method: Method::Dhcp
            }]
        );
        let (p, _) = plan_of("BOOTIF=01-52-54-00-12-34-56");
        assert_eq!(
            p.steps[0].iface,
            Iface::Mac([0x52, 0x54, 0, 0x12, 0x34, 0x56])
        );
    }

    #[test]
    fn off_means_nothing() {
        assert!(plan_of("ip=off").0.is_empty());
        assert!(plan_of("ip=none").0.is_empty());
    }

    #[test]
    fn named_and_static() {
        let (p, w) = plan_of(
            "ip=eth1:dhcp ip=192.168.7.9::192.168.7.1:255.255.255.0:box:eth0:none:192.168.7.53 nameserver=9.9.9.9",
        );
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            p.steps[0],
            Step {
                iface: Iface::Name("eth1".into()),
                method: Method::Dhcp
            }
        );
        assert_eq!(
            p.steps[1],
            Step {
                iface: Iface::Name("eth0".into()),
                method: Method::Static {
                    address: Ipv4Addr::new(192, 168, 7, 9).into(),
                    prefix: 24,
                    gateway: Some(Ipv4Addr::new(192, 168, 7, 1).into()),
                },
            }
        );
        assert_eq!(
            p.nameservers,
            vec![
                "9.9.9.9".parse::<IpAddr>().unwrap(),
                "192.168.7.53".parse().unwrap()
            ]
        );
        assert_eq!(p.hostname.as_deref(), Some("box"));
    }

    #[test]
    fn ipv6_forms_and_unsupported_methods_warn() {
        let (p, w) = plan_of("ip=auto6 ip=eth0:dhcp6 ip=ibft ip=dhcp6");
        assert_eq!(
            p.steps.iter().map(|s| &s.method).collect::<Vec<_>>(),
            vec![
                &Method::Auto6,
                &Method::Dhcp6,
                &Method::Dhcp,
                &Method::Dhcp6
            ]
        );
        assert_eq!(p.steps[1].iface, Iface::Name("eth0".into()));
        assert_eq!(p.steps[3].iface, Iface::AnyWithCarrier);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("iBFT"));
        let (p, _) = plan_of("ip=:::::eth3:dhcp");
        assert_eq!(
            p.steps,
            vec![Step {
                iface: Iface::Name("eth3".into()),
                method: Method::Dhcp
            }]
        );
        let (p, _) = plan_of("ip=10.1.2.3");
        assert_eq!(
            p.steps[0].method,
            Method::Static {
                address: Ipv4Addr::new(10, 1, 2, 3).into(),
                prefix: 8,
                gateway: None
            }
        );
        let (p, _) = plan_of("ip=10.1.2.3:::255.255.0.0::eth0:none");
        assert_eq!(
            p.steps[0].method,
            Method::Static {
                address: Ipv4Addr::new(10, 1, 2, 3).into(),
                prefix: 16,
                gateway: None
            }
        );
    }

    #[test]
    fn static_ipv6_in_brackets() {
        let (p, w) = plan_of("ip=[fec0::15]::[fec0::2]:64:box:eth0:none:[fec0::3]");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            p.steps,
            vec![Step {
                iface: Iface::Name("eth0".into()),
                method: Method::Static {
                    address: "fec0::15".parse().unwrap(),
                    prefix: 64,
                    gateway: Some("fec0::2".parse().unwrap()),
                },
            }]
        );
        assert_eq!(p.nameservers, vec!["fec0::3".parse::<IpAddr>().unwrap()]);
        // No prefix: /64, the length SLAAC and most static plans use.
        let (p, _) = plan_of("ip=[2001:db8::7]:::::eth1:none");
        assert_eq!(
            p.steps[0].method,
            Method::Static {
                address: "2001:db8::7".parse().unwrap(),
                prefix: 64,
                gateway: None
            }
        );
        // A gateway of the other family is dropped with a warning.
        let (p, w) = plan_of("ip=[2001:db8::7]::10.0.0.1:64::eth1:none");
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("10.0.0.1"), "{w:?}");
        assert!(matches!(
            p.steps[0].method,
            Method::Static { gateway: None, .. }
        ));
        let (_, w) = plan_of("ip=10.0.0.9::10.0.0.1:40::eth1:none");
        assert!(w[0].contains("/40") && w[0].contains("/32"), "{w:?}");
    }
}
