//! The `mmo` scenario: B bots enter one world, spread over all of it or
//! packed into a small square in its centre, and random-walk: each sends a
//! Move at a fixed rate on one open-loop schedule (bots evenly phased) and
//! reads every WorldUpdate. Reports the input-to-echo latency (a Move to the
//! first update acknowledging it), the time from the server's tick to the
//! update's arrival, the update traffic, and the server's tick durations
//! scraped from its admin endpoint.

mod bot;
mod echo;
mod enter;
mod mover;
mod walk;
mod watcher;
mod workload;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;

use self::bot::MmoBot;
use self::enter::{enter, probe};
pub use self::workload::MmoWorkload;
use super::{Findings, Reported, Scenario, one_step};
use crate::admin::{self, TickWindow};
use crate::bots;
use crate::figures::{MmoFigures, ServerTickFigures};
use crate::runner::Runner;
use crate::settings::FINISH_GRACE;
use crate::share::{Share, Shared};
use crate::step::{StepOutcome, StepReport};
use crate::tally::Tally;
use crate::timeline::{Timeline, sleep_until_wall};
use crate::units::{f64_from, micros, ns_to_ms, per_second, u64_from};
use crate::workload::Workload;

impl Workload for MmoWorkload {
    fn connections(&self) -> u64 {
        self.bots
    }

    /// Connects this process's bots into the world, moves them through the
    /// warm-up and the window, and waits (at most the drain timeout) until
    /// every window Move is acknowledged. Share 0 also scrapes the server's
    /// tick durations at the window's start and end.
    ///
    /// # Errors
    /// The world was not probed, the setup timed out or the coordinator went away.
    async fn run_share(&self, mut share: Share) -> anyhow::Result<Tally> {
        let region = self.region().context("the world was not probed")?;
        let workload = Arc::new(self.clone());
        let spec = share.spec.clone();
        share.shared.tally().bots.planned = u64_from(spec.my_bots(self.bots).count());
        let results = bots::setup_all(&spec, spec.my_bots(self.bots), |bot| {
            let (spec, workload, shared, signals) =
                (spec.clone(), workload.clone(), share.shared.clone(), share.signals());
            async move {
                let walker = enter(&spec, &workload, region, bot).await?;
                shared.count_connected(walker.connect_latency);
                {
                    let mut tally = shared.tally();
                    tally.mmo.in_world += 1;
                    tally.mmo.enter_latency.record_us(micros(walker.enter_latency));
                }
                shared.add_receiver();
                let bot = MmoBot {
                    number: bot,
                    region,
                    workload,
                    shared,
                };
                Ok(tokio::spawn(bot.run(walker, signals)))
            }
        })
        .await?;
        let mut tasks = share.keep_connected(results);
        let connected = share.shared.connected_after_setup()?;
        let timeline = share.start(connected).await?;
        if spec.index == 0 {
            match self.admin {
                Some(admin) => tasks.push(tokio::spawn(scrape_window(admin, timeline, share.shared.clone()))),
                None => {
                    share.shared.tally().mmo.server_ticks_error =
                        Some("no admin address (use --spawn-server or --admin-addr)".to_owned());
                }
            }
        }
        share.drain(&timeline).await;
        Ok(share.finish(tasks, FINISH_GRACE).await)
    }
}

/// Scrapes the server's tick figures at the window's start and end, and
/// counts their difference (or why there is none).
async fn scrape_window(admin: SocketAddr, timeline: Timeline, shared: Arc<Shared>) {
    sleep_until_wall(timeline.window_start_ns()).await;
    let start = admin::scrape_ticks(admin).await;
    sleep_until_wall(timeline.window_end_ns()).await;
    let end = admin::scrape_ticks(admin).await;
    let mut tally = shared.tally();
    match (start, end) {
        (Ok(start), Ok(end)) => tally.mmo.server_ticks = Some(TickWindow::between(Some(&start), &end)),
        (Err(e), _) | (_, Err(e)) => tally.mmo.server_ticks_error = Some(format!("{e:#}")),
    }
}

/// The `mmo` command.
pub struct MmoScenario {
    /// The bots and their walk (the world's geometry is probed).
    pub workload: MmoWorkload,
}

impl<W: Workload + From<MmoWorkload>> Scenario<W> for MmoScenario {
    fn name(&self) -> &'static str {
        "mmo"
    }

    async fn run(&self, runner: &mut Runner<W>) -> anyhow::Result<Findings> {
        self.workload.validate()?;
        let geometry = probe(&runner.env, &self.workload.world).await?;
        let workload = MmoWorkload {
            geometry: Some(geometry),
            admin: self.workload.admin.or(runner.env.admin),
            ..self.workload.clone()
        };
        let label = format!(
            "{} bots in {} ({}), {} Moves/s each",
            workload.bots,
            workload.world,
            workload.density.as_str(),
            workload.input_hz
        );
        one_step(runner, &workload, label).await
    }
}

/// The bots' Moves and updates, and the server's tick durations.
impl Reported for MmoWorkload {
    fn add_sections(&self, outcome: &StepOutcome, report: &mut StepReport) {
        let mmo = &outcome.tally.mmo;
        let window = outcome.timeline.window();
        let per_update = |count: u64| {
            if mmo.updates_window > 0 {
                f64_from(count) / f64_from(mmo.updates_window)
            } else {
                0.0
            }
        };
        let bytes_per_s = per_second(mmo.update_bytes_window, window);
        let server_tick = mmo.server_ticks.as_ref().map(|ticks| ServerTickFigures {
            ticks: ticks.ticks,
            p50_ms: ticks.quantile(0.50).map(|s| s * 1e3),
            p99_ms: ticks.quantile(0.99).map(|s| s * 1e3),
            mean_ms: ticks.mean().map(|s| s * 1e3),
            overruns: ticks.overruns,
        });
        report.mmo = Some(MmoFigures {
            world: self.world.clone(),
            density: self.density.as_str().to_owned(),
            geometry: self.geometry,
            region: self
                .region()
                .map(|region| [region.min.x, region.min.y, region.max.x, region.max.y]),
            bots: self.bots,
            in_world: mmo.in_world,
            input_hz: self.input_hz,
            step_asked: self.step,
            step: self.step_used(),
            enter_latency_us: mmo.enter_latency.summary(),
            moves_sent: mmo.moves_sent,
            moves_per_s: per_second(mmo.moves_in_window, window),
            max_lag_ms: ns_to_ms(mmo.max_lag_ns),
            moves_echoed: mmo.moves_echoed,
            moves_unechoed: mmo.moves_unechoed,
            echo_latency_us: mmo.echo_latency.summary(),
            tick_age_us: mmo.tick_age.summary(),
            updates: mmo.updates_window,
            updates_per_s: per_second(mmo.updates_window, window),
            bytes_per_s_per_player: if mmo.in_world > 0 {
                bytes_per_s / f64_from(mmo.in_world)
            } else {
                0.0
            },
            mean_entered: per_update(mmo.entered),
            mean_left: per_update(mmo.left),
            mean_moved: per_update(mmo.moved),
            min_time_scale_pct: mmo.min_time_scale_pct,
            disconnects: outcome.tally.bots.disconnects.values().sum(),
            errors: mmo.errors.clone(),
            server_tick_missing: match &server_tick {
                Some(_) => None,
                None => Some(
                    mmo.server_ticks_error
                        .clone()
                        .unwrap_or_else(|| "the scrape did not finish".to_owned()),
                ),
            },
            server_tick,
        });
    }
}
