//! Connections: accept, read requests within limits and deadlines, answer,
//! keep alive or close, and drain on shutdown.
//!
//! ```text
//! listener ──accept──▶ connection task ──Head+body──▶ Handler ──Response──▶ socket
//!     ▲ conns (max, per address,       ▲ first-byte / idle / request / write deadlines
//!       oldest idle closed when full)
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::{Instant, timeout_at};

use crate::conns::{self, Admit, Conns, Slot};
use crate::http::{self, Framing, Head, HeadScan, Limits, Persist, Reject};
use crate::log::Logger;

/// A response body: precomputed and shared (advertisements) or made per request.
#[derive(Debug, Clone)]
pub enum Body {
    Empty,
    Shared(Arc<[u8]>),
    Owned(Vec<u8>),
}

impl Body {
    fn bytes(&self) -> &[u8] {
        match self {
            Body::Empty => &[],
            Body::Shared(b) => b,
            Body::Owned(b) => b,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub content_type: Option<&'static str>,
    pub body: Body,
}

impl Response {
    pub fn status(status: u16) -> Response {
        Response {
            status,
            content_type: None,
            body: Body::Empty,
        }
    }
}

/// The application: turns one complete request into a response.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        method: &str,
        target: &str,
        body: Vec<u8>,
    ) -> impl Future<Output = Response> + Send;
}

#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub limits: Limits,
    /// How long a new connection may sit before its first byte.
    pub first_byte_timeout: Duration,
    /// How long a kept-alive connection may sit without starting a request.
    pub idle_timeout: Duration,
    /// From the first byte of a request to its last; slow senders are cut off here.
    pub request_timeout: Duration,
    /// How long a response may take to be written out.
    pub write_timeout: Duration,
    pub max_connections: usize,
    /// Connections open at once from one address (an IPv6 /64).
    pub max_per_address: usize,
    /// How long shutdown waits for requests in progress.
    pub drain_timeout: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            limits: Limits::default(),
            first_byte_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_per_address: 512,
            drain_timeout: Duration::from_secs(5),
        }
    }
}

/// Serves every listener until `shutdown` turns true, then waits (up to the
/// drain timeout) for requests in progress.
pub async fn run<H: Handler>(
    listeners: Vec<TcpListener>,
    handler: Arc<H>,
    cfg: Config,
    log: Logger,
    shutdown: watch::Receiver<bool>,
) {
    let conns = Arc::new(Conns::new(conns::Limits {
        max: cfg.max_connections,
        per_address: cfg.max_per_address,
    }));
    let mut loops = Vec::new();
    for listener in listeners {
        let ctx = Ctx {
            handler: handler.clone(),
            cfg,
            log: log.clone(),
            shutdown: shutdown.clone(),
            conns: conns.clone(),
        };
        loops.push(tokio::spawn(accept_loop(listener, ctx)));
    }
    for l in loops {
        let _ = l.await;
    }
    let drained = tokio::time::timeout(cfg.drain_timeout, async {
        while !conns.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    if drained.await.is_err() {
        log.line(format!(
            "shutdown: {} connections still busy after {:?}; closing them",
            conns.len(),
            cfg.drain_timeout
        ));
    }
}

struct Ctx<H> {
    handler: Arc<H>,
    cfg: Config,
    log: Logger,
    shutdown: watch::Receiver<bool>,
    conns: Arc<Conns>,
}

impl<H> Clone for Ctx<H> {
    fn clone(&self) -> Self {
        Ctx {
            handler: self.handler.clone(),
            cfg: self.cfg,
            log: self.log.clone(),
            shutdown: self.shutdown.clone(),
            conns: self.conns.clone(),
        }
    }
}

async fn accept_loop<H: Handler>(listener: TcpListener, mut ctx: Ctx<H>) {
    loop {
        // Full, with every connection busy: new clients wait in the kernel's backlog.
        tokio::select! {
            () = ctx.conns.wait_for_room() => {}
            _ = ctx.shutdown.wait_for(|&s| s) => return,
        }
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = ctx.shutdown.wait_for(|&s| s) => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let slot = match ctx.conns.admit(peer.ip()) {
                    Admit::Yes { slot, .. } => slot,
                    // Dropping the stream closes it.
                    Admit::AddressFull => continue,
                };
                let _ = stream.set_nodelay(true);
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    connection(stream, peer, &slot, &ctx).await;
                    ctx.conns.release(&slot);
                });
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning on the error.
                ctx.log.line(format!("accept: {e}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

const LINGER_TIME: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 1 << 20;

/// Why reading a request stopped without one.
enum Stop {
    /// Clean end: the peer closed, or the server shuts down between requests.
    Quiet,
    /// The request took too long; logged, not answered.
    Timeout,
    /// Answer with this status and close.
    Reject(Reject),
}

struct Conn<'a, H, S> {
    stream: S,
    peer: SocketAddr,
    buf: Vec<u8>,
    out: Vec<u8>,
    ctx: &'a Ctx<H>,
    slot: &'a Slot,
    /// Requests answered on this connection so far.
    served: u64,
}

/// A connection's byte stream: a TCP socket, or anything else in tests.
pub trait Stream: AsyncRead + AsyncWrite + Unpin {}
impl<S: AsyncRead + AsyncWrite + Unpin> Stream for S {}

/// Serves one open connection of any byte stream until it ends, with the
/// request loop, limits and deadlines the listeners use (for tests and
/// fuzzing: requests split across many reads on one connection).
pub async fn serve_stream<H: Handler, S: Stream>(
    stream: S,
    peer: SocketAddr,
    handler: Arc<H>,
    cfg: Config,
    log: Logger,
) {
    let (_keep_running, shutdown) = watch::channel(false);
    let conns = Arc::new(Conns::new(conns::Limits {
        max: 1,
        per_address: 1,
    }));
    let Admit::Yes { slot, .. } = conns.admit(peer.ip()) else {
        unreachable!("an empty table admits one connection");
    };
    let ctx = Ctx {
        handler,
        cfg,
        log,
        shutdown,
        conns: conns.clone(),
    };
    connection(stream, peer, &slot, &ctx).await;
    conns.release(&slot);
}

async fn connection<H: Handler, S: Stream>(stream: S, peer: SocketAddr, slot: &Slot, ctx: &Ctx<H>) {
    let mut c = Conn {
        stream,
        peer,
        buf: Vec::with_capacity(4096),
        out: Vec::with_capacity(2048),
        ctx,
        slot,
        served: 0,
    };
    loop {
        let (head, body, started) = match c.read_request().await {
            Ok(r) => r,
            Err(Stop::Quiet) => return,
            Err(Stop::Timeout) => {
                c.log("-", "-", 408, Instant::now());
                return;
            }
            Err(Stop::Reject(r)) => {
                let started = Instant::now();
                if c.send(&Response::status(r.status()), Persist::Close)
                    .await
                    .is_ok()
                {
                    c.linger().await;
                }
                c.log("-", "-", r.status(), started);
                return;
            }
        };
        let resp = if head.target.len() >= c.ctx.cfg.limits.url {
            Response::status(414)
        } else {
            c.ctx.handler.handle(&head.method, &head.target, body).await
        };
        let closing = !head.keep_alive || *c.ctx.shutdown.borrow();
        let persist = match (closing, head.minor) {
            (true, _) => Persist::Close,
            (false, 0) => Persist::KeepAlive,
            (false, _) => Persist::Default,
        };
        let sent = c.send(&resp, persist).await;
        c.log(&head.method, &head.target, resp.status, started);
        if sent.is_err() || closing {
            return;
        }
        c.served += 1;
        c.ctx.conns.idle(c.slot);
    }
}

impl<H: Handler, S: Stream> Conn<'_, H, S> {
    /// Reads one request: head, then body. The clock for the request deadline
    /// starts at its first byte; before that only the first-byte deadline (a
    /// new connection) or the idle deadline (a kept-alive one) applies, and
    /// the connection may be closed to make room for others.
    async fn read_request(&mut self) -> Result<(Head, Vec<u8>, Instant), Stop> {
        let cfg = self.ctx.cfg;
        let wait = if self.served == 0 {
            cfg.first_byte_timeout.min(cfg.idle_timeout)
        } else {
            cfg.idle_timeout
        };
        let idle_deadline = Instant::now() + wait;
        let mut started = None;
        let mut scan = HeadScan::default();
        let (head, n) = loop {
            if !self.buf.is_empty() && started.is_none() {
                if !self.slot.busy() {
                    return Err(Stop::Quiet);
                }
                started = Some(Instant::now());
            }
            // Blank lines before a request are dropped as they come, so they
            // take no memory, and counted against the head limit.
            let blank = scan.drop_blank(&self.buf);
            self.buf.drain(..blank);
            if scan.too_blank(&cfg.limits) {
                return Err(Stop::Reject(Reject::Malformed));
            }
            if !self.buf.is_empty() && scan.ready(&self.buf, &cfg.limits) {
                if let Some(parsed) =
                    http::parse_head(&self.buf, &scan.limits(&cfg.limits)).map_err(Stop::Reject)?
                {
                    break parsed;
                }
            }
            let deadline = started.map_or(idle_deadline, |s| s + cfg.request_timeout);
            let idle = started.is_none();
            let mut shutdown = self.ctx.shutdown.clone();
            let read = tokio::select! {
                r = timeout_at(deadline, read_more(&mut self.stream, &mut self.buf)) => r,
                _ = shutdown.wait_for(|&s| s), if idle => return Err(Stop::Quiet),
                () = self.slot.evicted(), if idle => return Err(Stop::Quiet),
            };
            match read {
                Err(_) if idle => return Err(Stop::Quiet),
                Err(_) => return Err(Stop::Timeout),
                // The peer stopped sending in the middle of a head: what it
                // sent is judged as it would have been had it come in one
                // read (a malformed head is a 400 however it was split).
                Ok(Ok(0)) if !self.buf.is_empty() => {
                    return match http::parse_head(&self.buf, &scan.limits(&cfg.limits)) {
                        Err(r) => Err(Stop::Reject(r)),
                        Ok(_) => Err(Stop::Quiet),
                    };
                }
                Ok(Ok(0)) | Ok(Err(_)) => return Err(Stop::Quiet),
                Ok(Ok(_)) => {}
            }
        };
        let started = started.unwrap_or_else(Instant::now);
        let deadline = started + cfg.request_timeout;
        self.buf.drain(..n);

        let body = match head.framing {
            Framing::Length(len) => {
                if head.expect_continue && len > self.buf.len() {
                    self.continue_100(deadline).await?;
                }
                while self.buf.len() < len {
                    self.read_until(deadline).await?;
                }
                let rest = self.buf.split_off(len);
                std::mem::replace(&mut self.buf, rest)
            }
            Framing::Chunked => {
                if head.expect_continue && self.buf.is_empty() {
                    self.continue_100(deadline).await?;
                }
                let mut chunked = http::Chunked::default();
                loop {
                    let (n, done) = chunked.feed(&self.buf, &cfg.limits).map_err(Stop::Reject)?;
                    self.buf.drain(..n);
                    if done {
                        break chunked.body;
                    }
                    self.read_until(deadline).await?;
                }
            }
        };
        Ok((head, body, started))
    }

    async fn read_until(&mut self, deadline: Instant) -> Result<(), Stop> {
        match timeout_at(deadline, read_more(&mut self.stream, &mut self.buf)).await {
            Err(_) => Err(Stop::Timeout),
            Ok(Ok(0)) | Ok(Err(_)) => Err(Stop::Quiet),
            Ok(Ok(_)) => Ok(()),
        }
    }

    async fn continue_100(&mut self, deadline: Instant) -> Result<(), Stop> {
        match timeout_at(
            deadline,
            self.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n"),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Stop::Quiet),
            Err(_) => Err(Stop::Timeout),
        }
    }

    async fn send(&mut self, resp: &Response, persist: Persist) -> Result<(), ()> {
        self.out.clear();
        http::write_response(
            &mut self.out,
            resp.status,
            resp.content_type,
            resp.body.bytes(),
            persist,
        );
        let deadline = Instant::now() + self.ctx.cfg.write_timeout;
        match timeout_at(deadline, self.stream.write_all(&self.out)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        }
    }

    /// Closing with unread input makes the kernel send RST, which can destroy
    /// the error response before the client reads it (a 413 sent while the
    /// body is still coming). So: FIN first, then drain briefly.
    async fn linger(&mut self) {
        let _ = self.stream.shutdown().await;
        let deadline = Instant::now() + LINGER_TIME;
        let mut drained = 0;
        let mut scratch = [0u8; 8192];
        while drained < LINGER_BYTES {
            match timeout_at(deadline, self.stream.read(&mut scratch)).await {
                Ok(Ok(n)) if n > 0 => drained += n,
                _ => return,
            }
        }
    }

    /// One line per request: peer, method, target, status, microseconds.
    /// Never the body, which may carry key material.
    fn log(&self, method: &str, target: &str, status: u16, started: Instant) {
        let us = started.elapsed().as_micros();
        let target = truncate(target, 200);
        self.ctx
            .log
            .line(format!("{} {method} {target} {status} {us}us", self.peer));
    }
}

async fn read_more<S: Stream>(stream: &mut S, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    buf.reserve(4096);
    stream.read_buf(buf).await
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
