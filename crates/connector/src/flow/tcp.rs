//! TCP flows to an origin: dialing (with a readable reason when it fails)
//! and splicing with the stream.

use burrow_proto::Frame;
use burrow_transport::frames::write_frame;
use burrow_transport::BoxStream;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tracing::debug;

/// A readable message for a failed origin dial. Running out of local ports
/// is named as such (cloudflared stays silent there).
pub(crate) fn origin_error(addr: &str, e: &std::io::Error) -> String {
    match burrow_transport::dial::classify(e).hint() {
        Some(hint) => format!("cannot reach origin {addr}: {hint}"),
        None => format!("cannot reach origin {addr}: {e}"),
    }
}

pub(crate) async fn splice<O: burrow_transport::stream::AsyncStream>(
    mut stream: BoxStream,
    mut origin: O,
    leftover: bytes::BytesMut,
    rule: Option<usize>,
    metrics: &crate::metrics::Metrics,
) {
    let early = leftover.len() as u64;
    if !leftover.is_empty() && origin.write_all(&leftover).await.is_err() {
        return;
    }
    drop(leftover);
    if write_frame(&mut stream, &Frame::StreamAccepted, false)
        .await
        .is_err()
    {
        return;
    }
    metrics.tcp_total.inc();
    metrics.tcp_active.inc();
    match burrow_transport::splice::splice(&mut stream, &mut origin).await {
        Ok((down, up)) => {
            metrics.flow_bytes(rule, down + early, up);
            debug!(
                rule = ?rule,
                bytes_to_origin = down,
                bytes_from_origin = up,
                "flow finished"
            );
        }
        Err(e) => debug!(rule = ?rule, error = %e, "flow ended with error"),
    }
    metrics.tcp_active.dec();
}

/// Dials a TCP origin within `limit`, timing it for the metrics.
pub(crate) async fn dial_tcp(
    addr: &str,
    limit: Duration,
    metrics: &crate::metrics::Metrics,
) -> Result<tokio::net::TcpStream, Option<std::io::Error>> {
    let started = std::time::Instant::now();
    match tokio::time::timeout(limit, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(o)) => {
            metrics
                .connect_latency
                .observe(started.elapsed().as_secs_f64() * 1000.0);
            let _ = o.set_nodelay(true);
            Ok(o)
        }
        Ok(Err(e)) => {
            metrics.dial_failed(&e);
            Err(Some(e))
        }
        Err(_) => {
            metrics.dial_failed(&std::io::ErrorKind::TimedOut.into());
            Err(None)
        }
    }
}
