//! Interop with the real cryptsetup 2.6, clevis and luksmeta: images are made
//! at test time on plain files (no device-mapper needed) and our reading and
//! unlocking must agree with what those programs say about them.
//!
//! Needs `cryptsetup`, `clevis`, `luksmeta` and `jose` on PATH. Without them
//! each test prints "skipped: …", or fails when the env var CI is set.

use latchkey_luks::{
    BindingSource, CopyState, DataSize, Error, Header, HeaderCopy, Kdf, Limits, Priority, Unlocked,
    Version, unlock,
};
use latchkey_testkit::{Scratch, have, run_with};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The passphrase of the format cases.
const PASS: &[u8] = b"correct horse battery staple";
/// Quick to make and to open: PBKDF2 with 1000 iterations.
const LUKS2: &str = "--type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000";
const LUKS1: &str = "--type luks1 --pbkdf-force-iterations 1000";

/// Runs a program with `input` on stdin (at most five minutes) and returns its
/// stdout; panics unless it succeeds.
fn run_in(cmd: &mut Command, input: &[u8]) -> String {
    let out = run_with(cmd, input, Duration::from_secs(300));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn run(cmd: &mut Command) -> String {
    run_in(cmd, b"")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn limits() -> Limits {
    Limits::new(1 << 20)
}

/// A sparse image file in a scratch directory, and the key file of its first passphrase.
struct Image {
    dir: Scratch,
    img: PathBuf,
    key: PathBuf,
}

impl Image {
    /// `mib` MiB of zeros; `pass` in the key file.
    fn blank(tag: &str, mib: u64, pass: &[u8]) -> Image {
        let dir = Scratch::new(tag);
        let img = dir.path("disk.img");
        fs::File::create(&img).unwrap().set_len(mib << 20).unwrap();
        let key = dir.path("key");
        fs::write(&key, pass).unwrap();
        Image { dir, img, key }
    }

    /// `cryptsetup luksFormat --batch-mode --key-file KEY ARGS… IMG`.
    fn format(tag: &str, mib: u64, pass: &[u8], args: &str) -> Image {
        let image = Image::blank(tag, mib, pass);
        image.cryptsetup(&format!("luksFormat {args}"), Some(&image.key), &[]);
        image
    }

    /// Writes another key file and returns its path.
    fn key_file(&self, name: &str, pass: &[u8]) -> PathBuf {
        let p = self.dir.path(name);
        fs::write(&p, pass).unwrap();
        p
    }

    /// `cryptsetup WORDS… --batch-mode [--key-file KEY] IMG`.
    fn command(&self, words: &str, key: Option<&Path>) -> Command {
        let mut c = Command::new("cryptsetup");
        c.args(words.split_whitespace()).arg("--batch-mode");
        if let Some(k) = key {
            c.arg("--key-file").arg(k);
        }
        c.arg(&self.img);
        c
    }

    /// Runs [`Image::command`] with `after` following the image; its stdout.
    fn cryptsetup(&self, words: &str, key: Option<&Path>, after: &[&str]) -> String {
        run(self.command(words, key).args(after))
    }

    /// `luksAddKey`: `new_key` into a keyslot, with the first passphrase.
    fn add_key(&self, new_key: &Path, extra: &str) {
        self.cryptsetup(
            &format!("luksAddKey {extra}"),
            Some(&self.key),
            &[s(new_key)],
        );
    }

    fn dump(&self) -> String {
        self.cryptsetup("luksDump", None, &[])
    }

    /// The volume key as cryptsetup dumps it.
    fn dumped_key(&self) -> Vec<u8> {
        let dump = |flag: &str| {
            run_with(
                &mut self.command(&format!("luksDump {flag}"), Some(&self.key)),
                b"",
                Duration::from_secs(300),
            )
        };
        let mut out = dump("--dump-volume-key");
        if !out.status.success() {
            out = dump("--dump-master-key");
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

    /// cryptsetup's verdict on the passphrase in `key` (optionally for one keyslot).
    fn accepts(&self, key: &Path, slot: Option<u32>) -> bool {
        let slot = slot.map_or(String::new(), |n| format!("--key-slot {n}"));
        let mut c = self.command(&format!("open --test-passphrase {slot}"), Some(key));
        run_with(&mut c, b"", Duration::from_secs(300))
            .status
            .success()
    }

    fn header(&self) -> Header {
        Header::read(&mut fs::File::open(&self.img).unwrap()).unwrap()
    }

    /// Our unlock with the header `h` of this image.
    fn open(&self, h: &Header, pass: &[u8], slot: Option<u32>) -> Result<Unlocked, Error> {
        let mut dev = fs::File::open(&self.img).unwrap();
        unlock(h, &mut dev, pass, slot, &limits())
    }

    /// Our unlock, header read afresh; on success the keyslot and the key.
    fn unlock(&self, pass: &[u8], slot: Option<u32>) -> Result<(u32, Vec<u8>), Error> {
        self.open(&self.header(), pass, slot)
            .map(|u| (u.keyslot, u.volume_key.expose().to_vec()))
    }

    /// For an image formatted with [`PASS`]: the key we recover equals
    /// cryptsetup's dump, right and wrong passphrases get cryptsetup's verdict,
    /// and the header reads clean.
    fn check_agrees(&self, what: &str) -> Header {
        let (slot, ours) = self.unlock(PASS, None).unwrap();
        assert_eq!(slot, 0, "{what}");
        assert_eq!(ours, self.dumped_key(), "{what}");
        assert!(self.accepts(&self.key, None), "{what}");
        let wrong = self.key_file("wrong", b"correct horse battery stapl");
        assert!(!self.accepts(&wrong, None), "{what}");
        assert!(
            matches!(
                self.unlock(b"correct horse battery stapl", None),
                Err(Error::PassphraseRejected { .. })
            ),
            "{what}"
        );
        let h = self.header();
        assert!(h.health().is_clean(), "{what}");
        h
    }
}

/// The value after `name:` on the first luksDump line that has it.
fn dump_field(dump: &str, name: &str) -> String {
    dump.lines()
        .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {name} in luksDump"))
        .trim()
        .to_owned()
}

/// One `luksFormat` of a `mib` MiB image with [`PASS`], checked with
/// [`Image::check_agrees`] and then with `check`.
struct Format {
    args: &'static str,
    mib: u64,
    check: fn(&Image, &Header),
}

const FORMATS: &[Format] = &[
    Format {
        args: LUKS2,
        mib: 32,
        check: luks2_pbkdf2_aes_xts_512,
    },
    Format {
        args: "--type luks2 --pbkdf argon2id --pbkdf-memory 32768 --pbkdf-force-iterations 4 \
               --pbkdf-parallel 2 --key-size 256 --sector-size 512",
        mib: 32,
        check: luks2_argon2id_aes_xts_256_sector_512,
    },
    Format {
        args: "--type luks2 --pbkdf argon2i --pbkdf-memory 8192 --pbkdf-force-iterations 4 \
               --sector-size 4096",
        mib: 32,
        check: luks2_argon2i_sector_4096,
    },
    Format {
        args: "--type luks2 --cipher aes-cbc-essiv:sha256 --key-size 256 --pbkdf pbkdf2 \
               --pbkdf-force-iterations 1000 --hash sha512",
        mib: 32,
        check: luks2_aes_cbc_essiv_sha256,
    },
    Format {
        args: "--type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
               --luks2-metadata-size 1m --luks2-keyslots-size 2m --label rootfs \
               --subsystem latchkey",
        mib: 32,
        check: luks2_label_and_large_metadata,
    },
    Format {
        args: "--type luks1 --pbkdf-force-iterations 1000 --key-size 512",
        mib: 8,
        check: luks1_agrees_with_luks_dump,
    },
    Format {
        args: "--type luks1 --pbkdf-force-iterations 1000 --key-size 256",
        mib: 8,
        check: luks1_agrees_with_luks_dump,
    },
    Format {
        args: "--type luks1 --pbkdf-force-iterations 1000 --cipher aes-cbc-essiv:sha256 \
               --key-size 256",
        mib: 8,
        check: luks1_agrees_with_luks_dump,
    },
    Format {
        args: "--type luks1 --pbkdf-force-iterations 1000 --hash sha1",
        mib: 8,
        check: luks1_agrees_with_luks_dump,
    },
    Format {
        args: "--type luks1 --pbkdf-force-iterations 1000 --hash sha512 \
               --cipher aes-cbc-essiv:sha256 --key-size 128",
        mib: 8,
        check: luks1_agrees_with_luks_dump,
    },
];

#[test]
fn formats_agree_with_cryptsetup() {
    if !have(&["cryptsetup"]) {
        return;
    }
    for (i, f) in FORMATS.iter().enumerate() {
        let image = Image::format(&format!("fmt{i}"), f.mib, PASS, f.args);
        let h = image.check_agrees(f.args);
        (f.check)(&image, &h);
    }
}

fn luks2_pbkdf2_aes_xts_512(image: &Image, h: &Header) {
    let dump = image.dump();
    assert_eq!(h.version(), Version::Luks2);
    assert_eq!(h.uuid(), dump_field(&dump, "UUID"));
    let u = image.open(h, PASS, Some(0)).unwrap();
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

fn luks2_argon2id_aes_xts_256_sector_512(image: &Image, h: &Header) {
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
    let u = image.open(h, PASS, None).unwrap();
    assert_eq!(u.dm.key_size, 32);
    assert_eq!(u.dm.sector_size, 512);
    // The memory limit is enforced with a clear error.
    let mut dev = fs::File::open(&image.img).unwrap();
    match unlock(h, &mut dev, PASS, None, &Limits::new(16384)) {
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

fn luks2_argon2i_sector_4096(image: &Image, h: &Header) {
    assert!(image.dump().contains("sector: 4096 [bytes]"));
    let u = image.open(h, PASS, None).unwrap();
    assert_eq!(u.dm.sector_size, 4096);
}

fn luks2_aes_cbc_essiv_sha256(image: &Image, h: &Header) {
    assert_eq!(h.keyslots()[0].area_encryption, "aes-cbc-essiv:sha256");
    let u = image.open(h, PASS, None).unwrap();
    assert_eq!(u.dm.cipher, "aes-cbc-essiv:sha256");
    assert_eq!(u.dm.key_size, 32);
}

fn luks2_label_and_large_metadata(image: &Image, h: &Header) {
    assert_eq!(h.label(), Some("rootfs"));
    assert_eq!(h.subsystem(), Some("latchkey"));
    // Damage the primary: the 1 MiB secondary must still be found.
    let mut bytes = fs::read(&image.img).unwrap();
    bytes[..8].fill(0);
    let h2 = Header::from_bytes(&bytes[..4 << 20]).unwrap();
    assert_eq!(h2.health().used, HeaderCopy::Secondary);
    assert_eq!(h2.label(), Some("rootfs"));
}

/// Our dm parameters are what a LUKS1 luksDump says.
fn luks1_agrees_with_luks_dump(image: &Image, h: &Header) {
    assert_eq!(h.version(), Version::Luks1);
    let dump = image.dump();
    let u = image.open(h, PASS, None).unwrap();
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

#[test]
fn luks2_every_metadata_size_recovers_from_damaged_primary() {
    if !have(&["cryptsetup"]) {
        return;
    }
    for size in [
        "16k", "32k", "64k", "128k", "256k", "512k", "1m", "2m", "4m",
    ] {
        let args = format!("{LUKS2} --luks2-metadata-size {size} --luks2-keyslots-size 1m");
        let image = Image::format("mdsize", 24, b"pw", &args);
        let key_bytes = image.dumped_key();
        // Overwrite bytes in the primary's JSON area.
        let mut bytes = fs::read(&image.img).unwrap();
        bytes[4096..4200].fill(b'x');
        fs::write(&image.img, &bytes).unwrap();
        let h = image.header();
        assert_eq!(h.health().used, HeaderCopy::Secondary, "{size}");
        assert!(
            matches!(h.health().primary, CopyState::Damaged { .. }),
            "{size}"
        );
        let u = image.open(&h, b"pw", None).unwrap();
        assert_eq!(u.volume_key.expose(), &key_bytes[..], "{size}");
        // cryptsetup also still opens it (and would repair the primary).
        assert!(image.accepts(&image.key, None), "{size}");
    }
}

/// For each of `slots` (keyslot, passphrase, its key file): with no keyslot named,
/// ours opens that keyslot with the volume key; naming any of `slots`, ours and
/// cryptsetup agree.
fn check_slots(image: &Image, slots: &[(u32, &str, &Path)], named: &[u32]) {
    let vk = image.dumped_key();
    for &(slot, pass, file) in slots {
        let (opened, key) = image.unlock(pass.as_bytes(), None).unwrap();
        assert_eq!((opened, &key), (slot, &vk), "pass {pass}");
        for &other in named {
            let ours = image.unlock(pass.as_bytes(), Some(other)).is_ok();
            assert_eq!(
                ours,
                image.accepts(file, Some(other)),
                "pass {pass} slot {other}"
            );
            assert_eq!(ours, other == slot, "pass {pass} slot {other}");
        }
    }
}

#[test]
fn luks2_several_keyslots_agree_with_cryptsetup() {
    if !have(&["cryptsetup"]) {
        return;
    }
    let image = Image::format("slots", 32, b"zero", LUKS2);
    let k1 = image.key_file("k1", b"one");
    let k5 = image.key_file("k5", b"five");
    let k9 = image.key_file("k9", b"nine");
    image.add_key(
        &k1,
        "--pbkdf argon2id --pbkdf-memory 16384 --pbkdf-force-iterations 4",
    );
    image.add_key(
        &k5,
        "--key-slot 5 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --hash sha1",
    );
    image.add_key(
        &k9,
        "--key-slot 9 --pbkdf pbkdf2 --pbkdf-force-iterations 1000",
    );
    image.cryptsetup("config --priority prefer --key-slot 9", None, &[]);
    let h = image.header();
    let ids: Vec<u32> = h.keyslots().iter().map(|k| k.id).collect();
    assert_eq!(ids, [0, 1, 5, 9]);
    assert_eq!(h.keyslot(9).unwrap().priority, Priority::High);
    check_slots(
        &image,
        &[
            (0, "zero", &image.key),
            (1, "one", &k1),
            (5, "five", &k5),
            (9, "nine", &k9),
        ],
        &[0, 1, 5, 9],
    );
    // Ignored priority: not tried unless named, like cryptsetup.
    image.cryptsetup("config --priority ignore --key-slot 5", None, &[]);
    assert!(image.unlock(b"five", None).is_err());
    assert!(!image.accepts(&k5, None));
    assert!(image.unlock(b"five", Some(5)).is_ok());
    assert!(image.accepts(&k5, Some(5)));
    // Killed slot.
    image.cryptsetup("luksKillSlot", Some(&image.key), &["1"]);
    assert!(matches!(
        image.unlock(b"one", Some(1)),
        Err(Error::NoSuchKeyslot(1))
    ));
    assert!(!image.accepts(&k1, None));
}

#[test]
fn luks1_several_keyslots() {
    if !have(&["cryptsetup"]) {
        return;
    }
    let image = Image::format("l1slots", 8, b"zero", LUKS1);
    let k3 = image.key_file("k3", b"three");
    image.add_key(&k3, "--key-slot 3 --pbkdf-force-iterations 1000");
    check_slots(
        &image,
        &[(0, "zero", &image.key), (3, "three", &k3)],
        &[0, 1, 2, 3, 4, 5, 6, 7],
    );
}

/// Rewrites both binary headers of a LUKS2 image in place: `edit` gets each
/// 16 KiB header (its JSON area from byte 4096), then the checksum area is
/// zeroed and `checksum` of the header is stored there.
fn rewrite_headers(image: &Image, edit: impl Fn(&mut [u8]), checksum: fn(&[u8]) -> Vec<u8>) {
    let mut bytes = fs::read(&image.img).unwrap();
    for base in [0usize, 16384] {
        let hdr = &mut bytes[base..base + 16384];
        edit(hdr);
        hdr[448..512].fill(0);
        let sum = checksum(hdr);
        hdr[448..448 + sum.len()].copy_from_slice(&sum);
    }
    fs::write(&image.img, &bytes).unwrap();
}

fn sha256(data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(data).to_vec()
}

#[test]
fn luks2_config_flags_are_read_like_cryptsetup() {
    if !have(&["cryptsetup"]) {
        return;
    }
    let image = Image::format("flags", 32, b"pw", LUKS2);
    // cryptsetup stores flags only when activating with --persistent, which
    // needs device-mapper; write them into both JSON copies ourselves and let
    // luksDump confirm the result is a valid header.
    let add_flags = |hdr: &mut [u8]| {
        let area = &mut hdr[4096..];
        let len = area.iter().position(|&b| b == 0).unwrap();
        let text = String::from_utf8(area[..len].to_vec()).unwrap();
        let text = text.replacen(
            "\"config\":{",
            "\"config\":{\"flags\":[\"allow-discards\",\"same-cpu-crypt\",\"submit-from-crypt-cpus\",\"no-read-workqueue\",\"no-write-workqueue\"],",
            1,
        );
        area[..text.len()].copy_from_slice(text.as_bytes());
    };
    rewrite_headers(&image, add_flags, sha256);
    let flags = dump_field(&image.dump(), "Flags");
    for f in [
        "allow-discards",
        "same-cpu-crypt",
        "submit-from-crypt-cpus",
        "no-read-workqueue",
        "no-write-workqueue",
    ] {
        assert!(flags.contains(f), "{flags}");
    }
    let h = image.header();
    assert!(h.health().is_clean());
    let f = h.flags();
    assert!(f.allow_discards && f.same_cpu_crypt && f.submit_from_crypt_cpus);
    assert!(f.no_read_workqueue && f.no_write_workqueue);
    assert!(image.open(&h, b"pw", None).unwrap().dm.flags.allow_discards);
}

/// cryptsetup writes sha256 checksums but accepts any hash it knows; ours must too.
#[test]
fn luks2_other_checksum_algorithms() {
    if !have(&["cryptsetup"]) {
        return;
    }
    let sha1 = |d: &[u8]| -> Vec<u8> {
        use sha1::Digest;
        sha1::Sha1::digest(d).to_vec()
    };
    let sha512 = |d: &[u8]| -> Vec<u8> {
        use sha2::Digest;
        sha2::Sha512::digest(d).to_vec()
    };
    for (alg, checksum) in [("sha1", sha1 as fn(&[u8]) -> Vec<u8>), ("sha512", sha512)] {
        let image = Image::format("csum", 32, b"pw", LUKS2);
        let name = |hdr: &mut [u8]| {
            hdr[72..104].fill(0);
            hdr[72..72 + alg.len()].copy_from_slice(alg.as_bytes());
        };
        rewrite_headers(&image, name, checksum);
        let h = image.header();
        assert!(h.health().is_clean(), "{alg}: {:?}", h.health());
        // cryptsetup agrees the header is valid and the key opens.
        assert!(image.accepts(&image.key, None), "{alg}");
        assert_eq!(image.unlock(b"pw", None).unwrap().1, image.dumped_key());
        // A flipped JSON byte is caught under this algorithm too.
        let mut bad = fs::read(&image.img).unwrap();
        bad[4096 + 10] ^= 1;
        let h = Header::from_bytes(&bad[..1 << 20]).unwrap();
        assert_eq!(h.health().used, HeaderCopy::Secondary, "{alg}");
    }
}

/// Bind a key file's volume with clevis; `cfg` may name `@ADV@`.
fn clevis_bind(image: &Image, pin: &str, cfg: &str, extra: &[&str]) {
    let adv = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../proto/tests/data/jwe/adv-for-offline.jws"
    );
    let cfg = cfg.replace("@ADV@", adv);
    let mut c = Command::new("clevis");
    c.args([
        "luks",
        "bind",
        "-y",
        "-d",
        s(&image.img),
        "-k",
        s(&image.key),
    ]);
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
    let image = Image::format("clevis2", 32, b"pw", LUKS2);
    clevis_bind(&image, "tang", TANG, &[]);
    clevis_bind(&image, "sss", SSS, &["-s", "4", "-t", "3"]);
    let h = image.header();
    let b = h.clevis_bindings();
    assert_eq!(b.len(), 2);
    let list = run(Command::new("clevis").args(["luks", "list", "-d", s(&image.img)]));
    for binding in b {
        let token = binding.token_id.unwrap();
        assert_eq!(binding.source, BindingSource::Luks2Token(token));
        let export = image.cryptsetup(&format!("token export --token-id {token}"), None, &[]);
        let v: serde_json::Value = serde_json::from_str(&export).unwrap();
        assert_eq!(
            v["keyslots"],
            serde_json::json!([binding.keyslot.to_string()])
        );
        let compact = jose_compact(&v["jwe"].to_string(), &image.dir);
        assert_eq!(binding.jwe.as_ref().unwrap().to_compact(), compact);
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
    let image = Image::format("clevis1", 8, b"pw", LUKS1);
    clevis_bind(&image, "tang", TANG, &[]);
    clevis_bind(&image, "sss", SSS, &["-s", "5"]);
    let h = image.header();
    let b = h.clevis_bindings();
    let slots: Vec<u32> = b.iter().map(|b| b.keyslot).collect();
    assert_eq!(slots, [1, 5]);
    let luksmeta = |args: &[&str]| {
        run(Command::new("luksmeta")
            .args(args)
            .args(["-d", s(&image.img)]))
    };
    for binding in b {
        assert_eq!(binding.source, BindingSource::LuksMeta(binding.keyslot));
        assert_eq!(binding.token_id, None);
        let loaded = luksmeta(&["load", "-s", &binding.keyslot.to_string()]);
        assert_eq!(binding.jwe.as_ref().unwrap().to_compact(), loaded);
    }
    let show = luksmeta(&["show"]);
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
        let args = format!("--type {ty} --pbkdf pbkdf2 --pbkdf-force-iterations 1000");
        let image = Image::format("clevisnull", 32, b"pw", &args);
        clevis_bind(
            &image,
            "sss",
            r#"{"t":1,"pins":{"null":[{}]}}"#,
            &["-s", "2"],
        );
        let h = image.header();
        let binding = &h.clevis_bindings()[0];
        assert_eq!(binding.keyslot, 2);
        let pass = run_in(
            Command::new("clevis").arg("decrypt"),
            binding.jwe.as_ref().unwrap().to_compact().as_bytes(),
        );
        let u = image
            .open(&h, pass.as_bytes(), Some(binding.keyslot))
            .unwrap();
        assert_eq!(u.keyslot, 2);
        assert_eq!(u.volume_key.expose(), &image.dumped_key()[..]);
        assert!(image.open(&h, pass.as_bytes(), Some(0)).is_err());
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
        "--sector-size 4096",
        "--sector-size 512 --key-size 256",
        "--cipher aes-cbc-essiv:sha256 --key-size 256 --sector-size 4096",
        "--cipher aes-cbc-essiv:sha256 --key-size 256 --sector-size 512",
    ] {
        let image = Image::blank("reenc", 48, b"pw");
        let mut bytes = fs::read(&image.img).unwrap();
        bytes[..PLAIN].copy_from_slice(&pattern);
        fs::write(&image.img, &bytes).unwrap();
        let words = format!("reencrypt --encrypt {LUKS2} --reduce-device-size 32M {extra}");
        image.cryptsetup(&words, Some(&image.key), &[]);
        let h = image.header();
        assert!(h.requirements().is_empty(), "{:?}", h.requirements());
        let u = image.open(&h, b"pw", None).unwrap();
        let start = (u.dm.offset_sectors * 512) as usize;
        let mut data = fs::read(&image.img).unwrap()[start..start + PLAIN].to_vec();
        assert_ne!(data, pattern);
        u.decrypt_data(0, &mut data).unwrap();
        assert!(data == pattern, "{extra}: decrypted data differs");
        // A later stretch alone decrypts the same way.
        let mut tail = fs::read(&image.img).unwrap()[start + 8192..start + 16384].to_vec();
        u.decrypt_data(8192, &mut tail).unwrap();
        assert!(tail == pattern[8192..16384], "{extra}");
    }
}
