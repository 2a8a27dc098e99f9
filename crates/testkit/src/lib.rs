//! Fixtures for latchkey's integration tests: Debian's real tangd behind
//! socat on loopback ports, swtpm software TPMs, scratch directories, and child
//! processes that can never hang a test.
//!
//! ```text
//!   cli/tests, agent/tests, tangd/tests ──▶ latchkey-testkit ──▶ socat + /usr/libexec/tangd (127.0.0.1)
//!   crates/tpm2/tests, cli/tests ─────────┘                 └──▶ swtpm socket (127.0.0.1, a scratch state dir)
//! ```
#![forbid(unsafe_code)]

pub mod features;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

pub const TANGD: &str = "/usr/libexec/tangd";
pub const KEYGEN: &str = "/usr/libexec/tangd-keygen";
pub const ROTATE: &str = "/usr/libexec/tangd-rotate-keys";

/// True when clevis, jose, tangd and socat are installed. Otherwise fails under CI and
/// prints a "skipped" line elsewhere.
pub fn have_tools() -> bool {
    have(&[
        TANGD,
        KEYGEN,
        ROTATE,
        "/usr/bin/clevis",
        "/usr/bin/jose",
        "/usr/bin/socat",
    ])
}

/// True when every path exists. Otherwise fails under CI (where scripts/setup
/// must have installed them) and prints a "skipped" line elsewhere.
pub fn have(paths: &[&str]) -> bool {
    let missing: Vec<&str> = paths
        .iter()
        .copied()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let reason = format!("missing {} (run scripts/setup)", missing.join(", "));
    if std::env::var_os("CI").is_some() {
        panic!("{reason}");
    }
    println!("skipped: {reason}");
    false
}

/// A directory removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("latchkey-it-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A free loopback port (bound and released; socat takes it right after).
/// Two adjacent free ports on 127.0.0.1 (swtpm's data and control channel).
///
/// Taken below the kernel's ephemeral range: `bind(0)` hands out odd ports and
/// leaves the even ones to `connect()`, so after a load test the port above
/// a `free_port()` is usually held by a TIME_WAIT connection.
pub fn free_port_pair() -> u16 {
    let seed = std::process::id() as usize
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as usize);
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    for _ in 0..200 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // 20000..32000, even: below 32768, where Linux's ephemeral range starts.
        let port = (20_000 + (seed.wrapping_add(n.wrapping_mul(7919)) % 6_000) * 2) as u16;
        let a = TcpListener::bind(("127.0.0.1", port));
        let b = TcpListener::bind(("127.0.0.1", port + 1));
        if a.is_ok() && b.is_ok() {
            return port;
        }
    }
    panic!("no two adjacent free ports on 127.0.0.1 in 20000..32000");
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Real tangd, one process per connection behind socat, on 127.0.0.1. Killed on drop.
pub struct Tang {
    pub url: String,
    pub port: u16,
    pub db: PathBuf,
    child: Option<Child>,
    _scratch: Scratch,
}

impl Tang {
    /// Fresh keys from tangd-keygen, then listen.
    pub fn start() -> Tang {
        let scratch = Scratch::new("tang");
        let db = scratch.path("db");
        std::fs::create_dir(&db).unwrap();
        run_ok(Command::new(KEYGEN).arg(&db));
        let port = free_port();
        let mut tang = Tang {
            url: format!("http://127.0.0.1:{port}"),
            port,
            db,
            child: None,
            _scratch: scratch,
        };
        tang.resume();
        tang
    }

    /// Starts (again) listening on the same port with the same keys.
    pub fn resume(&mut self) {
        assert!(self.child.is_none());
        let listen = format!("TCP-LISTEN:{},bind=127.0.0.1,reuseaddr,fork", self.port);
        let exec = format!("EXEC:\"{TANGD} {}\"", self.db.display());
        let child = Command::new("socat")
            .args([listen, exec])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning socat");
        self.child = Some(child);
        let end = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < end,
                "tang on port {} did not come up",
                self.port
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops listening; connections are refused until `resume`.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// tangd-rotate-keys: current keys become hidden, new ones are made.
    pub fn rotate(&self) {
        run_ok(Command::new(ROTATE).arg("-d").arg(&self.db));
    }

    /// Files of the key database whose JWK allows `op` (e.g. "verify" for signing keys).
    pub fn key_files(&self, op: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.db).unwrap() {
            let p = e.unwrap().path();
            let text = std::fs::read_to_string(&p).unwrap();
            if p.extension().is_some_and(|x| x == "jwk") && text.contains(&format!("\"{op}\"")) {
                out.push(p);
            }
        }
        out
    }

    /// `jose jwk thp -a ALG` of the (first) active signing key.
    pub fn signing_thp(&self, alg: &str) -> String {
        let key = self
            .key_files("sign")
            .into_iter()
            .find(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .expect("an active signing key");
        let out = run_ok(
            Command::new("jose")
                .args(["jwk", "thp", "-a", alg, "-i"])
                .arg(key),
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }
}

impl Drop for Tang {
    fn drop(&mut self) {
        self.stop();
    }
}

/// swtpm and what the TPM tests drive it with: tpm2-tools and clevis's tpm2 pin.
pub const SWTPM_TOOLS: [&str; 5] = [
    "/usr/bin/swtpm",
    "/usr/bin/tpm2_createprimary",
    "/usr/bin/tpm2_pcrextend",
    "/usr/bin/clevis-encrypt-tpm2",
    "/usr/bin/clevis-decrypt-tpm2",
];

/// A software TPM 2.0 (swtpm's socket interface) on two consecutive loopback ports, its
/// state in a scratch directory. Killed on drop.
pub struct Swtpm {
    /// The data port; the control channel is `port + 1`.
    pub port: u16,
    /// `swtpm:host=127.0.0.1,port=PORT`, for `TPM2TOOLS_TCTI`.
    pub tcti: String,
    child: Child,
    _state: Scratch,
}

impl Swtpm {
    /// A TPM that is powered on and started (`--flags not-need-init,startup-clear`).
    pub fn start() -> Swtpm {
        Swtpm::spawn(&["--flags", "not-need-init,startup-clear"])
    }

    /// A TPM that still needs power-on (`CMD_INIT` on the control channel) and
    /// TPM2_Startup, as a machine's TPM before firmware ran.
    pub fn start_cold() -> Swtpm {
        Swtpm::spawn(&[])
    }

    fn spawn(extra: &[&str]) -> Swtpm {
        let state = Scratch::new("swtpm");
        for _ in 0..20 {
            let port = free_port_pair();
            let mut child = Command::new("swtpm")
                .args(["socket", "--tpm2", "--server"])
                .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
                .arg("--ctrl")
                .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
                .arg("--tpmstate")
                .arg(format!("dir={}", state.0.display()))
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawning swtpm");
            let end = Instant::now() + Duration::from_secs(10);
            loop {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Swtpm {
                        port,
                        tcti: format!("swtpm:host=127.0.0.1,port={port}"),
                        child,
                        _state: state,
                    };
                }
                // Lost the port to someone else: try another.
                if child.try_wait().unwrap().is_some() || Instant::now() > end {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                thread::sleep(Duration::from_millis(10));
            }
        }
        panic!("swtpm did not start");
    }

    /// A command with `TPM2TOOLS_TCTI` pointing at this TPM (for tpm2-tools and clevis).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("TPM2TOOLS_TCTI", &self.tcti);
        c
    }

    /// `tpm2_pcrextend PCR:BANK=DIGEST` with a digest of 0x01 bytes.
    pub fn extend_pcr(&self, bank: &str, pcr: u8) {
        let size = match bank {
            "sha1" => 20,
            "sha256" => 32,
            "sha384" => 48,
            _ => 64,
        };
        let digest = "01".repeat(size);
        run_ok(
            self.command("tpm2_pcrextend")
                .arg(format!("{pcr}:{bank}={digest}")),
        );
    }

    /// Flushes every transient object and loaded session (`tpm2_flushcontext -t -l`):
    /// clevis 19 leaves a policy session loaded after each PCR-bound encrypt.
    pub fn flush_all(&self) {
        run_ok(self.command("tpm2_flushcontext").arg("-t"));
        run_ok(self.command("tpm2_flushcontext").arg("-l"));
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs with `input` on stdin; never hangs longer than `limit`.
pub fn run_with(cmd: &mut Command, input: &[u8], limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_t = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_t = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let end = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        thread::sleep(Duration::from_millis(5));
    };
    writer.join().unwrap();
    Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

/// Runs `cmd` with empty stdin and asserts it succeeds.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = run_with(cmd, b"", Duration::from_secs(20));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
