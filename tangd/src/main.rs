//! The `tangd` command: parses arguments and hands over to the library.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use argh::FromArgs;
use tangd::{
    backend, harden, keydir, keyset, listen, log, recover, route, server, service, store, watch,
};

/// An asynchronous Tang server, compatible with tang's key directory.
#[derive(FromArgs)]
struct Args {
    #[argh(subcommand)]
    cmd: Cmd,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Cmd {
    Serve(Serve),
    Keygen(Keygen),
    Rotate(Rotate),
    Retire(Retire),
    ShowKeys(ShowKeys),
    Recover(Recover),
}

/// Serve /adv and /rec from a key directory.
#[derive(FromArgs)]
#[argh(subcommand, name = "serve")]
struct Serve {
    /// address to listen on, e.g. 0.0.0.0:80 or [::]:80 (repeatable); without
    /// it, the sockets systemd passes (LISTEN_FDS) are used
    #[argh(option)]
    listen: Vec<SocketAddr>,
    /// the key directory (tang's: /var/lib/tang or /var/db/tang)
    #[argh(option)]
    keys: PathBuf,
    /// serve under this path prefix (/PREFIX/adv, /PREFIX/rec/...), like tang's -e
    #[argh(option)]
    endpoint: Option<String>,
    /// seconds a new connection may take to send its first byte (default 5)
    #[argh(option, default = "5")]
    first_byte_timeout: u64,
    /// seconds a kept-alive connection may sit idle (default 30)
    #[argh(option, default = "30")]
    idle_timeout: u64,
    /// seconds a request may take to arrive, first byte to last (default 10)
    #[argh(option, default = "10")]
    request_timeout: u64,
    /// most connections open at once; when full, the connection idle the
    /// longest is closed for a new one, or it waits in the backlog (default 10000)
    #[argh(option, default = "10000")]
    max_connections: usize,
    /// most connections open at once from one address, or IPv6 /64; at it, the
    /// address's connection idle the longest is closed for a new one (default 512)
    #[argh(option, default = "512")]
    max_connections_per_address: usize,
    /// threads serving requests, /rec's multiplication included (default: one per core)
    #[argh(option)]
    threads: Option<usize>,
    /// never create keys, not even when the directory has no active key (tang
    /// creates a pair then)
    #[argh(switch)]
    no_create: bool,
    /// how changes to the key directory are noticed: auto (inotify, or stat on
    /// a network file system) or stat (the files' metadata, on every request)
    #[argh(option, default = "String::from(\"auto\")")]
    watch: String,
}

/// Create a signing (ES512) and an exchange (ECMR) key in DIR, named by their
/// thumbprints or, as tangd-keygen's DIR SIG EXC, SIG.jwk and EXC.jwk.
#[derive(FromArgs)]
#[argh(subcommand, name = "keygen")]
struct Keygen {
    /// the key directory (created if missing)
    #[argh(positional)]
    dir: PathBuf,
    /// file names (without .jwk) of the signing and the exchange key
    #[argh(positional)]
    names: Vec<String>,
}

/// Hide the active keys behind a freshly made pair.
#[derive(FromArgs)]
#[argh(subcommand, name = "rotate")]
struct Rotate {
    /// the key directory
    #[argh(positional)]
    dir: PathBuf,
}

/// Delete hidden (rotated) keys, once every client has been bound to the new
/// ones: all of them, those hidden at least DAYS days ago, or the keys named
/// by thumbprint. Advertised keys are never deleted.
#[derive(FromArgs)]
#[argh(subcommand, name = "retire")]
struct Retire {
    /// the key directory
    #[argh(positional)]
    dir: PathBuf,
    /// only keys hidden at least this many days ago (a decimal number)
    #[argh(option)]
    older_than: Option<f64>,
    /// thumbprints (S1, S224, S256, S384 or S512) of the hidden keys to delete
    #[argh(positional)]
    kids: Vec<String>,
}

/// Print the S256 thumbprints of the advertised signing keys, one per line:
/// of a key directory, or of a running server's advertisement (--url, as
/// tang-show-keys does).
#[derive(FromArgs)]
#[argh(subcommand, name = "show-keys")]
struct ShowKeys {
    /// the key directory
    #[argh(positional)]
    dir: Option<PathBuf>,
    /// a Tang server, e.g. http://localhost:80: its advertisement, verified
    #[argh(option)]
    url: Option<String>,
}

/// Answer offline recovery codes (read on stdin) from the key directory, hidden keys
/// included, without a network; prints the answer codes.
#[derive(FromArgs)]
#[argh(subcommand, name = "recover")]
struct Recover {
    /// the key directory
    #[argh(option)]
    keys: PathBuf,
    /// the full key id (thumbprint) to use, when the code's key id cannot be resolved
    #[argh(option)]
    kid: Option<String>,
}

fn main() {
    let args: Args = argh::from_env();
    let result = match args.cmd {
        Cmd::Serve(s) => serve(s),
        Cmd::Keygen(k) => keygen(&k.dir, &k.names),
        Cmd::Rotate(r) => rotate(&r.dir),
        Cmd::Retire(r) => retire(r),
        Cmd::ShowKeys(s) => show_keys(s),
        Cmd::Recover(r) => recover_codes(&r),
    };
    if let Err(e) = result {
        eprintln!("tangd: {e:#}");
        std::process::exit(1);
    }
}

fn keygen(dir: &Path, names: &[String]) -> Result<()> {
    let names = match names {
        [] => None,
        [sig, exc] => Some([sig.as_str(), exc.as_str()]),
        _ => anyhow::bail!("give no file names or two (the signing key's and the exchange key's)"),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let names = keydir::create_pair(dir, names)
        .with_context(|| format!("writing keys to {}", dir.display()))?;
    for n in names {
        println!("{}", dir.join(n).display());
    }
    Ok(())
}

fn rotate(dir: &Path) -> Result<()> {
    let r = keydir::rotate(dir).with_context(|| format!("rotating keys in {}", dir.display()))?;
    for n in &r.created {
        println!("created {}", dir.join(n).display());
    }
    for n in &r.hidden {
        println!("hidden  {}", dir.join(n).display());
    }
    Ok(())
}

fn retire(args: Retire) -> Result<()> {
    let which = match (args.older_than, args.kids.is_empty()) {
        (None, true) => keydir::Retire::AllHidden,
        (None, false) => keydir::Retire::Kids(&args.kids),
        (Some(days), true) => {
            let age = Duration::try_from_secs_f64(days * 86_400.0)
                .ok()
                .with_context(|| {
                    format!("--older-than {days}: give a number of days, 0 or more")
                })?;
            keydir::Retire::OlderThan(age)
        }
        (Some(_), false) => anyhow::bail!("give --older-than or thumbprints, not both"),
    };
    let dir = &args.dir;
    let r = keydir::retire(dir, which)
        .with_context(|| format!("retiring keys in {}", dir.display()))?;
    for n in &r.deleted {
        println!("deleted {}", dir.join(n).display());
    }
    for n in &r.kept {
        println!("kept    {n}");
    }
    if r.deleted.is_empty() {
        println!("nothing to retire in {}", dir.display());
    }
    Ok(())
}

fn show_keys(args: ShowKeys) -> Result<()> {
    let thps = match (args.dir, args.url) {
        (Some(dir), None) => {
            let scan = keydir::load(&dir).with_context(|| format!("reading {}", dir.display()))?;
            for s in &scan.skipped {
                eprintln!("tangd: skipped {s}");
            }
            let mut set = keyset::KeySet::from_scan(scan);
            anyhow::ensure!(
                set.shape() == keyset::Shape::Complete,
                "{} has no active signing key and exchange key",
                dir.display()
            );
            set.advertise_own(None);
            set.signing_thumbprints()
        }
        (None, Some(url)) => {
            let body = latchkey_client::fetch_adv(&url, None, &latchkey_client::Options::default())
                .with_context(|| format!("fetching the advertisement of {url}"))?;
            let adv = latchkey_proto::jws::verify_advertisement(&body)
                .with_context(|| format!("the advertisement of {url}"))?;
            adv.signing_keys()
                .iter()
                .map(|k| k.thumbprint(latchkey_proto::jwk::ThpHash::S256))
                .collect()
        }
        _ => anyhow::bail!("give either a key directory or --url"),
    };
    for t in thps {
        println!("{t}");
    }
    Ok(())
}

fn recover_codes(args: &Recover) -> Result<()> {
    use std::io::Read as _;
    let mut input = String::new();
    std::io::stdin()
        .take(1 << 16)
        .read_to_string(&mut input)
        .context("reading the request codes on stdin")?;
    let (backend, _) = backend::default();
    let out = recover::answer(&args.keys, args.kid.as_deref(), &input, backend.as_ref())?;
    for s in &out.skipped {
        eprintln!("tangd: skipped {s}");
    }
    print!("{}", out.answers);
    for e in &out.errors {
        eprintln!("tangd recover: {e}");
    }
    anyhow::ensure!(out.errors.is_empty(), "not every code was answered");
    Ok(())
}

fn serve(args: Serve) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = args.threads.unwrap_or(cores).max(1);
    raise_fd_limit();
    // Before any thread exists, so that every one starts locked and undumpable.
    let hardening = harden::apply();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .max_blocking_threads(threads)
        .enable_io()
        .enable_time()
        .build()
        .context("starting the runtime")?;
    let (logger, flusher) = log::start();
    logger.line(hardening);
    let result = runtime.block_on(serve_async(args, threads, logger));
    // Connections still open after the drain timeout are dropped here.
    runtime.shutdown_timeout(Duration::from_millis(100));
    flusher.finish();
    result
}

async fn serve_async(args: Serve, threads: usize, log: log::Logger) -> Result<()> {
    let dir = args.keys.clone();
    anyhow::ensure!(dir.is_dir(), "{} is not a directory", dir.display());
    let listeners = listen::all(&args.listen)?;
    let (watch, how) = match args.watch.as_str() {
        "auto" => watch::Watch::new(&dir),
        "stat" => (
            watch::Watch::polling(&dir),
            format!(
                "keys: checking {} on every request (--watch stat)",
                dir.display()
            ),
        ),
        other => anyhow::bail!("--watch {other:?}: use auto or stat"),
    };
    log.line(how);
    let store = store::KeyStore::open(&dir, watch, !args.no_create, log.clone());

    let (backend, backend_name) = backend::default();
    let tang = service::Tang::new(route::Router::new(args.endpoint.as_deref()), store, backend)?;
    let cfg = server::Config {
        first_byte_timeout: Duration::from_secs(args.first_byte_timeout),
        idle_timeout: Duration::from_secs(args.idle_timeout),
        request_timeout: Duration::from_secs(args.request_timeout),
        max_connections: args.max_connections.max(1),
        max_per_address: args.max_connections_per_address.max(1),
        ..server::Config::default()
    };
    for l in &listeners {
        if let Ok(a) = l.local_addr() {
            log.line(format!("listening on {a}"));
        }
    }
    log.line(format!(
        "tangd {}: {threads} threads, {backend_name} backend",
        env!("CARGO_PKG_VERSION")
    ));

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let signals = log.clone();
    tokio::spawn(async move {
        let name = wait_for_signal().await;
        signals.line(format!("{name}: shutting down"));
        let _ = stop_tx.send(true);
    });
    server::run(listeners, Arc::new(tang), cfg, log.clone(), stop_rx).await;
    log.line("stopped".into());
    Ok(())
}

async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        unreachable!()
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

/// Thousands of idle clients need thousands of descriptors: lift the soft
/// limit to the hard one.
fn raise_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current < lim.maximum {
        lim.current = lim.maximum;
        let _ = setrlimit(Resource::Nofile, lim);
    }
}
