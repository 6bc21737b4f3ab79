//! The tunnel endpoint: accepts connector connections over QUIC and
//! HTTP/2, runs the registration handshake on the control stream, and keeps
//! the connection in the [`Registry`](crate::tunnel::registry::Registry) until it
//! closes or says `GoAway`.

pub(crate) mod connector;
pub(crate) mod handshake;
pub(crate) mod open;
pub(crate) mod reach;
pub(crate) mod registry;

use crate::context::Ctx;
use burrow_transport::frames::FrameReader;
use burrow_transport::{BoxStream, EdgeConn};
use handshake::{read_registration, Gate, PreAuth, HANDSHAKE_TIMEOUT};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, Instrument};

/// Accept loop of the HTTP/2 (TCP) side.
pub(crate) async fn run_tcp(ctx: Arc<Ctx>, listener: TcpListener, shutdown: CancellationToken) {
    let tls = ctx.files.h2_tls.clone();
    let gate = Gate::new();
    loop {
        let Some(permit) = gate.permit(&shutdown).await else {
            return;
        };
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = burrow_transport::accept_tcp(&listener) => r,
        };
        let Some(pre) = gate.admit(permit, peer) else {
            continue;
        };
        let ctx2 = ctx.clone();
        let tls = tls.clone();
        let sd = shutdown.clone();
        ctx.tasks.spawn(
            async move {
                let res = burrow_transport::h2::accept(tcp, tls, HANDSHAKE_TIMEOUT).await;
                match res {
                    Ok((conn, control)) => serve_conn(ctx2, conn, control, peer, sd, pre).await,
                    Err(e) => debug!(error = %e, "HTTP/2 tunnel handshake failed"),
                }
            }
            .instrument(tracing::info_span!("tunnel_conn", %peer, protocol = "http2")),
        );
    }
}

/// Accept loop of the QUIC (UDP) side.
pub(crate) async fn run_quic(
    ctx: Arc<Ctx>,
    endpoint: quinn::Endpoint,
    shutdown: CancellationToken,
) {
    let gate = Gate::new();
    loop {
        let Some(permit) = gate.permit(&shutdown).await else {
            break;
        };
        let incoming = tokio::select! {
            _ = shutdown.cancelled() => break,
            i = endpoint.accept() => match i { Some(i) => i, None => break },
        };
        let peer = incoming.remote_address();
        let Some(pre) = gate.admit(permit, peer) else {
            incoming.refuse();
            continue;
        };
        let ctx2 = ctx.clone();
        let sd = shutdown.clone();
        ctx.tasks.spawn(
            async move {
                let res = burrow_transport::quic::accept(incoming, HANDSHAKE_TIMEOUT).await;
                match res {
                    Ok((conn, control)) => serve_conn(ctx2, conn, control, peer, sd, pre).await,
                    Err(e) => debug!(error = %e, "QUIC tunnel handshake failed"),
                }
            }
            .instrument(tracing::info_span!("tunnel_conn", %peer, protocol = "quic")),
        );
    }
    endpoint.set_server_config(None);
}

pub(crate) async fn serve_conn(
    ctx: Arc<Ctx>,
    conn: EdgeConn,
    mut control: BoxStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
    pre: PreAuth,
) {
    let mut reader = FrameReader::new();
    // One deadline for the handshake and the registration together.
    let reg =
        match tokio::time::timeout_at(pre.deadline, read_registration(&mut control, &mut reader))
            .await
        {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                debug!(error = %e, "registration failed");
                conn.close();
                return;
            }
            Err(_) => {
                debug!("no registration within {HANDSHAKE_TIMEOUT:?}");
                conn.close();
                return;
            }
        };
    if reg
        .features
        .iter()
        .any(|f| f == crate::egress::peers::FEATURE)
    {
        crate::egress::peer::serve(ctx, conn, control, reg, peer, shutdown, pre).await;
        return;
    }
    if reg.features.iter().any(|f| f == crate::zt::FEATURE) {
        crate::zt::serve(ctx, conn, control, reg, peer, shutdown, pre).await;
        return;
    }
    connector::serve(ctx, conn, control, reader, reg, peer, shutdown, pre).await;
}
