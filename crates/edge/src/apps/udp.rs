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
//! tunnel too: the connector passes datagrams on unchanged). A session ends after the app's `idle_timeout` (default 60 s) without traffic
//! in either direction.
//!
//! Memory: no per-port buffer is held while idle; a 64 KiB buffer is taken
//! only while a socket has datagrams to drain.

use super::udp_session::{
    self as udp_session, add_session, origin_socket, pick_origin, Port, Session, Upstream,
    MAX_DATAGRAM,
};
use crate::apps::compiled::{AppCell, Compiled};
use crate::context::Ctx;
use burrow_config::app::{Origin, ProxyProtocol};
use burrow_policy::access::decide;
use burrow_proto::proxy_header::{proxy_header, simple_header, ProxyVersion, Transport};
use burrow_proto::{FlowKind, StreamOpen};
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// Most concurrent client sessions per edge port; new clients beyond it
/// are dropped until sessions end.
pub(crate) const MAX_SESSIONS: usize = 16_384;
/// Datagrams queued toward a tunnel stream per session; more are dropped.
pub(crate) const TUNNEL_QUEUE: usize = 256;

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
            ctx.tasks.spawn_flow(udp_session::resolving_session(
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
        ctx.tasks.spawn_flow(udp_session::tunnel_session(
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
    ctx.tasks.spawn_flow(udp_session::replies(
        ctx.clone(),
        port.clone(),
        session.clone(),
        origin,
        client,
        stop.clone(),
    ));
    Some(session)
}
