//! Helpers shared by the integration tests: test data, key directories, recorded HTTP.
#![allow(dead_code)]

use std::path::PathBuf;

use latchkey_proto::jwk::Jwk;

pub fn path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

pub fn data(rel: &str) -> Vec<u8> {
    std::fs::read(path(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

pub fn text(rel: &str) -> String {
    String::from_utf8(data(rel)).unwrap()
}

pub use latchkey_sys::rng::os as rng;

/// Every `*.jwk` of a tang key directory, hidden (`.`-prefixed) ones included, as tang reads
/// them. Returns (file name, key).
pub fn key_dir(name: &str) -> Vec<(String, Jwk)> {
    let mut out = Vec::new();
    let dir = path(&format!("tang-db/{name}"));
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        let file = p.file_name().unwrap().to_string_lossy().into_owned();
        if file.ends_with(".jwk") {
            let key =
                Jwk::parse(&std::fs::read(&p).unwrap()).unwrap_or_else(|e| panic!("{file}: {e}"));
            out.push((file, key));
        }
    }
    out
}

pub fn keys(name: &str) -> Vec<Jwk> {
    key_dir(name).into_iter().map(|(_, k)| k).collect()
}

/// Splits a recorded HTTP message into (first line, body).
pub fn http(raw: &[u8]) -> (String, Vec<u8>) {
    let at = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8(raw[..at].to_vec()).unwrap();
    let first = head.lines().next().unwrap().to_string();
    (first, raw[at + 4..].to_vec())
}

/// Decodes lower-case hex.
#[allow(unused_imports)] // not every test binary decodes hex
pub use latchkey_testkit::unhex as hex;

use latchkey_proto::curve::RustCrypto;
use latchkey_proto::jwe::Jwe;
use latchkey_proto::pin::{Decryption, RecRequest, Status};
use latchkey_proto::{Error, Secret, tang};

/// The sample servers: URL → key directory.
pub const SERVERS: &[(&str, &str)] = &[
    ("http://127.0.0.1:18081", "tang-db"),
    ("http://127.0.0.1:18082", "tang-db2"),
    ("http://127.0.0.1:18083", "tang-db3"),
    ("http://127.0.0.1:18084", "tang-db-rot"),
    ("http://127.0.0.1:18085", "tang-db-auto"),
];

/// Answers a request the way tangd would, with the real exchange over a sample key
/// directory. `down` lists URLs that refuse connections.
pub fn serve(req: &RecRequest, down: &[&str]) -> Result<Vec<u8>, String> {
    if down.contains(&req.url.as_str()) {
        return Err("connection refused".into());
    }
    let (_, db) = SERVERS
        .iter()
        .find(|(u, _)| *u == req.url)
        .ok_or("no such server")?;
    let kid = req.rec_url.rsplit('/').next().unwrap();
    assert_eq!(req.rec_url, format!("{}/rec/{kid}", req.url));
    let body = req.body().map_err(|e| e.to_string())?;
    tang::rec(&keys(db), kid, &body, &RustCrypto).map_err(|e| format!("HTTP {}", e.status()))
}

/// Runs a plan to the end, answering with `answer`.
pub fn drive(
    text: &str,
    mut answer: impl FnMut(&RecRequest) -> Result<Vec<u8>, String>,
) -> Result<Secret, Error> {
    let jwe = Jwe::parse(text)?;
    let mut plan = Decryption::new(&jwe, &mut rng())?;
    for req in plan.requests() {
        if let Status::Done(_) | Status::Failed(_) = plan.status() {
            break;
        }
        let reply = answer(&req);
        plan.supply(req.id, reply);
    }
    match plan.status() {
        Status::Done(s) => Ok(s),
        Status::Failed(e) => Err(e),
        Status::Pending => panic!("plan still pending after every reply"),
    }
}

/// Decrypts with every sample server up.
pub fn decrypt(text: &str) -> Result<Secret, Error> {
    drive(text, |r| serve(r, &[]))
}

/// The error of a result whose Ok side cannot be printed (secrets have no Debug).
pub fn err<T>(r: Result<T, Error>) -> Error {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

/// Re-encodes a JWE's header after `edit` (the AAD changes, so only pre-decryption checks
/// can pass).
pub fn edit_header(text: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut jwe = Jwe::parse(text).unwrap();
    edit(&mut jwe.header);
    jwe.protected_b64 =
        latchkey_proto::b64::encode(serde_json::to_string(&jwe.header).unwrap().as_bytes());
    jwe.to_compact()
}

/// An [`latchkey_proto::pin::EncryptIo`] over fixed advertisements and files.
#[derive(Default)]
pub struct Io {
    pub advs: Vec<(String, Vec<u8>)>,
    pub files: Vec<(String, Vec<u8>)>,
    pub trust_answer: bool,
    pub asked: Vec<(String, Vec<String>)>,
    pub fetched: Vec<String>,
}

impl Io {
    /// Serves the sample `/adv` of every sample server.
    pub fn samples() -> Io {
        let mut io = Io::default();
        for (url, db) in SERVERS {
            let file = match *db {
                "tang-db-rot" => "adv/adv-tang-db-rot-current.json".to_string(),
                db => format!("adv/adv-{db}.json"),
            };
            io.advs.push((url.to_string(), data(&file)));
        }
        io
    }
}

impl latchkey_proto::pin::EncryptIo for Io {
    fn fetch_adv(&mut self, url: &str, thp: Option<&str>) -> Result<Vec<u8>, String> {
        self.fetched
            .push(format!("{url}/adv/{}", thp.unwrap_or("")));
        self.advs
            .iter()
            .find(|(u, _)| u == url)
            .map(|(_, b)| b.clone())
            .ok_or_else(|| "connection refused".into())
    }
    fn read_file(&mut self, path: &str) -> Result<Vec<u8>, String> {
        self.files
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
            .ok_or_else(|| "no such file".into())
    }
    fn trust(&mut self, url: &str, thumbprints: &[String]) -> bool {
        self.asked.push((url.into(), thumbprints.to_vec()));
        self.trust_answer
    }
}

/// Asserts that `e` is an sss threshold not reached: `t` shares needed, `got` of `total`.
#[track_caller]
pub fn assert_threshold(e: &latchkey_proto::Error, t: usize, got: usize, total: usize) {
    match e {
        latchkey_proto::Error::Threshold {
            t: et,
            got: eg,
            total: en,
            ..
        } => assert_eq!((*et, *eg, *en), (t, got, total), "{e}"),
        _ => panic!("not a threshold error: {e}"),
    }
}
