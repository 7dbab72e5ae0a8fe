//! The chat rooms that `chat`, `slow` and `flood` load: one process's share
//! of a step (members that publish, receive or stop reading, and the
//! flooder) and the chat section of the step's report. Every member measures
//! latency and checks the room's order.

mod flooder;
mod member;
mod publisher;
mod workload;

use std::sync::Arc;

pub use self::flooder::FloodSpec;
pub use self::workload::ChatWorkload;
use super::Reported;
use crate::bots;
use crate::figures::ChatFigures;
use crate::settings::FINISH_GRACE;
use crate::share::Share;
use crate::step::{StepOutcome, StepReport};
use crate::tally::Tally;
use crate::units::{f64_from, ns_to_ms, per_second, u64_from};
use crate::workload::Workload;

impl Workload for ChatWorkload {
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
                let room_name = ChatWorkload::room_name(spec.step, room);
                let member = bots::join_member(&spec, &spec.name('b', bot), spec.source(bot), &room_name).await?;
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

/// The chat section of a step's report; the server's CPU is divided by the
/// window's deliveries.
impl Reported for ChatWorkload {
    fn add_sections(&self, outcome: &StepOutcome, report: &mut StepReport) {
        let chat = &outcome.tally.chat;
        let window = outcome.timeline.window();
        let expected = chat.expected();
        report.chat = Some(ChatFigures {
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
        });
    }

    fn deliveries(&self, outcome: &StepOutcome) -> Option<u64> {
        Some(outcome.tally.chat.received_window)
    }
}
