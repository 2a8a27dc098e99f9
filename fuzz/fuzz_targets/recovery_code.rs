//! Any text as typed recovery codes: cutting it into codes, parsing each as a request and
//! an answer, and a lossless round trip of whatever parses; and any bytes as a state file.
#![no_main]

use latchkey_proto::recovery::{AnswerCode, RecoveryCode, RequestCode, State, split_codes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = State::parse(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for (_, piece) in split_codes(text) {
        if let Ok(code) = RecoveryCode::parse(&piece) {
            assert_eq!(RecoveryCode::parse(&code.to_string()).unwrap(), code);
            assert_eq!(RecoveryCode::parse(&code.compact()).unwrap(), code);
            assert_eq!(code.compact().len(), 119);
        }
        match (RequestCode::parse(&piece), AnswerCode::parse(&piece)) {
            (Ok(_), Ok(_)) => panic!("a code is a request or an answer, not both"),
            (Ok(r), _) => assert_eq!(RequestCode::parse(&r.to_string()).unwrap(), r),
            (_, Ok(a)) => assert_eq!(AnswerCode::parse(&a.to_string()).unwrap(), a),
            _ => {}
        }
    }
});
