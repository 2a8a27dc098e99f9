//! JWEs that the real clevis made against the real tang (the samples' jwe/*.jwe)
//! decrypt through our tangd serving copies of the same key directories.
//! The JWEs name fixed ports (18081, 18084), so the /rec requests of
//! latchkey-proto's decryption plan are sent to our server's port instead.

mod common;

use common::*;
use latchkey_proto::jwe::Jwe;
use latchkey_proto::pin::{Decryption, Status};

fn decrypt_through(tangd: &Tangd, jwe_file: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(sample(jwe_file)).unwrap();
    let jwe = Jwe::parse(&text).unwrap();
    let mut rng = latchkey_sys::rng::os();
    let mut plan = Decryption::new(&jwe, &mut rng).unwrap();
    for req in plan.requests() {
        let path = &req.rec_url[req.url.len()..];
        assert!(path.starts_with("/rec/"), "{}", req.rec_url);
        let reply = post(tangd.addr, path, &req.body().unwrap());
        assert_eq!(reply.status, 200, "{path}");
        plan.supply(req.id, Ok(reply.body));
    }
    match plan.status() {
        Status::Done(secret) => secret.expose().to_vec(),
        Status::Failed(e) => panic!("{jwe_file}: {e}"),
        Status::Pending => panic!("{jwe_file}: still pending"),
    }
}

#[test]
fn clevis_jwe_from_real_tang() {
    let (_keys, tangd) = Tangd::sample();
    assert_eq!(
        decrypt_through(&tangd, "jwe/tang.jwe"),
        b"tang-sample-passphrase-1"
    );
}

#[test]
fn clevis_jwe_whose_key_was_rotated_away() {
    let keys = copy_keys("tang-db-rot");
    let tangd = Tangd::start(keys.dir(), &[]);
    assert_eq!(
        decrypt_through(&tangd, "jwe/tang-prerotation.jwe"),
        b"pre-rotation-passphrase"
    );
}
