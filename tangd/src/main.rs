//! The `tangd` command: parses arguments and hands over to the library.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use argh::FromArgs;
use tangd::{backend, keydir, keyset, listen, log, recover, reload, route, server, service};

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
    /// seconds a kept-alive connection may sit idle (default 30)
    #[argh(option, default = "30")]
    idle_timeout: u64,
    /// seconds a request may take to arrive, first byte to last (default 10)
    #[argh(option, default = "10")]
    request_timeout: u64,
    /// most connections open at once; more wait in the backlog (default 10000)
    #[argh(option, default = "10000")]
    max_connections: usize,
    /// threads serving requests, /rec's multiplication included (default: one per core)
    #[argh(option)]
    threads: Option<usize>,
    /// milliseconds between checks of the key directory (default 1000)
    #[argh(option, default = "1000")]
    reload_ms: u64,
}

/// Create a signing (ES512) and an exchange (ECMR) key in DIR.
#[derive(FromArgs)]
#[argh(subcommand, name = "keygen")]
struct Keygen {
    /// the key directory (created if missing)
    #[argh(positional)]
    dir: PathBuf,
}

/// Hide the active keys behind a freshly made pair.
#[derive(FromArgs)]
#[argh(subcommand, name = "rotate")]
struct Rotate {
    /// the key directory
    #[argh(positional)]
    dir: PathBuf,
}

/// Print the S256 thumbprints of the advertised signing keys, one per line.
#[derive(FromArgs)]
#[argh(subcommand, name = "show-keys")]
struct ShowKeys {
    /// the key directory
    #[argh(positional)]
    dir: PathBuf,
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
        Cmd::Keygen(k) => keygen(&k.dir),
        Cmd::Rotate(r) => rotate(&r.dir),
        Cmd::ShowKeys(s) => show_keys(&s.dir),
        Cmd::Recover(r) => recover_codes(&r),
    };
    if let Err(e) = result {
        eprintln!("tangd: {e:#}");
        std::process::exit(1);
    }
}

fn keygen(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let names =
        keydir::create_pair(dir).with_context(|| format!("writing keys to {}", dir.display()))?;
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

fn show_keys(dir: &Path) -> Result<()> {
    let scan = keydir::load(dir).with_context(|| format!("reading {}", dir.display()))?;
    for s in &scan.skipped {
        eprintln!("tangd: skipped {s}");
    }
    let set = keyset::KeySet::build(scan);
    let thps = set.signing_thumbprints();
    anyhow::ensure!(
        !thps.is_empty(),
        "{} has no active signing key",
        dir.display()
    );
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .max_blocking_threads(threads)
        .enable_io()
        .enable_time()
        .build()
        .context("starting the runtime")?;
    let (logger, flusher) = log::start();
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
    let set =
        reload::load_or_create(&dir, &log).with_context(|| format!("reading {}", dir.display()))?;
    log.line(set.describe());
    let store = Arc::new(keyset::KeyStore::new(set));
    reload::spawn(
        dir,
        store.clone(),
        Duration::from_millis(args.reload_ms.max(10)),
        log.clone(),
    );

    let (backend, backend_name) = backend::default();
    let tang = service::Tang::new(route::Router::new(args.endpoint.as_deref()), store, backend)?;
    let cfg = server::Config {
        idle_timeout: Duration::from_secs(args.idle_timeout),
        request_timeout: Duration::from_secs(args.request_timeout),
        max_connections: args.max_connections.max(1),
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
