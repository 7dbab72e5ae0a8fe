//! The length-prefixed frame stream as it arrives in writes of any size:
//! where each frame starts (its length) and which bytes are its body. Both
//! WebSocket writers read the stream this way: the server's rewrites each
//! prefix as a frame header, the client's gathers each body into a message.

/// Bytes of the length prefix before each frame.
const PREFIX: usize = 4;

/// A piece of the frame stream.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Piece<'a> {
    /// A frame starts; its body is this long.
    Start(usize),
    /// Bytes of the current frame's body.
    Body(&'a [u8]),
}

/// See the module documentation.
#[derive(Debug, Default)]
pub(super) struct Prefixes {
    prefix: [u8; PREFIX],
    prefix_len: usize,
    body_left: usize,
}

impl Prefixes {
    /// The next piece at the start of `buf`, if `buf` completes one, and how
    /// many bytes of `buf` it took. A body is never read past its frame's end.
    pub(super) fn next<'a>(&mut self, buf: &'a [u8]) -> (Option<Piece<'a>>, usize) {
        if self.body_left > 0 {
            let n = self.body_left.min(buf.len());
            self.body_left -= n;
            return (Some(Piece::Body(&buf[..n])), n);
        }
        let n = (PREFIX - self.prefix_len).min(buf.len());
        self.prefix[self.prefix_len..self.prefix_len + n].copy_from_slice(&buf[..n]);
        self.prefix_len += n;
        if self.prefix_len < PREFIX {
            return (None, n);
        }
        self.prefix_len = 0;
        self.body_left = usize::try_from(u32::from_be_bytes(self.prefix)).unwrap_or(usize::MAX);
        (Some(Piece::Start(self.body_left)), n)
    }

    /// Whether the stream is between two frames.
    pub(super) fn between_frames(&self) -> bool {
        self.prefix_len == 0 && self.body_left == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_found_across_writes_of_any_size() {
        let stream = [0, 0, 0, 2, b'a', b'b', 0, 0, 0, 0, 0, 0, 0, 1, b'c'];
        for chunk in 1..=stream.len() {
            let mut prefixes = Prefixes::default();
            let mut frames: Vec<Vec<u8>> = Vec::new();
            for mut buf in stream.chunks(chunk) {
                while !buf.is_empty() {
                    let (piece, n) = prefixes.next(buf);
                    match piece {
                        Some(Piece::Start(_)) => frames.push(Vec::new()),
                        Some(Piece::Body(body)) => frames.last_mut().unwrap().extend_from_slice(body),
                        None => {}
                    }
                    buf = &buf[n..];
                }
            }
            assert_eq!(frames, [b"ab".to_vec(), Vec::new(), b"c".to_vec()], "writes of {chunk}");
            assert!(prefixes.between_frames());
        }
    }
}
