//! Any text as typed recovery codes: cutting it into codes, parsing each as a request and
//! an answer, and a lossless round trip of whatever parses; any bytes as a console line
//! (answer or passphrase, and shown back by group); and any bytes as a state file.
#![no_main]

use latchkey_proto::recovery::{
    AnswerCode, RecoveryCode, RequestCode, State, looks_like_code, split_codes, typed_groups,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = State::parse(data);
    let shaped = looks_like_code(data);
    let Ok(text) = std::str::from_utf8(data) else {
        assert!(!shaped, "a code is ASCII");
        return;
    };
    // Every answer a console takes is code-shaped.
    if AnswerCode::parse(text).is_ok() {
        assert!(shaped);
    }
    let groups = typed_groups(text);
    assert!(groups.iter().all(|g| g.chars().count() <= 11));
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
