//! `latchkey-agent unlock`: the boot-time flow, as a sequence of named steps.
//!
//! ```text
//!   cmdline + crypttab ─▶ volumes ─▶ race (local key ∥ bindings ∥ console) ─▶ dm-crypt
//!                                          │             │
//!                                   boot partition    network, on first need, retried to the deadline
//! ```
//! Every volume runs in its own thread; the agent exits 0 when all of them
//! are open, else prints per volume what was tried and why it failed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use latchkey_luks::Limits;
use latchkey_sys::dm::DevId;

use crate::cmdline::{self, Config, VolumeOptions};
use crate::console::Console;
use crate::engine::{self, Ctx, LocalKey, NetGate};
use crate::error::{Attempt, Error};
use crate::kmsg_log::Log;
use crate::tpm::BootTpm;
use crate::volume::{self, Volume, activate, boot_key, crypttab};
use crate::{initrd_config, net, netdev};
use latchkey_client::time::{Deadline, XorShift};

/// What the command line of `latchkey-agent unlock` says.
#[derive(Debug, Default)]
pub struct Args {
    /// Everything but activation; print the plan and the outcome.
    pub dry_run: bool,
    /// Read the kernel command line from this file instead of the recorded
    /// options (`/etc/latchkey/initrd.conf`) and /proc/cmdline.
    pub cmdline: Option<PathBuf>,
    /// The crypttab to read instead of the initrd's (`crypttab::INITRD_PATHS`).
    pub crypttab: Option<PathBuf>,
    /// LUKS images or devices to use instead of scanning block devices.
    pub devices: Vec<PathBuf>,
    /// Never ask on the console.
    pub no_prompt: bool,
    /// Ask on this terminal instead of /dev/console (also in a dry run).
    pub console: Option<PathBuf>,
    /// Late boot: the `_netdev` volumes of the system's crypttab, over the
    /// network the system configured ([`netdev`]).
    pub netdev: bool,
}

fn open_image(path: &PathBuf, cfg: &VolumeOptions) -> Result<Volume, Error> {
    let header = volume::read_header(path)?;
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let uuid = header.uuid().to_owned();
    Ok(Volume::new(
        cfg.name_for(&uuid),
        path.clone(),
        DevId { major: 0, minor: 0 },
        len / 512,
        header,
        cfg.options_for(&uuid),
    ))
}

/// One line per volume found and one per binding: on a serial console each
/// line costs the boot its time to print.
fn describe_plan(log: &Log, vol: &Volume) {
    log.info(&format!(
        "found {}: LUKS{} on {}",
        vol.label(),
        vol.header.version().number(),
        vol.path.display()
    ));
    for b in vol.header.clevis_bindings() {
        let pins = match &b.jwe {
            Ok(j) => latchkey_proto::pin::describe(&j.header),
            Err(e) => format!("unreadable JWE: {e}"),
        };
        log.info(&format!("  {b}: {pins}"));
    }
}

/// What could not be opened, by volume, with what was tried.
type Failures = Vec<(String, Vec<Attempt>)>;

/// Runs the flow; the process exit code.
pub fn run(args: &Args) -> i32 {
    let start = Instant::now();
    // Before any secret exists, so none is ever swapped out.
    let locked = latchkey_sys::mount::lock_memory();
    let (cfg, log) = read_options(args, start);
    if let Err(e) = locked {
        log.debug(&format!("mlockall: {e}"));
    }
    if !cfg.volumes.enabled {
        log.info("rd.luks=0: nothing to do");
        return 0;
    }
    let deadline = Deadline::after(start, cfg.timing.deadline);
    let mut failed = Failures::new();
    let vols = find_volumes(args, &cfg, start, deadline, &log, &mut failed);
    if vols.is_empty() && failed.is_empty() {
        log.info("no LUKS volume with a clevis binding found; nothing to do");
        return 0;
    }
    let vols = not_yet_open(vols, &log, &mut failed);
    for v in &vols {
        describe_plan(&log, v);
    }
    let ctx = Arc::new(race_context(args, &cfg, start, deadline, log.clone()));
    failed.extend(open_all(vols, &ctx, args.dry_run));
    // No prompt outlives the agent: the terminal goes back as it was found.
    if let Some(console) = &ctx.console {
        console.close();
    }
    report(&log, &failed, args.dry_run)
}

/// The options (recorded at initrd build time, then the kernel's, which
/// win) and the log they configure; parse warnings are logged.
fn read_options(args: &Args, start: Instant) -> (Config, Arc<Log>) {
    let line = match &args.cmdline {
        Some(p) => latchkey_sys::file::read_text(p, initrd_config::MAX_TEXT).unwrap_or_default(),
        None => format!(
            "{} {}",
            initrd_config::read(),
            latchkey_sys::proc::read_cmdline().unwrap_or_default()
        ),
    };
    let (mut cfg, warnings) = cmdline::parse(&line);
    if args.netdev {
        netdev::restrict(&mut cfg);
    }
    let log = Arc::new(if args.dry_run {
        Log::stderr(start, cfg.debug)
    } else {
        Log::open(start, cfg.debug)
    });
    for w in &warnings {
        log.warn(w);
    }
    (cfg, log)
}

/// The volumes to open: the given images, else those the command line and
/// crypttab name, else every clevis-bound LUKS device.
fn find_volumes(
    args: &Args,
    cfg: &Config,
    start: Instant,
    deadline: Deadline,
    log: &Log,
    failed: &mut Failures,
) -> Vec<Volume> {
    let (tab, warns) = match &args.crypttab {
        Some(p) => crypttab::load_files(std::slice::from_ref(p)),
        None if args.netdev => crypttab::load_files(&[PathBuf::from(netdev::CRYPTTAB)]),
        None => crypttab::load(Path::new("/")),
    };
    for w in warns {
        log.warn(&w);
    }
    let tab = netdev::select(tab, args.netdev);
    if !args.devices.is_empty() {
        let mut v = Vec::new();
        for p in &args.devices {
            match open_image(p, &cfg.volumes) {
                Ok(vol) => v.push(vol),
                Err(e) => failed.push((p.display().to_string(), vec![e.into()])),
            }
        }
        return v;
    }
    let wanted = volume::wanted(&cfg.volumes, &tab);
    if wanted.is_empty() && args.netdev {
        // Late boot opens what crypttab marks, never whatever it finds.
        return Vec::new();
    }
    if wanted.is_empty() {
        // Nothing named: every clevis-bound LUKS device, once they had a moment to appear.
        return volume::discover(
            &cfg.volumes,
            Deadline::after(start, Duration::from_secs(2)).min(deadline),
        );
    }
    let (found, missing) = volume::locate(&wanted, deadline);
    failed.extend(missing.into_iter().map(|(n, why)| (n, vec![why.into()])));
    found
}

/// Drops a device given twice and a volume that is already mapped.
fn not_yet_open(vols: Vec<Volume>, log: &Log, failed: &mut Failures) -> Vec<Volume> {
    let (vols, twice) = volume::distinct(vols);
    failed.extend(
        twice
            .into_iter()
            .map(|(name, why)| (name, vec![why.into()])),
    );
    // Without device-mapper (a dry run on a build host) there is nothing to find.
    let mappings = latchkey_sys::proc::dm_mappings().unwrap_or_default();
    vols.into_iter()
        .filter(|v| match volume::existing(v, &mappings) {
            Ok(false) => true,
            Ok(true) => {
                log.info(&format!("{} is already open", v.label()));
                false
            }
            Err(e) => {
                failed.push((v.label(), vec![e.into()]));
                false
            }
        })
        .collect()
}

/// What every volume's race shares: memory limits, the local key, the
/// network (brought up on first need) and the console.
fn race_context(
    args: &Args,
    cfg: &Config,
    start: Instant,
    deadline: Deadline,
    log: Arc<Log>,
) -> Ctx {
    let limits = Limits::for_this_machine();

    let key_log = log.clone();
    let key_cfg = cfg.boot_key.clone();
    let local_key = LocalKey::new(Box::new(move || {
        boot_key::load(&key_cfg, deadline, &key_log)
    }));
    // A key file in the initrd itself is read at once, so that no race waits on
    // a thread for a key that is not there; one on a boot partition when a race
    // first asks (the partition may take its time to appear).
    if cfg.boot_key.partition.is_none() {
        let _ = local_key.get();
    }

    let net_log = log.clone();
    let net_cfg = cfg.network.clone();
    let dry_run = args.dry_run;
    // Late boot runs once the system's network is online: never ours to configure.
    let own_network = !args.netdev;
    let bring_up = Box::new(move || {
        if dry_run || !own_network {
            return Ok(());
        }
        let (plan, warns) = net::plan::plan(&net_cfg);
        for w in warns {
            net_log.warn(&w);
        }
        let seed = start.elapsed().subsec_nanos() | 1;
        let r = net::bring_up(
            &plan,
            &net::Options::default(),
            deadline,
            &mut XorShift::new(seed),
            &net_log,
        );
        r.map(|_| net_log.phase("network up"))
    });
    let console = match &args.console {
        _ if args.no_prompt => None,
        Some(path) => Console::open_path(path),
        None if args.dry_run => None,
        None => Console::open(),
    };
    Ctx {
        log: log.clone(),
        tpm: Arc::new(BootTpm::new(log.clone())),
        net: NetGate::new(bring_up, deadline, NetGate::backoff(), log),
        local_key,
        deadline,
        timeout: cfg.timing.timeout,
        trust: cfg.trust.clone(),
        prompt_at: start + cfg.timing.prompt_delay,
        console,
        limits,
    }
}

/// Races every volume at once, the first on this thread and each other one in
/// its own (the usual single root needs no thread); what failed, in order.
fn open_all(vols: Vec<Volume>, ctx: &Arc<Ctx>, dry_run: bool) -> Failures {
    let mut vols = vols.into_iter().map(Arc::new);
    let Some(first) = vols.next() else {
        return Failures::new();
    };
    let workers: Vec<_> = vols
        .map(|vol| {
            let ctx = ctx.clone();
            let handle = engine::worker(vol.name.clone()).spawn({
                let vol = vol.clone();
                move || open_one(vol, ctx, dry_run)
            });
            (vol, handle)
        })
        .collect();
    let mut failed = Failures::new();
    if let Err(reasons) = open_one(first.clone(), ctx.clone(), dry_run) {
        failed.push((first.label(), reasons));
    }
    for (vol, h) in workers {
        match h.map(|h| h.join()) {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(reasons))) => failed.push((vol.label(), reasons)),
            Ok(Err(_)) => failed.push((vol.label(), vec![Error::Panicked.into()])),
            Err(e) => failed.push((vol.label(), vec![Error::Thread(e).into()])),
        }
    }
    failed
}

/// Says what failed and why (on the console too, unless a dry run); the exit code.
fn report(log: &Log, failed: &Failures, dry_run: bool) -> i32 {
    if failed.is_empty() {
        log.phase("all volumes open");
        return 0;
    }
    for (name, reasons) in failed {
        log.error(&format!("{name} NOT opened:"));
        for r in reasons {
            log.error(&format!("  - {r}"));
        }
        if !dry_run {
            // The kernel log may be hidden by `quiet`; the console must still say why.
            eprintln!("latchkey: {name} NOT opened:");
            for r in reasons {
                eprintln!("latchkey:   - {r}");
            }
        }
    }
    1
}

fn open_one(vol: Arc<Volume>, ctx: Arc<Ctx>, dry_run: bool) -> Result<(), Vec<Attempt>> {
    let opened = engine::race(vol.clone(), ctx.clone())?;
    let slot = opened.unlocked.keyslot;
    if dry_run {
        ctx.log.info(&format!(
            "{}: would open with keyslot {slot} ({}); dry run, not activated",
            vol.label(),
            opened.method
        ));
        return Ok(());
    }
    match activate::activate(&vol, &opened.unlocked, &ctx.log) {
        Ok(_) => {
            // As /dev/mapper/NAME, which goes without saying.
            ctx.log
                .phase(&format!("volume {} open ({})", vol.name, opened.how()));
            Ok(())
        }
        Err(e) => Err(vec![e.into()]),
    }
}
