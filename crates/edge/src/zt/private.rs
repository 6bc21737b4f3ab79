//! A client flow into a private network: through a connector of the
//! tunnel its vnet routes the destination to.

use super::identity::Identity;
use crate::context::Ctx;
use crate::egress::dial::refuse;
use crate::egress::udp;
use crate::telemetry::session_log::SessionRecord;
use burrow_proto::close::{CloseReason, Side};
use burrow_proto::FlowKind;
use burrow_transport::frames::FrameReader;
use burrow_transport::BoxStream;
use std::net::SocketAddr;
use tracing::info;

/// A flow into a private network: through a connector of `tunnel`, which
/// dials `target` itself.
pub(crate) async fn private(
    ctx: &Ctx,
    who: &Identity,
    mut stream: BoxStream,
    reader: FrameReader,
    mut record: SessionRecord,
    (tunnel, target, udp): (uuid::Uuid, SocketAddr, bool),
    peer: SocketAddr,
) {
    let header = burrow_proto::StreamOpen {
        kind: if udp {
            FlowKind::PrivateUdp
        } else {
            FlowKind::PrivateTcp
        },
        flow_id: ctx.tasks.next_flow(),
        hostname: target.ip().to_string(),
        edge_port: target.port(),
        client_addr: peer,
    };
    let flow_id = header.flow_id;
    let (mut far, far_leftover, via) = match crate::tunnel::reach::open_tunnel_stream(
        ctx, tunnel, header,
    )
    .await
    {
        Ok(x) => x,
        Err(e) => {
            // Whatever failed on the tunnel's side, the session log says
            // the tunnel was unavailable; the connector's refusal is the
            // origin's.
            let reason = match e.side {
                Side::Tunnel => CloseReason::TunnelUnavailable,
                _ => CloseReason::OriginUnreachable,
            };
            info!(destination = %target, tunnel_id = %tunnel, reason = %e, "private-network flow failed");
            record.close(reason);
            ctx.telemetry.log_session(record);
            refuse(
                &mut stream,
                format!("cannot reach {target} through tunnel {tunnel}: {e}"),
            )
            .await;
            return;
        }
    };
    let Some(leftover) = crate::egress::dial::accept(&mut stream, reader).await else {
        return;
    };
    if udp {
        // QUIC datagrams toward the connector when the connection has them.
        let end = udp::relay_streams(
            stream,
            leftover,
            far,
            far_leftover,
            via.and_then(|v| v.mux.clone()).map(|m| (m, flow_id)),
        )
        .await;
        record.bytes(end.sent, end.received);
        record.close(who.close_reason(end.reason));
        ctx.telemetry.log_session(record);
        return;
    }
    let e = crate::egress::tcp::splice_out(stream, leftover, &mut far, far_leftover).await;
    record.bytes(e.sent, e.received);
    record.detected_protocol(e.protocol);
    record.close(who.close_reason(e.reason));
    ctx.telemetry.log_session(record);
}
