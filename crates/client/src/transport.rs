//! One HTTP exchange over a fresh connection, and the retry loop around it.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::dns;
use crate::http::{self, Response, ResponseParser};
use crate::time::{Backoff, Deadline, NoJitter};
use crate::url::{Scheme, Url};
use crate::{Cancel, Error, Options, Resolver, Trust};

/// A request to send: method, target URL, optional (content type, body).
pub(crate) struct Request<'a> {
    pub method: &'static str,
    pub url: &'a str,
    pub body: Option<(&'static str, &'a [u8])>,
}

/// Sends `req` with retries until success, a permanent error, cancellation or `deadline`.
/// Only a 200 reply is success; its body is returned. `failed` hears of each transient
/// failure as it happens, so that a caller who stops waiting can still say what it was.
pub(crate) fn send(
    req: &Request<'_>,
    opts: &Options,
    cancel: &Cancel,
    deadline: Deadline,
    failed: &mut dyn FnMut(&Error),
) -> Result<Vec<u8>, Error> {
    let mut backoff = opts.retry.backoff.clone();
    loop {
        let result = attempt(req, opts, cancel, deadline).and_then(|r| match r.status {
            200 => Ok(r.body),
            status => Err(Error::Status {
                url: req.url.to_owned(),
                status,
            }),
        });
        match result {
            Err(e) if e.is_transient() && backoff.attempts() < opts.retry.retries => {
                failed(&e);
                let wake = Instant::now() + backoff.next_delay(&mut NoJitter);
                if deadline.expired(wake) {
                    return Err(e);
                }
                if !cancel.sleep_until(wake) {
                    return Err(Error::Cancelled {
                        url: req.url.to_owned(),
                    });
                }
            }
            other => return other,
        }
    }
}

fn attempt(
    req: &Request<'_>,
    opts: &Options,
    cancel: &Cancel,
    deadline: Deadline,
) -> Result<Response, Error> {
    let url = req.url;
    let parsed = Url::parse(url)?;
    let start = Instant::now();
    let end = Deadline::after(start, opts.timeout).min(deadline);
    let budget = end.remaining(start);
    let timeout = |during| Error::Timeout {
        url: url.to_owned(),
        after: budget,
        during,
    };
    if budget.is_zero() {
        return Err(timeout("connecting"));
    }
    if parsed.scheme == Scheme::Https && !cfg!(feature = "tls") {
        return Err(Error::TlsUnsupported {
            url: url.to_owned(),
        });
    }
    let tcp = connect(&parsed, url, opts, cancel, end, budget)?;
    if !cancel.register(&tcp) {
        return Err(Error::Cancelled {
            url: url.to_owned(),
        });
    }
    let result = exchange(req, &parsed, &opts.trust, tcp, end, budget);
    cancel.unregister();
    match result {
        Err(_) if cancel.is_cancelled() => Err(Error::Cancelled {
            url: url.to_owned(),
        }),
        other => other,
    }
}

fn exchange(
    req: &Request<'_>,
    parsed: &Url,
    trust: &Trust,
    tcp: TcpStream,
    end: Deadline,
    budget: Duration,
) -> Result<Response, Error> {
    let url = req.url;
    let io_err = |e: io::Error| match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout {
            url: url.to_owned(),
            after: budget,
            during: "sending the request",
        },
        _ => Error::Io {
            url: url.to_owned(),
            source: e,
        },
    };
    // Nagle would hold back the body behind the head for a delayed ACK.
    tcp.set_nodelay(true).map_err(io_err)?;
    let left = end.remaining(Instant::now()).max(Duration::from_millis(1));
    tcp.set_write_timeout(Some(left)).map_err(io_err)?;
    let control = tcp.try_clone().map_err(io_err)?;
    let mut set_timeout = move |d: Duration| control.set_read_timeout(Some(d));
    let bytes = http::request(req.method, &parsed.target, &parsed.host_header(), req.body);
    let mut stream = crate::tls::wrap(tcp, parsed, url, trust)?;
    let tls_err = |e: io::Error| Error::Tls {
        url: url.to_owned(),
        reason: crate::tls::describe(&e, &parsed.host, trust),
    };
    stream
        .write_all(&bytes)
        .and_then(|()| stream.flush())
        .map_err(|e| tls_or(e, tls_err, io_err))?;
    read_response(&mut stream, &mut set_timeout, end, budget, url, &tls_err)
}

/// Reads one response, resetting the read timeout before every read so that
/// the whole reply must arrive by `deadline`, not merely each packet. Bytes
/// the parser consumed are dropped at once: what is held is one unparsed
/// head or line at most, plus the body.
pub(crate) fn read_response(
    io: &mut impl Read,
    set_timeout: &mut dyn FnMut(Duration) -> io::Result<()>,
    deadline: Deadline,
    timeout: Duration,
    url: &str,
    tls_err: &dyn Fn(io::Error) -> Error,
) -> Result<Response, Error> {
    let mut parser = ResponseParser::new();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut eof = false;
    loop {
        let step = parser
            .advance(&buf, eof)
            .map_err(|reason| Error::BadReply {
                url: url.to_owned(),
                reason,
            })?;
        if let Some(r) = step.response {
            return Ok(r);
        }
        buf.drain(..step.consumed);
        let left = deadline.remaining(Instant::now());
        let timed_out = || Error::Timeout {
            url: url.to_owned(),
            after: timeout,
            during: "waiting for the reply",
        };
        if left.is_zero() {
            return Err(timed_out());
        }
        set_timeout(left).map_err(|e| Error::Io {
            url: url.to_owned(),
            source: e,
        })?;
        match io.read(&mut chunk) {
            Ok(0) => eof = true,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timed_out());
            }
            Err(e) => {
                let other = |e| Error::Io {
                    url: url.to_owned(),
                    source: e,
                };
                return Err(tls_or(e, tls_err, other));
            }
        }
    }
}

/// TLS failures come out of rustls' `Read`/`Write` as `InvalidData`.
fn tls_or(
    e: io::Error,
    tls: impl Fn(io::Error) -> Error,
    other: impl Fn(io::Error) -> Error,
) -> Error {
    if e.kind() == io::ErrorKind::InvalidData {
        tls(e)
    } else {
        other(e)
    }
}

/// The addresses of the URL's host: a literal as it is, a name through
/// the resolver `opts` chose, within `end`.
fn addresses(
    parsed: &Url,
    url: &str,
    resolver: Resolver,
    end: Deadline,
) -> Result<Vec<SocketAddr>, Error> {
    let resolve_err = |source| Error::Resolve {
        url: url.to_owned(),
        source,
    };
    if let Ok(ip) = parsed.host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, parsed.port)]);
    }
    Ok(match resolver {
        Resolver::System => (parsed.host.as_str(), parsed.port)
            .to_socket_addrs()
            .map_err(resolve_err)?
            .collect(),
        Resolver::Stub => dns::resolve(&parsed.host, end)
            .map_err(|e| resolve_err(io::Error::other(e)))?
            .into_iter()
            .map(|ip| SocketAddr::new(ip, parsed.port))
            .collect(),
    })
}

/// The pauses after which a SYN that got no answer is sent again, on a fresh socket:
/// 150 ms, doubling, rather than the kernel's own retransmission after a whole second.
/// A link that has just come up may drop the first SYN while the kernel is still
/// activating it; a server that is merely slow to answer gets longer and longer.
const SYN_RETRY: Backoff = Backoff::new(Duration::from_millis(150), 2, Duration::from_secs(2));

/// Connects to `addr` by `until`, trying again on a fresh socket each time a SYN went
/// unanswered for the next [`SYN_RETRY`] pause. A refusal or an unreachable network ends
/// it at once; cancellation ends it between tries.
fn connect_addr(addr: &SocketAddr, until: Deadline, cancel: &Cancel) -> io::Result<TcpStream> {
    let mut syn = SYN_RETRY;
    loop {
        let left = until.remaining(Instant::now());
        if left.is_zero() || cancel.is_cancelled() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        match TcpStream::connect_timeout(addr, syn.next_delay(&mut NoJitter).min(left)) {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                ) => {}
            other => return other,
        }
    }
}

fn connect(
    parsed: &Url,
    url: &str,
    opts: &Options,
    cancel: &Cancel,
    end: Deadline,
    budget: Duration,
) -> Result<TcpStream, Error> {
    let connect_timeout = opts.connect_timeout;
    let addrs = addresses(parsed, url, opts.resolver, end)?;
    if addrs.is_empty() {
        let source = io::Error::new(io::ErrorKind::NotFound, "no addresses");
        return Err(Error::Resolve {
            url: url.to_owned(),
            source,
        });
    }
    let mut last = None;
    for addr in addrs {
        let now = Instant::now();
        if end.expired(now) {
            break;
        }
        let until = end.min(Deadline::after(now, connect_timeout));
        match connect_addr(&addr, until, cancel) {
            Ok(s) => return Ok(s),
            Err(_) if cancel.is_cancelled() => {
                return Err(Error::Cancelled {
                    url: url.to_owned(),
                });
            }
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) if e.kind() == io::ErrorKind::ConnectionRefused => Error::Refused {
            url: url.to_owned(),
        },
        Some(e)
            if matches!(
                e.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ) =>
        {
            Error::Timeout {
                url: url.to_owned(),
                after: budget.min(connect_timeout),
                during: "connecting",
            }
        }
        Some(e) => Error::Connect {
            url: url.to_owned(),
            source: e,
        },
        None => Error::Timeout {
            url: url.to_owned(),
            after: budget,
            during: "connecting",
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out its data in small pieces, then blocks (like tangd, it never closes)
    /// unless `eof` is set.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        eof: bool,
    }

    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.at == self.data.len() {
                return if self.eof {
                    Ok(0)
                } else {
                    Err(io::ErrorKind::WouldBlock.into())
                };
            }
            let n = out.len().min(7).min(self.data.len() - self.at);
            out[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    fn read(data: &[u8], eof: bool) -> Result<Response, Error> {
        let mut set = |_: Duration| Ok(());
        let mut io = Trickle {
            data: data.to_vec(),
            at: 0,
            eof,
        };
        let deadline = Deadline::after(Instant::now(), Duration::from_secs(5));
        read_response(
            &mut io,
            &mut set,
            deadline,
            Duration::from_secs(5),
            "http://t",
            &|source| Error::Io {
                url: "http://t".to_owned(),
                source,
            },
        )
    }

    #[test]
    fn a_reply_in_small_pieces() {
        let r = read(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{\"a\"}",
            false,
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"{\"a\"}"[..]));
    }

    #[test]
    fn short_body_is_a_timeout_or_an_error() {
        let e = read(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", false).unwrap_err();
        assert!(matches!(e, Error::Timeout { .. }), "{e}");
        let e = read(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "http://t: bad reply: connection closed after 3 of 10 body bytes"
        );
    }
}
