//! The burrow edge: the tunnel endpoint connectors dial out to, the app
//! listeners that turn client connections into tunnel streams, and the
//! admin API.
//!
//! Module map:
//! - [`tunnel`](crate::tunnel): QUIC + HTTP/2 accept loops and registration.
//! - `registry`: this node's live tunnel connections; flow placement.
//! - `apps`: app listeners and the per-flow proxy.
//! - `admin`: the admin API (axum).
//!
//! Use: [`Edge::bind`] binds every socket and reports the addresses, then
//! [`Edge::run`] serves until the shutdown token is cancelled, drains open
//! flows for the grace period and returns.

mod admin;
mod apps;
mod authz;
mod client;
mod edge_tls;
mod geoip;
mod h1;
mod http;
mod limits;
mod logpush;
mod peer;
pub use peer::PeerConfig;
mod metrics;
mod origin_tls;
mod pools;
mod registry;
mod session_log;
pub use logpush::LogpushTarget;
mod tunnel;
mod udp;

use burrow_config::Secret;
use burrow_store::Store;
use burrow_transport::pki::EdgePki;
pub use pools::AppPools;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// Meta key holding the egress policies (the API's JSON list).
pub(crate) const POLICIES_KEY: &str = "egress_policies";

/// A connection row older than this (seconds without heartbeat) is stale.
pub(crate) const CONNECTION_FRESHNESS: i64 = 30;
/// Heartbeat and app-sync period.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// Resolved edge settings.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// Short name of this node, e.g. `NRT`.
    pub colo: String,
    /// Tunnel endpoint: TCP (HTTP/2) and UDP (QUIC) on the same port.
    pub listen: SocketAddr,
    /// Admin API address (loopback by default).
    pub admin: SocketAddr,
    /// SQLite state file.
    pub state: PathBuf,
    /// Where certificates and the admin token file live; `None` keeps them in
    /// memory only (`burrow quick`).
    pub pki_dir: Option<PathBuf>,
    /// Edge domain: SNI names are `quic.<domain>` and `h2.<domain>`.
    pub edge_domain: String,
    /// Addresses app listeners bind to (`edge_ips`).
    pub app_pools: AppPools,
    /// How long open flows may finish after shutdown begins.
    pub grace_period: Duration,
    /// Serve HTTP/2 only (no UDP listener).
    pub disable_quic: bool,
    /// MaxMind-DB country file for IP access rules on countries.
    pub geoip_country: Option<PathBuf>,
    /// MaxMind-DB ASN file for IP access rules on ASNs.
    pub geoip_asn: Option<PathBuf>,
    /// Directory of `NAME.pem` / `NAME.key` certificates for apps that
    /// terminate TLS at the edge.
    pub cert_dir: Option<PathBuf>,
    /// CA certificates (PEM) that `tls: strict` apps verify origins against;
    /// `None` uses the system roots.
    pub origin_ca: Option<PathBuf>,
    /// DNS server for `origin_dns` names; `None` uses the system's
    /// configuration.
    pub dns_server: Option<SocketAddr>,
    /// Public HTTP listener for routed hostnames (`None`: off).
    pub http: Option<SocketAddr>,
    /// Public HTTPS listener for routed hostnames (`None`: off); its
    /// certificates come from `cert_dir`.
    pub https: Option<SocketAddr>,
    /// Network session log of client flows (JSON lines), if any.
    pub session_log: Option<PathBuf>,
    /// Where logpush sends the session log records, if anywhere.
    pub logpush: Option<LogpushTarget>,
    /// Peer edges for egress from other colos' dedicated IPs.
    pub peers: PeerConfig,
    /// Ranges clients may reach although the built-in deny refuses them
    /// (loopback, link-local, private ranges, this host's addresses);
    /// the edge's own listeners stay refused. Dangerous: see the README.
    pub egress_allow: Vec<ipnet::IpNet>,
}

/// Why the edge could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EdgeError {
    /// State store failure.
    #[error("state store {path}: {source}")]
    Store {
        /// The state file.
        path: PathBuf,
        /// The failure.
        source: burrow_store::StoreError,
    },
    /// Certificate or TLS setup failure.
    #[error("{0}")]
    Tls(#[from] burrow_transport::TransportError),
    /// A socket could not be bound.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The failure.
        source: std::io::Error,
    },
    /// Other I/O failure.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// State shared by every task of one edge process.
/// Virtual networks and the IP routes into tunnels, as the edge uses them.
#[derive(Debug, Default)]
pub(crate) struct PrivateNets {
    /// Name → id.
    pub(crate) vnets: std::collections::HashMap<String, uuid::Uuid>,
    pub(crate) default_vnet: Option<uuid::Uuid>,
    /// Id → the vnet as stored (for its access lists).
    pub(crate) rows: std::collections::HashMap<uuid::Uuid, burrow_store::Vnet>,
    /// `(vnet id, network) → tunnel id`.
    pub(crate) table: burrow_policy::ip_routes::IpRouteTable<uuid::Uuid, uuid::Uuid>,
}

pub(crate) struct Shared {
    pub(crate) store: Store,
    pub(crate) registry: registry::Registry,
    /// Grants of the connectors and clients connected now, re-checked
    /// while they stay connected.
    pub(crate) grants: Arc<authz::LiveGrants>,
    pub(crate) apps: apps::AppManager,
    pub(crate) colo: String,
    pub(crate) node_id: String,
    pub(crate) account_id: uuid::Uuid,
    /// The admin token's stored (hashed) form.
    pub(crate) admin_token_hash: Vec<u8>,
    pub(crate) ca_pem: String,
    pub(crate) edge_domain: String,
    pub(crate) tunnel_addr: SocketAddr,
    pub(crate) app_pools: AppPools,
    pub(crate) h2_tls: Option<Arc<rustls::ServerConfig>>,
    pub(crate) tasks: TaskTracker,
    pub(crate) flows: TaskTracker,
    pub(crate) next_flow: AtomicU64,
    /// Prometheus metrics (`/metrics`).
    pub(crate) metrics: metrics::Metrics,
    /// IP access rules, replaced whole on every change (readers clone the Arc).
    pub(crate) access: std::sync::RwLock<Arc<Vec<burrow_policy::access::Rule>>>,
    /// Country / ASN lookups for access rules; replaced whole on SIGHUP.
    pub(crate) geoip: arc_swap::ArcSwap<geoip::GeoIp>,
    /// TLS server config for apps with edge TLS termination, if certificates exist.
    pub(crate) app_tls: Option<Arc<rustls::ServerConfig>>,
    /// TLS client configs toward origins (`tls: full|strict`); replaced
    /// whole on SIGHUP.
    pub(crate) origin_tls: arc_swap::ArcSwap<origin_tls::OriginTls>,
    /// The `--cert-dir` certificates, reloadable on SIGHUP.
    pub(crate) cert_resolver: Option<Arc<edge_tls::BySni>>,
    /// Hostname → tunnel routes of the HTTP listeners, replaced whole on
    /// every change (readers clone the Arc).
    pub(crate) routes: std::sync::RwLock<Arc<burrow_policy::routes::RouteTable<uuid::Uuid>>>,
    /// Egress policies, in order; replaced whole on every change.
    pub(crate) policies: std::sync::RwLock<Arc<Vec<burrow_policy::egress::Rule>>>,
    /// Private-network routes and virtual networks; replaced whole on
    /// every change.
    pub(crate) private: std::sync::RwLock<Arc<PrivateNets>>,
    /// Peer edges of other colos and the secret they share.
    pub(crate) peer_cfg: peer::PeerConfig,
    /// Open connections to peer edges.
    pub(crate) peers: peer::Peers,
    /// Dedicated egress IPv4 → owning colo; replaced whole on every change.
    pub(crate) egress_ips:
        std::sync::RwLock<Arc<std::collections::HashMap<std::net::Ipv4Addr, String>>>,
    /// Network session log writer.
    pub(crate) session_log: session_log::SessionLog,
    /// Network session log records to an HTTP endpoint, if configured.
    pub(crate) logpush: Option<logpush::Logpush>,
    /// Resolver for `origin_dns` names (the error if it could not be set up).
    pub(crate) resolver: Result<hickory_resolver::TokioResolver, String>,
    /// `--dns-server`, when given (client egress then resolves with it too).
    pub(crate) dns_server: Option<SocketAddr>,
    /// The built-in deny for destinations dialled for clients.
    pub(crate) dial_guard: burrow_policy::dial_guard::DialGuard,
    /// Descriptors app flows may take (two per TCP flow), leaving a
    /// reserve for the tunnel endpoint, admin API and HTTP listeners.
    pub(crate) app_fds: Arc<tokio::sync::Semaphore>,
    /// New UDP app sessions per client address and second.
    pub(crate) udp_rate: limits::Rate,
    /// Warnings about refused app connections: one per app per 10 s.
    pub(crate) refusal_log: limits::LogGate<uuid::Uuid>,
}

/// New UDP app sessions one client address may open per second (and in
/// a burst).
const UDP_SESSIONS_PER_SEC: u32 = 50;
const UDP_SESSIONS_BURST: u32 = 200;
/// Descriptors kept free of app flows for the edge's own listeners.
const FD_RESERVE_MIN: u64 = 256;

/// How many TCP app flows the open-file limit allows: two descriptors
/// each, after a reserve of a tenth of the limit (at least
/// [`FD_RESERVE_MIN`]).
fn app_fd_budget() -> usize {
    let soft = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(s, _)| s);
    let reserve = (soft / 10).max(FD_RESERVE_MIN);
    usize::try_from(soft.saturating_sub(reserve) / 2)
        .unwrap_or(usize::MAX)
        .max(1)
}

impl Shared {
    /// Counts and (at most once per app per 10 s) logs an app connection
    /// or UDP session refused by `why`.
    pub(crate) fn app_refused(&self, app: &apps::Compiled, why: limits::Refused, peer: SocketAddr) {
        self.metrics
            .app_refused
            .get_or_create(&metrics::AppRefusedLabels {
                app: app.id.to_string(),
                limit: why.label(),
            })
            .inc();
        if let Some(held) = self.refusal_log.pass(app.id, std::time::Instant::now()) {
            warn!(
                app_id = %app.id, client = %peer, limit = why.label(), refused_since_last_line = held,
                max_connections = app.spec.limits.max_connections,
                max_connections_per_ip = app.spec.limits.max_per_ip,
                "app connection refused by a limit"
            );
        }
    }

    /// Reloads the IP access rules from the store.
    pub(crate) async fn reload_access(&self) {
        match self.store.access_rules().await {
            Ok(rows) => {
                let rules: Vec<_> = rows
                    .iter()
                    .filter_map(|r| {
                        burrow_policy::access::Rule::parse(&r.id.to_string(), &r.mode, &r.target, &r.value)
                            .map_err(|e| warn!(rule_id = %r.id, reason = %e.reason, "stored access rule is invalid; ignored"))
                            .ok()
                    })
                    .collect();
                *self.access.write().expect("access rules lock poisoned") = Arc::new(rules);
            }
            Err(e) => warn!(error = %e, "could not read access rules from the state store"),
        }
    }

    /// Reloads the hostname routes from the store.
    pub(crate) async fn reload_routes(&self) {
        match self.store.routes().await {
            Ok(rows) => {
                let table = burrow_policy::routes::RouteTable::new(
                    rows.into_iter().map(|r| (r.hostname, r.tunnel_id)),
                );
                *self.routes.write().expect("routes lock poisoned") = Arc::new(table);
            }
            Err(e) => warn!(error = %e, "could not read routes from the state store"),
        }
    }

    /// Reloads virtual networks and IP routes from the store.
    pub(crate) async fn reload_private(&self) {
        let (vnets, routes) = match (self.store.vnets().await, self.store.ip_routes().await) {
            (Ok(v), Ok(r)) => (v, r),
            (Err(e), _) | (_, Err(e)) => {
                warn!(error = %e, "could not read IP routes from the state store");
                return;
            }
        };
        let table = burrow_policy::ip_routes::IpRouteTable::new(routes.iter().filter_map(|r| {
            let network = burrow_policy::ip_routes::parse_network(&r.network)
                .map_err(
                    |e| warn!(route_id = %r.id, reason = %e, "stored IP route is invalid; ignored"),
                )
                .ok()?;
            Some(burrow_policy::ip_routes::IpRoute {
                vnet: r.vnet_id,
                network,
                target: r.tunnel_id,
            })
        }));
        let nets = PrivateNets {
            default_vnet: vnets.iter().find(|v| v.is_default).map(|v| v.id),
            vnets: vnets.iter().map(|v| (v.name.clone(), v.id)).collect(),
            rows: vnets.into_iter().map(|v| (v.id, v)).collect(),
            table,
        };
        *self.private.write().expect("private nets lock poisoned") = Arc::new(nets);
    }

    /// Reloads the egress IP registry from the store.
    pub(crate) async fn reload_egress_ips(&self) {
        match self.store.egress_ips().await {
            Ok(rows) => {
                let map = rows
                    .into_iter()
                    .filter_map(|e| Some((e.ip.parse().ok()?, e.colo)))
                    .collect();
                *self.egress_ips.write().expect("egress IPs lock poisoned") = Arc::new(map);
            }
            Err(e) => warn!(error = %e, "could not read egress IPs from the state store"),
        }
    }

    /// The egress IP registry.
    pub(crate) fn egress_ips(&self) -> Arc<std::collections::HashMap<std::net::Ipv4Addr, String>> {
        self.egress_ips
            .read()
            .expect("egress IPs lock poisoned")
            .clone()
    }

    /// The current private-network routes.
    pub(crate) fn private(&self) -> Arc<PrivateNets> {
        self.private
            .read()
            .expect("private nets lock poisoned")
            .clone()
    }

    /// Queues a finished session's log record (counted when dropped).
    pub(crate) fn log_session(&self, r: session_log::SessionRecord) {
        self.metrics
            .client_sessions
            .get_or_create(&metrics::OutcomeLabels {
                reason: r.close_reason().to_owned(),
            })
            .inc();
        let line = r.into_line();
        if let Some(lp) = &self.logpush {
            lp.push(&line);
        }
        if !self.session_log.push(line) {
            self.metrics.session_log_dropped.inc();
            tracing::debug!("session log queue full; record dropped and counted");
        }
    }

    /// Reloads the egress policies from the store.
    pub(crate) async fn reload_policies(&self) {
        match self.store.meta(POLICIES_KEY).await {
            Ok(Some(json)) => match burrow_config::egress::parse_rules(&json) {
                Ok(rules) => {
                    *self.policies.write().expect("policies lock poisoned") = Arc::new(rules);
                }
                Err(e) => {
                    warn!(error = %e, "stored egress policies are invalid; keeping the previous ones")
                }
            },
            Ok(None) => {}
            Err(e) => warn!(error = %e, "could not read egress policies from the state store"),
        }
    }

    /// The current egress policies.
    pub(crate) fn policies(&self) -> Arc<Vec<burrow_policy::egress::Rule>> {
        self.policies
            .read()
            .expect("policies lock poisoned")
            .clone()
    }

    /// The current hostname routes.
    pub(crate) fn routes(&self) -> Arc<burrow_policy::routes::RouteTable<uuid::Uuid>> {
        self.routes.read().expect("routes lock poisoned").clone()
    }

    /// The current IP access rules.
    pub(crate) fn access_rules(&self) -> Arc<Vec<burrow_policy::access::Rule>> {
        self.access
            .read()
            .expect("access rules lock poisoned")
            .clone()
    }
}

/// What a started edge tells its operator.
#[derive(Debug, Clone)]
pub struct EdgeInfo {
    /// Bound tunnel endpoint (TCP and, unless disabled, UDP).
    pub tunnel_addr: SocketAddr,
    /// Bound admin API address.
    pub admin_addr: SocketAddr,
    /// The CA connectors must trust, PEM.
    pub ca_pem: String,
    /// Where the CA certificate is stored, if on disk.
    pub ca_path: Option<PathBuf>,
    /// Where the admin token is stored, if on disk.
    pub token_path: Option<PathBuf>,
    /// Files created at this start (certificates, keys, token).
    pub created: Vec<PathBuf>,
    /// The admin token.
    pub admin_token: Secret,
    /// Account id of this edge's (single) account.
    pub account_id: uuid::Uuid,
    /// Edge domain.
    pub edge_domain: String,
    /// Bound public HTTP listener, if any.
    pub http_addr: Option<SocketAddr>,
    /// Bound public HTTPS listener, if any.
    pub https_addr: Option<SocketAddr>,
}

/// Live counters of a running edge.
#[derive(Clone)]
pub struct EdgeStats(Arc<Shared>);

impl EdgeStats {
    /// Registered tunnel connections on this node.
    pub fn tunnel_connections(&self) -> u64 {
        u64::try_from(self.0.metrics.tunnel_connections.get()).unwrap_or(0)
    }
    /// Flows being spliced right now.
    pub fn active_flows(&self) -> u64 {
        u64::try_from(self.0.metrics.active_flows.get()).unwrap_or(0)
    }
}

/// The files a running edge can read again (SIGHUP).
#[derive(Clone)]
struct ReloadPaths {
    geoip_country: Option<PathBuf>,
    geoip_asn: Option<PathBuf>,
    origin_ca: Option<PathBuf>,
}

/// Reloads what a running edge can take without a restart: the
/// `--cert-dir` certificates, the `--origin-ca` roots and the GeoIP files.
/// Everything else (addresses, pools, state, peers) needs a restart.
#[derive(Clone)]
pub struct EdgeReloader {
    shared: Arc<Shared>,
    paths: ReloadPaths,
}

impl EdgeReloader {
    /// Reads the files again; each part that loads replaces the running
    /// one, each that fails keeps the running one. Returns one line per
    /// part: what was reloaded, or why not.
    pub async fn reload(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(r) = self.shared.cert_resolver.clone() {
            out.push(
                match tokio::task::spawn_blocking(move || r.reload()).await {
                    Ok(Ok(names)) => format!("cert-dir: reloaded ({} hostnames)", names.len()),
                    Ok(Err(e)) => format!("cert-dir: kept the running certificates: {e}"),
                    Err(e) => format!("cert-dir: {e}"),
                },
            );
        }
        let ca = self.paths.origin_ca.clone();
        out.push(
            match tokio::task::spawn_blocking(move || origin_tls::load(ca.as_deref())).await {
                Ok(Ok(t)) => {
                    let line = format!("origin-ca: reloaded ({})", t.roots_from);
                    self.shared.origin_tls.store(Arc::new(t));
                    line
                }
                Ok(Err(e)) => format!("origin-ca: kept the running roots: {e}"),
                Err(e) => format!("origin-ca: {e}"),
            },
        );
        if self.paths.geoip_country.is_some() || self.paths.geoip_asn.is_some() {
            let (c, a) = (
                self.paths.geoip_country.clone(),
                self.paths.geoip_asn.clone(),
            );
            out.push(
                match tokio::task::spawn_blocking(move || {
                    geoip::GeoIp::open(c.as_deref(), a.as_deref())
                })
                .await
                {
                    Ok(Ok(g)) => {
                        self.shared.geoip.store(Arc::new(g));
                        "geoip: reloaded".to_owned()
                    }
                    Ok(Err(e)) => format!("geoip: kept the running databases: {e}"),
                    Err(e) => format!("geoip: {e}"),
                },
            );
        }
        out
    }
}

/// A bound, not yet running edge.
pub struct Edge {
    shared: Arc<Shared>,
    reload_paths: ReloadPaths,
    info: EdgeInfo,
    tcp: TcpListener,
    quic: Option<quinn::Endpoint>,
    admin: TcpListener,
    http: Option<TcpListener>,
    https: Option<(TcpListener, Arc<rustls::ServerConfig>)>,
    grace: Duration,
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn random_hex(n: usize) -> String {
    use rand::RngCore;
    let mut b = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

async fn bind_tunnel(
    listen: SocketAddr,
    quic_cfg: Option<quinn::ServerConfig>,
) -> Result<(TcpListener, Option<quinn::Endpoint>), EdgeError> {
    // With port 0, pick the TCP port first and take the same UDP port; retry
    // a few times if that UDP port happens to be taken.
    let tries = if listen.port() == 0 { 20 } else { 1 };
    let mut last = None;
    for _ in 0..tries {
        let tcp = TcpListener::bind(listen)
            .await
            .map_err(|e| EdgeError::Bind {
                what: "tunnel endpoint, TCP",
                addr: listen,
                source: e,
            })?;
        let bound = tcp.local_addr()?;
        let Some(cfg) = quic_cfg.clone() else {
            return Ok((tcp, None));
        };
        match burrow_transport::quic::server_endpoint(bound, cfg) {
            Ok(ep) => return Ok((tcp, Some(ep))),
            Err(e) => last = Some((bound, e)),
        }
    }
    let (addr, e) = last.expect("at least one try");
    Err(EdgeError::Bind {
        what: "tunnel endpoint, UDP",
        addr,
        source: std::io::Error::other(e.to_string()),
    })
}

impl Edge {
    /// Opens the state store, loads or creates certificates and the admin
    /// token, and binds the tunnel endpoint and the admin API.
    ///
    /// # Errors
    /// [`EdgeError`] naming the file or address that failed.
    pub async fn bind(cfg: EdgeConfig) -> Result<Self, EdgeError> {
        let store_err = |source| EdgeError::Store {
            path: cfg.state.clone(),
            source,
        };
        // The store creates the file's directory (0700) when missing.
        let store = Store::open(&cfg.state).await.map_err(store_err)?;
        let account_id = store
            .meta_or_init("account_id", || uuid::Uuid::new_v4().to_string())
            .await
            .map_err(store_err)?;
        let account_id = uuid::Uuid::parse_str(&account_id).map_err(|e| {
            store_err(burrow_store::StoreError::Corrupt {
                table: "meta",
                reason: format!("account_id: {e}"),
            })
        })?;
        let (pki_dir, domain) = (cfg.pki_dir.clone(), cfg.edge_domain.clone());
        let pki = tokio::task::spawn_blocking(move || -> Result<_, EdgeError> {
            Ok(match pki_dir {
                Some(dir) => EdgePki::load_or_create(&dir, &domain)?,
                None => EdgePki::ephemeral(&domain)?,
            })
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
        let token_path = cfg.pki_dir.as_ref().map(|d| d.join("admin.token"));
        let (token, token_hash, token_created) = admin_token(&store, token_path.as_deref())
            .await
            .map_err(store_err)?;
        // Secrets migrated to hashes leave no plain copy in the WAL.
        store.checkpoint().await.map_err(store_err)?;
        let mut created = pki.created.clone();
        if token_created {
            created.extend(token_path.clone());
        }
        let (gc, ga) = (cfg.geoip_country.clone(), cfg.geoip_asn.clone());
        let geoip =
            tokio::task::spawn_blocking(move || geoip::GeoIp::open(gc.as_deref(), ga.as_deref()))
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?
                .map_err(std::io::Error::other)?;
        let (app_tls, cert_resolver) = match cfg.cert_dir.clone() {
            Some(dir) => {
                let loaded = tokio::task::spawn_blocking(move || edge_tls::load(&dir))
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))?
                    .map_err(std::io::Error::other)?;
                info!(hostnames = ?loaded.names, "edge certificates for apps loaded");
                (Some(loaded.config), Some(loaded.resolver))
            }
            None => (None, None),
        };
        let ca = cfg.origin_ca.clone();
        let origin_tls = tokio::task::spawn_blocking(move || origin_tls::load(ca.as_deref()))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?
            .map_err(std::io::Error::other)?;
        info!(roots = %origin_tls.roots_from, "origin TLS (tls: strict) verifies against");
        let reload_paths = ReloadPaths {
            geoip_country: cfg.geoip_country.clone(),
            geoip_asn: cfg.geoip_asn.clone(),
            origin_ca: cfg.origin_ca.clone(),
        };
        let app_pools = cfg.app_pools.usable(|ip, e| {
            warn!(address = %ip, error = %e, "app pool address cannot be bound on this host; apps will not listen on it");
        });
        if app_pools.v4.is_empty() && app_pools.v6.is_empty() {
            return Err(EdgeError::Bind {
                what: "app address pools (none of the addresses exists on this host)",
                addr: SocketAddr::new(
                    cfg.app_pools
                        .v4
                        .first()
                        .or(cfg.app_pools.v6.first())
                        .copied()
                        .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into()),
                    0,
                ),
                source: std::io::ErrorKind::AddrNotAvailable.into(),
            });
        }
        let resolver = burrow_transport::dns::resolver(cfg.dns_server, false);
        if let Err(e) = &resolver {
            warn!(error = %e, "DNS origins will not resolve");
        }
        let quic_cfg = if cfg.disable_quic {
            None
        } else {
            Some(burrow_transport::quic::server_config(&pki)?)
        };
        let (tcp, quic) = bind_tunnel(cfg.listen, quic_cfg).await?;
        let tunnel_addr = tcp.local_addr()?;
        let admin = TcpListener::bind(cfg.admin)
            .await
            .map_err(|e| EdgeError::Bind {
                what: "admin API",
                addr: cfg.admin,
                source: e,
            })?;
        let admin_addr = admin.local_addr()?;
        let http = match cfg.http {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| EdgeError::Bind {
                what: "HTTP listener",
                addr,
                source: e,
            })?),
            None => None,
        };
        let https = match cfg.https {
            Some(addr) => {
                let Some(tls) = &app_tls else {
                    return Err(EdgeError::Io(std::io::Error::other(
                        "--https needs certificates: give --cert-dir DIR (NAME.pem + NAME.key per hostname)",
                    )));
                };
                // Same certificates as the apps, plus ALPN for HTTP/2.
                let mut tls = (**tls).clone();
                tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
                let l = TcpListener::bind(addr).await.map_err(|e| EdgeError::Bind {
                    what: "HTTPS listener",
                    addr,
                    source: e,
                })?;
                Some((l, Arc::new(tls)))
            }
            None => None,
        };
        let http_addr = http.as_ref().and_then(|l| l.local_addr().ok());
        let https_addr = https.as_ref().and_then(|(l, _)| l.local_addr().ok());
        let node_id = format!("{}-{}", cfg.colo, &random_hex(4));
        // Rows left by a previous run of a crashed node are pruned by age.
        let _ = store
            .prune_connections(&node_id, unix_now() - CONNECTION_FRESHNESS)
            .await;
        let metrics = metrics::Metrics::new();
        let logpush = cfg
            .logpush
            .clone()
            .map(|t| logpush::Logpush::start(t, metrics.logpush.clone()));
        let shared = Arc::new(Shared {
            store,
            registry: registry::Registry::default(),
            grants: Arc::default(),
            apps: apps::AppManager::default(),
            colo: cfg.colo.clone(),
            node_id,
            account_id,
            admin_token_hash: token_hash,
            ca_pem: pki.ca_pem.clone(),
            edge_domain: cfg.edge_domain.clone(),
            tunnel_addr,
            app_pools,
            h2_tls: Some(pki.h2_server_config()?),
            tasks: TaskTracker::new(),
            flows: TaskTracker::new(),
            next_flow: AtomicU64::new(1),
            metrics,
            access: std::sync::RwLock::new(Arc::new(Vec::new())),
            geoip: arc_swap::ArcSwap::from_pointee(geoip),
            app_tls,
            cert_resolver,
            origin_tls: arc_swap::ArcSwap::from_pointee(origin_tls),
            resolver,
            dns_server: cfg.dns_server,
            app_fds: Arc::new(tokio::sync::Semaphore::new(app_fd_budget())),
            udp_rate: limits::Rate::new(UDP_SESSIONS_PER_SEC, UDP_SESSIONS_BURST, 65_536),
            refusal_log: limits::LogGate::new(Duration::from_secs(10)),
            dial_guard: burrow_policy::dial_guard::DialGuard::new(
                [Some(tunnel_addr), Some(admin_addr), http_addr, https_addr]
                    .into_iter()
                    .flatten()
                    .collect(),
                cfg.egress_allow.clone(),
            ),
            routes: std::sync::RwLock::new(Arc::new(Default::default())),
            session_log: session_log::SessionLog::start(cfg.session_log.clone()),
            logpush,
            policies: std::sync::RwLock::new(Arc::new(Vec::new())),
            private: std::sync::RwLock::new(Arc::new(PrivateNets::default())),
            egress_ips: std::sync::RwLock::new(Arc::new(Default::default())),
            peer_cfg: cfg.peers.clone(),
            peers: peer::Peers::default(),
        });
        shared.reload_private().await;
        shared.reload_egress_ips().await;
        shared.reload_policies().await;
        shared.reload_routes().await;
        shared.reload_access().await;
        let info = EdgeInfo {
            tunnel_addr,
            admin_addr,
            ca_pem: pki.ca_pem.clone(),
            ca_path: pki.ca_path.clone(),
            token_path,
            created,
            admin_token: token,
            account_id,
            edge_domain: cfg.edge_domain.clone(),
            http_addr,
            https_addr,
        };
        Ok(Self {
            shared,
            reload_paths,
            info,
            tcp,
            quic,
            admin,
            http,
            https,
            grace: cfg.grace_period,
        })
    }

    /// Addresses and credentials of this edge.
    pub fn info(&self) -> &EdgeInfo {
        &self.info
    }

    /// A handle that reloads certificates, origin roots and GeoIP files
    /// while the edge runs (SIGHUP).
    pub fn reloader(&self) -> EdgeReloader {
        EdgeReloader {
            shared: self.shared.clone(),
            paths: self.reload_paths.clone(),
        }
    }

    /// A live view of counters, usable while the edge runs.
    pub fn stats(&self) -> EdgeStats {
        EdgeStats(self.shared.clone())
    }

    /// Creates a tunnel and a TCP app in the store directly (for `burrow
    /// quick`, which has no separate admin client). Returns the tunnel's
    /// credentials and the app's bound address.
    ///
    /// # Errors
    /// On store or bind failure.
    pub async fn quick_setup(
        &self,
        name: &str,
        port: u16,
        shutdown: &CancellationToken,
    ) -> Result<(burrow_config::credentials::Credentials, SocketAddr), EdgeError> {
        use rand::RngCore;
        let store_err = |source| EdgeError::Store {
            path: PathBuf::from("(quick)"),
            source,
        };
        let mut secret = vec![0u8; 32];
        rand::thread_rng().fill_bytes(&mut secret);
        let t = burrow_store::Tunnel {
            id: uuid::Uuid::new_v4(),
            account_id: self.shared.account_id,
            name: name.to_owned(),
            secret: secret.clone(),
            created_at: unix_now(),
        };
        self.shared
            .store
            .create_tunnel(&t)
            .await
            .map_err(store_err)?;
        let raw = burrow_config::app::RawApp {
            protocol: format!("tcp/{port}"),
            origin_tunnel: Some(burrow_config::app::RawOriginTunnel {
                tunnel: t.id.to_string(),
                hostname: String::new(),
            }),
            ..Default::default()
        };
        // Port 0 is not a valid app port; quick picks a free one here, on
        // the first pool address (quick's pool is loopback).
        let pools = &self.shared.app_pools;
        let quick_ip = *pools
            .v4
            .first()
            .or(pools.v6.first())
            .ok_or_else(|| std::io::Error::other("no app address pool"))?;
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(quick_ip, port)).await?;
        let addr = listener.local_addr()?;
        let raw = burrow_config::app::RawApp {
            protocol: format!("tcp/{}", addr.port()),
            ..raw
        };
        let spec = raw
            .validate()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let app = burrow_store::App {
            id: uuid::Uuid::new_v4(),
            spec: serde_json::to_string(&raw).map_err(std::io::Error::other)?,
            l4: "tcp".into(),
            port_start: addr.port(),
            port_end: addr.port(),
            tunnel_id: Some(t.id),
            created_at: unix_now(),
        };
        self.shared
            .store
            .create_app(&app)
            .await
            .map_err(store_err)?;
        let compiled = Arc::new(apps::Compiled::new(
            app.id,
            spec,
            Some(t.id),
            app.spec.clone(),
        ));
        self.shared.apps.adopt(
            &self.shared,
            compiled,
            vec![apps::Listener::Tcp(listener)],
            shutdown,
        );
        let creds = burrow_config::credentials::Credentials {
            account_id: t.account_id,
            tunnel_id: t.id,
            secret: burrow_config::credentials::SecretBytes(secret),
            tunnel_name: Some(t.name),
            edge_ca_pem: Some(self.shared.ca_pem.clone()),
            edges: vec![self.info.tunnel_addr.to_string()],
            edge_domain: Some(self.shared.edge_domain.clone()),
        };
        Ok((creds, addr))
    }

    /// Serves until `shutdown` is cancelled, then stops taking new flows,
    /// lets open flows finish for the grace period, and closes.
    pub async fn run(self, shutdown: CancellationToken) {
        let Self {
            shared,
            reload_paths: _,
            info,
            tcp,
            quic,
            admin,
            http,
            https,
            grace,
        } = self;
        info!(
            colo = %shared.colo, tunnel = %info.tunnel_addr, quic = quic.is_some(),
            admin = %info.admin_addr, "edge running"
        );
        // Listeners stop taking new work when `accepting` is cancelled.
        let accepting = shutdown.child_token();
        shared
            .tasks
            .spawn(tunnel::run_tcp(shared.clone(), tcp, accepting.clone()));
        if let Some(ep) = quic.clone() {
            shared
                .tasks
                .spawn(tunnel::run_quic(shared.clone(), ep, accepting.clone()));
        }
        let admin_state = admin::AdminState {
            shared: shared.clone(),
            shutdown: accepting.clone(),
        };
        let admin_stop = CancellationToken::new();
        let admin_task = tokio::spawn({
            let stop = admin_stop.clone();
            async move {
                let app = admin::router(admin_state);
                if let Err(e) = axum::serve(admin, app)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await
                {
                    warn!(error = %e, "admin API stopped");
                }
            }
        });
        if let Some(l) = http {
            shared
                .tasks
                .spawn(http::run(shared.clone(), l, None, accepting.clone()));
        }
        if let Some((l, tls)) = https {
            shared
                .tasks
                .spawn(http::run(shared.clone(), l, Some(tls), accepting.clone()));
        }
        shared.apps.sync(&shared, &accepting).await;
        shared
            .tasks
            .spawn(authz_sweeps(shared.clone(), shutdown.clone()));
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {
                    let now = unix_now();
                    if let Err(e) = shared.store.touch_node(&shared.node_id, now).await {
                        warn!(error = %e, "heartbeat to the state store failed");
                    }
                    shared.apps.sync(&shared, &accepting).await;
                    shared.reload_access().await;
                    shared.reload_routes().await;
                    shared.reload_policies().await;
                    shared.reload_private().await;
                    shared.reload_egress_ips().await;
                }
            }
        }

        let open = shared.metrics.active_flows.get();
        info!(open_flows = open, grace = ?grace, "shutting down: no new flows, draining");
        accepting.cancel();
        shared.apps.stop_all();
        shared.flows.close();
        if tokio::time::timeout(grace, shared.flows.wait())
            .await
            .is_err()
        {
            warn!(
                open_flows = shared.metrics.active_flows.get(),
                "grace period over; closing remaining flows"
            );
        }
        // Let the last bytes of finished flows be acknowledged before the
        // QUIC connections close (closing drops unacknowledged data).
        tokio::time::sleep(Duration::from_millis(300)).await;
        for r in shared.registry.all() {
            r.conn.close();
        }
        if let Some(ep) = quic {
            ep.close(0u32.into(), b"edge shutting down");
        }
        let _ = shared.store.prune_connections(&shared.node_id, 0).await;
        if let Some(lp) = &shared.logpush {
            lp.flush_and_stop().await;
        }
        shared.session_log.flush_and_stop().await;
        admin_stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(2), admin_task).await;
        shared.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(2), shared.tasks.wait()).await;
        shared.store.close().await;
        info!("edge stopped");
    }
}

/// How often every live grant is checked against the store, so changes
/// made through another node sharing the store take effect here too.
const AUTHZ_SWEEP: Duration = Duration::from_secs(1);

/// Re-checks the grants of connected parties every [`AUTHZ_SWEEP`], and at
/// once when an admin change on this node may have revoked one.
async fn authz_sweeps(shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(AUTHZ_SWEEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
            _ = shared.grants.changed.notified() => {}
        }
        if shared.grants.len() == 0 {
            continue;
        }
        let facts = match authz::Facts::load(&shared.store).await {
            Ok(f) => f,
            Err(e) => {
                // Keep serving on the grants checked last; say so.
                warn!(error = %e, "could not re-check live grants against the state store");
                continue;
            }
        };
        for (grant, why) in shared.grants.sweep(&facts) {
            shared
                .metrics
                .revoked
                .get_or_create(&metrics::RevokedLabels {
                    party: grant.party(),
                    reason: why.label(),
                })
                .inc();
        }
    }
}

/// Meta key of the admin token's stored (hashed, hex) form.
const ADMIN_TOKEN_HASH: &str = "admin_token_hash";
/// Meta key where builds before hashing kept the admin token as it is.
const ADMIN_TOKEN_PLAIN: &str = "admin_token";

/// The admin token: its value, its stored form, and whether its file was
/// (re)written now. The state keeps only a salted hash; the value lives in
/// `path` (0600), which the CLI reads. A token stored in plain by an older
/// build is migrated; a missing or stale file gets a new token (logged).
/// Without a file (`burrow quick`), a new token every start.
async fn admin_token(
    store: &Store,
    path: Option<&std::path::Path>,
) -> Result<(Secret, Vec<u8>, bool), burrow_store::StoreError> {
    use burrow_store::secret;
    let stored = |hex_hash: &str| hex::decode(hex_hash).unwrap_or_default();
    if let Some(plain) = store.meta(ADMIN_TOKEN_PLAIN).await? {
        let hash = secret::hash(plain.as_bytes());
        store
            .set_meta(ADMIN_TOKEN_HASH, &hex::encode(&hash))
            .await?;
        store.delete_meta(ADMIN_TOKEN_PLAIN).await?;
        info!("admin token: the state now keeps only its hash (migrated)");
    }
    let fresh = random_hex(32);
    let fresh_hash = secret::hash(fresh.as_bytes());
    let Some(path) = path else {
        store
            .set_meta(ADMIN_TOKEN_HASH, &hex::encode(&fresh_hash))
            .await?;
        return Ok((Secret::new(fresh), fresh_hash, false));
    };
    let current = stored(
        &store
            .meta_or_init(ADMIN_TOKEN_HASH, || hex::encode(&fresh_hash))
            .await?,
    );
    let in_file = tokio::fs::read_to_string(path)
        .await
        .ok()
        .map(|t| t.trim().to_owned());
    if let Some(t) = in_file.filter(|t| secret::verify(&current, t.as_bytes())) {
        // The file holds the token: the owner's alone, whatever made it.
        use std::os::unix::fs::PermissionsExt;
        let _ = tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).await;
        return Ok((Secret::new(t), current, false));
    }
    if current != fresh_hash {
        // Another token is stored whose value is nowhere to be read.
        warn!(file = %path.display(), "the admin token file is missing or does not match the state; a new admin token was made");
        store
            .set_meta(ADMIN_TOKEN_HASH, &hex::encode(&fresh_hash))
            .await?;
    }
    let io = |e: std::io::Error| burrow_store::StoreError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    write_token(path, &fresh).await.map_err(io)?;
    Ok((Secret::new(fresh), fresh_hash, true))
}

/// Writes the admin token file, mode 0600, replacing an old one.
async fn write_token(path: &std::path::Path, token: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let (path, token) = (path.to_owned(), token.to_owned());
    tokio::task::spawn_blocking(move || {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        writeln!(f, "{token}")
    })
    .await
    .map_err(std::io::Error::other)?
}
