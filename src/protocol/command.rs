//! Client frames become typed requests here, once, at the edge.

use bytes::Bytes;

use super::PROTOCOL_VERSION;
use super::label::Filter;
use super::names::{ChatText, PlayerName, Point, ProtocolError, RoomName, WorldName};
use super::pb::{self, ClientMessage, client_message::Body};

/// One validated client request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Echoed by the reply or error.
    pub id: u64,
    /// What the client asks for.
    pub command: Command,
}

/// What a client can ask for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Start the session under a name.
    Hello {
        /// The player's display name.
        name: PlayerName,
        /// Authentication token (checked with `--auth token`).
        token: String,
        /// A previous Welcome's resume token; empty for a fresh session.
        resume_token: String,
    },
    /// The client leaves for good: end the session now, holding nothing for a resume.
    Goodbye,
    /// Measure round-trip time.
    Ping {
        /// Echoed in the Pong.
        client_time_us: u64,
    },
    /// Join (and create if needed) a room.
    Join(JoinSpec),
    /// Join the best open room of a kind, or create one.
    QuickJoin {
        /// The kind (empty: chat).
        kind: String,
        /// What the room's label must have.
        filter: Filter,
        /// For the plugin, if the room is created.
        params: Bytes,
        /// For the plugin's join attempt.
        metadata: Bytes,
    },
    /// List public rooms.
    ListRooms(ListSpec),
    /// A member's message to its room's plugin.
    RoomSend {
        /// The room, which the sender must be in.
        room: RoomName,
        /// The plugin's opcode.
        op: u32,
        /// The plugin's bytes.
        data: Bytes,
    },
    /// Leave a room.
    Leave(RoomName),
    /// Send text to a room's members.
    Chat {
        /// The room, which the sender must be in.
        room: RoomName,
        /// The text.
        text: ChatText,
    },
    /// Enter (and create if needed) a world.
    EnterWorld {
        /// The world.
        world: WorldName,
        /// Where to appear; the server picks when absent.
        spawn: Option<Point>,
    },
    /// Where the player wants its entity to be.
    Move(MoveInput),
    /// Leave a world.
    LeaveWorld(WorldName),
}

/// Where a returning member left off: the last seq it saw of a room, in
/// which incarnation of it (`JoinRoom.since_seq`, `JoinRoom.epoch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recover {
    /// The last seq seen.
    pub since_seq: u64,
    /// The room's epoch then.
    pub epoch: u64,
}

/// A validated JoinRoom.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinSpec {
    /// The room.
    pub room: RoomName,
    /// Its kind (empty: chat).
    pub kind: String,
    /// For the plugin, if this join creates the room.
    pub params: Bytes,
    /// For the plugin's join attempt.
    pub metadata: Bytes,
    /// Where the client left off, to recover from.
    pub recover: Option<Recover>,
}

/// A validated ListRooms.
#[derive(Debug, Clone, PartialEq)]
pub struct ListSpec {
    /// Only rooms of this kind (`None`: any kind).
    pub kind: Option<String>,
    /// What a room's label must have.
    pub filter: Filter,
    /// At most this many rooms (0: the server's limit).
    pub limit: u32,
    /// Only rooms that take joiners now.
    pub only_open: bool,
}

/// A validated Move.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MoveInput {
    /// Where to go.
    pub to: Point,
    /// Radians counter-clockwise from east (finite).
    pub heading: f32,
    /// The client's own counter; stale Moves (not above the last one) are ignored.
    pub client_tick: u32,
}

impl Request {
    /// Validates a decoded frame. `max_text_len` is the chat text limit in bytes.
    ///
    /// # Errors
    /// The request id with the [`ProtocolError`] to answer it with.
    pub fn parse(message: ClientMessage, max_text_len: usize) -> Result<Request, (u64, ProtocolError)> {
        let id = message.request_id;
        let command = match message.body {
            None => Err(ProtocolError::UnsupportedMessage),
            Some(Body::Hello(hello)) if hello.protocol_version != PROTOCOL_VERSION => {
                Err(ProtocolError::UnsupportedVersion(hello.protocol_version))
            }
            Some(Body::Hello(hello)) => PlayerName::parse(&hello.name).map(|name| Command::Hello {
                name,
                token: hello.token,
                resume_token: hello.resume_token,
            }),
            Some(Body::Goodbye(_)) => Ok(Command::Goodbye),
            Some(Body::Ping(ping)) => Ok(Command::Ping {
                client_time_us: ping.client_time_us,
            }),
            Some(Body::JoinRoom(join)) => RoomName::parse(&join.room).map(|room| {
                let recover = join.since_seq.map(|since_seq| Recover {
                    since_seq,
                    epoch: join.epoch,
                });
                Command::Join(JoinSpec {
                    room,
                    kind: join.kind,
                    params: join.params,
                    metadata: join.metadata,
                    recover,
                })
            }),
            Some(Body::QuickJoin(quick)) => {
                Filter::parse(&quick.filter)
                    .map_err(ProtocolError::from)
                    .map(|filter| Command::QuickJoin {
                        kind: quick.kind,
                        filter,
                        params: quick.params,
                        metadata: quick.metadata,
                    })
            }
            Some(Body::ListRooms(list)) => list_rooms(list),
            Some(Body::RoomSend(send)) => RoomName::parse(&send.room).map(|room| Command::RoomSend {
                room,
                op: send.op,
                data: send.data,
            }),
            Some(Body::LeaveRoom(leave)) => RoomName::parse(&leave.room).map(Command::Leave),
            Some(Body::SendChat(chat)) => RoomName::parse(&chat.room).and_then(|room| {
                Ok(Command::Chat {
                    room,
                    text: ChatText::parse(chat.text, max_text_len)?,
                })
            }),
            Some(Body::EnterWorld(enter)) => WorldName::parse(&enter.world).and_then(|world| {
                let spawn = enter.spawn.map(|at| Point::parse(at.x, at.y)).transpose()?;
                Ok(Command::EnterWorld { world, spawn })
            }),
            Some(Body::Move(movement)) => Point::parse(movement.x, movement.y).and_then(|to| {
                if !movement.heading.is_finite() {
                    return Err(ProtocolError::InvalidPosition);
                }
                Ok(Command::Move(MoveInput {
                    to,
                    heading: movement.heading,
                    client_tick: movement.client_tick,
                }))
            }),
            Some(Body::LeaveWorld(leave)) => WorldName::parse(&leave.world).map(Command::LeaveWorld),
        };
        command.map(|command| Request { id, command }).map_err(|e| (id, e))
    }
}

fn list_rooms(list: pb::ListRooms) -> Result<Command, ProtocolError> {
    Ok(Command::ListRooms(ListSpec {
        kind: Some(list.kind).filter(|kind| !kind.is_empty()),
        filter: Filter::parse(&list.filter)?,
        limit: list.limit,
        only_open: list.only_open,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::pb;

    fn parse(request_id: u64, body: Body) -> Result<Request, (u64, ProtocolError)> {
        Request::parse(
            ClientMessage {
                request_id,
                body: Some(body),
            },
            16,
        )
    }

    #[test]
    fn every_body_parses() {
        let hello = pb::Hello {
            protocol_version: 1,
            name: "ann".into(),
            token: "t".into(),
            resume_token: "r".into(),
        };
        let Ok(Request {
            id: 4,
            command:
                Command::Hello {
                    name,
                    token,
                    resume_token,
                },
        }) = parse(4, Body::Hello(hello))
        else {
            panic!("hello did not parse")
        };
        assert_eq!(
            (name.as_str(), token.as_str(), resume_token.as_str()),
            ("ann", "t", "r")
        );
        assert_eq!(
            parse(1, Body::Goodbye(pb::Goodbye {})).unwrap().command,
            Command::Goodbye
        );
        assert!(matches!(
            parse(1, Body::Ping(pb::Ping { client_time_us: 9 })).unwrap().command,
            Command::Ping { client_time_us: 9 }
        ));
        assert!(matches!(
            parse(
                1,
                Body::JoinRoom(pb::JoinRoom {
                    room: "r".into(),
                    ..pb::JoinRoom::default()
                })
            )
            .unwrap()
            .command,
            Command::Join(_)
        ));
        assert!(matches!(
            parse(1, Body::LeaveRoom(pb::LeaveRoom { room: "r".into() }))
                .unwrap()
                .command,
            Command::Leave(_)
        ));
        let chat = pb::SendChat {
            room: "r".into(),
            text: "hi".into(),
        };
        assert!(matches!(
            parse(1, Body::SendChat(chat)).unwrap().command,
            Command::Chat { .. }
        ));
    }

    #[test]
    fn errors_keep_the_request_id() {
        let hello = pb::Hello {
            protocol_version: 2,
            name: "ann".into(),
            ..pb::Hello::default()
        };
        assert_eq!(
            parse(5, Body::Hello(hello)),
            Err((5, ProtocolError::UnsupportedVersion(2)))
        );
        let chat = pb::SendChat {
            room: "r".into(),
            text: "x".repeat(17),
        };
        assert_eq!(
            parse(6, Body::SendChat(chat)),
            Err((6, ProtocolError::TextTooLong { len: 17, max: 16 }))
        );
        let chat = pb::SendChat {
            room: "bad room".into(),
            text: "x".into(),
        };
        assert!(matches!(
            parse(7, Body::SendChat(chat)),
            Err((7, ProtocolError::InvalidRoom(_)))
        ));
        assert_eq!(
            Request::parse(
                ClientMessage {
                    request_id: 8,
                    body: None
                },
                16
            ),
            Err((8, ProtocolError::UnsupportedMessage))
        );
    }
}
