//! The TypeScript client (`clients/ts`) against a real server: its node:test
//! suite (`npm test`: build with tsc, then run) talks to this server's
//! WebSocket listener, found through `TAVERN_WS_URL`. The suite is bounded in
//! time; its output is printed when it fails. Node.js, npm and the client's
//! `node_modules` must be installed (`.ci/run` installs them): without them
//! this test fails, naming the command that installs them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use support::{NO_RATE_LIMIT, spawn_server};

/// How long the whole suite, its build included, may take.
const SUITE_TIMEOUT: Duration = Duration::from_secs(300);

/// Overload shedding off: on a busy machine a late event loop would refuse the
/// suite's connections as OVERLOADED, which is no test of the client.
const NO_SHEDDING: &[&str] = &[
    "--overload-loop-lag-ms",
    "0",
    "--overload-inbox-pct",
    "0",
    "--overload-tick-overrun-pct",
    "0",
    "--overload-fanout-us",
    "0",
];

/// What installs the client's dependencies, from the repository's root.
const INSTALL: &str = "npm ci --prefix clients/ts";

fn client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients").join("ts")
}

/// Fails, saying what to install, unless `program --version` runs.
fn require(program: &str) {
    let runs = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        runs,
        "`{program}` is not installed: install Node.js 20+ and npm (`apt-get install -y nodejs npm`), then run `{INSTALL}`"
    );
}

/// Reads a child's pipe to its end on a thread of its own (so that a full pipe never blocks the child).
fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            // Output that is not UTF-8 or a pipe that breaks only shortens what is printed.
            let _ = pipe.read_to_string(&mut text);
        }
        text
    })
}

/// `npm test` in `dir` against the server at `url`, in a process group of its own.
fn start_suite(dir: &Path, url: &str) -> (Child, JoinHandle<String>, JoinHandle<String>) {
    let mut child = Command::new("npm")
        .arg("test")
        .current_dir(dir)
        .env("TAVERN_WS_URL", url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("could not run `npm test` in {}: {e}; run `{INSTALL}`", dir.display()));
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    (child, stdout, stderr)
}

/// Waits for `child` at most `timeout`; past it, kills its process group
/// (npm, tsc and node's test processes) by the child's PID and returns `None`.
fn wait_bounded(mut child: Child, timeout: Duration) -> Option<ExitStatus> {
    let pid = child.id();
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let _ = sender.send(child.wait());
    });
    match receiver.recv_timeout(timeout) {
        Ok(status) => Some(status.expect("waiting for `npm test`")),
        Err(_) => {
            // The group's id is the child's PID (process_group(0)).
            let killed = Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).status();
            assert!(
                killed.is_ok_and(|status| status.success()),
                "could not kill the suite's process group {pid}"
            );
            None
        }
    }
}

#[test]
fn typescript_client_suite_passes_against_a_real_server() {
    let dir = client_dir();
    require("node");
    require("npm");
    assert!(
        dir.join("node_modules").is_dir(),
        "{} is missing: run `{INSTALL}`",
        dir.join("node_modules").display()
    );
    let server = spawn_server(&[NO_RATE_LIMIT, NO_SHEDDING].concat());
    let ws = server.ws.expect("a WebSocket listener");
    let (child, stdout, stderr) = start_suite(&dir, &format!("ws://{ws}/"));
    let status = wait_bounded(child, SUITE_TIMEOUT);
    let stdout = stdout.join().expect("the stdout reader");
    let stderr = stderr.join().expect("the stderr reader");
    drop(server);
    match status {
        Some(status) if status.success() => {
            let counts = ["# tests ", "# pass ", "# fail "];
            let summary: Vec<&str> = stdout
                .lines()
                .filter(|line| counts.iter().any(|count| line.starts_with(count)))
                .collect();
            println!("{}", summary.join("\n"));
        }
        Some(status) => panic!("the TypeScript suite failed ({status}):\n{stdout}\n{stderr}"),
        None => panic!("the TypeScript suite took over {SUITE_TIMEOUT:?}; killed:\n{stdout}\n{stderr}"),
    }
}
