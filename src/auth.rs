//! Server-signed session tokens (`--auth token`).
//!
//! A token is `v1.PAYLOAD.MAC`: `PAYLOAD` is the base64url (unpadded) JSON
//! `{"sub": player id, "name": display name, "exp": unix seconds, "jti": token id}`
//! and `MAC` the base64url HMAC-SHA256, under the server's key, of
//! `v1.PAYLOAD`. The MAC is checked first, in constant time; then the expiry
//! (required), then the deny-list (a token id or a player id). Hello's name
//! must be the token's name. `tavern token` mints tokens from the same key.

use std::collections::HashSet;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The shortest key accepted, bytes.
pub const MIN_KEY_LEN: usize = 32;
const PREFIX: &str = "v1.";

/// What a token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The player's id in the game's account system.
    pub sub: String,
    /// The display name the player may use.
    pub name: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// The token's own id, for revocation.
    pub jti: String,
}

/// Why a token was refused. Each is answered UNAUTHENTICATED.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Hello carried no token.
    #[error("a token is required")]
    Missing,
    /// Not `v1.PAYLOAD.MAC`, not base64url, or not the claims (an expiry included).
    #[error("malformed token")]
    Malformed,
    /// The MAC does not match this server's key.
    #[error("token signature does not verify")]
    BadSignature,
    /// Past its expiry.
    #[error("token expired")]
    Expired,
    /// On the deny-list.
    #[error("token revoked")]
    Revoked,
    /// Hello's name is not the token's.
    #[error("the name is not the token's")]
    WrongName,
}

/// Why a signing key cannot be used (setting `auth_key`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// An odd number of hex digits.
    #[error("auth_key must be an even number of hex digits")]
    OddLength,
    /// Something other than hex digits.
    #[error("auth_key must be hex digits")]
    NotHex,
    /// Fewer bytes than [`MIN_KEY_LEN`].
    #[error("auth_key has {0} bytes; at least {MIN_KEY_LEN} are needed")]
    TooShort(usize),
}

/// Signs and checks tokens with one key; holds the deny-list, which can be
/// replaced while the server runs ([`Authority::replace_denied`]).
#[derive(Clone)]
pub struct Authority {
    key: Vec<u8>,
    denied: Arc<RwLock<HashSet<String>>>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("key", &"<secret>")
            .field("denied", &self.denied().len())
            .finish()
    }
}

impl Authority {
    /// An authority with `key` (at least [`MIN_KEY_LEN`] bytes) and the
    /// revoked token or player ids in `denied`.
    ///
    /// # Errors
    /// [`KeyError::TooShort`].
    pub fn new(key: Vec<u8>, denied: HashSet<String>) -> Result<Authority, KeyError> {
        if key.len() < MIN_KEY_LEN {
            return Err(KeyError::TooShort(key.len()));
        }
        Ok(Authority {
            key,
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

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length; this cannot fail.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!())
    }

    /// A token for `claims`.
    pub fn mint(&self, claims: &Claims) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let signed = format!("{PREFIX}{payload}");
        let mut mac = self.mac();
        mac.update(signed.as_bytes());
        let tag = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signed}.{tag}")
    }

    /// Checks `token` for a Hello naming `name`, at time `now`.
    ///
    /// # Errors
    /// [`TokenError`] saying what is wrong with it.
    pub fn verify(&self, token: &str, name: &str, now: SystemTime) -> Result<Claims, TokenError> {
        if token.is_empty() {
            return Err(TokenError::Missing);
        }
        let (signed, tag) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let payload = signed.strip_prefix(PREFIX).ok_or(TokenError::Malformed)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(signed.as_bytes());
        mac.verify_slice(&tag).map_err(|_| TokenError::BadSignature)?;
        let json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
        let now = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs();
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        let denied = self.denied();
        if denied.contains(&claims.jti) || denied.contains(&claims.sub) {
            return Err(TokenError::Revoked);
        }
        if claims.name != name {
            return Err(TokenError::WrongName);
        }
        Ok(claims)
    }
}

/// Reads a key given as hex (64 or more hex digits for 32 bytes).
///
/// # Errors
/// [`KeyError`]: not hex, or an odd number of digits.
pub fn parse_hex_key(hex: &str) -> Result<Vec<u8>, KeyError> {
    let hex = hex.trim();
    if hex.len() % 2 != 0 {
        return Err(KeyError::OddLength);
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or(KeyError::NotHex)
        })
        .collect()
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
mod tests {
    use super::*;

    fn authority(denied: &[&str]) -> Authority {
        Authority::new(vec![7; 32], denied.iter().map(|s| (*s).to_owned()).collect()).unwrap()
    }

    fn claims(exp: u64) -> Claims {
        Claims {
            sub: "p1".into(),
            name: "ann".into(),
            exp,
            jti: "t1".into(),
        }
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn a_minted_token_verifies_until_it_expires() {
        let auth = authority(&[]);
        let token = auth.mint(&claims(100));
        assert_eq!(auth.verify(&token, "ann", at(99)), Ok(claims(100)));
        assert_eq!(auth.verify(&token, "ann", at(100)), Err(TokenError::Expired));
        assert_eq!(auth.verify(&token, "bob", at(99)), Err(TokenError::WrongName));
    }

    #[test]
    fn forged_malformed_missing_and_revoked_tokens_are_refused() {
        let auth = authority(&["t1"]);
        let other = Authority::new(vec![8; 32], HashSet::new()).unwrap();
        let forged = other.mint(&claims(100));
        assert_eq!(
            authority(&[]).verify(&forged, "ann", at(1)),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            auth.verify(&auth.mint(&claims(100)), "ann", at(1)),
            Err(TokenError::Revoked)
        );
        assert_eq!(auth.verify("", "ann", at(1)), Err(TokenError::Missing));
        for bad in ["v1", "v1.x", "v2.abc.def", "v1.abc.!!!", "..."] {
            assert!(auth.verify(bad, "ann", at(1)).is_err(), "{bad}");
        }
        // A well-signed payload without an expiry is malformed.
        let signed = format!(
            "{PREFIX}{}",
            URL_SAFE_NO_PAD.encode(br#"{"sub":"p","name":"ann","jti":"j"}"#)
        );
        let mut mac = auth.mac();
        mac.update(signed.as_bytes());
        let token = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()));
        assert_eq!(auth.verify(&token, "ann", at(1)), Err(TokenError::Malformed));
    }

    #[test]
    fn keys_are_hex_of_at_least_32_bytes() {
        assert_eq!(parse_hex_key("0aFF").unwrap(), vec![10, 255]);
        assert_eq!(parse_hex_key("abc"), Err(KeyError::OddLength));
        assert_eq!(parse_hex_key("zz"), Err(KeyError::NotHex));
        assert_eq!(
            Authority::new(vec![0; 31], HashSet::new()).map(|_| ()),
            Err(KeyError::TooShort(31))
        );
    }
}
