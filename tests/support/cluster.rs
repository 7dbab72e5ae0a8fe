//! Test support for clusters of real processes over loopback: a `nats-server`
//! with JetStream ([`NatsServer`]) and `tavern` nodes joined to it ([`Node`]),
//! each started by process id, logging to a file in a directory of its own,
//! killed on drop. Every wait is bounded and polls its condition.

use std::fs::OpenOptions;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tavern::client::Client;

use super::WAIT;

/// How often a wait looks at its condition again.
const POLL: Duration = Duration::from_millis(20);
/// How long `nats-server` may take to accept connections with JetStream ready.
const NATS_READY: Duration = Duration::from_secs(10);
/// How long a node may take to log that it listens.
const NODE_LISTENING: Duration = Duration::from_secs(20);
/// How long a stopped process may take to exit.
const EXIT_WAIT: Duration = Duration::from_secs(30);
/// Tries at a free port before a start gives up.
const PORT_TRIES: u32 = 5;
/// Lines of a log that [`NatsServer::log_tail`] and [`Node::log_tail`] give.
const TAIL_LINES: usize = 40;

/// A free loopback port: bound, read and released (another process may take
/// it before the caller binds it, so callers retry).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    listener.local_addr().expect("the bound address").port()
}

/// A `nats-server` with JetStream on a loopback port; killed, and its
/// directory removed, on drop (kept if the test panics, for its logs).
pub struct NatsServer {
    binary: PathBuf,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// Starts so far; each start logs to a file of its own.
    starts: u32,
}

impl NatsServer {
    /// Starts `nats-server -js` on a free loopback port and waits until it
    /// accepts connections with JetStream ready.
    ///
    /// # Panics
    /// `nats-server` is not installed, or does not get ready in time.
    pub fn start() -> NatsServer {
        let mut server = NatsServer {
            binary: nats_server_binary(),
            port: 0,
            dir: fresh_dir("nats"),
            child: None,
            starts: 0,
        };
        for attempt in 1..=PORT_TRIES {
            server.port = free_port();
            match server.launch() {
                Ok(()) => return server,
                Err(Failed::PortTaken) if attempt < PORT_TRIES => {}
                Err(failed) => panic!("nats-server did not start: {failed}\n{}", server.log_tail()),
            }
        }
        unreachable!("the last try returns or panics")
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The port it listens on (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id of the running server.
    ///
    /// # Panics
    /// It is not running (killed or stopped, and not restarted).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("nats-server is running").id()
    }

    /// Kills it (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops it with SIGTERM and waits (bounded) for it to exit.
    ///
    /// # Panics
    /// It is not running, or did not exit within 30 s (it is killed first).
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("nats-server is running");
        match terminate(&mut child) {
            Some(status) => status,
            None => panic!(
                "nats-server did not exit within {EXIT_WAIT:?} of SIGTERM\n{}",
                self.log_tail()
            ),
        }
    }

    /// Starts it again on the same port with the same JetStream store (stopping
    /// it with SIGTERM first if it still runs), and waits until it is ready.
    ///
    /// # Panics
    /// It does not get ready in time, or its port stays taken.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        let deadline = Instant::now() + NATS_READY;
        loop {
            match self.launch() {
                Ok(()) => return,
                Err(Failed::PortTaken) if Instant::now() < deadline => std::thread::sleep(POLL),
                Err(failed) => panic!("nats-server did not restart: {failed}\n{}", self.log_tail()),
            }
        }
    }

    /// The last lines of the current start's log.
    pub fn log_tail(&self) -> String {
        tail(&self.log_path())
    }

    /// The current start's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join(format!("nats-{}.log", self.starts))
    }

    /// Starts the process on `self.port` and waits until it is ready.
    fn launch(&mut self) -> Result<(), Failed> {
        self.starts += 1;
        let log = self.log_path();
        let port = self.port.to_string();
        let store = self.dir.join("js");
        let mut command = Command::new(&self.binary);
        command.args(["-a", "127.0.0.1", "-p", &port, "-js", "-sd"]).arg(&store);
        let mut child = spawn_logged(command, &log);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let ready = wait_for(&mut child, NATS_READY, || {
            read(&log).contains("Server is ready") && TcpStream::connect_timeout(&addr, POLL).is_ok()
        });
        match ready {
            Ok(()) => {
                self.child = Some(child);
                Ok(())
            }
            Err(Failed::Exited(_)) if read(&log).contains("address already in use") => Err(Failed::PortTaken),
            Err(failed) => Err(failed),
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        remove_unless_panicking(&self.dir);
    }
}

/// A `tavern` process in a cluster; killed on drop if still running (its
/// directory is removed then, or kept if the test panics, for its log).
pub struct Node {
    /// Its `--node-id`.
    pub id: String,
    /// The game port.
    pub addr: SocketAddr,
    /// The admin endpoint.
    pub admin: SocketAddr,
    child: Child,
    dir: PathBuf,
    log: PathBuf,
}

impl Node {
    /// Runs `tavern` on loopback ports joined to the cluster at `nats_url`
    /// as `node_id`, with `extra` flags after the test defaults, and waits
    /// until it listens. The game port is the one it logs; the admin port is
    /// a free port chosen here (the binary does not log its admin address),
    /// tried again with another if that one was taken meanwhile.
    ///
    /// # Panics
    /// It exits, or does not listen within 20 s; the message has its log's tail.
    pub fn spawn(nats_url: &str, node_id: &str, extra: &[&str]) -> Node {
        let dir = fresh_dir(&format!("node-{node_id}"));
        for attempt in 1..=PORT_TRIES {
            let log = dir.join(format!("node-{attempt}.log"));
            let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let mut command = Command::new(env!("CARGO_BIN_EXE_tavern"));
            command
                .args([
                    "--addr",
                    "127.0.0.1:0",
                    "--admin-addr",
                    &admin.to_string(),
                    "--ws-addr",
                    "off",
                ])
                .args(["--session-threads", "2", "--broadcast-threads", "2"])
                .args(["--cluster", nats_url, "--node-id", node_id])
                .args(extra)
                .env("RUST_LOG", "info,tavern=debug");
            let mut child = spawn_logged(command, &log);
            let listening = wait_for(&mut child, NODE_LISTENING, || listening_addr(&read(&log)).is_some());
            match listening {
                Ok(()) => {
                    let addr = listening_addr(&read(&log)).expect("the address it logged");
                    let id = node_id.to_owned();
                    return Node {
                        id,
                        addr,
                        admin,
                        child,
                        dir,
                        log,
                    };
                }
                Err(Failed::Exited(_)) if read(&log).contains(&format!("cannot listen on {admin}")) => {
                    if attempt == PORT_TRIES {
                        panic!(
                            "node {node_id}: no free admin port in {PORT_TRIES} tries\n{}",
                            tail(&log)
                        );
                    }
                }
                Err(failed) => panic!("node {node_id} did not start: {failed}\n{}", tail(&log)),
            }
        }
        unreachable!("the last try returns or panics")
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills it (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the process (SIGSTOP) without killing it: a node that stalls.
    pub fn freeze(&self) {
        send_signal(self.pid(), "STOP");
    }

    /// Lets a frozen process run again (SIGCONT).
    pub fn thaw(&self) {
        send_signal(self.pid(), "CONT");
    }

    /// Sends SIGTERM and waits (bounded, 30 s) for the process to exit,
    /// without blocking the test's runtime (its clients keep reading while
    /// the node drains).
    ///
    /// # Panics
    /// It did not exit in time (it is killed first); the message has its log's tail.
    pub async fn terminate(&mut self) -> ExitStatus {
        send_signal(self.pid(), "TERM");
        let deadline = Instant::now() + EXIT_WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("the node's status") {
                return status;
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!(
                    "node {} did not exit within {EXIT_WAIT:?} of SIGTERM\n{}",
                    self.id,
                    self.log_tail()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// `GET path` on the admin endpoint: the status and the body.
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        let answer = super::http_get(self.admin, path).await;
        answer.unwrap_or_else(|e| panic!("node {}'s admin endpoint: {e}\n{}", self.id, self.log_tail()))
    }

    /// Waits (within [`WAIT`]) until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + WAIT;
        while self.admin_get("/readyz").await.0 != 200 {
            assert!(
                Instant::now() < deadline,
                "node {} not ready\n{}",
                self.id,
                self.log_tail()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Connects to its game port and says Hello as `name`.
    pub async fn connect(&self, name: &str) -> Client {
        match Client::connect_as(self.addr, name).await {
            Ok((client, _)) => client,
            Err(e) => panic!("{name} connecting to node {}: {e}\n{}", self.id, self.log_tail()),
        }
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        tail(&self.log)
    }

    /// Its log file (stdout and stderr).
    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.is_running() {
            self.kill();
        }
        remove_unless_panicking(&self.dir);
    }
}

/// Why a process did not get ready.
#[derive(Debug)]
enum Failed {
    /// It exited first.
    Exited(ExitStatus),
    /// The wait ran out (the process was killed).
    Timeout(Duration),
    /// Its port was taken (it exited saying so).
    PortTaken,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failed::Exited(status) => write!(f, "it exited ({status})"),
            Failed::Timeout(wait) => write!(f, "not ready within {wait:?}"),
            Failed::PortTaken => write!(f, "its port was taken"),
        }
    }
}

/// The `nats-server` executable: on `PATH`, or where Debian's package puts it.
///
/// # Panics
/// It is in neither place.
fn nats_server_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let on_path = std::env::split_paths(&path).map(|dir| dir.join("nats-server"));
    let known = ["/usr/sbin", "/usr/bin"].map(|dir| Path::new(dir).join("nats-server"));
    let found = on_path.chain(known).find(|candidate| candidate.is_file());
    found.unwrap_or_else(|| {
        panic!("nats-server not found: install it with `apt-get install nats-server` (see README's prerequisites)")
    })
}

/// Starts `command` with stdin closed and stdout and stderr appended to `log`.
fn spawn_logged(mut command: Command, log: &Path) -> Child {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
    let stderr = file.try_clone().expect("a second handle on the log");
    command
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {:?}: {e}", command.get_program()))
}

/// Polls `ready` until it holds, the child exits, or `within` passes (then
/// the child is killed).
fn wait_for(child: &mut Child, within: Duration, mut ready: impl FnMut() -> bool) -> Result<(), Failed> {
    let deadline = Instant::now() + within;
    loop {
        if ready() {
            return Ok(());
        }
        if let Some(status) = child.try_wait().expect("the child's status") {
            return Err(Failed::Exited(status));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Failed::Timeout(within));
        }
        std::thread::sleep(POLL);
    }
}

/// Sends SIGTERM, then waits up to [`EXIT_WAIT`] for the exit; `None` (after
/// killing it) if it did not come.
fn terminate(child: &mut Child) -> Option<ExitStatus> {
    send_signal(child.id(), "TERM");
    let deadline = Instant::now() + EXIT_WAIT;
    loop {
        if let Some(status) = child.try_wait().expect("the child's status") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// `kill -SIGNAL pid`.
fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("running kill");
    assert!(status.success(), "kill -{signal} {pid}: {status}");
}

/// The address of the first `listening on ADDR` line in a node's log.
fn listening_addr(log: &str) -> Option<SocketAddr> {
    log.lines().find_map(|line| {
        let (_, after) = line.split_once("listening on ")?;
        after.split_whitespace().next()?.parse().ok()
    })
}

/// A file's text so far (empty if it cannot be read yet).
fn read(path: &Path) -> String {
    std::fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

/// The last [`TAIL_LINES`] lines of a log, headed by its path.
fn tail(path: &Path) -> String {
    let text = read(path);
    let lines: Vec<&str> = text.lines().collect();
    let last = &lines[lines.len().saturating_sub(TAIL_LINES)..];
    format!("--- last lines of {} ---\n{}", path.display(), last.join("\n"))
}

/// A new, empty directory under the system's temporary directory.
fn fresh_dir(what: &str) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let number = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tavern-{what}-{}-{number}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}

/// Removes `dir`, unless the thread is panicking: then its logs stay, and
/// the path is printed.
fn remove_unless_panicking(dir: &Path) {
    if std::thread::panicking() {
        eprintln!("logs kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(dir);
    }
}
