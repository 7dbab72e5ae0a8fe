//! Unit tests of token checking, with the keys in `tests/fixtures/jwt/`.

use std::path::{Path, PathBuf};

use jsonwebtoken::EncodingKey;
use serde_json::json;

use super::*;

const SHARED: [u8; 32] = [7; 32];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jwt")
        .join(name)
}

fn authority(denied: &[&str]) -> Authority {
    Authority::new(SHARED.to_vec(), denied.iter().map(|s| (*s).to_owned()).collect()).unwrap()
}

/// An authority pinning `algorithms`, with the shared key, the RSA and
/// Ed25519 public keys (PEM) and the EC key set.
fn public_authority(policy: Policy, public_key: &str) -> Authority {
    let (pem, jwks) = (fixture(public_key), fixture("ec_jwks.json"));
    let sources = KeySources {
        shared: Some(&SHARED),
        public_key: Some(&pem),
        jwks: Some(&jwks),
    };
    Authority::build(&policy, sources, HashSet::new()).unwrap()
}

fn pinned(algorithms: &[SigningAlgorithm]) -> Policy {
    Policy {
        algorithms: algorithms.to_vec(),
        ..Policy::default()
    }
}

fn claims(exp: u64) -> Claims {
    Claims {
        sub: "p1".into(),
        name: "ann".into(),
        exp,
        nbf: None,
        jti: Some("t1".into()),
        iss: None,
        aud: None,
    }
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// A token with header `alg` (and `kid`) for `claims`, signed with `key`.
fn sign(alg: Algorithm, kid: Option<&str>, claims: &serde_json::Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn private(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

fn ann(exp: u64) -> serde_json::Value {
    json!({"sub": "p1", "name": "ann", "exp": exp})
}

#[test]
fn a_minted_token_verifies_until_it_expires() {
    let auth = authority(&[]);
    let token = auth.mint(&claims(100)).unwrap();
    assert_eq!(auth.verify(&token, "ann", at(99)), Ok(claims(100)));
    assert_eq!(auth.verify(&token, "ann", at(100)), Err(TokenError::Expired));
    assert_eq!(auth.verify(&token, "bob", at(99)), Err(TokenError::WrongName));
}

#[test]
fn forged_malformed_missing_and_revoked_tokens_are_refused() {
    let other = Authority::new(vec![8; 32], HashSet::new()).unwrap();
    let forged = other.mint(&claims(100)).unwrap();
    assert_eq!(
        authority(&[]).verify(&forged, "ann", at(1)),
        Err(TokenError::BadSignature)
    );
    let token = authority(&[]).mint(&claims(100)).unwrap();
    for denied in ["t1", "p1"] {
        assert_eq!(
            authority(&[denied]).verify(&token, "ann", at(1)),
            Err(TokenError::Revoked)
        );
    }
    let auth = authority(&[]);
    assert_eq!(auth.verify("", "ann", at(1)), Err(TokenError::Missing));
    for bad in ["v1", "a.b", "a.b.c", "...", "eyJ.eyJ.x"] {
        assert_eq!(auth.verify(bad, "ann", at(1)), Err(TokenError::Malformed), "{bad}");
    }
    // Well signed, but without an expiry, or without a name.
    let key = EncodingKey::from_secret(&SHARED).unwrap();
    for claims in [json!({"sub": "p1", "name": "ann"}), json!({"sub": "p1", "exp": 100})] {
        let token = sign(Algorithm::HS256, None, &claims, &key);
        assert_eq!(auth.verify(&token, "ann", at(1)), Err(TokenError::Malformed));
    }
    // Without a jti, the player id is still checked.
    let token = sign(Algorithm::HS256, None, &ann(100), &key);
    assert!(auth.verify(&token, "ann", at(1)).is_ok());
    assert_eq!(
        authority(&["p1"]).verify(&token, "ann", at(1)),
        Err(TokenError::Revoked)
    );
}

#[test]
fn unsigned_tokens_and_unpinned_algorithms_are_refused() {
    let auth = authority(&[]);
    let encode = |json: &serde_json::Value| URL_SAFE_NO_PAD.encode(json.to_string());
    for alg in ["none", "None", "HS1"] {
        let token = format!("{}.{}.", encode(&json!({"alg": alg, "typ": "JWT"})), encode(&ann(100)));
        assert_eq!(
            auth.verify(&token, "ann", at(1)),
            Err(TokenError::WrongAlgorithm),
            "{alg}"
        );
    }
    // HS384 is a real algorithm, but not pinned.
    let hs384 = sign(
        Algorithm::HS384,
        None,
        &ann(100),
        &EncodingKey::from_secret(&SHARED).unwrap(),
    );
    assert_eq!(auth.verify(&hs384, "ann", at(1)), Err(TokenError::WrongAlgorithm));
    // An RS256 token, to a server pinning HS256 only.
    let rsa = EncodingKey::from_rsa_pem(&private("rsa_private.pem")).unwrap();
    let rs256 = sign(Algorithm::RS256, None, &ann(100), &rsa);
    assert_eq!(auth.verify(&rs256, "ann", at(1)), Err(TokenError::WrongAlgorithm));
}

#[test]
fn a_public_key_is_never_an_hmac_secret() {
    // The attacker signs HS256 with the server's public key, as bytes.
    let public = EncodingKey::from_secret(&private("rsa_public.pem")).unwrap();
    let forged = sign(Algorithm::HS256, None, &ann(100), &public);
    let rs_only = public_authority(pinned(&[SigningAlgorithm::Rs256]), "rsa_public.pem");
    assert_eq!(rs_only.verify(&forged, "ann", at(1)), Err(TokenError::WrongAlgorithm));
    // With HS256 pinned too, HS256 is checked with the shared key only.
    let both = pinned(&[SigningAlgorithm::Hs256, SigningAlgorithm::Rs256]);
    let both = public_authority(both, "rsa_public.pem");
    assert_eq!(both.verify(&forged, "ann", at(1)), Err(TokenError::BadSignature));
}

#[test]
fn each_public_key_algorithm_verifies_with_its_own_key() {
    use SigningAlgorithm::{EdDsa, Es256, Hs256, Rs256};
    let rsa = EncodingKey::from_rsa_pem(&private("rsa_private.pem")).unwrap();
    let ec = EncodingKey::from_ec_pem(&private("ec_private.pem")).unwrap();
    let ed = EncodingKey::from_ed_pem(&private("ed25519_private.pem")).unwrap();
    let with_rsa = public_authority(pinned(&[Hs256, Rs256, Es256]), "rsa_public.pem");
    let rs256 = sign(Algorithm::RS256, None, &ann(100), &rsa);
    assert!(with_rsa.verify(&rs256, "ann", at(1)).is_ok());
    // ES256 from the key set: by its kid, or as the set's only EC key.
    for kid in [Some("ec-1"), None] {
        let es256 = sign(Algorithm::ES256, kid, &ann(100), &ec);
        assert!(with_rsa.verify(&es256, "ann", at(1)).is_ok(), "{kid:?}");
    }
    let unknown = sign(Algorithm::ES256, Some("ec-2"), &ann(100), &ec);
    assert_eq!(with_rsa.verify(&unknown, "ann", at(1)), Err(TokenError::UnknownKey));
    let ed_authority = public_authority(pinned(&[EdDsa, Es256]), "ed25519_public.pem");
    let eddsa = sign(Algorithm::EdDSA, None, &ann(100), &ed);
    assert!(ed_authority.verify(&eddsa, "ann", at(1)).is_ok());
    // EdDSA where it is not accepted; an ES256 key set entry named for RS256.
    assert_eq!(with_rsa.verify(&eddsa, "ann", at(1)), Err(TokenError::WrongAlgorithm));
    assert_eq!(
        ed_authority.verify(&rs256, "ann", at(1)),
        Err(TokenError::WrongAlgorithm)
    );
    let forged_kid = sign(Algorithm::RS256, Some("ec-1"), &ann(100), &rsa);
    assert_eq!(with_rsa.verify(&forged_kid, "ann", at(1)), Err(TokenError::UnknownKey));
    let mut tampered = eddsa.clone();
    tampered.replace_range(tampered.len() - 4.., "AAAA");
    assert_eq!(
        ed_authority.verify(&tampered, "ann", at(1)),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn not_before_issuer_and_audience_are_checked() {
    let key = EncodingKey::from_secret(&SHARED).unwrap();
    let auth = authority(&[]);
    let early = sign(
        Algorithm::HS256,
        None,
        &json!({"sub": "p1", "name": "ann", "exp": 100, "nbf": 50}),
        &key,
    );
    assert_eq!(auth.verify(&early, "ann", at(49)), Err(TokenError::NotYetValid));
    assert!(auth.verify(&early, "ann", at(50)).is_ok());
    // A token for some audience, to a server that names none, is not for it.
    let for_game = sign(
        Algorithm::HS256,
        None,
        &json!({"sub": "p1", "name": "ann", "exp": 100, "aud": "game"}),
        &key,
    );
    assert_eq!(auth.verify(&for_game, "ann", at(1)), Err(TokenError::WrongAudience));

    let policy = Policy {
        issuer: Some("https://id.example".into()),
        audience: Some("game".into()),
        ..Policy::default()
    };
    let sources = KeySources {
        shared: Some(&SHARED),
        ..KeySources::default()
    };
    let scoped = Authority::build(&policy, sources, HashSet::new()).unwrap();
    let token = |iss: serde_json::Value, aud: serde_json::Value| {
        let claims = json!({"sub": "p1", "name": "ann", "exp": 100, "iss": iss, "aud": aud});
        sign(Algorithm::HS256, None, &claims, &key)
    };
    let issuer = json!("https://id.example");
    assert!(
        scoped
            .verify(&token(issuer.clone(), json!("game")), "ann", at(1))
            .is_ok()
    );
    assert!(
        scoped
            .verify(&token(issuer.clone(), json!(["chat", "game"])), "ann", at(1))
            .is_ok()
    );
    assert_eq!(
        scoped.verify(&token(json!("https://evil.example"), json!("game")), "ann", at(1)),
        Err(TokenError::WrongIssuer)
    );
    assert_eq!(
        scoped.verify(&token(issuer, json!("chat")), "ann", at(1)),
        Err(TokenError::WrongAudience)
    );
    // Neither claim may be left out.
    assert_eq!(scoped.verify(&for_game, "ann", at(1)), Err(TokenError::WrongIssuer));
    let no_aud = sign(
        Algorithm::HS256,
        None,
        &json!({"sub": "p1", "name": "ann", "exp": 100, "iss": "https://id.example"}),
        &key,
    );
    assert_eq!(scoped.verify(&no_aud, "ann", at(1)), Err(TokenError::WrongAudience));
    // What `tavern token` mints with an issuer and an audience gets in.
    let minted = Claims {
        iss: Some("https://id.example".into()),
        aud: Some(Audience::One("game".into())),
        ..claims(100)
    };
    let minted_token = scoped.mint(&minted).unwrap();
    assert_eq!(scoped.verify(&minted_token, "ann", at(1)), Ok(minted));
}
