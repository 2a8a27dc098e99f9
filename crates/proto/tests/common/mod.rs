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

pub fn rng() -> latchkey_proto::rand_core::UnwrapErr<getrandom::SysRng> {
    latchkey_proto::rand_core::UnwrapErr(getrandom::SysRng)
}

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
pub fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
