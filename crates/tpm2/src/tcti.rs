//! Which TPM to talk to, named as tpm2-tools and clevis name it: the `TPM2TOOLS_TCTI`
//! variable, `NAME[:CONFIG]`.
//!
//! | TCTI | meaning |
//! | --- | --- |
//! | unset, `device`, `device:` | `/dev/tpmrm0`, else `/dev/tpm0` |
//! | `device:/dev/tpmrm1` | that character device |
//! | `swtpm`, `swtpm:host=H,port=P` | swtpm's TCP socket (default localhost:2321), control channel on P+1 |

use std::fmt;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// The environment variable tpm2-tools reads.
pub const ENV: &str = "TPM2TOOLS_TCTI";

/// Character devices tried in order when none is named (tpm2-tss's order): the kernel's
/// resource manager first, which flushes whatever a process leaves loaded.
pub const DEFAULT_DEVICES: [&str; 2] = ["/dev/tpmrm0", "/dev/tpm0"];

const SWTPM_DEFAULT_PORT: u16 = 2321;

/// A TPM transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tcti {
    /// A kernel TPM character device; `None` tries [`DEFAULT_DEVICES`].
    Device(Option<PathBuf>),
    /// swtpm's socket interface: raw TPM commands on `port`, its control channel on
    /// `port + 1`.
    Swtpm {
        /// Host name or address.
        host: String,
        /// Data port.
        port: u16,
    },
}

impl Default for Tcti {
    fn default() -> Tcti {
        Tcti::Device(None)
    }
}

impl Tcti {
    /// Parses a TCTI string: `device[:PATH]` or `swtpm[:host=H,port=P]` (also by their
    /// library names, `libtss2-tcti-device.so.0` and the like).
    pub fn parse(text: &str) -> Result<Tcti> {
        let (name, conf) = text.split_once(':').unwrap_or((text, ""));
        let name = name
            .trim_start_matches("libtss2-")
            .trim_start_matches("tcti-")
            .trim_end_matches(".so.0")
            .trim_end_matches(".so");
        match name {
            "device" if conf.is_empty() => Ok(Tcti::Device(None)),
            "device" => Ok(Tcti::Device(Some(PathBuf::from(conf)))),
            "swtpm" => {
                let mut host = "localhost".to_owned();
                let mut port = SWTPM_DEFAULT_PORT;
                for kv in conf.split(',').filter(|kv| !kv.is_empty()) {
                    match kv.split_once('=') {
                        Some(("host", h)) if !h.is_empty() => host = h.to_owned(),
                        Some(("port", p)) => {
                            port = p
                                .parse()
                                .ok()
                                .filter(|&p: &u16| p != 0 && p != u16::MAX)
                                .ok_or_else(|| {
                                    Error::Tcti(format!("{text:?}: port {p:?} is not a port"))
                                })?;
                        }
                        _ => {
                            return Err(Error::Tcti(format!(
                                "{text:?}: unknown swtpm option {kv:?} (host=, port=)"
                            )));
                        }
                    }
                }
                Ok(Tcti::Swtpm { host, port })
            }
            _ => Err(Error::Tcti(format!(
                "{text:?} is not supported (device[:PATH] or swtpm[:host=H,port=P])"
            ))),
        }
    }

    /// `TPM2TOOLS_TCTI` when set and not empty, otherwise the default devices.
    pub fn from_env() -> Result<Tcti> {
        match std::env::var(ENV) {
            Ok(v) if !v.is_empty() => Tcti::parse(&v),
            _ => Ok(Tcti::default()),
        }
    }
}

impl fmt::Display for Tcti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tcti::Device(Some(p)) => write!(f, "device:{}", p.display()),
            Tcti::Device(None) => write!(f, "device:{}", DEFAULT_DEVICES.join("|")),
            Tcti::Swtpm { host, port } => write!(f, "swtpm:host={host},port={port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_tpm2_tools_takes() {
        assert_eq!(Tcti::parse("device").unwrap(), Tcti::Device(None));
        assert_eq!(Tcti::parse("device:").unwrap(), Tcti::Device(None));
        assert_eq!(
            Tcti::parse("device:/dev/tpmrm1").unwrap(),
            Tcti::Device(Some("/dev/tpmrm1".into()))
        );
        assert_eq!(
            Tcti::parse("swtpm:host=127.0.0.1,port=2400").unwrap(),
            Tcti::Swtpm {
                host: "127.0.0.1".into(),
                port: 2400
            }
        );
        assert_eq!(
            Tcti::parse("libtss2-tcti-swtpm.so.0:port=9").unwrap(),
            Tcti::Swtpm {
                host: "localhost".into(),
                port: 9
            }
        );
        assert_eq!(
            Tcti::parse("swtpm").unwrap().to_string(),
            "swtpm:host=localhost,port=2321"
        );
        for bad in [
            "mssim",
            "tabrmd:bus_type=session",
            "swtpm:port=x",
            "swtpm:path=/s",
            "swtpm:port=65535",
        ] {
            assert!(matches!(Tcti::parse(bad), Err(Error::Tcti(_))), "{bad}");
        }
    }
}
