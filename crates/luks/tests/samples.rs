//! Unit tests on images made by the real cryptsetup/clevis/luksmeta (see data/README.md).

use latchkey_luks::{
    BindingSource, ClevisBinding, CopyState, DataSize, Error, Header, HeaderCopy, Limits, Version,
    unlock,
};
use std::io::Cursor;

const LUKS2: &[u8] = include_bytes!("data/luks2/luks2-bound.first32KiB.bin");
const LUKS1: &[u8] = include_bytes!("data/luks1/luks1-bound.first2MiB.img");

fn data(path: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/data/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap()
        .trim()
        .to_owned()
}

/// The binding's JWE in compact form, as `jose jwe fmt -c` prints it.
fn compact(b: &ClevisBinding) -> String {
    b.jwe.as_ref().expect("the JWE parses").to_compact()
}

fn limits() -> Limits {
    Limits::new(1 << 20)
}

#[test]
fn luks2_sample_header_and_clevis_tokens() {
    let h = Header::from_bytes(LUKS2).unwrap();
    assert_eq!(h.version(), Version::Luks2);
    assert_eq!(h.uuid(), "a5910823-ec8f-46fc-a8c2-7e55a6c70994");
    assert_eq!(h.label(), None);
    assert!(h.health().is_clean());
    assert_eq!(h.health().primary, CopyState::Valid { seqid: 15 });
    let ids: Vec<u32> = h.keyslots().iter().map(|k| k.id).collect();
    assert_eq!(ids, [0, 1, 2, 3, 7]);
    let b = h.clevis_bindings();
    let got: Vec<(u32, Option<u32>)> = b.iter().map(|b| (b.keyslot, b.token_id)).collect();
    assert_eq!(
        got,
        [(1, Some(0)), (2, Some(1)), (3, Some(2)), (7, Some(5))]
    );
    for b in b {
        let token = b.token_id.unwrap();
        assert_eq!(b.source, BindingSource::Luks2Token(token));
        assert_eq!(compact(b), data(&format!("luks2/token{token}.compact.jwe")));
    }
    let (_, seg) = &h.segments()[0];
    assert_eq!(seg.offset, 16 << 20);
    assert_eq!(seg.size, DataSize::Dynamic);
    assert_eq!(seg.encryption, "aes-xts-plain64");
    assert_eq!(h.clevis_binding_for(7).unwrap().token_id, Some(5));
}

#[test]
fn luks2_sample_damaged_primary_json_reads_secondary() {
    let mut img = LUKS2.to_vec();
    img[5000] ^= 0x55;
    let h = Header::from_bytes(&img).unwrap();
    assert_eq!(h.health().used, HeaderCopy::Secondary);
    assert!(
        matches!(&h.health().primary, CopyState::Damaged { reason } if reason.contains("checksum"))
    );
    assert_eq!(h.health().secondary, CopyState::Valid { seqid: 15 });
    assert!(!h.health().is_clean());
    assert_eq!(
        h.clevis_bindings(),
        Header::from_bytes(LUKS2).unwrap().clevis_bindings()
    );
}

#[test]
fn luks2_sample_wiped_primary_magic_finds_secondary() {
    let mut img = LUKS2.to_vec();
    img[..4096].fill(0);
    let h = Header::from_bytes(&img).unwrap();
    assert_eq!(h.health().used, HeaderCopy::Secondary);
    assert_eq!(h.uuid(), "a5910823-ec8f-46fc-a8c2-7e55a6c70994");
}

#[test]
fn luks2_sample_damaged_secondary_reads_primary() {
    let mut img = LUKS2.to_vec();
    img[16384 + 100] ^= 1;
    let h = Header::from_bytes(&img).unwrap();
    assert_eq!(h.health().used, HeaderCopy::Primary);
    assert!(matches!(h.health().secondary, CopyState::Damaged { .. }));
}

#[test]
fn luks2_sample_both_copies_damaged_is_an_error() {
    let mut img = LUKS2.to_vec();
    img[5000] ^= 1;
    img[16384 + 5000] ^= 1;
    match Header::from_bytes(&img) {
        Err(Error::NoValidHeader { primary, secondary }) => {
            assert!(primary.contains("checksum"), "{primary}");
            assert!(secondary.contains("checksum"), "{secondary}");
        }
        other => panic!("expected NoValidHeader, got {:?}", other.map(|_| ())),
    }
    // A device cut inside the primary header: each copy's own reason.
    assert_eq!(
        Header::from_bytes(&LUKS2[..600]).err().unwrap().to_string(),
        "no valid LUKS2 header: primary: device too short: LUKS2 binary header lies beyond \
         its end; secondary: no LUKS2 magic"
    );
}

#[test]
fn luks2_sample_newer_secondary_wins() {
    // Bump the secondary's seqid and fix its checksum: it must be preferred.
    use sha2::{Digest, Sha256};
    let mut img = LUKS2.to_vec();
    let sec = &mut img[16384..32768];
    sec[16..24].copy_from_slice(&16u64.to_be_bytes());
    sec[448..512].fill(0);
    let sum = Sha256::digest(&*sec);
    sec[448..480].copy_from_slice(&sum);
    let h = Header::from_bytes(&img).unwrap();
    assert_eq!(h.health().used, HeaderCopy::Secondary);
    assert_eq!(h.health().secondary, CopyState::Valid { seqid: 16 });
}

#[test]
fn luks2_token_whose_jwe_does_not_parse_is_that_bindings_error() {
    // The newer secondary copy, with token 0's JWE losing its "iv" member.
    use sha2::{Digest, Sha256};
    let mut img = LUKS2.to_vec();
    let sec = &mut img[16384..32768];
    sec[16..24].copy_from_slice(&16u64.to_be_bytes());
    let json = &mut sec[4096..];
    let at = json
        .windows(6)
        .position(|w| w == b"\"iv\":\"")
        .expect("token 0's JWE has an iv");
    json[at + 1..at + 3].copy_from_slice(b"IV");
    sec[448..512].fill(0);
    let sum = Sha256::digest(&*sec);
    sec[448..480].copy_from_slice(&sum);
    let h = Header::from_bytes(&img).unwrap();
    assert_eq!(h.health().used, HeaderCopy::Secondary);
    let b = h.clevis_bindings();
    assert_eq!(b.len(), 4);
    assert_eq!(b[0].token_id, Some(0));
    let e = b[0].jwe.as_ref().unwrap_err().to_string();
    assert!(e.contains("iv"), "{e}");
    for b in &b[1..] {
        assert!(b.jwe.is_ok(), "{b}");
    }
}

#[test]
fn truncated_and_garbage_input_never_panics() {
    for cut in [0, 5, 8, 100, 4095, 4096, 8000, 16383, 16384, 20000, 32767] {
        let _ = Header::from_bytes(&LUKS2[..cut]);
    }
    for cut in [0, 8, 591, 592, 4096, 1_000_000, 2_068_480, 2_068_700] {
        let _ = Header::from_bytes(&LUKS1[..cut]);
    }
    assert!(matches!(
        Header::from_bytes(&[0u8; 70000]),
        Err(Error::NotLuks)
    ));
}

#[test]
fn luks1_sample_header_and_luksmeta() {
    let h = Header::from_bytes(LUKS1).unwrap();
    assert_eq!(h.version(), Version::Luks1);
    assert_eq!(h.uuid(), "672cef50-4c34-4591-baa3-c492495fba9e");
    let ids: Vec<u32> = h.keyslots().iter().map(|k| k.id).collect();
    assert_eq!(ids, [0, 1, 2]);
    let b = h.clevis_bindings();
    assert_eq!(b.len(), 2);
    for (b, slot) in b.iter().zip([1, 2]) {
        assert_eq!(b.keyslot, slot);
        assert_eq!(b.token_id, None);
        assert_eq!(b.source, BindingSource::LuksMeta(slot));
        assert_eq!(compact(b), data(&format!("luks1/luksmeta-slot{slot}.jwe")));
    }
}

#[test]
fn luks1_sample_unlocks_each_slot_and_agrees_on_key() {
    let h = Header::from_bytes(LUKS1).unwrap();
    let mut dev = Cursor::new(LUKS1);
    let mut keys = Vec::new();
    for (slot, file) in [(0, "initial-slot0"), (1, "slot1"), (2, "slot2")] {
        let pass = data(&format!("luks1/{file}.passphrase"));
        // Named slot.
        let u = unlock(&h, &mut dev, pass.as_bytes(), Some(slot), &limits()).unwrap();
        assert_eq!(u.keyslot, slot);
        // Any slot: the right one is found.
        let any = unlock(&h, &mut dev, pass.as_bytes(), None, &limits()).unwrap();
        assert_eq!(any.keyslot, slot);
        assert_eq!(u.dm.cipher, "aes-xts-plain64");
        assert_eq!(u.dm.key_size, 64);
        assert_eq!(u.dm.offset_sectors, 4096);
        assert_eq!(u.dm.sector_size, 512);
        assert_eq!(u.dm.version, Version::Luks1);
        keys.push(u.volume_key.expose().to_vec());
    }
    assert!(keys.windows(2).all(|w| w[0] == w[1]));
    // A passphrase for slot 1 does not open slot 0.
    let p1 = data("luks1/slot1.passphrase");
    assert!(matches!(
        unlock(&h, &mut dev, p1.as_bytes(), Some(0), &limits()),
        Err(Error::PassphraseRejected { tried }) if tried == [0]
    ));
    assert!(matches!(
        unlock(&h, &mut dev, b"wrong", None, &limits()),
        Err(Error::PassphraseRejected { tried }) if tried == [0, 1, 2]
    ));
    assert!(matches!(
        unlock(&h, &mut dev, b"x", Some(5), &limits()),
        Err(Error::NoSuchKeyslot(5))
    ));
}

#[test]
fn luks1_sample_luksmeta_crc_is_checked() {
    let mut img = LUKS1.to_vec();
    // Slot 1's JWE lives at hole start + 4096.
    img[2_068_480 + 4096 + 10] ^= 1;
    assert!(matches!(
        Header::from_bytes(&img),
        Err(Error::LuksMetaChecksum { what }) if what == "slot 1"
    ));
    let mut img = LUKS1.to_vec();
    img[2_068_480 + 20] ^= 1;
    assert!(matches!(
        Header::from_bytes(&img),
        Err(Error::LuksMetaChecksum { what }) if what == "header"
    ));
}

/// Costs from the header are hostile input: four billion PBKDF2 rounds in a
/// keyslot, or in the volume key digest, end at the caller's deadline; the
/// search over keyslots ends there too instead of moving on.
#[test]
fn luks1_sample_with_absurd_iterations_stops_at_the_deadline() {
    let slot0_iterations = 208 + 4;
    let digest_iterations = 164;
    let pass0 = data("luks1/initial-slot0.passphrase");
    for (offset, slot) in [
        (slot0_iterations, Some(0)),
        (slot0_iterations, None),
        (digest_iterations, Some(0)),
    ] {
        let mut img = LUKS1.to_vec();
        img[offset..offset + 4].copy_from_slice(&4_000_000_000u32.to_be_bytes());
        let h = Header::from_bytes(&img).unwrap();
        let start = std::time::Instant::now();
        let limits = limits().until(start + std::time::Duration::from_millis(300));
        let e = unlock(&h, &mut Cursor::new(&img), pass0.as_bytes(), slot, &limits)
            .err()
            .unwrap();
        println!(
            "offset {offset}, slot {slot:?}: {e} after {:?}",
            start.elapsed()
        );
        assert!(
            matches!(
                e,
                Error::KdfStopped {
                    slot: 0,
                    reason: latchkey_luks::Stop::Deadline
                }
            ),
            "{e}"
        );
    }
}
