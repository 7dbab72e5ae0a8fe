//! Entry points for the fuzz targets (`fuzz/`) and for the test that replays
//! their corpus (`tests/fuzz_corpus.rs`), so both run exactly the same path.
//!
//! - [`decode_in_chunks`]: the frame decoder, fed a byte stream in chunks of
//!   sizes chosen by the input itself.
//! - [`SessionHarness`]: the whole session input path — frames, commands and
//!   their handling by a real Session, room directory and Rooms — over an in-memory
//!   pipe instead of a socket.
//!
//! Both panic on a broken invariant, which is what a fuzzer reports.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;
use tokio_util::codec::Decoder;

use crate::config::Config;
use crate::lifecycle::Hooks;
use crate::protocol::pb::{ClientMessage, ServerMessage};
use crate::protocol::{CodecError, FrameCodec, FrameLimit};

use crate::server::wiring::{Core, Extras};
use crate::session::{Session, SessionContext};
use crate::stats::Stats;

/// The frame limit [`decode_in_chunks`] decodes under.
const LIMIT: usize = 4096;

/// Decodes `data[1..]` as a stream of client frames, handed to the decoder
/// in chunks whose sizes come from `data[0]` (1 to 256 bytes, cycling), and
/// checks that no frame over the limit is ever returned and that a refused
/// length ends the stream.
///
/// # Panics
/// When the decoder breaks one of those rules.
pub fn decode_in_chunks(data: &[u8]) {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let mut codec = FrameCodec::<ClientMessage, ServerMessage>::new(FrameLimit::new(LIMIT));
    let mut buf = BytesMut::new();
    let mut chunk = usize::from(seed) + 1;
    let mut rest = stream;
    while !rest.is_empty() {
        let (now, later) = rest.split_at(chunk.min(rest.len()));
        rest = later;
        chunk = chunk % 256 + 1;
        buf.extend_from_slice(now);
        loop {
            let before = buf.len();
            match codec.decode(&mut buf) {
                Ok(Some(_message)) => assert!(buf.len() < before, "a frame consumed no bytes"),
                Ok(None) => break,
                Err(CodecError::FrameTooLarge { max }) => {
                    assert_eq!(max, LIMIT);
                    return;
                }
                Err(CodecError::Io(e)) => panic!("decoding bytes in memory failed: {e}"),
                Err(e @ CodecError::Violation { .. }) => panic!("the frame codec broke no transport rule: {e}"),
            }
        }
    }
}

/// A Session, room directory and Rooms on an actix system of their own, fed over an
/// in-memory pipe. Build one per process and [`run`](SessionHarness::run)
/// each input through it.
pub struct SessionHarness {
    context: Arc<SessionContext>,
    arbiter: actix::ArbiterHandle,
    connections: Arc<Semaphore>,
    runtime: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The longest an input may keep its session alive after its last byte.
const SESSION_DEADLINE: Duration = Duration::from_secs(5);

impl SessionHarness {
    /// Starts the actors, with the default configuration except short
    /// timeouts and no admin endpoint.
    ///
    /// # Panics
    /// When the threads cannot be started.
    #[allow(clippy::expect_used)]
    pub fn new() -> SessionHarness {
        let config = Config::parse_from([
            "tavern",
            "--admin-addr",
            "off",
            "--hello-timeout-ms",
            "1000",
            "--session-threads",
            "1",
            "--room-threads",
            "0",
            "--broadcast-threads",
            "1",
        ])
        .expect("the harness configuration is valid");
        let (ready, started) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let stats = Arc::new(Stats::new(true));
                let extras = Extras {
                    authority: None,
                    kinds: crate::plugins::shipped(),
                    hooks: Hooks::log_only(stats.clone()),
                    cluster: None,
                };
                let core = Core::build(config, stats, extras).expect("the harness's threads start");
                let _ = ready.send((core.context.clone(), core.session_homes()[0].clone()));
                let _ = stopped.await;
                core.stop_threads();
            });
        });
        let (context, arbiter) = started.recv().expect("the harness system started");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime for the client side");
        SessionHarness {
            context,
            arbiter,
            connections: Arc::new(Semaphore::new(1 << 20)),
            runtime,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Sends `input` as one client's whole byte stream, then end-of-stream;
    /// reads everything the server answers until it closes.
    ///
    /// # Panics
    /// When the session does not end within 5 s of its input ending, or
    /// when the server writes anything that is not a well-formed frame.
    #[allow(clippy::expect_used)]
    pub fn run(&self, input: &[u8]) {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let (read, write) = tokio::io::split(server);
        let permit = self
            .connections
            .clone()
            .try_acquire_owned()
            .expect("a connection place");
        let context = self.context.clone();
        let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 9));
        self.arbiter.spawn(async move {
            Session::start(read, write, peer, context, permit);
        });
        let output = self.runtime.block_on(async {
            let (mut reader, mut writer) = tokio::io::split(&mut client);
            let send = async {
                // The server may close first (a fatal error): writing then fails, which is fine.
                let _ = writer.write_all(input).await;
                let _ = writer.shutdown().await;
            };
            let mut output = Vec::new();
            let receive = reader.read_to_end(&mut output);
            let (_, received) = tokio::time::timeout(SESSION_DEADLINE, async { tokio::join!(send, receive) })
                .await
                .expect("the session ended after its input did");
            received.map(|_| output)
        });
        let Ok(output) = output else { return };
        let mut frames = BytesMut::from(&output[..]);
        let mut codec = FrameCodec::<ServerMessage, ClientMessage>::new(FrameLimit::new(
            usize::try_from(u32::MAX).unwrap_or(usize::MAX),
        ));
        while !frames.is_empty() {
            match codec.decode(&mut frames) {
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => panic!("the server wrote an undecodable frame: {e}"),
                Ok(None) => panic!("the server wrote a partial frame"),
                Err(e) => panic!("the server's frames do not parse: {e}"),
            }
        }
    }
}

impl Default for SessionHarness {
    fn default() -> Self {
        SessionHarness::new()
    }
}

impl Drop for SessionHarness {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
