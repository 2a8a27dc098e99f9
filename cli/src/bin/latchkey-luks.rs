//! `latchkey-luks`, the companion that `latchkey luks bind|unbind|regen|edit`
//! and `latchkey nbde apply` hand over to: the only binary linked with libcryptsetup.
#![forbid(unsafe_code)]

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("nbde") => latchkey_cli::nbde::apply::main(),
        _ => latchkey_cli::luks::write::main(),
    }
}
