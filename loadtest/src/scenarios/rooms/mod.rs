//! The rooms that `chat`, `slow`, `flood` and `plugin` load: one process's
//! share of a step (members that publish, receive or stop reading, and the
//! flooder), the step's section of the report (chat, or a plugin's), and
//! the steps of a run at one rate or searching the highest. The rooms carry
//! chat texts or a plugin's ops and events ([`Traffic`]); either way every
//! member measures latency and checks the room's order.

mod flooder;
mod member;
mod publisher;
mod workload;

use std::sync::Arc;

pub use self::flooder::FloodSpec;
pub use self::workload::{Role, RoomsWorkload, Traffic};
use super::{Findings, Reported, one_step};
use crate::bots;
use crate::figures::{ChatFigures, PluginFigures};
use crate::findmax::{self, FindMaxOptions};
use crate::runner::Runner;
use crate::settings::FINISH_GRACE;
use crate::share::Share;
use crate::step::{StepOutcome, StepReport};
use crate::tally::Tally;
use crate::units::{f64_from, ns_to_ms, per_second, u64_from};
use crate::workload::Workload;

impl Workload for RoomsWorkload {
    fn connections(&self) -> u64 {
        self.total_members() + u64::from(self.flood.is_some())
    }

    /// Connects this process's members, starts them, and runs the step.
    ///
    /// # Errors
    /// The setup timed out or the coordinator went away.
    async fn run_share(&self, mut share: Share) -> anyhow::Result<Tally> {
        let workload = Arc::new(self.clone());
        let spec = share.spec.clone();
        let rooms = usize::try_from(self.rooms)?;
        {
            let mut tally = share.shared.tally();
            tally.bots.planned = u64_from(spec.my_bots(self.total_members()).count());
            tally.chat.sent_window_per_room = vec![0; rooms];
            tally.chat.receivers_per_room = vec![0; rooms];
        }
        let results = bots::setup_all(&spec, spec.my_bots(self.total_members()), |bot| {
            let (spec, workload, shared, signals) =
                (spec.clone(), workload.clone(), share.shared.clone(), share.signals());
            async move {
                let room = workload.room_of(bot);
                let room_name = workload.room_name(spec.step, room);
                let (name, kind) = (spec.name('b', bot), workload.traffic.kind());
                let route = spec.route(bot, workload.member_of(bot));
                let member = bots::join_member_of_kind(&spec, &name, route, &room_name, kind).await?;
                let role = workload.role(bot);
                member::register(&shared, &member, role, room);
                let bot = member::MemberBot {
                    role,
                    room,
                    room_name,
                    workload,
                    shared,
                };
                Ok(tokio::spawn(bot.run(member, signals)))
            }
        })
        .await?;
        let mut tasks = share.keep_connected(results);
        if let Some(flood) = self.flood.filter(|_| spec.index == 0)
            && let Some(task) = flooder::start_flooder(&spec, flood, &share.shared, share.signals()).await
        {
            tasks.push(task);
        }
        let connected = share.shared.connected_after_setup()?;
        let timeline = share.start(connected).await?;
        share.drain(&timeline).await;
        Ok(share.finish(tasks, FINISH_GRACE).await)
    }
}

/// The chat section of a step's report, or the plugin section; the
/// server's CPU is divided by the window's deliveries.
impl Reported for RoomsWorkload {
    fn add_sections(&self, outcome: &StepOutcome, report: &mut StepReport) {
        let chat = &outcome.tally.chat;
        let window = outcome.timeline.window();
        let expected = chat.expected();
        let traffic = ChatFigures {
            rooms: self.rooms,
            members: self.members,
            publishers: self.publishers,
            size: self.size,
            offered_per_s: f64_from(self.rate),
            achieved_per_s: per_second(chat.written_in_window, window),
            deliveries_per_s: per_second(chat.received_window, window),
            sent: chat.sent,
            expected,
            received: chat.received_window,
            lost: expected.saturating_sub(chat.received_window),
            gaps: chat.seq.gaps,
            reorders: chat.seq.reorders,
            duplicates: chat.seq.duplicates,
            unparsed: chat.unparsed,
            max_lag_ms: ns_to_ms(chat.max_lag_ns),
            latency_us: chat.latency.summary(),
        };
        match &self.traffic {
            Traffic::Chat => report.chat = Some(traffic),
            Traffic::Plugin(kind) => {
                report.plugin = Some(PluginFigures {
                    kind: kind.clone(),
                    traffic,
                });
            }
        }
    }

    fn deliveries(&self, outcome: &StepOutcome) -> Option<u64> {
        Some(outcome.tally.chat.received_window)
    }
}

/// Runs `workload` through `runner`: one step at its rate, or with
/// `find_max` a search for the highest rate it sustains.
///
/// # Errors
/// Invalid settings, or a step that could not run.
pub async fn run_rate<W: Workload + From<RoomsWorkload>>(
    workload: &RoomsWorkload,
    find_max: Option<&FindMaxOptions>,
    runner: &mut Runner<W>,
) -> anyhow::Result<Findings> {
    let Some(options) = find_max else {
        workload.validate(runner.env.run_length())?;
        let label = format!("rate {}/s", workload.rate);
        return one_step(runner, workload, label).await;
    };
    let (steps, summary) = findmax::search(options, workload.rate, async |rate, attempt| {
        let workload = RoomsWorkload {
            rate,
            ..workload.clone()
        };
        workload.validate(runner.env.run_length())?;
        let outcome = runner.run_step(&workload).await?;
        Ok(workload.step_report(format!("rate {rate}/s"), attempt, &outcome))
    })
    .await?;
    Ok(Findings {
        steps,
        find_max: Some(summary),
        flood: None,
    })
}
