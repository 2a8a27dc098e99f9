//! The HTTP/1.x wire format, sans IO: request heads, bodies and responses.
//!
//! Only what a Tang server needs: the method, the raw target, the body and
//! the connection's fate. All other headers are ignored, as tang ignores them.

use std::fmt::Write as _;

/// Size limits, named after the status each one produces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A target of this many bytes or more gets 414 (tang: 4096).
    pub url: usize,
    /// A body of this many bytes or more gets 413 (tang: 64 KiB).
    pub body: usize,
    /// Request line plus headers; past it the connection gets 414 or 431 and closes.
    pub head: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            url: 4096,
            body: 64 * 1024,
            head: 16 * 1024,
        }
    }
}

const MAX_HEADERS: usize = 64;

/// How the body of a request is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(usize),
    Chunked,
}

/// A parsed request line and the few headers that matter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    pub framing: Framing,
    /// The client asked for `Expect: 100-continue`.
    pub expect_continue: bool,
    /// The connection stays open after the response.
    pub keep_alive: bool,
}

/// A request that cannot be answered in place; the connection closes after the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Not HTTP/1.x, or headers that contradict each other (400).
    Malformed,
    /// The request line alone exceeds the head limit (414).
    LineTooLong,
    /// The head exceeds its limit (431).
    HeadTooLarge,
    /// The body is at or over the body limit (413).
    BodyTooLarge,
}

impl Reject {
    pub fn status(self) -> u16 {
        match self {
            Reject::Malformed => 400,
            Reject::LineTooLong => 414,
            Reject::HeadTooLarge => 431,
            Reject::BodyTooLarge => 413,
        }
    }
}

/// Parses a request head from the start of `buf`: `Ok(None)` wants more bytes,
/// `Ok(Some((head, n)))` consumed `n` bytes.
pub fn parse_head(buf: &[u8], limits: &Limits) -> Result<Option<(Head, usize)>, Reject> {
    // Tolerate the stray line ends some clients leave after a body (RFC 9112
    // §2.2), but they count against the head limit like any other byte.
    let skip = blank_prefix(buf);
    if skip >= limits.head {
        return Err(Reject::Malformed);
    }
    let head_limit = limits.head - skip;
    let buf = &buf[skip..];
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let n = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() < head_limit {
                return Ok(None);
            }
            return Err(if buf.contains(&b'\n') {
                Reject::HeadTooLarge
            } else {
                Reject::LineTooLong
            });
        }
        Err(httparse::Error::TooManyHeaders) => return Err(Reject::HeadTooLarge),
        Err(_) => return Err(Reject::Malformed),
    };
    if n > head_limit {
        return Err(Reject::HeadTooLarge);
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(Reject::Malformed);
    };

    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut transfer_coding = false;
    let mut close = false;
    let mut keep_alive = false;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let name = h.name;
        let value = std::str::from_utf8(h.value).map_err(|_| Reject::Malformed);
        if name.eq_ignore_ascii_case("content-length") {
            let v = value?.trim();
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Reject::Malformed);
            }
            // Anything too long to parse is certainly over the body limit.
            let n = v.parse::<usize>().unwrap_or(usize::MAX);
            if length.is_some_and(|l| l != n) {
                return Err(Reject::Malformed);
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_coding = true;
            chunked = value?
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value?.split(',') {
                let token = token.trim();
                close |= token.eq_ignore_ascii_case("close");
                keep_alive |= token.eq_ignore_ascii_case("keep-alive");
            }
        } else if name.eq_ignore_ascii_case("expect") {
            expect_continue = value?.trim().eq_ignore_ascii_case("100-continue");
        }
    }
    let framing = match (transfer_coding, chunked, length) {
        (true, false, _) => return Err(Reject::Malformed),
        (true, true, _) => Framing::Chunked,
        (false, _, Some(n)) => Framing::Length(n),
        (false, _, None) => Framing::Length(0),
    };
    if let Framing::Length(n) = framing {
        if n >= limits.body {
            return Err(Reject::BodyTooLarge);
        }
    }
    // Both a length and chunking is a smuggling vector: serve it, then close.
    let ambiguous = transfer_coding && length.is_some();
    let keep_alive = !close && !ambiguous && (minor == 1 || keep_alive);
    Ok(Some((
        Head {
            method: method.to_owned(),
            target: target.to_owned(),
            minor,
            framing,
            expect_continue,
            keep_alive,
        },
        skip + n,
    )))
}

/// The CR and LF bytes before a request line.
pub fn blank_prefix(buf: &[u8]) -> usize {
    buf.iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count()
}

/// How much of a request head is parsed on every read: enough to turn away
/// what is not HTTP at once. Past it the head is parsed only when a read
/// completes its first line or the head itself, or reaches the limit, so a
/// head that arrives a byte at a time costs linear time, not quadratic.
const EAGER: usize = 64;

/// Follows a request head as it arrives: drops the blank lines before it
/// while counting them against the head limit, and says when to parse.
#[derive(Debug, Default, Clone, Copy)]
pub struct HeadScan {
    /// Blank-line bytes dropped before this request.
    skipped: usize,
    /// Bytes already searched for the end of the head.
    scanned: usize,
    line_done: bool,
}

impl HeadScan {
    /// How many leading bytes of `buf` to drop (blank lines before the request).
    pub fn drop_blank(&mut self, buf: &[u8]) -> usize {
        let n = blank_prefix(buf);
        self.skipped += n;
        n
    }

    /// Whether the blank lines alone used up the head limit.
    pub fn too_blank(&self, limits: &Limits) -> bool {
        self.skipped >= limits.head
    }

    /// Whether `buf` (blank lines dropped) is worth parsing now.
    pub fn ready(&mut self, buf: &[u8], limits: &Limits) -> bool {
        if buf.len() <= EAGER || self.skipped + buf.len() >= limits.head {
            return true;
        }
        let new = &buf[self.scanned.saturating_sub(2).min(buf.len())..];
        self.scanned = buf.len();
        let line = !self.line_done && new.contains(&b'\n');
        self.line_done |= line;
        line || new.windows(2).any(|w| w == b"\n\n") || new.windows(3).any(|w| w == b"\n\r\n")
    }

    /// The limits to parse with: the head limit less the blank lines dropped.
    pub fn limits(&self, limits: &Limits) -> Limits {
        Limits {
            head: limits.head.saturating_sub(self.skipped),
            ..*limits
        }
    }
}

/// Decodes a complete chunked body from the start of `buf`: `Ok(None)` wants
/// more bytes, `Ok(Some((body, n)))` consumed `n` bytes (trailers included).
pub fn parse_chunked(buf: &[u8], limits: &Limits) -> Result<Option<(Vec<u8>, usize)>, Reject> {
    let mut chunked = Chunked::default();
    let (n, done) = chunked.feed(buf, limits)?;
    Ok(done.then_some((chunked.body, n)))
}

/// A chunked body decoded as it arrives: each call takes the chunks (and
/// trailer lines) complete at the start of the buffer and says how many bytes
/// the caller may drop, so no byte is looked at twice but the size line of a
/// chunk still arriving.
#[derive(Debug, Default)]
pub struct Chunked {
    pub body: Vec<u8>,
    in_trailers: bool,
    /// Bytes taken so far, framing included.
    taken: usize,
}

impl Chunked {
    /// Takes what is complete at the start of `buf`: returns the bytes taken
    /// and whether the body is complete. Chunk framing (sizes, extensions,
    /// trailers) may not exceed the body limit by more than the head limit,
    /// or a client could stream framing forever.
    pub fn feed(&mut self, buf: &[u8], limits: &Limits) -> Result<(usize, bool), Reject> {
        let mut pos = 0;
        let done = loop {
            if self.in_trailers {
                // Trailer section: header lines up to an empty line, all ignored.
                let Some(eol) = buf[pos..].iter().position(|&b| b == b'\n') else {
                    break false;
                };
                let line = &buf[pos..pos + eol];
                pos += eol + 1;
                if line.is_empty() || line == b"\r" {
                    break true;
                }
                continue;
            }
            let (n, size) = match httparse::parse_chunk_size(&buf[pos..]) {
                Ok(httparse::Status::Complete(v)) => v,
                Ok(httparse::Status::Partial) => break false,
                Err(_) => return Err(Reject::Malformed),
            };
            if size == 0 {
                pos += n;
                self.in_trailers = true;
                continue;
            }
            let size = usize::try_from(size).unwrap_or(usize::MAX);
            if size >= limits.body || self.body.len() + size >= limits.body {
                return Err(Reject::BodyTooLarge);
            }
            let data = pos + n;
            if buf.len() - data < size + 2 {
                break false;
            }
            let end = data + size;
            let next = match &buf[end..end + 2] {
                b"\r\n" => end + 2,
                [b'\n', _] => end + 1,
                _ => return Err(Reject::Malformed),
            };
            self.body.extend_from_slice(&buf[data..end]);
            pos = next;
        };
        self.taken += pos;
        if !done && self.taken + (buf.len() - pos) >= limits.body + limits.head {
            return Err(Reject::BodyTooLarge);
        }
        Ok((pos, done))
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

/// What the `Connection` header of a response says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persist {
    /// HTTP/1.1 default: no header, exactly tang's format.
    Default,
    /// HTTP/1.0 client that asked for keep-alive.
    KeepAlive,
    Close,
}

/// Appends a response in tang's format: status line, optional Content-Type,
/// Content-Length, and a Connection header only when it differs from the default.
pub fn write_response(
    out: &mut Vec<u8>,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
    persist: Persist,
) {
    let mut head = String::with_capacity(128);
    // Writing to a String cannot fail.
    let _ = write!(head, "HTTP/1.1 {status} {}\r\n", reason(status));
    if let Some(ct) = content_type {
        let _ = write!(head, "Content-Type: {ct}\r\n");
    }
    let _ = write!(head, "Content-Length: {}\r\n", body.len());
    match persist {
        Persist::Default => {}
        Persist::KeepAlive => head.push_str("Connection: keep-alive\r\n"),
        Persist::Close => head.push_str("Connection: close\r\n"),
    }
    head.push_str("\r\n");
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(s: &str) -> Result<Option<(Head, usize)>, Reject> {
        parse_head(s.as_bytes(), &Limits::default())
    }

    #[test]
    fn clevis_request() {
        let req = "POST /rec/abc HTTP/1.1\r\nHost: x\r\nContent-Type: application/jwk+json\r\nContent-Length: 5\r\n\r\nhello";
        let (h, n) = head(req).unwrap().unwrap();
        assert_eq!(h.method, "POST");
        assert_eq!(h.target, "/rec/abc");
        assert_eq!(h.framing, Framing::Length(5));
        assert!(h.keep_alive);
        assert_eq!(&req[n..], "hello");
    }

    #[test]
    fn partial_and_limits() {
        assert_eq!(head("GET /adv HTTP/1.1\r\nHost"), Ok(None));
        let limits = Limits {
            url: 4096,
            body: 65536,
            head: 64,
        };
        let long_line = format!("GET /{} HTTP/1.1", "a".repeat(100));
        assert_eq!(
            parse_head(long_line.as_bytes(), &limits),
            Err(Reject::LineTooLong)
        );
        let many = format!("GET / HTTP/1.1\r\n{}", "X: y\r\n".repeat(20));
        assert_eq!(
            parse_head(many.as_bytes(), &limits),
            Err(Reject::HeadTooLarge)
        );
        assert_eq!(
            head("POST /rec/a HTTP/1.1\r\nContent-Length: 65536\r\n\r\n"),
            Err(Reject::BodyTooLarge)
        );
        assert!(
            head("POST /rec/a HTTP/1.1\r\nContent-Length: 65535\r\n\r\n")
                .unwrap()
                .is_some()
        );
        assert_eq!(
            head("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
            Err(Reject::BodyTooLarge)
        );
    }

    #[test]
    fn malformed() {
        for bad in [
            "GARBAGE\r\n\r\n",
            "GET /adv HTTP/2.0\r\n\r\n",
            "GET /adv FOO/1.1\r\n\r\n",
            "GET /a b HTTP/1.1\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        ] {
            assert_eq!(head(bad), Err(Reject::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn connection_semantics() {
        let ka = |s: &str| head(s).unwrap().unwrap().0.keep_alive;
        assert!(ka("GET / HTTP/1.1\r\n\r\n"));
        assert!(!ka("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
        assert!(!ka("GET / HTTP/1.0\r\n\r\n"));
        assert!(ka("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        assert!(!ka(
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
        assert!(ka("\r\nGET / HTTP/1.1\r\n\r\n"));
    }

    #[test]
    fn chunked() {
        let l = Limits::default();
        let body = b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        let (b, n) = parse_chunked(body, &l).unwrap().unwrap();
        assert_eq!(b, b"abcde");
        assert_eq!(&body[n..], b"NEXT");
        assert_eq!(parse_chunked(b"3\r\nab", &l), Ok(None));
        assert_eq!(parse_chunked(b"3\r\nabcXY", &l), Err(Reject::Malformed));
        assert_eq!(parse_chunked(b"zz\r\n", &l), Err(Reject::Malformed));
        let big = format!("{:x}\r\n", 65536);
        assert_eq!(parse_chunked(big.as_bytes(), &l), Err(Reject::BodyTooLarge));
        let two = format!("{:x}\r\n{}\r\n{:x}\r\n", 40000, "a".repeat(40000), 30000);
        assert_eq!(parse_chunked(two.as_bytes(), &l), Err(Reject::BodyTooLarge));
    }

    #[test]
    fn response_format_is_tangs() {
        let mut out = Vec::new();
        write_response(&mut out, 404, None, b"", Persist::Default);
        assert_eq!(out, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        out.clear();
        write_response(
            &mut out,
            200,
            Some("application/jwk+json"),
            b"{}",
            Persist::Close,
        );
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nContent-Type: application/jwk+json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
        );
    }

    #[test]
    fn blank_lines_count_against_the_head_limit() {
        let limits = Limits {
            url: 4096,
            body: 65536,
            head: 64,
        };
        let blank = "\r\n".repeat(40);
        assert_eq!(
            parse_head(blank.as_bytes(), &limits),
            Err(Reject::Malformed)
        );
        let req = format!(
            "{}GET /adv HTTP/1.1\r\nHost: xxxxxxxxxxxxxxxxxxxxxxxxxx\r\n\r\n",
            "\r\n".repeat(10)
        );
        assert_eq!(
            parse_head(req.as_bytes(), &limits),
            Err(Reject::HeadTooLarge)
        );
        assert!(
            parse_head(&req.as_bytes()[20..], &limits)
                .unwrap()
                .is_some()
        );

        let mut scan = HeadScan::default();
        let mut buf = b"\r\n\r\nGET".to_vec();
        let n = scan.drop_blank(&buf);
        buf.drain(..n);
        assert_eq!(buf, b"GET");
        assert!(!scan.too_blank(&limits));
        assert_eq!(scan.limits(&limits).head, 60);
        let mut scan = HeadScan::default();
        assert_eq!(scan.drop_blank(blank.as_bytes()), 80);
        assert!(scan.too_blank(&limits));
    }

    /// Past the first bytes, a head is parsed when a line or the head completes.
    #[test]
    fn head_scan_parses_when_something_completes() {
        let limits = Limits::default();
        let mut scan = HeadScan::default();
        let mut buf = b"GET /adv HTTP/1.1".to_vec();
        assert!(scan.ready(&buf, &limits), "short heads are parsed eagerly");
        buf.extend_from_slice(&[b'a'; 100]);
        assert!(!scan.ready(&buf, &limits));
        buf.extend_from_slice(b"\r\nX: y");
        assert!(scan.ready(&buf, &limits), "the request line is complete");
        buf.extend_from_slice(b"\r\nZ: w");
        assert!(!scan.ready(&buf, &limits));
        buf.extend_from_slice(b"\r\n\r");
        assert!(!scan.ready(&buf, &limits));
        buf.extend_from_slice(b"\n");
        assert!(scan.ready(&buf, &limits), "the head is complete");
        let mut scan = HeadScan::default();
        let big = vec![b'a'; limits.head];
        assert!(scan.ready(&big, &limits), "the limit is reached");
    }

    /// Arbitrary bytes never panic the parsers (a cheap stand-in for the
    /// cargo-fuzz targets over the same functions).
    #[test]
    fn random_input_never_panics() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet = b"GET POST /adv/rec HTTP/1.1\r\n:0123456789abcdefContent-Length: Transfer-Encoding: chunked;\x00\xff";
        let limits = Limits {
            url: 64,
            body: 128,
            head: 256,
        };
        for _ in 0..20_000 {
            let len = (next() % 300) as usize;
            let buf: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let _ = parse_head(&buf, &limits);
            let _ = parse_chunked(&buf, &limits);
        }
    }
}
