//! `latchkey-luks`, the companion that `latchkey luks bind|unbind|regen|edit`
//! hands over to: the only binary linked with libcryptsetup.
#![forbid(unsafe_code)]

fn main() {
    latchkey_cli::luks::write::main()
}
