//! Kind `tictactoe`: two players, X (the first to join) and O, and a
//! board. The room locks when both are in. Client op 1 `Move { cell }`;
//! server op 1 `Board`, to both after every move and as the joiner's state;
//! server op 2 `Rejected { reason }`, to the mover alone. The schema is
//! `proto/tavern/examples/v1/examples.proto`.

use bytes::Bytes;
use prost::Message as _;

use super::pb;
use crate::protocol::RoomName;
use crate::room::{LeaveReason, Member, RoomCtx, RoomPlugin, RoomSettings};

/// Client op: `Move`.
pub const OP_MOVE: u32 = 1;
/// Server op: `Board`.
pub const OP_BOARD: u32 = 1;
/// Server op: `Rejected`.
pub const OP_REJECTED: u32 = 2;

/// `Board.outcome` values.
const PLAYING: u32 = 0;
const X_WON: u32 = 1;
const O_WON: u32 = 2;
const DRAW: u32 = 3;
const ABANDONED: u32 = 4;

/// The eight lines of three cells.
const LINES: [[usize; 3]; 8] = [
    [0, 1, 2],
    [3, 4, 5],
    [6, 7, 8],
    [0, 3, 6],
    [1, 4, 7],
    [2, 5, 8],
    [0, 4, 8],
    [2, 4, 6],
];

/// See the module documentation.
#[derive(Debug, Default)]
pub struct TicTacToe {
    /// 0 empty, 1 X, 2 O.
    cells: [u32; 9],
    x: u64,
    o: u64,
    /// Whose move: 1 X, 2 O.
    turn: u32,
    outcome: u32,
}

impl RoomPlugin for TicTacToe {
    fn create(_room: &RoomName, _params: &[u8]) -> Result<(Self, RoomSettings), String> {
        let settings = RoomSettings {
            max_members: 2,
            lock_when_full: true,
            label: "game=tictactoe".to_owned(),
            ..RoomSettings::default()
        };
        Ok((
            TicTacToe {
                turn: 1,
                ..TicTacToe::default()
            },
            settings,
        ))
    }

    fn join_attempt(&mut self, _room: &mut RoomCtx<'_>, _joiner: &Member, _metadata: &[u8]) -> Result<(), String> {
        if self.outcome != PLAYING {
            return Err("this game is over".to_owned());
        }
        Ok(())
    }

    fn snapshot(&mut self, _room: &RoomCtx<'_>, joiner: &Member) -> Bytes {
        // The joiner's seat is the one it is about to take.
        let mut board = self.board();
        if self.x == 0 {
            board.x_session = joiner.id.get();
        } else if self.o == 0 {
            board.o_session = joiner.id.get();
            board.turn_session = self.x;
        }
        Bytes::from(board.encode_to_vec())
    }

    fn join(&mut self, room: &mut RoomCtx<'_>, member: &Member) {
        if self.x == 0 {
            self.x = member.id.get();
        } else if self.o == 0 {
            self.o = member.id.get();
            self.send_board(room);
        }
    }

    fn leave(&mut self, room: &mut RoomCtx<'_>, member: &Member, _reason: LeaveReason) {
        let id = member.id.get();
        if self.outcome == PLAYING && (id == self.x || id == self.o) {
            self.outcome = ABANDONED;
            self.send_board(room);
            room.close("the other player left");
        }
    }

    fn message(&mut self, room: &mut RoomCtx<'_>, from: &Member, op: u32, data: Bytes) {
        let cell = match (op, pb::Move::decode(data)) {
            (OP_MOVE, Ok(moved)) => moved.cell,
            (OP_MOVE, Err(_)) => return reject(room, from, "not a Move"),
            _ => return reject(room, from, "unknown op"),
        };
        if let Err(reason) = self.play(from.id.get(), cell) {
            return reject(room, from, reason);
        }
        self.send_board(room);
    }
}

impl TicTacToe {
    /// Puts `player`'s mark in `cell`, or says why not.
    fn play(&mut self, player: u64, cell: u32) -> Result<(), &'static str> {
        if self.outcome != PLAYING {
            return Err("the game is over");
        }
        if self.o == 0 {
            return Err("waiting for a second player");
        }
        let mark = if player == self.x { 1 } else { 2 };
        if mark != self.turn {
            return Err("not your turn");
        }
        let slot = usize::try_from(cell)
            .ok()
            .and_then(|cell| self.cells.get_mut(cell))
            .ok_or("no such cell")?;
        if *slot != 0 {
            return Err("cell taken");
        }
        *slot = mark;
        self.turn = 3 - mark;
        self.outcome = self.judge();
        Ok(())
    }

    fn judge(&self) -> u32 {
        for line in LINES {
            let [a, b, c] = line.map(|i| self.cells[i]);
            if a != 0 && a == b && b == c {
                return if a == 1 { X_WON } else { O_WON };
            }
        }
        if self.cells.iter().all(|&cell| cell != 0) {
            DRAW
        } else {
            PLAYING
        }
    }

    fn board(&self) -> pb::Board {
        let playing = self.outcome == PLAYING && self.o != 0;
        pb::Board {
            cells: self.cells.to_vec(),
            x_session: self.x,
            o_session: self.o,
            turn_session: match (playing, self.turn) {
                (true, 1) => self.x,
                (true, _) => self.o,
                (false, _) => 0,
            },
            outcome: self.outcome,
        }
    }

    fn send_board(&self, room: &mut RoomCtx<'_>) {
        room.broadcast(OP_BOARD, Bytes::from(self.board().encode_to_vec()), None);
    }
}

fn reject(room: &mut RoomCtx<'_>, to: &Member, reason: &str) {
    let rejected = pb::Rejected {
        reason: reason.to_owned(),
    };
    room.send_to(to.id, OP_REJECTED, Bytes::from(rejected.encode_to_vec()), None);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn game() -> TicTacToe {
        TicTacToe {
            x: 1,
            o: 2,
            turn: 1,
            ..TicTacToe::default()
        }
    }

    #[test]
    fn x_wins_a_row() {
        let mut game = game();
        for (player, cell) in [(1, 0), (2, 3), (1, 1), (2, 4), (1, 2)] {
            game.play(player, cell).unwrap();
        }
        assert_eq!(game.outcome, X_WON);
        assert_eq!(game.play(2, 5), Err("the game is over"));
    }

    #[test]
    fn bad_moves_are_refused() {
        let mut game = game();
        assert_eq!(game.play(2, 0), Err("not your turn"));
        assert_eq!(game.play(1, 9), Err("no such cell"));
        game.play(1, 4).unwrap();
        assert_eq!(game.play(2, 4), Err("cell taken"));
    }

    #[test]
    fn a_full_board_without_a_line_is_a_draw() {
        let mut game = game();
        for (player, cell) in [(1, 0), (2, 1), (1, 2), (2, 4), (1, 3), (2, 5), (1, 7), (2, 6), (1, 8)] {
            game.play(player, cell).unwrap();
        }
        assert_eq!(game.outcome, DRAW);
    }
}
