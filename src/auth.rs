//! Session tokens (`--auth token`): JSON Web Tokens (RFC 7519), checked with
//! the `jsonwebtoken` crate.
//!
//! A token is signed with HS256 under the server's shared key, or with RS256,
//! ES256 or EdDSA by an identity service whose public keys the server holds
//! (a PEM file or a JWKS). The algorithms a server accepts are pinned by its
//! configuration: the header's `alg` only selects among them, and a key is
//! only ever used for its own family (the shared key for HS256, public keys
//! for the rest), so neither `alg: none` nor a public key used as an HMAC
//! secret gets in. Then the claims: `exp` (required) and `nbf` (when present)
//! against the clock, `iss` and `aud` when configured, the deny-list (`jti`
//! or `sub`), and that Hello's name is the token's `name`. `tavern token`
//! mints HS256 tokens from the shared key.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

pub use keys::{KeyError, KeySources, MIN_KEY_LEN, SigningAlgorithm, parse_hex_key};

use keys::Keys;

mod keys;

/// What a token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The player's id in the game's account system.
    pub sub: String,
    /// The display name the player may use.
    pub name: String,
    /// Expiry, seconds since the Unix epoch (required).
    pub exp: u64,
    /// Not before, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// The token's own id, for revocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Who issued the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Whom the token is for (one audience or several).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
}

/// A token's `aud`: one string, or an array of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// `"aud": "game"`.
    One(String),
    /// `"aud": ["game", "chat"]`.
    Many(Vec<String>),
}

/// Why a token was refused. Each is answered UNAUTHENTICATED.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Hello carried no token.
    #[error("a token is required")]
    Missing,
    /// Not a JWT, not base64url, or not the claims (`sub`, `name` and `exp` included).
    #[error("malformed token")]
    Malformed,
    /// The header's `alg` is not one this server accepts (`none` never is).
    #[error("token algorithm not accepted")]
    WrongAlgorithm,
    /// No key of this server fits the header's `alg` and `kid`.
    #[error("no key for this token")]
    UnknownKey,
    /// The signature does not verify under the key.
    #[error("token signature does not verify")]
    BadSignature,
    /// Past its expiry (`exp`).
    #[error("token expired")]
    Expired,
    /// Before its `nbf`.
    #[error("token not yet valid")]
    NotYetValid,
    /// Its `iss` is missing or not the configured issuer.
    #[error("token issuer not accepted")]
    WrongIssuer,
    /// Its `aud` is missing or does not name the configured audience, or it
    /// names an audience where none is configured.
    #[error("token audience not accepted")]
    WrongAudience,
    /// On the deny-list.
    #[error("token revoked")]
    Revoked,
    /// Hello's name is not the token's.
    #[error("the name is not the token's")]
    WrongName,
}

/// What a token must satisfy besides its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The algorithms accepted (`auth_algorithms`); a token's header picks among them.
    pub algorithms: Vec<SigningAlgorithm>,
    /// The `iss` required, if any (`auth_issuer`).
    pub issuer: Option<String>,
    /// The audience this server is, if any (`auth_audience`).
    pub audience: Option<String>,
}

impl Default for Policy {
    /// HS256 only, no issuer or audience.
    fn default() -> Self {
        Policy {
            algorithms: vec![SigningAlgorithm::Hs256],
            issuer: None,
            audience: None,
        }
    }
}

/// Checks tokens (and mints HS256 ones, given the shared key); holds the
/// deny-list, which can be replaced while the server runs
/// ([`Authority::replace_denied`]).
#[derive(Clone)]
pub struct Authority {
    keys: Arc<Keys>,
    signing: Option<EncodingKey>,
    /// One per accepted algorithm, allowing that one only (`jsonwebtoken`
    /// wants every algorithm of a validation in the key's family).
    validations: Arc<[Validation]>,
    denied: Arc<RwLock<HashSet<String>>>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("keys", &"<keys>")
            .field(
                "algorithms",
                &self.validations.iter().flat_map(|v| &v.algorithms).collect::<Vec<_>>(),
            )
            .field("denied", &self.denied().len())
            .finish()
    }
}

impl Authority {
    /// An HS256 authority with the shared `key` (at least [`MIN_KEY_LEN`]
    /// bytes) and the revoked token or player ids in `denied`.
    ///
    /// # Errors
    /// [`KeyError::TooShort`].
    pub fn new(key: Vec<u8>, denied: HashSet<String>) -> Result<Authority, KeyError> {
        let sources = KeySources {
            shared: Some(&key),
            ..KeySources::default()
        };
        Authority::build(&Policy::default(), sources, denied)
    }

    /// An authority accepting what `policy` allows, with the keys of
    /// `sources` (files are read now), and the revoked ids in `denied`.
    ///
    /// # Errors
    /// [`KeyError`] naming the setting at fault: a key cannot be read or used,
    /// or a pinned algorithm has no key of its kind.
    pub fn build(policy: &Policy, sources: KeySources<'_>, denied: HashSet<String>) -> Result<Authority, KeyError> {
        let keys = Keys::load(sources, &policy.algorithms)?;
        let signing = sources.shared.map(EncodingKey::from_secret).transpose().ok().flatten();
        let validations = policy
            .algorithms
            .iter()
            .map(|alg| validation(alg.jwt(), policy))
            .collect();
        Ok(Authority {
            keys: Arc::new(keys),
            signing,
            validations,
            denied: Arc::new(RwLock::new(denied)),
        })
    }

    /// Replaces the deny-list (a reload), for every holder of this authority.
    pub fn replace_denied(&self, denied: HashSet<String>) {
        *self.denied.write().unwrap_or_else(PoisonError::into_inner) = denied;
    }

    fn denied(&self) -> RwLockReadGuard<'_, HashSet<String>> {
        self.denied.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// An HS256 token for `claims`, signed with the shared key.
    ///
    /// # Errors
    /// [`KeyError::NoSharedKey`] without one; [`KeyError::Sign`] if signing fails.
    pub fn mint(&self, claims: &Claims) -> Result<String, KeyError> {
        let key = self.signing.as_ref().ok_or(KeyError::NoSharedKey)?;
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, key).map_err(|e| KeyError::Sign(e.to_string()))
    }

    /// Checks `token` for a Hello naming `name`, at time `now`.
    ///
    /// # Errors
    /// [`TokenError`] saying what is wrong with it.
    pub fn verify(&self, token: &str, name: &str, now: SystemTime) -> Result<Claims, TokenError> {
        if token.is_empty() {
            return Err(TokenError::Missing);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| header_error(token))?;
        let validation = self
            .validations
            .iter()
            .find(|v| v.algorithms.contains(&header.alg))
            .ok_or(TokenError::WrongAlgorithm)?;
        let key = self.keys.select(&header)?;
        let claims = jsonwebtoken::decode::<Claims>(token, key, validation)
            .map_err(|e| token_error(e.kind()))?
            .claims;
        let now = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs();
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        if claims.nbf.is_some_and(|nbf| nbf > now) {
            return Err(TokenError::NotYetValid);
        }
        let denied = self.denied();
        if claims.jti.as_ref().is_some_and(|jti| denied.contains(jti)) || denied.contains(&claims.sub) {
            return Err(TokenError::Revoked);
        }
        if claims.name != name {
            return Err(TokenError::WrongName);
        }
        Ok(claims)
    }
}

/// What `jsonwebtoken` checks of a token signed with `alg`: that algorithm
/// only, `exp` present (the times themselves are checked against the caller's
/// clock in [`Authority::verify`], to the second), and the issuer and
/// audience of `policy`, both required when configured.
fn validation(alg: Algorithm, policy: &Policy) -> Validation {
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.leeway = 0;
    let mut required = vec!["exp"];
    if let Some(issuer) = &policy.issuer {
        validation.set_issuer(&[issuer]);
        required.push("iss");
    }
    if let Some(audience) = &policy.audience {
        validation.set_audience(&[audience]);
        required.push("aud");
    }
    validation.set_required_spec_claims(&required);
    validation
}

/// Why a header did not parse: a well-formed header naming an algorithm
/// unknown here (`none` among them) is the wrong algorithm, anything else is
/// malformed.
fn header_error(token: &str) -> TokenError {
    #[derive(Deserialize)]
    struct Alg {
        alg: String,
    }
    let alg = token
        .split('.')
        .next()
        .and_then(|header| URL_SAFE_NO_PAD.decode(header).ok())
        .and_then(|json| serde_json::from_slice::<Alg>(&json).ok());
    match alg {
        Some(Alg { alg }) if Algorithm::from_str(&alg).is_err() => TokenError::WrongAlgorithm,
        _ => TokenError::Malformed,
    }
}

/// The refusal for what `jsonwebtoken` found.
fn token_error(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::InvalidAlgorithm => TokenError::WrongAlgorithm,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => TokenError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => TokenError::WrongAudience,
        _ => TokenError::Malformed,
    }
}

/// Reads a deny-list file: one token id or player id a line; blank lines and
/// lines starting with `#` are skipped.
///
/// # Errors
/// The file cannot be read.
pub fn read_deny_list(path: &std::path::Path) -> std::io::Result<HashSet<String>> {
    Ok(std::fs::read_to_string(path)?
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect())
}

#[cfg(test)]
mod tests;
