//! The keys tokens are checked with: the shared HS256 key (hex), a public key
//! (PEM) and a key set (JWKS), loaded once at start, and the choice of key
//! for one token by its header's algorithm and `kid`.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use jsonwebtoken::jwk::{JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Header};

use super::TokenError;

/// The shortest shared key accepted, bytes.
pub const MIN_KEY_LEN: usize = 32;

/// An algorithm a token may be signed with, as pinned by `auth_algorithms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlgorithm {
    /// HMAC-SHA256 under the shared key (`auth_key`).
    Hs256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, under an RSA public key.
    Rs256,
    /// ECDSA on P-256 with SHA-256, under an EC public key.
    Es256,
    /// Ed25519, under an Ed25519 public key.
    EdDsa,
}

impl SigningAlgorithm {
    /// Every algorithm, in the order `--help` lists them.
    pub const ALL: [SigningAlgorithm; 4] = [Self::Hs256, Self::Rs256, Self::Es256, Self::EdDsa];

    /// Its name in a token header and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }

    /// Whether it is checked with a public key (`auth_public_key` or `auth_jwks`)
    /// rather than the shared key.
    pub fn uses_public_key(self) -> bool {
        self != Self::Hs256
    }

    /// The same algorithm as `jsonwebtoken` names it.
    pub(super) fn jwt(self) -> Algorithm {
        match self {
            Self::Hs256 => Algorithm::HS256,
            Self::Rs256 => Algorithm::RS256,
            Self::Es256 => Algorithm::ES256,
            Self::EdDsa => Algorithm::EdDSA,
        }
    }

    /// The kind of key it needs, for messages.
    fn key_kind(self) -> &'static str {
        match self {
            Self::Hs256 => "shared",
            Self::Rs256 => "RSA",
            Self::Es256 => "EC P-256",
            Self::EdDsa => "Ed25519",
        }
    }
}

impl std::fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SigningAlgorithm {
    type Err = String;

    /// Reads a name such as `RS256`, in any case. `none` is not an algorithm here.
    fn from_str(name: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|alg| alg.as_str().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| format!("{name:?} is not one of HS256, RS256, ES256, EdDSA"))
    }
}

/// Why the token keys cannot be used; each names its setting ([`KeyError::setting`]).
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
    /// HS256 is pinned (or a token is to be minted) without a shared key.
    #[error("HS256 needs auth_key (TAVERN_AUTH_KEY)")]
    NoSharedKey,
    /// `auth_algorithms` is empty.
    #[error("auth_algorithms must name at least one algorithm")]
    NoAlgorithms,
    /// A key file cannot be read.
    #[error("cannot read {setting} {}: {reason}", path.display())]
    Unreadable {
        /// The setting naming the file.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// What the OS said.
        reason: String,
    },
    /// The public key file holds a private key.
    #[error("auth_public_key holds a private key; give the public key only (openssl pkey -pubout)")]
    PrivateKey,
    /// The public key file is not a PEM RSA, EC or Ed25519 public key.
    #[error("auth_public_key is not a PEM RSA, EC or Ed25519 public key")]
    BadPem,
    /// The JWKS file is not a key set of usable public keys.
    #[error("auth_jwks: {0}")]
    BadJwks(String),
    /// A pinned algorithm has no key of its kind.
    #[error("auth_algorithms pins {0}, but neither auth_public_key nor auth_jwks holds a {kind} key", kind = .0.key_kind())]
    NoKeyFor(SigningAlgorithm),
    /// A token could not be signed.
    #[error("cannot sign the token: {0}")]
    Sign(String),
}

impl KeyError {
    /// The setting at fault, as the configuration names it.
    pub fn setting(&self) -> &'static str {
        match self {
            Self::OddLength | Self::NotHex | Self::TooShort(_) | Self::NoSharedKey | Self::Sign(_) => "auth_key",
            Self::NoAlgorithms | Self::NoKeyFor(_) => "auth_algorithms",
            Self::Unreadable { setting, .. } => setting,
            Self::PrivateKey | Self::BadPem => "auth_public_key",
            Self::BadJwks(_) => "auth_jwks",
        }
    }
}

/// Where the verification keys come from.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeySources<'a> {
    /// The shared HS256 key, its bytes (`auth_key`).
    pub shared: Option<&'a [u8]>,
    /// A PEM file of one public key (`auth_public_key`).
    pub public_key: Option<&'a Path>,
    /// A JWKS file of public keys (`auth_jwks`).
    pub jwks: Option<&'a Path>,
}

/// One key of a key set, with what the set says about it.
struct SetKey {
    /// Its `kid`, which a token names in its header.
    kid: Option<String>,
    /// Its `alg`, when the set pins one.
    alg: Option<Algorithm>,
    key: DecodingKey,
}

/// The loaded keys, each used only for its own algorithm family.
pub(super) struct Keys {
    shared: Option<DecodingKey>,
    public: Option<DecodingKey>,
    set: Vec<SetKey>,
}

impl Keys {
    /// Loads the keys from `sources` and checks that each of `algorithms` has one.
    pub(super) fn load(sources: KeySources<'_>, algorithms: &[SigningAlgorithm]) -> Result<Keys, KeyError> {
        if algorithms.is_empty() {
            return Err(KeyError::NoAlgorithms);
        }
        let shared = match sources.shared {
            Some(secret) if algorithms.contains(&SigningAlgorithm::Hs256) => Some(shared_key(secret)?),
            _ => None,
        };
        let public = sources.public_key.map(read_pem).transpose()?;
        let set = sources.jwks.map(read_jwks).transpose()?.unwrap_or_default();
        let keys = Keys { shared, public, set };
        match algorithms.iter().find(|alg| !keys.has_key_for(**alg)) {
            Some(SigningAlgorithm::Hs256) => Err(KeyError::NoSharedKey),
            Some(alg) => Err(KeyError::NoKeyFor(*alg)),
            None => Ok(keys),
        }
    }

    fn has_key_for(&self, alg: SigningAlgorithm) -> bool {
        let family = alg.jwt().family();
        if family == AlgorithmFamily::Hmac {
            return self.shared.is_some();
        }
        self.public.as_ref().is_some_and(|key| key.family() == family)
            || self.set.iter().any(|k| k.key.family() == family)
    }

    /// The key for a token with `header`: the shared key for HS256 (never a
    /// public key, whatever the token says); otherwise the public key of the
    /// algorithm's family, or the key set's key named by `kid` (without a
    /// `kid`, the set's only key of that family).
    pub(super) fn select(&self, header: &Header) -> Result<&DecodingKey, TokenError> {
        let family = header.alg.family();
        if family == AlgorithmFamily::Hmac {
            return self.shared.as_ref().ok_or(TokenError::UnknownKey);
        }
        let fits = |k: &&SetKey| k.key.family() == family && k.alg.is_none_or(|alg| alg == header.alg);
        if let Some(kid) = &header.kid
            && let Some(found) = self.set.iter().find(|k| k.kid.as_ref() == Some(kid))
        {
            return if fits(&found) {
                Ok(&found.key)
            } else {
                Err(TokenError::UnknownKey)
            };
        }
        if let Some(public) = self.public.as_ref().filter(|key| key.family() == family) {
            return Ok(public);
        }
        if header.kid.is_some() {
            return Err(TokenError::UnknownKey);
        }
        let mut candidates = self.set.iter().filter(fits);
        match (candidates.next(), candidates.next()) {
            (Some(only), None) => Ok(&only.key),
            _ => Err(TokenError::UnknownKey),
        }
    }
}

fn shared_key(secret: &[u8]) -> Result<DecodingKey, KeyError> {
    if secret.len() < MIN_KEY_LEN {
        return Err(KeyError::TooShort(secret.len()));
    }
    DecodingKey::from_secret(secret).map_err(|_| KeyError::TooShort(secret.len()))
}

fn read(setting: &'static str, path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|e| KeyError::Unreadable {
        setting,
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// Reads one PEM public key, of whichever kind it is.
fn read_pem(path: &Path) -> Result<DecodingKey, KeyError> {
    let pem = read("auth_public_key", path)?;
    if String::from_utf8_lossy(&pem).contains("PRIVATE KEY") {
        return Err(KeyError::PrivateKey);
    }
    DecodingKey::from_rsa_pem(&pem)
        .or_else(|_| DecodingKey::from_ec_pem(&pem))
        .or_else(|_| DecodingKey::from_ed_pem(&pem))
        .map_err(|_| KeyError::BadPem)
}

/// Reads a JWKS: its signing keys (`use` absent or `sig`), which must be public keys.
fn read_jwks(path: &Path) -> Result<Vec<SetKey>, KeyError> {
    let json = read("auth_jwks", path)?;
    let set: JwkSet = serde_json::from_slice(&json).map_err(|e| KeyError::BadJwks(e.to_string()))?;
    let mut keys = Vec::new();
    for (n, jwk) in set.keys.iter().enumerate() {
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue;
        }
        let bad = |what: &str| KeyError::BadJwks(format!("key {n}: {what}"));
        let key = DecodingKey::from_jwk(jwk).map_err(|e| bad(&e.to_string()))?;
        if key.family() == AlgorithmFamily::Hmac {
            return Err(bad("a shared (oct) key; a key set holds public keys only"));
        }
        let alg = jwk
            .common
            .key_algorithm
            .map(Algorithm::try_from)
            .transpose()
            .map_err(|e| bad(&e.to_string()))?;
        keys.push(SetKey {
            kid: jwk.common.key_id.clone(),
            alg,
            key,
        });
    }
    if keys.is_empty() {
        return Err(KeyError::BadJwks("no signing keys".into()));
    }
    Ok(keys)
}

/// Reads a key given as hex (64 or more hex digits for 32 bytes).
///
/// # Errors
/// [`KeyError`]: not hex, or an odd number of digits.
pub fn parse_hex_key(hex: &str) -> Result<Vec<u8>, KeyError> {
    let hex = hex.trim();
    if !hex.len().is_multiple_of(2) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/jwt")
            .join(name)
    }

    fn load(sources: KeySources<'_>, algorithms: &[SigningAlgorithm]) -> Result<(), KeyError> {
        Keys::load(sources, algorithms).map(|_| ())
    }

    #[test]
    fn keys_are_hex_of_at_least_32_bytes() {
        assert_eq!(parse_hex_key("0aFF").unwrap(), vec![10, 255]);
        assert_eq!(parse_hex_key("abc"), Err(KeyError::OddLength));
        assert_eq!(parse_hex_key("zz"), Err(KeyError::NotHex));
        let short = KeySources {
            shared: Some(&[0; 31]),
            ..KeySources::default()
        };
        assert_eq!(load(short, &[SigningAlgorithm::Hs256]), Err(KeyError::TooShort(31)));
    }

    #[test]
    fn algorithm_names_are_read_in_any_case_and_none_is_not_one() {
        assert_eq!("eddsa".parse(), Ok(SigningAlgorithm::EdDsa));
        assert_eq!(" RS256".parse(), Ok(SigningAlgorithm::Rs256));
        for bad in ["none", "HS384", ""] {
            assert!(bad.parse::<SigningAlgorithm>().is_err(), "{bad}");
        }
    }

    #[test]
    fn each_pinned_algorithm_needs_a_key_of_its_kind() {
        let rsa = fixture("rsa_public.pem");
        let jwks = fixture("ec_jwks.json");
        fn pem(path: &Path) -> KeySources<'_> {
            KeySources {
                public_key: Some(path),
                ..KeySources::default()
            }
        }
        assert_eq!(load(KeySources::default(), &[]), Err(KeyError::NoAlgorithms));
        assert_eq!(
            load(KeySources::default(), &[SigningAlgorithm::Hs256]),
            Err(KeyError::NoSharedKey)
        );
        assert_eq!(load(pem(&rsa), &[SigningAlgorithm::Rs256]), Ok(()));
        assert_eq!(
            load(pem(&rsa), &[SigningAlgorithm::Es256]),
            Err(KeyError::NoKeyFor(SigningAlgorithm::Es256))
        );
        let both = KeySources {
            public_key: Some(&rsa),
            jwks: Some(&jwks),
            ..KeySources::default()
        };
        assert_eq!(load(both, &[SigningAlgorithm::Rs256, SigningAlgorithm::Es256]), Ok(()));
        assert_eq!(
            load(pem(&fixture("rsa_private.pem")), &[SigningAlgorithm::Rs256]),
            Err(KeyError::PrivateKey)
        );
        assert_eq!(
            load(pem(&fixture("README.md")), &[SigningAlgorithm::Rs256]),
            Err(KeyError::BadPem)
        );
        let missing = load(pem(&fixture("absent.pem")), &[SigningAlgorithm::Rs256]).unwrap_err();
        assert_eq!(missing.setting(), "auth_public_key");
        let not_jwks = KeySources {
            jwks: Some(&rsa),
            ..KeySources::default()
        };
        let error = load(not_jwks, &[SigningAlgorithm::Es256]).unwrap_err();
        assert_eq!(error.setting(), "auth_jwks");
    }
}
