//! Token authentication (`--auth token`) over real loopback TCP, and the
//! `tavern token` command.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::{TestServer, read_to_close, spawn_server};
use tavern::auth::{Authority, Claims};
use tavern::client::Client;
use tavern::ids::DisconnectReason;
use tavern::protocol::ErrorCode;

const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn authority(key: &str) -> Authority {
    Authority::new(tavern::auth::parse_hex_key(key).unwrap(), Default::default()).unwrap()
}

fn token(key: &str, name: &str, jti: &str, ttl: i64) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    authority(key).mint(&Claims {
        sub: format!("player-{name}"),
        name: name.into(),
        exp: now.checked_add_signed(ttl).unwrap(),
        jti: jti.into(),
    })
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
