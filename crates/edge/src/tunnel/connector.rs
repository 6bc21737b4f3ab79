//! A connector's tunnel connection after its registration frame: the
//! registration is checked against the stored tunnel, the connection
//! enters the [registry](super::registry), and the control stream is
//! watched for `GoAway` and for a revoked grant until the connection ends.

use super::handshake::{check_registration, refuse, welcome, Hello, PreAuth};
use crate::context::Ctx;
use crate::tunnel::registry::Registered;
use crate::unix_now;
use burrow_proto::v2::Role;
use burrow_proto::{Frame, RefuseCode};
use burrow_transport::frames::{write_frame, FrameReader};
use burrow_transport::{quic_datagrams, BoxStream, EdgeConn};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Serves a connector's registered tunnel connection until it closes.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn serve(
    ctx: Arc<Ctx>,
    conn: EdgeConn,
    mut control: BoxStream,
    mut reader: FrameReader,
    hello: Hello,
    peer: SocketAddr,
    shutdown: CancellationToken,
    pre: PreAuth,
) {
    if matches!(conn, EdgeConn::H2Served(_)) {
        let why = "connectors use ALPN burrow-h2/1 (the edge opens the streams)";
        refuse(&mut control, &conn, RefuseCode::Internal, why).await;
        return;
    }
    let Hello { reg, wire } = hello;
    let Role::Connector {
        tunnel_id,
        connector_id,
        conn_index,
    } = reg.role
    else {
        return;
    };
    let (tunnel_id, connector_id) = (
        uuid::Uuid::from_bytes(tunnel_id),
        uuid::Uuid::from_bytes(connector_id),
    );
    // While the store is away, the tunnel as last read (a query would
    // first wait for the pool).
    let store_up = ctx.telemetry.metrics.store_up.get() == 1;
    let looked_up = if store_up {
        ctx.store.tunnel(tunnel_id).await.map_err(|e| e.to_string())
    } else {
        Err("the state store is away".to_owned())
    };
    let tunnel = match looked_up {
        Ok(t) => {
            ctx.known_tunnels.learn(tunnel_id, t.as_ref());
            t
        }
        Err(e) => match ctx.known_tunnels.get(tunnel_id) {
            Some(t) => {
                warn!(%tunnel_id, error = %e, "the state store is unreachable; checking the connector against the tunnel as last read");
                Some(t)
            }
            None => {
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
        },
    };
    if let Err(refusal) = check_registration(
        &reg.account_id,
        tunnel_id.as_bytes(),
        &reg.secret,
        tunnel.as_ref(),
    ) {
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
    let (admitted, _) = ctx.grants.admit(crate::authz::Grant::Connector {
        tunnel: tunnel_id,
        secret: crate::authz::digest(&tunnel.secret),
    });
    let conn_id = uuid::Uuid::new_v4();
    // What the edge uses of what the connector offered.
    let datagrams = matches!(conn, EdgeConn::Quic(_))
        && reg.features.iter().any(|f| f == quic_datagrams::FEATURE);
    let acks = reg
        .features
        .iter()
        .any(|f| f == burrow_proto::FEATURE_STREAM_ACK);
    let used = [
        (datagrams, quic_datagrams::FEATURE),
        (acks, burrow_proto::FEATURE_STREAM_ACK),
    ];
    let used = used
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, f)| (*f).to_owned());
    let reply = welcome(wire, conn_id, &ctx.id, used.collect());
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
        conn_index,
        colo: ctx.id.colo.clone(),
        node_id: ctx.id.node_id.clone(),
        protocol: conn.protocol().as_str().to_owned(),
        origin_ip: peer.ip().to_string(),
        version: reg.version.clone(),
        since: now,
        seen_at: now,
        wire,
        kx: conn.key_exchange().unwrap_or_default(),
    };
    let mux = match &conn {
        EdgeConn::Quic(q) if datagrams => {
            let mux = quic_datagrams::DatagramMux::new(q.connection().clone());
            ctx.tasks.spawn(mux.clone().run());
            Some(mux)
        }
        _ => None,
    };
    let registered = Arc::new(Registered::new(record, conn.clone(), mux, acks));
    ctx.registry.add(tunnel_id, registered.clone());
    ctx.telemetry.metrics.tunnel_connections.inc();
    ctx.telemetry
        .metrics
        .key_exchanges
        .get_or_create(&crate::telemetry::metrics::KxLabels {
            group: match registered.record.kx.as_str() {
                "" => "unknown".to_owned(),
                g => g.to_owned(),
            },
        })
        .inc();
    let by_tunnel = crate::telemetry::metrics::TunnelLabels {
        tunnel_id: tunnel_id.to_string(),
        colo: ctx.id.colo.clone(),
    };
    ctx.telemetry
        .metrics
        .tunnel_connections_by_tunnel
        .get_or_create(&by_tunnel)
        .inc();
    // In the registry first, so flows through this node use the connection
    // at once; then in the store (for the cluster and `tunnel info`) when
    // it answers, or when it returns if it is away (`follow` records the
    // registry again).
    if store_up {
        if let Err(e) = ctx.store.add_connection(&registered.record).await {
            warn!(error = %e, "could not record the connection in the state store");
        }
    }
    info!(
        %tunnel_id, %connector_id, conn_index, wire, connection_id = %conn_id,
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
                ctx.registry.remove(tunnel_id, conn_id);
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
                    ctx.registry.remove(tunnel_id, conn_id);
                }
                Ok(other) => debug!(frame = other.kind_name(), "ignoring unexpected control frame"),
                Err(_) => {
                    // Control stream ended: treat as GoAway, keep serving
                    // open flows until the connection closes.
                    registered.draining.store(true, Ordering::Relaxed);
                    ctx.registry.remove(tunnel_id, conn_id);
                    conn.closed().await;
                    break;
                }
            },
        }
    }
    ctx.registry.remove(tunnel_id, conn_id);
    ctx.telemetry.metrics.tunnel_connections.dec();
    ctx.telemetry
        .metrics
        .tunnel_connections_by_tunnel
        .get_or_create(&by_tunnel)
        .dec();
    if let Err(e) = ctx.store.remove_connection(conn_id).await {
        warn!(error = %e, "could not remove the connection from the state store");
    }
    info!(connection_id = %conn_id, "tunnel connection closed");
}
