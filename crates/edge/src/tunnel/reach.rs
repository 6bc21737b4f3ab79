//! Reaching a tunnel from this node: the one primitive every edge flow
//! kind (TCP and UDP apps, HTTP routes, private-network client flows) uses.
//! Through a connection this node holds (`open`), else through the node
//! that holds one (`cluster::forward`).

use crate::context::Ctx;
use burrow_proto::close::{CloseReason, FlowError, Side};
use burrow_proto::{FlowKind, StreamOpen};
use burrow_transport::BoxStream;
use std::net::SocketAddr;
use std::sync::Arc;

/// Opens a flow into the tunnel: through a connection of this node when it
/// holds one, else (or when none of its own took it) through another node
/// that does ([`crate::cluster::forward`]). Returns the stream, any bytes
/// read past the answer, and this node's connection it runs on (`None`
/// when another node carries it).
///
/// # Errors
/// Why no connector took the flow, side first (`tunnel:` / `origin:`).
pub(crate) async fn open_tunnel_stream(
    ctx: &Ctx,
    tunnel_id: uuid::Uuid,
    header: StreamOpen,
) -> Result<
    (
        BoxStream,
        bytes::BytesMut,
        Option<Arc<crate::tunnel::registry::Registered>>,
    ),
    FlowError,
> {
    if ctx.registry.has_other(tunnel_id, &[]) {
        match crate::tunnel::open::open_local(ctx, tunnel_id, header.clone()).await {
            Ok((s, left, via)) => return Ok((s, left, Some(via))),
            // The origin's answer stands; a tunnel-side failure may have
            // another node to go through.
            Err(e) if e.side != Side::Tunnel => return Err(e),
            Err(e) => {
                return crate::cluster::forward::open(ctx, tunnel_id, header)
                    .await
                    .map(|(s, left)| (s, left, None))
                    .map_err(|_| e)
            }
        }
    }
    crate::cluster::forward::open(ctx, tunnel_id, header)
        .await
        .map(|(s, left)| (s, left, None))
}

/// Opens a tunnel stream for HTTP/1.1 requests to `tunnel` (used by hyper's
/// tunnel client too).
pub(crate) async fn open_stream(
    ctx: &Ctx,
    port: u16,
    tunnel: uuid::Uuid,
) -> Result<BoxStream, FlowError> {
    let header = StreamOpen {
        kind: FlowKind::Http,
        flow_id: ctx.tasks.next_flow(),
        hostname: String::new(),
        edge_port: port,
        client_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
    };
    let (stream, leftover, _) = open_tunnel_stream(ctx, tunnel, header).await?;
    if !leftover.is_empty() {
        return Err(FlowError::new(
            Side::Tunnel,
            CloseReason::Error,
            "connector sent bytes before the request",
        ));
    }
    Ok(stream)
}
