//! Any bytes as the start of an HTTP request to tangd: the head parser and
//! the chunked-body parser must answer or reject, never panic or overrun.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tangd::http::{Limits, parse_chunked, parse_head};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(Some((_, used))) = parse_head(data, &limits) {
        assert!(used <= data.len());
        let _ = parse_chunked(&data[used..], &limits);
    }
    let _ = parse_chunked(data, &limits);
});
