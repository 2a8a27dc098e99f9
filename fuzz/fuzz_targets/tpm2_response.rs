//! TPM responses: every command's response reader over arbitrary bytes (the TPM, or
//! whatever answers on its socket, is outside input).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    latchkey_tpm2::parse_any_response(data);
});
