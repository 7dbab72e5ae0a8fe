//! The library's client over WebSocket: the connection's messages as the
//! length-prefixed frames [`Client`] reads and writes, so every client
//! feature (and `loadtest --transport ws`) works over either transport.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use futures_util::Stream;
use futures_util::StreamExt;
use futures_util::stream::SplitStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use super::{SUBPROTOCOL, SinkWriter};
use crate::client::{Client, ClientError};

/// Connects to the WebSocket listener at `addr` (plain `ws://`), offering
/// [`SUBPROTOCOL`] and no `Origin` (as a program, not a browser).
///
/// # Errors
/// The connection or the handshake failed.
pub async fn connect(addr: SocketAddr) -> Result<Client, ClientError> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    connect_over(stream, addr, None).await
}

/// As [`connect`], over `stream` (already connected to `addr`), with an `Origin` if given.
///
/// # Errors
/// The handshake failed.
pub async fn connect_over<S>(stream: S, addr: SocketAddr, origin: Option<&str>) -> Result<Client, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut request = super::url(addr, false).into_client_request().map_err(handshake_error)?;
    let headers = request.headers_mut();
    headers.insert("sec-websocket-protocol", HeaderValue::from_static(SUBPROTOCOL));
    if let Some(origin) = origin {
        headers.insert("origin", HeaderValue::from_str(origin).map_err(io::Error::other)?);
    }
    let (socket, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .map_err(handshake_error)?;
    let (sink, messages) = socket.split();
    Ok(Client::over(ByteReader::new(messages), SinkWriter::new(sink)))
}

fn handshake_error(error: tokio_tungstenite::tungstenite::Error) -> ClientError {
    ClientError::Io(io::Error::other(error))
}

/// The server's binary messages as length-prefixed frames.
pub struct ByteReader<S> {
    messages: SplitStream<WebSocketStream<S>>,
    prefix: [u8; 4],
    prefix_at: usize,
    body: Bytes,
}

impl<S> ByteReader<S> {
    fn new(messages: SplitStream<WebSocketStream<S>>) -> Self {
        ByteReader {
            messages,
            prefix: [0; 4],
            prefix_at: 4,
            body: Bytes::new(),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for ByteReader<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.prefix_at < 4 {
                let at = self.prefix_at;
                let n = (4 - at).min(buf.remaining());
                buf.put_slice(&self.prefix[at..at + n]);
                self.prefix_at += n;
                return Poll::Ready(Ok(()));
            }
            if !self.body.is_empty() {
                let n = self.body.len().min(buf.remaining());
                buf.put_slice(&self.body[..n]);
                self.body.advance(n);
                return Poll::Ready(Ok(()));
            }
            match Pin::new(&mut self.messages).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(Message::Binary(body)))) => {
                    let len = u32::try_from(body.len()).map_err(io::Error::other)?;
                    self.prefix = len.to_be_bytes();
                    self.prefix_at = 0;
                    self.body = body;
                }
                Poll::Ready(Some(Ok(Message::Text(_)))) => {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, "a text message")));
                }
                Poll::Ready(Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)))) => {}
                Poll::Ready(None | Some(Ok(Message::Close(_)))) => return Poll::Ready(Ok(())),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(io::Error::other(e))),
            }
        }
    }
}
