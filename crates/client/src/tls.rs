//! The byte stream under HTTP: plain TCP, or rustls over it with the `tls` feature.
//!
//! Certificates are checked as [`Trust`] says; a rustls configuration is built
//! once per trust setting and process. TLS failures are told in words: which
//! check failed, against what.

use std::io::{self, Read, Write};
use std::net::TcpStream;

use crate::url::{Scheme, Url};
use crate::{Error, Trust};

pub(crate) enum Stream {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// Wraps a connected socket according to the URL's scheme.
pub(crate) fn wrap(
    tcp: TcpStream,
    parsed: &Url,
    url: &str,
    trust: &Trust,
) -> Result<Stream, Error> {
    match parsed.scheme {
        Scheme::Http => Ok(Stream::Plain(tcp)),
        #[cfg(feature = "tls")]
        Scheme::Https => imp::wrap(tcp, parsed, url, trust),
        #[cfg(not(feature = "tls"))]
        Scheme::Https => {
            let _ = trust;
            Err(Error::TlsUnsupported {
                url: url.to_owned(),
            })
        }
    }
}

/// What a TLS failure out of the stream's `Read`/`Write` means, in words.
pub(crate) fn describe(e: &io::Error, host: &str, trust: &Trust) -> String {
    #[cfg(feature = "tls")]
    if let Some(e) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return imp::describe(e, host, trust);
    }
    let _ = (host, trust);
    e.to_string()
}

#[cfg(feature = "tls")]
mod imp {
    use std::net::TcpStream;
    use std::sync::{Arc, Mutex, PoisonError};

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::WebPkiSupportedAlgorithms;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};

    use super::Stream;
    use crate::trust::{Fingerprint, TrustError, load_ca_file};
    use crate::url::Url;
    use crate::{Error, Trust};

    type Config = Result<Arc<rustls::ClientConfig>, Arc<TrustError>>;

    /// The configuration for `trust`, built on first use. A failure is kept
    /// too: a CA file that cannot be read is named once per request, not
    /// re-read by every retry.
    fn config(trust: &Trust) -> Config {
        static CONFIGS: Mutex<Vec<(Trust, Config)>> = Mutex::new(Vec::new());
        let mut configs = CONFIGS.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, c)) = configs.iter().find(|(t, _)| t == trust) {
            return c.clone();
        }
        let c = build(trust).map_err(Arc::new);
        configs.push((trust.clone(), c.clone()));
        c
    }

    fn build(trust: &Trust) -> Result<Arc<rustls::ClientConfig>, TrustError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TrustError::Config(e.to_string()))?;
        let config = match trust {
            Trust::Pin(pin) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Pinned {
                    pin: *pin,
                    algorithms: provider.signature_verification_algorithms,
                })),
            Trust::System => {
                let mut roots = rustls::RootCertStore::empty();
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(TrustError::NoSystemCerts);
                }
                builder.with_root_certificates(roots)
            }
            Trust::CaFile(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for (i, cert) in load_ca_file(path)?.into_iter().enumerate() {
                    roots.add(cert).map_err(|e| TrustError::CaRejected {
                        path: path.clone(),
                        reason: format!("certificate {}: {e}", i + 1),
                    })?;
                }
                builder.with_root_certificates(roots)
            }
        };
        Ok(Arc::new(config.with_no_client_auth()))
    }

    pub(super) fn wrap(
        tcp: TcpStream,
        parsed: &Url,
        url: &str,
        trust: &Trust,
    ) -> Result<Stream, Error> {
        let tls = |reason: String| Error::Tls {
            url: url.to_owned(),
            reason,
        };
        let config = config(trust).map_err(|e| tls(e.to_string()))?;
        let name = ServerName::try_from(parsed.host.clone()).map_err(|e| tls(e.to_string()))?;
        let conn = rustls::ClientConnection::new(config, name).map_err(|e| tls(e.to_string()))?;
        Ok(Stream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp))))
    }

    pub(super) fn describe(e: &rustls::Error, host: &str, trust: &Trust) -> String {
        let against = match trust {
            Trust::CaFile(p) => format!("not signed by a CA in {}", p.display()),
            other => format!("not signed by a CA of {other}"),
        };
        match e {
            rustls::Error::InvalidCertificate(c) => match c {
                CertificateError::UnknownIssuer => {
                    format!("unknown issuer: the server's certificate is {against}")
                }
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => {
                    format!("name mismatch: the server's certificate is not valid for {host}")
                }
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    "the server's certificate has expired".to_owned()
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    "the server's certificate is not valid yet (is the clock right?)".to_owned()
                }
                CertificateError::Other(OtherError(o)) => o.to_string(),
                other => format!("the server's certificate is refused: {other:?}"),
            },
            other => other.to_string(),
        }
    }

    /// A pin mismatch, as the verifier reports it.
    #[derive(Debug)]
    struct PinMismatch {
        pin: Fingerprint,
        got: Fingerprint,
    }

    impl std::fmt::Display for PinMismatch {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(
                f,
                "pin mismatch: the server's certificate is {}, the pin {}",
                self.got, self.pin
            )
        }
    }

    impl std::error::Error for PinMismatch {}

    /// Accepts exactly the leaf certificate whose DER hashes to the pin;
    /// the handshake signature is still verified with that certificate's key.
    #[derive(Debug)]
    struct Pinned {
        pin: Fingerprint,
        algorithms: WebPkiSupportedAlgorithms,
    }

    impl ServerCertVerifier for Pinned {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            if self.pin.matches(end_entity) {
                return Ok(ServerCertVerified::assertion());
            }
            let got = Fingerprint::of(end_entity);
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(PinMismatch { pin: self.pin, got })),
            )))
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algorithms.supported_schemes()
        }
    }
}
