//! The authentication settings (`--auth token`): which token algorithms are
//! accepted, the keys they are checked with, the claims required, and the
//! deny-list. The files are read when the server binds (`server::authority`).

use std::path::PathBuf;

use crate::auth::{self, KeyError, SigningAlgorithm};

use super::InvalidSetting;

/// How clients prove who they are. Flattened into [`Config`](super::Config):
/// the flags are `--auth`, `--auth-key`, `--auth-algorithms` and so on.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct AuthConfig {
    /// Authentication: `none`, or `token` (Hello must carry a JWT signed with one of
    /// `auth_algorithms`; see the `auth_*` settings).
    #[arg(long = "auth", env = "TAVERN_AUTH", value_enum, default_value_t = AuthMode::None)]
    pub mode: AuthMode,

    /// The algorithms a token may be signed with, comma-separated, from HS256, RS256, ES256 and
    /// EdDSA. Pinned here, never taken from a token: a token whose header names another
    /// algorithm (or `none`) is refused. HS256 needs `auth_key`; the others `auth_public_key`
    /// or `auth_jwks`.
    #[arg(
        long = "auth-algorithms",
        env = "TAVERN_AUTH_ALGORITHMS",
        value_delimiter = ',',
        default_value = "HS256"
    )]
    pub algorithms: Vec<SigningAlgorithm>,

    /// The HS256 shared key, as hex (at least 32 bytes: 64 hex digits). Required with
    /// `--auth token` while HS256 is accepted; also what `tavern token` signs with.
    #[arg(long = "auth-key", env = "TAVERN_AUTH_KEY", hide_env_values = true)]
    pub key: Option<Secret>,

    /// A PEM file of one public key (RSA for RS256, EC P-256 for ES256, Ed25519 for EdDSA),
    /// of the service that issues tokens. Read at start.
    #[arg(long = "auth-public-key", env = "TAVERN_AUTH_PUBLIC_KEY")]
    pub public_key: Option<PathBuf>,

    /// A JWKS file (`{"keys": [...]}`) of the issuing service's public keys; a token's `kid`
    /// picks one. Read at start.
    #[arg(long = "auth-jwks", env = "TAVERN_AUTH_JWKS")]
    pub jwks: Option<PathBuf>,

    /// The `iss` every token must carry; unset: `iss` is not checked.
    #[arg(long = "auth-issuer", env = "TAVERN_AUTH_ISSUER")]
    pub issuer: Option<String>,

    /// This server's audience: every token's `aud` must name it. Unset: a token that names
    /// any audience is refused.
    #[arg(long = "auth-audience", env = "TAVERN_AUTH_AUDIENCE")]
    pub audience: Option<String>,

    /// With `--auth token`: close each session when its token expires (TOKEN_EXPIRED, checked
    /// every heartbeat interval), so that a revoked player cannot stay on past its token.
    /// `false` lets sessions outlive tokens.
    #[arg(long = "auth-close-at-expiry", env = "TAVERN_AUTH_CLOSE_AT_EXPIRY", default_value_t = true, action = clap::ArgAction::Set)]
    pub close_at_expiry: bool,

    /// A file of revoked token ids (`jti`) or player ids (`sub`), one a line, checked on every
    /// Hello and read again on SIGHUP.
    #[arg(long = "auth-deny-list", env = "TAVERN_AUTH_DENY_LIST")]
    pub deny_list: Option<PathBuf>,
}

/// How clients authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// Anyone may say Hello.
    None,
    /// Hello must carry a valid token (a JWT).
    Token,
}

/// A secret setting: never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Secret(value.to_owned()))
    }
}

impl AuthConfig {
    /// Checks, without reading any file, that each accepted algorithm has a key source and
    /// that the claims settings are usable; nothing is checked with `--auth none`.
    pub(super) fn validate(&self) -> Result<(), InvalidSetting> {
        if self.mode != AuthMode::Token {
            return Ok(());
        }
        if self.algorithms.is_empty() {
            return Err(InvalidSetting::new(
                "auth_algorithms",
                KeyError::NoAlgorithms.to_string(),
            ));
        }
        if self.algorithms.contains(&SigningAlgorithm::Hs256) {
            self.shared_key()?;
        }
        let has_public = self.public_key.is_some() || self.jwks.is_some();
        let public = self.algorithms.iter().find(|alg| alg.uses_public_key());
        match (public, has_public) {
            (Some(alg), false) => {
                let problem = format!("auth_algorithms has {alg}, which needs auth_public_key or auth_jwks");
                return Err(InvalidSetting::new("auth_algorithms", problem));
            }
            (None, true) => {
                let setting = if self.public_key.is_some() {
                    "auth_public_key"
                } else {
                    "auth_jwks"
                };
                let problem = format!("{setting} is set, but auth_algorithms accepts none of RS256, ES256, EdDSA");
                return Err(InvalidSetting::new(setting, problem));
            }
            _ => {}
        }
        for (setting, value) in [("auth_issuer", &self.issuer), ("auth_audience", &self.audience)] {
            if value.as_ref().is_some_and(|v| v.trim().is_empty()) {
                return Err(InvalidSetting::new(setting, format!("{setting} must not be empty")));
            }
        }
        Ok(())
    }

    /// The shared key's bytes (`auth_key`), which must be there and usable.
    ///
    /// # Errors
    /// [`InvalidSetting`] for `auth_key`: missing, not hex, or too short.
    pub fn shared_key(&self) -> Result<Vec<u8>, InvalidSetting> {
        let invalid = |e: KeyError| InvalidSetting::new("auth_key", e.to_string());
        let key = self.key.as_ref().ok_or_else(|| invalid(KeyError::NoSharedKey))?;
        let key = auth::parse_hex_key(&key.0).map_err(invalid)?;
        if key.len() < auth::MIN_KEY_LEN {
            return Err(invalid(KeyError::TooShort(key.len())));
        }
        Ok(key)
    }

    /// The claims and algorithms a token must satisfy.
    pub fn policy(&self) -> auth::Policy {
        auth::Policy {
            algorithms: self.algorithms.clone(),
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
        }
    }
}
