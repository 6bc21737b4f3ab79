//! Carrying a flow to the node that holds a tunnel's connection: a flow
//! that arrives here for a tunnel with no connection at this node (a TCP
//! or UDP app, an HTTP route, a client's private-network flow) goes over
//! the authenticated peer link to a live node that holds one, as a
//! stream that opens with an `OpenFlow` naming the tunnel (version 1: a
//! `ForwardOpen`); that node opens the flow into the tunnel through
//! its own connection (never onward) and splices. Local connections are
//! always preferred; among remote holders, the lowest measured round trip
//! first.

use crate::context::Ctx;
use burrow_proto::close::{CloseReason, FlowError, Side};
use burrow_proto::v2::OpenFlow;
use burrow_proto::{FlowKind, ForwardOpen, Frame, Refusal, RefuseCode, StreamOpen};
use burrow_store::Node;
use burrow_transport::frames::{write_frame, FrameReader};
use burrow_transport::BoxStream;
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info};

/// How many holders a flow tries before it fails.
const TRIES: usize = 2;

/// Time the holder has to take the flow (it waits for its connector).
const ACCEPT_TIMEOUT: Duration = Duration::from_secs(15);

/// Live nodes holding `tunnel`'s connections, lowest round trip first
/// (unmeasured ones last).
async fn holders(ctx: &Ctx, tunnel: uuid::Uuid) -> Vec<Node> {
    let store_up = ctx.telemetry.metrics.store_up.get() == 1;
    let ids = ctx
        .forwarding
        .of(&ctx.store, &ctx.id.node_id, tunnel, store_up)
        .await;
    let me = &ctx.id.node_id;
    if ids.iter().any(|id| ctx.members.live(id, me).is_none()) {
        // A node that joined since the last beat: read the members now.
        ctx.members.refresh(&ctx.store).await;
    }
    let mut nodes: Vec<Node> = ids
        .iter()
        .filter_map(|id| ctx.members.live(id, me))
        .collect();
    nodes.sort_by_key(|n| ctx.egress.peers.rtt(&n.id).unwrap_or(Duration::MAX));
    nodes
}

/// Opens `header`'s flow into `tunnel` through a node that holds one of
/// its connections; the stream and any bytes read past the answer.
///
/// # Errors
/// Why no node took the flow, side first.
pub(crate) async fn open(
    ctx: &Ctx,
    tunnel: uuid::Uuid,
    header: StreamOpen,
) -> Result<(BoxStream, bytes::BytesMut), FlowError> {
    let unavailable =
        |detail: String| FlowError::new(Side::Tunnel, CloseReason::TunnelUnavailable, detail);
    let nodes = holders(ctx, tunnel).await;
    let mut last = unavailable(format!(
        "no connector is connected for tunnel {tunnel} at any live edge node"
    ));
    for node in nodes.iter().take(TRIES) {
        let Ok(addr) = node.tunnel_addr.parse() else {
            continue;
        };
        let conn = match ctx.egress.peers.conn_to(&node.id, addr).await {
            Ok(c) => c,
            Err(e) => {
                last = unavailable(format!("node {} ({}): {e}", node.id, node.colo));
                continue;
            }
        };
        let mut stream = match conn.open_stream().await {
            Ok(s) => s,
            Err(e) => {
                last = unavailable(format!("node {}: {e}", node.id));
                continue;
            }
        };
        // Version 2: the typed header naming the tunnel; version 1's
        // `ForwardOpen` to a node of an older release.
        let frame = if conn.wire >= burrow_proto::v2::VERSION_2 {
            let mut open = OpenFlow::from_stream_open(&header);
            open.tunnel = Some(*tunnel.as_bytes());
            Frame::OpenFlow(open)
        } else {
            Frame::ForwardOpen(ForwardOpen {
                tunnel_id: *tunnel.as_bytes(),
                open: header.clone(),
            })
        };
        if let Err(e) = write_frame(&mut stream, &frame, false).await {
            last = unavailable(format!("node {}: {e}", node.id));
            continue;
        }
        let mut reader = FrameReader::new();
        // The node says at once that it has the flow: a node that does not
        // (killed, its link not yet timed out) is skipped for a while and
        // the flow goes to the next one instead of waiting.
        let deadline = crate::tunnel::open::ack_deadline(conn.rtt());
        match tokio::time::timeout(deadline, reader.read_frame(&mut stream)).await {
            Ok(Ok(Frame::StreamReceived)) => {}
            Ok(Ok(other)) => {
                last = unavailable(format!(
                    "node {}: unexpected {}",
                    node.id,
                    other.kind_name()
                ));
                continue;
            }
            Ok(Err(e)) => {
                last = unavailable(format!("node {}: {e}", node.id));
                continue;
            }
            Err(_) => {
                ctx.egress.peers.mark_down(&node.id);
                last = unavailable(format!(
                    "node {} did not acknowledge the flow within {deadline:?}",
                    node.id
                ));
                continue;
            }
        }
        match tokio::time::timeout(ACCEPT_TIMEOUT, reader.read_frame(&mut stream)).await {
            Ok(Ok(Frame::StreamAccepted)) => {
                ctx.telemetry.metrics.forwarded_out.inc();
                debug!(node = %node.id, colo = %node.colo, %tunnel, "flow carried to the node holding the tunnel");
                return Ok((stream, reader.into_leftover()));
            }
            Ok(Ok(Frame::StreamRejected(r))) if r.code == RefuseCode::UnknownTunnel => {
                // Its connection went meanwhile: the next holder.
                last = unavailable(format!("node {}: {}", node.id, r.message));
            }
            Ok(Ok(Frame::StreamRejected(r))) => {
                return Err(FlowError::new(
                    Side::Origin,
                    CloseReason::OriginUnreachable,
                    r.message,
                ))
            }
            Ok(Ok(other)) => {
                last = unavailable(format!(
                    "node {}: unexpected {}",
                    node.id,
                    other.kind_name()
                ));
            }
            Ok(Err(e)) => last = unavailable(format!("node {}: {e}", node.id)),
            Err(_) => {
                return Err(FlowError::new(
                    Side::Origin,
                    CloseReason::OriginTimeout,
                    format!(
                        "node {} did not take the flow within {ACCEPT_TIMEOUT:?}",
                        node.id
                    ),
                ))
            }
        }
    }
    Err(last)
}

/// Serves a flow another node carried here: opens it into the tunnel
/// through a connection of this node, answers, and splices.
pub(crate) async fn serve(
    ctx: &Arc<Ctx>,
    mut stream: BoxStream,
    reader: FrameReader,
    tunnel: burrow_proto::Id,
    mut header: StreamOpen,
) {
    // Acknowledged before the connector is asked (which may take long).
    if write_frame(&mut stream, &Frame::StreamReceived, false)
        .await
        .is_err()
    {
        return;
    }
    let tunnel = uuid::Uuid::from_bytes(tunnel);
    // Flow ids are per node: this node's own, so they never collide on
    // its connections.
    header.flow_id = ctx.tasks.next_flow();
    let (kind, flow_id) = (header.kind, header.flow_id);
    let opened = crate::tunnel::open::open_local(ctx, tunnel, header).await;
    let (far, far_left, via) = match opened {
        Ok(x) => x,
        Err(e) => {
            let code = if e.side == Side::Tunnel {
                RefuseCode::UnknownTunnel
            } else {
                RefuseCode::OriginUnreachable
            };
            let reply = Frame::StreamRejected(Refusal {
                code,
                message: e.to_string(),
            });
            let _ = write_frame(&mut stream, &reply, false).await;
            return;
        }
    };
    if write_frame(&mut stream, &Frame::StreamAccepted, false)
        .await
        .is_err()
    {
        return;
    }
    ctx.telemetry.metrics.forwarded_in.inc();
    info!(%tunnel, flow_id, kind = ?kind, "flow carried here by another node");
    let near_left = reader.into_leftover();
    if matches!(kind, FlowKind::Udp | FlowKind::PrivateUdp) {
        crate::egress::udp::relay_streams(
            stream,
            near_left,
            far,
            far_left,
            via.mux.clone().map(|m| (m, flow_id)),
        )
        .await;
    } else {
        let mut far = far;
        crate::egress::tcp::splice_out(stream, near_left, &mut far, far_left).await;
    }
}
