//! Any bytes as a reply to latchkey-client, handed to the response parser in
//! pieces the way the transport reads them: it must answer or refuse, never
//! panic, never hold or read more than its limits, and reach the same
//! verdict however the bytes are split.
#![no_main]

use latchkey_client::http::{MAX_BODY, MAX_HEAD, MAX_RESPONSE, Response, ResponseParser};
use libfuzzer_sys::fuzz_target;

/// Feeds `data` in pieces of `piece` bytes, dropping what is consumed.
fn feed(data: &[u8], piece: usize) -> Option<Response> {
    let mut p = ResponseParser::new();
    let mut held: Vec<u8> = Vec::new();
    let mut consumed = 0;
    let mut chunks = data.chunks(piece).peekable();
    loop {
        let next = chunks.next();
        if let Some(c) = next {
            held.extend_from_slice(c);
        }
        let eof = next.is_none();
        let step = p.advance(&held, eof).ok()?;
        assert!(step.consumed <= held.len());
        consumed += step.consumed;
        assert!(consumed <= MAX_RESPONSE + piece, "read {consumed} bytes");
        held.drain(..step.consumed);
        assert!(held.len() <= MAX_HEAD + 2 * piece, "held {} bytes", held.len());
        if let Some(r) = step.response {
            assert!(r.body.len() <= MAX_BODY);
            return Some(r);
        }
        assert!(!eof, "no verdict at the end of the stream");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, data)) = data.split_first() else {
        return;
    };
    let piece = usize::from(first % 64) + 1;
    let whole = feed(data, data.len().max(1));
    let split = feed(data, piece);
    assert_eq!(whole, split);
});
