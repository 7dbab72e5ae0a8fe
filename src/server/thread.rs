//! [`ServerThread`]: a server on a thread of its own, for embedding and tests.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use super::{Server, ServerError};
use crate::config::Config;
use crate::stats::Stats;

/// A server running on a thread of its own, in its own actix system: for
/// embedding Tavern in a program that is not an actix system, and for tests.
/// Dropping it shuts the server down gracefully and waits for the thread.
pub struct ServerThread {
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    ws_addr: Option<SocketAddr>,
    stats: Arc<Stats>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), ServerError>>>,
}

impl ServerThread {
    /// Starts a server and returns once it listens.
    ///
    /// # Errors
    /// What [`Server::bind`] returns, or [`ServerError::Thread`] when the thread could not start.
    pub fn start(config: Config) -> Result<ServerThread, ServerError> {
        ServerThread::start_with(config, |server| server)
    }

    /// As [`ServerThread::start`], with `customize` applied to the bound
    /// server (to give it room behaviours or an observer) before it runs.
    ///
    /// # Errors
    /// As [`ServerThread::start`].
    pub fn start_with(
        config: Config,
        customize: impl FnOnce(Server) -> Server + Send + 'static,
    ) -> Result<ServerThread, ServerError> {
        let (ready, bound) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let wanted = config.addr;
        let thread = std::thread::Builder::new()
            .name("tavern-server".into())
            .spawn(move || {
                actix_rt::System::new().block_on(async move {
                    let bound = Server::bind(config).await.and_then(|server| match server.local_addr() {
                        Ok(addr) => Ok((addr, server)),
                        Err(source) => Err(ServerError::Bind { addr: wanted, source }),
                    });
                    let server = match bound {
                        Ok((addr, server)) => {
                            let _ = ready.send(Ok((addr, (server.admin_addr(), server.ws_addr()), server.stats())));
                            customize(server)
                        }
                        Err(e) => {
                            let _ = ready.send(Err(e));
                            return Ok(());
                        }
                    };
                    server
                        .run(async move {
                            let _ = stopped.await;
                        })
                        .await
                })
            })
            .map_err(ServerError::Thread)?;
        match bound.recv() {
            Ok(Ok((addr, (admin_addr, ws_addr), stats))) => Ok(ServerThread {
                addr,
                admin_addr,
                ws_addr,
                stats,
                stop: Some(stop),
                thread: Some(thread),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ServerError::Thread(io::Error::other(
                "the server thread ended before listening",
            ))),
        }
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin endpoint's address, if it has one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The WebSocket listener's address, if it has one.
    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.ws_addr
    }

    /// The server's figures.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Starts a graceful shutdown without waiting for it.
    pub fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Shuts down gracefully and waits for the thread (blocking).
    ///
    /// # Errors
    /// What [`Server::run`] returned, or [`ServerError::Thread`] if the thread panicked.
    pub fn join(mut self) -> Result<(), ServerError> {
        self.shut_down();
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(ServerError::Thread(io::Error::other("the server thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        self.shut_down();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
