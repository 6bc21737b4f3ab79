//! The byte stream behind every flow and control channel, and the adapter
//! that turns an HTTP/2 stream pair into one.

use bytes::{Buf, Bytes};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Anything that reads and writes bytes and can be sent between tasks.
pub trait AsyncStream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> AsyncStream for T {}

/// A boxed bidirectional byte stream (one flow, or the control channel).
/// Shutting down the write half is a half-close: the peer reads EOF and may
/// keep writing.
pub type BoxStream = Box<dyn AsyncStream>;

/// Receiving side of an h2 stream: on the edge (client) it first waits for
/// the response headers.
enum Recv {
    Waiting(::h2::client::ResponseFuture),
    Body(::h2::RecvStream),
    Eof,
}

/// One HTTP/2 stream as an `AsyncRead + AsyncWrite`.
///
/// Memory per stream is bounded: at most one received DATA frame is held
/// (flow-control capacity is released as each frame is taken), and writes
/// only hand h2 as many bytes as it granted capacity for.
pub(crate) struct H2Stream {
    send: ::h2::SendStream<Bytes>,
    recv: Recv,
    pending: Bytes,
    shut: bool,
}

impl H2Stream {
    pub(crate) fn client(
        send: ::h2::SendStream<Bytes>,
        resp: ::h2::client::ResponseFuture,
    ) -> Self {
        Self {
            send,
            recv: Recv::Waiting(resp),
            pending: Bytes::new(),
            shut: false,
        }
    }
    pub(crate) fn server(send: ::h2::SendStream<Bytes>, body: ::h2::RecvStream) -> Self {
        Self {
            send,
            recv: Recv::Body(body),
            pending: Bytes::new(),
            shut: false,
        }
    }
}

fn h2_to_io(e: ::h2::Error) -> io::Error {
    if e.is_io() {
        return e
            .into_io()
            .unwrap_or_else(|| io::Error::other("h2 I/O error"));
    }
    match e.reason() {
        Some(::h2::Reason::CANCEL) | Some(::h2::Reason::STREAM_CLOSED) => {
            io::Error::new(io::ErrorKind::ConnectionReset, e)
        }
        _ => io::Error::other(e),
    }
}

impl AsyncRead for H2Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(buf.remaining());
                buf.put_slice(&self.pending[..n]);
                self.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            match &mut self.recv {
                Recv::Eof => return Poll::Ready(Ok(())),
                Recv::Waiting(fut) => {
                    let resp = ready!(Pin::new(fut).poll(cx)).map_err(h2_to_io)?;
                    if resp.status() != http::StatusCode::OK {
                        return Poll::Ready(Err(io::Error::other(format!(
                            "peer answered the stream with HTTP {}",
                            resp.status()
                        ))));
                    }
                    self.recv = Recv::Body(resp.into_body());
                }
                Recv::Body(body) => match ready!(body.poll_data(cx)) {
                    None => self.recv = Recv::Eof,
                    Some(Ok(data)) => {
                        let _ = body.flow_control().release_capacity(data.len());
                        self.pending = data;
                    }
                    Some(Err(e)) => {
                        if e.reason() == Some(::h2::Reason::NO_ERROR) {
                            self.recv = Recv::Eof;
                        } else {
                            return Poll::Ready(Err(h2_to_io(e)));
                        }
                    }
                },
            }
        }
    }
}

impl AsyncWrite for H2Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if self.shut {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        self.send.reserve_capacity(buf.len());
        loop {
            match ready!(self.send.poll_capacity(cx)) {
                Some(Ok(0)) => continue,
                Some(Ok(n)) => {
                    let n = n.min(buf.len());
                    self.send
                        .send_data(Bytes::copy_from_slice(&buf[..n]), false)
                        .map_err(h2_to_io)?;
                    return Poll::Ready(Ok(n));
                }
                Some(Err(e)) => return Poll::Ready(Err(h2_to_io(e))),
                None => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // h2 sends queued DATA as the connection task gets to it.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.shut {
            self.shut = true;
            self.send.send_data(Bytes::new(), true).map_err(h2_to_io)?;
        }
        Poll::Ready(Ok(()))
    }
}
