//! The web pages in a real browser: headless Chromium, driven through
//! chromedriver (WebDriver), loads the pages from the admin endpoint and
//! talks to the server over the WebSocket listener, beside Rust clients over
//! TCP. The playground's chat reaches a TCP member and back; its world shows a
//! TCP bot moving, and the bot sees the page's player walk; the console lists
//! a room with its member count. Each test saves a screenshot to
//! `target/browser-screenshots/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`apt-get install -y
//! chromium chromium-driver`); without them these tests fail, saying so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use support::{WAIT, next_body, spawn_server};
use tavern::client::Client;
use tavern::protocol::pb::server_message::Body;

/// Names the page's fields and buttons by id, types into them and clicks.
async fn fill(browser: &Browser, id: &str, text: &str) {
    let field = browser.element(id).await;
    field.clear().await.unwrap_or_else(|e| panic!("clearing #{id}: {e}"));
    field
        .send_keys(text)
        .await
        .unwrap_or_else(|e| panic!("typing into #{id}: {e}"));
}

async fn click(browser: &Browser, id: &str) {
    browser
        .element(id)
        .await
        .click()
        .await
        .unwrap_or_else(|e| panic!("clicking #{id}: {e}"));
}

/// Reads `client`'s events until `wanted` picks one out, within [`WAIT`].
async fn next_matching<T>(client: &mut Client, what: &str, mut wanted: impl FnMut(&Body) -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        assert!(tokio::time::Instant::now() < deadline, "no {what} within {WAIT:?}");
        if let Some(found) = wanted(&next_body(client).await) {
            return found;
        }
    }
}

#[tokio::test]
async fn the_pages_and_endpoints_are_served() {
    let server = spawn_server(&[]);
    let (status, console) = server.admin_get("/").await;
    assert_eq!(status, 200);
    assert!(console.contains("/assets/console.js"), "{console}");
    let (status, play) = server.admin_get("/play").await;
    assert_eq!(status, 200);
    assert!(play.contains("/assets/play.js"), "{play}");
    for asset in ["console.js", "play.js", "style.css"] {
        let (status, body) = server.admin_get(&format!("/assets/{asset}")).await;
        assert_eq!(status, 200, "/assets/{asset}");
        assert!(!body.is_empty(), "/assets/{asset} is empty");
    }
    assert_eq!(server.admin_get("/assets/nothing.js").await.0, 404);
    let (status, endpoints) = server.admin_get("/endpoints").await;
    assert_eq!(status, 200);
    let endpoints: Value = serde_json::from_str(&endpoints).unwrap();
    let ws = server.ws.expect("a WebSocket listener");
    assert_eq!(endpoints["ws_url"], format!("ws://{ws}/"));
}

#[tokio::test]
async fn playground_chat_reaches_a_tcp_member_and_back() {
    let server = spawn_server(&[]);
    let mut bot = server.member("bot", "tavern").await;
    let browser = Browser::start().await;
    browser.open(&format!("http://{}/play", server.admin)).await;
    browser.wait_for("the playground", "window.tavernPlayground").await;
    fill(&browser, "name", "web-alice").await;
    fill(&browser, "room", "tavern").await;
    click(&browser, "join").await;
    browser
        .wait_for("the page in the room", "tavernPlayground.room === 'tavern'")
        .await;
    next_matching(&mut bot, "the page joining", |body| match body {
        Body::MemberJoined(j) => j.member.as_ref().filter(|m| m.name == "web-alice").map(|_| ()),
        _ => None,
    })
    .await;

    fill(&browser, "message", "hello from the browser").await;
    click(&browser, "send").await;
    let from = next_matching(&mut bot, "the page's chat", |body| match body {
        Body::Chat(c) if c.text == "hello from the browser" => Some(c.from_name.clone()),
        _ => None,
    })
    .await;
    assert_eq!(from, "web-alice");

    bot.chat("tavern", "hello from rust").await.unwrap();
    browser
        .wait_for(
            "the TCP member's chat in the page",
            "tavernPlayground.chats.some(c => c.from === 'bot' && c.text === 'hello from rust')",
        )
        .await;
    let shown = browser
        .eval("return document.getElementById('messages').innerText")
        .await;
    let shown = shown.as_str().unwrap_or_default();
    assert!(shown.contains("hello from rust"), "message list: {shown}");
    assert!(shown.contains("hello from the browser"), "message list: {shown}");
    browser.screenshot("playground-chat").await;
    browser.stop().await;
}

/// A TCP player in world `w`, and where it last saw each entity (fixed point).
struct Bot {
    client: Client,
    id: u64,
    known: HashMap<u64, (i32, i32)>,
}

impl Bot {
    /// Reads updates until `entity` is somewhere `done` holds, within [`WAIT`].
    async fn until_entity(&mut self, entity: u64, what: &str, done: impl Fn((i32, i32)) -> bool) -> (i32, i32) {
        let known = &mut self.known;
        next_matching(&mut self.client, what, |body| {
            if let Body::WorldUpdate(update) = body {
                for e in &update.entered {
                    known.insert(e.id, (e.x, e.y));
                }
                for m in &update.moved {
                    if let Some(at) = known.get_mut(&m.id) {
                        *at = (at.0 + m.dx, at.1 + m.dy);
                    }
                }
                for id in &update.left {
                    known.remove(id);
                }
            }
            known.get(&entity).copied().filter(|at| done(*at))
        })
        .await
    }
}

#[tokio::test]
async fn playground_world_shows_a_tcp_bot_moving() {
    let server = spawn_server(&[]);
    let mut client = server.connect("walker").await;
    let entered = client.enter_world("w", Some((100.0, 100.0))).await.unwrap();
    let quantum = entered.position_quantum;
    let mut bot = Bot {
        client,
        id: entered.entity_id,
        known: HashMap::new(),
    };
    let browser = Browser::start().await;
    browser.open(&format!("http://{}/play", server.admin)).await;
    browser.wait_for("the playground", "window.tavernPlayground").await;
    fill(&browser, "name", "web-bob").await;
    fill(&browser, "world", "w").await;
    fill(&browser, "spawn", "115, 110").await;
    click(&browser, "enter").await;
    let seen = format!("tavernPlayground.entities['{}']", bot.id);
    browser.wait_for("the bot in the page's view", &seen).await;
    let page_id: u64 = browser
        .wait_for("the page's own entity", "tavernPlayground.me")
        .await
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("an entity id");
    let near = |want: f64| format!("Math.abs({seen}.x - {want}) < 0.05 && Math.abs({seen}.y - 100) < 0.05");
    browser.wait_for("the bot at its spawn point", &near(100.0)).await;

    bot.client.move_to(104.0, 100.0, 0.0, 1).await.unwrap();
    browser.wait_for("the bot's move in the page", &near(104.0)).await;
    let name = browser.eval(&format!("return {seen}.name")).await;
    assert_eq!(name, "walker");

    // The page walks west (a tap of the left arrow: half a second's way), and the bot sees it.
    let start = bot.until_entity(page_id, "the page's player", |_| true).await;
    browser.eval("document.getElementById('world-canvas').focus()").await;
    browser.press_key(fantoccini::key::Key::Left).await;
    let units = |fixed: i32| f64::from(fixed) * f64::from(quantum);
    let moved = bot
        .until_entity(page_id, "the page's player walking west", |(x, _)| {
            units(x) < units(start.0) - 1.0
        })
        .await;
    assert!(
        (units(moved.1) - units(start.1)).abs() < 0.05,
        "walked west only: {start:?} → {moved:?}"
    );
    browser.screenshot("playground-world").await;
    browser.stop().await;
}

#[tokio::test]
async fn console_lists_a_room_with_its_member_count() {
    let server = spawn_server(&[]);
    let _ann = server.member("ann", "lounge").await;
    let mut ben = server.member("ben", "lounge").await;
    let browser = Browser::start().await;
    browser.open(&format!("http://{}/", server.admin)).await;
    let lounge = "tavernConsole.rooms.find(r => r.room === 'lounge')";
    browser
        .wait_for("the room and its two members", &format!("{lounge}?.members === 2"))
        .await;
    let row = "document.querySelector('#rooms tr[data-room=\"lounge\"] td.members')";
    let cell = browser.wait_for("the room's row", &format!("{row}?.textContent")).await;
    assert!(
        cell.as_str().unwrap_or_default().starts_with('2'),
        "members cell: {cell}"
    );

    ben.leave("lounge").await.unwrap();
    browser
        .wait_for("one member left", &format!("{lounge}?.members === 1"))
        .await;
    // Three polls of the figures: charts with a few points, connections counted
    // (two TCP members and the console's own WebSocket).
    browser
        .wait_for(
            "the figures",
            "tavernConsole.polls >= 3 && tavernConsole.stats.connections >= 3",
        )
        .await;
    let figure = browser
        .eval("return document.getElementById('connections').textContent")
        .await;
    assert_eq!(figure, "3");
    browser.screenshot("console").await;
    browser.stop().await;
    drop(ben);
}

// ------------------------------------------------------------------ the browser

/// Where Debian's `chromium` package puts the browser.
const CHROMIUM: &str = "/usr/bin/chromium";
/// What installs the browser and its driver.
const INSTALL: &str = "apt-get install -y chromium chromium-driver";
/// How long the browser may take to start, or a page to show what a test waits for.
const BROWSER_WAIT: Duration = Duration::from_secs(30);
/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(50);

/// Headless Chromium and a chromedriver attached to it, with a WebDriver
/// session on them. Both processes are ended by id when this is dropped,
/// panics included, and the browser's profile folder removed.
struct Browser {
    session: Option<fantoccini::Client>,
    _processes: Processes,
}

/// The processes a [`Browser`] started, and its profile folder.
struct Processes {
    chromium: Option<Child>,
    chromedriver: Option<Child>,
    profile: PathBuf,
}

impl Drop for Processes {
    fn drop(&mut self) {
        if let Some(mut chromedriver) = self.chromedriver.take() {
            let _ = chromedriver.kill();
            let _ = chromedriver.wait();
        }
        if let Some(mut chromium) = self.chromium.take() {
            // Its renderers and other child processes exit when they lose the browser.
            let _ = chromium.kill();
            let _ = chromium.wait();
        }
        // Child processes still exiting may write into the profile a moment longer.
        for _ in 0..40 {
            if std::fs::remove_dir_all(&self.profile).is_ok() || !self.profile.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Browser {
    /// Starts Chromium (headless, a fresh profile, DevTools on a port it picks)
    /// and chromedriver (on a free loopback port) attached to it.
    async fn start() -> Browser {
        assert!(
            Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing: the browser tests need it; install it with `{INSTALL}`"
        );
        let chromedriver = on_path("chromedriver").unwrap_or_else(|| {
            panic!("chromedriver is missing: the browser tests need it; install it with `{INSTALL}`")
        });
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let profile = std::env::temp_dir().join(format!(
            "tavern-chromium-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).unwrap();
        let mut processes = Processes {
            chromium: None,
            chromedriver: None,
            profile: profile.clone(),
        };
        let log = std::fs::File::create(profile.join("chromium.log")).unwrap();
        let chromium = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-crash-reporter",
                "--window-size=1280,900",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMIUM}: {e}"));
        processes.chromium = Some(chromium);
        let devtools = devtools_port(&mut processes).await;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|free| free.local_addr())
            .unwrap()
            .port();
        let chromedriver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start chromedriver: {e}"));
        processes.chromedriver = Some(chromedriver);
        listening(port, &mut processes).await;
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "debuggerAddress": format!("127.0.0.1:{devtools}") }),
        );
        let session = fantoccini::ClientBuilder::native()
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| panic!("no WebDriver session: {e}"));
        Browser {
            session: Some(session),
            _processes: processes,
        }
    }

    fn session(&self) -> &fantoccini::Client {
        self.session.as_ref().expect("a session until stopped")
    }

    async fn open(&self, url: &str) {
        self.session()
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    async fn element(&self, id: &str) -> fantoccini::elements::Element {
        self.session()
            .find(fantoccini::Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("the page has no #{id}: {e}"))
    }

    /// Runs `script` (a function body) in the page; its return value.
    async fn eval(&self, script: &str) -> Value {
        self.session()
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("running {script}: {e}"))
    }

    /// Evaluates `expression` in the page until it is truthy, within
    /// [`BROWSER_WAIT`]; its value (as JSON). Fails saying `what` it waited
    /// for, with the page's state.
    async fn wait_for(&self, what: &str, expression: &str) -> Value {
        let script = format!(
            "try {{ const v = ({expression}); return v ? JSON.stringify(v) : null; }} \
             catch (e) {{ return null; }}"
        );
        let deadline = tokio::time::Instant::now() + BROWSER_WAIT;
        loop {
            if let Value::String(json) = self.eval(&script).await {
                return serde_json::from_str(&json).unwrap();
            }
            if tokio::time::Instant::now() >= deadline {
                let state = self
                    .eval("return JSON.stringify(window.tavernPlayground ?? window.tavernConsole ?? null)")
                    .await;
                panic!("waited {BROWSER_WAIT:?} for {what} ({expression}); the page's state: {state}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Presses and releases `key` in the focused element.
    async fn press_key(&self, key: fantoccini::key::Key) {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        let value: char = key.into();
        let actions = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value })
            .then(KeyAction::Up { value });
        self.session().perform_actions(actions).await.unwrap();
    }

    /// Saves what the window shows as `target/browser-screenshots/{name}.png`.
    async fn screenshot(&self, name: &str) {
        let png = self.session().screenshot().await.unwrap();
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-screenshots");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join(format!("{name}.png")), png).unwrap();
    }

    /// Ends the WebDriver session; the processes end on drop.
    async fn stop(mut self) {
        if let Some(session) = self.session.take() {
            let _ = session.close().await;
        }
    }
}

/// `program` in a folder of `PATH`.
fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|folder| folder.join(program))
        .find(|candidate| candidate.is_file())
}

/// The DevTools port Chromium chose, from `DevToolsActivePort` in its profile.
async fn devtools_port(processes: &mut Processes) -> u16 {
    let file = processes.profile.join("DevToolsActivePort");
    let deadline = tokio::time::Instant::now() + BROWSER_WAIT;
    loop {
        let port = std::fs::read_to_string(&file)
            .ok()
            .and_then(|text| text.lines().next().and_then(|line| line.trim().parse().ok()));
        if let Some(port) = port {
            return port;
        }
        let chromium = processes.chromium.as_mut().expect("started");
        if let Ok(Some(status)) = chromium.try_wait() {
            let log = std::fs::read_to_string(processes.profile.join("chromium.log")).unwrap_or_default();
            panic!("{CHROMIUM} exited ({status}) before it listened:\n{log}");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{CHROMIUM} did not start within {BROWSER_WAIT:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until chromedriver takes connections on `port`.
async fn listening(port: u16, processes: &mut Processes) {
    let deadline = tokio::time::Instant::now() + BROWSER_WAIT;
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        let chromedriver = processes.chromedriver.as_mut().expect("started");
        if let Ok(Some(status)) = chromedriver.try_wait() {
            panic!("chromedriver exited ({status}) before it listened on port {port}");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "chromedriver did not listen within {BROWSER_WAIT:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}
