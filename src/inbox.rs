//! The one bounded inbox every actor reads from: the room directory, each
//! room and each game world. Its capacity is a setting
//! ([`Config::room_inbox`], [`Config::world_inbox`]), so a producer faster
//! than the actor is held back here rather than buffered without bound.
//!
//! Three ways to put a message in, by what the sender may do when it is full:
//! [`Inbox::try_send`] hands it back; [`Inbox::send`] waits for space;
//! [`Inbox::post`] never makes the caller wait (a task waits instead), for
//! the few messages that must not be lost and are sent where waiting is
//! impossible. [`Inbox::ask`] sends a request that carries a [`Reply`] and
//! waits for the answer.
//!
//! [`Config::room_inbox`]: crate::Config::room_inbox
//! [`Config::world_inbox`]: crate::Config::world_inbox

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll, ready};

use tokio::sync::{mpsc, oneshot};
use tokio_stream::Stream;
use tracing::warn;

pub use tokio::sync::mpsc::error::TrySendError;

/// The receiving side, a stream the actor adds to its context. A watched
/// mailbox also records how full its inbox was into a [`PeakFill`].
pub struct Mailbox<C> {
    receiver: mpsc::Receiver<C>,
    fill: Option<Arc<PeakFill>>,
}

impl<C> Stream for Mailbox<C> {
    type Item = C;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<C>> {
        let item = ready!(self.receiver.poll_recv(cx));
        if item.is_some()
            && let Some(fill) = &self.fill
        {
            fill.record(self.receiver.len() + 1, self.receiver.max_capacity());
        }
        Poll::Ready(item)
    }
}

/// The fullest any watched inbox was, in thousandths of its bound, since the
/// last [`PeakFill::take`]: how far the actors are behind their senders.
#[derive(Debug, Default)]
pub struct PeakFill(AtomicU32);

impl PeakFill {
    /// Records that an inbox held `len` of at most `capacity` messages.
    pub fn record(&self, len: usize, capacity: usize) {
        let permille = len.saturating_mul(1000) / capacity.max(1);
        self.0
            .fetch_max(u32::try_from(permille).unwrap_or(u32::MAX), Ordering::Relaxed);
    }

    /// The peak since the last call, in percent of the bound; starts a new peak.
    pub fn take(&self) -> f64 {
        f64::from(self.0.swap(0, Ordering::Relaxed)) / 10.0
    }
}

/// The sending side of an actor's bounded inbox; cheap to clone.
pub struct Inbox<C> {
    sender: mpsc::Sender<C>,
}

/// The actor is gone: it stopped, or the server is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the actor is gone (server stopping)")]
pub struct Gone;

/// A new inbox holding at most `capacity` messages (at least 1).
pub fn inbox<C>(capacity: usize) -> (Inbox<C>, Mailbox<C>) {
    let (sender, receiver) = mpsc::channel(capacity.max(1));
    (Inbox { sender }, Mailbox { receiver, fill: None })
}

/// As [`inbox`], and the mailbox records how full it is into `fill`.
pub fn watched_inbox<C>(capacity: usize, fill: Arc<PeakFill>) -> (Inbox<C>, Mailbox<C>) {
    let (inbox, mut mailbox) = inbox(capacity);
    mailbox.watch(fill);
    (inbox, mailbox)
}

impl<C> Mailbox<C> {
    /// From now on, records how full the inbox is into `fill`.
    pub fn watch(&mut self, fill: Arc<PeakFill>) {
        self.fill = Some(fill);
    }
}

impl<C: Send + 'static> Inbox<C> {
    /// Queues `message` if there is space now.
    ///
    /// # Errors
    /// The message back, when the inbox is full or the actor is gone.
    pub fn try_send(&self, message: C) -> Result<(), TrySendError<C>> {
        self.sender.try_send(message)
    }

    /// Queues `message`, waiting for space.
    ///
    /// # Errors
    /// [`Gone`] when the actor is gone.
    pub async fn send(&self, message: C) -> Result<(), Gone> {
        self.sender.send(message).await.map_err(|_| Gone)
    }

    /// Delivers `message` without making the caller wait: at once when there
    /// is space, else from a task that waits for space. Each such task holds
    /// one message of a session or room that is ending, so they are few.
    pub fn post(&self, message: C) {
        let Err(TrySendError::Full(message)) = self.sender.try_send(message) else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let sender = self.sender.clone();
                runtime.spawn(async move { sender.send(message).await });
            }
            Err(_) => warn!("a message posted outside any runtime to a full inbox was dropped"),
        }
    }

    /// Sends the request `make` builds around a [`Reply`], then waits for the answer.
    ///
    /// # Errors
    /// [`Gone`] when the actor is gone or dropped the request unanswered.
    pub async fn ask<R>(&self, make: impl FnOnce(Reply<R>) -> C) -> Result<R, Gone> {
        let (reply, answer) = oneshot::channel();
        self.send(make(Reply(reply))).await?;
        answer.await.map_err(|_| Gone)
    }

    /// Sends the request `make` builds around a [`Reply`] (waiting for
    /// space), and returns where its answer will come, without waiting for it.
    ///
    /// # Errors
    /// [`Gone`] when the actor is gone.
    pub async fn request<R>(&self, make: impl FnOnce(Reply<R>) -> C) -> Result<oneshot::Receiver<R>, Gone> {
        let (reply, answer) = oneshot::channel();
        self.send(make(Reply(reply))).await?;
        Ok(answer)
    }

    /// Whether the actor reading the inbox is gone.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Messages waiting now.
    pub fn depth(&self) -> usize {
        self.sender.max_capacity() - self.sender.capacity()
    }
}

impl<C> Clone for Inbox<C> {
    fn clone(&self) -> Self {
        Inbox {
            sender: self.sender.clone(),
        }
    }
}

impl<C> fmt::Debug for Inbox<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbox")
            .field("capacity", &self.sender.max_capacity())
            .finish()
    }
}

/// Where an actor sends the answer to a request made with [`Inbox::ask`].
pub struct Reply<R>(oneshot::Sender<R>);

impl<R> Reply<R> {
    /// Answers the request; an asker that stopped waiting is no error.
    pub fn send(self, answer: R) {
        let _ = self.0.send(answer);
    }
}

impl<R> fmt::Debug for Reply<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Reply")
    }
}

/// Posts a message to an inbox if dropped before [`PostOnDrop::disarm`]: the
/// undo of a request whose asker may stop waiting for the answer (a join
/// abandoned by a session that stopped meanwhile is left again).
pub struct PostOnDrop<'a, C: Send + 'static> {
    inbox: &'a Inbox<C>,
    message: Option<C>,
}

impl<'a, C: Send + 'static> PostOnDrop<'a, C> {
    /// Posts `message` to `inbox` when dropped, unless disarmed first.
    pub fn new(inbox: &'a Inbox<C>, message: C) -> Self {
        PostOnDrop {
            inbox,
            message: Some(message),
        }
    }

    /// The request was answered: nothing to undo.
    pub fn disarm(mut self) {
        self.message = None;
    }
}

impl<C: Send + 'static> Drop for PostOnDrop<'_, C> {
    fn drop(&mut self) {
        if let Some(message) = self.message.take() {
            self.inbox.post(message);
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio_stream::StreamExt;

    use super::*;

    #[tokio::test]
    async fn bounded_posted_and_asked() {
        let (inbox, mut mailbox) = inbox::<(u32, Option<Reply<u32>>)>(1);
        inbox.try_send((1, None)).unwrap();
        assert!(matches!(inbox.try_send((2, None)), Err(TrySendError::Full(_))));
        assert_eq!(inbox.depth(), 1);
        inbox.post((3, None));
        assert_eq!(mailbox.next().await.unwrap().0, 1);
        assert_eq!(
            mailbox.next().await.unwrap().0,
            3,
            "the posted message arrives once there is space"
        );
        let asker = tokio::spawn({
            let inbox = inbox.clone();
            async move { inbox.ask(|reply| (4, Some(reply))).await }
        });
        let (n, reply) = mailbox.next().await.unwrap();
        reply.unwrap().send(n * 10);
        assert_eq!(asker.await.unwrap(), Ok(40));
        drop(mailbox);
        assert_eq!(inbox.send((5, None)).await, Err(Gone));
    }

    #[tokio::test]
    async fn a_watched_mailbox_records_its_fullest() {
        let fill = Arc::new(PeakFill::default());
        let (inbox, mut mailbox) = watched_inbox::<u32>(4, fill.clone());
        for n in 0..3 {
            inbox.try_send(n).unwrap();
        }
        mailbox.next().await.unwrap();
        mailbox.next().await.unwrap();
        assert_eq!(fill.take(), 75.0, "3 of 4 when the first was taken");
        assert_eq!(fill.take(), 0.0);
    }
}
