//! TLS on the game port, mutual TLS, and what each port does with the other
//! kind of client, over real loopback TCP. Certificates are made per test run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use support::{WAIT, expect_error, read_to_close, spawn_server};
use tavern::client::Client;
use tavern::protocol::ErrorCode;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files in `dir`.
struct Pki {
    dir: PathBuf,
    ca: CertificateDer<'static>,
    client_cert: CertificateDer<'static>,
    client_key: Vec<u8>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("tavern-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&server_key, &issuer)
            .unwrap();
        let client_key = KeyPair::generate().unwrap();
        let client = CertificateParams::new(vec!["player".to_owned()])
            .unwrap()
            .signed_by(&client_key, &issuer)
            .unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.join("server.pem"), server.pem()).unwrap();
        std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
        Pki {
            dir,
            ca: ca.der().clone(),
            client_cert: client.der().clone(),
            client_key: client_key.serialize_der(),
        }
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).to_str().unwrap().to_owned()
    }

    fn connector(&self, with_client_cert: bool) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        let builder = ClientConfig::builder().with_root_certificates(roots);
        let config = if with_client_cert {
            let key = PrivateKeyDer::try_from(self.client_key.clone()).unwrap();
            builder
                .with_client_auth_cert(vec![self.client_cert.clone()], key)
                .unwrap()
        } else {
            builder.with_no_client_auth()
        };
        TlsConnector::from(Arc::new(config))
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn tls_client(pki: &Pki, addr: std::net::SocketAddr, with_client_cert: bool) -> std::io::Result<Client> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let tls = pki.connector(with_client_cert).connect(name, tcp).await?;
    let (read, write) = tokio::io::split(tls);
    Ok(Client::over(read, write))
}

fn provider() {
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
}

#[tokio::test]
async fn players_speak_the_protocol_over_tls_and_plaintext_is_closed() {
    provider();
    let pki = Pki::new("plain");
    let (cert, key) = (pki.path("server.pem"), pki.path("server.key"));
    let server = spawn_server(&[
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--tls-handshake-timeout-ms",
        "500",
    ]);
    let mut ann = tls_client(&pki, server.addr, false).await.unwrap();
    ann.hello("ann").await.unwrap();
    ann.join("hall").await.unwrap();
    let mut bob = tls_client(&pki, server.addr, false).await.unwrap();
    bob.hello("bob").await.unwrap();
    bob.join("hall").await.unwrap();
    bob.chat("hall", "over tls").await.unwrap();
    let chat = support::next_non_presence(&mut ann).await;
    let Some(tavern::protocol::pb::server_message::Body::Chat(chat)) = chat.body else {
        panic!("a chat")
    };
    assert_eq!(chat.text, "over tls");

    // Plaintext to the TLS port: no protocol frame comes back (at most a TLS
    // alert record, 0x15), and the connection ends.
    let mut plain = TcpStream::connect(server.addr).await.unwrap();
    let hello = tavern::protocol::encode_frame(&tavern::protocol::pb::ClientMessage {
        request_id: 1,
        body: Some(tavern::protocol::pb::client_message::Body::Hello(
            tavern::protocol::pb::Hello {
                protocol_version: 1,
                name: "eve".into(),
                ..Default::default()
            },
        )),
    });
    tokio::io::AsyncWriteExt::write_all(&mut plain, &hello).await.unwrap();
    let mut got = Vec::new();
    let ended = tokio::time::timeout(WAIT, plain.read_to_end(&mut got)).await;
    assert!(ended.is_ok(), "the connection was closed");
    assert!(got.is_empty() || got[0] == 0x15, "not a TLS alert: {got:?}");
    // A client that connects and says nothing is closed by the handshake deadline.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let mut nothing = Vec::new();
    let ended = tokio::time::timeout(WAIT, silent.read_to_end(&mut nothing)).await;
    assert!(ended.is_ok(), "the TLS handshake deadline closed it");
    // Both were counted (the failed handshake's socket may close a moment before its count).
    let failures = &server.stats.tls_handshake_failures;
    let counted = tokio::time::timeout(WAIT, async {
        while failures.get() < 2 {
            tokio::task::yield_now().await;
        }
    });
    assert!(counted.await.is_ok(), "{} handshake failures counted", failures.get());
    ann.ping().await.unwrap();
}

#[tokio::test]
async fn mutual_tls_admits_only_clients_with_a_certificate_from_the_ca() {
    provider();
    let pki = Pki::new("mutual");
    let (cert, key, ca) = (pki.path("server.pem"), pki.path("server.key"), pki.path("ca.pem"));
    let server = spawn_server(&["--tls-cert", &cert, "--tls-key", &key, "--tls-client-ca", &ca]);
    let mut ann = tls_client(&pki, server.addr, true).await.unwrap();
    ann.hello("ann").await.unwrap();
    // Without a certificate the handshake fails (on TLS 1.3 the client may only learn it on its first read).
    match tls_client(&pki, server.addr, false).await {
        Err(_) => {}
        Ok(mut anonymous) => assert!(anonymous.hello("anon").await.is_err()),
    }
    ann.ping().await.unwrap();
}

#[tokio::test]
async fn tls_to_the_plain_port_is_refused_as_an_oversized_frame() {
    provider();
    let pki = Pki::new("wrongport");
    let server = spawn_server(&[]);
    // A TLS client gets no handshake from a plain port.
    assert!(tls_client(&pki, server.addr, false).await.is_err());
    // What it sent, a ClientHello, reads as a length far over the pre-Hello limit.
    let mut raw = TcpStream::connect(server.addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut raw, &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc])
        .await
        .unwrap();
    let (read, write) = raw.into_split();
    let mut client = Client::over(read, write);
    let message = client.next_event(WAIT).await.unwrap();
    assert_eq!(expect_error(&message).code(), ErrorCode::FrameTooLarge);
    let (_, mut rest) = client.into_split();
    assert!(read_to_close(&mut rest).await.is_empty());
}

#[test]
fn missing_or_broken_certificate_files_are_named() {
    let pki = Pki::new("broken");
    std::fs::write(pki.dir.join("empty.pem"), "").unwrap();
    for (cert, key, needle) in [
        (pki.path("nope.pem"), pki.path("server.key"), "nope.pem"),
        (pki.path("empty.pem"), pki.path("server.key"), "no certificate"),
        (pki.path("server.pem"), pki.path("ca.pem"), "tls_key"),
    ] {
        let config = tavern::Config::parse_from([
            "tavern",
            "--addr",
            "127.0.0.1:0",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ])
        .unwrap();
        let error = tavern::tls::acceptor(&config).map(|_| ()).unwrap_err().to_string();
        assert!(error.contains(needle), "{error}");
    }
    let lone = tavern::Config::parse_from(["tavern", "--tls-cert", &pki.path("server.pem")]);
    assert!(lone.is_err(), "a certificate without a key");
}

#[tokio::test]
async fn a_full_tls_port_says_so_over_tls() {
    provider();
    let pki = Pki::new("full");
    let (cert, key) = (pki.path("server.pem"), pki.path("server.key"));
    let server = spawn_server(&["--tls-cert", &cert, "--tls-key", &key, "--max-connections", "1"]);
    let mut ann = tls_client(&pki, server.addr, false).await.unwrap();
    ann.hello("ann").await.unwrap();
    // The second connection finishes its handshake and reads why it is refused.
    let late = tls_client(&pki, server.addr, false).await.unwrap();
    let (_, mut reader) = late.into_split();
    let messages = read_to_close(&mut reader).await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(expect_error(&messages[0]).code(), ErrorCode::ServerFull);
}

#[tokio::test]
async fn websocket_clients_speak_over_tls_with_the_same_settings() {
    provider();
    let pki = Pki::new("wss");
    let (cert, key) = (pki.path("server.pem"), pki.path("server.key"));
    let server = spawn_server(&["--tls-cert", &cert, "--tls-key", &key]);
    let ws = server.ws.unwrap();
    let tcp = TcpStream::connect(ws).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let tls = pki.connector(false).connect(name, tcp).await.unwrap();
    let mut web = tavern::ws::client::connect_over(tls, ws, None).await.unwrap();
    web.hello("web").await.unwrap();
    web.join("hall").await.unwrap();
    let mut ann = tls_client(&pki, server.addr, false).await.unwrap();
    ann.hello("ann").await.unwrap();
    ann.join("hall").await.unwrap();
    ann.chat("hall", "to the browser").await.unwrap();
    let chat = support::next_non_presence(&mut web).await;
    let Some(tavern::protocol::pb::server_message::Body::Chat(chat)) = chat.body else {
        panic!("a chat")
    };
    assert_eq!(chat.text, "to the browser");
    // Plain WebSocket to the TLS listener gets no handshake.
    assert!(tavern::ws::client::connect(ws).await.is_err());
}
