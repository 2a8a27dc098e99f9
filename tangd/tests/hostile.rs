//! Hostile clients and hostile key directories: each limit fed what breaks
//! it, measuring memory and time, not just the answer.

mod common;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;

/// A kilobyte figure from /proc/PID/status (`VmHWM`, `VmLck`, ...).
fn status_kb(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// A connection to `server` from `source` (another loopback address).
fn connect_from(source: &str, server: SocketAddr) -> std::io::Result<TcpStream> {
    use rustix::net::{AddressFamily, SocketType, bind, connect, socket};
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None)?;
    bind(&fd, &SocketAddr::new(source.parse().unwrap(), 0))?;
    connect(&fd, &server)?;
    Ok(TcpStream::from(fd))
}

/// Blank lines before a request count against the head limit and are
/// dropped as they arrive: four clients streaming CRLF for ten seconds
/// neither grow the server nor keep others from being served.
#[test]
fn blank_lines_take_no_memory() {
    let (_keys, tangd) = Tangd::sample();
    let addr = tangd.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let streamers: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let chunk = b"\r\n".repeat(32 * 1024);
                let mut sent = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    let Ok(mut s) = TcpStream::connect(addr) else {
                        continue;
                    };
                    while !stop.load(Ordering::SeqCst) {
                        match s.write_all(&chunk) {
                            Ok(()) => sent += chunk.len(),
                            Err(_) => break,
                        }
                    }
                }
                sent
            })
        })
        .collect();
    let start = Instant::now();
    let mut served = 0;
    while start.elapsed() < Duration::from_secs(10) {
        adv_answered_quickly(addr);
        served += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::SeqCst);
    let sent: usize = streamers.into_iter().map(|t| t.join().unwrap()).sum();
    let peak = status_kb(tangd.child.id(), "VmHWM");
    println!("{sent} bytes of CRLF sent; {served} requests served meanwhile; peak RSS {peak} kB");
    assert!(peak < 32 * 1024, "peak RSS {peak} kB");
    assert!(sent > 1 << 20, "only {sent} bytes streamed");
}

/// Ten thousand connections from one address that never send a byte: the
/// address is held to its cap (its oldest idle connections are closed for
/// its new ones), so a client from another address is answered at once.
#[test]
fn silent_connections_from_one_address_leave_room_for_others() {
    let crowd = 10_000;
    raise_nofile(crowd + 500);
    let (_keys, tangd) = Tangd::sample();
    let mut silent = Vec::with_capacity(crowd as usize);
    for i in 0..crowd {
        match connect_from("127.0.0.2", tangd.addr) {
            Ok(s) => silent.push(s),
            Err(e) => panic!("connection {i} from 127.0.0.2: {e}"),
        }
    }
    let t = Instant::now();
    let r = get(tangd.addr, "/adv");
    let took = t.elapsed();
    println!("/adv from 127.0.0.1 beside {crowd} silent connections from 127.0.0.2: {took:?}");
    assert_eq!(r.status, 200);
    assert!(took < Duration::from_secs(2), "answered after {took:?}");
    // The newest silent connection is still open: the oldest made room.
    let mut newest = silent.pop().unwrap();
    newest
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut b = [0u8; 1];
    assert!(
        matches!(newest.read(&mut b), Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut)
    );
    let mut oldest = silent.remove(0);
    assert!(
        closed_within(&mut oldest, Duration::from_secs(5)),
        "the oldest was not closed"
    );
}

/// A full server closes the connection idle the longest for a new client,
/// instead of leaving it in the backlog.
#[test]
fn a_full_server_makes_room_by_closing_the_oldest_idle_connection() {
    let keys = copy_keys("tang-db");
    let tangd = Tangd::start(
        keys.dir(),
        &[
            "--max-connections",
            "50",
            "--max-connections-per-address",
            "1000",
        ],
    );
    let mut silent: Vec<TcpStream> = (0..50)
        .map(|_| connect_from("127.0.0.2", tangd.addr).unwrap())
        .collect();
    // Wait until all fifty are admitted, so the oldest is well defined.
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    assert_eq!(get(tangd.addr, "/adv").status, 200);
    println!("/adv on a full server: {:?}", t.elapsed());
    assert!(t.elapsed() < Duration::from_secs(2));
    assert!(closed_within(&mut silent[0], Duration::from_secs(5)));
}

/// A new connection gets a short while to say something; a kept-alive one
/// between requests gets the idle timeout.
#[test]
fn a_silent_new_connection_is_closed_after_the_first_byte_timeout() {
    let keys = copy_keys("tang-db");
    let tangd = Tangd::start(
        keys.dir(),
        &["--first-byte-timeout", "1", "--idle-timeout", "30"],
    );
    let mut silent = connect(tangd.addr);
    let t = Instant::now();
    assert!(closed_within(&mut silent, Duration::from_secs(10)));
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "closed after {:?}",
        t.elapsed()
    );
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "closed after {:?}",
        t.elapsed()
    );

    let mut kept = connect(tangd.addr);
    kept.write_all(b"GET /adv HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut kept).unwrap().status, 200);
    std::thread::sleep(Duration::from_millis(1500));
    kept.write_all(b"GET /adv HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(
        read_response(&mut kept).unwrap().status,
        200,
        "kept alive past the first-byte timeout"
    );
}

/// `*.jwk` names that are not key files: a FIFO (which blocked the reload
/// forever), a device, a directory, a file too large. Each is skipped with a
/// log line, the keys are served, and changes are still seen.
#[test]
fn key_names_that_are_not_key_files_are_skipped() {
    let keys = copy_keys("tang-db");
    let d = keys.dir();
    mkfifo(&d.join("fifo.jwk"));
    std::os::unix::fs::symlink("/dev/null", d.join("device.jwk")).unwrap();
    std::os::unix::fs::symlink(d.join("fifo.jwk"), d.join(".link-to-fifo.jwk")).unwrap();
    std::fs::create_dir(d.join("dir.jwk")).unwrap();
    std::fs::write(d.join("big.jwk"), vec![b' '; 70 * 1024]).unwrap();

    let t = Instant::now();
    let tangd = Tangd::start(d, &[]);
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!(adv_keys(tangd.addr), active_thumbprints(d));
    for (name, why) in [
        ("fifo.jwk", "a FIFO"),
        (".link-to-fifo.jwk", "a FIFO"),
        ("device.jwk", "a device"),
        ("dir.jwk", "a directory"),
        ("big.jwk", "larger than 65536 bytes"),
    ] {
        let line = format!("{name}: {why}");
        assert!(
            tangd.wait_log(&line, Duration::from_secs(2)),
            "no {line:?} in\n{}",
            tangd.log()
        );
    }

    // A second FIFO while serving, then a rotation: seen by the next request.
    mkfifo(&d.join("another.jwk"));
    tangd_cmd(&["rotate", d.to_str().unwrap()]);
    assert_eq!(adv_keys(tangd.addr), active_thumbprints(d));
}

/// Keys anyone may read are served, with a warning.
#[test]
fn keys_readable_by_everyone_are_warned_about() {
    use std::os::unix::fs::PermissionsExt as _;
    let keys = copy_keys("tang-db");
    let path = keys.dir().join(format!("{SIG_THP}.jwk"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let exc = keys.dir().join(format!("{ECMR_KID}.jwk"));
    std::fs::set_permissions(&exc, std::fs::Permissions::from_mode(0o400)).unwrap();
    let tangd = Tangd::start(keys.dir(), &[]);
    assert_eq!(adv_keys(tangd.addr).len(), 2);
    assert!(
        tangd.wait_log(
            &format!("{SIG_THP}.jwk is readable by everyone"),
            Duration::from_secs(2)
        ),
        "{}",
        tangd.log()
    );
    assert!(
        !tangd.log().contains(&format!("{ECMR_KID}.jwk is")),
        "{}",
        tangd.log()
    );
}

/// No core dumps, and memory locked where the limit allows it (unlimited, or
/// CAP_IPC_LOCK, which root usually has).
#[test]
fn core_dumps_are_off_and_memory_is_locked() {
    let (_keys, tangd) = Tangd::sample();
    let pid = tangd.child.id();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert_eq!(core.split_whitespace().nth(4), Some("0"), "{core}");
    assert_eq!(core.split_whitespace().nth(5), Some("0"), "{core}");
    assert!(
        tangd.wait_log(
            "hardening: no core dumps, not dumpable",
            Duration::from_secs(2)
        ),
        "{}",
        tangd.log()
    );
    let can_lock = rustix::process::getrlimit(rustix::process::Resource::Memlock)
        .maximum
        .is_none()
        || rustix::thread::capabilities(None).is_ok_and(|c| {
            c.effective
                .contains(rustix::thread::CapabilitySet::IPC_LOCK)
        });
    if can_lock {
        assert!(tangd.log().contains(", memory locked"), "{}", tangd.log());
        assert_eq!(get(tangd.addr, "/adv").status, 200);
        assert!(status_kb(pid, "VmLck") > 0);
    } else {
        assert!(
            tangd.log().contains("memory NOT locked (RLIMIT_MEMLOCK is"),
            "{}",
            tangd.log()
        );
        println!("skipped: locking memory needs CAP_IPC_LOCK or an unlimited RLIMIT_MEMLOCK");
    }
}

/// Not dumpable: another process of the same user cannot read its memory
/// or environment. Checked by running tangd as nobody, which needs root.
#[test]
fn tangd_is_not_dumpable_as_root() {
    if !rustix::process::geteuid().is_root() {
        if std::env::var_os("CI").is_some() {
            panic!("tangd_is_not_dumpable_as_root needs root under CI");
        }
        println!("skipped: tangd_is_not_dumpable_as_root needs root");
        return;
    }
    if !have(&["setpriv"]) {
        return;
    }
    let keys = copy_keys("tang-db");
    // nobody must be able to read the keys and the directory.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(keys.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let args = [
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        TANGD,
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--keys",
        keys.dir().to_str().unwrap(),
    ];
    let tangd = Tangd::start_program("setpriv", &args);
    let pid = tangd.child.id();
    assert_eq!(get(tangd.addr, "/adv").status, 200);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status.lines().any(|l| l.starts_with("Uid:\t65534")),
        "{status}"
    );
    // /proc/PID of a process that is not dumpable belongs to root.
    use std::os::unix::fs::MetadataExt as _;
    let owner = std::fs::metadata(format!("/proc/{pid}/environ"))
        .unwrap()
        .uid();
    assert_eq!(
        owner, 0,
        "/proc/{pid}/environ belongs to {owner}: tangd is dumpable"
    );
}

/// A FIFO at `path`.
fn mkfifo(path: &std::path::Path) {
    let mode = rustix::fs::Mode::from_raw_mode(0o600);
    rustix::fs::mknodat(rustix::fs::CWD, path, rustix::fs::FileType::Fifo, mode, 0).unwrap();
}
