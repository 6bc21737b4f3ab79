//! Edge-to-edge egress (`--peer COLO=HOST:PORT`): a client flow whose
//! dedicated egress IP belongs to another colo is handed to that colo's
//! edge, which dials the destination from the IP and splices.
//!
//! A peer connects to the other edge's tunnel endpoint over QUIC like a
//! connector, verifying its certificate (`--peer-ca`, default this edge's
//! own CA), and registers as the node role with the shared peer secret
//! (`--peer-secret-file`, compared in constant time). Each handed flow is
//! one stream: an `OpenFlow` of kind TCP or UDP whose target is the
//! destination address and whose `source` is the IP to dial from (none:
//! the shared pool). Version 1 said the same with a `StreamOpen` whose
//! `hostname` is `ip:port` and whose `client_addr` carries the source
//! (port 0; `0.0.0.0` for the shared pool); both are read. The peer
//! answers `StreamAccepted` or `StreamRejected` with the reason, then
//! bytes (or framed datagrams) follow. The session log record is written
//! by the edge the client is connected to.

use crate::context::Ctx;
use burrow_proto::v2::{OpenFlow, Target};
use burrow_proto::{FlowKind, Frame, RefuseCode, StreamOpen};
use burrow_transport::frames::{write_frame, FrameReader};
use burrow_transport::{BoxStream, EdgeConn};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

/// Time a peer has to answer a handed flow (it dials within 10 s).
pub(crate) const ACCEPT_TIMEOUT: Duration = Duration::from_secs(15);

/// What a handed flow came to.
pub(crate) enum Handed {
    /// The peer reached the destination: the stream and bytes read past
    /// its answer.
    Open(BoxStream, bytes::BytesMut),
    /// The peer is up but the destination is not reachable (the reason).
    Refused(String),
    /// The peer could not be reached: try the next exit.
    Down(String),
}

/// Hands a flow to the edge of `colo`; a peer found down is skipped for
/// a while.
pub(crate) async fn hand(
    ctx: &Ctx,
    colo: &str,
    udp: bool,
    target: SocketAddr,
    source: Option<std::net::Ipv4Addr>,
) -> Handed {
    let r = hand_once(ctx, colo, udp, target, source).await;
    if matches!(r, Handed::Down(_)) {
        ctx.egress.peers.mark_down(colo);
    }
    r
}

pub(crate) async fn hand_once(
    ctx: &Ctx,
    colo: &str,
    udp: bool,
    target: SocketAddr,
    source: Option<std::net::Ipv4Addr>,
) -> Handed {
    let mut member = ctx.members.live_in_colo(colo, &ctx.id.node_id);
    if member.is_none() && !ctx.egress.peers.cfg.peers.contains_key(colo) {
        // A node that joined since the last beat: read the members now.
        ctx.members.refresh(&ctx.store).await;
        member = ctx.members.live_in_colo(colo, &ctx.id.node_id);
    }
    let conn = match ctx.egress.peers.conn(colo, member).await {
        Ok(c) => c,
        Err(e) => return Handed::Down(e),
    };
    let mut stream = match conn.open_stream().await {
        Ok(s) => s,
        Err(e) => return Handed::Down(format!("peer {colo}: {e}")),
    };
    let kind = if udp { FlowKind::Udp } else { FlowKind::Tcp };
    let open = if conn.wire >= burrow_proto::v2::VERSION_2 {
        Frame::OpenFlow(OpenFlow {
            kind,
            flow_id: ctx.tasks.next_flow(),
            target: Target::Addr(target),
            client: SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), 0),
            source: source.map(Into::into),
            tunnel: None,
        })
    } else {
        Frame::StreamOpen(StreamOpen {
            kind,
            flow_id: ctx.tasks.next_flow(),
            hostname: target.to_string(),
            edge_port: 0,
            client_addr: SocketAddr::new(
                source.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED).into(),
                0,
            ),
        })
    };
    if let Err(e) = write_frame(&mut stream, &open, false).await {
        return Handed::Down(format!("peer {colo}: {e}"));
    }
    let mut reader = FrameReader::new();
    match tokio::time::timeout(ACCEPT_TIMEOUT, reader.read_frame(&mut stream)).await {
        Ok(Ok(Frame::StreamAccepted)) => Handed::Open(stream, reader.into_leftover()),
        Ok(Ok(Frame::StreamRejected(r))) => Handed::Refused(r.message),
        Ok(Ok(other)) => Handed::Down(format!("peer {colo}: unexpected answer {other:?}")),
        Ok(Err(e)) => Handed::Down(format!("peer {colo}: {e}")),
        Err(_) => Handed::Down(format!("peer {colo}: no answer within {ACCEPT_TIMEOUT:?}")),
    }
}

/// Serves a registered peer edge: dials the flows it hands over.
pub(crate) async fn serve(
    ctx: Arc<Ctx>,
    conn: EdgeConn,
    mut control: BoxStream,
    hello: crate::tunnel::handshake::Hello,
    from: SocketAddr,
    shutdown: CancellationToken,
    pre: crate::tunnel::handshake::PreAuth,
) {
    let ok = ctx
        .egress
        .peers
        .cfg
        .secret
        .as_ref()
        .is_some_and(|s| bool::from(s.expose().ct_eq(hello.reg.secret.expose())));
    let colo = match &hello.reg.role {
        burrow_proto::v2::Role::Node { colo, .. } if !colo.is_empty() => colo.clone(),
        _ => "?".to_owned(),
    };
    if !ok || !matches!(conn, EdgeConn::Quic(_)) {
        let message = if ok {
            "peer edges connect over QUIC".to_owned()
        } else {
            "peer secret does not match (or this edge has no --peer-secret-file)".to_owned()
        };
        warn!(peer = %from, %colo, reason = %message, "peer edge refused");
        crate::tunnel::handshake::refuse(&mut control, &conn, RefuseCode::BadSecret, &message)
            .await;
        return;
    }
    if !crate::tunnel::handshake::accept_registration(&mut control, &conn, &ctx.id, hello.wire, pre)
        .await
    {
        return;
    }
    info!(peer = %from, %colo, "peer edge connected");
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = conn.closed() => break,
            s = crate::apps::refusal::accept_flow_stream(&ctx, &conn, "peer") => match s {
                Some((fds, stream)) => {
                    let span = tracing::info_span!("peer_flow", from_colo = %colo);
                    ctx.tasks.spawn_flow_holding(fds, egress(ctx.clone(), stream).instrument(span));
                }
                None => break,
            },
        }
    }
    info!(peer = %from, %colo, "peer edge disconnected");
}

/// One handed flow: dial from the named source, splice.
pub(crate) async fn egress(ctx: Arc<Ctx>, mut stream: BoxStream) {
    let mut reader = FrameReader::new();
    let frame = match tokio::time::timeout(ACCEPT_TIMEOUT, reader.read_frame(&mut stream)).await {
        Ok(Ok(f)) => f,
        _ => return,
    };
    // A flow carried into a tunnel held here, or a flow to dial out.
    let (kind, target, source) = match frame {
        Frame::ForwardOpen(f) => {
            let header = f.open;
            crate::cluster::forward::serve(&ctx, stream, reader, f.tunnel_id, header).await;
            return;
        }
        Frame::OpenFlow(o) => {
            if let Some(tunnel) = o.tunnel {
                let header = o.into_stream_open();
                crate::cluster::forward::serve(&ctx, stream, reader, tunnel, header).await;
                return;
            }
            let Target::Addr(target) = o.target else {
                crate::egress::dial::refuse(&mut stream, "the target is not an address".into())
                    .await;
                return;
            };
            (o.kind, target, o.source)
        }
        Frame::StreamOpen(o) => {
            let Ok(target) = o.hostname.parse::<SocketAddr>() else {
                crate::egress::dial::refuse(
                    &mut stream,
                    format!("'{}' is not ip:port", o.hostname),
                )
                .await;
                return;
            };
            // 0.0.0.0: this edge's shared pool (its default source).
            let source = Some(o.client_addr.ip()).filter(|ip| !ip.is_unspecified());
            (o.kind, target, source)
        }
        _ => return,
    };
    if !matches!(kind, FlowKind::Tcp | FlowKind::Udp) {
        return;
    }
    // The handing edge checked too; this host's own addresses are known
    // only here.
    if let Err(d) = crate::egress::dial::guard(&ctx, target) {
        info!(destination = %target, reason = d.message(), "peer egress refused");
        crate::egress::dial::refuse(&mut stream, format!("{target} {}", d.message())).await;
        return;
    }
    info!(destination = %target, source = ?source, "peer egress");
    if kind == FlowKind::Udp {
        match crate::egress::dial::udp_socket(target, source).await {
            Ok(sock) => {
                if let Some(leftover) = crate::egress::dial::accept(&mut stream, reader).await {
                    crate::egress::dial::udp_relay(stream, leftover, sock).await;
                }
            }
            Err(message) => crate::egress::dial::refuse(&mut stream, message).await,
        }
        return;
    }
    let mut origin = match crate::egress::dial::dial_from(target, source).await {
        Ok(o) => o,
        Err(message) => {
            crate::egress::dial::refuse(&mut stream, message).await;
            return;
        }
    };
    let Some(leftover) = crate::egress::dial::accept(&mut stream, reader).await else {
        return;
    };
    // The client's edge logs the session; here only the bytes move.
    super::tcp::splice_out(stream, leftover, &mut origin, bytes::BytesMut::new()).await;
}
