//! Configuration: parsing, validation, and the binary's behaviour with bad settings and signals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use tavern::Config;
use tavern::config::ConfigError;

fn parse(args: &[&str]) -> Result<Config, ConfigError> {
    Config::parse_from(std::iter::once("tavern").chain(args.iter().copied()))
}

#[test]
fn defaults_are_documented_values() {
    let config = parse(&["--addr", "127.0.0.1:4000"]).unwrap();
    assert_eq!(config.max_frame_len, 16_384);
    assert_eq!(config.max_text_len, 1024);
    assert_eq!(config.outbound_queue_frames, 4096);
    assert!(config.session_threads >= 1);
}

#[test]
fn parse_errors_name_the_setting() {
    for (args, needle) in [
        (&["--addr", "not-an-address"][..], "--addr"),
        (&["--max-frame-len", "lots"], "--max-frame-len"),
        (&["--session-threads", "0"], "--session-threads"),
        (&["--heartbeat-interval-ms", "0"], "--heartbeat-interval-ms"),
        (&["--no-such-flag"], "--no-such-flag"),
    ] {
        let Err(ConfigError::Parse(e)) = parse(args) else {
            panic!("{args:?} parsed")
        };
        assert!(e.to_string().contains(needle), "{args:?}: {e}");
    }
}

#[test]
fn settings_that_do_not_fit_together_are_refused() {
    for (args, needle) in [
        (&["--max-hello-frame-len", "20000"][..], "max_hello_frame_len"),
        (&["--max-text-len", "16384"], "max_frame_len"),
        (&["--outbound-queue-bytes", "100"], "outbound_queue_bytes"),
        (&["--outbound-queue-frames", "0"], "outbound_queue_frames"),
        (&["--room-inbox", "0"], "room_inbox"),
        (&["--max-frame-len", "5000000000"], "32-bit"),
    ] {
        let Err(ConfigError::Invalid(message)) = parse(args) else {
            panic!("{args:?} accepted")
        };
        assert!(message.to_string().contains(needle), "{args:?}: {message}");
    }
}

fn tavern() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tavern"));
    command.env_remove("RUST_LOG").stdin(Stdio::null());
    command
}

#[test]
fn the_binary_exits_non_zero_with_a_clear_message_before_binding() {
    // Port 1 is privileged: had it tried to bind, the error would be a bind error instead.
    let output = tavern()
        .args(["--addr", "127.0.0.1:1", "--max-hello-frame-len", "99999"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("max_hello_frame_len"), "{stderr}");

    let output = tavern().env("TAVERN_MAX_TEXT_LEN", "lots").output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--max-text-len"), "{stderr}");
}

#[test]
fn a_dot_env_file_in_the_working_directory_is_read() {
    let dir = std::env::temp_dir().join(format!("tavern-dotenv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(".env"), "TAVERN_MAX_HELLO_FRAME_LEN=99999\n").unwrap();
    let output = tavern()
        .current_dir(&dir)
        .args(["--addr", "127.0.0.1:1"])
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("max_hello_frame_len (99999)"), "{stderr}");
}

#[test]
fn help_lists_every_setting_with_its_variable() {
    let output = tavern().arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for variable in [
        "TAVERN_ADDR",
        "TAVERN_MAX_FRAME_LEN",
        "TAVERN_OUTBOUND_QUEUE_BYTES",
        "TAVERN_SHUTDOWN_GRACE_MS",
    ] {
        assert!(help.contains(variable), "{variable} missing from --help");
    }
    assert!(help.contains("127.0.0.1:4000"));
}

#[test]
fn sigterm_shuts_down_and_exits_zero() {
    let mut child = tavern()
        .args(["--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Read the whole log on a thread; it tells when the server listens.
    let (listening, listens) = std::sync::mpsc::channel();
    let log = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("listening on") {
                let _ = listening.send(());
            }
            lines.push(line);
        }
        lines
    });
    listens
        .recv_timeout(Duration::from_secs(20))
        .expect("a 'listening on' line");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (exited, exit) = std::sync::mpsc::channel();
    std::thread::spawn(move || exited.send(child.wait()));
    let exit = exit
        .recv_timeout(Duration::from_secs(20))
        .expect("exit within 20 s of SIGTERM")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    let lines = log.join().unwrap();
    assert!(lines.iter().any(|l| l.contains("SIGTERM")), "{lines:#?}");
    assert!(lines.iter().any(|l| l.contains("stopped")), "{lines:#?}");
}
