//! The character-device transport without a TPM: a FIFO opened read-write echoes each
//! command back, which exercises the non-blocking write, the poll and the single read
//! of a response, as /dev/tpmrm0 is used.

mod common;

use std::process::Command;
use std::time::Duration;

use latchkey_testkit::{Scratch, run_ok};
use latchkey_tpm2::{Error, Tcti, Tpm};

#[test]
fn device_io_round_trip_through_a_fifo() {
    let dir = Scratch::new("fifo");
    let fifo = dir.path("tpmrm0");
    run_ok(Command::new("mkfifo").arg(&fifo));
    let mut tpm = Tpm::open(&Tcti::Device(Some(fifo.clone())), Duration::from_secs(5)).unwrap();
    assert_eq!(tpm.name(), format!("device:{}", fifo.display()));
    // The "response" is the command itself: a well-framed message whose response code
    // field holds TPM_CC_CreatePrimary (0x131), which the TPM layer reports as a refusal.
    let e = tpm.primary("ecc", "sha256").unwrap_err();
    assert!(
        matches!(e, Error::Tpm { command: "TPM2_CreatePrimary", rc } if rc.0 == 0x131),
        "{e}"
    );
}

#[test]
fn a_missing_device_is_named() {
    let dir = Scratch::new("nodev");
    let e = Tpm::open(
        &Tcti::Device(Some(dir.path("tpm0"))),
        Duration::from_secs(1),
    )
    .err()
    .unwrap();
    assert!(e.is_unavailable());
    assert!(e.to_string().starts_with("no TPM device: "), "{e}");
    // Something that cannot be opened read-write (a directory) is an open error.
    let e = Tpm::open(&Tcti::Device(Some(dir.0.clone())), Duration::from_secs(1))
        .err()
        .unwrap();
    assert!(matches!(e, Error::Open { .. }), "{e}");
}

/// The unsealer opens the TPM once for every binding of a run: the device node may go
/// (here: be removed) once it is open.
#[test]
fn the_unsealer_opens_the_device_once() {
    use latchkey_proto::pin::Unseal;
    use latchkey_tpm2::Unsealer;
    use std::time::Instant;
    let dir = Scratch::new("fifo-once");
    let fifo = dir.path("tpmrm0");
    run_ok(Command::new("mkfifo").arg(&fifo));
    let u = Unsealer::new(Tcti::Device(Some(fifo.clone())), Duration::from_secs(5));
    let b = common::hollow_binding();
    let deadline = Instant::now() + Duration::from_secs(30);
    // The echo is a refusal of CreatePrimary (see above), each time through the same
    // open descriptor.
    let first = u.unseal(&b, deadline, &Default::default()).err().unwrap();
    assert!(first.starts_with("TPM2_CreatePrimary: "), "{first}");
    std::fs::remove_file(&fifo).unwrap();
    assert_eq!(
        u.unseal(&b, deadline, &Default::default()).err().unwrap(),
        first
    );
}
