//! The `tavern` binary: configuration, logging, and the server until SIGINT or SIGTERM.

use std::process::ExitCode;

use clap::CommandFactory;
use tavern::config::ConfigError;
use tavern::{Config, Server};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // A missing .env file is normal; a malformed one is reported by the parse below.
    let _ = dotenvy::dotenv();
    let config = match Config::parse_from(std::env::args_os()) {
        Ok(config) => config,
        Err(ConfigError::Parse(e)) => e.exit(),
        Err(ConfigError::Invalid(message)) => Config::command()
            .error(clap::error::ErrorKind::ValueValidation, message)
            .exit(),
    };
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let system = actix_rt::System::new();
    match system.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "tavern failed");
            ExitCode::FAILURE
        }
    }
}

/// Serves until SIGINT or SIGTERM. The signal handlers are installed before
/// the socket is bound, so a signal never finds the process without them.
async fn serve(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let shutdown = async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!(signal = "SIGINT", "signal received"),
            _ = terminate.recv() => tracing::info!(signal = "SIGTERM", "signal received"),
        }
    };
    Server::bind(config).await?.run(shutdown).await?;
    Ok(())
}
