//! `latchkey`, the operator's tool (static): see the library for its commands.
#![forbid(unsafe_code)]

fn main() {
    latchkey_cli::main()
}
