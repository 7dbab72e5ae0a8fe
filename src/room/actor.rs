//! The Room actor: its life (creation with its plugin, tick, timers,
//! closing) and the commands it reads. Joining and leaving are in
//! [`membership`](super::membership).

use std::collections::HashMap;
use std::mem;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, ActorContext, AsyncContext, Context, SpawnHandle, StreamHandler};
use bytes::Bytes;
use tracing::debug;

use super::core::{RoomCore, Settings};
use super::hooks::{Guarded, Hook};
use super::plugin::{Factory, Input, RoomSettings};
use super::{ChatSent, Kind, Listed, Member, PluginSent, Relay, RoomCommand, RoomContext, RoomHandle, TimerId};
use crate::ids::RoomId;
use crate::inbox::{Mailbox, watched_inbox};
use crate::lifecycle::LifecycleEvent;
use crate::protocol::pb::server_message::Body;
use crate::protocol::{self, ErrorCode, RoomName, encode_frame, pb};

/// The room actor. See the [module documentation](super).
pub struct Room {
    pub(super) core: RoomCore,
    pub(super) plugin: Guarded,
    /// Set when the room emptied or was closed: joins are refused.
    pub(super) closing: bool,
    /// Why the plugin could not make the room: every joiner is told.
    pub(super) unmade: Option<String>,
    /// Departures not announced yet: presence is paused while the server is overloaded.
    pub(super) unannounced: Vec<Member>,
    /// Locked because it filled up (`lock_when_full`), not by the plugin.
    pub(super) auto_locked: bool,
    /// Members' messages for the next tick.
    inputs: Vec<Input>,
    timers: HashMap<TimerId, SpawnHandle>,
    ticker: Option<SpawnHandle>,
}

impl Actor for Room {
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.core.context.listing.remove(&self.core.name, self.core.id);
        self.core.context.stats.rooms_open.dec();
        self.core.context.hooks.emit(LifecycleEvent::RoomDisposed {
            room: self.core.name.clone(),
        });
    }
}

impl Room {
    /// Starts room `name` (the `id`-th of that name) of kind `kind` on
    /// `arbiter`; its plugin is made there, from `params`. With a `relay`,
    /// members may join from other nodes of a cluster.
    pub fn start(
        name: RoomName,
        id: RoomId,
        (kind, factory): (Kind, Factory),
        params: Bytes,
        (context, relay): (Arc<RoomContext>, Option<Relay>),
        arbiter: &actix::ArbiterHandle,
    ) -> RoomHandle {
        let (inbox, mailbox): (_, Mailbox<RoomCommand>) =
            watched_inbox(context.inbox, context.stats.inbox_fill.clone());
        let handle = RoomHandle {
            inbox,
            id,
            kind: kind.clone(),
        };
        Room::start_in_arbiter(arbiter, move |ctx| {
            ctx.add_stream(mailbox);
            let mut core = RoomCore::new(name, id, kind, context);
            core.relay = relay;
            let plugin = Guarded::new(None, &core);
            let mut room = Room {
                core,
                plugin,
                closing: false,
                unmade: None,
                unannounced: Vec::new(),
                auto_locked: false,
                inputs: Vec::new(),
                timers: HashMap::new(),
                ticker: None,
            };
            match room.plugin.create(&factory, &params, &room.core) {
                Ok(settings) => room.apply(settings, ctx),
                Err(reason) => room.unmade = Some(reason),
            }
            room
        });
        handle
    }

    /// Takes the plugin's settings, capped by the server's limits.
    fn apply(&mut self, settings: RoomSettings, ctx: &mut Context<Self>) {
        let limits = &self.core.context.plugins;
        let server_max = self.core.context.max_members;
        let max_members = match settings.max_members {
            0 => server_max,
            max => max.min(server_max),
        };
        let tick_hz = settings.tick_hz.min(limits.max_tick_hz);
        self.core.settings = Settings {
            max_members,
            tick_hz,
            lock_when_full: settings.lock_when_full,
            label: settings.label,
            metadata: bytes::Bytes::new(),
            private: settings.private,
            locked: false,
        };
        if tick_hz > 0 {
            let period = Duration::from_secs(1) / tick_hz;
            self.ticker = Some(ctx.run_interval(period, move |room, ctx| room.on_tick(period, ctx)));
        }
        self.relist();
    }

    /// Lists the room as it is now (public rooms only).
    pub(super) fn relist(&mut self) {
        self.core.effects.relist = false;
        let core = &self.core;
        if core.settings.private || self.closing {
            return;
        }
        let listed = Listed {
            id: core.id,
            kind: core.kind.clone(),
            members: core.member_count(),
            max_members: core.settings.max_members,
            label: core.settings.label.clone(),
            metadata: core.settings.metadata.clone(),
            locked: core.settings.locked,
        };
        core.context.listing.set(&core.name, listed);
    }

    fn on_tick(&mut self, period: Duration, ctx: &mut Context<Self>) {
        if self.closing {
            return;
        }
        self.core.tick += 1;
        let inputs = mem::take(&mut self.inputs);
        let started = std::time::Instant::now();
        self.plugin
            .call(Hook::Tick, &mut self.core, |plugin, room| plugin.tick(room, inputs));
        let stats = &self.core.context.stats.plugins;
        stats.tick_took(&self.core.kind, started.elapsed(), period);
        self.settle(ctx);
    }

    fn on_timer(&mut self, id: TimerId, tag: u64, ctx: &mut Context<Self>) {
        if self.timers.remove(&id).is_none() {
            return;
        }
        self.core.effects.live_timers -= 1;
        self.plugin
            .call(Hook::Timer, &mut self.core, |plugin, room| plugin.timer(room, tag));
        self.settle(ctx);
    }

    /// Starts and stops the timers the last hook asked for.
    pub(super) fn apply_timers(&mut self, ctx: &mut Context<Self>) {
        for (id, after, tag) in mem::take(&mut self.core.effects.timers) {
            let handle = ctx.run_later(after, move |room, ctx| room.on_timer(id, tag, ctx));
            self.timers.insert(id, handle);
        }
        for id in mem::take(&mut self.core.effects.cancelled) {
            if let Some(handle) = self.timers.remove(&id) {
                ctx.cancel_future(handle);
                self.core.effects.live_timers -= 1;
            }
        }
    }

    /// Stops the tick and every timer.
    pub(super) fn stop_clock(&mut self, ctx: &mut Context<Self>) {
        if let Some(ticker) = self.ticker.take() {
            ctx.cancel_future(ticker);
        }
        for (_, handle) in self.timers.drain() {
            ctx.cancel_future(handle);
        }
        self.core.effects.live_timers = 0;
        self.inputs.clear();
    }

    fn chat(&mut self, chat: ChatSent, ctx: &mut Context<Self>) {
        let Some(i) = self.core.position(chat.session) else {
            return;
        };
        let from = self.core.members[i].member.clone();
        let text = chat.text;
        let passed = self.plugin.call(Hook::Chat, &mut self.core, |plugin, room| {
            plugin.chat(room, &from, text)
        });
        if let Some(Some(text)) = passed
            && let Some(i) = self.core.position(chat.session)
        {
            self.chat_out(i, &from, chat.request_id, text.into_string());
        }
        self.settle(ctx);
    }

    /// Sends `text` from the member at `i` to everyone, with the next seq.
    fn chat_out(&mut self, i: usize, from: &Member, request_id: u64, text: String) {
        let seq = self.core.next_seq();
        // Counted before anyone can see it, so that the count never lags what members saw.
        self.core.context.stats.chat_messages.inc();
        let mut message = protocol::server_message(
            0,
            Body::Chat(pb::ChatMessage {
                room: self.core.name.to_string(),
                seq,
                from_session: from.id.get(),
                from_name: from.name.to_string(),
                text,
                server_time_us: protocol::now_us(),
            }),
        );
        let mut delivered = self.core.publish(seq, &encode_frame(&message), Some(i));
        message.request_id = request_id;
        delivered += usize::from(self.core.send(i, encode_frame(&message)));
        let delivered = u64::try_from(delivered).unwrap_or(u64::MAX);
        self.core.context.stats.deliveries.inc_by(delivered);
    }

    fn plugin_sent(&mut self, sent: PluginSent, ctx: &mut Context<Self>) {
        let Some(i) = self.core.position(sent.session) else {
            return;
        };
        let from = self.core.members[i].member.clone();
        if self.core.settings.tick_hz == 0 {
            let PluginSent { op, data, .. } = sent;
            self.plugin.call(Hook::Message, &mut self.core, |plugin, room| {
                plugin.message(room, &from, op, data);
            });
            return self.settle(ctx);
        }
        if self.inputs.len() < self.core.context.plugins.max_inputs {
            self.inputs.push(Input {
                from,
                op: sent.op,
                data: sent.data,
            });
            return;
        }
        self.core.context.stats.plugins.input_dropped(&self.core.kind);
        self.core.context.stats.error_sent(ErrorCode::Overloaded);
        let message = "the room has plugin_max_inputs messages waiting for its tick; this one was dropped";
        let error = protocol::error_message(sent.request_id, ErrorCode::Overloaded, message);
        self.core.send(i, encode_frame(&error));
        self.settle(ctx);
    }
}

impl StreamHandler<RoomCommand> for Room {
    fn handle(&mut self, command: RoomCommand, ctx: &mut Context<Self>) {
        self.announce_held_back(ctx);
        match command {
            RoomCommand::Join(join) => self.join(join, ctx),
            RoomCommand::Leave(leave) => self.leave(leave, ctx),
            RoomCommand::Chat(chat) => self.chat(chat, ctx),
            RoomCommand::Send(sent) => self.plugin_sent(sent, ctx),
            RoomCommand::Hold(session) => self.hold_command(session, ctx),
            RoomCommand::Drain(done) => done.send(()),
            RoomCommand::Close(reason) => self.close(&reason, ctx),
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        debug!(room = %self.core.name, "room closed");
        ctx.stop();
    }
}
