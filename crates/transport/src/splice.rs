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

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// First buffer size of each direction.
pub const MIN_BUF: usize = 4 * 1024;
/// Largest buffer size of each direction. 16 KiB, not 64: with 64 KiB reads
/// the edge app path spent 380-428 ms of CPU per GB against 288-305 with
/// 16 KiB (fewer system calls, but each copy runs out of the cache and the
/// receiver waits for bigger writes); tunnels measured the same either way
/// (`bench/RESULTS.md`, 2026-12-03).
pub const MAX_BUF: usize = 16 * 1024;

/// One direction's state.
#[derive(Default)]
struct Pipe {
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    eof: bool,
    shut: bool,
    grow: bool,
    unflushed: bool,
    total: u64,
}

impl Pipe {
    /// Moves bytes from `r` to `w` until `r` is pending or finished.
    /// Ready(Ok) once EOF was read, everything written, and `w` shut down.
    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        mut r: Pin<&mut R>,
        mut w: Pin<&mut W>,
    ) -> Poll<io::Result<u64>>
    where
        R: AsyncRead + ?Sized,
        W: AsyncWrite + ?Sized,
    {
        loop {
            if self.pos == self.end && !self.eof {
                if self.grow {
                    let n = (self.buf.len() * 4).min(MAX_BUF);
                    self.buf.resize(n, 0);
                    self.grow = false;
                }
                if self.buf.is_empty() {
                    self.buf.resize(MIN_BUF, 0);
                }
                let mut rb = ReadBuf::new(&mut self.buf);
                match r.as_mut().poll_read(cx, &mut rb) {
                    Poll::Pending => {
                        if self.unflushed {
                            ready!(w.as_mut().poll_flush(cx))?;
                            self.unflushed = false;
                        }
                        // Nothing to read: a small buffer is given back,
                        // so an idle flow holds none (a bulk one, grown
                        // past MIN_BUF, keeps its own).
                        if self.buf.len() <= MIN_BUF {
                            self.buf = Vec::new();
                        }
                        return Poll::Pending;
                    }
                    Poll::Ready(res) => res?,
                }
                let n = rb.filled().len();
                if n == 0 {
                    self.eof = true;
                } else {
                    self.pos = 0;
                    self.end = n;
                    self.grow = n == self.buf.len() && self.buf.len() < MAX_BUF;
                }
            }
            while self.pos < self.end {
                let n = ready!(w.as_mut().poll_write(cx, &self.buf[self.pos..self.end]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.pos += n;
                self.total += n as u64;
                self.unflushed = true;
            }
            if self.eof {
                if !self.shut {
                    ready!(w.as_mut().poll_shutdown(cx))?;
                    self.shut = true;
                    // Release the buffer: this direction is over.
                    self.buf = Vec::new();
                }
                return Poll::Ready(Ok(self.total));
            }
        }
    }
}

/// Copies `a → b` and `b → a` until both directions reach EOF. Returns the
/// bytes copied `(a → b, b → a)`.
///
/// # Errors
/// The first I/O error of either side; the other direction is abandoned.
pub async fn splice<A, B>(a: &mut A, b: &mut B) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
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
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    splice_inner(a, b, Some(idle)).await
}

async fn splice_inner<A, B>(a: &mut A, b: &mut B, idle: Option<Duration>) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let mut ab = Pipe::default();
    let mut ba = Pipe::default();
    let (mut ab_done, mut ba_done) = (None, None);
    let timer = tokio::time::sleep(idle.unwrap_or(Duration::MAX / 4));
    tokio::pin!(timer);
    let mut moved = 0u64;
    let mut last = tokio::time::Instant::now();
    poll_fn(|cx| {
        if ab_done.is_none() {
            if let Poll::Ready(r) = ab.poll_copy(cx, Pin::new(&mut *a), Pin::new(&mut *b)) {
                ab_done = Some(r?);
            }
        }
        if ba_done.is_none() {
            if let Poll::Ready(r) = ba.poll_copy(cx, Pin::new(&mut *b), Pin::new(&mut *a)) {
                ba_done = Some(r?);
            }
        }
        if let (Some(x), Some(y)) = (ab_done, ba_done) {
            return Poll::Ready(Ok((x, y)));
        }
        if let Some(idle) = idle {
            let now_moved = ab.total + ba.total + ab.end as u64 + ba.end as u64;
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

    #[test]
    fn buffers_grow_only_when_filled() {
        let mut p = Pipe::default();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut src: &[u8] = &[1u8; 100];
        let mut sink = Vec::new();
        let _ = p.poll_copy(&mut cx, Pin::new(&mut src), Pin::new(&mut sink));
        assert_eq!(sink.len(), 100);
        // EOF released the buffer.
        assert!(p.buf.is_empty());
        let mut p = Pipe::default();
        let big = vec![2u8; 200_000];
        let mut src: &[u8] = &big;
        let mut sink = Vec::new();
        let _ = p.poll_copy(&mut cx, Pin::new(&mut src), Pin::new(&mut sink));
        assert_eq!(sink, big);
    }
}
