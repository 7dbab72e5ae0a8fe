//! `failover`: how long a cluster takes to recover from a node's death. Bots
//! join rooms with members on every node; then the first node is killed
//! (SIGKILL, by the process id given), and each bot does what a client
//! should: a member on a surviving node of a room the dead node owned waits
//! for `RoomLeft` and joins again (the room comes back on a live node with
//! a new epoch); a bot of the dead node connects to a surviving node, says
//! Hello under its name again and rejoins its room. The report gives, from
//! the kill, when members were told, when they were back in their room, and
//! when the dead node's bots were back.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tavern::client::{Client, ClientError};
use tavern::protocol::pb;
use tavern::protocol::pb::client_message::Body as Request;
use tavern::protocol::pb::server_message::Body;

use crate::cli::FailoverArgs;

/// Pause between two tries of a join or a connection that failed.
const RETRY: Duration = Duration::from_millis(20);

/// A bot: its room, its node, and where it is in the room's order.
struct Bot {
    client: Client,
    name: String,
    room: String,
    node: usize,
    /// Its room's number, to spread the dead node's bots over the others.
    number: usize,
    seq: u64,
    epoch: u64,
}

/// What a bot saw after the kill, from the kill.
enum Outcome {
    /// Its room lived elsewhere: nothing happened to it.
    Untouched,
    /// Told (`RoomLeft`), then back in the room (with its epoch then).
    Rejoined {
        told: Duration,
        back: Duration,
        epoch: u64,
        old: u64,
    },
    /// A bot of the dead node, back on another node and in its room.
    Reconnected { back: Duration },
}

/// Runs `failover` with `args`.
///
/// # Errors
/// Bad settings, a bot that could not connect or join before the kill, or
/// the kill itself failing.
pub async fn run(args: &FailoverArgs) -> anyhow::Result<()> {
    let nodes = args.nodes()?;
    anyhow::ensure!(nodes.len() >= 2, "--addr needs at least two nodes: the first is killed");
    let mut bots = Vec::new();
    for r in 0..args.rooms {
        for (node, addr) in nodes.iter().enumerate() {
            for k in 0..args.per_node {
                let name = format!("fo-{r}-{node}-{k}");
                bots.push(bot(*addr, name, (r, format!("failover-{r}")), node).await?);
            }
        }
    }
    let cluster = crate::admin::fetch(args.kill_admin, "/cluster").await?;
    let cluster: serde_json::Value = serde_json::from_str(&cluster).context("/cluster is not JSON")?;
    let owned: HashSet<String> = cluster["rooms_owned"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|room| room.as_str().map(str::to_owned))
        .collect();
    let affected = (0..args.rooms)
        .filter(|r| owned.contains(&format!("failover-{r}")))
        .count();
    println!(
        "failover: {} bots in {} rooms over {} nodes; node 1 ({}) owns {affected} of the rooms",
        bots.len(),
        args.rooms,
        nodes.len(),
        nodes[0]
    );
    let killed = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(args.kill_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .with_context(|| format!("killing process {}", args.kill_pid))?;
    let timeout = Duration::from_secs_f64(args.timeout_s);
    let tasks: Vec<_> = bots
        .into_iter()
        .map(|bot| {
            let (owned, nodes) = (owned.contains(&bot.room), nodes.clone());
            tokio::spawn(tokio::time::timeout(timeout, recover(bot, owned, nodes, killed)))
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(
            task.await
                .context("a bot's task")?
                .map_err(|_| anyhow::anyhow!("a bot was not back within --timeout-s"))??,
        );
    }
    report(&outcomes);
    Ok(())
}

/// A bot connected to `addr` as `name`, in `room`.
async fn bot(addr: SocketAddr, name: String, (number, room): (usize, String), node: usize) -> anyhow::Result<Bot> {
    let (mut client, _) = Client::connect_as(addr, &name)
        .await
        .with_context(|| format!("{name} connecting to {addr}"))?;
    let joined = client
        .join(&room)
        .await
        .with_context(|| format!("{name} joining {room}"))?;
    Ok(Bot {
        client,
        name,
        room,
        node,
        number,
        seq: joined.seq,
        epoch: joined.epoch,
    })
}

/// What `bot` does after the kill: see the module documentation.
async fn recover(mut bot: Bot, owned: bool, nodes: Vec<SocketAddr>, killed: Instant) -> anyhow::Result<Outcome> {
    if bot.node == 0 {
        let addr = nodes[1 + bot.number % (nodes.len() - 1)];
        let mut client = loop {
            match Client::connect_as(addr, &bot.name).await {
                Ok((client, _)) => break client,
                // The dead node's names are free once it is known dead.
                Err(_) => tokio::time::sleep(RETRY).await,
            }
        };
        rejoin(&mut client, (&bot.room, bot.seq, bot.epoch)).await?;
        return Ok(Outcome::Reconnected { back: killed.elapsed() });
    }
    if !owned {
        return Ok(Outcome::Untouched);
    }
    loop {
        let message = bot.client.next_message().await.context("reading")?;
        if let Some(Body::RoomLeft(left)) = message.body
            && left.room == bot.room
        {
            break;
        }
    }
    let told = killed.elapsed();
    let joined = rejoin(&mut bot.client, (&bot.room, bot.seq, bot.epoch)).await?;
    Ok(Outcome::Rejoined {
        told,
        back: killed.elapsed(),
        epoch: joined.epoch,
        old: bot.epoch,
    })
}

/// Joins `room` again, from `seq` of `epoch`, until the join succeeds.
async fn rejoin(client: &mut Client, (room, seq, epoch): (&str, u64, u64)) -> Result<pb::RoomJoined, ClientError> {
    loop {
        let join = Request::JoinRoom(pb::JoinRoom {
            room: room.to_owned(),
            since_seq: Some(seq),
            epoch,
            ..pb::JoinRoom::default()
        });
        match client.join_with(join).await {
            Ok(joined) => return Ok(joined),
            Err(ClientError::Server { .. }) => tokio::time::sleep(RETRY).await,
            Err(e) => return Err(e),
        }
    }
}

/// Prints the figures.
fn report(outcomes: &[Outcome]) {
    let mut told = Vec::new();
    let mut back = Vec::new();
    let mut reconnected = Vec::new();
    let mut same_epoch = 0;
    for outcome in outcomes {
        match outcome {
            Outcome::Untouched => {}
            Outcome::Rejoined {
                told: t,
                back: b,
                epoch,
                old,
            } => {
                told.push(*t);
                back.push(*b);
                same_epoch += usize::from(epoch == old);
            }
            Outcome::Reconnected { back: b } => reconnected.push(*b),
        }
    }
    println!("  told (RoomLeft)        {}", figures(&mut told));
    println!("  back in the room       {}", figures(&mut back));
    println!(
        "  rooms with a new epoch {} of {} rejoins",
        back.len() - same_epoch,
        back.len()
    );
    println!("  dead node's bots back  {}", figures(&mut reconnected));
}

/// Count, p50, p99 and max of `times`, in ms.
fn figures(times: &mut [Duration]) -> String {
    times.sort_unstable();
    let at = |q: f64| {
        let last = times.len().saturating_sub(1);
        let i = (crate::units::f64_from(crate::units::u64_from(last)) * q).round();
        times
            .get(usize::try_from(crate::units::round_to_u64(i)).unwrap_or(last))
            .copied()
            .unwrap_or_default()
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "{} bots: p50 {:.0} ms  p99 {:.0} ms  max {:.0} ms",
        times.len(),
        ms(at(0.5)),
        ms(at(0.99)),
        ms(at(1.0))
    )
}
