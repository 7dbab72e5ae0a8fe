//! `loadtest`: Tavern's bot swarm. The scenarios arrive with the next milestone;
//! for now the binary only says so.

fn main() -> std::process::ExitCode {
    eprintln!("loadtest: no scenarios yet");
    std::process::ExitCode::FAILURE
}
