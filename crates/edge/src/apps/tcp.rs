//! TCP app flows, phase by phase: [`run_listener`] takes a descriptor
//! permit, accepts, applies the app's connection limits and IP access
//! rules, then [`proxy_flow`] terminates edge TLS when asked and carries
//! the connection to the origin (a tunnel, addresses, or a DNS name) and
//! splices.

use super::compiled::{AppCell, Compiled};
use super::origin::resolve;
use crate::context::Ctx;
use crate::telemetry::metrics::Side as TlsPeer;
use crate::tunnel::reach::open_tunnel_stream;
use burrow_config::app::{Origin, ProxyProtocol, TlsMode, L4};
use burrow_policy::access::decide;
use burrow_policy::ports::PortMap;
use burrow_proto::close::{CloseReason, FlowError, Side};
use burrow_proto::proxy_header::{proxy_header, ProxyVersion, Transport};
use burrow_proto::{FlowKind, StreamOpen};
use burrow_transport::stream::AsyncStream;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, Instrument};

pub(crate) async fn run_listener(
    ctx: Arc<Ctx>,
    cell: AppCell,
    listener: TcpListener,
    stop: CancellationToken,
) {
    let Ok(edge_port) = listener.local_addr().map(|a| a.port()) else {
        return;
    };
    loop {
        // A flow to a direct or DNS origin holds two descriptors (client
        // and origin), one through a tunnel only the client's; a reserve
        // stays for the tunnel endpoint, the admin API and the listeners.
        let sockets = match &cell.read().expect("app cell lock poisoned").spec.origin {
            Origin::Tunnel { .. } => 1,
            Origin::Direct(_) | Origin::Dns { .. } => 2,
        };
        let fds = tokio::select! {
            _ = stop.cancelled() => return,
            p = super::refusal::descriptors(&ctx, "app", sockets) => p,
        };
        let (client, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            r = burrow_transport::accept_tcp(&listener) => r,
        };
        let app = cell.read().expect("app cell lock poisoned").clone();
        let slot = match app.counts.admit(peer.ip()) {
            Ok(s) => s,
            Err(why) => {
                super::refusal::refused(&ctx, &app, why, peer);
                continue;
            }
        };
        // IP access rules run before any byte is read or any origin dialled.
        if app.spec.ip_firewall {
            let d = decide(
                &ctx.tables.now().access,
                &ctx.files.geoip.load().facts(peer.ip()),
            );
            ctx.telemetry.metrics.access_decision(L4::Tcp, d.allowed);
            if !d.allowed {
                info!(client = %peer, rule_id = d.rule_id.as_deref().unwrap_or("-"), "connection blocked by an IP access rule");
                drop(client);
                continue;
            }
        }
        let _ = client.set_nodelay(true);
        let flow_id = ctx.tasks.next_flow();
        let ctx2 = ctx.clone();
        let labels = crate::telemetry::metrics::FlowLabels::of(&app.spec);
        ctx.telemetry.metrics.flows.get_or_create(&labels).inc();
        ctx.tasks.spawn_flow_holding(
            (fds, slot),
            async move {
                if let Err(reason) = proxy_flow(&ctx2, &app, client, peer, edge_port, flow_id).await
                {
                    ctx2.telemetry
                        .metrics
                        .flow_errors
                        .get_or_create(&labels)
                        .inc();
                    info!(%reason, "flow closed with error");
                }
            }
            .instrument(tracing::info_span!("flow", flow_id, client = %peer)),
        );
    }
}

/// Time a client has to finish the TLS handshake with the edge.
pub(crate) const CLIENT_TLS_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) async fn proxy_flow(
    ctx: &Ctx,
    app: &Compiled,
    client: TcpStream,
    peer: SocketAddr,
    edge_port: u16,
    flow_id: u64,
) -> Result<(), FlowError> {
    let local = client
        .local_addr()
        .map_err(|e| FlowError::io(Side::Client, e))?;
    let ends = Ends {
        peer,
        local,
        edge_port,
        flow_id,
    };
    // Each way of carrying a flow is boxed on its own: an async fn's state
    // is as large as its largest branch, and every idle flow would hold
    // the TLS branches' state (13 KB) whether it used them or not.
    if app.spec.tls == TlsMode::Off {
        return Box::pin(to_origin(ctx, app, client, ends)).await;
    }
    Box::pin(tls_flow(ctx, app, client, ends)).await
}

/// [`proxy_flow`] for a TLS app: the edge terminates the client's TLS.
async fn tls_flow(
    ctx: &Ctx,
    app: &Compiled,
    client: TcpStream,
    ends: Ends,
) -> Result<(), FlowError> {
    let cfg = ctx
        .files
        .app_tls
        .clone()
        .ok_or_else(|| FlowError::io(Side::Local, "TLS app without edge certificates"))?;
    let accept = tokio_rustls::TlsAcceptor::from(cfg).accept(client);
    let tls = handshake(ctx, TlsPeer::client, "", CLIENT_TLS_TIMEOUT, accept).await?;
    to_origin(ctx, app, tls, ends).await
}

/// A TLS handshake with the client or the origin (`peer`) within `limit`,
/// counted in the TLS metrics; errors start with `what`.
async fn handshake<T>(
    ctx: &Ctx,
    peer: TlsPeer,
    what: &str,
    limit: Duration,
    handshake: impl std::future::Future<Output = std::io::Result<T>>,
) -> Result<T, FlowError> {
    let side = match peer {
        TlsPeer::client => Side::Client,
        TlsPeer::origin => Side::Origin,
    };
    let done = tokio::time::timeout(limit, handshake)
        .await
        .map_err(|_| FlowError::io(side, format!("{what}TLS handshake timed out")))
        .and_then(|r| {
            r.map_err(|e| FlowError::io(side, format!("{what}TLS handshake failed: {e}")))
        });
    match &done {
        Ok(_) => ctx.telemetry.metrics.tls_handshake(peer),
        Err(_) => ctx.telemetry.metrics.tls_failure(peer),
    }
    done
}

/// The two ends of a flow as the edge sees them.
#[derive(Clone, Copy)]
pub(crate) struct Ends {
    /// The real client.
    peer: SocketAddr,
    /// The edge address the client connected to.
    local: SocketAddr,
    edge_port: u16,
    flow_id: u64,
}

/// Carries a (possibly TLS-terminated) client connection to the app's origin.
pub(crate) async fn to_origin<C>(
    ctx: &Ctx,
    app: &Compiled,
    client: C,
    ends: Ends,
) -> Result<(), FlowError>
where
    C: AsyncStream,
{
    let targets: Vec<(IpAddr, PortMap)> = match &app.spec.origin {
        Origin::Tunnel { hostname, .. } => {
            let tunnel_id = app
                .tunnel_id
                .ok_or_else(|| FlowError::io(Side::Local, "tunnel app without tunnel id"))?;
            return Box::pin(tunnel_flow(ctx, app, tunnel_id, hostname, client, ends)).await;
        }
        Origin::Direct(list) => list.iter().map(|o| (o.ip, o.ports)).collect(),
        Origin::Dns { name, ttl, ports } => resolve(ctx, app, name, *ttl)
            .await?
            .into_iter()
            .map(|ip| (ip, *ports))
            .collect(),
    };
    Box::pin(direct_flow(ctx, app, &targets, client, ends)).await
}

/// Dials the targets round-robin, live ones first, sends the PROXY header
/// when the app asks for one, and splices.
pub(crate) async fn direct_flow<C>(
    ctx: &Ctx,
    app: &Compiled,
    targets: &[(IpAddr, PortMap)],
    mut client: C,
    ends: Ends,
) -> Result<(), FlowError>
where
    C: AsyncStream,
{
    if targets.is_empty() {
        return Err(FlowError::new(
            Side::Origin,
            CloseReason::OriginUnreachable,
            "no addresses",
        ));
    }
    let now = Instant::now();
    let start = app.next.fetch_add(1, Ordering::Relaxed);
    let mut order: Vec<usize> = (0..targets.len())
        .map(|i| (start + i) % targets.len())
        .collect();
    // Addresses marked down go last (stable sort keeps round-robin order).
    order.sort_by_key(|&i| app.is_down(targets[i].0, now));
    let mut last_err = FlowError::new(
        Side::Origin,
        CloseReason::OriginUnreachable,
        "no address tried",
    );
    for i in order {
        let (ip, map) = targets[i];
        let edge_port = ends.edge_port;
        let Some(port) = map.map(edge_port) else {
            return Err(FlowError::io(
                Side::Local,
                format!("edge port {edge_port} outside the app range"),
            ));
        };
        let addr = SocketAddr::new(ip, port);
        match tokio::time::timeout(ORIGIN_CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(mut origin)) => {
                app.mark(ip, true);
                let _ = origin.set_nodelay(true);
                send_proxy_header(app, &mut origin, ends)
                    .await
                    .map_err(|e| {
                        FlowError::io(
                            Side::Origin,
                            format!("{addr}: sending the PROXY header: {e}"),
                        )
                    })?;
                let origin_tls = ctx.files.origin_tls.load();
                let tls = match app.spec.tls {
                    TlsMode::Full => &origin_tls.full,
                    TlsMode::Strict => &origin_tls.strict,
                    TlsMode::Off | TlsMode::Flexible => {
                        return splice_counted(ctx, app, &mut client, &mut origin).await;
                    }
                };
                let tls = tls.clone();
                return Box::pin(tls_to_origin(ctx, app, tls, ip, addr, origin, &mut client)).await;
            }
            Ok(Err(e)) => {
                app.mark(ip, false);
                last_err = FlowError::new(
                    Side::Origin,
                    burrow_transport::dial::classify(&e).close_reason(),
                    format!("{addr}: {e}"),
                );
            }
            Err(_) => {
                app.mark(ip, false);
                last_err = FlowError::new(
                    Side::Origin,
                    CloseReason::OriginTimeout,
                    format!("{addr}: no answer within {ORIGIN_CONNECT_TIMEOUT:?}"),
                );
            }
        }
    }
    Err(last_err)
}

/// The TLS leg of [`direct_flow`] (`full`/`strict` apps): a TLS client
/// handshake with the origin, then the splice.
async fn tls_to_origin<C>(
    ctx: &Ctx,
    app: &Compiled,
    tls: Arc<rustls::ClientConfig>,
    ip: IpAddr,
    addr: SocketAddr,
    origin: TcpStream,
    client: &mut C,
) -> Result<(), FlowError>
where
    C: AsyncStream,
{
    let connect = tokio_rustls::TlsConnector::from(tls).connect(origin_name(app, ip), origin);
    let what = format!("{addr}: ");
    let mut origin =
        handshake(ctx, TlsPeer::origin, &what, ORIGIN_CONNECT_TIMEOUT, connect).await?;
    splice_counted(ctx, app, client, &mut origin).await
}

/// Writes the app's PROXY v1/v2 header (if any) for this flow: the real
/// client, and the edge address it connected to.
pub(crate) async fn send_proxy_header<W>(
    app: &Compiled,
    to: &mut W,
    ends: Ends,
) -> std::io::Result<()>
where
    W: tokio::io::AsyncWrite + Unpin,
{
    if let Some(version) = proxy_version(app.spec.proxy_protocol) {
        let header = proxy_header(version, Transport::Stream, ends.peer, ends.local);
        to.write_all(&header).await?;
    }
    Ok(())
}

/// The name a `strict` origin certificate must be valid for (and the SNI
/// sent): the app's `dns.name`, else the `origin_dns` name, else the IP.
pub(crate) fn origin_name(app: &Compiled, ip: IpAddr) -> rustls::pki_types::ServerName<'static> {
    let dns = app.spec.dns_name.as_deref().or(match &app.spec.origin {
        Origin::Dns { name, .. } => Some(name.as_str()),
        _ => None,
    });
    dns.and_then(|n| rustls::pki_types::ServerName::try_from(n.to_owned()).ok())
        .unwrap_or(rustls::pki_types::ServerName::IpAddress(ip.into()))
}

pub(crate) fn proxy_version(p: ProxyProtocol) -> Option<ProxyVersion> {
    match p {
        ProxyProtocol::V1 => Some(ProxyVersion::V1),
        ProxyProtocol::V2 => Some(ProxyVersion::V2),
        ProxyProtocol::Off | ProxyProtocol::Simple => None,
    }
}

/// Splices a flow, counting it as active meanwhile (overall and for its
/// app) and adding its bytes to the app's.
pub(crate) async fn splice_counted<A, B>(
    ctx: &Ctx,
    app: &Compiled,
    a: &mut A,
    b: &mut B,
) -> Result<(), FlowError>
where
    A: AsyncStream,
    B: AsyncStream,
{
    let id = app.id.to_string();
    let m = &ctx.telemetry.metrics;
    let active = m
        .app_active
        .get_or_create(&crate::telemetry::metrics::AppLabels { app: id.clone() })
        .clone();
    m.active_flows.inc();
    active.inc();
    let res = burrow_transport::splice::splice_idle(a, b, app.spec.limits.idle_timeout).await;
    m.active_flows.dec();
    active.dec();
    match res {
        Ok((up, down)) => {
            for (direction, n) in [("to_origin", up), ("from_origin", down)] {
                m.app_bytes
                    .get_or_create(&crate::telemetry::metrics::AppBytesLabels {
                        app: id.clone(),
                        direction,
                    })
                    .inc_by(n);
            }
            debug!(bytes_up = up, bytes_down = down, "flow finished");
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
            m.app_idle_closed.inc();
            Err(FlowError::new(
                Side::Client,
                CloseReason::IdleTimeout,
                format!("closed idle: {e} (the app's idle_timeout)"),
            ))
        }
        Err(e) => Err(FlowError::io(Side::Client, format!("splice: {e}"))),
    }
}

pub(crate) async fn tunnel_flow<C>(
    ctx: &Ctx,
    app: &Compiled,
    tunnel_id: uuid::Uuid,
    hostname: &str,
    mut client: C,
    ends: Ends,
) -> Result<(), FlowError>
where
    C: AsyncStream,
{
    let header = StreamOpen {
        kind: FlowKind::Tcp,
        flow_id: ends.flow_id,
        hostname: hostname.to_owned(),
        edge_port: ends.edge_port,
        client_addr: ends.peer,
    };
    let (mut stream, leftover, _) = open_tunnel_stream(ctx, tunnel_id, header).await?;
    if !leftover.is_empty() {
        client
            .write_all(&leftover)
            .await
            .map_err(|e| FlowError::io(Side::Client, e))?;
    }
    drop(leftover);
    // The connector passes stream bytes to the origin unchanged, so a
    // PROXY header written first reaches the origin first.
    send_proxy_header(app, &mut stream, ends)
        .await
        .map_err(|e| FlowError::io(Side::Tunnel, format!("sending the PROXY header: {e}")))?;
    splice_counted(ctx, app, &mut client, &mut stream).await
}

/// Dial timeout toward a direct or DNS origin.
pub(crate) const ORIGIN_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
