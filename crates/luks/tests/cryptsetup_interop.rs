//! Interop with the real cryptsetup 2.6, clevis and luksmeta: images are made
//! at test time on plain files (no device-mapper needed) and our reading and
//! unlocking must agree with what those programs say about them.
//!
//! Needs `cryptsetup`, `clevis`, `luksmeta` and `jose` on PATH. Without them
//! each test prints "skipped: …", or fails when the env var CI is set.

use latchkey_luks::{
    BindingSource, CopyState, DataSize, Error, Header, HeaderCopy, Kdf, Limits, Priority, Version,
    unlock,
};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "latchkey-luks-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Write a key file and return its path.
    fn key(&self, name: &str, pass: &[u8]) -> PathBuf {
        let p = self.path(name);
        fs::write(&p, pass).unwrap();
        p
    }

    /// A sparse image file of `mib` MiB.
    fn image(&self, mib: u64) -> PathBuf {
        let p = self.path("disk.img");
        fs::File::create(&p).unwrap().set_len(mib << 20).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// True if every program is on PATH; otherwise skip (or fail under CI).
fn have(progs: &[&str]) -> bool {
    for p in progs {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {p}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            if std::env::var_os("CI").is_some() {
                panic!("{p} is required under CI (scripts/setup installs it)");
            }
            eprintln!("skipped: {p} is not installed");
            return false;
        }
    }
    true
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn cryptsetup(args: &[&str]) -> Command {
    let mut c = Command::new("cryptsetup");
    c.args(args);
    c
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `cryptsetup luksFormat --batch-mode --key-file KEY EXTRA… IMG`.
fn format(img: &Path, key: &Path, extra: &[&str]) {
    let mut args = vec!["luksFormat", "--batch-mode", "--key-file", s(key)];
    args.extend_from_slice(extra);
    args.push(s(img));
    run(&mut cryptsetup(&args));
}

fn add_key(img: &Path, key: &Path, new_key: &Path, extra: &[&str]) {
    let mut args = vec!["luksAddKey", "--batch-mode", "--key-file", s(key)];
    args.extend_from_slice(extra);
    args.push(s(img));
    args.push(s(new_key));
    run(&mut cryptsetup(&args));
}

/// The volume key as cryptsetup dumps it.
fn dumped_key(img: &Path, key: &Path) -> Vec<u8> {
    let try_flag = |flag: &str| {
        cryptsetup(&[
            "luksDump",
            flag,
            "--batch-mode",
            "--key-file",
            s(key),
            s(img),
        ])
        .output()
        .unwrap()
    };
    let mut out = try_flag("--dump-volume-key");
    if !out.status.success() {
        out = try_flag("--dump-master-key");
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut hex = String::new();
    let mut inside = false;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("MK dump:") {
            inside = true;
            hex.push_str(rest);
        } else if inside && line.starts_with(char::is_whitespace) {
            hex.push_str(line);
        } else if inside {
            break;
        }
    }
    let bytes: Vec<u8> = hex
        .split_whitespace()
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    assert!(!bytes.is_empty(), "no MK dump in:\n{text}");
    bytes
}

/// cryptsetup's verdict on a passphrase (optionally for one keyslot).
fn cryptsetup_accepts(img: &Path, key: &Path, slot: Option<u32>) -> bool {
    let slot_s = slot.map(|n| n.to_string());
    let mut args = vec![
        "open",
        "--test-passphrase",
        "--batch-mode",
        "--key-file",
        s(key),
    ];
    if let Some(n) = &slot_s {
        args.extend(["--key-slot", n]);
    }
    args.push(s(img));
    cryptsetup(&args).output().unwrap().status.success()
}

fn read_header(img: &Path) -> Header {
    Header::read(&mut fs::File::open(img).unwrap()).unwrap()
}

fn limits() -> Limits {
    Limits::new(1 << 20)
}

/// Unlock with our code; on success also return the key.
fn our_unlock(img: &Path, pass: &[u8], slot: Option<u32>) -> Result<(u32, Vec<u8>), Error> {
    let h = read_header(img);
    let mut dev = fs::File::open(img).unwrap();
    unlock(&h, &mut dev, pass, slot, &limits()).map(|u| (u.keyslot, u.volume_key.expose().to_vec()))
}

/// Format with `extra`, then check: the key we recover equals cryptsetup's
/// dump, right and wrong passphrases get cryptsetup's verdict, and the dm
/// parameters are what luksDump says.
fn check_format(extra: &[&str], mib: u64) -> (Scratch, Header) {
    let d = Scratch::new("fmt");
    let img = d.image(mib);
    let key = d.key("key", b"correct horse battery staple");
    format(&img, &key, extra);
    let (slot, ours) = our_unlock(&img, b"correct horse battery staple", None).unwrap();
    assert_eq!(slot, 0);
    assert_eq!(ours, dumped_key(&img, &key), "{extra:?}");
    assert!(cryptsetup_accepts(&img, &key, None));
    let wrong = d.key("wrong", b"correct horse battery stapl");
    assert!(!cryptsetup_accepts(&img, &wrong, None));
    assert!(matches!(
        our_unlock(&img, b"correct horse battery stapl", None),
        Err(Error::PassphraseRejected { .. })
    ));
    let h = read_header(&img);
    assert!(h.health().is_clean());
    (d, h)
}

fn luks_dump(img: &Path) -> String {
    run(&mut cryptsetup(&["luksDump", s(img)]))
}

/// The value after `name:` on the first luksDump line that has it.
fn dump_field(dump: &str, name: &str) -> String {
    dump.lines()
        .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {name} in luksDump"))
        .trim()
        .to_owned()
}

#[test]
fn luks2_pbkdf2_aes_xts_512() {
    if !have(&["cryptsetup"]) {
        return;
    }
    let (d, h) = check_format(
        &[
            "--type",
            "luks2",
            "--pbkdf",
            "pbkdf2",
            "--pbkdf-force-iterations",
            "1000",
        ],
        32,
    );
    let img = d.path("disk.img");
    let dump = luks_dump(&img);
    assert_eq!(h.version(), Version::Luks2);
    assert_eq!(h.uuid(), dump_field(&dump, "UUID"));
    let mut dev = fs::File::open(&img).unwrap();
    let u = unlock(
        &h,
        &mut dev,
        b"correct horse battery staple",
        Some(0),
        &limits(),
    )
    .unwrap();
    assert_eq!(u.dm.cipher, "aes-xts-plain64");
    assert_eq!(u.dm.key_size, 64);
    assert_eq!(u.dm.offset_sectors, 16 << 20 >> 9);
    assert_eq!(u.dm.size, DataSize::Dynamic);
    assert_eq!(u.dm.iv_offset, 0);
    assert_eq!(u.dm.uuid, h.uuid());
    assert!(matches!(
        h.keyslots()[0].kdf,
        Kdf::Pbkdf2 {
            iterations: 1000,
            ..
        }
    ));
}

#[test]
fn luks2_argon2id_aes_xts_256_sector_512() {
    if !have(&["cryptsetup"]) {
        return;
    }
    let (d, h) = check_format(
        &[
            "--type",
            "luks2",
            "--pbkdf",
            "argon2id",
            "--pbkdf-memory",
            "32768",
            "--pbkdf-force-iterations",
            "4",
            "--pbkdf-parallel",
            "2",
            "--key-size",
            "256",
            "--sector-size",
            "512",
        ],
        32,
    );
    let k = &h.keyslots()[0];
    assert_eq!(k.key_size, 32);
    assert!(matches!(
        k.kdf,
        Kdf::Argon2 {
            time: 4,
            memory_kib: 32768,
            cpus: 2,
            ..
        }
    ));
    let mut dev = fs::File::open(d.path("disk.img")).unwrap();
    let u = unlock(
        &h,
        &mut dev,
        b"correct horse battery staple",
        None,
        &limits(),
    )
    .unwrap();
    assert_eq!(u.dm.key_size, 32);
    assert_eq!(u.dm.sector_size, 512);
    // The memory limit is enforced with a clear error.
    match unlock(
        &h,
        &mut dev,
        b"correct horse battery staple",
        None,
        &Limits::new(16384),
    ) {
        Err(
            e @ Error::MemoryLimit {
                slot: 0,
                needed_kib: 32768,
                limit_kib: 16384,
            },
        ) => {
            assert!(e.to_string().contains("32768 KiB"));
        }
        other => panic!("expected MemoryLimit, got {:?}", other.map(|u| u.keyslot)),
    }
}

#[test]
fn luks2_argon2i_sector_4096() {
    if !have(&["cryptsetup"]) {
        return;
    }
    let (d, h) = check_format(
        &[
            "--type",
            "luks2",
            "--pbkdf",
            "argon2i",
            "--pbkdf-memory",
            "8192",
            "--pbkdf-force-iterations",
            "4",
            "--sector-size",
            "4096",
        ],
        32,
    );
    let dump = luks_dump(&d.path("disk.img"));
    assert!(dump.contains("sector: 4096 [bytes]"));
    let mut dev = fs::File::open(d.path("disk.img")).unwrap();
    let u = unlock(
        &h,
        &mut dev,
        b"correct horse battery staple",
        None,
        &limits(),
    )
    .unwrap();
    assert_eq!(u.dm.sector_size, 4096);
}

#[test]
fn luks2_aes_cbc_essiv_sha256() {
    if !have(&["cryptsetup"]) {
        return;
    }
    let (d, h) = check_format(
        &[
            "--type",
            "luks2",
            "--cipher",
            "aes-cbc-essiv:sha256",
            "--key-size",
            "256",
            "--pbkdf",
            "pbkdf2",
            "--pbkdf-force-iterations",
            "1000",
            "--hash",
            "sha512",
        ],
        32,
    );
    assert_eq!(h.keyslots()[0].area_encryption, "aes-cbc-essiv:sha256");
    let mut dev = fs::File::open(d.path("disk.img")).unwrap();
    let u = unlock(
        &h,
        &mut dev,
        b"correct horse battery staple",
        None,
        &limits(),
    )
    .unwrap();
    assert_eq!(u.dm.cipher, "aes-cbc-essiv:sha256");
    assert_eq!(u.dm.key_size, 32);
}

#[test]
fn luks2_label_and_large_metadata() {
    if !have(&["cryptsetup"]) {
        return;
    }
    let (d, h) = check_format(
        &[
            "--type",
            "luks2",
            "--pbkdf",
            "pbkdf2",
            "--pbkdf-force-iterations",
            "1000",
            "--luks2-metadata-size",
            "1m",
            "--luks2-keyslots-size",
            "2m",
            "--label",
            "rootfs",
            "--subsystem",
            "latchkey",
        ],
        32,
    );
    assert_eq!(h.label(), Some("rootfs"));
    assert_eq!(h.subsystem(), Some("latchkey"));
    let img = d.path("disk.img");
    // Damage the primary: the 1 MiB secondary must still be found.
    let mut bytes = fs::read(&img).unwrap();
    bytes[..8].fill(0);
    let h2 = Header::from_bytes(&bytes[..4 << 20]).unwrap();
    assert_eq!(h2.health().used, HeaderCopy::Secondary);
    assert_eq!(h2.label(), Some("rootfs"));
}

#[test]
fn luks2_every_metadata_size_recovers_from_damaged_primary() {
    if !have(&["cryptsetup"]) {
        return;
    }
    for size in [
        "16k", "32k", "64k", "128k", "256k", "512k", "1m", "2m", "4m",
    ] {
        let d = Scratch::new("mdsize");
        let img = d.image(24);
        let key = d.key("key", b"pw");
        format(
            &img,
            &key,
            &[
                "--type",
                "luks2",
                "--pbkdf",
                "pbkdf2",
                "--pbkdf-force-iterations",
                "1000",
                "--luks2-metadata-size",
                size,
                "--luks2-keyslots-size",
                "1m",
            ],
        );
        let key_bytes = dumped_key(&img, &key);
        // Overwrite bytes in the primary's JSON area.
        let mut bytes = fs::read(&img).unwrap();
        bytes[4096..4200].fill(b'x');
        fs::write(&img, &bytes).unwrap();
        let h = read_header(&img);
        assert_eq!(h.health().used, HeaderCopy::Secondary, "{size}");
        assert!(
            matches!(h.health().primary, CopyState::Damaged { .. }),
            "{size}"
        );
        let mut dev = fs::File::open(&img).unwrap();
        let u = unlock(&h, &mut dev, b"pw", None, &limits()).unwrap();
        assert_eq!(u.volume_key.expose(), &key_bytes[..], "{size}");
        // cryptsetup also still opens it (and would repair the primary).
        assert!(cryptsetup_accepts(&img, &key, None), "{size}");
    }
}

#[test]
fn luks2_several_keyslots_agree_with_cryptsetup() {
    if !have(&["cryptsetup"]) {
        return;
    }
    let d = Scratch::new("slots");
    let img = d.image(32);
    let k0 = d.key("k0", b"zero");
    let k1 = d.key("k1", b"one");
    let k5 = d.key("k5", b"five");
    let k9 = d.key("k9", b"nine");
    format(
        &img,
        &k0,
        &[
            "--type",
            "luks2",
            "--pbkdf",
            "pbkdf2",
            "--pbkdf-force-iterations",
            "1000",
        ],
    );
    add_key(
        &img,
        &k0,
        &k1,
        &[
            "--pbkdf",
            "argon2id",
            "--pbkdf-memory",
            "16384",
            "--pbkdf-force-iterations",
            "4",
        ],
    );
    add_key(
        &img,
        &k0,
        &k5,
        &[
            "--key-slot",
            "5",
            "--pbkdf",
            "pbkdf2",
            "--pbkdf-force-iterations",
            "1000",
            "--hash",
            "sha1",
        ],
    );
    add_key(
        &img,
        &k0,
        &k9,
        &[
            "--key-slot",
            "9",
            "--pbkdf",
            "pbkdf2",
            "--pbkdf-force-iterations",
            "1000",
        ],
    );
    run(&mut cryptsetup(&[
        "config",
        "--priority",
        "prefer",
        "--key-slot",
        "9",
        s(&img),
    ]));
    let vk = dumped_key(&img, &k0);
    let h = read_header(&img);
    let ids: Vec<u32> = h.keyslots().iter().map(|k| k.id).collect();
    assert_eq!(ids, [0, 1, 5, 9]);
    assert_eq!(h.keyslot(9).unwrap().priority, Priority::High);
    for (slot, pass, file) in [
        (0, "zero", &k0),
        (1, "one", &k1),
        (5, "five", &k5),
        (9, "nine", &k9),
    ] {
        let (opened, key) = our_unlock(&img, pass.as_bytes(), None).unwrap();
        assert_eq!(opened, slot);
        assert_eq!(key, vk);
        for other in [0u32, 1, 5, 9] {
            let ours = our_unlock(&img, pass.as_bytes(), Some(other)).is_ok();
            assert_eq!(
                ours,
                cryptsetup_accepts(&img, file, Some(other)),
                "pass {pass} slot {other}"
            );
            assert_eq!(ours, other == slot);
        }
    }
    // Ignored priority: not tried unless named, like cryptsetup.
    run(&mut cryptsetup(&[
        "config",
        "--priority",
        "ignore",
        "--key-slot",
        "5",
        s(&img),
    ]));
    assert!(our_unlock(&img, b"five", None).is_err());
    assert!(!cryptsetup_accepts(&img, &k5, None));
    assert!(our_unlock(&img, b"five", Some(5)).is_ok());
    assert!(cryptsetup_accepts(&img, &k5, Some(5)));
    // Killed slot.
    run(&mut cryptsetup(&[
        "luksKillSlot",
        "--batch-mode",
        "--key-file",
        s(&k0),
        s(&img),
        "1",
    ]));
    assert!(matches!(
        our_unlock(&img, b"one", Some(1)),
        Err(Error::NoSuchKeyslot(1))
    ));
    assert!(!cryptsetup_accepts(&img, &k1, None));
}

#[test]
fn luks2_config_flags_are_read_like_cryptsetup() {
    if !have(&["cryptsetup"]) {
        return;
    }
    let d = Scratch::new("flags");
    let img = d.image(32);
    let key = d.key("key", b"pw");
    format(
        &img,
        &key,
        &[
            "--type",
            "luks2",
            "--pbkdf",
            "pbkdf2",
            "--pbkdf-force-iterations",
            "1000",
        ],
    );
    // cryptsetup stores flags only when activating with --persistent, which
    // needs device-mapper; write them into both JSON copies ourselves and let
    // luksDump confirm the result is a valid header.
    let mut bytes = fs::read(&img).unwrap();
    for base in [0usize, 16384] {
        let area = &mut bytes[base + 4096..base + 16384];
        let len = area.iter().position(|&b| b == 0).unwrap();
        let text = String::from_utf8(area[..len].to_vec()).unwrap();
        let text = text.replacen(
            "\"config\":{",
            "\"config\":{\"flags\":[\"allow-discards\",\"same-cpu-crypt\",\"submit-from-crypt-cpus\",\"no-read-workqueue\",\"no-write-workqueue\"],",
            1,
        );
        area[..text.len()].copy_from_slice(text.as_bytes());
        let hdr = &mut bytes[base..base + 16384];
        hdr[448..512].fill(0);
        use sha2::Digest;
        let sum = sha2::Sha256::digest(&*hdr);
        hdr[448..480].copy_from_slice(&sum);
    }
    fs::write(&img, &bytes).unwrap();
    let dump = luks_dump(&img);
    let flags = dump_field(&dump, "Flags");
    for f in [
        "allow-discards",
        "same-cpu-crypt",
        "submit-from-crypt-cpus",
        "no-read-workqueue",
        "no-write-workqueue",
    ] {
        assert!(flags.contains(f), "{flags}");
    }
    let h = read_header(&img);
    assert!(h.health().is_clean());
    let f = h.flags();
    assert!(f.allow_discards && f.same_cpu_crypt && f.submit_from_crypt_cpus);
    assert!(f.no_read_workqueue && f.no_write_workqueue);
    let mut dev = fs::File::open(&img).unwrap();
    assert!(
        unlock(&h, &mut dev, b"pw", None, &limits())
            .unwrap()
            .dm
            .flags
            .allow_discards
    );
}

#[test]
fn luks1_variants_agree_with_cryptsetup() {
    if !have(&["cryptsetup"]) {
        return;
    }
    for extra in [
        &["--key-size", "512"][..],
        &["--key-size", "256"][..],
        &["--cipher", "aes-cbc-essiv:sha256", "--key-size", "256"][..],
        &["--hash", "sha1"][..],
        &[
            "--hash",
            "sha512",
            "--cipher",
            "aes-cbc-essiv:sha256",
            "--key-size",
            "128",
        ][..],
    ] {
        let mut args = vec!["--type", "luks1", "--pbkdf-force-iterations", "1000"];
        args.extend_from_slice(extra);
        let (d, h) = check_format(&args, 8);
        let img = d.path("disk.img");
        assert_eq!(h.version(), Version::Luks1);
        let dump = luks_dump(&img);
        let mut dev = fs::File::open(&img).unwrap();
        let u = unlock(
            &h,
            &mut dev,
            b"correct horse battery staple",
            None,
            &limits(),
        )
        .unwrap();
        assert_eq!(
            u.dm.cipher,
            format!(
                "{}-{}",
                dump_field(&dump, "Cipher name"),
                dump_field(&dump, "Cipher mode")
            )
        );
        assert_eq!(
            u.dm.offset_sectors.to_string(),
            dump_field(&dump, "Payload offset")
        );
        assert_eq!(
            (u.dm.key_size * 8).to_string(),
            dump_field(&dump, "MK bits")
        );
        assert_eq!(u.dm.uuid, dump_field(&dump, "UUID"));
    }
}

#[test]
fn luks1_several_keyslots() {
    if !have(&["cryptsetup"]) {
        return;
    }
    let d = Scratch::new("l1slots");
    let img = d.image(8);
    let k0 = d.key("k0", b"zero");
    let k3 = d.key("k3", b"three");
    format(
        &img,
        &k0,
        &["--type", "luks1", "--pbkdf-force-iterations", "1000"],
    );
    add_key(
        &img,
        &k0,
        &k3,
        &["--key-slot", "3", "--pbkdf-force-iterations", "1000"],
    );
    let vk = dumped_key(&img, &k0);
    for (slot, pass, file) in [(0, "zero", &k0), (3, "three", &k3)] {
        let (opened, key) = our_unlock(&img, pass.as_bytes(), None).unwrap();
        assert_eq!((opened, &key), (slot, &vk));
        for other in 0..8 {
            let ours = our_unlock(&img, pass.as_bytes(), Some(other)).is_ok();
            assert_eq!(
                ours,
                cryptsetup_accepts(&img, file, Some(other)),
                "slot {other}"
            );
        }
    }
}

/// Bind a key file's volume with clevis; `cfg` may name `@ADV@`.
fn clevis_bind(img: &Path, key: &Path, pin: &str, cfg: &str, extra: &[&str]) {
    let adv = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/adv.jws");
    let cfg = cfg.replace("@ADV@", adv);
    let mut c = Command::new("clevis");
    c.args(["luks", "bind", "-y", "-d", s(img), "-k", s(key)]);
    c.args(extra);
    c.args([pin, &cfg]);
    run(&mut c);
}

fn jose_compact(flattened_jwe: &str, dir: &Scratch) -> String {
    let f = dir.path("jwe.json");
    fs::write(&f, flattened_jwe).unwrap();
    run(Command::new("jose").args(["jwe", "fmt", "-i", s(&f), "-c"]))
        .trim()
        .to_owned()
}

const TANG: &str = r#"{"url":"http://127.0.0.1:1","adv":"@ADV@"}"#;
const SSS: &str = r#"{"t":1,"pins":{"tang":[{"url":"http://127.0.0.1:1","adv":"@ADV@"},{"url":"http://127.0.0.1:2","adv":"@ADV@"}]}}"#;

#[test]
fn luks2_clevis_tokens_match_token_export() {
    if !have(&["cryptsetup", "clevis", "jose"]) {
        return;
    }
    let d = Scratch::new("clevis2");
    let img = d.image(32);
    let key = d.key("key", b"pw");
    format(
        &img,
        &key,
        &[
            "--type",
            "luks2",
            "--pbkdf",
            "pbkdf2",
            "--pbkdf-force-iterations",
            "1000",
        ],
    );
    clevis_bind(&img, &key, "tang", TANG, &[]);
    clevis_bind(&img, &key, "sss", SSS, &["-s", "4", "-t", "3"]);
    let h = read_header(&img);
    let b = h.clevis_bindings();
    assert_eq!(b.len(), 2);
    let list = run(Command::new("clevis").args(["luks", "list", "-d", s(&img)]));
    for binding in b {
        let token = binding.token_id.unwrap();
        assert_eq!(binding.source, BindingSource::Luks2Token(token));
        let export = run(&mut cryptsetup(&[
            "token",
            "export",
            "--token-id",
            &token.to_string(),
            s(&img),
        ]));
        let v: serde_json::Value = serde_json::from_str(&export).unwrap();
        assert_eq!(
            v["keyslots"],
            serde_json::json!([binding.keyslot.to_string()])
        );
        let compact = jose_compact(&v["jwe"].to_string(), &d);
        assert_eq!(binding.jwe, compact);
        assert!(list.contains(&format!("{}: ", binding.keyslot)), "{list}");
    }
    assert_eq!((b[0].keyslot, b[0].token_id), (1, Some(0)));
    assert_eq!((b[1].keyslot, b[1].token_id), (4, Some(3)));
    // The bound keyslots are PBKDF2-SHA256 with 1000 iterations, as clevis makes them.
    assert!(matches!(
        h.keyslot(4).unwrap().kdf,
        Kdf::Pbkdf2 {
            iterations: 1000,
            ..
        }
    ));
}

#[test]
fn luks1_luksmeta_bindings_match_luksmeta_load() {
    if !have(&["cryptsetup", "clevis", "luksmeta"]) {
        return;
    }
    let d = Scratch::new("clevis1");
    let img = d.image(8);
    let key = d.key("key", b"pw");
    format(
        &img,
        &key,
        &["--type", "luks1", "--pbkdf-force-iterations", "1000"],
    );
    clevis_bind(&img, &key, "tang", TANG, &[]);
    clevis_bind(&img, &key, "sss", SSS, &["-s", "5"]);
    let h = read_header(&img);
    let b = h.clevis_bindings();
    let slots: Vec<u32> = b.iter().map(|b| b.keyslot).collect();
    assert_eq!(slots, [1, 5]);
    for binding in b {
        assert_eq!(binding.source, BindingSource::LuksMeta(binding.keyslot));
        assert_eq!(binding.token_id, None);
        let loaded = run(Command::new("luksmeta").args([
            "load",
            "-d",
            s(&img),
            "-s",
            &binding.keyslot.to_string(),
        ]));
        assert_eq!(binding.jwe, loaded);
    }
    let show = run(Command::new("luksmeta").args(["show", "-d", s(&img)]));
    assert!(
        show.contains("5   active cb6e8904-81ff-40da-a84a-07ab9ab5715e"),
        "{show}"
    );
}

/// End to end with a pin that decrypts offline: clevis decrypts OUR compact
/// JWE, and the passphrase opens exactly the keyslot we mapped it to.
#[test]
fn clevis_null_binding_opens_its_keyslot_luks1_and_luks2() {
    if !have(&["cryptsetup", "clevis", "luksmeta"]) {
        return;
    }
    for ty in ["luks1", "luks2"] {
        let d = Scratch::new("clevisnull");
        let img = d.image(32);
        let key = d.key("key", b"pw");
        format(
            &img,
            &key,
            &[
                "--type",
                ty,
                "--pbkdf",
                "pbkdf2",
                "--pbkdf-force-iterations",
                "1000",
            ],
        );
        clevis_bind(
            &img,
            &key,
            "sss",
            r#"{"t":1,"pins":{"null":[{}]}}"#,
            &["-s", "2"],
        );
        let h = read_header(&img);
        let binding = &h.clevis_bindings()[0];
        assert_eq!(binding.keyslot, 2);
        let jwe = d.path("b.jwe");
        fs::write(&jwe, &binding.jwe).unwrap();
        let pass = run(Command::new("clevis")
            .arg("decrypt")
            .stdin(fs::File::open(&jwe).unwrap()));
        let mut dev = fs::File::open(&img).unwrap();
        let u = unlock(
            &h,
            &mut dev,
            pass.as_bytes(),
            Some(binding.keyslot),
            &limits(),
        )
        .unwrap();
        assert_eq!(u.keyslot, 2);
        assert_eq!(u.volume_key.expose(), &dumped_key(&img, &key)[..]);
        assert!(unlock(&h, &mut dev, pass.as_bytes(), Some(0), &limits()).is_err());
    }
}

/// cryptsetup encrypts existing data offline (`reencrypt --encrypt` works on a
/// plain file); decrypting it with our key and DmParams must give the data
/// back. This checks offset, sector size and IV counting as dm-crypt uses them.
#[test]
fn dm_params_decrypt_data_cryptsetup_encrypted() {
    if !have(&["cryptsetup"]) {
        return;
    }
    const PLAIN: usize = 1 << 20;
    let pattern: Vec<u8> = (0..PLAIN / 16)
        .flat_map(|i| (i as u128 * 0x9E37_79B9_7F4A_7C15).to_le_bytes())
        .collect();
    for extra in [
        &["--sector-size", "4096"][..],
        &["--sector-size", "512", "--key-size", "256"][..],
        &[
            "--cipher",
            "aes-cbc-essiv:sha256",
            "--key-size",
            "256",
            "--sector-size",
            "4096",
        ][..],
        &[
            "--cipher",
            "aes-cbc-essiv:sha256",
            "--key-size",
            "256",
            "--sector-size",
            "512",
        ][..],
    ] {
        let d = Scratch::new("reenc");
        let img = d.image(48);
        let key = d.key("key", b"pw");
        let mut bytes = fs::read(&img).unwrap();
        bytes[..PLAIN].copy_from_slice(&pattern);
        fs::write(&img, &bytes).unwrap();
        let mut args = vec![
            "reencrypt",
            "--encrypt",
            "--type",
            "luks2",
            "--batch-mode",
            "--key-file",
            s(&key),
            "--pbkdf",
            "pbkdf2",
            "--pbkdf-force-iterations",
            "1000",
            "--reduce-device-size",
            "32M",
        ];
        args.extend_from_slice(extra);
        args.push(s(&img));
        run(&mut cryptsetup(&args));
        let h = read_header(&img);
        assert!(h.requirements().is_empty(), "{:?}", h.requirements());
        let mut dev = fs::File::open(&img).unwrap();
        let u = unlock(&h, &mut dev, b"pw", None, &limits()).unwrap();
        let start = (u.dm.offset_sectors * 512) as usize;
        let mut data = fs::read(&img).unwrap()[start..start + PLAIN].to_vec();
        assert_ne!(data, pattern);
        u.decrypt_data(0, &mut data).unwrap();
        assert!(data == pattern, "{extra:?}: decrypted data differs");
        // A later stretch alone decrypts the same way.
        let mut tail = fs::read(&img).unwrap()[start + 8192..start + 16384].to_vec();
        u.decrypt_data(8192, &mut tail).unwrap();
        assert!(tail == pattern[8192..16384], "{extra:?}");
    }
}

/// cryptsetup writes sha256 checksums but accepts any hash it knows; ours must too.
#[test]
fn luks2_other_checksum_algorithms() {
    if !have(&["cryptsetup"]) {
        return;
    }
    use sha2::Digest;
    for alg in ["sha1", "sha512"] {
        let d = Scratch::new("csum");
        let img = d.image(32);
        let key = d.key("key", b"pw");
        format(
            &img,
            &key,
            &[
                "--type",
                "luks2",
                "--pbkdf",
                "pbkdf2",
                "--pbkdf-force-iterations",
                "1000",
            ],
        );
        let mut bytes = fs::read(&img).unwrap();
        for base in [0usize, 16384] {
            let hdr = &mut bytes[base..base + 16384];
            hdr[72..104].fill(0);
            hdr[72..72 + alg.len()].copy_from_slice(alg.as_bytes());
            hdr[448..512].fill(0);
            let sum = match alg {
                "sha1" => sha1::Sha1::digest(&*hdr).to_vec(),
                _ => sha2::Sha512::digest(&*hdr).to_vec(),
            };
            hdr[448..448 + sum.len()].copy_from_slice(&sum);
        }
        fs::write(&img, &bytes).unwrap();
        let h = read_header(&img);
        assert!(h.health().is_clean(), "{alg}: {:?}", h.health());
        // cryptsetup agrees the header is valid and the key opens.
        assert!(cryptsetup_accepts(&img, &key, None), "{alg}");
        assert_eq!(
            our_unlock(&img, b"pw", None).unwrap().1,
            dumped_key(&img, &key)
        );
        // A flipped JSON byte is caught under this algorithm too.
        let mut bad = bytes.clone();
        bad[4096 + 10] ^= 1;
        let h = Header::from_bytes(&bad[..1 << 20]).unwrap();
        assert_eq!(h.health().used, HeaderCopy::Secondary, "{alg}");
    }
}
