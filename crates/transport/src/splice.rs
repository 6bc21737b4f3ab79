//! Copying a flow's bytes both ways between two streams, with half-close.
//!
//! Unlike `tokio::io::copy_bidirectional`, each direction's buffer starts
//! small ([`MIN_BUF`]) and grows by four times, up to [`MAX_BUF`], only when
//! a read fills it: an idle or chatty connection holds a few KiB, a bulk
//! transfer gets large buffers after its first reads. A direction with
//! nothing to read gives a small buffer back, so an idle connection holds
//! no buffer at all (see `bench/RESULTS.md`).
//!
//! When one side's read ends (EOF), the other side's write half is shut
//! down and the opposite direction keeps flowing until it ends too.
//!
//! Bytes move as [`Bytes`] chunks. A QUIC or HTTP/2 stream (also behind a
//! [`BoxStream`]) gives its received chunks to the other side as they are,
//! written with one vectored write, and takes what was read for it without
//! copying it into a send buffer of its own: two copies fewer per byte
//! than `AsyncRead`/`AsyncWrite` (the QUIC bulk profile's `memmove` went
//! from 12.7 % to 7.2 % of the samples, `bench/RESULTS.md`).

use crate::quic::QuicStream;
use crate::stream::{AsyncStream, BoxStream, ChunkStream, H2Stream};
use bytes::{Buf, Bytes, BytesMut};
use std::any::Any;
use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

/// First buffer size of each direction.
pub const MIN_BUF: usize = 4 * 1024;
/// Largest buffer size of each direction. 16 KiB, not 64: with 64 KiB reads
/// the edge app path spent 380-428 ms of CPU per GB against 288-305 with
/// 16 KiB (fewer system calls, but each copy runs out of the cache and the
/// receiver waits for bigger writes); tunnels measured the same either way
/// (`bench/RESULTS.md`, 2026-12-03).
pub const MAX_BUF: usize = 16 * 1024;
/// Chunks taken per read from a QUIC or HTTP/2 stream, and handed to one
/// vectored write (a QUIC chunk is one STREAM frame, up to ~1.4 KB).
const CHUNKS: usize = 16;

/// One end of a splice. QUIC and HTTP/2 streams trade [`Bytes`]: what is
/// read from them is written on without a copy into a buffer of ours, and
/// what is read for them is handed over without a copy into theirs.
enum End<'a> {
    Chunks(&'a mut dyn ChunkStream),
    Bytes(&'a mut dyn AsyncStream),
}

/// Which kind of end `s` is, looking through boxes. A wrapper around a
/// QUIC or HTTP/2 stream (the egress protocol sniffer, say) hides it: the
/// flow is then copied as bytes, correct but with the copies.
fn end(s: &mut dyn AsyncStream) -> End<'_> {
    let s = match downcast::<BoxStream>(s) {
        Ok(inner) => return end(inner.as_mut()),
        Err(s) => s,
    };
    let s = match downcast::<QuicStream>(s) {
        Ok(q) => return End::Chunks(q),
        Err(s) => s,
    };
    match downcast::<H2Stream>(s) {
        Ok(h) => End::Chunks(h),
        Err(s) => End::Bytes(s),
    }
}

/// `s` as a `T`, or `s` back when it is something else.
fn downcast<T: Any>(s: &mut dyn AsyncStream) -> Result<&mut T, &mut dyn AsyncStream> {
    // Checked first, then taken: a failed `downcast_mut` would keep `s`
    // borrowed for the `Err` arm.
    if !(&*s as &dyn Any).is::<T>() {
        return Err(s);
    }
    let any: &mut dyn Any = s;
    Ok(any.downcast_mut::<T>().expect("the type was checked above"))
}

impl End<'_> {
    fn io(&mut self) -> Pin<&mut dyn AsyncStream> {
        match self {
            End::Chunks(c) => Pin::new(&mut **c as &mut dyn AsyncStream),
            End::Bytes(b) => Pin::new(&mut **b),
        }
    }
}

/// One direction's state.
struct Pipe {
    /// Read space when the source is a byte stream; each read is split off
    /// as a chunk, and the space is reused once the chunk is written.
    buf: BytesMut,
    /// Size of the next read from a byte stream.
    size: usize,
    /// Read and not yet written, from `head` on.
    chunks: Vec<Bytes>,
    head: usize,
    eof: bool,
    shut: bool,
    unflushed: bool,
    read: u64,
    total: u64,
}

impl Default for Pipe {
    fn default() -> Self {
        Pipe {
            buf: BytesMut::new(),
            size: MIN_BUF,
            chunks: Vec::new(),
            head: 0,
            eof: false,
            shut: false,
            unflushed: false,
            read: 0,
            total: 0,
        }
    }
}

impl Pipe {
    /// Moves bytes from `r` to `w` until `r` is pending or finished.
    /// Ready(Ok) once EOF was read, everything written, and `w` shut down.
    fn poll_copy(
        &mut self,
        cx: &mut Context<'_>,
        r: &mut End<'_>,
        w: &mut End<'_>,
    ) -> Poll<io::Result<u64>> {
        loop {
            if self.head == self.chunks.len() && !self.eof {
                match self.poll_fill(cx, r) {
                    Poll::Pending => {
                        if self.unflushed {
                            ready!(w.io().poll_flush(cx))?;
                            self.unflushed = false;
                        }
                        // Nothing to read: a small buffer is given back,
                        // so an idle flow holds none (a bulk one, grown
                        // past MIN_BUF, keeps its own).
                        if self.size <= MIN_BUF {
                            self.buf = BytesMut::new();
                            self.chunks = Vec::new();
                        }
                        return Poll::Pending;
                    }
                    Poll::Ready(res) => res?,
                }
            }
            while self.head < self.chunks.len() {
                let n = ready!(self.poll_drain(cx, w))?;
                self.total += n as u64;
                self.unflushed = true;
            }
            if self.eof {
                if !self.shut {
                    ready!(w.io().poll_shutdown(cx))?;
                    self.shut = true;
                    // Release the buffers: this direction is over.
                    self.buf = BytesMut::new();
                    self.chunks = Vec::new();
                }
                return Poll::Ready(Ok(self.total));
            }
        }
    }

    /// Reads the next chunks into `self.chunks` (none at EOF); the
    /// written ones are dropped first, and none are left when pending.
    fn poll_fill(&mut self, cx: &mut Context<'_>, r: &mut End<'_>) -> Poll<io::Result<()>> {
        self.chunks.clear();
        self.head = 0;
        let n = match r {
            End::Bytes(r) => {
                if self.buf.capacity() < self.size {
                    // Reclaims the space in place when every chunk split
                    // off it has been written and dropped.
                    self.buf.reserve(self.size);
                }
                let n = ready!(tokio_util::io::poll_read_buf(
                    Pin::new(&mut **r),
                    cx,
                    &mut self.buf
                ))?;
                if n >= self.size && self.size < MAX_BUF {
                    self.size = (self.size * 4).min(MAX_BUF);
                }
                if n > 0 {
                    self.chunks.push(self.buf.split().freeze());
                }
                n
            }
            End::Chunks(r) => {
                self.chunks.resize(CHUNKS, Bytes::new());
                let k = match r.poll_read_chunks(cx, &mut self.chunks) {
                    Poll::Ready(k) => k?,
                    Poll::Pending => {
                        self.chunks.clear();
                        return Poll::Pending;
                    }
                };
                self.chunks.truncate(k);
                self.chunks.iter().map(Bytes::len).sum()
            }
        };
        if n == 0 {
            self.eof = true;
        }
        self.read += n as u64;
        Poll::Ready(Ok(()))
    }

    /// Writes from the front of the unwritten chunks; how many bytes went.
    fn poll_drain(&mut self, cx: &mut Context<'_>, w: &mut End<'_>) -> Poll<io::Result<usize>> {
        let n = match w {
            End::Chunks(w) => {
                // The stream takes its bytes off the front of the chunk.
                let chunk = &mut self.chunks[self.head];
                let before = chunk.len();
                ready!(w.poll_write_chunk(cx, chunk))?;
                before - chunk.len()
            }
            End::Bytes(w) => {
                let pending = &self.chunks[self.head..];
                let n = if pending.len() > 1 && w.is_write_vectored() {
                    let mut slices = [IoSlice::new(&[]); CHUNKS];
                    let k = pending.len().min(CHUNKS);
                    for (slice, chunk) in slices.iter_mut().zip(pending) {
                        *slice = IoSlice::new(chunk);
                    }
                    ready!(Pin::new(&mut **w).poll_write_vectored(cx, &slices[..k]))?
                } else {
                    ready!(Pin::new(&mut **w).poll_write(cx, &pending[0]))?
                };
                if n == 0 && pending.iter().any(|c| !c.is_empty()) {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                let mut left = n;
                for chunk in &mut self.chunks[self.head..] {
                    let k = left.min(chunk.len());
                    chunk.advance(k);
                    left -= k;
                    if left == 0 {
                        break;
                    }
                }
                n
            }
        };
        while self.chunks.get(self.head).is_some_and(Bytes::is_empty) {
            self.head += 1;
        }
        Poll::Ready(Ok(n))
    }
}

/// Copies `a → b` and `b → a` until both directions reach EOF. Returns the
/// bytes copied `(a → b, b → a)`.
///
/// # Errors
/// The first I/O error of either side; the other direction is abandoned.
pub async fn splice<A, B>(a: &mut A, b: &mut B) -> io::Result<(u64, u64)>
where
    A: AsyncStream,
    B: AsyncStream,
{
    splice_inner(a, b, None).await
}

/// [`splice`], ended with [`io::ErrorKind::TimedOut`] when no byte moved
/// either way for `idle`. Costs one clock read per batch of bytes moved
/// and one timer per flow.
///
/// # Errors
/// As [`splice`], and `TimedOut` after `idle` without traffic.
pub async fn splice_idle<A, B>(a: &mut A, b: &mut B, idle: Duration) -> io::Result<(u64, u64)>
where
    A: AsyncStream,
    B: AsyncStream,
{
    splice_inner(a, b, Some(idle)).await
}

async fn splice_inner(
    a: &mut dyn AsyncStream,
    b: &mut dyn AsyncStream,
    idle: Option<Duration>,
) -> io::Result<(u64, u64)> {
    let (mut a, mut b) = (end(a), end(b));
    let mut ab = Pipe::default();
    let mut ba = Pipe::default();
    let (mut ab_done, mut ba_done) = (None, None);
    let timer = tokio::time::sleep(idle.unwrap_or(Duration::MAX / 4));
    tokio::pin!(timer);
    let mut moved = 0u64;
    let mut last = tokio::time::Instant::now();
    poll_fn(|cx| {
        if ab_done.is_none() {
            if let Poll::Ready(r) = ab.poll_copy(cx, &mut a, &mut b) {
                ab_done = Some(r?);
            }
        }
        if ba_done.is_none() {
            if let Poll::Ready(r) = ba.poll_copy(cx, &mut b, &mut a) {
                ba_done = Some(r?);
            }
        }
        if let (Some(x), Some(y)) = (ab_done, ba_done) {
            return Poll::Ready(Ok((x, y)));
        }
        if let Some(idle) = idle {
            let now_moved = ab.read + ba.read + ab.total + ba.total;
            if now_moved != moved {
                moved = now_moved;
                last = tokio::time::Instant::now();
            }
            // The timer is reset only when it fires early, not per byte.
            while timer.as_mut().poll(cx).is_ready() {
                if last + idle <= tokio::time::Instant::now() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no traffic either way for {idle:?}"),
                    )));
                }
                timer.as_mut().reset(last + idle);
            }
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A pattern no two offsets of which repeat within a flow, so a lost,
    /// doubled or reordered chunk shows.
    fn pattern(len: usize, seed: u32) -> Vec<u8> {
        (0..len as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8)
            .collect()
    }

    /// Sends `data` into `s`, half-closes, and reads the whole answer.
    async fn send_and_read_back(mut s: BoxStream, data: Vec<u8>) -> Vec<u8> {
        let (mut r, mut w) = tokio::io::split(&mut s);
        let writer = async {
            w.write_all(&data).await.unwrap();
            w.shutdown().await.unwrap();
        };
        let mut back = Vec::new();
        let reader = r.read_to_end(&mut back);
        let ((), n) = tokio::join!(writer, reader);
        n.unwrap();
        back
    }

    /// An origin that answers each byte with its complement, then EOF.
    fn complement_origin() -> tokio::io::DuplexStream {
        let (near, mut far) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            let mut b = vec![0u8; 10_000];
            loop {
                let n = far.read(&mut b).await.unwrap();
                if n == 0 {
                    break;
                }
                b[..n].iter_mut().for_each(|x| *x = !*x);
                far.write_all(&b[..n]).await.unwrap();
            }
            far.shutdown().await.unwrap();
        });
        near
    }

    #[tokio::test]
    async fn quic_streams_splice_by_chunks_to_byte_streams_and_to_each_other() {
        let pki = crate::pki::EdgePki::ephemeral("burrow.internal").unwrap();
        let trust = crate::pki::EdgeTrust::new(&pki.ca_pem, "burrow.internal").unwrap();
        let (edge1, mut conn1, _ep1) = crate::quic::testing::loopback(&pki, &trust).await.unwrap();
        let (edge2, mut conn2, _ep2) = crate::quic::testing::loopback(&pki, &trust).await.unwrap();
        let data = pattern(3_000_000, 7);
        let want: Vec<u8> = data.iter().map(|x| !x).collect();

        // QUIC stream ↔ byte stream (the connector's flow to its origin).
        let direct = tokio::spawn(async move {
            let mut s = conn1.accept_stream().await.unwrap();
            assert!(matches!(end(&mut s), End::Chunks(_)));
            let mut origin = complement_origin();
            (splice(&mut s, &mut origin).await.unwrap(), conn1)
        });
        let back = send_and_read_back(edge1.open_stream().await.unwrap(), data.clone()).await;
        assert!(back == want, "bytes changed on the way");
        let ((up, down), mut conn1) = direct.await.unwrap();
        assert_eq!((up, down), (3_000_000, 3_000_000));

        // QUIC stream ↔ QUIC stream (a relay between two connections).
        // Each task hands its connections back, so they stay open until
        // the last bytes have arrived.
        let relay = tokio::spawn(async move {
            let mut a = conn1.accept_stream().await.unwrap();
            let mut b = edge2.open_stream().await.unwrap();
            (splice(&mut a, &mut b).await.unwrap(), conn1, edge2)
        });
        let origin = tokio::spawn(async move {
            let mut s = conn2.accept_stream().await.unwrap();
            let mut origin = complement_origin();
            (splice(&mut s, &mut origin).await.unwrap(), conn2)
        });
        let back = send_and_read_back(edge1.open_stream().await.unwrap(), data).await;
        assert!(back == want, "bytes changed through the relay");
        assert_eq!(relay.await.unwrap().0, (3_000_000, 3_000_000));
        assert_eq!(origin.await.unwrap().0, (3_000_000, 3_000_000));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_flow_times_out_and_a_busy_one_does_not() {
        let (mut c1, mut e1) = tokio::io::duplex(1024);
        let (mut o1, mut e2) = tokio::io::duplex(1024);
        let idle = Duration::from_secs(10);
        let flow = tokio::spawn(async move { splice_idle(&mut e1, &mut e2, idle).await });
        // Traffic every 6 s keeps it open past several idle periods.
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_secs(6)).await;
            c1.write_all(b"x").await.unwrap();
            let mut b = [0u8; 1];
            o1.read_exact(&mut b).await.unwrap();
        }
        assert!(!flow.is_finished());
        tokio::time::sleep(Duration::from_secs(11)).await;
        let err = flow.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn copies_both_ways_with_half_close() {
        let (mut client, mut edge_side) = tokio::io::duplex(1024);
        let (mut origin_side, mut origin) = tokio::io::duplex(1024);
        let proxy = tokio::spawn(async move { splice(&mut edge_side, &mut origin_side).await });
        let up: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let up2 = up.clone();
        let writer = tokio::spawn(async move {
            client.write_all(&up2).await.unwrap();
            client.shutdown().await.unwrap();
            let mut back = Vec::new();
            client.read_to_end(&mut back).await.unwrap();
            back
        });
        let mut got = Vec::new();
        origin.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, up);
        // After the client's half-close the origin can still answer.
        origin.write_all(b"reply after EOF").await.unwrap();
        origin.shutdown().await.unwrap();
        assert_eq!(writer.await.unwrap(), b"reply after EOF");
        let (ab, ba) = proxy.await.unwrap().unwrap();
        assert_eq!((ab, ba), (300_000, 15));
    }

    #[tokio::test]
    async fn buffers_grow_only_when_filled_and_go_back_when_done() {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let (mut src, mut r) = tokio::io::duplex(1 << 20);
        let (mut w, mut sink) = tokio::io::duplex(1 << 20);
        src.write_all(&[1u8; 100]).await.unwrap();
        let mut p = Pipe::default();
        let (mut re, mut we) = (end(&mut r), end(&mut w));
        assert!(p.poll_copy(&mut cx, &mut re, &mut we).is_pending());
        // A short read leaves the size small, and an idle direction holds
        // no buffer.
        assert_eq!(p.size, MIN_BUF);
        assert_eq!(p.buf.capacity(), 0);
        let big = vec![2u8; 200_000];
        src.write_all(&big).await.unwrap();
        drop(src);
        assert!(p.poll_copy(&mut cx, &mut re, &mut we).is_ready());
        assert_eq!(p.size, MAX_BUF);
        // EOF released the buffer.
        assert_eq!(p.buf.capacity(), 0);
        drop(w);
        let mut got = Vec::new();
        sink.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), 200_100);
        assert!(got[..100].iter().all(|&b| b == 1) && got[100..] == big[..]);
    }
}
