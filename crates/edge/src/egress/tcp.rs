//! Relaying a TCP flow that leaves the edge (a client's, a peer's, or one
//! into a private network): bytes already read on either side go first,
//! then both directions are spliced. The TCP twin of [`super::udp`].

use burrow_proto::close::CloseReason;
use burrow_transport::BoxStream;
use tokio::io::AsyncWriteExt;
use tracing::debug;

/// Splices `stream` (the flow stream) with `out`, after writing `leftover`
/// (read from `stream`) to `out` and `out_left` (read from `out`) to
/// `stream`; (close reason, bytes sent, bytes received), both counts with
/// the leftovers.
pub(crate) async fn splice_out<O>(
    stream: &mut BoxStream,
    leftover: bytes::BytesMut,
    out: &mut O,
    out_left: bytes::BytesMut,
) -> (CloseReason, u64, u64)
where
    O: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if !leftover.is_empty() && out.write_all(&leftover).await.is_err() {
        return (CloseReason::Error, 0, 0);
    }
    if !out_left.is_empty() && stream.write_all(&out_left).await.is_err() {
        return (CloseReason::Error, leftover.len() as u64, 0);
    }
    match burrow_transport::splice::splice(stream, out).await {
        Ok((up, down)) => (
            CloseReason::ClientOrOriginClosed,
            up + leftover.len() as u64,
            down + out_left.len() as u64,
        ),
        Err(e) => {
            debug!(error = %e, "flow ended with an error");
            (
                CloseReason::Error,
                leftover.len() as u64,
                out_left.len() as u64,
            )
        }
    }
}
