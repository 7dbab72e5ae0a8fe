//! The reading side of a client: events in order, and replies found by
//! their request id while other frames wait in a bounded stash.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::AsyncRead;
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};

use super::{ClientError, ClientReader, MAX_STASHED, Reply};
use crate::protocol::FrameCodec;
use crate::protocol::pb::{self, ServerMessage};

/// What a [`ClientReader`] is made of, for a caller that goes on reading the
/// frames itself (e.g. viewing them in place instead of decoding each one).
pub struct ReaderParts {
    /// The connection's frames, undecoded: its read buffer and the frame
    /// codec's state are those of the reader, so no byte is lost or repeated.
    pub frames: FramedRead<Box<dyn AsyncRead + Send + Unpin>, LengthDelimitedCodec>,
    /// Messages read while waiting for a reply and not yet returned, oldest
    /// first; they come before the frames.
    pub stashed: VecDeque<ServerMessage>,
}

impl ClientReader {
    /// Takes the reader apart without losing anything it has read: what
    /// [`ClientReader::next_message`] would have returned next is the first
    /// stashed message, then the first of the frames.
    pub fn into_parts(self) -> ReaderParts {
        ReaderParts {
            frames: self.frames.map_decoder(FrameCodec::into_frames),
            stashed: self.stash,
        }
    }

    /// See [`Client::next_message`].
    ///
    /// # Errors
    /// [`ClientError::Closed`] at the end of the stream.
    pub async fn next_message(&mut self) -> Result<ServerMessage, ClientError> {
        if let Some(message) = self.stash.pop_front() {
            return Ok(message);
        }
        self.read().await
    }

    /// See [`Client::next_event`].
    ///
    /// # Errors
    /// [`ClientError::Timeout`] when nothing came.
    pub async fn next_event(&mut self, timeout: Duration) -> Result<ServerMessage, ClientError> {
        tokio::time::timeout(timeout, self.next_message())
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
    }

    /// The next frame, passing over the server's Heartbeats (keeping the
    /// connection alive is the application's part: it sends Ping).
    async fn read(&mut self) -> Result<ServerMessage, ClientError> {
        loop {
            match self.frames.next().await {
                Some(frame) => {
                    let message = frame??;
                    if !matches!(message.body, Some(Reply::Heartbeat(_))) {
                        return Ok(message);
                    }
                }
                None => return Err(ClientError::Closed),
            }
        }
    }

    /// Reads until the frame echoing `request_id`, keeping other frames for later.
    pub(super) async fn reply_to(&mut self, request_id: u64) -> Result<Reply, ClientError> {
        if let Some(i) = self.stash.iter().position(|m| m.request_id == request_id) {
            return self.stash.remove(i).map_or(Err(ClientError::Closed), into_reply);
        }
        loop {
            let message = self.read().await?;
            if message.request_id == request_id {
                return into_reply(message);
            }
            // A fatal error for the connection, answering nothing in particular.
            if let Some(Reply::Error(e)) = &message.body
                && message.request_id == 0
            {
                return Err(server_error(e, 0));
            }
            if self.stash.len() >= MAX_STASHED {
                return Err(ClientError::TooManyEvents);
            }
            self.stash.push_back(message);
        }
    }
}

pub(super) fn into_reply(message: ServerMessage) -> Result<Reply, ClientError> {
    match message.body {
        Some(Reply::Error(e)) => Err(server_error(&e, message.request_id)),
        Some(body) => Ok(body),
        None => Err(ClientError::Unexpected(Box::new(message))),
    }
}

pub(super) fn server_error(error: &pb::Error, request_id: u64) -> ClientError {
    ClientError::Server {
        code: error.code(),
        message: error.message.clone(),
        request_id,
    }
}

pub(super) fn unexpected(body: Reply) -> ClientError {
    ClientError::Unexpected(Box::new(ServerMessage {
        request_id: 0,
        body: Some(body),
    }))
}
