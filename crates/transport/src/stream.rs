//! The byte stream behind every flow and control channel, and the adapter
//! that turns an HTTP/2 stream pair into one.

use bytes::{Buf, Bytes};
use std::any::Any;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Anything that reads and writes bytes and can be sent between tasks.
/// (`Any` lets [`crate::splice`] recognise the transport streams that
/// implement `ChunkStream` behind a [`BoxStream`].)
pub trait AsyncStream: AsyncRead + AsyncWrite + Send + Unpin + Any {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + Any> AsyncStream for T {}

/// A stream that hands received bytes over and takes bytes to send as
/// [`Bytes`], without copying them: QUIC and HTTP/2 streams keep data in
/// `Bytes` anyway, and `AsyncRead`/`AsyncWrite` copy it into and out of
/// the caller's buffer.
pub(crate) trait ChunkStream: AsyncStream {
    /// Fills the front of `bufs` with received chunks and says how many;
    /// 0 at the end of the stream.
    fn poll_read_chunks(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &mut [Bytes],
    ) -> Poll<io::Result<usize>>;
    /// Takes at least one byte from the front of `chunk` (as much as flow
    /// control allows) and leaves the rest in it.
    fn poll_write_chunk(&mut self, cx: &mut Context<'_>, chunk: &mut Bytes)
        -> Poll<io::Result<()>>;
}

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

impl H2Stream {
    /// The next received DATA frame, `None` at the end of the stream.
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
        if !self.pending.is_empty() {
            return Poll::Ready(Ok(Some(std::mem::take(&mut self.pending))));
        }
        loop {
            match &mut self.recv {
                Recv::Eof => return Poll::Ready(Ok(None)),
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
                        if !data.is_empty() {
                            return Poll::Ready(Ok(Some(data)));
                        }
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

    /// How many of `want` bytes h2 lets this stream send now (at least 1).
    fn poll_send_capacity(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<io::Result<usize>> {
        if self.shut {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        self.send.reserve_capacity(want);
        loop {
            match ready!(self.send.poll_capacity(cx)) {
                Some(Ok(0)) => continue,
                Some(Ok(n)) => return Poll::Ready(Ok(n.min(want))),
                Some(Err(e)) => return Poll::Ready(Err(h2_to_io(e))),
                None => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            }
        }
    }
}

impl AsyncRead for H2Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(mut data) = ready!(self.poll_data(cx))? {
            let n = data.len().min(buf.remaining());
            buf.put_slice(&data[..n]);
            data.advance(n);
            self.pending = data;
        }
        Poll::Ready(Ok(()))
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
        let n = ready!(self.poll_send_capacity(cx, buf.len()))?;
        self.send
            .send_data(Bytes::copy_from_slice(&buf[..n]), false)
            .map_err(h2_to_io)?;
        Poll::Ready(Ok(n))
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

impl ChunkStream for H2Stream {
    fn poll_read_chunks(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &mut [Bytes],
    ) -> Poll<io::Result<usize>> {
        let Some(first) = bufs.first_mut() else {
            return Poll::Ready(Ok(0));
        };
        match ready!(self.poll_data(cx))? {
            Some(data) => {
                *first = data;
                Poll::Ready(Ok(1))
            }
            None => Poll::Ready(Ok(0)),
        }
    }

    fn poll_write_chunk(
        &mut self,
        cx: &mut Context<'_>,
        chunk: &mut Bytes,
    ) -> Poll<io::Result<()>> {
        if chunk.is_empty() {
            return Poll::Ready(Ok(()));
        }
        let n = ready!(self.poll_send_capacity(cx, chunk.len()))?;
        self.send
            .send_data(chunk.split_to(n), false)
            .map_err(h2_to_io)?;
        Poll::Ready(Ok(()))
    }
}
