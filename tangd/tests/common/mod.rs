//! Shared by the integration tests: start our tangd on a free loopback port,
//! talk raw HTTP to it, copy the sample key directories. Scratch directories,
//! tool detection, ports and limits come from latchkey-testkit.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// Each test file uses some of these.
#[allow(unused_imports)]
pub use latchkey_testkit::{
    Scratch, free_port, free_port_pair, have, raise_nofile, run_with, sample, wait_port,
};

pub const TANGD: &str = env!("CARGO_BIN_EXE_tangd");

/// The keys of the sample `tang-db/tang-db`: its exchange key's and signing key's
/// S256 thumbprints.
pub const ECMR_KID: &str = "Hk_gGBVF5MTLuXfJvfnQYraEqI_SWT33ykzPmp6Ejrw";
pub const SIG_THP: &str = "45kux_IdAIuGDUtrzdUDqwGgVAZfWVjknmI2sJh7TrA";

/// Copies a sample key directory into a scratch one, hidden files included.
pub fn copy_keys(name: &str) -> Scratch {
    let dir = Scratch::new(name);
    for e in std::fs::read_dir(sample(&format!("tang-db/{name}"))).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.path(&e.file_name().to_string_lossy())).unwrap();
    }
    dir
}

/// Our tangd, killed on drop. Its stderr is collected for assertions.
pub struct Tangd {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: Arc<Mutex<String>>,
}

impl Tangd {
    /// Our tangd serving a copy of the sample key directory `tang-db` (which it
    /// keeps while the copy lives).
    pub fn sample() -> (Scratch, Tangd) {
        let keys = copy_keys("tang-db");
        let tangd = Tangd::start(keys.dir(), &[]);
        (keys, tangd)
    }

    pub fn start(keys: &Path, extra: &[&str]) -> Tangd {
        let mut args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--keys",
            keys.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        Tangd::start_args(&args)
    }

    /// `tangd serve` of `keys` on 127.0.0.1:`port`.
    pub fn start_on(port: u16, keys: &Path) -> Tangd {
        Tangd::start_args(&[
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--keys",
            keys.to_str().unwrap(),
        ])
    }

    pub fn start_args(args: &[&str]) -> Tangd {
        Tangd::start_program(TANGD, args)
    }

    /// Starts `program ARGS` (tangd, or something that runs it, like setpriv).
    pub fn start_program(program: &str, args: &[&str]) -> Tangd {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting tangd");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        // Drain stderr for the whole life of the server: a full pipe would stall it.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("listening on ") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr.parse::<SocketAddr>().unwrap());
                    }
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!("tangd did not start listening: {}", log.lock().unwrap());
            }
        };
        Tangd { child, addr, log }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log has a line containing `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Tangd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
    /// The exact bytes of the response.
    pub raw: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads one response framed by Content-Length; `None` if the server closed first.
pub fn read_response(s: &mut TcpStream) -> Option<Resp> {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => raw.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8(raw.clone()).unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut r = Resp {
        status,
        head,
        body: Vec::new(),
        raw,
    };
    if status == 100 {
        return read_response(s);
    }
    let len: usize = r.header("content-length").map_or(0, |v| v.parse().unwrap());
    r.body = vec![0; len];
    s.read_exact(&mut r.body).ok()?;
    r.raw.extend_from_slice(&r.body);
    Some(r)
}

/// One request on a fresh connection.
pub fn request(addr: SocketAddr, raw: &[u8]) -> Option<Resp> {
    let mut s = connect(addr);
    s.write_all(raw).unwrap();
    read_response(&mut s)
}

pub fn get(addr: SocketAddr, path: &str) -> Resp {
    request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
    .expect("no response")
}

pub fn post(addr: SocketAddr, path: &str, body: &[u8]) -> Resp {
    let mut raw = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    request(addr, &raw).expect("no response")
}

/// True once the server has closed the connection (EOF), within `timeout`.
pub fn closed_within(s: &mut TcpStream, timeout: Duration) -> bool {
    s.set_read_timeout(Some(timeout)).unwrap();
    let mut b = [0u8; 256];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

pub fn shutdown_write(s: &TcpStream) {
    let _ = s.shutdown(Shutdown::Write);
}

/// Runs `tangd ARGS...` and returns its stdout; panics if it fails.
pub fn tangd_cmd(args: &[&str]) -> String {
    let out = Command::new(TANGD).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "tangd {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A scratch key directory with a fresh pair from our `tangd keygen`.
pub fn our_keys(tag: &str) -> Scratch {
    let dir = Scratch::new(tag);
    tangd_cmd(&["keygen", dir.dir().to_str().unwrap()]);
    dir
}

/// A scratch key directory with a fresh pair from Debian's tangd-keygen.
pub fn debian_keys(tag: &str) -> Scratch {
    let dir = Scratch::new(tag);
    latchkey_testkit::run_ok(Command::new(latchkey_testkit::KEYGEN).arg(dir.dir()));
    dir
}

/// Debian's tangd-rotate-keys on a key directory.
pub fn debian_rotate(dir: &Path) {
    latchkey_testkit::run_ok(Command::new(latchkey_testkit::ROTATE).arg("-d").arg(dir));
}

/// `GET /adv` answers 200 within two seconds.
pub fn adv_answered_quickly(addr: SocketAddr) {
    let t = Instant::now();
    assert_eq!(get(addr, "/adv").status, 200);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "served in {:?}",
        t.elapsed()
    );
}

/// The names in a directory, sorted.
pub fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// S256 thumbprints of the keys in a verified `/adv`, sorted.
pub fn adv_keys(addr: SocketAddr) -> Vec<String> {
    let r = get(addr, "/adv");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    thumbprints(&latchkey_proto::jws::verify_advertisement(&r.body).unwrap())
}

/// S256 thumbprints of the keys of an advertisement, sorted.
pub fn thumbprints(adv: &latchkey_proto::jws::Advertisement) -> Vec<String> {
    let mut v: Vec<String> = adv
        .keys
        .iter()
        .map(|k| k.thumbprint(latchkey_proto::jwk::ThpHash::S256))
        .collect();
    v.sort();
    v
}

/// S256 thumbprints of the active (advertised) keys of `dir`, sorted, from
/// the contents of its `*.jwk` files (those that are files and keys).
pub fn active_thumbprints(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = files(dir)
        .iter()
        .filter(|n| n.ends_with(".jwk") && !n.starts_with('.'))
        .filter(|n| std::fs::metadata(dir.join(n)).is_ok_and(|m| m.is_file()))
        .filter_map(|n| latchkey_proto::jwk::Jwk::parse(&std::fs::read(dir.join(n)).unwrap()).ok())
        .map(|jwk| jwk.thumbprint(latchkey_proto::jwk::ThpHash::S256))
        .collect();
    v.sort();
    v
}

/// Number of signatures of a JWS (flattened: 1).
pub fn signatures(body: &[u8]) -> usize {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    v["signatures"].as_array().map_or(1, Vec::len)
}
