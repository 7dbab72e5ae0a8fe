//! Every scenario's workload as one type, [`AnyWorkload`]: the workload of
//! the binary's runner and of its worker processes, which decode their job
//! without knowing the scenario.

use serde::{Deserialize, Serialize};

use crate::scenarios::churn::ChurnWorkload;
use crate::scenarios::idle::IdleWorkload;
use crate::scenarios::mmo::MmoWorkload;
use crate::scenarios::reconnect::ReconnectWorkload;
use crate::scenarios::rooms::RoomsWorkload;
use crate::scenarios::slowloris::SlowlorisWorkload;
use crate::share::Share;
use crate::tally::Tally;
use crate::workload::Workload;

/// Declares [`AnyWorkload`] with one variant per scenario workload, runs
/// each variant as its workload, and converts each workload into it.
macro_rules! any_workload {
    ($($(#[$doc:meta])* $variant:ident($workload:ty),)*) => {
        /// What every process runs in one step, of any scenario.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        pub enum AnyWorkload {
            $($(#[$doc])* $variant($workload),)*
        }

        impl Workload for AnyWorkload {
            async fn run_share(&self, share: Share) -> anyhow::Result<Tally> {
                match self {
                    $(AnyWorkload::$variant(workload) => workload.run_share(share).await,)*
                }
            }

            fn connections(&self) -> u64 {
                match self {
                    $(AnyWorkload::$variant(workload) => workload.connections(),)*
                }
            }
        }

        $(
            impl From<$workload> for AnyWorkload {
                fn from(workload: $workload) -> AnyWorkload {
                    AnyWorkload::$variant(workload)
                }
            }
        )*
    };
}

any_workload! {
    /// Rooms on an open-loop schedule, of chat (`chat`, `slow`, `flood`) or a plugin (`plugin`).
    Rooms(RoomsWorkload),
    /// Connected, joined sessions doing nothing.
    Idle(IdleWorkload),
    /// Connect-to-disconnect cycles at a fixed rate.
    Churn(ChurnWorkload),
    /// Connections that never finish their Hello, beside normal clients.
    Slowloris(SlowlorisWorkload),
    /// Bots random-walking in one world.
    Mmo(MmoWorkload),
    /// Chat rooms whose bots' connections are cut in rounds, and reconnect.
    Reconnect(ReconnectWorkload),
}
