//! The client's side of a session's life past one connection: resuming a
//! session with its resume token, and leaving for good with Goodbye.

use super::reader::unexpected;
use super::{Client, ClientError, Reply, Request};
use crate::protocol::{PROTOCOL_VERSION, pb};

impl Client {
    /// Says Hello with `resume_token` (a previous `Welcome.resume_token`) to
    /// take that session back; `Welcome.resumed` says whether it did (if
    /// not, this is a fresh session under `name`).
    ///
    /// # Errors
    /// [`ClientError::Server`] with UNAUTHENTICATED, NAME_TAKEN (the name is
    /// held by a session the token could not resume), …
    pub async fn hello_resuming(
        &mut self,
        name: &str,
        token: &str,
        resume_token: &str,
    ) -> Result<pb::Welcome, ClientError> {
        let hello = pb::Hello {
            protocol_version: PROTOCOL_VERSION,
            name: name.into(),
            token: token.into(),
            resume_token: resume_token.into(),
        };
        match self.request(Request::Hello(hello)).await? {
            Reply::Welcome(welcome) => Ok(welcome),
            other => Err(unexpected(other)),
        }
    }

    /// Leaves for good: says Goodbye (the server ends the session at once,
    /// holding nothing for a resume) and waits, within the request timeout,
    /// for the server to close the connection.
    ///
    /// # Errors
    /// [`ClientError::Timeout`] if the connection stayed open.
    pub async fn goodbye(mut self) -> Result<(), ClientError> {
        self.send(Request::Goodbye(pb::Goodbye {})).await?;
        let timeout = self.request_timeout;
        let closed = async {
            loop {
                if let Err(ClientError::Closed | ClientError::Io(_)) = self.next_message().await {
                    return;
                }
            }
        };
        tokio::time::timeout(timeout, closed)
            .await
            .map_err(|_| ClientError::Timeout(timeout))
    }
}
