//! Entering the world: a bot connects, says Hello and enters at a random
//! point of its region; before the step, one probe enters to learn the
//! world's geometry.

use std::time::Duration;

use tavern::client::{Client, ClientReader, ClientWriter};
use tavern::protocol::pb;
use tavern::protocol::pb::client_message::Body as Request;
use tavern::protocol::pb::server_message::Body;
use tokio::time::Instant;

use super::walk::{Point, Region, Rng};
use super::workload::MmoWorkload;
use crate::bots::{self, describe};
use crate::figures::WorldGeometry;
use crate::runner::Env;
use crate::share::{SetupError, ShareSpec};
use crate::units::f32_from;

/// Longest the server may take to answer EnterWorld.
const ENTER_TIMEOUT: Duration = Duration::from_secs(10);

/// A bot in the world, not yet running.
pub struct Walker {
    /// The sending half.
    pub writer: ClientWriter,
    /// The receiving half.
    pub reader: ClientReader,
    /// How often to send something when not moving.
    pub heartbeat: Duration,
    /// From starting to connect until `Welcome`.
    pub connect_latency: Duration,
    /// From sending EnterWorld until `WorldEntered`.
    pub enter_latency: Duration,
    /// Where the server put it (its spawn point, clamped to the bounds).
    pub position: Point,
    /// Its own random numbers, for its walk.
    pub rng: Rng,
}

/// Connects bot `bot`, says Hello and enters the world at a random point of `region`.
pub async fn enter(spec: &ShareSpec, workload: &MmoWorkload, region: Region, bot: u64) -> Result<Walker, SetupError> {
    let started = Instant::now();
    let (mut client, welcome) = bots::connect_hello(spec, &spec.name('m', bot), spec.route(bot, bot)).await?;
    let connect_latency = started.elapsed();
    let mut rng = Rng::new(bot);
    let spawn = region.random_point(&mut rng);
    let entering = Instant::now();
    let entered = enter_world(&mut client, &workload.world, Some(spawn))
        .await
        .map_err(|cause| SetupError(format!("enter: {cause}")))?;
    let enter_latency = entering.elapsed();
    let position = entered.position.map_or(spawn, |position| Point {
        x: f64::from(position.x),
        y: f64::from(position.y),
    });
    let (writer, reader) = client.into_split();
    Ok(Walker {
        writer,
        reader,
        heartbeat: bots::heartbeat(&welcome),
        connect_latency,
        enter_latency,
        // The walk starts inside the region (the server rounds positions a little).
        position: region.clamp(position),
        rng,
    })
}

/// Sends EnterWorld and waits for its answer.
///
/// # Errors
/// The error code the server answered with, or why the connection failed.
async fn enter_world(client: &mut Client, world: &str, spawn: Option<Point>) -> Result<pb::WorldEntered, String> {
    let enter = pb::EnterWorld {
        world: world.to_owned(),
        spawn: spawn.map(|point| pb::Position {
            x: f32_from(point.x),
            y: f32_from(point.y),
        }),
    };
    let id = client
        .send(Request::EnterWorld(enter))
        .await
        .map_err(|e| describe(&e))?;
    let deadline = Instant::now() + ENTER_TIMEOUT;
    loop {
        let message = tokio::time::timeout_at(deadline, client.next_message())
            .await
            .map_err(|_| "timeout".to_owned())?
            .map_err(|e| describe(&e))?;
        if let Some(reason) = bots::ending(&message) {
            return Err(reason);
        }
        match message.body {
            Some(Body::WorldEntered(entered)) if message.request_id == id => return Ok(entered),
            Some(Body::Error(error)) if message.request_id == id => {
                return Err(error.code().as_str_name().to_owned());
            }
            _ => {}
        }
    }
}

/// Enters `world` once with a bot of its own and returns what the server
/// says about it (every share needs the bounds before its bots spawn).
///
/// # Errors
/// The connection, the Hello or the EnterWorld failed.
pub async fn probe(env: &Env, world: &str) -> anyhow::Result<WorldGeometry> {
    let spec = ShareSpec {
        index: 0,
        count: 1,
        run_id: env.run_id,
        step: 0,
        targets: env.targets.clone(),
        source_ips: 1,
        connect_concurrency: 1,
        setup_timeout_ms: u64::try_from(env.setup_timeout.as_millis()).unwrap_or(u64::MAX),
        auth_key: env.auth_key.clone(),
        transport: env.transport,
    };
    let (mut client, _) = bots::connect_hello(&spec, &spec.name('p', 0), spec.route(0, 0))
        .await
        .map_err(|SetupError(cause)| anyhow::anyhow!("probing the world: {cause}"))?;
    let entered = enter_world(&mut client, world, None)
        .await
        .map_err(|cause| anyhow::anyhow!("entering world {world:?}: {cause}"))?;
    WorldGeometry::from_entered(&entered)
}
