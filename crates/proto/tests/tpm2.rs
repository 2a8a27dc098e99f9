//! The tpm2 pin's clevis side without a TPM: the header it writes, the unseal step of the
//! plan, sss trees that mix it with other pins, and what is refused.

mod common;

use common::*;
use latchkey_proto::Error;
use latchkey_proto::b64;
use latchkey_proto::jwe::Jwe;
use latchkey_proto::pin::{
    self, Decryption, EncryptIo, SealRequest, Sealed, Status, describe, needs_network,
};
use latchkey_proto::secret::Secret;
use serde_json::{Value, json};

/// "Seals" by keeping the data in `jwk_priv` in the clear, so a test can unseal it.
struct FakeTpm {
    sealed: Vec<(String, Option<String>, Vec<u8>)>,
}

impl EncryptIo for FakeTpm {
    fn fetch_adv(&mut self, _: &str, _: Option<&str>) -> Result<Vec<u8>, String> {
        Err("no network".into())
    }
    fn read_file(&mut self, _: &str) -> Result<Vec<u8>, String> {
        Err("no files".into())
    }
    fn trust(&mut self, _: &str, _: &[String]) -> bool {
        false
    }
    fn tpm2_seal(&mut self, req: &SealRequest) -> Result<Sealed, String> {
        self.sealed
            .push((req.hash.clone(), req.pcr_bank.clone(), req.pcr_ids.clone()));
        Ok(Sealed {
            jwk_pub: vec![0, 1, 2],
            jwk_priv: req.data.expose().to_vec(),
            pcr_bank: (!req.pcr_ids.is_empty())
                .then(|| req.pcr_bank.clone().unwrap_or_else(|| "sha1".into())),
        })
    }
}

fn seal(cfg: &str, plaintext: &[u8]) -> (String, FakeTpm) {
    let mut io = FakeTpm { sealed: Vec::new() };
    let jwe = pin::encrypt_json("tpm2", cfg, plaintext, false, &mut io, &mut rng()).unwrap();
    (jwe, io)
}

fn sealed_data(header: &Value) -> Secret {
    Secret::new(b64::decode(header["jwk_priv"].as_str().unwrap()).unwrap())
}

#[test]
fn header_and_sealed_jwk_are_clevis_s() {
    let (jwe, io) = seal(r#"{"pcr_ids":"0, 7","pcr_bank":"sha256"}"#, b"p");
    assert_eq!(
        io.sealed,
        [("sha256".into(), Some("sha256".into()), vec![0, 7])]
    );
    let h = Jwe::parse(&jwe).unwrap().header;
    let t = &h["clevis"]["tpm2"];
    let keys: Vec<&String> = t.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["hash", "jwk_priv", "jwk_pub", "key", "pcr_bank", "pcr_ids"]
    );
    assert_eq!(t["hash"], "sha256");
    assert_eq!(t["key"], "ecc");
    assert_eq!(t["pcr_ids"], "0,7");
    assert_eq!(h["alg"], "dir");
    // The sealed JWK: jose's `jwk gen -i '{"alg":"A256GCM"}'` and a newline.
    let data = sealed_data(t);
    let text = std::str::from_utf8(data.expose()).unwrap();
    assert!(text.starts_with(r#"{"alg":"A256GCM","k":""#), "{text}");
    assert!(
        text.ends_with("\",\"key_ops\":[\"encrypt\",\"decrypt\"],\"kty\":\"oct\"}\n"),
        "{text}"
    );
    // No PCRs: no bank or ids in the header.
    let (jwe, _) = seal(r#"{"pcr_bank":"sha256"}"#, b"p");
    let t = &Jwe::parse(&jwe).unwrap().header["clevis"]["tpm2"];
    assert!(t.get("pcr_bank").is_none() && t.get("pcr_ids").is_none());
    assert_eq!(describe(&Jwe::parse(&jwe).unwrap().header), "tpm2");
}

#[test]
fn the_plan_unseals_then_decrypts() {
    let (jwe, _) = seal(
        r#"{"pcr_ids":"7","pcr_bank":"sha256","hash":"sha1"}"#,
        b"secret",
    );
    let jwe = Jwe::parse(&jwe).unwrap();
    assert!(!needs_network(&jwe.header));
    assert_eq!(describe(&jwe.header), "tpm2 sha256:7");
    let mut plan = Decryption::new(&jwe, &mut rng()).unwrap();
    assert!(plan.requests().is_empty());
    let reqs = plan.unseal_requests();
    assert_eq!(reqs.len(), 1);
    assert!(plan.unseal_requests().is_empty(), "handed out once");
    let b = &reqs[0].binding;
    assert_eq!((b.hash.as_str(), b.key.as_str()), ("sha1", "ecc"));
    assert_eq!(
        (b.pcr_bank.as_deref(), b.pcr_ids.as_slice()),
        (Some("sha256"), &[7u8][..])
    );
    assert_eq!(b.jwk_pub, [0, 1, 2]);
    assert_eq!(b.describe(), "tpm2 (sha256:7)");
    let unsealed = Secret::new(b.jwk_priv.clone());
    plan.supply_unseal(reqs[0].id, Ok(unsealed));
    match plan.status() {
        Status::Done(s) => assert_eq!(s.expose(), b"secret"),
        _ => panic!("not done"),
    }

    // The TPM's refusal becomes the binding's error.
    let mut plan = Decryption::new(&jwe, &mut rng()).unwrap();
    let id = plan.unseal_requests()[0].id;
    plan.supply_unseal(id, Err("PCR sha256:7 policy does not match".into()));
    match plan.status() {
        Status::Failed(e) => assert_eq!(
            e.to_string(),
            "tpm2 (sha256:7): PCR sha256:7 policy does not match"
        ),
        _ => panic!("not failed"),
    }

    // Something that is not a JWK, or another key: no plaintext.
    for bad in [
        &b"garbage"[..],
        br#"{"kty":"oct","k":"AAAA"}"#,
        br#"{"kty":"EC"}"#,
    ] {
        let mut plan = Decryption::new(&jwe, &mut rng()).unwrap();
        let id = plan.unseal_requests()[0].id;
        plan.supply_unseal(id, Ok(Secret::from_slice(bad)));
        assert!(matches!(plan.status(), Status::Failed(Error::Tpm { .. })));
    }
}

#[test]
fn sss_mixes_tpm2_with_other_pins() {
    let mut io = FakeTpm { sealed: Vec::new() };
    let cfg = r#"{"t":2,"pins":{"tpm2":[{},{"pcr_ids":"7"}],"null":{}}}"#;
    let jwe = pin::encrypt_json("sss", cfg, b"mixed", false, &mut io, &mut rng()).unwrap();
    let jwe = Jwe::parse(&jwe).unwrap();
    assert_eq!(describe(&jwe.header), "sss 2 of [tpm2, tpm2 sha1:7, null]");
    assert!(!needs_network(&jwe.header));
    let mut plan = Decryption::new(&jwe, &mut rng()).unwrap();
    let reqs = plan.unseal_requests();
    assert_eq!(reqs.len(), 2);
    // One TPM binding fails; the other and null reach the threshold.
    plan.supply_unseal(reqs[1].id, Err("no TPM".into()));
    assert!(matches!(plan.status(), Status::Pending));
    plan.supply_unseal(
        reqs[0].id,
        Ok(Secret::new(reqs[0].binding.jwk_priv.clone())),
    );
    match plan.status() {
        Status::Done(s) => assert_eq!(s.expose(), b"mixed"),
        _ => panic!("not done"),
    }
    // Both fail alike: the reason is said once, for both bindings.
    let mut plan = Decryption::new(&jwe, &mut rng()).unwrap();
    for r in plan.unseal_requests() {
        plan.supply_unseal(r.id, Err("no TPM device: /dev/tpmrm0 not found".into()));
    }
    match plan.status() {
        Status::Failed(e) => assert_eq!(
            e.to_string(),
            "sss threshold 2, got 1 of 3 shares (tpm2 (no PCR policy), tpm2 (sha1:7): no TPM device: /dev/tpmrm0 not found)"
        ),
        _ => panic!("not failed"),
    }
}

#[test]
fn refused_forms_say_why() {
    let mut io = FakeTpm { sealed: Vec::new() };
    let e = pin::encrypt_json(
        "tpm2",
        r#"{"policy_pubkey_path":"/boot/k.json","policy_ref":"","policy_path":"/boot/p.json"}"#,
        b"x",
        false,
        &mut io,
        &mut rng(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "tpm2 pin config: policy_pubkey_path: authorized (signed) policies are not supported"
    );
    for (cfg, field) in [
        (r#"{"pcr_ids":"25"}"#, "pcr_ids"),
        (r#"{"pcr_digest":"AAAA"}"#, "pcr_digest"),
        (r#"{"hash":1}"#, "hash"),
    ] {
        let e = pin::encrypt_json("tpm2", cfg, b"x", false, &mut io, &mut rng()).unwrap_err();
        assert!(e.to_string().contains(field), "{cfg}: {e}");
    }

    // A clevis-pin-tpm2 header with an authorized policy, and its tpm2plus pin.
    let (jwe, _) = seal("{}", b"p");
    let signed = edit_header(&jwe, |h| h["clevis"]["tpm2"]["policy_ref"] = json!(""));
    let e = Decryption::new(&Jwe::parse(&signed).unwrap(), &mut rng())
        .err()
        .unwrap();
    assert!(e.to_string().contains("clevis.tpm2.policy_ref"), "{e}");
    let plus = edit_header(&jwe, |h| h["clevis"]["pin"] = json!("tpm2plus"));
    let e = Decryption::new(&Jwe::parse(&plus).unwrap(), &mut rng())
        .err()
        .unwrap();
    assert!(e.to_string().contains("tpm2plus"), "{e}");
    for field in ["hash", "key", "jwk_pub", "jwk_priv"] {
        let broken = edit_header(&jwe, |h| {
            h["clevis"]["tpm2"].as_object_mut().unwrap().remove(field);
        });
        let e = Decryption::new(&Jwe::parse(&broken).unwrap(), &mut rng())
            .err()
            .unwrap();
        assert_eq!(e.to_string(), format!("JWE has no clevis.tpm2.{field}"));
    }
    let no_bank = edit_header(&jwe, |h| h["clevis"]["tpm2"]["pcr_ids"] = json!("7"));
    let e = Decryption::new(&Jwe::parse(&no_bank).unwrap(), &mut rng())
        .err()
        .unwrap();
    assert_eq!(e.to_string(), "JWE has no clevis.tpm2.pcr_bank");
}
