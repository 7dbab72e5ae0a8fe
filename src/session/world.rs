//! A session's game world: entering (one call on the world registry), its
//! Moves, and leaving.

use std::sync::Arc;

use actix::{ActorFutureExt, AsyncContext, Context, WrapFuture};

use super::Session;
use crate::ids::OverloadLevel;
use crate::protocol::{ErrorCode, MoveInput, Point, WorldName};
use crate::world::{Arrival, Enter, InputSlot, WorldCommand, WorldHandle};

/// The world a session is in.
pub(super) struct InWorld {
    name: WorldName,
    world: WorldHandle,
    /// Where its Moves wait for the world's tick.
    input: Arc<InputSlot>,
    /// The client_tick of the last Move taken; Moves not above it are stale.
    last_client_tick: Option<u32>,
}

impl Session {
    /// Enters world `name` through the registry; the world answers the client.
    pub(super) fn enter_world(
        &mut self,
        ctx: &mut Context<Self>,
        request_id: u64,
        name: WorldName,
        spawn: Option<Point>,
    ) {
        if self.member.is_none() {
            return;
        }
        if let Some(current) = &self.world {
            let message = format!("already in world {}", current.name);
            return self.reply_error(ctx, request_id, ErrorCode::AlreadyInWorld, message);
        }
        if self.server.stats.overload() >= OverloadLevel::Shedding {
            let message = "the server is overloaded; try again later";
            return self.reply_error(ctx, request_id, ErrorCode::Overloaded, message);
        }
        if let Some(cluster) = self.server.directory.cluster().cloned() {
            let wanted = name.clone();
            let located = async move { cluster.locate_world(wanted.as_str()).await };
            ctx.wait(located.into_actor(self).map(move |located, act, ctx| {
                let (code, message) = match located {
                    Ok(Ok(())) => return act.enter_world_here(ctx, request_id, name, spawn),
                    Ok(Err((node, addr))) => (
                        ErrorCode::WorldElsewhere,
                        format!("world {name} runs on node {node}, at {addr}: connect there to enter it"),
                    ),
                    Err(e) => (ErrorCode::ClusterUnavailable, e.to_string()),
                };
                act.reply_error(ctx, request_id, code, message);
            }));
            return;
        }
        self.enter_world_here(ctx, request_id, name, spawn);
    }

    /// Enters world `name`, which runs on this node.
    fn enter_world_here(&mut self, ctx: &mut Context<Self>, request_id: u64, name: WorldName, spawn: Option<Point>) {
        let Some(member) = self.member.clone() else { return };
        let arrival = Arrival {
            request_id,
            session: self.id,
            name: member.name,
            outbox: self.outbox.clone(),
            input: Arc::new(InputSlot::default()),
            spawn,
        };
        let worlds = self.server.worlds.clone();
        let entering = async move {
            let entered = worlds.enter(&name, &arrival).await;
            (name, arrival.input, entered)
        };
        ctx.wait(
            entering
                .into_actor(self)
                .map(move |(name, input, entered), act, ctx| match entered {
                    Ok(world) => {
                        act.world = Some(Box::new(InWorld {
                            name,
                            world,
                            input,
                            last_client_tick: None,
                        }));
                    }
                    Err(e) => act.reply_error(ctx, request_id, e.code(), e.to_string()),
                }),
        );
    }

    /// Hands a Move to the world's next tick, unless it is stale.
    pub(super) fn move_in_world(&mut self, ctx: &mut Context<Self>, request_id: u64, input: MoveInput) {
        let Some(world) = &mut self.world else {
            return self.reply_error(ctx, request_id, ErrorCode::NotInWorld, "not in a world");
        };
        if world.last_client_tick.is_some_and(|last| input.client_tick <= last) {
            self.server.stats.world_moves_stale.inc();
            return;
        }
        world.last_client_tick = Some(input.client_tick);
        world.input.put(input);
    }

    pub(super) fn leave_world(&mut self, ctx: &mut Context<Self>, request_id: u64, name: &WorldName) {
        match self.world.take_if(|world| world.name == *name).map(|boxed| boxed.world) {
            Some(world) => {
                let leave = WorldCommand::Leave {
                    request_id,
                    session: self.id,
                };
                ctx.wait(
                    async move { world.inbox.send(leave).await }
                        .into_actor(self)
                        .map(|_, _, _| ()),
                );
            }
            None => self.reply_error(ctx, request_id, ErrorCode::NotInWorld, format!("not in world {name}")),
        }
    }

    /// Keeps the player's entity in its world while the session is held:
    /// the world sends it nothing, and takes its closed connection for a pause.
    pub(super) fn hold_world(&self) {
        if let Some(world) = &self.world {
            world.input.hold();
        }
    }

    /// After a resume: the world sends `WorldEntered` and a fresh full view
    /// to this connection (movement is never replayed).
    pub(super) fn rejoin_world(&mut self, ctx: &mut Context<Self>) {
        let (Some(world), Some(member)) = (&mut self.world, &self.member) else {
            return;
        };
        world.last_client_tick = None;
        let arrival = Arrival {
            request_id: 0,
            session: self.id,
            name: member.name.clone(),
            outbox: self.outbox.clone(),
            input: world.input.clone(),
            spawn: None,
        };
        let inbox = world.world.inbox.clone();
        let rejoined = async move {
            let _ = inbox.ask(|answer| WorldCommand::Enter(Enter { arrival, answer })).await;
        };
        ctx.spawn(rejoined.into_actor(self));
    }

    /// Leaves the world without waiting (the session is ending).
    pub(super) fn leave_world_now(&mut self) {
        if let Some(InWorld { world, .. }) = self.world.take().map(|boxed| *boxed) {
            let session = self.id;
            world.inbox.post(WorldCommand::Leave { request_id: 0, session });
        }
    }
}
