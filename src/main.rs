//! The `tavern` binary: configuration, logging, and the server until SIGINT or SIGTERM.

use std::process::ExitCode;

use clap::CommandFactory;
use tavern::config::ConfigError;
use tavern::{Config, Server};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // A missing .env file is normal; a malformed one is reported by the parse below.
    let _ = dotenvy::dotenv();
    if std::env::args_os().nth(1).is_some_and(|first| first == "token") {
        return mint_token();
    }
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

/// `tavern token`: mints an HS256 token from the shared key (for development and tests).
#[derive(clap::Parser, Debug)]
#[command(
    name = "tavern token",
    about = "Mint an HS256 session token (a JWT) signed with TAVERN_AUTH_KEY"
)]
struct TokenArgs {
    /// The player's id (`sub`).
    #[arg(long)]
    player_id: String,
    /// The display name the token allows (`name`).
    #[arg(long)]
    name: String,
    /// Lifetime, seconds (`exp` is now plus this).
    #[arg(long, default_value_t = 3600)]
    ttl_s: u64,
    /// The token's id (`jti`), for revocation (default: the player id and the minting time).
    #[arg(long)]
    jti: Option<String>,
    /// The `iss` to put in the token, for a server run with `--auth-issuer`.
    #[arg(long, env = "TAVERN_AUTH_ISSUER")]
    issuer: Option<String>,
    /// The `aud` to put in the token, for a server run with `--auth-audience`.
    #[arg(long, env = "TAVERN_AUTH_AUDIENCE")]
    audience: Option<String>,
    /// The signing key, as hex.
    #[arg(long, env = "TAVERN_AUTH_KEY", hide_env_values = true)]
    auth_key: String,
}

fn mint_token() -> ExitCode {
    use clap::Parser as _;
    let args = TokenArgs::parse_from(std::env::args_os().skip(1));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let claims = tavern::auth::Claims {
        jti: Some(
            args.jti
                .unwrap_or_else(|| format!("{}-{}", args.player_id, now.as_nanos())),
        ),
        sub: args.player_id,
        name: args.name,
        exp: now.as_secs().saturating_add(args.ttl_s),
        nbf: None,
        iss: args.issuer,
        aud: args.audience.map(tavern::auth::Audience::One),
    };
    let token = match tavern::auth::parse_hex_key(&args.auth_key)
        .and_then(|key| tavern::auth::Authority::new(key, Default::default()))
        .and_then(|authority| authority.mint(&claims))
    {
        Ok(token) => token,
        Err(message) => TokenArgs::command()
            .error(clap::error::ErrorKind::ValueValidation, message)
            .exit(),
    };
    // The token is the command's output, for scripts.
    std::io::Write::write_all(&mut std::io::stdout(), format!("{token}\n").as_bytes())
        .map_or(ExitCode::FAILURE, |()| ExitCode::SUCCESS)
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
