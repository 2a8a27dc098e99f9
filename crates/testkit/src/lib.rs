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

/// True when every program is installed: a path that exists, or a bare name found on
/// `PATH`. Otherwise fails under CI (where scripts/setup must have installed them) and
/// prints a "skipped" line, naming the test, elsewhere.
pub fn have(programs: &[&str]) -> bool {
    let missing: Vec<&str> = programs.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return true;
    }
    let test = thread::current().name().unwrap_or("test").to_owned();
    let reason = format!("{test}: missing {} (run scripts/setup)", missing.join(", "));
    if std::env::var_os("CI").is_some() {
        panic!("{reason}");
    }
    println!("skipped: {reason}");
    false
}

fn installed(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).exists();
    }
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// The recordings of Debian's real tang, clevis, jose and cryptsetup that several crates'
/// tests read (`crates/proto/tests/data`; its README.md says how each file was made).
pub fn sample(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../proto/tests/data")
        .join(rel)
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

    /// The directory itself.
    pub fn dir(&self) -> &Path {
        &self.0
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

/// A free loopback port (bound and released), for a server started right after.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts connections on 127.0.0.1:`port`; false after `limit`.
pub fn wait_port(port: u16, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() >= end {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Lifts this process's descriptor limit to its hard limit, and asserts that
/// it now allows more than `need` open descriptors.
pub fn raise_nofile(need: u64) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current < lim.maximum {
        lim.current = lim.maximum;
        let _ = setrlimit(Resource::Nofile, lim);
    }
    let fds = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    assert!(
        fds > need,
        "this test needs {need} descriptors, the limit is {fds}"
    );
}

/// Real tangd, one process per connection behind socat, on 127.0.0.1. Killed on drop.
pub struct Tang {
    pub url: String,
    pub port: u16,
    pub db: PathBuf,
    child: Option<Child>,
    _scratch: Option<Scratch>,
}

impl Tang {
    /// Fresh keys from tangd-keygen, then listen.
    pub fn start() -> Tang {
        let scratch = Scratch::new("tang");
        let db = scratch.path("db");
        std::fs::create_dir(&db).unwrap();
        run_ok(Command::new(KEYGEN).arg(&db));
        let mut tang = Tang::serve(&db, free_port());
        tang._scratch = Some(scratch);
        tang
    }

    /// Serves the key directory `db` (left as it is on drop) on 127.0.0.1:`port`.
    pub fn serve(db: &Path, port: u16) -> Tang {
        let mut tang = Tang {
            url: format!("http://127.0.0.1:{port}"),
            port,
            db: db.to_owned(),
            child: None,
            _scratch: None,
        };
        tang.resume();
        tang
    }

    /// The clevis tang pin's configuration for this server: `{"url":"…"}`.
    pub fn config(&self) -> String {
        format!(r#"{{"url":"{}"}}"#, self.url)
    }

    /// The clevis sss pin's configuration for `t` of the tang servers `tangs`.
    pub fn sss_config(t: usize, tangs: &[Tang]) -> String {
        let pins: Vec<String> = tangs.iter().map(Tang::config).collect();
        format!(r#"{{"t":{t},"pins":{{"tang":[{}]}}}}"#, pins.join(","))
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
        assert!(
            wait_port(self.port, Duration::from_secs(10)),
            "tang on port {} did not come up",
            self.port
        );
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

/// The clevis tpm2 pin's configuration that seals to PCR 7 (Secure Boot state) of the
/// sha256 bank.
pub const PCR7: &str = r#"{"pcr_bank":"sha256","pcr_ids":"7"}"#;

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

    /// `clevis luks bind` with this TPM for its tpm2 pins, then [`Swtpm::flush_all`].
    pub fn clevis_luks_bind(&self, image: &Path, key: &Path, pin: &str, config: &str) {
        clevis_luks_bind_with(self.command("clevis"), image, key, &[], pin, config);
        self.flush_all();
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

/// Runs with `input` on stdin; never hangs longer than `limit`. The child
/// runs in a process group of its own, killed whole on timeout (so a
/// wrapper such as GNU time takes its program along).
pub fn run_with(cmd: &mut Command, input: &[u8], limit: Duration) -> Output {
    use std::os::unix::process::CommandExt;
    let mut child = cmd
        .process_group(0)
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
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(format!("-{}", child.id()))
                .status();
            let _ = child.kill();
            let _ = child.wait();
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
    run_ok_with(cmd, b"", Duration::from_secs(20))
}

/// [`run_with`], asserting success (the failure shows the command and its stderr).
#[track_caller]
pub fn run_ok_with(cmd: &mut Command, input: &[u8], limit: Duration) -> Output {
    let out = run_with(cmd, input, limit);
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A cheap key derivation for test keyslots (PBKDF2, 1,000 iterations), as
/// cryptsetup options, so that tests stay fast.
pub const CHEAP_PBKDF: [&str; 4] = ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"];

/// A 32 MiB image `name` in `s` made by `cryptsetup luksFormat -q ARGS` (e.g.
/// `--type luks2` and [`CHEAP_PBKDF`]), keyslot 0 opened by the key file
/// `NAME.key` that holds `pass`: (image, key file).
pub fn luks_format(s: &Scratch, name: &str, pass: &[u8], args: &[&str]) -> (PathBuf, PathBuf) {
    let img = s.path(name);
    let key = s.path(&format!("{name}.key"));
    std::fs::write(&key, pass).unwrap();
    std::fs::File::create(&img)
        .unwrap()
        .set_len(32 << 20)
        .unwrap();
    run_ok(
        Command::new("cryptsetup")
            .args(["luksFormat", "-q"])
            .args(args)
            .arg("--key-file")
            .arg(&key)
            .arg(&img),
    );
    (img, key)
}

/// Adds a keyslot to the LUKS image `image` opened by the key file `existing`,
/// for the key file `new`, with [`CHEAP_PBKDF`].
pub fn luks_add_key(image: &Path, existing: &Path, new: &Path) {
    luks_add_key_with(image, existing, new, &CHEAP_PBKDF);
}

/// [`luks_add_key`] with the new keyslot's key derivation given as cryptsetup options.
pub fn luks_add_key_with(image: &Path, existing: &Path, new: &Path, pbkdf: &[&str]) {
    run_ok(
        Command::new("cryptsetup")
            .args(["luksAddKey", "-q"])
            .args(pbkdf)
            .arg("--key-file")
            .arg(existing)
            .arg(image)
            .arg(new),
    );
}

/// `clevis luks bind -y -d IMAGE -k KEY [ARGS] PIN CONFIG`, asserting success, run by
/// `clevis` (a command for the clevis program, its environment set, as
/// [`Swtpm::command`] makes it).
pub fn clevis_luks_bind_with(
    mut clevis: Command,
    image: &Path,
    key: &Path,
    args: &[&str],
    pin: &str,
    config: &str,
) {
    run_ok(
        clevis
            .args(["luks", "bind", "-y", "-d"])
            .arg(image)
            .arg("-k")
            .arg(key)
            .args(args)
            .args([pin, config]),
    );
}

/// [`clevis_luks_bind_with`] by the plain `clevis`, with no further options.
pub fn clevis_luks_bind(image: &Path, key: &Path, pin: &str, config: &str) {
    clevis_luks_bind_with(Command::new("clevis"), image, key, &[], pin, config);
}

/// Where GNU time lives (Debian package `time`); [`run_measured`] needs it.
pub const GNU_TIME: &str = "/usr/bin/time";

/// Runs like [`run_with`] under GNU time and also returns the child's peak
/// resident set size in KiB (its `ru_maxrss`, as `wait4` reports it).
pub fn run_measured(cmd: &Command, input: &[u8], limit: Duration) -> (Output, u64) {
    let scratch = Scratch::new("rusage");
    let report = scratch.path("time");
    let mut timed = Command::new(GNU_TIME);
    timed
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&report)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => timed.env(k, v),
            None => timed.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        timed.current_dir(d);
    }
    let out = run_with(&mut timed, input, limit);
    let text = std::fs::read_to_string(&report).unwrap_or_default();
    // GNU time puts "Command exited with non-zero status N" before the figure.
    let kib = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("{GNU_TIME} wrote no peak RSS: {text:?}"));
    (out, kib)
}

/// What a [`Flood`] server sends after the request head, until the client
/// hangs up: replies that a parser without limits would buffer forever.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloodKind {
    /// `HTTP/1.1 100 Continue` heads, one after another.
    Continue,
    /// A chunked 200 reply of one-byte chunks, each with a 1000-byte extension.
    ChunkExtensions,
    /// A chunked 200 reply whose last chunk is followed by trailer lines.
    Trailers,
}

impl FloodKind {
    fn prefix(self) -> &'static [u8] {
        match self {
            FloodKind::Continue => b"",
            FloodKind::ChunkExtensions => {
                b"HTTP/1.1 200 OK\r\nContent-Type: application/jwk+json\r\nTransfer-Encoding: chunked\r\n\r\n"
            }
            FloodKind::Trailers => {
                b"HTTP/1.1 200 OK\r\nContent-Type: application/jwk+json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n0\r\n"
            }
        }
    }

    /// A few KiB of the endless part.
    fn unit(self) -> Vec<u8> {
        let one: Vec<u8> = match self {
            FloodKind::Continue => b"HTTP/1.1 100 Continue\r\n\r\n".to_vec(),
            FloodKind::ChunkExtensions => {
                format!("1;x={}\r\n{{\r\n", "e".repeat(1000)).into_bytes()
            }
            FloodKind::Trailers => format!("X-Pad: {}\r\n", "t".repeat(1000)).into_bytes(),
        };
        one.repeat(64 * 1024 / one.len())
    }
}

/// Opens once; waiters block until then or their timeout.
#[derive(Clone, Default)]
pub struct Gate(std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>);

impl Gate {
    pub fn open(&self) {
        *self.0.0.lock().unwrap() = true;
        self.0.1.notify_all();
    }

    /// True once open; false if `limit` passed first.
    pub fn wait(&self, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        let mut open = self.0.0.lock().unwrap();
        while !*open {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            open = self.0.1.wait_timeout(open, left).unwrap().0;
        }
        true
    }
}

/// A hostile Tang impostor on 127.0.0.1: reads each request head, then sends
/// a [`FloodKind`] reply that never ends, until the client hangs up (at most
/// 8 GiB or two minutes per connection). `hung_up` opens when a client closed
/// its connection in the middle of the flood.
pub struct Flood {
    pub url: String,
    pub hung_up: Gate,
    /// Bytes sent, over all connections.
    pub sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Flood {
    pub fn start(kind: FloodKind) -> Flood {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let hung_up = Gate::default();
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (gate, total) = (hung_up.clone(), sent.clone());
        // The listener lives as long as the test process; connections end on their own.
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let (gate, total) = (gate.clone(), total.clone());
                thread::spawn(move || {
                    if read_head(&mut s).is_none() {
                        return;
                    }
                    let unit = kind.unit();
                    let end = Instant::now() + Duration::from_secs(120);
                    let mut n = 0u64;
                    let mut ok = true;
                    for part in std::iter::once(kind.prefix()).chain(std::iter::repeat(&unit[..])) {
                        if !ok || n >= 8 << 30 || Instant::now() >= end {
                            break;
                        }
                        ok = s.write_all(part).is_ok();
                        n += part.len() as u64;
                        total.fetch_add(part.len() as u64, Ordering::Relaxed);
                    }
                    if !ok {
                        gate.open();
                    }
                });
            }
        });
        Flood { url, hung_up, sent }
    }
}

/// Reads up to the end of a request head (at most 64 KiB).
fn read_head(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    while !data.windows(4).any(|w| w == b"\r\n\r\n") {
        if data.len() > 64 * 1024 {
            return None;
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
    Some(data)
}

/// Forwards each connection to 127.0.0.1:`port` only once `gate` opens (or
/// after two minutes): a real server whose replies are held back until
/// something else has happened.
pub struct Relay {
    pub url: String,
}

impl Relay {
    pub fn start(port: u16, gate: Gate) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(client) = stream else { continue };
                let gate = gate.clone();
                thread::spawn(move || {
                    gate.wait(Duration::from_secs(120));
                    let Ok(server) = TcpStream::connect(("127.0.0.1", port)) else {
                        return;
                    };
                    let (Ok(mut c2), Ok(mut s2)) = (client.try_clone(), server.try_clone()) else {
                        return;
                    };
                    let up = thread::spawn(move || {
                        let _ = std::io::copy(&mut c2, &mut s2);
                        let _ = s2.shutdown(std::net::Shutdown::Write);
                    });
                    let (mut client, mut server) = (client, server);
                    let _ = std::io::copy(&mut server, &mut client);
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    let _ = up.join();
                });
            }
        });
        Relay { url }
    }
}

/// A throw-away PKI in `dir` made by the `test-ca` script beside this crate:
/// `ca.pem`, `other-ca.pem`, `server.pem` + `server.key` (subjectAltName `san`, e.g.
/// `IP:127.0.0.1`) and `server.pin` (`sha256:HEX` of the server certificate).
pub fn test_ca(dir: &Path, san: &str) {
    run_ok(
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("test-ca"))
            .arg(dir)
            .arg(san),
    );
}

/// TLS in front of a plain server on 127.0.0.1 (socat with `server.pem` and
/// `server.key` of `dir`, see [`test_ca`]). Killed on drop.
pub struct TlsFront {
    pub port: u16,
    child: Child,
}

impl TlsFront {
    /// Listens on a free port, forwarding each connection to 127.0.0.1:`backend`.
    pub fn start(dir: &Path, backend: u16) -> TlsFront {
        let port = free_port();
        let listen = format!(
            "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,verify=0,cert={},key={}",
            dir.join("server.pem").display(),
            dir.join("server.key").display()
        );
        let child = Command::new("socat")
            .args([listen, format!("TCP:127.0.0.1:{backend}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning socat");
        let front = TlsFront { port, child };
        assert!(
            wait_port(port, Duration::from_secs(10)),
            "TLS front on port {port} did not come up"
        );
        front
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's tangd behind a [`TlsFront`] whose certificate a throw-away CA made for
/// IP 127.0.0.1 (`pki` holds what [`test_ca`] writes), and `secret` encrypted to
/// it by `clevis encrypt tang`. `None` where the tools are missing (see [`have`]).
pub struct TlsTang {
    pub pki: Scratch,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The compact JWE clevis printed.
    pub jwe: Vec<u8>,
    _tang: Tang,
    _front: TlsFront,
}

impl TlsTang {
    pub fn start(secret: &[u8]) -> Option<TlsTang> {
        if !have_tools() || !have(&["openssl"]) {
            return None;
        }
        let tang = Tang::start();
        let pki = Scratch::new("pki");
        test_ca(pki.dir(), "IP:127.0.0.1");
        let front = TlsFront::start(pki.dir(), tang.port);
        let url = format!("https://127.0.0.1:{}", front.port);
        let adv = save_adv(&tang, &pki);
        let cfg = format!(r#"{{"url":"{url}","adv":"{}"}}"#, adv.display());
        let out = run_with(
            Command::new("clevis").args(["encrypt", "tang", &cfg]),
            secret,
            Duration::from_secs(20),
        );
        assert!(
            out.status.success(),
            "clevis encrypt tang: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(TlsTang {
            pki,
            url,
            jwe: out.stdout,
            _tang: tang,
            _front: front,
        })
    }
}

/// The advertisement of `tang` saved to a file (what clevis's `"adv"` config names).
pub fn save_adv(tang: &Tang, dir: &Scratch) -> PathBuf {
    // tang runs behind socat, one process per connection; under load a connection is
    // now and then reset before the reply, so a few attempts are allowed.
    let body = (0..5)
        .find_map(|attempt| {
            if attempt > 0 {
                thread::sleep(Duration::from_millis(100));
            }
            fetch_adv_once(tang.port)
                .map_err(|e| eprintln!("GET /adv from tang, attempt {attempt}: {e}"))
                .ok()
        })
        .expect("tang never answered GET /adv");
    let path = dir.path("adv.jws");
    std::fs::write(&path, body).unwrap();
    path
}

fn fetch_adv_once(port: u16) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.write_all(b"GET /adv HTTP/1.1\r\nHost: x\r\n\r\n")?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf)?;
        all.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&all).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| std::io::Error::other(format!("no Content-Length in {head:?}")))?;
            if body.len() >= len {
                return Ok(body[..len].to_owned());
            }
        }
        if n == 0 {
            return Err(std::io::Error::other("tang closed during /adv"));
        }
    }
}

/// A pseudo-terminal for tests of console prompts: the far end a person
/// would type on, and the path of the terminal end the program opens.
pub struct Pty {
    pub master: std::fs::File,
    pub path: PathBuf,
}

impl Pty {
    pub fn new() -> Pty {
        use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
        let m = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).expect("opening /dev/ptmx");
        grantpt(&m).unwrap();
        unlockpt(&m).unwrap();
        let name = ptsname(&m, Vec::new()).unwrap();
        Pty {
            master: std::fs::File::from(m),
            path: PathBuf::from(name.to_str().unwrap()),
        }
    }

    /// Reads what the program wrote until `want` shows up (at most 30 s);
    /// everything read.
    pub fn expect(&mut self, want: &str) -> String {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        let mut seen = Vec::new();
        let end = Instant::now() + Duration::from_secs(30);
        let tick = Timespec {
            tv_sec: 0,
            tv_nsec: 50_000_000,
        };
        while !String::from_utf8_lossy(&seen).contains(want) {
            assert!(
                Instant::now() < end,
                "no {want:?} on the terminal: {:?}",
                String::from_utf8_lossy(&seen)
            );
            let mut fds = [PollFd::new(&self.master, PollFlags::IN)];
            if poll(&mut fds, Some(&tick)).unwrap_or(0) == 0 {
                continue;
            }
            let mut buf = [0u8; 1024];
            match self.master.read(&mut buf) {
                Ok(n) if n > 0 => seen.extend_from_slice(&buf[..n]),
                _ => thread::sleep(Duration::from_millis(20)),
            }
        }
        String::from_utf8_lossy(&seen).into_owned()
    }

    /// Types `text` on the terminal.
    pub fn type_in(&mut self, text: &str) {
        self.master.write_all(text.as_bytes()).unwrap();
    }

    /// Whether the terminal end echoes what is typed (its settings are the
    /// ones a program changes).
    pub fn echo(&self) -> bool {
        let tty = std::fs::File::open(&self.path).unwrap();
        rustix::termios::tcgetattr(&tty)
            .unwrap()
            .local_modes
            .contains(rustix::termios::LocalModes::ECHO)
    }
}

impl Default for Pty {
    fn default() -> Pty {
        Pty::new()
    }
}

/// Decodes hex (test vectors, recorded packets); panics on anything else.
pub fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd length hex: {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Lower-case hex of `b`.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
