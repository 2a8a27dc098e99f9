//! The few URL shapes a Tang binding uses: `http[s]://host[:port][/prefix]`.
//!
//! clevis hands its `url` to curl, which assumes `http://` when the scheme is
//! missing, so a bare `host:port` is accepted too.

use crate::Error;

/// Transport of a URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Plain TCP.
    Http,
    /// TLS over TCP (needs the `tls` feature to connect).
    Https,
}

/// A parsed request URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// Transport.
    pub scheme: Scheme,
    /// Host name or IP literal, without the brackets of an IPv6 literal.
    pub host: String,
    /// Port, defaulted from the scheme.
    pub port: u16,
    /// Path and query as sent in the request line; at least `/`.
    pub target: String,
}

impl Url {
    /// Parses `url`; errors name the URL and the part that is wrong.
    pub fn parse(url: &str) -> Result<Url, Error> {
        let bad = |reason: &str| Error::BadUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let (scheme, rest) = match url.split_once("://") {
            Some((s, rest)) if s.eq_ignore_ascii_case("http") => (Scheme::Http, rest),
            Some((s, rest)) if s.eq_ignore_ascii_case("https") => (Scheme::Https, rest),
            Some((s, _)) => return Err(bad(&format!("unsupported scheme {s:?}"))),
            None => (Scheme::Http, url),
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let (authority, target) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'?' => (&rest[..i], format!("/{}", &rest[i..])),
            Some(i) => (&rest[..i], rest[i..].to_owned()),
            None => (rest, "/".to_owned()),
        };
        if authority.contains('@') {
            return Err(bad("user information is not supported"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed '[' in host"))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("invalid IPv6 literal"));
            }
            match after {
                "" => (host, None),
                p => (
                    host,
                    Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ']'"))?),
                ),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if target.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad("whitespace or control characters in path"));
        }
        let port = match port {
            None | Some("") => match scheme {
                Scheme::Http => 80,
                Scheme::Https => 443,
            },
            Some(p) => p.parse().map_err(|_| bad("invalid port"))?,
        };
        Ok(Url {
            scheme,
            host: host.to_owned(),
            port,
            target,
        })
    }

    /// The `Host` header value: brackets back around IPv6 literals, port only when not default.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = match self.scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_host_port_and_prefix() {
        let u = Url::parse("http://tang.example:8080/nbde/rec/abc").unwrap();
        assert_eq!(u.scheme, Scheme::Http);
        assert_eq!(u.host, "tang.example");
        assert_eq!(u.port, 8080);
        assert_eq!(u.target, "/nbde/rec/abc");
        assert_eq!(u.host_header(), "tang.example:8080");
    }

    #[test]
    fn defaults_and_missing_scheme() {
        let u = Url::parse("tang.example").unwrap();
        assert_eq!(
            (u.scheme, u.port, u.target.as_str()),
            (Scheme::Http, 80, "/")
        );
        assert_eq!(u.host_header(), "tang.example");
        let u = Url::parse("HTTPS://t/adv").unwrap();
        assert_eq!((u.scheme, u.port), (Scheme::Https, 443));
        let u = Url::parse("http://t?x=1#frag").unwrap();
        assert_eq!(u.target, "/?x=1");
    }

    #[test]
    fn ipv6_literals() {
        let u = Url::parse("http://[::1]:7500/adv/").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("::1", 7500, "/adv/")
        );
        assert_eq!(u.host_header(), "[::1]:7500");
        let u = Url::parse("http://[fe80::1]").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("fe80::1", 80));
    }

    #[test]
    fn rejects_what_it_cannot_use() {
        for bad in [
            "ftp://x",
            "http://",
            "http://[::1",
            "http://[zz]:1",
            "http://[::1]x",
            "http://h:99999",
            "http://h:p",
            "http://u@h/",
            "http://h/a b",
        ] {
            let err = Url::parse(bad).unwrap_err();
            assert!(err.to_string().contains(bad), "{bad}: {err}");
        }
    }
}
