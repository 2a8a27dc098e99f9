//! Just enough HTTP/1.1 for Tang: one request, one reply framed by
//! `Content-Length` (tangd never closes its side) or chunked encoding.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use crate::Error;

/// Header block limit; tangd's whole reply head is under 100 bytes.
const MAX_HEAD: usize = 16 * 1024;
/// Body limit; an advertisement with many keys is a few KiB.
const MAX_BODY: usize = 1024 * 1024;

/// A reply: status and the de-chunked body.
#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Serializes a request. `target` is the path and query; `body` goes with a POST.
pub(crate) fn request(
    method: &str,
    target: &str,
    host: &str,
    body: Option<(&str, &[u8])>,
) -> Vec<u8> {
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: latchkey/{}\r\nAccept: */*\r\nConnection: close\r\n",
        env!("CARGO_PKG_VERSION")
    );
    if let Some((content_type, body)) = body {
        head.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    if let Some((_, body)) = body {
        out.extend_from_slice(body);
    }
    out
}

/// Reads from a stream whose read timeout is reset before every read so the
/// whole reply must arrive by `deadline`, not merely each packet.
pub(crate) struct Reader<'a, R: Read> {
    io: R,
    set_timeout: &'a mut dyn FnMut(Duration) -> io::Result<()>,
    deadline: Instant,
    timeout: Duration,
    url: &'a str,
    buf: Vec<u8>,
    pos: usize,
}

impl<'a, R: Read> Reader<'a, R> {
    pub(crate) fn new(
        io: R,
        set_timeout: &'a mut dyn FnMut(Duration) -> io::Result<()>,
        deadline: Instant,
        timeout: Duration,
        url: &'a str,
    ) -> Self {
        Reader {
            io,
            set_timeout,
            deadline,
            timeout,
            url,
            buf: Vec::new(),
            pos: 0,
        }
    }

    fn timeout(&self) -> Error {
        Error::Timeout {
            url: self.url.to_owned(),
            after: self.timeout,
            during: "waiting for the reply",
        }
    }

    fn bad(&self, reason: impl Into<String>) -> Error {
        Error::BadReply {
            url: self.url.to_owned(),
            reason: reason.into(),
        }
    }

    /// Appends at least one byte to the buffer; Ok(false) at end of stream.
    fn fill(&mut self) -> Result<bool, Error> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.timeout());
        }
        (self.set_timeout)(left).map_err(|e| Error::Io {
            url: self.url.to_owned(),
            source: e,
        })?;
        let mut chunk = [0u8; 4096];
        loop {
            match self.io.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(self.timeout());
                }
                Err(e) => {
                    let io = |e| Error::Io {
                        url: self.url.to_owned(),
                        source: e,
                    };
                    return Err(crate::transport::tls_or(self.url, e, io));
                }
            }
        }
    }

    /// One CRLF-terminated line (without the CRLF), at most `limit` bytes.
    fn line(&mut self, limit: usize) -> Result<String, Error> {
        loop {
            if let Some(i) = self.buf[self.pos..].iter().position(|&b| b == b'\n') {
                let raw = &self.buf[self.pos..self.pos + i];
                let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                let line =
                    String::from_utf8(raw.to_vec()).map_err(|_| self.bad("header is not UTF-8"))?;
                self.pos += i + 1;
                return Ok(line);
            }
            if self.buf.len() - self.pos > limit {
                return Err(self.bad("header line too long"));
            }
            if !self.fill()? {
                return Err(self.bad(if self.buf.is_empty() {
                    "connection closed without a reply"
                } else {
                    "connection closed in the middle of the reply head"
                }));
            }
        }
    }

    /// Exactly `n` bytes of body.
    fn exact(&mut self, n: usize, out: &mut Vec<u8>) -> Result<(), Error> {
        while self.buf.len() - self.pos < n {
            if !self.fill()? {
                return Err(self.bad(format!(
                    "connection closed after {} of {n} body bytes",
                    self.buf.len() - self.pos
                )));
            }
        }
        out.extend_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(())
    }

    /// Reads one response; informational (1xx) replies are skipped.
    pub(crate) fn response(&mut self) -> Result<Response, Error> {
        loop {
            let (status, headers) = self.head()?;
            if (100..200).contains(&status) {
                continue;
            }
            let body = if status == 204 || status == 304 {
                Vec::new()
            } else {
                self.body(&headers)?
            };
            return Ok(Response { status, body });
        }
    }

    fn head(&mut self) -> Result<(u16, Vec<(String, String)>), Error> {
        let start = self.pos;
        let status_line = self.line(MAX_HEAD)?;
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        if !version.starts_with("HTTP/1.") {
            return Err(self.bad(format!(
                "not an HTTP/1 status line: {:?}",
                truncate(&status_line)
            )));
        }
        let status = parts
            .next()
            .filter(|s| s.len() == 3)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| self.bad(format!("bad status line: {:?}", truncate(&status_line))))?;
        let mut headers = Vec::new();
        loop {
            let line = self.line(MAX_HEAD)?;
            if self.pos - start > MAX_HEAD {
                return Err(self.bad("reply head too large"));
            }
            if line.is_empty() {
                return Ok((status, headers));
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| self.bad(format!("bad header line: {:?}", truncate(&line))))?;
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }

    fn body(&mut self, headers: &[(String, String)]) -> Result<Vec<u8>, Error> {
        fn get<'h>(
            headers: &'h [(String, String)],
            name: &'static str,
        ) -> impl Iterator<Item = &'h str> {
            headers
                .iter()
                .filter(move |(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }
        let chunked = get(headers, "transfer-encoding").any(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("chunked"))
        });
        let mut body = Vec::new();
        if chunked {
            loop {
                let line = self.line(1024)?;
                let size = line.split(';').next().unwrap_or_default().trim();
                let size = usize::from_str_radix(size, 16)
                    .map_err(|_| self.bad(format!("bad chunk size {size:?}")))?;
                if size == 0 {
                    // Trailers, then the empty line.
                    while !self.line(MAX_HEAD)?.is_empty() {}
                    return Ok(body);
                }
                if body.len() + size > MAX_BODY {
                    return Err(self.bad("body larger than 1 MiB"));
                }
                self.exact(size, &mut body)?;
                if !self.line(2)?.is_empty() {
                    return Err(self.bad("chunk not followed by CRLF"));
                }
            }
        }
        let mut lengths = get(headers, "content-length");
        match lengths.next() {
            Some(v) => {
                let n: usize = v
                    .parse()
                    .map_err(|_| self.bad(format!("bad Content-Length {v:?}")))?;
                if lengths.any(|other| other != v) {
                    return Err(self.bad("conflicting Content-Length headers"));
                }
                if n > MAX_BODY {
                    return Err(self.bad("body larger than 1 MiB"));
                }
                self.exact(n, &mut body)?;
                Ok(body)
            }
            // No framing: the body runs to the end of the connection.
            None => {
                while self.fill()? {
                    if self.buf.len() - self.pos > MAX_BODY {
                        return Err(self.bad("body larger than 1 MiB"));
                    }
                }
                body.extend_from_slice(&self.buf[self.pos..]);
                self.pos = self.buf.len();
                Ok(body)
            }
        }
    }
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(60) {
        Some((i, _)) => &s[..i],
        None => s,
    }
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

    fn parse(data: &[u8], eof: bool) -> Result<Response, Error> {
        let mut set = |_: Duration| Ok(());
        let io = Trickle {
            data: data.to_vec(),
            at: 0,
            eof,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        Reader::new(io, &mut set, deadline, Duration::from_secs(5), "http://t").response()
    }

    #[test]
    fn content_length_without_close() {
        // tangd's exact reply shape; more bytes after the body must not be awaited.
        let r = parse(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/jwk+json\r\nContent-Length: 5\r\n\r\n{\"a\"}",
            false,
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"{\"a\"}"[..]));
    }

    #[test]
    fn chunked_with_extensions_and_trailers() {
        let r = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nabcd\r\na\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(r.body, b"abcd0123456789");
    }

    #[test]
    fn status_without_body_and_continue() {
        let r = parse(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!((r.status, r.body.len()), (404, 0));
    }

    #[test]
    fn unframed_body_runs_to_eof() {
        let r = parse(b"HTTP/1.0 200 OK\n\nhello", true).unwrap();
        assert_eq!(r.body, b"hello");
    }

    #[test]
    fn short_body_is_a_timeout_or_an_error() {
        let e = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", false).unwrap_err();
        assert!(matches!(e, Error::Timeout { .. }), "{e}");
        let e = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "http://t: bad reply: connection closed after 3 of 10 body bytes"
        );
    }

    #[test]
    fn garbage_is_named() {
        for (input, want) in [
            (&b"SSH-2.0-OpenSSH\r\n"[..], "not an HTTP/1 status line"),
            (b"HTTP/1.1 2000 OK\r\n\r\n", "bad status line"),
            (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "bad header line"),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                "bad Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                "conflicting",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                "bad chunk size",
            ),
            (b"", "connection closed without a reply"),
        ] {
            let e = parse(input, true).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn request_bytes() {
        let r = request(
            "POST",
            "/rec/k",
            "127.0.0.1:1",
            Some(("application/jwk+json", b"{}")),
        );
        let text = String::from_utf8(r).unwrap();
        assert!(text.starts_with("POST /rec/k HTTP/1.1\r\nHost: 127.0.0.1:1\r\n"));
        assert!(
            text.ends_with("Content-Type: application/jwk+json\r\nContent-Length: 2\r\n\r\n{}")
        );
    }
}
