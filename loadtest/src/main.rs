//! `loadtest`: Tavern's bot swarm. Real protocol v1 clients (the library's own
//! client) load a server on this machine in one of several scenarios and
//! report what they measured: rates, loss, order, latency percentiles, the
//! server's CPU and memory, and the generator's own CPU.
//!
//! `cargo run --release -p loadtest -- SCENARIO [flags]`; `--help` lists them.
//!
//! The modules form layers, bottom first; a module uses only modules of its
//! own layer or of a lower one, and a scenario never uses another scenario:
//!
//! ```text
//! 1 leaves          units schedule latency timeline payload detect settings view: conversions, timing, frames
//! 2 machine         procstat usage admin spawn: /proc, CPU and memory, the admin endpoint, the server process
//! 3 records         tally figures step: what a step counted, the report's sections, a step's outcome and report
//! 4 bots            share bots: one process's share of a step, and connecting its bots
//! 5 engine          workload progress workers runner findmax: steps of any Workload, here or in workers
//! 6 scenario kit    scenarios: the Scenario trait, what a workload reports, a run of one step
//! 7 scenario parts  scenarios/rooms{,/*}: the rooms of chat or a plugin; scenarios/mmo/{walk,echo,workload,enter,mover,watcher,bot}
//! 8 scenarios       scenarios/{chat,plugin,slow,flood,idle,churn,slowloris,mmo,reconnect{,/bot}}: each scenario, with its figures
//! 9 app             workloads cli report table{,/text,/sections} failover main: commands, the report, every workload's type, the failover measurement
//! ```
//!
//! - [`units`], [`schedule`], [`latency`], [`timeline`], [`payload`],
//!   [`detect`]: conversions, open-loop timing, histograms, the phases of a
//!   step, what a text carries, the order check; [`settings`](mod@settings):
//!   what several layers share (the finish grace, sample batching,
//!   `--density`, `--auth-key`, `--addr`'s targets); [`view`]: the server's frames read in
//!   place, a chat message or a room event without an allocation.
//! - [`procstat`], [`usage`], [`admin`], [`spawn`]: /proc, the server's and the
//!   generator's use of the machine, the server's `/metrics`, the server process.
//! - [`tally`], [`figures`], [`step`]: counting, the figures of each section,
//!   a step's outcome and the sections every step's report has.
//! - [`share`], [`bots`]: one process's share of the bots, and connecting them.
//! - [`workload`]: the trait the engine runs; [`runner`] runs steps in this
//!   process or in workers ([`workers`]) with a live line ([`progress`]);
//!   [`findmax`] searches the highest sustainable rate of any rate-to-report function.
//! - [`scenarios`]: the kit every scenario uses; `scenarios::rooms`, the
//!   rooms that `chat`, `plugin`, `slow` and `flood` load (chat texts, or a
//!   plugin's ops and events); `scenarios::mmo`'s parts (the
//!   workload, entering the world, a bot's write and read sides, its walk and
//!   its echo bookkeeping); then each scenario: its workload, figures and command.
//! - [`workloads`]: every scenario's workload as the one type of the runner
//!   and its workers; [`cli`]: the command line; [`report`], [`table`]: the
//!   run's report, as JSON and as text.

mod admin;
mod bots;
mod cli;
mod detect;
mod failover;
mod figures;
mod findmax;
mod latency;
mod payload;
mod procstat;
mod progress;
mod report;
mod runner;
mod scenarios;
mod schedule;
mod settings;
mod share;
mod spawn;
mod step;
mod table;
mod tally;
mod timeline;
mod units;
mod usage;
mod view;
mod workers;
mod workload;
mod workloads;

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;

use crate::cli::{Cli, Command, FindMaxArgs, ReconnectArgs, RoomArgs};
use crate::findmax::FindMaxOptions;
use crate::report::{Report, TargetInfo};
use crate::runner::{Env, Runner};
use crate::scenarios::chat::ChatScenario;
use crate::scenarios::churn::{ChurnScenario, ChurnWorkload};
use crate::scenarios::flood::FloodScenario;
use crate::scenarios::idle::{IdleScenario, IdleWorkload};
use crate::scenarios::mmo::{MmoScenario, MmoWorkload};
use crate::scenarios::plugin::PluginScenario;
use crate::scenarios::reconnect::{ReconnectScenario, ReconnectWorkload};
use crate::scenarios::rooms::{FloodSpec, RoomsWorkload, Traffic};
use crate::scenarios::slow::SlowScenario;
use crate::scenarios::slowloris::{SlowlorisScenario, SlowlorisWorkload};
use crate::scenarios::{Findings, Scenario};
use crate::settings::{Targets, Transport};
use crate::spawn::{SpawnOptions, SpawnedServer};
use crate::workloads::AnyWorkload;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let threads = match &cli.command {
        Command::Worker(args) => args.threads,
        command => command.common().map_or(1, |common| usize::from(common.threads)),
    };
    if let Some(common) = cli.command.common()
        && common.pin
    {
        // Before the runtime starts, so that its threads (and workers) inherit CPU 1.
        if let Err(e) = spawn::pin_this_thread(1) {
            eprintln!("loadtest: {e:#}");
            return ExitCode::from(2);
        }
    }
    let runtime = match build_runtime(threads) {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("loadtest: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Worker(_) => runtime.block_on(workers::run_worker::<AnyWorkload>()),
        Command::Failover(args) => runtime.block_on(failover::run(&args)),
        command => runtime.block_on(run(command)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadtest: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A single-threaded runtime for one thread, a multi-threaded one otherwise.
fn build_runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}

/// Runs a scenario command: the server, the steps, the report.
/// The server `--spawn-server` asks for, started.
async fn spawn_if_asked(common: &cli::CommonArgs) -> anyhow::Result<Option<SpawnedServer>> {
    if !common.spawn_server {
        return Ok(None);
    }
    let options = SpawnOptions {
        bin: common.server_bin.clone(),
        args: common.server_arg.clone(),
        log: common.server_log.clone(),
        pin: common.pin,
        auth_key: common.auth_key.clone(),
    };
    Ok(Some(SpawnedServer::start(&options).await?))
}

/// Where the bots connect to a spawned `server` over `transport`.
fn bot_target(server: &SpawnedServer, transport: Transport) -> anyhow::Result<std::net::SocketAddr> {
    match transport {
        Transport::Tcp => Ok(server.addr),
        Transport::Ws => server
            .ws_addr
            .context("--transport ws: the spawned server has no WebSocket listener"),
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    let common = command.common().context("not a scenario")?;
    let settings = settings(&command)?;
    let started_unix_ms = timeline::wall_ns() / 1_000_000;
    // Checked even with --spawn-server: a non-loopback --addr is refused either way.
    let given_targets = common.targets()?;
    let server = spawn_if_asked(common).await?;
    let admin = match &server {
        Some(server) => server.admin_addr,
        None => command.admin_addr(),
    };
    let bot_targets = match &server {
        Some(server) => Targets::one(bot_target(server, common.transport)?),
        None => given_targets,
    };
    let target = TargetInfo {
        addr: bot_targets.to_string(),
        spawned: server.is_some(),
        server_pid: server.as_ref().map(|server| server.pid).or(common.server_pid),
        admin_addr: admin.map(|addr| addr.to_string()),
        server_bin: server.as_ref().map(|server| server.bin.display().to_string()),
        server_log: server.as_ref().map(|server| server.log.display().to_string()),
        pinned: common.pin,
    };
    let mut runner = Runner::<AnyWorkload>::new(Env {
        targets: bot_targets,
        transport: common.transport,
        source_ips: common.source_ips,
        procs: common.procs,
        threads: usize::from(common.threads),
        connect_concurrency: common.connect_concurrency,
        setup_timeout: common.setup_timeout(),
        warmup: common.warmup(),
        duration: common.duration(),
        drain: common.drain_timeout(),
        run_id: std::process::id(),
        server_pid: target.server_pid,
        admin,
        auth_key: common.auth_key.clone(),
        progress: progress::wanted(common.no_progress),
    });
    let outcome = tokio::select! {
        outcome = run_scenario(&command, &mut runner) => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    if let Some(server) = server {
        match server.stop().await {
            Ok(status) if !status.success() => eprintln!("loadtest: the server exited with {status}"),
            Ok(_) => {}
            Err(e) => eprintln!("loadtest: stopping the server: {e:#}"),
        }
    }
    let (scenario, findings) = outcome?;
    let report = Report {
        tool: format!("loadtest {}", env!("CARGO_PKG_VERSION")),
        scenario: scenario.to_owned(),
        started_unix_ms,
        target,
        settings,
        steps: findings.steps,
        find_max: findings.find_max,
        flood: findings.flood,
    };
    print!("{}", table::render(&report));
    if let Some(path) = &common.json {
        report::write_json(&report, path)?;
    }
    Ok(())
}

/// Builds the command's scenario and runs it.
async fn run_scenario(command: &Command, runner: &mut Runner<AnyWorkload>) -> anyhow::Result<(&'static str, Findings)> {
    match command {
        Command::Chat(args) => {
            let scenario = ChatScenario {
                workload: rooms_workload(&args.rooms, Traffic::Chat, 0.0),
                find_max: find_max(&args.find_max)?,
            };
            execute(scenario, runner).await
        }
        Command::Plugin(args) => {
            let scenario = PluginScenario {
                workload: rooms_workload(&args.chat.rooms, Traffic::Plugin(args.kind.clone()), 0.0),
                find_max: find_max(&args.chat.find_max)?,
            };
            execute(scenario, runner).await
        }
        Command::Slow(args) => {
            let workload = rooms_workload(&args.rooms, Traffic::Chat, args.slow_fraction);
            execute(SlowScenario { workload }, runner).await
        }
        Command::Flood(args) => {
            let (workload, flood_first) = (rooms_workload(&args.rooms, Traffic::Chat, 0.0), args.flood_first);
            let flood = FloodSpec {
                size: args.flood_size,
                in_flight: args.flood_in_flight,
            };
            let scenario = FloodScenario {
                workload,
                flood,
                flood_first,
            };
            execute(scenario, runner).await
        }
        Command::Idle(args) => {
            let workload = IdleWorkload {
                sessions: args.sessions,
                room_size: args.room_size,
                kind: args.kind.clone(),
            };
            execute(IdleScenario { workload }, runner).await
        }
        Command::Churn(args) => {
            let workload = ChurnWorkload {
                rate: args.rate,
                rooms: args.rooms,
                size: args.size,
                max_in_flight: args.max_in_flight,
            };
            execute(ChurnScenario { workload }, runner).await
        }
        Command::Slowloris(args) => {
            let workload = SlowlorisWorkload {
                attackers: args.attackers,
                clients: args.clients,
                trickle_ms: args.trickle_ms,
            };
            execute(SlowlorisScenario { workload }, runner).await
        }
        Command::Mmo(args) => {
            let workload = MmoWorkload {
                bots: args.bots,
                world: args.world.clone(),
                input_hz: args.input_hz,
                density: args.density,
                cluster_size: args.cluster_size,
                step: args.step,
                admin: None,
                geometry: None,
            };
            execute(MmoScenario { workload }, runner).await
        }
        Command::Reconnect(args) => {
            let workload = reconnect_workload(args);
            execute(ReconnectScenario { workload }, runner).await
        }
        Command::Worker(_) | Command::Failover(_) => anyhow::bail!("not a scenario of the runner"),
    }
}

async fn execute(
    scenario: impl Scenario<AnyWorkload>,
    runner: &mut Runner<AnyWorkload>,
) -> anyhow::Result<(&'static str, Findings)> {
    let findings = scenario.run(runner).await?;
    Ok((scenario.name(), findings))
}

fn rooms_workload(rooms: &RoomArgs, traffic: Traffic, slow_fraction: f64) -> RoomsWorkload {
    RoomsWorkload {
        rooms: rooms.rooms,
        members: rooms.members,
        publishers: rooms.publishers,
        size: rooms.size,
        rate: rooms.rate,
        slow_fraction,
        flood: None,
        traffic,
    }
}

/// The rooms of `reconnect`, and its cuts.
fn reconnect_workload(args: &ReconnectArgs) -> ReconnectWorkload {
    ReconnectWorkload {
        rooms: rooms_workload(&args.rooms, Traffic::Chat, 0.0),
        cut_share: args.cut_share,
        cut_every_ms: units::round_to_u64(args.cut_every_s * 1e3),
    }
}

/// The search's options, with `--find-max`.
fn find_max(args: &FindMaxArgs) -> anyhow::Result<Option<FindMaxOptions>> {
    args.find_max.then(|| find_max_options(args)).transpose()
}

fn find_max_options(args: &FindMaxArgs) -> anyhow::Result<FindMaxOptions> {
    anyhow::ensure!(
        args.p99_bound_ms.is_finite() && args.p99_bound_ms > 0.0,
        "--p99-bound-ms must be above 0"
    );
    anyhow::ensure!(
        args.resolution > 0.0 && args.resolution < 1.0,
        "--resolution must be between 0 and 1"
    );
    anyhow::ensure!(
        args.min_achieved > 0.0 && args.min_achieved <= 1.0,
        "--min-achieved must be above 0 and at most 1"
    );
    anyhow::ensure!(args.max_steps >= 1, "--max-steps must be at least 1");
    Ok(FindMaxOptions {
        p99_bound_us: units::round_to_u64(args.p99_bound_ms * 1e3),
        max_steps: args.max_steps,
        resolution: args.resolution,
        retries: args.retries,
        min_achieved: args.min_achieved,
    })
}

/// The command's flags as JSON, for the report.
fn settings(command: &Command) -> anyhow::Result<serde_json::Value> {
    let value = match command {
        Command::Chat(args) => serde_json::to_value(args)?,
        Command::Plugin(args) => serde_json::to_value(args)?,
        Command::Idle(args) => serde_json::to_value(args)?,
        Command::Churn(args) => serde_json::to_value(args)?,
        Command::Slow(args) => serde_json::to_value(args)?,
        Command::Flood(args) => serde_json::to_value(args)?,
        Command::Slowloris(args) => serde_json::to_value(args)?,
        Command::Mmo(args) => serde_json::to_value(args)?,
        Command::Reconnect(args) => serde_json::to_value(args)?,
        Command::Failover(args) => serde_json::to_value(args)?,
        Command::Worker(_) => serde_json::Value::Null,
    };
    Ok(value)
}
