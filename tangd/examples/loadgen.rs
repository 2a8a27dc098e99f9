//! A tiny HTTP load generator for bench/tangd: one new TCP connection per
//! request, as clevis (curl) makes them. Bounded by a duration and a request
//! count; prints one `key=value` line.
//!
//! ```text
//! loadgen --addr 127.0.0.1:8080 --path /adv [--body FILE] [--concurrency 4] [--seconds 5] [--max 200000]
//! ```
#![forbid(unsafe_code)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argh::FromArgs;

/// One-connection-per-request HTTP load generator.
#[derive(FromArgs)]
struct Args {
    /// server address
    #[argh(option)]
    addr: SocketAddr,
    /// request path
    #[argh(option)]
    path: String,
    /// POST this file's bytes (otherwise GET)
    #[argh(option)]
    body: Option<String>,
    /// parallel clients (default 4)
    #[argh(option, default = "4")]
    concurrency: usize,
    /// how long to run (default 5)
    #[argh(option, default = "5")]
    seconds: u64,
    /// stop after this many requests (default 200000)
    #[argh(option, default = "200000")]
    max: u64,
}

fn main() {
    let args: Args = argh::from_env();
    let request = Arc::new(build_request(&args));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let issued = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..args.concurrency.max(1))
        .map(|_| {
            let (request, issued, errors, latencies) = (
                request.clone(),
                issued.clone(),
                errors.clone(),
                latencies.clone(),
            );
            let (addr, max) = (args.addr, args.max);
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                while Instant::now() < deadline && issued.fetch_add(1, Ordering::Relaxed) < max {
                    let t = Instant::now();
                    match one(addr, &request) {
                        Ok(200) => mine.push(t.elapsed().as_micros() as u64),
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                latencies.lock().unwrap().extend(mine);
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut l = std::mem::take(&mut *latencies.lock().unwrap());
    l.sort_unstable();
    let pct = |p: f64| {
        if l.is_empty() {
            0
        } else {
            l[((l.len() - 1) as f64 * p) as usize]
        }
    };
    println!(
        "requests={} errors={} seconds={:.2} rps={:.0} p50_us={} p99_us={}",
        l.len(),
        errors.load(Ordering::Relaxed),
        elapsed,
        l.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99)
    );
}

fn build_request(args: &Args) -> Vec<u8> {
    match &args.body {
        None => format!("GET {} HTTP/1.1\r\nHost: {}\r\n\r\n", args.path, args.addr).into_bytes(),
        Some(file) => {
            let body = std::fs::read(file).expect("reading --body");
            let mut r = format!(
                "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/jwk+json\r\nContent-Length: {}\r\n\r\n",
                args.path,
                args.addr,
                body.len()
            )
            .into_bytes();
            r.extend_from_slice(&body);
            r
        }
    }
}

/// Connect, send, read one response framed by Content-Length, close (the
/// client closes: tang never does).
fn one(addr: SocketAddr, request: &[u8]) -> std::io::Result<u16> {
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(request)?;
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
                return Ok(status);
            }
        }
    }
}
