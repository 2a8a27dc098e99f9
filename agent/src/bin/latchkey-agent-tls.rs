//! `latchkey-agent-tls`: the agent with `https://` Tang URLs (the `tls` feature),
//! otherwise the same program as `latchkey-agent`.
#![forbid(unsafe_code)]

#[path = "../main.rs"]
mod agent;

fn main() -> std::process::ExitCode {
    agent::main()
}
