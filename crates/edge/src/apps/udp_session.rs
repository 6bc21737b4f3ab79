//! UDP app sessions: the port and session model, and the tasks that are
//! not the port's receive loop ([`super::udp`]): a session through a
//! tunnel, a session whose DNS origin is being resolved, and the origin's
//! replies carried back to the client.

use super::compiled::Compiled;
use crate::context::Ctx;
use crate::telemetry::metrics::FlowLabels;
use burrow_config::app::Origin;
use burrow_proto::close::CloseReason;
use burrow_proto::StreamOpen;
use burrow_transport::datagrams::{write_datagram, DatagramReader};
use burrow_transport::quic_datagrams::next_from;
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, Instrument};

/// Largest datagram carried.
pub(crate) const MAX_DATAGRAM: usize = 65_535;

/// Where a session's datagrams go.
pub(crate) enum Upstream {
    /// A socket connected to a direct or DNS origin.
    Socket(Arc<UdpSocket>),
    /// The queue of a session's own task: a flow stream through a
    /// tunnel, or a DNS origin still being resolved.
    Queue(mpsc::Sender<Bytes>),
}

pub(crate) struct Session {
    pub(crate) upstream: Upstream,
    /// Milliseconds since `epoch` of the last datagram either way.
    pub(crate) last: AtomicU64,
    /// The app's `idle_timeout`: the session ends after this long without
    /// a datagram either way.
    idle: Duration,
    /// Counts against the app's `max_connections` and
    /// `max_connections_per_ip` while the session lives.
    _slot: crate::limits::Slot,
}

/// One edge port's sessions.
pub(crate) struct Port {
    pub(crate) socket: Arc<UdpSocket>,
    pub(crate) local: SocketAddr,
    pub(crate) sessions: Mutex<HashMap<SocketAddr, Arc<Session>>>,
    pub(crate) epoch: Instant,
}

impl Port {
    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// A non-blocking UDP socket connected to `origin` (both calls return at
/// once: no await in the port's receive loop).
pub(crate) fn origin_socket(origin: SocketAddr) -> std::io::Result<UdpSocket> {
    use burrow_transport::udp;
    let sock = udp::bind(udp::any_for(origin), udp::SESSION_BUFFER)?;
    sock.connect(origin)?;
    UdpSocket::from_std(sock)
}

/// Registers a new session of `client` on `port` and counts it.
pub(crate) fn add_session(
    ctx: &Ctx,
    app: &Compiled,
    port: &Port,
    client: SocketAddr,
    upstream: Upstream,
    slot: crate::limits::Slot,
) -> Arc<Session> {
    let session = Arc::new(Session {
        upstream,
        last: AtomicU64::new(port.now_ms()),
        idle: app.spec.limits.idle_timeout,
        _slot: slot,
    });
    port.sessions
        .lock()
        .expect("session map lock poisoned")
        .insert(client, session.clone());
    ctx.telemetry.metrics.udp_sessions.inc();
    ctx.telemetry
        .metrics
        .flows
        .get_or_create(&FlowLabels::of(&app.spec))
        .inc();
    session
}

/// Round-robin over the app's origin addresses (DNS origins: the addresses
/// resolved last, at most a TTL ago).
pub(crate) fn pick_origin(app: &Compiled, edge_port: u16) -> Option<SocketAddr> {
    let targets: Vec<SocketAddr> = match &app.spec.origin {
        Origin::Direct(list) => list
            .iter()
            .filter_map(|o| o.ports.map(edge_port).map(|p| SocketAddr::new(o.ip, p)))
            .collect(),
        Origin::Dns { ports, .. } => {
            let ips = app.cached_dns();
            ips.into_iter()
                .filter_map(|ip| ports.map(edge_port).map(|p| SocketAddr::new(ip, p)))
                .collect()
        }
        Origin::Tunnel { .. } => Vec::new(),
    };
    if targets.is_empty() {
        return None;
    }
    let i = app.next_index() % targets.len();
    Some(targets[i])
}

/// How long the session may still wait without datagrams either way;
/// `None` once it has been idle for the app's `idle_timeout`.
pub(crate) fn idle_left(port: &Port, session: &Session) -> Option<Duration> {
    let idle_ms = u64::try_from(session.idle.as_millis()).unwrap_or(u64::MAX);
    let since = port
        .now_ms()
        .saturating_sub(session.last.load(Ordering::Relaxed));
    (since < idle_ms).then(|| Duration::from_millis(idle_ms - since))
}

/// One UDP session through a tunnel: opens the flow stream, then relays
/// queued datagrams to it and its datagrams back to the client, until
/// the session idles or the stream ends.
pub(crate) async fn tunnel_session(
    ctx: Arc<Ctx>,
    tunnel_id: uuid::Uuid,
    header: StreamOpen,
    port: Arc<Port>,
    session: Arc<Session>,
    mut queue: mpsc::Receiver<Bytes>,
    stop: CancellationToken,
) {
    let (client, flow_id) = (header.client_addr, header.flow_id);
    let span = tracing::info_span!("flow", flow_id, %client);
    let opened = crate::tunnel::reach::open_tunnel_stream(&ctx, tunnel_id, header)
        .instrument(span.clone())
        .await;
    match opened {
        Ok((stream, leftover, via)) => {
            let mux = via.and_then(|v| v.mux.clone());
            // One INFO line per session, when it closes.
            span.in_scope(|| {
                tracing::debug!(
                    quic_datagrams = mux.is_some(),
                    "UDP session opened through the tunnel"
                )
            });
            let mut from_mux = mux.as_ref().map(|m| m.register(flow_id));
            let (mut rd, mut wr) = tokio::io::split(stream);
            let mut reader = DatagramReader::new(leftover);
            let mut scratch = BytesMut::new();
            // Datagrams to / from the connector, as QUIC datagrams and framed.
            let (mut quic_out, mut quic_in, mut framed_out, mut framed_in) =
                (0u64, 0u64, 0u64, 0u64);
            while let Some(wait) = idle_left(&port, &session) {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(wait) => continue,
                    d = queue.recv() => match d {
                        Some(d) => {
                            // QUIC datagram when it fits; framed on the stream otherwise.
                            if mux.as_ref().is_some_and(|m| m.send(flow_id, &d)) {
                                quic_out += 1;
                            } else if write_datagram(&mut wr, &d, &mut scratch).await.is_ok() {
                                framed_out += 1;
                            } else {
                                break;
                            }
                        }
                        None => break,
                    },
                    d = next_from(&mut from_mux) => {
                        quic_in += 1;
                        session.last.store(port.now_ms(), Ordering::Relaxed);
                        let _ = port.socket.send_to(&d, client).await;
                    }
                    d = reader.next(&mut rd) => match d {
                        Ok(Some(d)) => {
                            framed_in += 1;
                            session.last.store(port.now_ms(), Ordering::Relaxed);
                            let _ = port.socket.send_to(&d, client).await;
                        }
                        _ => break,
                    },
                }
            }
            let _ = wr.shutdown().await;
            count_idle(&ctx, &port, &session);
            if let Some(m) = &mux {
                m.unregister(flow_id);
            }
            span.in_scope(|| {
                info!(
                    quic_out,
                    quic_in, framed_out, framed_in, "UDP session through the tunnel closed"
                );
            });
        }
        Err(reason) => {
            ctx.telemetry
                .metrics
                .flow_errors
                .get_or_create(&FlowLabels {
                    protocol: crate::telemetry::metrics::L4::udp,
                    origin: crate::telemetry::metrics::OriginKind::tunnel,
                })
                .inc();
            span.in_scope(|| info!(%reason, "UDP session through the tunnel failed"));
        }
    }
    ctx.telemetry.metrics.udp_sessions.dec();
    port.sessions
        .lock()
        .expect("session map lock poisoned")
        .remove(&client);
    span.in_scope(|| debug!("UDP session closed"));
}

/// A session of a DNS origin whose addresses were stale: resolves, opens
/// the origin socket, then forwards the queued datagrams (and later ones)
/// while [`replies`] carries the answers back. A failed lookup ends the
/// session (its datagrams are dropped) and is logged.
pub(crate) async fn resolving_session(
    ctx: Arc<Ctx>,
    app: Arc<Compiled>,
    port: Arc<Port>,
    session: Arc<Session>,
    mut queue: mpsc::Receiver<Bytes>,
    stop: CancellationToken,
    client: SocketAddr,
) {
    let Origin::Dns { name, ttl, .. } = &app.spec.origin else {
        return;
    };
    let opened = match crate::apps::origin::resolve(&ctx, &app, name, *ttl).await {
        Ok(_) => pick_origin(&app, port.local.port())
            .ok_or_else(|| format!("{name} has no address for this port"))
            .and_then(|a| origin_socket(a).map_err(|e| format!("{a}: {e}"))),
        Err(e) => Err(e.to_string()),
    };
    let origin = match opened {
        Ok(s) => Arc::new(s),
        Err(reason) => {
            debug!(%client, %reason, "UDP session not opened");
            port.sessions
                .lock()
                .expect("session map lock poisoned")
                .remove(&client);
            ctx.telemetry.metrics.udp_sessions.dec();
            return;
        }
    };
    let forward = {
        let origin = origin.clone();
        async move {
            while let Some(d) = queue.recv().await {
                if let Err(e) = origin.send(&d).await {
                    debug!(%client, error = %e, "could not forward a datagram to the origin");
                }
            }
        }
    };
    // The forwarder ends when the session is gone (its queue's sender
    // with it); replies end the session when it idles.
    tokio::join!(forward, replies(ctx, port, session, origin, client, stop));
}

/// Carries the origin's replies back to `client` until the session idles.
pub(crate) async fn replies(
    ctx: Arc<Ctx>,
    port: Arc<Port>,
    session: Arc<Session>,
    origin: Arc<UdpSocket>,
    client: SocketAddr,
    stop: CancellationToken,
) {
    while let Some(wait) = idle_left(&port, &session) {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(wait) => continue,
            r = origin.readable() => if r.is_err() { break },
        }
        let mut buf = BytesMut::with_capacity(MAX_DATAGRAM);
        loop {
            buf.clear();
            match origin.try_recv_buf(&mut buf) {
                Ok(n) => {
                    session.last.store(port.now_ms(), Ordering::Relaxed);
                    let _ = port.socket.send_to(&buf[..n], client).await;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // ICMP port unreachable and friends: keep the session, the
                // origin may come back.
                Err(_) => break,
            }
        }
    }
    count_idle(&ctx, &port, &session);
    port.sessions
        .lock()
        .expect("session map lock poisoned")
        .remove(&client);
    ctx.telemetry.metrics.udp_sessions.dec();
    debug!(%client, "UDP session closed");
}

/// Counts a session that ended because it idled (`IDLE_TIMEOUT`).
fn count_idle(ctx: &Ctx, port: &Port, session: &Session) {
    if idle_left(port, session).is_none() {
        ctx.telemetry.metrics.app_idle_closed.inc();
        debug!(reason = %CloseReason::IdleTimeout, "UDP session idle");
    }
}
