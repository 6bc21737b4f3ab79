//! UDP apps: per-client sessions between an edge port and a direct, DNS or
//! tunnel origin.
//!
//! Each edge port has one socket and one task. The first datagram from a
//! client address opens a session: IP access rules are checked (apps with
//! `ip_firewall`), then
//! - direct/DNS origin: an origin address is chosen round-robin, and a
//!   socket connected to it is opened for this client alone, so the
//!   origin's replies go back to the right client;
//! - tunnel origin: a flow stream (`FlowKind::Udp`) is opened to a
//!   connector, which relays to its `udp://` ingress service; datagrams
//!   travel framed on that stream (2-byte length each, both directions),
//!   on QUIC and HTTP/2 alike. Datagrams wait in a small queue while the
//!   stream opens; when it is full they are dropped.
//!
//! Every datagram is forwarded as one datagram (never merged or split),
//! optionally behind a PROXY v2 or Simple Proxy Protocol header (through a
//! tunnel too: the connector passes datagrams on unchanged). A session ends after [`SESSION_IDLE`] without traffic
//! in either direction.
//!
//! Memory: no per-port buffer is held while idle; a 64 KiB buffer is taken
//! only while a socket has datagrams to drain.

use crate::apps::compiled::{AppCell, Compiled};
use crate::context::Ctx;
use crate::telemetry::metrics::FlowLabels;
use burrow_config::app::{Origin, ProxyProtocol};
use burrow_policy::access::decide;
use burrow_proto::proxy_header::{proxy_header, simple_header, ProxyVersion, Transport};
use burrow_proto::{FlowKind, StreamOpen};
use burrow_transport::datagrams::{write_datagram, DatagramReader};
use burrow_transport::quic_datagrams::next_from;
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing::{debug, info};

/// A session without datagrams in either direction for this long ends.
pub(crate) const SESSION_IDLE: Duration = Duration::from_secs(60);
/// Most concurrent client sessions per edge port; new clients beyond it
/// are dropped until sessions end.
pub(crate) const MAX_SESSIONS: usize = 16_384;
/// Largest datagram carried.
pub(crate) const MAX_DATAGRAM: usize = 65_535;
/// Datagrams queued toward a tunnel stream per session; more are dropped.
pub(crate) const TUNNEL_QUEUE: usize = 256;

/// Where a session's datagrams go.
pub(crate) enum Upstream {
    /// A socket connected to a direct or DNS origin.
    Socket(Arc<UdpSocket>),
    /// The queue of a session's own task: a flow stream through a
    /// tunnel, or a DNS origin still being resolved.
    Queue(mpsc::Sender<Bytes>),
}

pub(crate) struct Session {
    upstream: Upstream,
    /// Milliseconds since `epoch` of the last datagram either way.
    last: AtomicU64,
    /// Counts against the app's `max_connections` and
    /// `max_connections_per_ip` while the session lives.
    _slot: crate::limits::Slot,
}

/// One edge port's sessions.
pub(crate) struct Port {
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    sessions: Mutex<HashMap<SocketAddr, Arc<Session>>>,
    epoch: Instant,
}

impl Port {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Serves one UDP edge port until `stop`.
pub(crate) async fn run_port(
    ctx: Arc<Ctx>,
    cell: AppCell,
    socket: UdpSocket,
    stop: CancellationToken,
) {
    let Ok(local) = socket.local_addr() else {
        return;
    };
    let port = Arc::new(Port {
        socket: Arc::new(socket),
        local,
        sessions: Mutex::new(HashMap::new()),
        epoch: Instant::now(),
    });
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            r = port.socket.readable() => if r.is_err() { return },
        }
        // Drain what is queued with one buffer, then let it go.
        let mut buf = BytesMut::with_capacity(MAX_DATAGRAM);
        loop {
            buf.clear();
            let (n, client) = match port.socket.try_recv_buf_from(&mut buf) {
                Ok(x) => x,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    debug!(error = %e, "UDP receive failed");
                    break;
                }
            };
            let app = cell.read().expect("app cell lock poisoned").clone();
            // Never awaits: a new client whose session takes time to set
            // up (a DNS lookup, a tunnel stream) gets a queue and a task,
            // so other clients' datagrams are not held behind it.
            let session = match session_for(&ctx, &app, &port, client, &stop) {
                Some(s) => s,
                None => continue,
            };
            session.last.store(port.now_ms(), Ordering::Relaxed);
            let datagram = &buf[..n];
            let with_header: Option<Vec<u8>> = match app.spec.proxy_protocol {
                ProxyProtocol::V2 => {
                    let mut d =
                        proxy_header(ProxyVersion::V2, Transport::Datagram, client, port.local);
                    d.extend_from_slice(datagram);
                    Some(d)
                }
                ProxyProtocol::Simple => {
                    let mut d = simple_header(client, port.local).to_vec();
                    d.extend_from_slice(datagram);
                    Some(d)
                }
                ProxyProtocol::Off | ProxyProtocol::V1 => None,
            };
            let d = with_header.as_deref().unwrap_or(datagram);
            match &session.upstream {
                // A full socket buffer drops the datagram, as a congested
                // link would; so does a full queue.
                // A plain non-blocking send(2): tokio's try_send would
                // wait for a first writable event of a new socket.
                Upstream::Socket(origin) => {
                    if let Err(e) = socket2::SockRef::from(&**origin).send(d) {
                        debug!(%client, error = %e, "could not forward a datagram to the origin");
                    }
                }
                Upstream::Queue(tx) => {
                    if tx.try_send(Bytes::copy_from_slice(d)).is_err() {
                        debug!(%client, "tunnel queue full or closed; datagram dropped");
                    }
                }
            }
        }
    }
}

/// The session of `client`, opening one (after the access rules) when new.
pub(crate) fn session_for(
    ctx: &Arc<Ctx>,
    app: &Arc<Compiled>,
    port: &Arc<Port>,
    client: SocketAddr,
    stop: &CancellationToken,
) -> Option<Arc<Session>> {
    if let Some(s) = port
        .sessions
        .lock()
        .expect("session map lock poisoned")
        .get(&client)
    {
        return Some(s.clone());
    }
    if app.spec.ip_firewall {
        let d = decide(
            &ctx.tables.now().access,
            &ctx.files.geoip.load().facts(client.ip()),
        );
        ctx.telemetry
            .metrics
            .access_decision(burrow_config::app::L4::Udp, d.allowed);
        if !d.allowed {
            debug!(%client, "UDP datagram blocked by an IP access rule");
            return None;
        }
    }
    if port
        .sessions
        .lock()
        .expect("session map lock poisoned")
        .len()
        >= MAX_SESSIONS
    {
        debug!(%client, "too many UDP sessions on this port; datagram dropped");
        return None;
    }
    // New sessions cost a socket and a task: a source (spoofed or not)
    // may open only so many a second.
    if !ctx
        .apps
        .udp_rate
        .allow(client.ip(), std::time::Instant::now())
    {
        super::refusal::refused(ctx, app, crate::limits::Refused::TooFast, client);
        return None;
    }
    let slot = match app.counts.admit(client.ip()) {
        Ok(s) => s,
        Err(why) => {
            super::refusal::refused(ctx, app, why, client);
            return None;
        }
    };
    if let Origin::Dns { ttl, .. } = &app.spec.origin {
        if !app.dns_fresh(*ttl) {
            // The name must be looked up: in the session's own task, its
            // datagrams queued meanwhile.
            let (tx, rx) = mpsc::channel(TUNNEL_QUEUE);
            let session = add_session(ctx, app, port, client, Upstream::Queue(tx), slot);
            ctx.tasks.spawn_flow(resolving_session(
                ctx.clone(),
                app.clone(),
                port.clone(),
                session.clone(),
                rx,
                stop.clone(),
                client,
            ));
            return Some(session);
        }
    }
    if let Origin::Tunnel { hostname, .. } = &app.spec.origin {
        let tunnel_id = app.tunnel_id?;
        let (tx, rx) = mpsc::channel(TUNNEL_QUEUE);
        let session = add_session(ctx, app, port, client, Upstream::Queue(tx), slot);
        let header = StreamOpen {
            kind: FlowKind::Udp,
            flow_id: ctx.tasks.next_flow(),
            hostname: hostname.clone(),
            edge_port: port.local.port(),
            client_addr: client,
        };
        ctx.tasks.spawn_flow(tunnel_session(
            ctx.clone(),
            tunnel_id,
            header,
            port.clone(),
            session.clone(),
            rx,
            stop.clone(),
        ));
        return Some(session);
    }
    let origin_addr = pick_origin(app, port.local.port())?;
    let origin = match origin_socket(origin_addr) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            debug!(%client, origin = %origin_addr, error = %e, "UDP session not opened");
            return None;
        }
    };
    let session = add_session(
        ctx,
        app,
        port,
        client,
        Upstream::Socket(origin.clone()),
        slot,
    );
    debug!(%client, origin = %origin_addr, "UDP session opened");
    ctx.tasks.spawn_flow(replies(
        ctx.clone(),
        port.clone(),
        session.clone(),
        origin,
        client,
        stop.clone(),
    ));
    Some(session)
}

/// A non-blocking UDP socket connected to `origin` (both calls return at
/// once: no await in the port's receive loop).
fn origin_socket(origin: SocketAddr) -> std::io::Result<UdpSocket> {
    let bind: SocketAddr = if origin.is_ipv6() {
        (IpAddr::from([0u16; 8]), 0).into()
    } else {
        (IpAddr::from([0u8; 4]), 0).into()
    };
    let sock = std::net::UdpSocket::bind(bind)?;
    sock.connect(origin)?;
    sock.set_nonblocking(true)?;
    UdpSocket::from_std(sock)
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

/// How long a session waits without datagrams either way.
pub(crate) fn idle_left(port: &Port, session: &Session) -> Option<Duration> {
    let idle_ms = u64::try_from(SESSION_IDLE.as_millis()).unwrap_or(u64::MAX);
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
    let opened = crate::tunnel::open::open_tunnel_stream(&ctx, tunnel_id, header)
        .instrument(span.clone())
        .await;
    match opened {
        Ok((stream, leftover, via)) => {
            let mux = via.mux.clone();
            span.in_scope(|| {
                info!(
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
    port.sessions
        .lock()
        .expect("session map lock poisoned")
        .remove(&client);
    ctx.telemetry.metrics.udp_sessions.dec();
    debug!(%client, "UDP session closed");
}
