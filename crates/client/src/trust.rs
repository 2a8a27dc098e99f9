//! Which server certificates an `https://` request accepts.
//!
//! ```text
//!   Trust::System     the system CA store (rustls-native-certs); the cli's default
//!   Trust::CaFile     the CA certificates of one PEM file (the initrd's bundle)
//!   Trust::Pin        one server certificate, by the SHA-256 of its DER
//! ```
//! A pin replaces the chain checks: the server's leaf certificate is accepted
//! when its hash matches, whoever issued it, whatever names it carries and
//! whatever its validity dates say (the handshake signature is still checked
//! against its key). That is what makes a pin work with a self-signed
//! certificate, and why the pin must come from a trusted place.
//!
//! The types and parsers here are always built, so a build without the `tls`
//! feature still reads the same options; only loading the certificates
//! ([`load_ca_file`]) needs it.

use std::fmt;
use std::path::PathBuf;

use subtle::ConstantTimeEq;

/// Largest CA bundle read: several times a whole system store (Debian's is
/// about 220 KiB), so nothing real is refused and the agent's locked memory is not
/// at the mercy of a file.
pub const MAX_CA_FILE: u64 = 1 << 20;

/// Where the trust of `https://` requests comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Trust {
    /// The system CA store (`/etc/ssl/certs` and friends, found by rustls-native-certs).
    #[default]
    System,
    /// The CA certificates of a PEM file of at most [`MAX_CA_FILE`] bytes.
    CaFile(PathBuf),
    /// Only the server certificate with this fingerprint; no chain, name or date checks.
    Pin(Fingerprint),
}

impl fmt::Display for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trust::System => write!(f, "the system CA store"),
            Trust::CaFile(p) => write!(f, "the CA file {}", p.display()),
            Trust::Pin(fp) => write!(f, "the pin {fp}"),
        }
    }
}

/// The SHA-256 of a certificate's DER encoding (what `openssl x509 -noout
/// -fingerprint -sha256` prints).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of the DER certificate `der`.
    pub fn of(der: &[u8]) -> Fingerprint {
        use sha2::{Digest, Sha256};
        Fingerprint(Sha256::digest(der).into())
    }

    /// `sha256:` and 64 hex digits, in either case, pairs optionally separated by
    /// colons (as openssl prints them).
    pub fn parse(text: &str) -> Result<Fingerprint, TrustError> {
        let bad = |reason: &'static str| TrustError::BadPin {
            value: text.to_owned(),
            reason,
        };
        let hex = match text.split_once(':') {
            Some((algo, rest)) if algo.eq_ignore_ascii_case("sha256") => rest,
            _ => return Err(bad("expected sha256: and 64 hex digits")),
        };
        let digits: Vec<u8> = hex.bytes().filter(|&b| b != b':').collect();
        if digits.len() != 64 {
            return Err(bad("a SHA-256 fingerprint has 64 hex digits"));
        }
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(digits.chunks(2)) {
            let nibble = |c: u8| (c as char).to_digit(16);
            match (nibble(pair[0]), nibble(pair[1])) {
                (Some(h), Some(l)) => *o = (h << 4 | l) as u8,
                _ => return Err(bad("not a hex digit")),
            }
        }
        Ok(Fingerprint(out))
    }

    /// Whether `der`'s hash is this one, compared in constant time.
    pub fn matches(&self, der: &[u8]) -> bool {
        bool::from(Fingerprint::of(der).0.ct_eq(&self.0))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why the configured trust cannot be used.
#[derive(Debug)]
#[non_exhaustive]
pub enum TrustError {
    /// A pin that is not `sha256:` and 64 hex digits.
    BadPin {
        /// The pin as given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The CA file could not be read (missing, not a regular file, larger than [`MAX_CA_FILE`]).
    CaUnreadable {
        /// The file.
        path: PathBuf,
        /// The OS's or the size check's answer.
        source: std::io::Error,
    },
    /// The CA file is not PEM, or holds no certificate.
    CaBadPem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A certificate of the CA file cannot serve as a trust anchor.
    CaRejected {
        /// The file.
        path: PathBuf,
        /// Which certificate (from 1), and why.
        reason: String,
    },
    /// The system CA store has no certificate.
    NoSystemCerts,
    /// The TLS library refused its configuration.
    Config(String),
}

impl fmt::Display for TrustError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrustError::BadPin { value, reason } => {
                write!(f, "certificate pin {value:?}: {reason}")
            }
            TrustError::CaUnreadable { path, source } => {
                write!(f, "unreadable CA file {}: {source}", path.display())
            }
            TrustError::CaBadPem { path, reason } => {
                write!(f, "CA file {}: {reason}", path.display())
            }
            TrustError::CaRejected { path, reason } => {
                write!(f, "CA file {}: {reason}", path.display())
            }
            TrustError::NoSystemCerts => write!(f, "no CA certificates in the system store"),
            TrustError::Config(reason) => write!(f, "TLS configuration: {reason}"),
        }
    }
}

impl std::error::Error for TrustError {}

/// The DER certificates of the PEM file at `path`: read bounded by
/// [`MAX_CA_FILE`], at least one `CERTIFICATE` block, every block valid.
/// Other PEM sections (keys, CRLs) are skipped.
#[cfg(feature = "tls")]
pub(crate) fn load_ca_file(
    path: &std::path::Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, TrustError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let text = latchkey_sys::file::read_text(path, MAX_CA_FILE).map_err(|source| {
        TrustError::CaUnreadable {
            path: path.to_owned(),
            source,
        }
    })?;
    let bad = |reason: String| TrustError::CaBadPem {
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(bad("no CERTIFICATE in it".to_owned()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "5e9f0a3c1b2d4e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7";

    #[test]
    fn pin_forms() {
        let fp = Fingerprint::parse(&format!("sha256:{HEX}")).unwrap();
        assert_eq!(fp.to_string(), format!("sha256:{HEX}"));
        let colons: Vec<String> = HEX
            .as_bytes()
            .chunks(2)
            .map(|p| String::from_utf8_lossy(p).to_uppercase())
            .collect();
        assert_eq!(
            Fingerprint::parse(&format!("SHA256:{}", colons.join(":"))).unwrap(),
            fp
        );
    }

    #[test]
    fn bad_pins_say_what_is_wrong() {
        for (pin, why) in [
            (HEX.to_owned(), "expected sha256: and 64 hex digits"),
            (format!("sha1:{HEX}"), "expected sha256: and 64 hex digits"),
            (format!("sha256:{}", &HEX[..62]), "64 hex digits"),
            (format!("sha256:{HEX}00"), "64 hex digits"),
            (format!("sha256:{}zz", &HEX[..62]), "not a hex digit"),
            ("sha256:".to_owned(), "64 hex digits"),
        ] {
            let e = Fingerprint::parse(&pin).unwrap_err();
            let text = e.to_string();
            assert!(
                text.contains(&format!("{pin:?}")) && text.contains(why),
                "{pin}: {text}"
            );
        }
    }

    #[test]
    fn matches_is_the_hash_of_the_der() {
        let der = b"not really a certificate";
        let fp = Fingerprint::of(der);
        assert!(fp.matches(der));
        assert!(!fp.matches(b"not really a certificatf"));
        // echo -n 'not really a certificate' | sha256sum
        assert_eq!(
            fp.to_string(),
            "sha256:d6182255e5739d55fc9781759c7a823d4dff3d2b7d17949e7085ee7c0cc22acf"
        );
    }

    #[cfg(feature = "tls")]
    mod ca_file {
        use super::super::*;
        use std::io::Write;
        use std::path::Path;

        fn file(bytes: &[u8]) -> tempfile::NamedTempFile {
            let mut f = tempfile::NamedTempFile::new().unwrap();
            f.write_all(bytes).unwrap();
            f
        }

        #[test]
        fn bad_pem_is_named() {
            let f = file(b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n");
            let e = load_ca_file(f.path()).unwrap_err();
            assert!(matches!(e, TrustError::CaBadPem { .. }), "{e}");
            let text = e.to_string();
            assert!(
                text.starts_with(&format!("CA file {}: bad PEM", f.path().display())),
                "{text}"
            );
            let f = file(b"-----BEGIN CERTIFICATE-----\nAAAA\n");
            assert!(matches!(
                load_ca_file(f.path()),
                Err(TrustError::CaBadPem { .. })
            ));
        }

        #[test]
        fn a_file_without_certificates_is_refused() {
            let f = file(b"just some text\n");
            let e = load_ca_file(f.path()).unwrap_err();
            assert!(e.to_string().ends_with("no CERTIFICATE in it"), "{e}");
        }

        #[test]
        fn missing_file_names_its_path() {
            let e = load_ca_file(Path::new("/nonexistent/ca.pem")).unwrap_err();
            assert!(
                e.to_string()
                    .starts_with("unreadable CA file /nonexistent/ca.pem: "),
                "{e}"
            );
        }

        /// One byte over the limit is refused before any parsing, and reading
        /// stops there: a huge file costs no more than the limit.
        #[test]
        fn oversized_file_is_refused() {
            let f = tempfile::NamedTempFile::new().unwrap();
            f.as_file().set_len(64 << 20).unwrap();
            let e = load_ca_file(f.path()).unwrap_err();
            assert!(matches!(e, TrustError::CaUnreadable { .. }), "{e}");
            assert!(
                e.to_string()
                    .ends_with(&format!("larger than {MAX_CA_FILE} bytes")),
                "{e}"
            );
            let mut pem =
                b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec();
            pem.resize(MAX_CA_FILE as usize + 1, b'\n');
            let f = file(&pem);
            assert!(matches!(
                load_ca_file(f.path()),
                Err(TrustError::CaUnreadable { .. })
            ));
        }
    }
}
