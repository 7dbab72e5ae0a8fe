//! Token authentication (`--auth token`, JWTs) over real loopback TCP, and
//! the `tavern token` command.
//!
//! The keys are in `tests/fixtures/jwt/`, made once with `openssl genpkey` (RSA 2048, EC P-256,
//! Ed25519) and `openssl pkey -pubout`; its README.md has the commands, and how `ec_jwks.json`
//! was derived from `ec_public.pem`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use support::{TestServer, read_to_close, spawn_server};
use tavern::auth::{Authority, Claims};
use tavern::client::Client;
use tavern::ids::DisconnectReason;
use tavern::protocol::ErrorCode;

const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn authority(key: &str) -> Authority {
    Authority::new(tavern::auth::parse_hex_key(key).unwrap(), Default::default()).unwrap()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn token(key: &str, name: &str, jti: &str, ttl: i64) -> String {
    authority(key)
        .mint(&Claims {
            sub: format!("player-{name}"),
            name: name.into(),
            exp: now().checked_add_signed(ttl).unwrap(),
            nbf: None,
            jti: Some(jti.into()),
            iss: None,
            aud: None,
        })
        .unwrap()
}

/// The path of a key in `tests/fixtures/jwt/`.
fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/jwt/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The signing key for `alg` from the fixtures (the shared key for HS256).
fn signing_key(alg: Algorithm) -> EncodingKey {
    let pem = |name: &str| std::fs::read(fixture(name)).unwrap();
    match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem("rsa_private.pem")).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem("ec_private.pem")).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem("ed25519_private.pem")).unwrap(),
        _ => EncodingKey::from_secret(&tavern::auth::parse_hex_key(KEY).unwrap()).unwrap(),
    }
}

/// A JWT with header `alg` (and `kid`) for `claims`, signed with `key`.
fn jwt(alg: Algorithm, kid: Option<&str>, claims: &serde_json::Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// Claims for `name`, valid for a minute, with `extra` claims added.
fn claims_for(name: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut claims = json!({"sub": format!("player-{name}"), "name": name, "exp": now() + 60, "jti": name});
    claims
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    claims
}

/// A token server whose deny-list is a new file (named after `tag`) holding `contents`.
fn deny_list_server(tag: &str, contents: &str) -> (TestServer, std::path::PathBuf) {
    let deny = std::env::temp_dir().join(format!("tavern-{tag}-{}.txt", std::process::id()));
    std::fs::write(&deny, contents).unwrap();
    let server = spawn_server(&[
        "--auth",
        "token",
        "--auth-key",
        KEY,
        "--auth-deny-list",
        deny.to_str().unwrap(),
    ]);
    (server, deny)
}

/// Hello with `token` as `name`: the error code the server closes with.
async fn refused(server: &TestServer, name: &str, token: &str) -> ErrorCode {
    let mut client = Client::connect(server.addr).await.unwrap();
    let error = client.hello_with_token(name, token).await.unwrap_err();
    let (_, mut reader) = client.into_split();
    assert!(read_to_close(&mut reader).await.is_empty(), "closed after the error");
    error.code().unwrap()
}

#[tokio::test]
async fn only_valid_tokens_get_in_and_the_rest_are_closed() {
    let (server, deny) = deny_list_server("deny", "# revoked\nstolen\nplayer-mallory\n");

    let mut ann = Client::connect(server.addr).await.unwrap();
    let welcome = ann.hello_with_token("ann", &token(KEY, "ann", "t1", 60)).await.unwrap();
    assert!(welcome.session_id > 0);

    let other_key = "ff".repeat(32);
    for (name, token) in [
        ("bob", String::new()),
        ("bob", "not a token".to_owned()),
        ("bob", token(KEY, "bob", "t2", -1)),
        ("bob", token(&other_key, "bob", "t3", 60)),
        ("bob", token(KEY, "bob", "stolen", 60)),
        ("mallory", token(KEY, "mallory", "t4", 60)),
        ("carol", token(KEY, "bob", "t5", 60)),
    ] {
        assert_eq!(
            refused(&server, name, &token).await,
            ErrorCode::Unauthenticated,
            "{name} {token:?}"
        );
    }
    assert_eq!(server.stats.disconnects(DisconnectReason::Unauthenticated), 7);
    // The welcomed session was never disturbed.
    ann.join("hall").await.unwrap();
    std::fs::remove_file(&deny).unwrap();
}

#[tokio::test]
async fn without_token_auth_the_token_is_not_checked() {
    let server = spawn_server(&[]);
    let mut client = Client::connect(server.addr).await.unwrap();
    client.hello_with_token("ann", "anything").await.unwrap();
}

fn tavern() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tavern"));
    command.env_remove("TAVERN_AUTH_KEY").env_remove("RUST_LOG");
    command
}

#[test]
fn token_mode_needs_a_long_enough_key() {
    for args in [&["--auth", "token"][..], &["--auth", "token", "--auth-key", "abcd"]] {
        let output = tavern().args(args).arg("--addr").arg("127.0.0.1:1").output().unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("auth_key"), "{stderr}");
    }
    let parsed = tavern::Config::parse_from(["tavern", "--auth", "token", "--auth-key", KEY]);
    assert!(parsed.is_ok());
}

#[test]
fn the_token_command_mints_what_the_server_accepts() {
    let output = tavern()
        .args(["token", "--player-id", "p7", "--name", "ann", "--ttl-s", "60"])
        .env("TAVERN_AUTH_KEY", KEY)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let token = String::from_utf8(output.stdout).unwrap();
    let claims = authority(KEY).verify(token.trim(), "ann", SystemTime::now()).unwrap();
    assert_eq!((claims.sub.as_str(), claims.name.as_str()), ("p7", "ann"));
    let later = SystemTime::now() + Duration::from_secs(61);
    assert!(authority(KEY).verify(token.trim(), "ann", later).is_err());

    let output = tavern()
        .args(["token", "--player-id", "p7", "--name", "ann"])
        .output()
        .unwrap();
    assert!(!output.status.success(), "no key, no token");
}

#[tokio::test]
async fn a_session_is_closed_when_its_token_expires() {
    // Expiry is checked at each heartbeat interval.
    let server = spawn_server(&["--auth", "token", "--auth-key", KEY, "--heartbeat-interval-ms", "1000"]);
    let mut ann = Client::connect(server.addr).await.unwrap();
    // Expires within two seconds (token times are whole seconds), before the idle timeout of
    // three silent intervals; at a tick, the expiry check comes first.
    ann.hello_with_token("ann", &token(KEY, "ann", "short", 2))
        .await
        .unwrap();
    let (_writer, mut reader) = ann.into_split();
    let message = reader.next_event(Duration::from_secs(10)).await.unwrap();
    let Some(tavern::protocol::pb::server_message::Body::Error(error)) = message.body else {
        panic!("expected an error, got {message:?}")
    };
    assert_eq!(error.code(), ErrorCode::TokenExpired);
    assert!(read_to_close(&mut reader).await.is_empty(), "closed after the error");
}

#[tokio::test]
async fn the_deny_list_is_read_again_on_sighup() {
    let (server, deny) = deny_list_server("deny-reload", "# nobody yet\n");
    let revoked = token(KEY, "eve", "leaked", 60);
    let mut eve = Client::connect(server.addr).await.unwrap();
    eve.hello_with_token("eve", &revoked).await.unwrap();
    drop(eve);
    std::fs::write(&deny, "leaked\n").unwrap();
    let status = Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // The reload is asynchronous: try again until the token is refused.
    let deadline = tokio::time::Instant::now() + support::WAIT;
    loop {
        let mut again = Client::connect(server.addr).await.unwrap();
        match again.hello_with_token("eve", &revoked).await {
            Err(e) if e.code() == Some(ErrorCode::Unauthenticated) => break,
            Ok(_) | Err(_) => assert!(
                tokio::time::Instant::now() < deadline,
                "the revoked token still gets in"
            ),
        }
    }
    let _ = std::fs::remove_file(&deny);
}

/// A token server with `args` after `--auth token`.
fn token_server(args: &[&str]) -> TestServer {
    let mut all = vec!["--auth", "token"];
    all.extend_from_slice(args);
    spawn_server(&all)
}

#[tokio::test]
async fn each_algorithm_gets_in_with_its_own_key() {
    let (rsa, ec_jwks, ed) = (
        fixture("rsa_public.pem"),
        fixture("ec_jwks.json"),
        fixture("ed25519_public.pem"),
    );
    let cases: [(&[&str], Algorithm, Option<&str>); 4] = [
        (&["--auth-key", KEY], Algorithm::HS256, None),
        (
            &["--auth-algorithms", "RS256", "--auth-public-key", &rsa],
            Algorithm::RS256,
            None,
        ),
        (
            &["--auth-algorithms", "ES256", "--auth-jwks", &ec_jwks],
            Algorithm::ES256,
            Some("ec-1"),
        ),
        (
            &["--auth-algorithms", "EdDSA", "--auth-public-key", &ed],
            Algorithm::EdDSA,
            None,
        ),
    ];
    for (args, alg, kid) in cases {
        let server = token_server(args);
        let token = jwt(alg, kid, &claims_for("ann", json!({})), &signing_key(alg));
        let mut ann = Client::connect(server.addr).await.unwrap();
        let welcome = ann.hello_with_token("ann", &token).await;
        assert!(welcome.is_ok(), "{alg:?}: {welcome:?}");
        // The same claims under another algorithm's key are refused.
        let other = if alg == Algorithm::HS256 {
            Algorithm::EdDSA
        } else {
            Algorithm::HS256
        };
        let token = jwt(other, kid, &claims_for("bob", json!({})), &signing_key(other));
        assert_eq!(
            refused(&server, "bob", &token).await,
            ErrorCode::Unauthenticated,
            "{alg:?}"
        );
    }
}

#[tokio::test]
async fn unsigned_tokens_and_public_keys_as_hmac_secrets_are_refused() {
    let rsa = fixture("rsa_public.pem");
    let rs_only = token_server(&["--auth-algorithms", "RS256", "--auth-public-key", &rsa]);
    let both = token_server(&[
        "--auth-algorithms",
        "HS256,RS256",
        "--auth-key",
        KEY,
        "--auth-public-key",
        &rsa,
    ]);
    let encode = |value: &serde_json::Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
    };
    let unsigned = format!(
        "{}.{}.",
        encode(&json!({"alg": "none", "typ": "JWT"})),
        encode(&claims_for("eve", json!({})))
    );
    // HS256 signed with the RSA public key's PEM bytes as the HMAC secret.
    let public_bytes = EncodingKey::from_secret(&std::fs::read(&rsa).unwrap()).unwrap();
    let confused = jwt(Algorithm::HS256, None, &claims_for("eve", json!({})), &public_bytes);
    for server in [&rs_only, &both] {
        for token in [&unsigned, &confused] {
            assert_eq!(
                refused(server, "eve", token).await,
                ErrorCode::Unauthenticated,
                "{token}"
            );
        }
        assert_eq!(server.stats.disconnects(DisconnectReason::Unauthenticated), 2);
        // A genuine RS256 token still gets in.
        let genuine = jwt(
            Algorithm::RS256,
            None,
            &claims_for("ann", json!({})),
            &signing_key(Algorithm::RS256),
        );
        Client::connect(server.addr)
            .await
            .unwrap()
            .hello_with_token("ann", &genuine)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_refused() {
    let server = token_server(&["--auth-key", KEY]);
    let key = signing_key(Algorithm::HS256);
    let expired = jwt(
        Algorithm::HS256,
        None,
        &claims_for("bob", json!({"exp": now() - 1})),
        &key,
    );
    let early = jwt(
        Algorithm::HS256,
        None,
        &claims_for("bob", json!({"nbf": now() + 3600})),
        &key,
    );
    let no_exp = {
        let mut claims = claims_for("bob", json!({}));
        claims.as_object_mut().unwrap().remove("exp");
        jwt(Algorithm::HS256, None, &claims, &key)
    };
    for token in [&expired, &early, &no_exp] {
        assert_eq!(
            refused(&server, "bob", token).await,
            ErrorCode::Unauthenticated,
            "{token}"
        );
    }
    let started = jwt(
        Algorithm::HS256,
        None,
        &claims_for("ann", json!({"nbf": now() - 1})),
        &key,
    );
    Client::connect(server.addr)
        .await
        .unwrap()
        .hello_with_token("ann", &started)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_issuer_and_the_audience_are_checked_when_configured() {
    let server = token_server(&[
        "--auth-key",
        KEY,
        "--auth-issuer",
        "https://id.example",
        "--auth-audience",
        "tavern",
    ]);
    let key = signing_key(Algorithm::HS256);
    let scoped = |name: &str, iss: serde_json::Value, aud: serde_json::Value| {
        jwt(
            Algorithm::HS256,
            None,
            &claims_for(name, json!({"iss": iss, "aud": aud})),
            &key,
        )
    };
    let issuer = json!("https://id.example");
    for (token, what) in [
        (
            scoped("bob", json!("https://evil.example"), json!("tavern")),
            "wrong issuer",
        ),
        (scoped("bob", issuer.clone(), json!("chat")), "wrong audience"),
        (scoped("bob", issuer.clone(), json!(["chat", "web"])), "wrong audiences"),
        (
            jwt(Algorithm::HS256, None, &claims_for("bob", json!({})), &key),
            "neither",
        ),
    ] {
        assert_eq!(
            refused(&server, "bob", &token).await,
            ErrorCode::Unauthenticated,
            "{what}"
        );
    }
    let good = scoped("ann", issuer, json!(["chat", "tavern"]));
    Client::connect(server.addr)
        .await
        .unwrap()
        .hello_with_token("ann", &good)
        .await
        .unwrap();
    // `tavern token` mints for it, given the same issuer and audience.
    let output = tavern()
        .args(["token", "--player-id", "p8", "--name", "cid"])
        .env("TAVERN_AUTH_KEY", KEY)
        .env("TAVERN_AUTH_ISSUER", "https://id.example")
        .env("TAVERN_AUTH_AUDIENCE", "tavern")
        .output()
        .unwrap();
    let minted = String::from_utf8(output.stdout).unwrap();
    Client::connect(server.addr)
        .await
        .unwrap()
        .hello_with_token("cid", minted.trim())
        .await
        .unwrap();
}

#[test]
fn public_key_algorithms_need_a_public_key_at_start() {
    let parse = |args: &[&str]| {
        let mut all = vec!["tavern", "--auth", "token"];
        all.extend_from_slice(args);
        tavern::Config::parse_from(all)
    };
    let setting = |args: &[&str]| match parse(args) {
        Err(tavern::config::ConfigError::Invalid(invalid)) => invalid.setting,
        other => panic!("{args:?}: {other:?}"),
    };
    assert_eq!(setting(&["--auth-algorithms", "RS256"]), "auth_algorithms");
    assert_eq!(
        setting(&["--auth-algorithms", "RS256,HS256", "--auth-public-key", "k.pem"]),
        "auth_key"
    );
    assert_eq!(setting(&["--auth-key", KEY, "--auth-jwks", "keys.json"]), "auth_jwks");
    assert_eq!(setting(&["--auth-key", KEY, "--auth-issuer", ""]), "auth_issuer");
    assert!(matches!(
        parse(&["--auth-algorithms", "none"]),
        Err(tavern::config::ConfigError::Parse(_))
    ));
    assert!(parse(&["--auth-algorithms", "es256,EdDSA", "--auth-jwks", "keys.json"]).is_ok());
    // The files are read when the server starts: a private key, or a key of the wrong kind, stops it.
    for (file, setting) in [
        ("rsa_private.pem", "auth_public_key"),
        ("ec_public.pem", "auth_algorithms"),
    ] {
        let config = parse(&[
            "--auth-algorithms",
            "RS256",
            "--auth-public-key",
            &fixture(file),
            "--addr",
            "127.0.0.1:0",
        ]);
        let error = tavern::ServerThread::start(config.unwrap())
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(error.contains(setting), "{file}: {error}");
    }
}
