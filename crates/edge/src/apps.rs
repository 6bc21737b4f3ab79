//! Published TCP apps: one listener per edge port of the app's range; each
//! accepted connection goes to the app's origin.
//!
//! Flow phases: accept → origin:
//! - tunnel origin: pick a tunnel connection (round-robin, falling back to
//!   the next one if a stream cannot be opened) → `StreamOpen` (with the
//!   edge port) → wait for `StreamAccepted`;
//! - direct origin: map the edge port into the origin range, dial the
//!   addresses round-robin, skipping one that failed in the last
//!   [`DOWN_FOR`];
//! - DNS origin: the same over the name's addresses, re-resolved after its
//!   TTL;
//!
//! → splice bytes both ways with half-close.
//!
//! Apps live in the state store; [`AppManager::sync`] starts listeners for
//! new rows and stops those of deleted ones, so edges sharing a store follow
//! each other's changes.

use crate::Shared;
use burrow_config::app::{AppSpec, Origin, ProxyProtocol, RawApp, TlsMode, L4};
use burrow_policy::access::decide;
use burrow_policy::ports::PortMap;
use burrow_proto::proxy_header::{proxy_header, ProxyVersion, Transport};
use burrow_proto::{FlowKind, Frame, RefuseCode, StreamOpen};
use burrow_store::App;
use burrow_transport::frames::{write_frame, FrameReader};
use burrow_transport::BoxStream;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

/// How long the connector has to reach the origin and accept a flow.
pub(crate) const ACCEPT_TIMEOUT: Duration = Duration::from_secs(30);
/// Tunnel connections tried for one flow before giving up.
const TRIES: usize = 3;
/// Dial timeout toward a direct or DNS origin.
const ORIGIN_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an origin address that refused a dial is skipped.
pub(crate) const DOWN_FOR: Duration = Duration::from_secs(30);

/// An app ready to serve: its validated spec and per-app state.
pub(crate) struct Compiled {
    pub(crate) id: uuid::Uuid,
    pub(crate) spec: AppSpec,
    pub(crate) tunnel_id: Option<uuid::Uuid>,
    /// The stored JSON this was built from (to notice updates made by
    /// another edge sharing the store).
    source: String,
    next: AtomicUsize,
    down: Mutex<HashMap<IpAddr, Instant>>,
    dns: Mutex<Option<(Instant, Vec<IpAddr>)>>,
    /// Open connections (sessions), in all and per client address.
    pub(crate) counts: Arc<crate::limits::Counts>,
}

impl Compiled {
    /// Validates a stored app.
    pub(crate) fn from_record(app: &App) -> Result<Self, String> {
        let raw = RawApp::from_json(&app.spec).map_err(|e| e.to_string())?;
        let spec = raw.validate().map_err(|e| e.to_string())?;
        Ok(Self::new(app.id, spec, app.tunnel_id, app.spec.clone()))
    }

    pub(crate) fn new(
        id: uuid::Uuid,
        spec: AppSpec,
        tunnel_id: Option<uuid::Uuid>,
        source: String,
    ) -> Self {
        let counts =
            crate::limits::Counts::new(spec.limits.max_connections, spec.limits.max_per_ip);
        Self {
            id,
            spec,
            tunnel_id,
            source,
            counts,
            next: AtomicUsize::new(0),
            down: Mutex::new(HashMap::new()),
            dns: Mutex::new(None),
        }
    }

    /// The next round-robin index.
    pub(crate) fn next_index(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// The DNS origin's addresses as last resolved (empty before the first
    /// TCP flow or resolution).
    pub(crate) fn cached_dns(&self) -> Vec<IpAddr> {
        self.dns
            .lock()
            .expect("dns cache lock poisoned")
            .as_ref()
            .map(|(_, ips)| ips.clone())
            .unwrap_or_default()
    }

    fn is_down(&self, ip: IpAddr, now: Instant) -> bool {
        let down = self.down.lock().expect("origin state lock poisoned");
        down.get(&ip).is_some_and(|until| *until > now)
    }

    fn mark(&self, ip: IpAddr, ok: bool) {
        let mut down = self.down.lock().expect("origin state lock poisoned");
        if ok {
            down.remove(&ip);
        } else {
            down.insert(ip, Instant::now() + DOWN_FOR);
        }
    }
}

/// Running listeners, by app id.
#[derive(Default)]
pub(crate) struct AppManager {
    running: Mutex<HashMap<uuid::Uuid, RunningApp>>,
}

/// The app a running listener serves; replaced whole by a live update, so
/// each new connection takes the current version and open flows keep the
/// one they started with.
pub(crate) type AppCell = Arc<std::sync::RwLock<Arc<Compiled>>>;

/// A bound edge port of an app.
pub(crate) enum Listener {
    /// TCP app port.
    Tcp(TcpListener),
    /// UDP app port.
    Udp(tokio::net::UdpSocket),
}

impl Listener {
    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            Self::Tcp(l) => l.local_addr(),
            Self::Udp(s) => s.local_addr(),
        }
    }
}

struct RunningApp {
    stop: CancellationToken,
    addrs: Vec<SocketAddr>,
    cell: AppCell,
}

impl AppManager {
    /// Starts serving `app` on its already bound listeners.
    pub(crate) fn adopt(
        &self,
        shared: &Arc<Shared>,
        app: Arc<Compiled>,
        listeners: Vec<Listener>,
        shutdown: &CancellationToken,
    ) {
        let stop = shutdown.child_token();
        let addrs: Vec<SocketAddr> = listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        let ips: Vec<IpAddr> = addrs
            .iter()
            .map(SocketAddr::ip)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        info!(app_id = %app.id, ports = %app.spec.edge_ports, addresses = ?ips, "app listening");
        let cell: AppCell = Arc::new(std::sync::RwLock::new(app.clone()));
        self.running.lock().expect("app map lock poisoned").insert(
            app.id,
            RunningApp {
                stop: stop.clone(),
                addrs,
                cell: cell.clone(),
            },
        );
        for listener in listeners {
            let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
            let span = tracing::info_span!("app", app_id = %app.id, port);
            match listener {
                Listener::Tcp(l) => shared.tasks.spawn(
                    run_listener(shared.clone(), cell.clone(), l, stop.clone()).instrument(span),
                ),
                Listener::Udp(u) => shared.tasks.spawn(
                    crate::udp::run_port(shared.clone(), cell.clone(), u, stop.clone())
                        .instrument(span),
                ),
            };
        }
    }

    /// Applies a new version of a running app. Same edge ports: swapped in
    /// place, nothing is rebound and no connection is touched. Other ports:
    /// the old listeners close and the new ones open (open flows continue).
    ///
    /// # Errors
    /// When the new ports cannot be bound; the old version is put back.
    pub(crate) async fn replace(
        &self,
        shared: &Arc<Shared>,
        new: Arc<Compiled>,
        shutdown: &CancellationToken,
    ) -> Result<(), String> {
        let current = self
            .running
            .lock()
            .expect("app map lock poisoned")
            .get(&new.id)
            .map(|r| r.cell.clone());
        if let Some(cell) = &current {
            let same = {
                let old = cell.read().expect("app cell lock poisoned");
                old.spec.edge_ports == new.spec.edge_ports && old.spec.l4 == new.spec.l4
            };
            if same {
                *cell.write().expect("app cell lock poisoned") = new.clone();
                info!(app_id = %new.id, "app updated in place");
                return Ok(());
            }
        }
        let old = current.map(|c| c.read().expect("app cell lock poisoned").clone());
        self.stop(new.id);
        match bind_retrying(shared, new.id, &new.spec).await {
            Ok(listeners) => {
                self.adopt(shared, new, listeners, shutdown);
                Ok(())
            }
            Err(e) => {
                if let Some(old) = old {
                    if let Ok(l) = bind_retrying(shared, old.id, &old.spec).await {
                        self.adopt(shared, old, l, shutdown);
                    }
                }
                Err(e)
            }
        }
    }

    /// Whether this edge serves `host` (an app's `dns.name`) or `addr` (an
    /// app listener; a wildcard listener matches by port): an "orange"
    /// destination for egress policies.
    pub(crate) fn serves(&self, host: Option<&str>, addr: Option<SocketAddr>) -> bool {
        let running = self.running.lock().expect("app map lock poisoned");
        running.values().any(|r| {
            let by_name = host.is_some_and(|h| {
                let app = r.cell.read().expect("app cell lock poisoned");
                app.spec.dns_name.as_deref() == Some(h)
            });
            let by_addr = addr.is_some_and(|a| {
                r.addrs
                    .iter()
                    .any(|l| l.port() == a.port() && (l.ip() == a.ip() || l.ip().is_unspecified()))
            });
            by_name || by_addr
        })
    }

    /// Whether `addr` is an app listener of this edge: its exact address,
    /// or its port on a wildcard listener when `local` (the address is
    /// one of this host's).
    pub(crate) fn listens_on(&self, addr: SocketAddr, local: bool) -> bool {
        let running = self.running.lock().expect("app map lock poisoned");
        running.values().any(|r| {
            r.addrs.iter().any(|l| {
                l.port() == addr.port()
                    && (l.ip() == addr.ip() || (l.ip().is_unspecified() && local))
            })
        })
    }

    /// The addresses an app listens on right now (empty when not running).
    pub(crate) fn listen_addrs(&self, id: uuid::Uuid) -> Vec<SocketAddr> {
        self.running
            .lock()
            .expect("app map lock poisoned")
            .get(&id)
            .map(|r| r.addrs.clone())
            .unwrap_or_default()
    }

    /// Stops an app's listeners (open flows continue).
    pub(crate) fn stop(&self, id: uuid::Uuid) {
        if let Some(r) = self
            .running
            .lock()
            .expect("app map lock poisoned")
            .remove(&id)
        {
            r.stop.cancel();
            info!(app_id = %id, "app stopped");
        }
    }

    /// Brings listeners in line with the store.
    pub(crate) async fn sync(&self, shared: &Arc<Shared>, shutdown: &CancellationToken) {
        let apps = match shared.store.apps().await {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, "could not read apps from the state store");
                return;
            }
        };
        let wanted: HashMap<uuid::Uuid, App> = apps.into_iter().map(|a| (a.id, a)).collect();
        let stale: Vec<uuid::Uuid> = {
            let running = self.running.lock().expect("app map lock poisoned");
            running
                .keys()
                .filter(|id| !wanted.contains_key(id))
                .copied()
                .collect()
        };
        for id in stale {
            self.stop(id);
        }
        for (id, app) in wanted {
            let running_source = self
                .running
                .lock()
                .expect("app map lock poisoned")
                .get(&id)
                .map(|r| {
                    r.cell
                        .read()
                        .expect("app cell lock poisoned")
                        .source
                        .clone()
                });
            if let Some(source) = running_source {
                if source != app.spec {
                    // Updated through another edge sharing the store.
                    match Compiled::from_record(&app) {
                        Ok(c) => {
                            if let Err(e) = self.replace(shared, Arc::new(c), shutdown).await {
                                warn!(app_id = %id, error = %e, "cannot apply an app update");
                            }
                        }
                        Err(e) => warn!(app_id = %id, error = %e, "stored app is invalid"),
                    }
                }
                continue;
            }
            let compiled = match Compiled::from_record(&app) {
                Ok(c) => Arc::new(c),
                Err(e) => {
                    warn!(app_id = %id, error = %e, "stored app is invalid; not serving it");
                    continue;
                }
            };
            match bind_all(shared, id, &compiled.spec).await {
                Ok(l) => self.adopt(shared, compiled, l, shutdown),
                Err(e) => {
                    // Retried on the next sync.
                    debug!(app_id = %id, error = %e, "cannot bind app ports yet");
                }
            }
        }
    }

    /// Stops every listener.
    pub(crate) fn stop_all(&self) {
        let ids: Vec<uuid::Uuid> = self
            .running
            .lock()
            .expect("app map lock poisoned")
            .keys()
            .copied()
            .collect();
        for id in ids {
            self.stop(id);
        }
    }
}

/// Binds every edge port of app `id` on its pool addresses; all or
/// nothing.
///
/// # Errors
/// The first port that cannot be bound, named in the message, or why the
/// pools have no address for the app.
pub(crate) async fn bind_all(
    shared: &Shared,
    id: uuid::Uuid,
    spec: &AppSpec,
) -> Result<Vec<Listener>, String> {
    let ips = shared.app_pools.addresses(id, spec.connectivity)?;
    let per_ip = usize::try_from(spec.edge_ports.len()).unwrap_or(0);
    let mut out = Vec::with_capacity(per_ip * ips.len());
    for ip in ips {
        for port in spec.edge_ports.iter() {
            let addr = SocketAddr::new(ip, port);
            let l = bind_one(addr, spec.l4)
                .map_err(|e| format!("cannot listen on {}/{addr}: {e}", spec.l4.as_str()))?;
            out.push(l);
        }
    }
    Ok(out)
}

/// One non-blocking listener; IPv6 ones are IPv6-only so `::` and
/// `0.0.0.0` pools can be used together.
fn bind_one(addr: SocketAddr, l4: L4) -> std::io::Result<Listener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = Domain::for_address(addr);
    let socket = match l4 {
        L4::Tcp => Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?,
        L4::Udp => Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?,
    };
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    if l4 == L4::Tcp {
        socket.set_reuse_address(true)?;
    }
    socket.bind(&addr.into())?;
    Ok(match l4 {
        L4::Tcp => {
            socket.listen(1024)?;
            Listener::Tcp(TcpListener::from_std(socket.into())?)
        }
        L4::Udp => Listener::Udp(tokio::net::UdpSocket::from_std(socket.into())?),
    })
}

/// [`bind_all`], retried for a moment while just-closed listeners of the
/// same ports go away.
async fn bind_retrying(
    shared: &Shared,
    id: uuid::Uuid,
    spec: &AppSpec,
) -> Result<Vec<Listener>, String> {
    let mut last = String::new();
    for _ in 0..20 {
        match bind_all(shared, id, spec).await {
            Ok(l) => return Ok(l),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(last)
}

async fn run_listener(
    shared: Arc<Shared>,
    cell: AppCell,
    listener: TcpListener,
    stop: CancellationToken,
) {
    let Ok(edge_port) = listener.local_addr().map(|a| a.port()) else {
        return;
    };
    loop {
        // App flows take two descriptors each; a reserve stays for the
        // tunnel endpoint, the admin API and the HTTP listeners.
        let fds = tokio::select! {
            _ = stop.cancelled() => return,
            p = shared.app_fds.clone().acquire_owned() => p.expect("semaphore never closed"),
        };
        let (client, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            r = burrow_transport::accept_tcp(&listener) => r,
        };
        let app = cell.read().expect("app cell lock poisoned").clone();
        let slot = match app.counts.admit(peer.ip()) {
            Ok(s) => s,
            Err(why) => {
                shared.app_refused(&app, why, peer);
                continue;
            }
        };
        // IP access rules run before any byte is read or any origin dialled.
        if app.spec.ip_firewall {
            let d = decide(
                &shared.access_rules(),
                &shared.geoip.load().facts(peer.ip()),
            );
            shared.metrics.access_decision(L4::Tcp, d.allowed);
            if !d.allowed {
                info!(client = %peer, rule_id = d.rule_id.as_deref().unwrap_or("-"), "connection blocked by an IP access rule");
                drop(client);
                continue;
            }
        }
        let _ = client.set_nodelay(true);
        let flow_id = shared.next_flow.fetch_add(1, Ordering::Relaxed);
        let shared2 = shared.clone();
        let labels = crate::metrics::FlowLabels::of(&app.spec);
        shared.metrics.flows.get_or_create(&labels).inc();
        shared.flows.spawn(
            async move {
                let _held = (fds, slot);
                if let Err(reason) =
                    proxy_flow(&shared2, &app, client, peer, edge_port, flow_id).await
                {
                    shared2.metrics.flow_errors.get_or_create(&labels).inc();
                    info!(%reason, "flow closed with error");
                }
            }
            .instrument(tracing::info_span!("flow", flow_id, client = %peer)),
        );
    }
}

/// Why a flow ended badly, for logs. The side is part of the text.
type FlowError = String;

/// Time a client has to finish the TLS handshake with the edge.
const CLIENT_TLS_TIMEOUT: Duration = Duration::from_secs(10);

async fn proxy_flow(
    shared: &Shared,
    app: &Compiled,
    client: TcpStream,
    peer: SocketAddr,
    edge_port: u16,
    flow_id: u64,
) -> Result<(), FlowError> {
    let local = client.local_addr().map_err(|e| format!("client: {e}"))?;
    let ends = Ends {
        peer,
        local,
        edge_port,
        flow_id,
    };
    if app.spec.tls == TlsMode::Off {
        return to_origin(shared, app, client, ends).await;
    }
    let cfg = shared
        .app_tls
        .clone()
        .ok_or_else(|| "internal: TLS app without edge certificates".to_owned())?;
    let tls = tokio::time::timeout(
        CLIENT_TLS_TIMEOUT,
        tokio_rustls::TlsAcceptor::from(cfg).accept(client),
    )
    .await
    .map_err(|_| "client: TLS handshake timed out".to_owned())
    .and_then(|r| r.map_err(|e| format!("client: TLS handshake failed: {e}")))
    .inspect_err(|_| shared.metrics.tls_failure(crate::metrics::Side::client))?;
    shared.metrics.tls_handshake(crate::metrics::Side::client);
    to_origin(shared, app, tls, ends).await
}

/// The two ends of a flow as the edge sees them.
#[derive(Clone, Copy)]
struct Ends {
    /// The real client.
    peer: SocketAddr,
    /// The edge address the client connected to.
    local: SocketAddr,
    edge_port: u16,
    flow_id: u64,
}

/// Carries a (possibly TLS-terminated) client connection to the app's origin.
async fn to_origin<C>(
    shared: &Shared,
    app: &Compiled,
    client: C,
    ends: Ends,
) -> Result<(), FlowError>
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let targets: Vec<(IpAddr, PortMap)> = match &app.spec.origin {
        Origin::Tunnel { hostname, .. } => {
            let tunnel_id = app
                .tunnel_id
                .ok_or_else(|| "internal: tunnel app without tunnel id".to_owned())?;
            return tunnel_flow(shared, app, tunnel_id, hostname, client, ends).await;
        }
        Origin::Direct(list) => list.iter().map(|o| (o.ip, o.ports)).collect(),
        Origin::Dns { name, ttl, ports } => resolve(shared, app, name, *ttl)
            .await?
            .into_iter()
            .map(|ip| (ip, *ports))
            .collect(),
    };
    direct_flow(shared, app, &targets, client, ends).await
}

/// The addresses of a DNS origin, cached for its TTL.
pub(crate) async fn resolve(
    shared: &Shared,
    app: &Compiled,
    name: &str,
    ttl: u32,
) -> Result<Vec<IpAddr>, FlowError> {
    if let Some((at, ips)) = app.dns.lock().expect("dns cache lock poisoned").as_ref() {
        if at.elapsed() < Duration::from_secs(u64::from(ttl)) {
            return Ok(ips.clone());
        }
    }
    let resolver = shared
        .resolver
        .as_ref()
        .map_err(|e| format!("origin: cannot resolve {name}: {e}"))?;
    let ips: Vec<IpAddr> = resolver
        .lookup_ip(name)
        .await
        .map_err(|e| format!("origin: cannot resolve {name}: {e}"))?
        .iter()
        .collect();
    if ips.is_empty() {
        return Err(format!("origin: {name} has no addresses"));
    }
    *app.dns.lock().expect("dns cache lock poisoned") = Some((Instant::now(), ips.clone()));
    Ok(ips)
}

fn proxy_version(p: ProxyProtocol) -> Option<ProxyVersion> {
    match p {
        ProxyProtocol::V1 => Some(ProxyVersion::V1),
        ProxyProtocol::V2 => Some(ProxyVersion::V2),
        ProxyProtocol::Off | ProxyProtocol::Simple => None,
    }
}

/// Dials the targets round-robin, live ones first, sends the PROXY header
/// when the app asks for one, and splices.
async fn direct_flow<C>(
    shared: &Shared,
    app: &Compiled,
    targets: &[(IpAddr, PortMap)],
    mut client: C,
    ends: Ends,
) -> Result<(), FlowError>
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if targets.is_empty() {
        return Err("origin: no addresses".into());
    }
    let now = Instant::now();
    let start = app.next.fetch_add(1, Ordering::Relaxed);
    let mut order: Vec<usize> = (0..targets.len())
        .map(|i| (start + i) % targets.len())
        .collect();
    // Addresses marked down go last (stable sort keeps round-robin order).
    order.sort_by_key(|&i| app.is_down(targets[i].0, now));
    let mut last_err = String::new();
    for i in order {
        let (ip, map) = targets[i];
        let edge_port = ends.edge_port;
        let Some(port) = map.map(edge_port) else {
            return Err(format!(
                "internal: edge port {edge_port} outside the app range"
            ));
        };
        let addr = SocketAddr::new(ip, port);
        match tokio::time::timeout(ORIGIN_CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(mut origin)) => {
                app.mark(ip, true);
                let _ = origin.set_nodelay(true);
                send_proxy_header(app, &mut origin, ends)
                    .await
                    .map_err(|e| format!("origin {addr}: sending the PROXY header: {e}"))?;
                let origin_tls = shared.origin_tls.load();
                let tls = match app.spec.tls {
                    TlsMode::Full => &origin_tls.full,
                    TlsMode::Strict => &origin_tls.strict,
                    TlsMode::Off | TlsMode::Flexible => {
                        return splice_counted(shared, app, &mut client, &mut origin).await;
                    }
                };
                let name = origin_name(app, ip);
                let mut origin = tokio::time::timeout(
                    ORIGIN_CONNECT_TIMEOUT,
                    tokio_rustls::TlsConnector::from(tls.clone()).connect(name, origin),
                )
                .await
                .map_err(|_| format!("origin {addr}: TLS handshake timed out"))
                .and_then(|r| r.map_err(|e| format!("origin {addr}: TLS handshake failed: {e}")))
                .inspect_err(|_| shared.metrics.tls_failure(crate::metrics::Side::origin))?;
                shared.metrics.tls_handshake(crate::metrics::Side::origin);
                return splice_counted(shared, app, &mut client, &mut origin).await;
            }
            Ok(Err(e)) => {
                app.mark(ip, false);
                last_err = format!("origin {addr}: {e}");
            }
            Err(_) => {
                app.mark(ip, false);
                last_err = format!("origin {addr}: no answer within {ORIGIN_CONNECT_TIMEOUT:?}");
            }
        }
    }
    Err(last_err)
}

/// Writes the app's PROXY v1/v2 header (if any) for this flow: the real
/// client, and the edge address it connected to.
async fn send_proxy_header<W>(app: &Compiled, to: &mut W, ends: Ends) -> std::io::Result<()>
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
fn origin_name(app: &Compiled, ip: IpAddr) -> rustls::pki_types::ServerName<'static> {
    let dns = app.spec.dns_name.as_deref().or(match &app.spec.origin {
        Origin::Dns { name, .. } => Some(name.as_str()),
        _ => None,
    });
    dns.and_then(|n| rustls::pki_types::ServerName::try_from(n.to_owned()).ok())
        .unwrap_or(rustls::pki_types::ServerName::IpAddress(ip.into()))
}

/// Splices a flow, counting it as active meanwhile (overall and for its
/// app) and adding its bytes to the app's.
async fn splice_counted<A, B>(
    shared: &Shared,
    app: &Compiled,
    a: &mut A,
    b: &mut B,
) -> Result<(), FlowError>
where
    A: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let id = app.id.to_string();
    let m = &shared.metrics;
    let active = m
        .app_active
        .get_or_create(&crate::metrics::AppLabels { app: id.clone() })
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
                    .get_or_create(&crate::metrics::AppBytesLabels {
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
            Err(format!("closed idle: {e} (the app's idle_timeout)"))
        }
        Err(e) => Err(format!("splice: {e}")),
    }
}

async fn tunnel_flow<C>(
    shared: &Shared,
    app: &Compiled,
    tunnel_id: uuid::Uuid,
    hostname: &str,
    mut client: C,
    ends: Ends,
) -> Result<(), FlowError>
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let header = StreamOpen {
        kind: FlowKind::Tcp,
        flow_id: ends.flow_id,
        hostname: hostname.to_owned(),
        edge_port: ends.edge_port,
        client_addr: ends.peer,
    };
    let (mut stream, leftover, _) = open_tunnel_stream(shared, tunnel_id, header).await?;
    if !leftover.is_empty() {
        client
            .write_all(&leftover)
            .await
            .map_err(|e| format!("client: {e}"))?;
    }
    drop(leftover);
    // The connector passes stream bytes to the origin unchanged, so a
    // PROXY header written first reaches the origin first.
    send_proxy_header(app, &mut stream, ends)
        .await
        .map_err(|e| format!("tunnel: sending the PROXY header: {e}"))?;
    splice_counted(shared, app, &mut client, &mut stream).await
}

/// Opens a flow stream on a connection of the tunnel (the next one when a
/// stream cannot be opened), sends `header` and waits for the connector to
/// accept. Returns the stream, any bytes read past the answer, and the
/// connection it runs on.
///
/// # Errors
/// Why no connector took the flow, side first (`tunnel:` / `origin:`).
pub(crate) async fn open_tunnel_stream(
    shared: &Shared,
    tunnel_id: uuid::Uuid,
    header: StreamOpen,
) -> Result<(BoxStream, bytes::BytesMut, Arc<crate::registry::Registered>), FlowError> {
    let header = Frame::StreamOpen(header);
    let mut last_err = format!("tunnel: no connector is connected for tunnel {tunnel_id}");
    let mut tried: Vec<uuid::Uuid> = Vec::with_capacity(TRIES);
    for _ in 0..TRIES {
        // A fresh pick each time: a connection that said GoAway meanwhile
        // is out of the registry already.
        let Some(conn) = shared
            .registry
            .pick(tunnel_id, TRIES + 1)
            .into_iter()
            .find(|c| !tried.contains(&c.id))
        else {
            break;
        };
        tried.push(conn.id);
        let mut stream = match conn.conn.open_stream().await {
            Ok(s) => s,
            Err(e) => {
                last_err = format!("tunnel: cannot open a stream: {e}");
                continue;
            }
        };
        if let Err(e) = write_frame(&mut stream, &header, false).await {
            last_err = format!("tunnel: cannot send the flow header: {e}");
            continue;
        }
        let mut reader = FrameReader::new();
        let reply = tokio::time::timeout(ACCEPT_TIMEOUT, reader.read_frame(&mut stream)).await;
        match reply {
            Ok(Ok(Frame::StreamAccepted)) => return Ok((stream, reader.into_leftover(), conn)),
            Ok(Ok(Frame::StreamRejected(r))) if r.code == RefuseCode::ShuttingDown => {
                // Raced with the connector's GoAway: try another connection.
                last_err = format!("tunnel: connector refused the flow: {}", r.message);
                continue;
            }
            Ok(Ok(Frame::StreamRejected(r))) => {
                return Err(format!("origin: connector refused the flow: {}", r.message));
            }
            Ok(Ok(other)) => return Err(format!("tunnel: unexpected reply {other:?}")),
            Ok(Err(e)) => {
                last_err = format!("tunnel: no answer to the flow header: {e}");
                continue;
            }
            Err(_) => {
                return Err(format!(
                    "origin: connector did not accept the flow within {ACCEPT_TIMEOUT:?}"
                ))
            }
        }
    }
    Err(last_err)
}
