//! The tunnel endpoint: accepts connector connections over QUIC and
//! HTTP/2, runs the registration handshake on the control stream, and keeps
//! the connection in the [`Registry`](crate::registry::Registry) until it
//! closes or says `GoAway`.

use crate::registry::Registered;
use crate::{unix_now, Shared};
use burrow_proto::{Frame, Refusal, RefuseCode, Register, Registered as RegisteredFrame};
use burrow_store::Tunnel;
use burrow_transport::frames::{write_frame, FrameReader};
use burrow_transport::{quic_datagrams, BoxStream, EdgeConn, TransportError};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

/// Time a peer has from its first packet to a registration the edge
/// accepted: TLS/QUIC handshake and registration together.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most connections in the handshake phase (not registered yet) at once.
pub(crate) const MAX_HANDSHAKING: usize = 1024;
/// Most connections in the handshake phase from one source address, so
/// one host cannot take every handshake slot.
pub(crate) const MAX_HANDSHAKING_PER_SOURCE: usize = 64;

/// What an unregistered connection holds until it registers or goes: one
/// of the [`MAX_HANDSHAKING`] permits, one of its source's
/// [`MAX_HANDSHAKING_PER_SOURCE`], and the deadline of the whole handshake.
pub(crate) struct PreAuth {
    _permit: tokio::sync::OwnedSemaphorePermit,
    _source: crate::limits::Slot,
    pub(crate) deadline: tokio::time::Instant,
}

/// Connections in handshake per source address (the total is the
/// semaphore's).
fn handshaking() -> Arc<crate::limits::Counts> {
    let per_source = u32::try_from(MAX_HANDSHAKING_PER_SOURCE).expect("small constant");
    crate::limits::Counts::new(u32::MAX, per_source)
}

/// Pure check of a registration against the stored tunnel: the secret is
/// compared in constant time, and the account must match.
pub(crate) fn check_registration(reg: &Register, tunnel: Option<&Tunnel>) -> Result<(), Refusal> {
    let unknown = || Refusal {
        code: RefuseCode::UnknownTunnel,
        message: format!(
            "tunnel {} is not known to this edge (deleted, or created on another edge)",
            uuid::Uuid::from_bytes(reg.tunnel_id)
        ),
    };
    let Some(t) = tunnel else {
        return Err(unknown());
    };
    let secret_ok = burrow_store::secret::verify(&t.secret, reg.secret.expose());
    let account_ok = t.account_id.as_bytes() == &reg.account_id;
    if !secret_ok || !account_ok {
        return Err(Refusal {
            code: RefuseCode::BadSecret,
            message: format!(
                "tunnel secret does not match for tunnel {}: check the credentials file",
                t.id
            ),
        });
    }
    Ok(())
}

/// Accept loop of the HTTP/2 (TCP) side.
pub(crate) async fn run_tcp(
    shared: Arc<Shared>,
    listener: TcpListener,
    shutdown: CancellationToken,
) {
    let Some(tls) = shared.h2_tls.clone() else {
        return;
    };
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKING));
    let sources = handshaking();
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => return,
            p = permits.clone().acquire_owned() => p.expect("semaphore never closed"),
        };
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = burrow_transport::accept_tcp(&listener) => r,
        };
        let Ok(slot) = sources.admit(peer.ip()) else {
            debug!(%peer, "too many connections in handshake from this address; closed");
            continue;
        };
        let pre = PreAuth {
            _permit: permit,
            _source: slot,
            deadline: tokio::time::Instant::now() + HANDSHAKE_TIMEOUT,
        };
        let shared2 = shared.clone();
        let tls = tls.clone();
        let sd = shutdown.clone();
        shared.tasks.spawn(
            async move {
                let res = burrow_transport::h2::accept(tcp, tls, HANDSHAKE_TIMEOUT).await;
                match res {
                    Ok((conn, control)) => serve_conn(shared2, conn, control, peer, sd, pre).await,
                    Err(e) => debug!(error = %e, "HTTP/2 tunnel handshake failed"),
                }
            }
            .instrument(tracing::info_span!("tunnel_conn", %peer, protocol = "http2")),
        );
    }
}

/// Accept loop of the QUIC (UDP) side.
pub(crate) async fn run_quic(
    shared: Arc<Shared>,
    endpoint: quinn::Endpoint,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKING));
    let sources = handshaking();
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => p.expect("semaphore never closed"),
        };
        let incoming = tokio::select! {
            _ = shutdown.cancelled() => break,
            i = endpoint.accept() => match i { Some(i) => i, None => break },
        };
        let peer = incoming.remote_address();
        let Ok(slot) = sources.admit(peer.ip()) else {
            debug!(%peer, "too many connections in handshake from this address; refused");
            incoming.refuse();
            continue;
        };
        let pre = PreAuth {
            _permit: permit,
            _source: slot,
            deadline: tokio::time::Instant::now() + HANDSHAKE_TIMEOUT,
        };
        let shared2 = shared.clone();
        let sd = shutdown.clone();
        shared.tasks.spawn(
            async move {
                let res = burrow_transport::quic::accept(incoming, HANDSHAKE_TIMEOUT).await;
                match res {
                    Ok((conn, control)) => serve_conn(shared2, conn, control, peer, sd, pre).await,
                    Err(e) => debug!(error = %e, "QUIC tunnel handshake failed"),
                }
            }
            .instrument(tracing::info_span!("tunnel_conn", %peer, protocol = "quic")),
        );
    }
    endpoint.set_server_config(None);
}

async fn read_registration(
    control: &mut BoxStream,
    reader: &mut FrameReader,
) -> Result<Register, TransportError> {
    reader.read_preface(control).await?;
    match reader.read_frame(control).await? {
        Frame::Register(r) => Ok(r),
        other => Err(TransportError::Protocol(format!(
            "expected Register as the first frame, got {other:?}"
        ))),
    }
}

async fn serve_conn(
    shared: Arc<Shared>,
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
    if reg.features.iter().any(|f| f == crate::peer::FEATURE) {
        crate::peer::serve(shared, conn, control, reg, peer, shutdown, pre).await;
        return;
    }
    if reg.features.iter().any(|f| f == crate::client::FEATURE) {
        crate::client::serve(shared, conn, control, reg, peer, shutdown, pre).await;
        return;
    }
    if matches!(conn, EdgeConn::H2Served(_)) {
        let why = "connectors use ALPN burrow-h2/1 (the edge opens the streams)";
        refuse(&mut control, &conn, RefuseCode::Internal, why).await;
        return;
    }
    let tunnel_id = uuid::Uuid::from_bytes(reg.tunnel_id);
    let connector_id = uuid::Uuid::from_bytes(reg.connector_id);
    let tunnel = match shared.store.tunnel(tunnel_id).await {
        Ok(t) => t,
        Err(e) => {
            warn!(error = %e, "state lookup failed during registration");
            refuse(
                &mut control,
                &conn,
                RefuseCode::Internal,
                "edge state unavailable",
            )
            .await;
            return;
        }
    };
    if let Err(refusal) = check_registration(&reg, tunnel.as_ref()) {
        warn!(%tunnel_id, %connector_id, reason = %refusal.message, "registration refused");
        refuse(&mut control, &conn, refusal.code, &refusal.message).await;
        return;
    }
    if shutdown.is_cancelled() {
        refuse(
            &mut control,
            &conn,
            RefuseCode::ShuttingDown,
            "edge is shutting down",
        )
        .await;
        return;
    }
    let Some(tunnel) = tunnel else {
        return;
    };
    let (admitted, _) = shared.grants.admit(crate::authz::Grant::Connector {
        tunnel: tunnel_id,
        secret: crate::authz::digest(&tunnel.secret),
    });
    let conn_id = uuid::Uuid::new_v4();
    let reply = Frame::Registered(RegisteredFrame {
        connection_id: *conn_id.as_bytes(),
        colo: shared.colo.clone(),
    });
    conn.authorize();
    drop(pre);
    if let Err(e) = write_frame(&mut control, &reply, false).await {
        debug!(error = %e, "could not confirm registration");
        conn.close();
        return;
    }
    let now = unix_now();
    let record = burrow_store::Connection {
        id: conn_id,
        tunnel_id,
        connector_id,
        conn_index: reg.conn_index,
        colo: shared.colo.clone(),
        node_id: shared.node_id.clone(),
        protocol: conn.protocol().as_str().to_owned(),
        origin_ip: peer.ip().to_string(),
        version: reg.version.clone(),
        since: now,
        seen_at: now,
    };
    if let Err(e) = shared.store.add_connection(&record).await {
        warn!(error = %e, "could not record the connection in the state store");
    }
    let mux = match &conn {
        EdgeConn::Quic(q) if reg.features.iter().any(|f| f == quic_datagrams::FEATURE) => {
            let mux = quic_datagrams::DatagramMux::new(q.clone());
            shared.tasks.spawn(mux.clone().run());
            Some(mux)
        }
        _ => None,
    };
    let registered = Arc::new(Registered {
        id: conn_id,
        conn: conn.clone(),
        draining: false.into(),
        mux,
    });
    shared.registry.add(tunnel_id, registered.clone());
    shared.metrics.tunnel_connections.inc();
    let by_tunnel = crate::metrics::TunnelLabels {
        tunnel_id: tunnel_id.to_string(),
        colo: shared.colo.clone(),
    };
    shared
        .metrics
        .tunnel_connections_by_tunnel
        .get_or_create(&by_tunnel)
        .inc();
    info!(
        %tunnel_id, %connector_id, conn_index = reg.conn_index, connection_id = %conn_id,
        version = %reg.version, "tunnel connection registered"
    );

    // Watch the control stream for GoAway until the connection ends.
    loop {
        tokio::select! {
            _ = conn.closed() => break,
            why = admitted.live.revoked() => {
                warn!(
                    %tunnel_id, %connector_id, connection_id = %conn_id, reason = why.message(),
                    "access revoked; closing the tunnel connection and its flows"
                );
                shared.registry.remove(tunnel_id, conn_id);
                let code = match why {
                    crate::authz::Revocation::TunnelDeleted => RefuseCode::UnknownTunnel,
                    _ => RefuseCode::BadSecret,
                };
                refuse(&mut control, &conn, code, why.message()).await;
                break;
            }
            f = reader.read_frame(&mut control) => match f {
                Ok(Frame::GoAway) => {
                    info!(connection_id = %conn_id, "connector is draining; no new flows on this connection");
                    registered.draining.store(true, Ordering::Relaxed);
                    shared.registry.remove(tunnel_id, conn_id);
                }
                Ok(other) => debug!(frame = other.kind_name(), "ignoring unexpected control frame"),
                Err(_) => {
                    // Control stream ended: treat as GoAway, keep serving
                    // open flows until the connection closes.
                    registered.draining.store(true, Ordering::Relaxed);
                    shared.registry.remove(tunnel_id, conn_id);
                    conn.closed().await;
                    break;
                }
            },
        }
    }
    shared.registry.remove(tunnel_id, conn_id);
    shared.metrics.tunnel_connections.dec();
    shared
        .metrics
        .tunnel_connections_by_tunnel
        .get_or_create(&by_tunnel)
        .dec();
    if let Err(e) = shared.store.remove_connection(conn_id).await {
        warn!(error = %e, "could not remove the connection from the state store");
    }
    info!(connection_id = %conn_id, "tunnel connection closed");
}

/// Answers a client's or peer's registration; `false` (connection closed)
/// when the answer cannot be sent.
pub(crate) async fn accept_registration(
    control: &mut BoxStream,
    conn: &EdgeConn,
    colo: &str,
    pre: PreAuth,
) -> bool {
    let reply = Frame::Registered(RegisteredFrame {
        connection_id: *uuid::Uuid::new_v4().as_bytes(),
        colo: colo.to_owned(),
    });
    conn.authorize();
    drop(pre);
    if write_frame(control, &reply, false).await.is_err() {
        conn.close();
        return false;
    }
    true
}

/// Refuses a registration with the reason, then closes the connection
/// (connectors, zero-trust clients and peer edges alike).
pub(crate) async fn refuse(
    control: &mut BoxStream,
    conn: &EdgeConn,
    code: RefuseCode,
    message: &str,
) {
    let frame = Frame::Refused(Refusal {
        code,
        message: message.to_owned(),
    });
    let _ = write_frame(control, &frame, false).await;
    let _ = tokio::io::AsyncWriteExt::shutdown(control).await;
    // Give the refusal a moment to reach the connector before closing.
    tokio::time::sleep(Duration::from_millis(200)).await;
    conn.close();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(secret: &[u8], account: uuid::Uuid, tunnel: uuid::Uuid) -> Register {
        Register {
            account_id: *account.as_bytes(),
            tunnel_id: *tunnel.as_bytes(),
            secret: secret.to_vec().into(),
            connector_id: [0; 16],
            conn_index: 0,
            version: String::new(),
            features: vec![],
        }
    }

    #[test]
    fn registration_checks_secret_account_and_existence() {
        let t = Tunnel {
            id: uuid::Uuid::new_v4(),
            account_id: uuid::Uuid::new_v4(),
            name: "t".into(),
            secret: vec![5; 32],
            created_at: 0,
        };
        assert!(check_registration(&reg(&[5; 32], t.account_id, t.id), Some(&t)).is_ok());
        let e = check_registration(&reg(&[6; 32], t.account_id, t.id), Some(&t)).unwrap_err();
        assert_eq!(e.code, RefuseCode::BadSecret);
        assert!(e.message.contains("secret does not match"));
        let e = check_registration(&reg(&[5; 31], t.account_id, t.id), Some(&t)).unwrap_err();
        assert_eq!(e.code, RefuseCode::BadSecret);
        let e =
            check_registration(&reg(&[5; 32], uuid::Uuid::new_v4(), t.id), Some(&t)).unwrap_err();
        assert_eq!(e.code, RefuseCode::BadSecret);
        let e = check_registration(&reg(&[5; 32], t.account_id, t.id), None).unwrap_err();
        assert_eq!(e.code, RefuseCode::UnknownTunnel);
    }
}
