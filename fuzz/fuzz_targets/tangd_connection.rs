//! tangd's request loop on one kept-alive connection, fed any bytes in any
//! pieces: it must answer or close, never panic, and reach the same answers
//! however the bytes are split across reads. Each answer on the wire must be
//! a well-formed HTTP response.
//!
//! Input: one byte choosing the piece size, then the bytes the client sends.
#![no_main]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use tangd::log::Logger;
use tangd::server::{self, Body, Handler, Response};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Answers every request with what it saw, so that a request parsed
/// differently shows up as a different answer.
struct Echo;

impl Handler for Echo {
    async fn handle(&self, method: &str, target: &str, body: Vec<u8>) -> Response {
        let mut seen = format!("{method} {target} {}\n", body.len()).into_bytes();
        seen.extend_from_slice(&body);
        Response {
            status: if target == "/fail" { 404 } else { 200 },
            content_type: Some("text/plain"),
            body: Body::Owned(seen),
        }
    }
}

/// What the server wrote back, for `data` sent in pieces of `piece` bytes.
fn exchange(data: &[u8], piece: usize) -> Vec<u8> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    rt.block_on(async {
        let (client, server_end) = tokio::io::duplex(64 * 1024);
        let peer = SocketAddr::from((Ipv4Addr::LOCALHOST, 40000));
        let serve = tokio::spawn(server::serve_stream(
            server_end,
            peer,
            Arc::new(Echo),
            server::Config::default(),
            Logger::discard(),
        ));
        let (mut rx, mut tx) = tokio::io::split(client);
        let reader = tokio::spawn(async move {
            let mut out = Vec::new();
            let _ = rx.read_to_end(&mut out).await;
            out
        });
        for chunk in data.chunks(piece) {
            if tx.write_all(chunk).await.is_err() {
                break;
            }
            // Let the server read this piece on its own.
            tokio::task::yield_now().await;
        }
        let _ = tx.shutdown().await;
        drop(tx);
        serve.await.expect("the connection task");
        reader.await.expect("the reader task")
    })
}

/// The status codes of the responses in `wire`, skipping interim 100s (sent
/// or not depending on whether the body had already arrived); each response
/// must parse as HTTP/1.1.
fn statuses(mut wire: &[u8]) -> Vec<(u16, Vec<u8>)> {
    let mut seen = Vec::new();
    while !wire.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(head) = resp.parse(wire).expect("a well-formed response")
        else {
            panic!("a truncated response head");
        };
        let code = resp.code.expect("a status code");
        let len = resp
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .map(|h| std::str::from_utf8(h.value).unwrap().parse::<usize>().unwrap())
            .unwrap_or(0);
        let end = head + len;
        assert!(end <= wire.len(), "a truncated response body");
        if code != 100 {
            seen.push((code, wire[head..end].to_vec()));
        }
        wire = &wire[end..];
    }
    seen
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, data)) = data.split_first() else {
        return;
    };
    let piece = usize::from(first % 32) + 1;
    let whole = statuses(&exchange(data, data.len().max(1)));
    let split = statuses(&exchange(data, piece));
    assert_eq!(whole, split);
});
