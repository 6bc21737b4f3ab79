//! Opening a flow stream on one of this node's connections of a tunnel,
//! with acknowledgements and retries over the tunnel's connections;
//! `reach` decides between this and another node.

use crate::context::Ctx;
use burrow_proto::close::{CloseReason, FlowError, Side};
use burrow_proto::{Frame, RefuseCode, StreamOpen};

use burrow_transport::frames::{write_frame, FrameReader};
use burrow_transport::BoxStream;
use std::sync::Arc;
use std::time::Duration;

/// Opens a flow stream on a connection of the tunnel held by this node
/// (the next one when a stream cannot be opened), sends `header` and waits
/// for the connector to accept. Returns the stream, any bytes read past
/// the answer, and the connection it runs on.
///
/// # Errors
/// Why no connector took the flow, side first (`tunnel:` / `origin:`).
pub(crate) async fn open_local(
    ctx: &Ctx,
    tunnel_id: uuid::Uuid,
    header: StreamOpen,
) -> Result<
    (
        BoxStream,
        bytes::BytesMut,
        Arc<crate::tunnel::registry::Registered>,
    ),
    FlowError,
> {
    let tunnel = |reason, detail: String| FlowError::new(Side::Tunnel, reason, detail);
    let mut last_err = tunnel(
        CloseReason::TunnelUnavailable,
        format!("no connector is connected for tunnel {tunnel_id}"),
    );
    let mut tried: Vec<uuid::Uuid> = Vec::with_capacity(TRIES);
    for _ in 0..TRIES {
        // A fresh pick each time: a connection that said GoAway meanwhile
        // is out of the registry already.
        let Some(conn) = ctx
            .registry
            .pick(tunnel_id, TRIES + 1)
            .into_iter()
            .find(|c| !tried.contains(&c.id))
        else {
            break;
        };
        tried.push(conn.id);
        let mut stream = match conn.conn.open_stream().await {
            Ok(s) => s,
            Err(e) => {
                last_err = tunnel(CloseReason::Error, format!("cannot open a stream: {e}"));
                continue;
            }
        };
        // Version 2: the typed header (acknowledged when the connector
        // registered `stream-ack`); version 1 says so by the frame type.
        let frame = if conn.record.wire >= burrow_proto::v2::VERSION_2 {
            Frame::OpenFlow(burrow_proto::v2::OpenFlow::from_stream_open(&header))
        } else if conn.acks {
            Frame::StreamOpenAcked(header.clone())
        } else {
            Frame::StreamOpen(header.clone())
        };
        if let Err(e) = write_frame(&mut stream, &frame, false).await {
            last_err = tunnel(
                CloseReason::Error,
                format!("cannot send the flow header: {e}"),
            );
            continue;
        }
        let mut reader = FrameReader::new();
        // The reply when it came first (a connector that refuses a flow
        // outright, draining say, does not acknowledge it first).
        let mut early = None;
        if conn.acks {
            // The connector says at once that it has the flow; a connection
            // that does not is given up for this flow (and made suspect)
            // instead of holding the flow until it times out.
            let deadline = ack_deadline(conn.conn.rtt());
            let first = match tokio::time::timeout(deadline, reader.read_frame(&mut stream)).await {
                Ok(first) => first,
                Err(_) => {
                    ctx.registry.suspect(tunnel_id, &conn);
                    ctx.telemetry.metrics.unacknowledged_flows.inc();
                    // Another connection to try? Else (or on the last try)
                    // this one may just be slow or lossy: keep waiting.
                    let another = tried.len() < TRIES && ctx.registry.has_other(tunnel_id, &tried);
                    if another {
                        tracing::warn!(
                            connection_id = %conn.id, connector_id = %conn.connector_id,
                            "a tunnel connection did not acknowledge a flow within {deadline:?}; trying another"
                        );
                        last_err = tunnel(
                            CloseReason::TunnelUnavailable,
                            format!("no connection acknowledged the flow within {deadline:?}"),
                        );
                        continue;
                    }
                    match tokio::time::timeout(ACCEPT_TIMEOUT, reader.read_frame(&mut stream)).await
                    {
                        Ok(first) => first,
                        Err(_) => {
                            return Err(tunnel(
                                CloseReason::TunnelUnavailable,
                                format!("the connection did not answer within {ACCEPT_TIMEOUT:?}"),
                            ))
                        }
                    }
                }
            };
            match first {
                Ok(Frame::StreamReceived) => conn.proven(),
                Ok(reply) => {
                    conn.proven();
                    early = Some(reply);
                }
                Err(e) => {
                    last_err = tunnel(
                        CloseReason::Error,
                        format!("no answer to the flow header: {e}"),
                    );
                    continue;
                }
            }
        }
        let reply = match early {
            Some(reply) => Ok(Ok(reply)),
            None => tokio::time::timeout(ACCEPT_TIMEOUT, reader.read_frame(&mut stream)).await,
        };
        match reply {
            Ok(Ok(Frame::StreamAccepted)) => return Ok((stream, reader.into_leftover(), conn)),
            Ok(Ok(Frame::StreamRejected(r))) if r.code == RefuseCode::ShuttingDown => {
                // Raced with the connector's GoAway: try another connection.
                last_err = tunnel(
                    CloseReason::TunnelUnavailable,
                    format!("connector refused the flow: {}", r.message),
                );
                continue;
            }
            Ok(Ok(Frame::StreamRejected(r))) => {
                return Err(FlowError::new(
                    Side::Origin,
                    CloseReason::OriginUnreachable,
                    format!("connector refused the flow: {}", r.message),
                ));
            }
            Ok(Ok(other)) => {
                return Err(tunnel(
                    CloseReason::Error,
                    format!("unexpected reply {}", other.kind_name()),
                ))
            }
            Ok(Err(e)) => {
                last_err = tunnel(
                    CloseReason::Error,
                    format!("no answer to the flow header: {e}"),
                );
                continue;
            }
            Err(_) => {
                return Err(FlowError::new(
                    Side::Origin,
                    CloseReason::OriginTimeout,
                    format!("connector did not accept the flow within {ACCEPT_TIMEOUT:?}"),
                ))
            }
        }
    }
    Err(last_err)
}

/// How long a connector that acknowledges flows has to say it got one:
/// [`ACK_WAIT`] plus two round trips of the connection, when known.
pub(crate) fn ack_deadline(rtt: Option<Duration>) -> Duration {
    ACK_WAIT + rtt.unwrap_or_default().saturating_mul(2).min(ACK_WAIT)
}

/// The fixed part of [`ack_deadline`]: long enough for a loaded connector
/// to read a stream header, short enough that a flow first placed on a
/// dead connection is still served within a second.
pub(crate) const ACK_WAIT: Duration = Duration::from_millis(400);

/// How long the connector has to reach the origin and accept a flow.
pub(crate) const ACCEPT_TIMEOUT: Duration = Duration::from_secs(30);

/// Tunnel connections tried for one flow before giving up.
pub(crate) const TRIES: usize = 3;
