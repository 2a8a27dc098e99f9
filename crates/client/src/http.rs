//! Just enough HTTP/1.1 for Tang, sans IO: the bytes of a request, and a
//! response parser that is fed bytes as they arrive and says how many it
//! consumed, so the caller keeps only what is not parsed yet.
//!
//! Every byte a server sends counts against a limit: the heads (informational
//! `1xx` replies included), the body, chunk-size lines with their extensions,
//! and trailers. A reply that never ends is cut off after [`MAX_RESPONSE`]
//! bytes, not after the timeout.

use std::fmt;

/// One reply head: status line and header fields. tangd's is under 100 bytes.
pub const MAX_HEAD: usize = 16 * 1024;
/// Header fields in one head.
pub const MAX_HEADERS: usize = 64;
/// Informational (`1xx`) replies before the final one; a server sends one
/// `100 Continue` at most, and a `103 Early Hints` perhaps.
pub const MAX_INFORMATIONAL: u32 = 4;
/// A chunk-size line with its extensions (which nobody sends to a client).
pub const MAX_CHUNK_LINE: usize = 1024;
/// The trailer section after the last chunk.
pub const MAX_TRAILERS: usize = 16 * 1024;
/// The body, de-chunked. A Tang advertisement with a hundred keys is about
/// 60 KiB; a recovery reply is one JWK.
pub const MAX_BODY: usize = 256 * 1024;
/// Every byte of one response: heads, body, chunk framing and trailers.
pub const MAX_RESPONSE: usize = MAX_BODY + 64 * 1024;

/// A complete reply: the final status and the de-chunked body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code of the final (non-`1xx`) head.
    pub status: u16,
    /// The body, without chunk framing.
    pub body: Vec<u8>,
}

/// Why a reply is refused. Each limit has its own variant.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Invalid {
    /// The connection ended before the reply was complete.
    Closed {
        /// What was being read: "a reply", "the reply head", "the chunked body", ...
        during: &'static str,
    },
    /// The connection ended inside a body framed by `Content-Length`.
    ShortBody {
        /// Bytes received.
        got: usize,
        /// Bytes announced.
        want: usize,
    },
    /// Not an HTTP/1.x status line and header fields.
    Malformed {
        /// httparse's complaint.
        reason: String,
        /// The start of the first line, for the person reading the error.
        start: String,
    },
    /// A head longer than [`MAX_HEAD`].
    HeadTooLarge,
    /// More than [`MAX_HEADERS`] header fields.
    TooManyHeaders,
    /// More than [`MAX_INFORMATIONAL`] `1xx` replies.
    TooManyInformational,
    /// `101 Switching Protocols`, which no request of ours asks for.
    UnexpectedUpgrade,
    /// A `Content-Length` that is not a number.
    BadContentLength(String),
    /// Several `Content-Length` fields that disagree.
    ConflictingContentLength,
    /// A `Transfer-Encoding` that does not end in `chunked`: the body cannot be framed.
    UnknownTransferCoding(String),
    /// A body larger than [`MAX_BODY`].
    BodyTooLarge,
    /// A chunk-size line that is not hexadecimal digits (and extensions).
    BadChunkSize(String),
    /// A chunk-size line longer than [`MAX_CHUNK_LINE`].
    ChunkLineTooLong,
    /// Chunk data not followed by a line end.
    ChunkNotTerminated,
    /// A trailer section longer than [`MAX_TRAILERS`].
    TrailersTooLarge,
    /// More than [`MAX_RESPONSE`] bytes in all.
    ResponseTooLarge,
}

fn kib(n: usize) -> usize {
    n / 1024
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::Closed { during } => write!(f, "connection closed {during}"),
            Invalid::ShortBody { got, want } => {
                write!(f, "connection closed after {got} of {want} body bytes")
            }
            Invalid::Malformed { reason, start } => {
                write!(f, "malformed reply head ({reason}), first line {start:?}")
            }
            Invalid::HeadTooLarge => write!(f, "reply head larger than {} KiB", kib(MAX_HEAD)),
            Invalid::TooManyHeaders => write!(f, "more than {MAX_HEADERS} header fields"),
            Invalid::TooManyInformational => write!(
                f,
                "more than {MAX_INFORMATIONAL} informational (1xx) replies before the final one"
            ),
            Invalid::UnexpectedUpgrade => write!(f, "101 Switching Protocols, never asked for"),
            Invalid::BadContentLength(v) => write!(f, "bad Content-Length {v:?}"),
            Invalid::ConflictingContentLength => write!(f, "conflicting Content-Length headers"),
            Invalid::UnknownTransferCoding(v) => {
                write!(f, "cannot frame a body with Transfer-Encoding {v:?}")
            }
            Invalid::BodyTooLarge => write!(f, "body larger than {} KiB", kib(MAX_BODY)),
            Invalid::BadChunkSize(line) => write!(f, "bad chunk size line {line:?}"),
            Invalid::ChunkLineTooLong => write!(
                f,
                "chunk size line (with extensions) longer than {MAX_CHUNK_LINE} bytes"
            ),
            Invalid::ChunkNotTerminated => write!(f, "chunk data not followed by CRLF"),
            Invalid::TrailersTooLarge => {
                write!(f, "trailer section larger than {} KiB", kib(MAX_TRAILERS))
            }
            Invalid::ResponseTooLarge => write!(
                f,
                "reply larger than {} KiB in all (heads, body, chunk framing, trailers)",
                kib(MAX_RESPONSE)
            ),
        }
    }
}

impl std::error::Error for Invalid {}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Length { left: usize, want: usize },
    ChunkSize,
    ChunkData { left: usize },
    ChunkEnd,
    Trailers { seen: usize },
    UntilEof,
    Done,
}

/// What one call of [`ResponseParser::advance`] did.
#[derive(Debug, PartialEq, Eq)]
pub struct Step {
    /// Bytes at the front of the buffer that are parsed; the caller drops them.
    pub consumed: usize,
    /// The reply, once complete.
    pub response: Option<Response>,
}

/// Parses one response from bytes handed in as they arrive.
///
/// ```text
///   buf ──advance(buf, eof)──▶ Step { consumed, response }
///    ▲                               │
///    └── caller drops `consumed` bytes, appends what it reads next
/// ```
#[derive(Debug)]
pub struct ResponseParser {
    state: State,
    /// Bytes consumed by earlier calls.
    total: usize,
    informational: u32,
    status: u16,
    body: Vec<u8>,
}

impl Default for ResponseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl ResponseParser {
    /// A parser waiting for the first status line.
    pub fn new() -> ResponseParser {
        ResponseParser {
            state: State::Head,
            total: 0,
            informational: 0,
            status: 0,
            body: Vec::new(),
        }
    }

    /// Parses as much of `buf` (the bytes not consumed yet) as it can. With
    /// `eof` the connection has ended: the result is then a response or an
    /// error, never a wish for more.
    pub fn advance(&mut self, buf: &[u8], eof: bool) -> Result<Step, Invalid> {
        let mut pos = 0;
        loop {
            if self.total + pos > MAX_RESPONSE {
                return Err(Invalid::ResponseTooLarge);
            }
            let rest = &buf[pos..];
            let used = match self.state {
                State::Done => {
                    self.total += pos;
                    let body = std::mem::take(&mut self.body);
                    return Ok(Step {
                        consumed: pos,
                        response: Some(Response {
                            status: self.status,
                            body,
                        }),
                    });
                }
                State::Head => self.head(rest)?,
                State::Length { left, want } => {
                    let n = left.min(rest.len());
                    self.body.extend_from_slice(&rest[..n]);
                    self.state = match left - n {
                        0 => State::Done,
                        left => State::Length { left, want },
                    };
                    Some(n)
                }
                State::ChunkSize => self.chunk_size(rest)?,
                State::ChunkData { left } => {
                    let n = left.min(rest.len());
                    self.body.extend_from_slice(&rest[..n]);
                    self.state = match left - n {
                        0 => State::ChunkEnd,
                        left => State::ChunkData { left },
                    };
                    Some(n)
                }
                State::ChunkEnd => match rest {
                    [b'\r', b'\n', ..] => {
                        self.state = State::ChunkSize;
                        Some(2)
                    }
                    [b'\n', ..] => {
                        self.state = State::ChunkSize;
                        Some(1)
                    }
                    [] | [b'\r'] => None,
                    _ => return Err(Invalid::ChunkNotTerminated),
                },
                State::Trailers { seen } => match rest.iter().position(|&b| b == b'\n') {
                    Some(eol) => {
                        let seen = seen + eol + 1;
                        if seen > MAX_TRAILERS {
                            return Err(Invalid::TrailersTooLarge);
                        }
                        let line = &rest[..eol];
                        self.state = if line.is_empty() || line == b"\r" {
                            State::Done
                        } else {
                            State::Trailers { seen }
                        };
                        Some(eol + 1)
                    }
                    None if seen + rest.len() > MAX_TRAILERS => {
                        return Err(Invalid::TrailersTooLarge);
                    }
                    None => None,
                },
                State::UntilEof => {
                    if self.body.len() + rest.len() > MAX_BODY {
                        return Err(Invalid::BodyTooLarge);
                    }
                    self.body.extend_from_slice(rest);
                    if eof {
                        self.state = State::Done;
                    }
                    Some(rest.len())
                }
            };
            match used {
                // Zero bytes used with a state change (an empty body) goes round again.
                Some(n) if n > 0 || self.state == State::Done => pos += n,
                Some(_) | None if eof => return Err(self.closed(buf.is_empty())),
                Some(_) | None => {
                    self.total += pos;
                    return Ok(Step {
                        consumed: pos,
                        response: None,
                    });
                }
            }
        }
    }

    /// Why a connection that ended now leaves the reply incomplete; `nothing`
    /// when no byte of it arrived.
    fn closed(&self, nothing: bool) -> Invalid {
        match self.state {
            State::Head if nothing && self.total == 0 => Invalid::Closed {
                during: "without a reply",
            },
            State::Head => Invalid::Closed {
                during: "in the middle of the reply head",
            },
            State::Length { left, want } => Invalid::ShortBody {
                got: want - left,
                want,
            },
            State::Trailers { .. } => Invalid::Closed {
                during: "in the middle of the trailers",
            },
            _ => Invalid::Closed {
                during: "in the middle of the chunked body",
            },
        }
    }

    /// One head; `None` wants more bytes.
    fn head(&mut self, buf: &[u8]) -> Result<Option<usize>, Invalid> {
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut fields);
        let n = match resp.parse(buf) {
            Ok(httparse::Status::Complete(n)) if n > MAX_HEAD => {
                return Err(Invalid::HeadTooLarge);
            }
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                return Err(Invalid::HeadTooLarge);
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(Invalid::TooManyHeaders),
            Err(e) => {
                return Err(Invalid::Malformed {
                    reason: e.to_string(),
                    start: first_line(buf),
                });
            }
        };
        let status = resp.code.unwrap_or_default();
        if status == 101 {
            return Err(Invalid::UnexpectedUpgrade);
        }
        if (100..200).contains(&status) {
            self.informational += 1;
            if self.informational > MAX_INFORMATIONAL {
                return Err(Invalid::TooManyInformational);
            }
            return Ok(Some(n));
        }
        self.status = status;
        self.state = framing(status, resp.headers)?;
        Ok(Some(n))
    }

    /// One chunk-size line; `None` wants more bytes.
    fn chunk_size(&mut self, buf: &[u8]) -> Result<Option<usize>, Invalid> {
        match httparse::parse_chunk_size(buf) {
            Ok(httparse::Status::Complete((n, _))) if n > MAX_CHUNK_LINE => {
                Err(Invalid::ChunkLineTooLong)
            }
            Ok(httparse::Status::Complete((n, 0))) => {
                self.state = State::Trailers { seen: 0 };
                Ok(Some(n))
            }
            Ok(httparse::Status::Complete((n, size))) => {
                let size = usize::try_from(size).unwrap_or(usize::MAX);
                if size > MAX_BODY - self.body.len() {
                    return Err(Invalid::BodyTooLarge);
                }
                self.state = State::ChunkData { left: size };
                Ok(Some(n))
            }
            Ok(httparse::Status::Partial) if buf.len() > MAX_CHUNK_LINE => {
                Err(Invalid::ChunkLineTooLong)
            }
            Ok(httparse::Status::Partial) => Ok(None),
            Err(httparse::InvalidChunkSize) => Err(Invalid::BadChunkSize(first_line(buf))),
        }
    }
}

/// How the body after a final head of `status` is delimited.
fn framing(status: u16, fields: &[httparse::Header<'_>]) -> Result<State, Invalid> {
    if status == 204 || status == 304 {
        return Ok(State::Done);
    }
    let mut length: Option<usize> = None;
    let mut coding: Option<String> = None;
    for h in fields {
        let value = String::from_utf8_lossy(h.value);
        let value = value.trim();
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            coding = Some(value.to_owned());
        } else if h.name.eq_ignore_ascii_case("content-length") {
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Invalid::BadContentLength(truncate(value)));
            }
            // More digits than fit are certainly over the limit.
            let n = value.parse::<usize>().unwrap_or(usize::MAX);
            if length.is_some_and(|l| l != n) {
                return Err(Invalid::ConflictingContentLength);
            }
            length = Some(n);
        }
    }
    // Transfer-Encoding wins over Content-Length (RFC 9112 §6.3).
    if let Some(coding) = coding {
        let last = coding.rsplit(',').next().unwrap_or_default().trim();
        return match last.eq_ignore_ascii_case("chunked") {
            true => Ok(State::ChunkSize),
            false => Err(Invalid::UnknownTransferCoding(truncate(&coding))),
        };
    }
    match length {
        Some(n) if n > MAX_BODY => Err(Invalid::BodyTooLarge),
        Some(0) => Ok(State::Done),
        Some(n) => Ok(State::Length { left: n, want: n }),
        None => Ok(State::UntilEof),
    }
}

/// The first line of `buf`, shortened, for an error message.
fn first_line(buf: &[u8]) -> String {
    let end = buf.iter().position(|&b| b == b'\r' || b == b'\n');
    truncate(&String::from_utf8_lossy(
        &buf[..end.unwrap_or(buf.len()).min(240)],
    ))
}

fn truncate(s: &str) -> String {
    match s.char_indices().nth(60) {
        Some((i, _)) => s[..i].to_owned(),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `data` in pieces of `piece` bytes the way the transport does
    /// (dropping what is consumed); the result and the most bytes ever held
    /// unparsed.
    fn feed(data: &[u8], piece: usize, eof: bool) -> (Result<Response, Invalid>, usize) {
        let mut p = ResponseParser::new();
        let mut held: Vec<u8> = Vec::new();
        let mut most = 0;
        let mut chunks = data.chunks(piece.max(1)).peekable();
        loop {
            let last = chunks.peek().is_none();
            if let Some(c) = chunks.next() {
                held.extend_from_slice(c);
            }
            most = most.max(held.len());
            match p.advance(&held, eof && last) {
                Err(e) => return (Err(e), most),
                Ok(step) => {
                    held.drain(..step.consumed);
                    if let Some(r) = step.response {
                        return (Ok(r), most);
                    }
                    if last {
                        // A server that goes quiet: the transport's timeout ends it.
                        return (
                            Err(Invalid::Closed {
                                during: "(test: no more input)",
                            }),
                            most,
                        );
                    }
                }
            }
        }
    }

    fn parse(data: &[u8], eof: bool) -> Result<Response, Invalid> {
        let whole = feed(data, data.len(), eof).0;
        for piece in [1, 2, 7] {
            match (feed(data, piece, eof).0, &whole) {
                // A malformed head is refused as soon as it is seen: the excerpt
                // is what had arrived by then.
                (Err(e), Err(w)) => assert_eq!(
                    std::mem::discriminant(&e),
                    std::mem::discriminant(w),
                    "pieces of {piece}: {e}"
                ),
                (r, w) => assert_eq!(&r, w, "pieces of {piece}"),
            }
        }
        whole
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
        let r = parse(
            b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!((r.status, r.body.len()), (204, 0));
    }

    #[test]
    fn unframed_body_runs_to_eof() {
        let r = parse(b"HTTP/1.0 200 OK\n\nhello", true).unwrap();
        assert_eq!(r.body, b"hello");
    }

    #[test]
    fn short_body_is_named() {
        let e = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", true).unwrap_err();
        assert_eq!(e.to_string(), "connection closed after 3 of 10 body bytes");
    }

    #[test]
    fn garbage_is_named() {
        for (input, want) in [
            (
                &b"SSH-2.0-OpenSSH\r\n"[..],
                "malformed reply head (invalid HTTP version), first line \"SSH-2.0-OpenSSH\"",
            ),
            (
                b"HTTP/1.1 2000 OK\r\n\r\n",
                "malformed reply head (invalid response status)",
            ),
            (
                b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
                "malformed reply head (invalid header name)",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                "bad Content-Length \"-1\"",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                "conflicting",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                "bad chunk size line \"zz\"",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                "cannot frame a body with Transfer-Encoding \"gzip\"",
            ),
            (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "101"),
            (b"", "connection closed without a reply"),
            (
                b"HTTP/1.1 200 OK\r\n",
                "connection closed in the middle of the reply head",
            ),
        ] {
            let e = parse(input, true).unwrap_err().to_string();
            assert!(e.contains(want), "{input:?}: {e}");
        }
    }

    /// Every reply real tangd sent in the recordings of crates/proto/tests/data,
    /// whole and a byte at a time.
    #[test]
    fn real_tang_replies() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../proto/tests/data/tang-http");
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_none_or(|x| x != "resp") {
                continue;
            }
            let data = std::fs::read(&path).unwrap();
            let r = parse(&data, false).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let text = String::from_utf8_lossy(&data);
            let status: u16 = text[9..12].parse().unwrap();
            assert_eq!(r.status, status, "{}", path.display());
            assert!(data.ends_with(&r.body), "{}", path.display());
            n += 1;
        }
        assert!(n >= 5, "only {n} recordings");
    }

    /// The hand-written replies of tests/data/http (also the fuzz seeds).
    #[test]
    fn sample_replies() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/http");
        for (name, eof, status, body) in [
            (
                "continue-chunked-trailers.resp",
                false,
                200,
                &b"{\"a\"}"[..],
            ),
            ("unframed-until-close.resp", true, 200, b"{\"kty\":\"EC\"}"),
            ("no-content.resp", false, 204, b""),
            ("length-and-chunked.resp", false, 200, b"ok"),
        ] {
            let data = std::fs::read(format!("{dir}/{name}")).unwrap();
            let r = parse(&data, eof).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!((r.status, r.body.as_slice()), (status, body), "{name}");
        }
    }

    /// An endless stream of `unit` after `prefix`, fed as a hostile server
    /// would send it: where the parser stops, and how much it ever held.
    fn flood(prefix: &[u8], unit: &[u8]) -> (Invalid, usize, usize) {
        let mut p = ResponseParser::new();
        let mut held = prefix.to_vec();
        let mut sent = prefix.len();
        let mut most = 0;
        loop {
            // Well past every limit: the parser must have stopped long before.
            assert!(sent < 64 * MAX_RESPONSE, "no limit after {sent} bytes");
            // What one read of the transport brings.
            let target = held.len() + 4096;
            while held.len() < target {
                held.extend_from_slice(unit);
                sent += unit.len();
            }
            most = most.max(held.len() + p.body.capacity());
            match p.advance(&held, false) {
                Err(e) => return (e, sent, most),
                Ok(step) => {
                    assert!(step.response.is_none());
                    held.drain(..step.consumed);
                }
            }
        }
    }

    #[test]
    fn endless_replies_stop_at_their_limits() {
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        let ext = format!("1;x={}\r\nz\r\n", "e".repeat(1000));
        let long_ext = format!("1;x={}", "e".repeat(100));
        let trailer = format!("X-Pad: {}\r\n", "t".repeat(1000));
        let header = format!("X-Pad: {}\r\n", "h".repeat(1000));
        let big_chunks = format!("400\r\n{}\r\n", "z".repeat(1024));
        let last_chunk = [&chunked[..], b"0\r\n"].concat();
        let cases: [(&[u8], &[u8], Invalid); 9] = [
            (
                b"",
                b"HTTP/1.1 100 Continue\r\n\r\n",
                Invalid::TooManyInformational,
            ),
            (chunked, ext.as_bytes(), Invalid::ResponseTooLarge),
            (chunked, long_ext.as_bytes(), Invalid::ChunkLineTooLong),
            (chunked, b"1\r\nz\r\n", Invalid::ResponseTooLarge),
            (chunked, big_chunks.as_bytes(), Invalid::BodyTooLarge),
            (&last_chunk, trailer.as_bytes(), Invalid::TrailersTooLarge),
            (
                b"HTTP/1.1 200 OK\r\n",
                header.as_bytes(),
                Invalid::HeadTooLarge,
            ),
            (b"HTTP/1.1 200 OK\r\n", b"X: y\r\n", Invalid::TooManyHeaders),
            (b"HTTP/1.1 200 OK\r\n\r\n", b"body", Invalid::BodyTooLarge),
        ];
        for (prefix, unit, want) in cases {
            let (e, sent, most) = flood(prefix, unit);
            assert_eq!(e, want, "{:?}", String::from_utf8_lossy(unit));
            assert!(
                sent <= MAX_RESPONSE + 8192,
                "{want:?}: read {sent} bytes before stopping"
            );
            assert!(
                most <= MAX_BODY + MAX_HEAD + 8192,
                "{want:?}: held {most} bytes"
            );
        }
        // The informational flood stops after a handful of heads, not kilobytes.
        let (_, sent, _) = flood(b"", b"HTTP/1.1 100 Continue\r\n\r\n");
        assert!(sent < 8192, "{sent}");
    }

    #[test]
    fn body_limits_are_exact() {
        let at = format!("HTTP/1.1 200 OK\r\nContent-Length: {MAX_BODY}\r\n\r\n");
        let mut data = at.into_bytes();
        data.resize(data.len() + MAX_BODY, b'x');
        assert_eq!(feed(&data, 4096, false).0.unwrap().body.len(), MAX_BODY);
        let over = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        assert_eq!(parse(over.as_bytes(), false), Err(Invalid::BodyTooLarge));
        let huge = "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n";
        assert_eq!(parse(huge.as_bytes(), false), Err(Invalid::BodyTooLarge));
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

    /// Arbitrary bytes never panic the parser (a cheap stand-in for the
    /// cargo-fuzz target over the same function).
    #[test]
    fn random_input_never_panics() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let alphabet = b"HTTP/1.1 100 200 204 OK\r\n:0123456789abcdefContent-Length: Transfer-Encoding: chunked;\x00\xff";
        for _ in 0..20_000 {
            let len = (next() % 300) as usize;
            let buf: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let piece = (next() % 17) as usize + 1;
            let _ = feed(&buf, piece, next() % 2 == 0);
        }
    }
}
