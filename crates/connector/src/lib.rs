//! The burrow connector: keeps `ha_connections` tunnel connections to the
//! edge (QUIC, or HTTP/2 when QUIC cannot get through), registers each, and
//! serves the flows the edge opens by dialling the origin the ingress rules
//! name.
//!
//! Module map:
//! - `conn`: one HA connection's life: connect, register, serve, reconnect
//!   with jittered backoff; QUIC → HTTP/2 fallback and the return to QUIC.
//! - `flow`: one flow: ingress match, origin dial, splice; built-in origins.
//! - [`backoff`]: the pure reconnect-delay function.
//! - `discovery`: edge addresses from `--edge` or DNS SRV.
//!
//! Use: build a [`ConnectorConfig`], then [`run`] until the shutdown token
//! is cancelled. On shutdown every connection tells the edge `GoAway`, open
//! flows get the grace period to finish, then the connections close.

pub mod backoff;
mod conn;
pub mod diag;
mod discovery;
mod env;
mod flow;
mod http;
mod ingress;
mod metrics;
pub use metrics::server::{MetricsAddr, AUTO_PORTS as METRICS_AUTO_PORTS};
mod private;
mod reply;
mod udp;

use burrow_config::connector::{Ingress, ProtocolChoice};
use burrow_config::credentials::Credentials;
use burrow_transport::pki::EdgeTrust;
use burrow_transport::Protocol;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Resolved connector settings.
#[derive(Debug, Clone)]
pub struct ConnectorConfig {
    /// Tunnel credentials.
    pub credentials: Credentials,
    /// Validated ingress rules.
    pub ingress: Ingress,
    /// Edge addresses (`host:port`); empty means DNS SRV discovery.
    pub edges: Vec<String>,
    /// Edge domain (SNI names and SRV discovery).
    pub edge_domain: String,
    /// PEM of the CA that signed the edge certificate.
    pub edge_ca_pem: String,
    /// Transport choice.
    pub protocol: ProtocolChoice,
    /// Number of HA connections (default 4).
    pub ha_connections: u8,
    /// Drain time on shutdown (default 30 s).
    pub grace_period: Duration,
    /// How long a QUIC handshake may take before `auto` falls back to HTTP/2.
    pub quic_fallback_after: Duration,
    /// How often `auto` tries QUIC again while on HTTP/2.
    pub quic_retry_every: Duration,
    /// Registration refusals (wrong secret, unknown tunnel) tolerated per
    /// connection before the connector gives up; `None` retries forever.
    pub max_refusals: Option<u32>,
    /// Origin dial timeout.
    pub origin_connect_timeout: Duration,
    /// Which IP version to use for edge addresses found by name.
    pub edge_ip_version: IpVersion,
    /// DNS server for SRV discovery; `None` uses the system's resolver.
    pub dns_server: Option<std::net::SocketAddr>,
    /// `warp-routing`: private-network flows of zero-trust clients.
    pub warp_routing: burrow_config::connector::WarpRouting,
    /// `--metrics`: the Prometheus / readiness server.
    pub metrics: MetricsAddr,
    /// `--label`: a name for this connector, sent with its version (shown
    /// by `tunnel info`).
    pub label: Option<String>,
    /// `--post-quantum`: post-quantum key agreement required on every
    /// tunnel connection (without it: offered first, classical fallback).
    pub post_quantum: bool,
}

/// IP version preference for edge addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IpVersion {
    /// IPv4 only (default, as cloudflared).
    #[default]
    V4,
    /// IPv6 only.
    V6,
    /// Whatever resolves.
    Auto,
}

/// Why the connector stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectorError {
    /// The edge refused registration too many times.
    #[error("the edge refused the tunnel registration: {0}")]
    Refused(String),
    /// The edge CA could not be used.
    #[error("edge CA: {0}")]
    Trust(String),
    /// No edge address could be found.
    #[error("no edge address: {0}")]
    NoEdge(String),
    /// An ingress rule's origin settings cannot be used.
    #[error("{0}")]
    Origin(String),
    /// The metrics listener could not be bound.
    #[error("{0}")]
    Metrics(String),
}

/// What a flow needs to know about the tunnel connection it arrived on.
pub(crate) struct ConnInfo {
    pub(crate) index: u8,
    pub(crate) protocol: Protocol,
    pub(crate) colo: String,
    pub(crate) connection_id: uuid::Uuid,
    /// The tunnel protocol version the connection speaks (1 or 2).
    pub(crate) wire: u16,
    /// The edge asks for `StreamReceived` on every version 2 `OpenFlow`
    /// (it named `stream-ack` in its `Welcome`).
    pub(crate) acks: bool,
    /// UDP-session datagrams as QUIC datagrams (QUIC connections only).
    pub(crate) mux: Option<Arc<burrow_transport::quic_datagrams::DatagramMux>>,
    /// Cancelled when this connection starts draining: kept-alive HTTP
    /// streams finish their request and close.
    pub(crate) draining: CancellationToken,
}

/// Runs the connector until `shutdown` is cancelled (then drains and
/// returns `Ok`), or until registration is refused for good.
///
/// # Errors
/// [`ConnectorError`] when the CA is unusable, no edge can be found, or
/// the edge refuses the credentials `max_refusals` times.
pub async fn run(cfg: ConnectorConfig, shutdown: CancellationToken) -> Result<(), ConnectorError> {
    let (_keep, updates) = tokio::sync::mpsc::channel(1);
    run_with_updates(cfg, shutdown, updates).await
}

/// [`run`], taking new ingress rules from `updates` while it runs (config
/// reload): each value replaces the rules for new flows and requests;
/// flows already running keep the rules they matched.
///
/// # Errors
/// As [`run`].
pub async fn run_with_updates(
    cfg: ConnectorConfig,
    shutdown: CancellationToken,
    mut updates: tokio::sync::mpsc::Receiver<Ingress>,
) -> Result<(), ConnectorError> {
    let mut trust = EdgeTrust::new(&cfg.edge_ca_pem, &cfg.edge_domain)
        .map_err(|e| ConnectorError::Trust(e.to_string()))?;
    if cfg.post_quantum {
        trust.post_quantum = burrow_transport::kx::PostQuantum::Require;
    }
    let edges = discovery::edge_addrs(
        &cfg.edges,
        &cfg.edge_domain,
        cfg.edge_ip_version,
        cfg.dns_server,
    )
    .await
    .map_err(ConnectorError::NoEdge)?;
    let metrics = Arc::new(metrics::Metrics::new());
    check_port_range(&metrics).await;
    let connector_id = uuid::Uuid::new_v4();
    let metrics_listener = metrics::server::bind(&cfg.metrics)
        .await
        .map_err(ConnectorError::Metrics)?;
    tracing::info!(
        tunnel_id = %cfg.credentials.tunnel_id, %connector_id,
        edges = ?edges, ha_connections = cfg.ha_connections, protocol = ?cfg.protocol,
        "connector starting"
    );
    // Building the rules reads files (CA pools, JWKS): off the runtime.
    let ingress = cfg.ingress.clone();
    let routing = tokio::task::spawn_blocking(move || ingress::routing(ingress))
        .await
        .map_err(|e| ConnectorError::Origin(e.to_string()))?
        .map_err(ConnectorError::Origin)?;
    let background = tokio_util::task::TaskTracker::new();
    let env = Arc::new(env::FlowEnv {
        routing: arc_swap::ArcSwap::from_pointee(routing),
        connect_timeout: cfg.origin_connect_timeout,
        tunnel_id: cfg.credentials.tunnel_id,
        private: private::PrivateFlows::new(cfg.warp_routing.clone()),
        metrics: metrics.clone(),
        tasks: background.clone(),
    });
    background.spawn(env::close_idle(Arc::downgrade(&env)));
    let metrics_stop = CancellationToken::new();
    if let Some(l) = metrics_listener {
        background.spawn(metrics::server::serve(
            l,
            metrics.clone(),
            connector_id,
            metrics_stop.clone(),
        ));
    }
    let cfg_ha = cfg.ha_connections;
    let shared = Arc::new(conn::Shared {
        cfg,
        trust,
        edges: arc_swap::ArcSwap::from_pointee(edges),
        connector_id,
        env,
        fatal: CancellationToken::new(),
        fatal_reason: std::sync::Mutex::new(None),
        quic_endpoints: std::sync::Mutex::new(Default::default()),
        older_edges: burrow_transport::frames::OlderEdges::default(),
        discovered_at: std::sync::Mutex::new(std::time::Instant::now()),
        tried: (0..cfg_ha).map(|_| CancellationToken::new()).collect(),
    });
    let env = shared.env.clone();
    env.metrics.config_version.set(1);
    let reload = background.spawn(async move {
        while let Some(ingress) = updates.recv().await {
            let n = ingress.rules.len();
            match tokio::task::spawn_blocking(move || ingress::routing(ingress)).await {
                Ok(Ok(routing)) => {
                    env.routing.store(Arc::new(routing));
                    env.metrics.config_version.inc();
                    tracing::info!(rules = n, "ingress rules replaced; new requests use them");
                }
                Ok(Err(e)) => {
                    tracing::error!("config reload rejected: {e}; keeping the running rules");
                }
                Err(e) => tracing::error!(error = %e, "config reload failed"),
            }
        }
    });
    let tasks = tokio_util::task::TaskTracker::new();
    for index in 0..shared.cfg.ha_connections {
        tasks.spawn(conn::run(shared.clone(), index, shutdown.clone()));
    }
    tasks.close();
    tokio::select! {
        _ = tasks.wait() => {}
        _ = shared.fatal.cancelled() => {
            shutdown.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(5), tasks.wait()).await;
        }
    }
    reload.abort();
    metrics_stop.cancel();
    background.close();
    let reason = shared
        .fatal_reason
        .lock()
        .expect("fatal reason lock poisoned")
        .take();
    match reason {
        Some(r) => Err(ConnectorError::Refused(r)),
        None => {
            tracing::info!("connector stopped");
            Ok(())
        }
    }
}

/// The soft open-file limit (`getrlimit`, no file read), if known.
fn rlimit_nofile() -> Option<u64> {
    rlimit::getrlimit(rlimit::Resource::NOFILE)
        .ok()
        .map(|(soft, _)| soft)
}

/// Warns when the ephemeral port range is small: each origin connection
/// uses one local port, so the range bounds concurrent flows.
async fn check_port_range(metrics: &metrics::Metrics) {
    let files = rlimit_nofile();
    if let Some(f) = files {
        metrics
            .open_files_limit
            .set(i64::try_from(f).unwrap_or(i64::MAX));
    }
    let Ok(text) = tokio::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").await else {
        return;
    };
    let mut it = text
        .split_whitespace()
        .filter_map(|s| s.parse::<u32>().ok());
    if let (Some(lo), Some(hi)) = (it.next(), it.next()) {
        let n = hi.saturating_sub(lo) + 1;
        metrics.ephemeral_ports.set(i64::from(n));
        // Each proxied flow holds an origin socket (and a stream): the file
        // limit should cover the port range.
        if let Some(f) = files.filter(|f| *f < u64::from(n.min(50_000))) {
            tracing::warn!(
                open_files = f, ports = n,
                "the open-file limit is below the number of origin connections the port range allows; \
                 raise it (ulimit -n 65536, or LimitNOFILE=65536 in the systemd unit)"
            );
        }
        if n < 50_000 {
            tracing::warn!(
                ports = n, range = %format!("{lo}-{hi}"),
                "the ephemeral port range allows fewer than 50000 concurrent origin connections; \
                 widen it with sysctl net.ipv4.ip_local_port_range=\"11000 60999\""
            );
        }
    }
}
