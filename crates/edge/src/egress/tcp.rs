//! Relaying a TCP flow that leaves the edge (a client's, a peer's, or one
//! into a private network): bytes already read on either side go first,
//! then both directions are spliced. The TCP twin of [`super::udp`].

use burrow_proto::close::CloseReason;
use burrow_transport::BoxStream;
use tokio::io::AsyncWriteExt;
use tracing::debug;

/// What [`splice_out`] came to.
pub(crate) struct Spliced {
    pub(crate) reason: CloseReason,
    /// Bytes from the flow stream to `out`, leftover included.
    pub(crate) sent: u64,
    /// Bytes from `out` to the flow stream, leftover included.
    pub(crate) received: u64,
    /// What the first bytes from the flow stream look like
    /// ([`detect_protocol`]; empty when unknown or none came).
    pub(crate) protocol: &'static str,
}

/// The protocol a stream's first bytes show, as the session log's
/// `DetectedProtocol` names it: `TLS`, `HTTP` (HTTP/1), `HTTP2` (the
/// prior-knowledge preface), `SSH`, or empty.
pub(crate) fn detect_protocol(first: &[u8]) -> &'static str {
    const METHODS: [&[u8]; 9] = [
        b"GET ",
        b"POST ",
        b"PUT ",
        b"HEAD ",
        b"DELETE ",
        b"OPTIONS ",
        b"PATCH ",
        b"CONNECT ",
        b"TRACE ",
    ];
    if first.len() >= 2 && first[0] == 0x16 && first[1] == 0x03 {
        "TLS"
    } else if first.starts_with(b"PRI * HTTP/2.0") {
        "HTTP2"
    } else if METHODS.iter().any(|m| first.starts_with(m)) {
        "HTTP"
    } else if first.starts_with(b"SSH-") {
        "SSH"
    } else {
        ""
    }
}

/// A flow stream whose first bytes read are looked at once.
struct Sniff {
    inner: BoxStream,
    protocol: Option<&'static str>,
}

impl tokio::io::AsyncRead for Sniff {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut *self.inner).poll_read(cx, buf);
        if self.protocol.is_none() && buf.filled().len() > before {
            self.protocol = Some(detect_protocol(&buf.filled()[before..]));
        }
        r
    }
}

impl tokio::io::AsyncWrite for Sniff {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut *self.inner).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut *self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}

/// Splices `stream` (the flow stream) with `out`, after writing `leftover`
/// (read from `stream`) to `out` and `out_left` (read from `out`) to
/// `stream`; both counts include the leftovers.
pub(crate) async fn splice_out<O>(
    mut stream: BoxStream,
    leftover: bytes::BytesMut,
    out: &mut O,
    out_left: bytes::BytesMut,
) -> Spliced
where
    O: burrow_transport::stream::AsyncStream,
{
    let mut protocol = (!leftover.is_empty()).then(|| detect_protocol(&leftover));
    let done = |reason, sent: usize, received: usize, protocol: Option<&'static str>| Spliced {
        reason,
        sent: sent as u64,
        received: received as u64,
        protocol: protocol.unwrap_or(""),
    };
    if !leftover.is_empty() && out.write_all(&leftover).await.is_err() {
        return done(CloseReason::Error, 0, 0, protocol);
    }
    if !out_left.is_empty() && stream.write_all(&out_left).await.is_err() {
        return done(CloseReason::Error, leftover.len(), 0, protocol);
    }
    // The protocol is named from the first bytes: when the client sent
    // them early they are in `leftover`, and the stream is spliced as it
    // is (a QUIC or HTTP/2 stream hands its bytes over without a copy);
    // otherwise the first read names it.
    let r = if protocol.is_some() {
        burrow_transport::splice::splice(&mut stream, out).await
    } else {
        let mut sniff = Sniff {
            inner: stream,
            protocol,
        };
        let r = burrow_transport::splice::splice(&mut sniff, out).await;
        protocol = sniff.protocol;
        r
    };
    match r {
        Ok((up, down)) => Spliced {
            reason: CloseReason::ClientOrOriginClosed,
            sent: up + leftover.len() as u64,
            received: down + out_left.len() as u64,
            protocol: protocol.unwrap_or(""),
        },
        Err(e) => {
            debug!(error = %e, "flow ended with an error");
            done(CloseReason::Error, leftover.len(), out_left.len(), protocol)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::detect_protocol;

    #[test]
    fn first_bytes_name_the_protocol() {
        assert_eq!(detect_protocol(&[0x16, 0x03, 0x01, 0x02, 0x00]), "TLS");
        assert_eq!(detect_protocol(b"GET / HTTP/1.1\r\n"), "HTTP");
        assert_eq!(detect_protocol(b"PRI * HTTP/2.0\r\n\r\nSM"), "HTTP2");
        assert_eq!(detect_protocol(b"SSH-2.0-OpenSSH_9.2\r\n"), "SSH");
        assert_eq!(detect_protocol(b"\x00\x01binary"), "");
        assert_eq!(detect_protocol(b"G"), "");
    }
}
