//! The room plugins that ship with Tavern, registered on every server: the
//! examples of README.md's "Write a room plugin". `chat` is the default kind
//! (in [`room`](crate::room)); [`tictactoe`] is a turn-based game with its
//! state given to joiners; [`lobby`] is a ready check with a tick and a
//! countdown timer; [`echo`] sends every member's message back to every
//! member, the plugin path at its cheapest (what `loadtest plugin` loads).

pub mod echo;
pub mod lobby;
pub mod tictactoe;

use crate::room::Kinds;

/// Types generated from `proto/tavern/examples/v1/*.proto` by `build.rs`:
/// the examples' own messages, carried in `RoomSend.data`, `RoomEvent.data`,
/// `JoinRoom.params` and `RoomJoined.state`.
#[allow(missing_docs, clippy::all, clippy::as_conversions)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/tavern.examples.v1.rs"));
}

/// Chat and the shipped examples, by kind.
pub fn shipped() -> Kinds {
    let mut kinds = Kinds::default();
    kinds.register::<tictactoe::TicTacToe>("tictactoe");
    kinds.register::<lobby::Lobby>("lobby");
    kinds.register::<echo::Echo>("echo");
    kinds
}
