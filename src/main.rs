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
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let system = actix_rt::System::new();
    let served = system.block_on(async move { Server::bind(config).await?.run(shutdown_signal()).await });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "tavern failed");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(mut interrupt), Ok(mut terminate)) => {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        }
        _ => {
            tracing::warn!("cannot listen for signals; stop the server with SIGKILL");
            std::future::pending::<()>().await;
        }
    }
}
