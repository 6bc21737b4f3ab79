//! The front door: [`Edge::bind`] opens the store, loads certificates
//! and binds every socket; [`Edge::run`] starts the listeners and
//! background tasks, heartbeats, and on shutdown drains flows and stops.

use crate::admin::token::admin_token;
use crate::apps::{edge_tls, origin_tls};
use crate::authz::sweep::authz_sweeps;
use crate::context::Ctx;
use crate::reload::{EdgeReloader, ReloadPaths};
use crate::telemetry::{logpush, metrics};
use crate::{admin, geoip, http, tunnel};
use crate::{unix_now, EdgeConfig, EdgeError, EdgeInfo};
use burrow_store::Store;
use burrow_transport::pki::EdgePki;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// New UDP app sessions one client address may open per second (and in
/// a burst).
const UDP_SESSIONS_PER_SEC: u32 = 50;

const UDP_SESSIONS_BURST: u32 = 200;

/// Descriptors kept free of app flows for the edge's own listeners.
const FD_RESERVE_MIN: u64 = 256;

/// How many descriptors flows may hold: the open-file limit less a
/// reserve of a tenth of it (at least [`FD_RESERVE_MIN`]). A flow takes a
/// permit per socket it holds: two for an app flow to a direct origin, one
/// through a tunnel (the stream is not a descriptor). Counting flows at
/// two each stopped a tunnel app at 9,000 flows under a 20,000 limit.
fn app_fd_budget() -> usize {
    let soft = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(s, _)| s);
    let reserve = (soft / 10).max(FD_RESERVE_MIN);
    usize::try_from(soft.saturating_sub(reserve))
        .unwrap_or(usize::MAX)
        .max(2)
}

/// Live counters of a running edge.
#[derive(Clone)]
pub struct EdgeStats(Arc<Ctx>);

impl EdgeStats {
    /// Registered tunnel connections on this node.
    pub fn tunnel_connections(&self) -> u64 {
        u64::try_from(self.0.telemetry.metrics.tunnel_connections.get()).unwrap_or(0)
    }
    /// Flows being spliced right now.
    pub fn active_flows(&self) -> u64 {
        u64::try_from(self.0.telemetry.metrics.active_flows.get()).unwrap_or(0)
    }
}

/// A bound, not yet running edge.
pub struct Edge {
    pub(crate) ctx: Arc<Ctx>,
    reload_paths: ReloadPaths,
    pub(crate) info: EdgeInfo,
    tcp: TcpListener,
    quic: Option<quinn::Endpoint>,
    admin: TcpListener,
    http: Option<TcpListener>,
    https: Option<(TcpListener, Arc<rustls::ServerConfig>)>,
    dns: Option<(tokio::net::UdpSocket, TcpListener)>,
    grace: Duration,
}

/// The DNS responder's sockets: TCP and UDP on one port (port 0: the TCP
/// port picked, the same UDP port taken, retried when it is in use).
async fn bind_dns(addr: SocketAddr) -> Result<(tokio::net::UdpSocket, TcpListener), EdgeError> {
    let tries = if addr.port() == 0 { 20 } else { 1 };
    let bind_err = |what, addr, source| EdgeError::Bind { what, addr, source };
    let mut last = None;
    for _ in 0..tries {
        let tcp = TcpListener::bind(addr)
            .await
            .map_err(|e| bind_err("DNS responder, TCP", addr, e))?;
        let bound = tcp.local_addr()?;
        match tokio::net::UdpSocket::bind(bound).await {
            Ok(udp) => return Ok((udp, tcp)),
            Err(e) => last = Some((bound, e)),
        }
    }
    let (addr, e) = last.expect("at least one try");
    Err(bind_err("DNS responder, UDP", addr, e))
}

async fn bind_tunnel(
    listen: SocketAddr,
    quic_cfg: Option<quinn::ServerConfig>,
    reset_key: &[u8],
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
        match burrow_transport::quic::server_endpoint(bound, cfg, reset_key) {
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
            location: cfg.store.to_string(),
            source,
        };
        // The store creates a SQLite file's directory (0700) when missing.
        let store = Store::open(&cfg.store).await.map_err(store_err)?;
        info!(
            store = %cfg.store,
            "state store open at schema version {}",
            burrow_store::schema_version()
        );
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
        let token_path = cfg.pki_dir.as_ref().map(|d| d.join("admin.token"));
        let (mut pki, (token, token_hash, token_created)) =
            match (&cfg.cluster_secret, &cfg.pki_dir, &token_path) {
                (Some(secret), Some(dir), Some(token_path)) => {
                    // One trust domain: the cluster's CA and admin token.
                    let sealer = burrow_store::secret::Sealer::new(secret.expose().as_bytes());
                    let pki = crate::cluster::ca::node_pki(&store, &sealer, &cfg.edge_domain, dir)
                        .await?;
                    let token =
                        crate::admin::token::cluster_admin_token(&store, &sealer, token_path)
                            .await?;
                    (pki, token)
                }
                _ => {
                    let (pki_dir, domain) = (cfg.pki_dir.clone(), cfg.edge_domain.clone());
                    let pki = tokio::task::spawn_blocking(move || -> Result<_, EdgeError> {
                        Ok(match pki_dir {
                            Some(dir) => EdgePki::load_or_create(&dir, &domain)?,
                            None => EdgePki::ephemeral(&domain)?,
                        })
                    })
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))??;
                    let token = admin_token(&store, token_path.as_deref())
                        .await
                        .map_err(store_err)?;
                    (pki, token)
                }
            };
        // Secrets migrated to hashes leave no plain copy in the WAL.
        store.checkpoint().await.map_err(store_err)?;
        pki.post_quantum = cfg.post_quantum;
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
        // Worth a line at start only when the operator chose the roots.
        if cfg.origin_ca.is_some() {
            info!(roots = %origin_tls.roots_from, "origin TLS (tls: strict) verifies against");
        } else {
            tracing::debug!(roots = %origin_tls.roots_from, "origin TLS (tls: strict) verifies against");
        }
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
        let (tcp, quic) = bind_tunnel(cfg.listen, quic_cfg, pki.reset_key()).await?;
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
        let dns = match cfg.dns {
            Some(addr) => Some(bind_dns(addr).await?),
            None => None,
        };
        let dns_addr = dns.as_ref().and_then(|(u, _)| u.local_addr().ok());
        let http_addr = http.as_ref().and_then(|l| l.local_addr().ok());
        let https_addr = https.as_ref().and_then(|(l, _)| l.local_addr().ok());
        let host = tokio::fs::read_to_string("/proc/sys/kernel/hostname")
            .await
            .unwrap_or_default();
        let node_id = crate::context::node_id(&cfg.colo, host.trim(), tunnel_addr);
        // The rows of this node's previous run (it may have been killed)
        // go now; dead nodes' rows go with them (`lease` prunes).
        let _ = store.prune_connections(&node_id).await;
        let metrics = metrics::Metrics::new();
        // It answered moments ago (the store opened); `follow` keeps it true.
        metrics.store_up.set(1);
        let logpush = cfg
            .logpush
            .clone()
            .map(|t| logpush::Logpush::start(t, metrics.logpush.clone()));
        let tasks = crate::context::Tasks::default();
        let peers = crate::egress::peers::Peers::new(
            cfg.peers.clone(),
            crate::egress::peers::Me {
                account_id,
                node_id: node_id.clone(),
                wire: cfg.wire_version,
                colo: cfg.colo.clone(),
                ca_pem: pki.ca_pem.clone(),
                edge_domain: cfg.edge_domain.clone(),
            },
            tasks.background.clone(),
        );
        let ctx = Arc::new(Ctx {
            id: crate::context::Identity {
                colo: cfg.colo.clone(),
                node_id,
                account_id,
                admin_token_hash: token_hash,
                ca_pem: pki.ca_pem.clone(),
                edge_domain: cfg.edge_domain.clone(),
                tunnel_addr,
                app_pools,
                wire: cfg.wire_version,
            },
            store,
            store_trouble: tokio::sync::Notify::new(),
            tables: crate::tables::Tables::default(),
            registry: crate::tunnel::registry::Registry::default(),
            known_tunnels: crate::known::LastRead::default(),
            known_devices: crate::known::LastRead::default(),
            members: crate::cluster::members::Members::default(),
            forwarding: crate::cluster::holders::Holders::default(),
            grants: Arc::default(),
            apps: crate::context::Apps {
                running: crate::apps::running::AppManager::default(),
                fds: Arc::new(tokio::sync::Semaphore::new(app_fd_budget())),
                udp_rate: crate::limits::Rate::new(
                    UDP_SESSIONS_PER_SEC,
                    UDP_SESSIONS_BURST,
                    65_536,
                ),
                refusal_log: crate::limits::LogGate::new(Duration::from_secs(10)),
                full_log: crate::limits::LogGate::new(Duration::from_secs(10)),
            },
            files: crate::context::Files {
                h2_tls: pki.h2_server_config()?,
                app_tls,
                cert_resolver,
                origin_tls: arc_swap::ArcSwap::from_pointee(origin_tls),
                geoip: arc_swap::ArcSwap::from_pointee(geoip),
            },
            egress: crate::context::Egress {
                resolver,
                dns_server: cfg.dns_server,
                dial_guard: burrow_policy::dial_guard::DialGuard::new(
                    [
                        Some(tunnel_addr),
                        Some(admin_addr),
                        http_addr,
                        https_addr,
                        dns_addr,
                    ]
                    .into_iter()
                    .flatten()
                    .collect(),
                    cfg.egress_allow.clone(),
                ),
                peers,
            },
            telemetry: crate::telemetry::Telemetry {
                metrics,
                session_log: crate::telemetry::session_log::SessionLog::start(
                    cfg.session_log.clone(),
                ),
                logpush,
            },
            tasks,
        });
        ctx.tables.reload(&ctx.store).await;
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
            dns_addr,
        };
        Ok(Self {
            ctx,
            reload_paths,
            info,
            tcp,
            quic,
            admin,
            http,
            https,
            dns,
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
            ctx: self.ctx.clone(),
            paths: self.reload_paths.clone(),
        }
    }

    /// A live view of counters, usable while the edge runs.
    pub fn stats(&self) -> EdgeStats {
        EdgeStats(self.ctx.clone())
    }

    /// Serves until `shutdown` is cancelled, then stops taking new flows,
    /// lets open flows finish for the grace period, and closes.
    pub async fn run(self, shutdown: CancellationToken) {
        let Self {
            ctx,
            reload_paths: _,
            info,
            tcp,
            quic,
            admin,
            http,
            https,
            dns,
            grace,
        } = self;
        info!(
            colo = %ctx.id.colo, tunnel = %info.tunnel_addr, quic = quic.is_some(),
            admin = %info.admin_addr, "edge running"
        );
        // Announced before the first connector registers, so its
        // connections count at once.
        let started_at = unix_now();
        crate::cluster::lease::beat(&ctx, started_at).await;
        // Listeners stop taking new work when `accepting` is cancelled.
        let accepting = shutdown.child_token();
        ctx.tasks
            .spawn(tunnel::run_tcp(ctx.clone(), tcp, accepting.clone()));
        if let Some(ep) = quic.clone() {
            ctx.tasks
                .spawn(tunnel::run_quic(ctx.clone(), ep, accepting.clone()));
        }
        let admin_state = admin::AdminState {
            ctx: ctx.clone(),
            shutdown: accepting.clone(),
        };
        let admin_stop = CancellationToken::new();
        let admin_task = ctx.tasks.spawn({
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
            ctx.tasks
                .spawn(http::run(ctx.clone(), l, None, accepting.clone()));
        }
        if let Some((udp, tcp)) = dns {
            ctx.tasks.spawn(crate::cluster::dns::serve(
                ctx.clone(),
                udp,
                tcp,
                accepting.clone(),
            ));
        }
        if let Some((l, tls)) = https {
            ctx.tasks
                .spawn(http::run(ctx.clone(), l, Some(tls), accepting.clone()));
        }
        ctx.apps.running.sync(&ctx, &accepting).await;
        ctx.tasks.spawn(authz_sweeps(ctx.clone(), shutdown.clone()));
        ctx.tasks.spawn(crate::follow::follow(
            ctx.clone(),
            accepting.clone(),
            shutdown.clone(),
        ));
        let mut tick = tokio::time::interval(crate::cluster::lease::RENEW);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {
                    crate::cluster::lease::beat(&ctx, started_at).await;
                    // An app port that could not be bound (still held by
                    // an exiting process) is tried again.
                    if ctx.apps.running.incomplete() {
                        ctx.apps.running.sync(&ctx, &accepting).await;
                    }
                }
            }
        }

        let open = ctx.telemetry.metrics.active_flows.get();
        info!(open_flows = open, grace = ?grace, "shutting down: no new flows, draining");
        accepting.cancel();
        ctx.apps.running.stop_all();
        ctx.tasks.flows.close();
        if tokio::time::timeout(grace, ctx.tasks.flows.wait())
            .await
            .is_err()
        {
            warn!(
                open_flows = ctx.telemetry.metrics.active_flows.get(),
                "grace period over; closing remaining flows"
            );
            // Every flow still open ends now; run() returns after them.
            ctx.tasks.end_flows.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(5), ctx.tasks.flows.wait()).await;
        }
        // Let the last bytes of finished flows be acknowledged before the
        // QUIC connections close (closing drops unacknowledged data).
        tokio::time::sleep(Duration::from_millis(300)).await;
        for r in ctx.registry.all() {
            r.conn.close();
        }
        if let Some(ep) = quic {
            ep.close(0u32.into(), b"edge shutting down");
        }
        let _ = ctx.store.remove_node(&ctx.id.node_id).await;
        if let Some(lp) = &ctx.telemetry.logpush {
            lp.flush_and_stop().await;
        }
        ctx.telemetry.session_log.flush_and_stop().await;
        admin_stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(2), admin_task).await;
        ctx.tasks.background.close();
        let _ = tokio::time::timeout(Duration::from_secs(2), ctx.tasks.background.wait()).await;
        ctx.store.close().await;
        info!("edge stopped");
    }
}
