//! The frames a writer took from its queue and has not finished writing.
//!
//! A socket that takes vectored writes gets them as they are, up to
//! [`MAX_SLICES`] frames per `writev`, with no copy; for one that does not
//! (TLS), ready frames are copied into one buffer per write instead.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Bytes, BytesMut};

/// Most frames one vectored write carries: Linux's `IOV_MAX`. A member of a
/// busy room can have hundreds of small frames ready at once, and every
/// write saved is a trip through the TCP stack saved.
pub const MAX_SLICES: usize = 1024;

/// Slots a busy writer keeps between batches (32 bytes each).
pub const KEEP_SLOTS: usize = 64;

/// A batch being written: frames in order, the first possibly part written.
#[derive(Debug, Default)]
pub struct Batch {
    frames: VecDeque<Bytes>,
    /// Bytes of the first frame already written.
    offset: usize,
    /// Where the latest-state frame is, which the queue's bounds do not count.
    latest_at: Option<usize>,
}

/// What one write finished: whole frames and their bytes, as the queue's
/// bounds count them, and whether the latest-state frame was among them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub frames: usize,
    pub bytes: usize,
    pub latest: bool,
}

impl Written {
    /// Frames written in all.
    pub fn all_frames(self) -> usize {
        self.frames + usize::from(self.latest)
    }

    /// Counts `frame`, the batch's first.
    fn add(&mut self, frame: &Bytes, latest_at: &mut Option<usize>) {
        if *latest_at == Some(0) {
            self.latest = true;
        } else {
            self.frames += 1;
            self.bytes += frame.len();
        }
        *latest_at = latest_at.and_then(|at| at.checked_sub(1));
    }
}

impl Batch {
    /// Whether everything taken was written.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The empty queue to swap with the shared one, and where the
    /// latest-state frame lands in it.
    pub fn slots(&mut self) -> (&mut VecDeque<Bytes>, &mut Option<usize>) {
        debug_assert!(self.frames.is_empty() && self.offset == 0);
        (&mut self.frames, &mut self.latest_at)
    }

    /// Whether the first frame is part written (the stream must finish it to stay framed).
    pub fn is_mid_frame(&self) -> bool {
        self.offset > 0
    }

    /// Keeps only the part-written first frame, if any; returns what was dropped.
    pub fn keep_mid_frame(&mut self) -> Written {
        let keep = usize::from(self.is_mid_frame());
        let kept_is_latest = keep == 1 && self.latest_at == Some(0);
        let mut at = self.latest_at.and_then(|at| at.checked_sub(keep));
        let mut dropped = Written::default();
        for frame in self.frames.drain(keep..) {
            dropped.add(&frame, &mut at);
        }
        self.latest_at = kept_is_latest.then_some(0);
        self.release_memory(true);
        dropped
    }

    /// Frames left to write (the first possibly in part).
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Fills `slices` with the unwritten bytes, frame by frame, up to
    /// `max_bytes` (at least one frame); returns how many it filled.
    pub fn slices<'a>(&'a self, slices: &mut [IoSlice<'a>], max_bytes: usize) -> usize {
        let mut total = 0;
        let mut n = 0;
        for (i, frame) in self.frames.iter().enumerate() {
            if n == slices.len() || (n > 0 && total + frame.len() > max_bytes) {
                break;
            }
            let part = if i == 0 { &frame[self.offset..] } else { &frame[..] };
            slices[n] = IoSlice::new(part);
            total += part.len();
            n += 1;
        }
        n
    }

    /// Copies frames into one buffer of about `max_bytes` (at least one
    /// frame), removing them from the batch; for sockets without vectored writes.
    pub fn coalesce(&mut self, max_bytes: usize) -> (Bytes, Written) {
        let mut written = Written::default();
        let first = self.frames.pop_front().unwrap_or_default();
        written.add(&first, &mut self.latest_at);
        let first = first.slice(self.offset.min(first.len())..);
        self.offset = 0;
        if self.frames.is_empty() || first.len() >= max_bytes {
            return (first, written);
        }
        // What the buffer will hold, counted only as far as the budget.
        let ready = self
            .frames
            .iter()
            .map(Bytes::len)
            .try_fold(first.len(), |sum, len| (sum < max_bytes).then_some(sum + len));
        let mut buf = BytesMut::with_capacity(ready.unwrap_or(max_bytes).min(max_bytes));
        buf.extend_from_slice(&first);
        while let Some(frame) = self.frames.front() {
            if buf.len() + frame.len() > max_bytes {
                break;
            }
            buf.extend_from_slice(frame);
            written.add(frame, &mut self.latest_at);
            self.frames.pop_front();
        }
        (buf.freeze(), written)
    }

    /// Marks `n` more bytes written; returns the frames that completed.
    pub fn advance(&mut self, mut n: usize) -> Written {
        let mut done = Written::default();
        while let Some(frame) = self.frames.front_mut() {
            let left = frame.len() - self.offset;
            if n < left {
                self.offset += n;
                break;
            }
            n -= left;
            done.add(frame, &mut self.latest_at);
            self.offset = 0;
            self.frames.pop_front();
        }
        done
    }

    /// Once the batch is written, gives its slots back to the allocator: all
    /// of them after a quiet take (a session that went quiet holds none),
    /// those past [`KEEP_SLOTS`] after a busy one (a burst does not leave a
    /// deep queue's slots behind).
    pub fn release_memory(&mut self, quiet: bool) {
        if !self.frames.is_empty() {
            return;
        }
        if quiet {
            self.frames = VecDeque::new();
        } else if self.frames.capacity() > KEEP_SLOTS {
            self.frames.shrink_to(KEEP_SLOTS);
        }
    }

    #[cfg(test)]
    fn slots_for_test(&mut self) -> &mut Option<usize> {
        &mut self.latest_at
    }

    /// What is left of the first frame.
    #[cfg(test)]
    fn front(&self) -> Option<Bytes> {
        use bytes::Buf;
        self.frames.front().map(|f| {
            let mut f = f.clone();
            f.advance(self.offset);
            f
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whole frames written, none of them the latest-state frame.
    fn whole(frames: usize, bytes: usize) -> Written {
        Written {
            frames,
            bytes,
            latest: false,
        }
    }

    fn batch(frames: &[&'static [u8]]) -> Batch {
        let mut b = Batch::default();
        b.slots().0.extend(frames.iter().map(|f| Bytes::from_static(f)));
        b
    }

    #[test]
    fn partial_writes_advance_frame_by_frame() {
        let mut b = batch(&[b"abc", b"de", b"fgh"]);
        assert_eq!(b.advance(2), Written::default());
        assert!(b.is_mid_frame());
        assert_eq!(b.front().as_deref(), Some(&b"c"[..]));
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        assert_eq!(b.slices(&mut slices, 1 << 16), 3);
        assert_eq!(&*slices[0], b"c");
        assert_eq!(b.advance(4), whole(2, 5));
        assert_eq!(b.front().as_deref(), Some(&b"gh"[..]));
        assert_eq!(b.advance(2), whole(1, 3));
        assert!(b.is_empty());
    }

    #[test]
    fn slices_stop_at_the_byte_budget_but_take_one_frame() {
        let b = batch(&[b"abcd", b"ef", b"gh"]);
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        assert_eq!(b.slices(&mut slices, 2), 1, "one frame even past the budget");
        assert_eq!(b.slices(&mut slices, 6), 2);
    }

    #[test]
    fn coalesce_copies_whole_frames_up_to_the_budget() {
        let mut b = batch(&[b"abc", b"de", b"fgh"]);
        b.advance(1);
        let (buf, written) = b.coalesce(5);
        assert_eq!(&buf[..], b"bcde");
        assert_eq!(written, whole(2, 5));
        let (buf, written) = b.coalesce(5);
        assert_eq!((&buf[..], written), (&b"fgh"[..], whole(1, 3)));
        assert!(b.is_empty());
    }

    #[test]
    fn the_latest_frame_is_written_but_not_counted_against_the_bounds() {
        let mut b = batch(&[b"ab", b"cde", b"f"]);
        *b.slots_for_test() = Some(1);
        assert_eq!(
            b.advance(5),
            Written {
                frames: 1,
                bytes: 2,
                latest: true
            }
        );
        assert_eq!(b.advance(1), whole(1, 1));
    }

    #[test]
    fn keeping_the_mid_frame_drops_the_rest() {
        let mut b = batch(&[b"abc", b"de"]);
        b.advance(1);
        assert_eq!(b.keep_mid_frame(), whole(1, 2));
        assert_eq!(b.front().as_deref(), Some(&b"bc"[..]));
        let mut one = batch(&[b"abc"]);
        assert_eq!(one.keep_mid_frame(), whole(1, 3));
        assert!(one.is_empty());
    }
}
