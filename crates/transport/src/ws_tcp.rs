//! A TCP byte stream carried over a WebSocket, as cloudflared carries
//! `access tcp|ssh` and its `ssh://`/`tcp://`/`rdp://` origins: each
//! binary message is a run of the stream's bytes (text messages are taken
//! as bytes too). Used by `burrow access` (the client end) and by the
//! connector (the origin end).
//!
//! Bounds: a message or frame over [`MAX_MESSAGE`] ends the stream (the
//! peer chooses message sizes; nothing it sends makes us buffer more), and
//! writes wait once [`MAX_WRITE_BUFFER`] is queued.
//!
//! Ends: a WebSocket has no half-close, so an empty binary message stands
//! for one (burrow's convention; a peer that does not know it only sees an
//! empty message): the local side's EOF sends it, and receiving it shuts
//! the local side's writing while the other direction goes on, as a TCP
//! FIN does. When both directions have ended, a Close ends the WebSocket.
//! A peer's Close (or its connection's end) ends both directions at once.

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// The largest message (and frame) taken from a peer.
pub const MAX_MESSAGE: usize = 1 << 20;
/// Queued outgoing bytes before a send waits.
pub const MAX_WRITE_BUFFER: usize = 1 << 20;
/// How much is read from the local side into one message.
const CHUNK: usize = 32 * 1024;
/// How long the peer has to answer our Close.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// The WebSocket settings both ends use.
#[must_use]
pub fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
        .write_buffer_size(CHUNK * 2)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
}

/// Bytes carried by [`bridge`], each way.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Carried {
    /// Local side → WebSocket.
    pub sent: u64,
    /// WebSocket → local side.
    pub received: u64,
}

/// How the peer's direction ended.
enum PeerEnd {
    /// An empty binary message: no more bytes, but it still reads ours.
    Eof,
    /// A Close, or its connection ended: nothing more either way.
    Closed,
}

/// Copies `local` ↔ `ws` until both directions end (see the module docs).
///
/// # Errors
/// The first transport error of either side.
pub async fn bridge<S, L>(ws: WebSocketStream<S>, local: L) -> std::io::Result<Carried>
where
    S: AsyncRead + AsyncWrite + Unpin,
    L: AsyncRead + AsyncWrite + Unpin,
{
    let (mut sink, mut stream) = ws.split();
    let (mut rd, mut wr) = tokio::io::split(local);
    let mut carried = Carried::default();
    let sent = &mut carried.sent;
    let received = &mut carried.received;
    let up = async {
        let mut buf = BytesMut::with_capacity(CHUNK);
        loop {
            buf.reserve(CHUNK);
            let n = rd.read_buf(&mut buf).await?;
            *sent += n as u64;
            // n == 0: the empty message is our EOF (a TCP half-close).
            sink.send(Message::Binary(buf.split().freeze()))
                .await
                .map_err(std::io::Error::other)?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
        }
    };
    let down = async {
        let end = loop {
            let msg = match stream.next().await {
                None => break PeerEnd::Closed,
                Some(Ok(m)) => m,
                // A peer that just closes its connection has ended the
                // stream as surely as with a Close.
                Some(Err(
                    WsError::ConnectionClosed
                    | WsError::AlreadyClosed
                    | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake),
                )) => break PeerEnd::Closed,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
            };
            match msg {
                Message::Binary(b) if b.is_empty() => break PeerEnd::Eof,
                // Flushed message by message: a buffered local side
                // (stdout) must not hold bytes the other end waits for.
                Message::Binary(b) => {
                    *received += b.len() as u64;
                    wr.write_all(&b).await?;
                    wr.flush().await?;
                }
                Message::Text(t) => {
                    *received += t.len() as u64;
                    wr.write_all(t.as_bytes()).await?;
                    wr.flush().await?;
                }
                Message::Close(_) => break PeerEnd::Closed,
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        };
        wr.shutdown().await?;
        Ok::<_, std::io::Error>(end)
    };
    let peer_done = {
        tokio::pin!(up, down);
        tokio::select! {
            r = &mut down => {
                // The peer is done sending; if it still reads, ours go on
                // until our side's EOF.
                if let PeerEnd::Eof = r? {
                    up.await?;
                }
                false
            }
            r = &mut up => {
                // Ours are done; theirs go on as long as they last.
                r?;
                matches!(down.await?, PeerEnd::Closed)
            }
        }
    };
    // Both directions ended: close, and give the peer a moment to answer.
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        let _ = sink.send(Message::Close(None)).await;
        if !peer_done {
            while let Some(Ok(m)) = stream.next().await {
                if m.is_close() {
                    break;
                }
            }
        }
        let _ = sink.close().await;
    })
    .await;
    Ok(carried)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::Role;

    /// Bytes written on one end's local side arrive intact at the other's,
    /// both ways at once, and an EOF ends both bridges.
    #[tokio::test]
    async fn bytes_cross_intact_both_ways_and_an_eof_ends_it() {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let ws_a = WebSocketStream::from_raw_socket(a, Role::Client, Some(config())).await;
        let ws_b = WebSocketStream::from_raw_socket(b, Role::Server, Some(config())).await;
        let (mut app_a, local_a) = tokio::io::duplex(64 * 1024);
        let (mut app_b, local_b) = tokio::io::duplex(64 * 1024);
        let ta = tokio::spawn(bridge(ws_a, local_a));
        let tb = tokio::spawn(bridge(ws_b, local_b));
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let send = data.clone();
        let writer = tokio::spawn(async move {
            app_a.write_all(&send).await.unwrap();
            app_a.shutdown().await.unwrap();
            let mut back = Vec::new();
            app_a.read_to_end(&mut back).await.unwrap();
            back
        });
        let mut got = Vec::new();
        app_b.write_all(b"hello from b").await.unwrap();
        app_b.shutdown().await.unwrap();
        // b's EOF came first; a's bytes keep coming after it (half-close).
        app_b.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), data.len());
        assert!(got == data, "bytes differ");
        let back = writer.await.unwrap();
        assert_eq!(back, b"hello from b");
        let ca = ta.await.unwrap().unwrap();
        let cb = tb.await.unwrap().unwrap();
        assert_eq!(ca.sent, data.len() as u64);
        assert_eq!(cb.received, data.len() as u64);
    }

    /// A peer's oversized message ends the stream instead of being held.
    #[tokio::test]
    async fn an_oversized_message_is_refused() {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let big = WebSocketConfig::default()
            .max_message_size(None)
            .max_frame_size(None);
        let mut ws_a = WebSocketStream::from_raw_socket(a, Role::Client, Some(big)).await;
        let ws_b = WebSocketStream::from_raw_socket(b, Role::Server, Some(config())).await;
        let (_app_b, local_b) = tokio::io::duplex(1024);
        let tb = tokio::spawn(bridge(ws_b, local_b));
        let _ = ws_a
            .send(Message::Binary(vec![0u8; MAX_MESSAGE + 1].into()))
            .await;
        let r = tokio::time::timeout(Duration::from_secs(10), tb)
            .await
            .expect("the bridge ends")
            .unwrap();
        assert!(r.is_err(), "{r:?}");
    }
}
