//! The rows of each scenario's section of a step in the table.

use super::text::{counts, latency, row};
use crate::figures::{
    ChatFigures, ChurnFigures, FloodFigures, IdleFigures, MmoFigures, PluginFigures, ReconnectFigures, SlowFigures,
    SlowlorisFigures,
};

/// The chat rooms: their shape, rates, delivery and latency.
pub fn chat_rows(out: &mut String, chat: &ChatFigures) {
    let shape = format!(
        "{} × {} members, {} publishing {} B texts",
        chat.rooms, chat.members, chat.publishers, chat.size
    );
    room_rows(out, chat, shape, "deliveries");
}

/// The rooms of a plugin kind: the chat rows, in ops and the events they make.
pub fn plugin_rows(out: &mut String, plugin: &PluginFigures) {
    let traffic = &plugin.traffic;
    let shape = format!(
        "{} × {} members of kind {}, {} sending {} B ops",
        traffic.rooms, traffic.members, plugin.kind, traffic.publishers, traffic.size
    );
    room_rows(out, traffic, shape, "events");
}

/// The rows of rooms shaped as `shape`: rates (their deliveries called
/// `deliveries`), delivery, and latency (publish to delivery: in a
/// plugin's rooms, op to event).
fn room_rows(out: &mut String, chat: &ChatFigures, shape: String, deliveries: &str) {
    row(out, "rooms", shape);
    row(
        out,
        "rate",
        format!(
            "offered {:.0}/s, achieved {:.0}/s, {deliveries} {:.0}/s, publisher max lag {:.2} ms",
            chat.offered_per_s, chat.achieved_per_s, chat.deliveries_per_s, chat.max_lag_ms
        ),
    );
    row(
        out,
        "delivery",
        format!(
            "expected {}, received {}, lost {}; gaps {}, reorders {}, duplicates {}{}",
            chat.expected,
            chat.received,
            chat.lost,
            chat.gaps,
            chat.reorders,
            chat.duplicates,
            if chat.unparsed > 0 {
                format!(", unparsed {}", chat.unparsed)
            } else {
                String::new()
            }
        ),
    );
    row(out, "latency", latency(&chat.latency_us));
}

/// The members that stopped reading, and how they ended.
pub fn slow_row(out: &mut String, slow: &SlowFigures) {
    row(
        out,
        "slow",
        format!(
            "{} slow, {} fast members; slow ones: SLOW_CONSUMER {}, closed without reason {}, other {}, still connected {}",
            slow.slow_members,
            slow.fast_members,
            slow.slow_consumer_disconnects,
            slow.closed_silently,
            slow.other_disconnects,
            slow.still_connected
        ),
    );
}

/// The flooding client.
pub fn flood_row(out: &mut String, flood: &FloodFigures) {
    row(
        out,
        "flooder",
        format!(
            "{} B texts, sent {} ({:.0}/s in the window), {} dropped as RATE_LIMITED; first RATE_LIMITED after {}, cut off after {}",
            flood.size,
            flood.sent,
            flood.sent_per_s,
            flood.rate_limited,
            flood
                .throttled_after_ms
                .map_or("never".to_owned(), |ms| format!("{ms:.1} ms")),
            flood
                .cut_off_after_ms
                .map_or("never".to_owned(), |ms| format!("{ms:.1} ms"))
        ),
    );
}

/// The held sessions, and the server's memory per session.
pub fn idle_row(out: &mut String, idle: &IdleFigures) {
    let per_session = idle
        .rss_per_session_bytes
        .map_or("unknown (no server pid)".to_owned(), |bytes| format!("{bytes:.0} B"));
    row(
        out,
        "sessions",
        format!(
            "planned {}, connected {}, held to the end {}; server RSS per session {per_session}",
            idle.sessions_planned, idle.sessions_connected, idle.sessions_held
        ),
    );
}

/// The cycles, their failures and their latency.
pub fn churn_rows(out: &mut String, churn: &ChurnFigures) {
    row(
        out,
        "cycles",
        format!(
            "offered {:.0}/s, started {:.0}/s; scheduled {}, completed {}, failed {}, skipped {}, unfinished {}",
            churn.offered_per_s,
            churn.achieved_per_s,
            churn.scheduled,
            churn.completed,
            churn.failed,
            churn.skipped,
            churn.unfinished
        ),
    );
    row(out, "failures", counts(&churn.failures));
    row(out, "cycle", latency(&churn.cycle_latency_us));
}

/// The cuts, the reconnections and how long they took.
pub fn reconnect_rows(out: &mut String, reconnect: &ReconnectFigures) {
    row(
        out,
        "cuts",
        format!(
            "{:.0}% of the bots every {:.1} s: cut {}, reconnected {} (session resumed {}), failed {}; not sent while down {}",
            reconnect.cut_share * 100.0,
            reconnect.cut_every_s,
            reconnect.cuts,
            reconnect.reconnects,
            reconnect.resumed,
            reconnect.failed,
            reconnect.not_sent
        ),
    );
    row(
        out,
        "rooms",
        format!(
            "recovered {}, not recovered (recovered: false) {}",
            reconnect.recovered, reconnect.not_recovered
        ),
    );
    row(out, "reconnect", latency(&reconnect.latency_us));
}

/// The attacking connections, and how the server closed them.
pub fn slowloris_rows(out: &mut String, slowloris: &SlowlorisFigures) {
    row(
        out,
        "attackers",
        format!(
            "{} trickling a byte every {} ms; {} connections, peak {} open; closed by the server {}, open at the end {} (oldest {:.0} ms)",
            slowloris.attackers,
            slowloris.trickle_ms,
            slowloris.connections,
            slowloris.peak_open,
            slowloris.closed,
            slowloris.open_at_end,
            slowloris.oldest_at_end_ms
        ),
    );
    row(out, "closed as", counts(&slowloris.close_reasons));
    row(out, "held", latency(&slowloris.held_us));
    if !slowloris.connect_errors.is_empty() {
        row(out, "refused", counts(&slowloris.connect_errors));
    }
}

/// The bots in a world: their Moves and updates, and the server's ticks.
pub fn mmo_rows(out: &mut String, mmo: &MmoFigures) {
    let world = match (&mmo.geometry, mmo.region) {
        (Some(geometry), Some([min_x, min_y, max_x, max_y])) => format!(
            "{} × {} units, AOI radius {}, max speed {}/s, {} ticks/s; bots {} over {:.0} × {:.0}",
            geometry.width,
            geometry.height,
            geometry.aoi_radius,
            geometry.max_speed,
            geometry.tick_rate_hz,
            mmo.density,
            max_x - min_x,
            max_y - min_y
        ),
        _ => format!("bots {}", mmo.density),
    };
    row(
        out,
        "world",
        format!("{:?}: {world}; {} of {} in it", mmo.world, mmo.in_world, mmo.bots),
    );
    row(out, "enter", latency(&mmo.enter_latency_us));
    let step = if mmo.step < mmo.step_asked {
        format!("{} (--step {} is more than max speed allows)", mmo.step, mmo.step_asked)
    } else {
        mmo.step.to_string()
    };
    row(
        out,
        "moves",
        format!(
            "{}/s per bot, step {step}; sent {}, {:.0}/s in the window, max lag {:.2} ms; echoed {}, unechoed {}",
            mmo.input_hz, mmo.moves_sent, mmo.moves_per_s, mmo.max_lag_ms, mmo.moves_echoed, mmo.moves_unechoed
        ),
    );
    row(out, "echo", latency(&mmo.echo_latency_us));
    row(out, "tick age", latency(&mmo.tick_age_us));
    row(
        out,
        "updates",
        format!(
            "{} ({:.0}/s), {:.0} B/s per player; per update entered {:.2}, left {:.2}, moved {:.1}; \
             lowest time scale {}",
            mmo.updates,
            mmo.updates_per_s,
            mmo.bytes_per_s_per_player,
            mmo.mean_entered,
            mmo.mean_left,
            mmo.mean_moved,
            mmo.min_time_scale_pct
                .map_or("none seen".to_owned(), |pct| format!("{pct} %"))
        ),
    );
    let tick = match (&mmo.server_tick, &mmo.server_tick_missing) {
        (Some(tick), _) => {
            let ms = |value: Option<f64>| value.map_or("-".to_owned(), |ms| format!("{ms:.3} ms"));
            format!(
                "p50 {}  p99 {}  mean {}  ({} ticks); overruns {}",
                ms(tick.p50_ms),
                ms(tick.p99_ms),
                ms(tick.mean_ms),
                tick.ticks,
                tick.overruns
                    .map_or("not reported".to_owned(), |count| count.to_string())
            )
        }
        (None, reason) => format!("not scraped: {}", reason.as_deref().unwrap_or("unknown")),
    };
    row(out, "tick time", tick);
    if !mmo.errors.is_empty() {
        row(out, "errors", counts(&mmo.errors));
    }
}
