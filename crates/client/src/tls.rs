//! The byte stream under HTTP: plain TCP, or rustls over it with the `tls` feature.
//!
//! Trust comes from the system CA bundle (`/etc/ssl/certs` and friends, found by
//! rustls-native-certs), loaded once per process.

use std::io::{self, Read, Write};
use std::net::TcpStream;

use crate::Error;
use crate::url::{Scheme, Url};

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
pub(crate) fn wrap(tcp: TcpStream, parsed: &Url, url: &str) -> Result<Stream, Error> {
    match parsed.scheme {
        Scheme::Http => Ok(Stream::Plain(tcp)),
        #[cfg(feature = "tls")]
        Scheme::Https => imp::wrap(tcp, parsed, url),
        #[cfg(not(feature = "tls"))]
        Scheme::Https => Err(Error::TlsUnsupported {
            url: url.to_owned(),
        }),
    }
}

#[cfg(feature = "tls")]
mod imp {
    use std::net::TcpStream;
    use std::sync::{Arc, OnceLock};

    use rustls::pki_types::ServerName;

    use super::Stream;
    use crate::Error;
    use crate::url::Url;

    fn config() -> Result<Arc<rustls::ClientConfig>, String> {
        static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
        CONFIG
            .get_or_init(|| {
                let mut roots = rustls::RootCertStore::empty();
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err("no CA certificates found in the system store".to_owned());
                }
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| e.to_string())?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                Ok(Arc::new(config))
            })
            .clone()
    }

    pub(super) fn wrap(tcp: TcpStream, parsed: &Url, url: &str) -> Result<Stream, Error> {
        let tls = |reason: String| Error::Tls {
            url: url.to_owned(),
            reason,
        };
        let config = config().map_err(tls)?;
        let name = ServerName::try_from(parsed.host.clone()).map_err(|e| tls(e.to_string()))?;
        let conn = rustls::ClientConnection::new(config, name).map_err(|e| tls(e.to_string()))?;
        Ok(Stream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp))))
    }
}
