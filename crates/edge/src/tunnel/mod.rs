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
use burrow_proto::v2::Role;
use burrow_proto::RefuseCode;
use burrow_transport::frames::FrameReader;
use burrow_transport::{BoxStream, EdgeConn, TransportError};
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
    // One deadline for the handshake and the registration together; the
    // peer's datagrams are dropped meanwhile.
    let read = async {
        tokio::select! {
            r = read_registration(&mut control, &mut reader, ctx.id.wire) => r,
            never = conn.drop_datagrams() => match never {},
        }
    };
    let hello = match tokio::time::timeout_at(pre.deadline, read).await {
        Ok(Ok(r)) => r,
        Ok(Err(TransportError::Version(v))) if v > burrow_proto::v2::VERSION_2 => {
            // A newer party learns why, and may try an older version
            // (a node rehearsing version 1 just closes, as a version 1
            // node did).
            let why =
                format!("protocol version {v} is not spoken by this edge (it speaks 1 and 2)");
            debug!(
                version = v,
                "registration in an unknown protocol version refused"
            );
            handshake::refuse(&mut control, &conn, RefuseCode::UnsupportedVersion, &why).await;
            return;
        }
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
    // Only a connector that takes UDP sessions as QUIC datagrams reads
    // them (its `DatagramMux`); any other peer's are dropped for the
    // connection's life, as before it registered.
    let has_reader = matches!(hello.reg.role, Role::Connector { .. })
        && hello
            .reg
            .features
            .iter()
            .any(|f| f == burrow_transport::quic_datagrams::FEATURE);
    let unread = conn.clone();
    let drop_unread = async move {
        if has_reader {
            std::future::pending().await
        } else {
            unread.drop_datagrams().await
        }
    };
    let serve = async move {
        match hello.reg.role {
            Role::Node { .. } => {
                crate::egress::peer::serve(ctx, conn, control, hello, peer, shutdown, pre).await;
            }
            Role::Client { .. } => {
                crate::zt::serve(ctx, conn, control, hello, peer, shutdown, pre).await;
            }
            Role::Connector { .. } => {
                connector::serve(ctx, conn, control, reader, hello, peer, shutdown, pre).await;
            }
        }
    };
    tokio::select! {
        () = serve => {}
        never = drop_unread => match never {},
    }
}
