//! The burrow edge: the tunnel endpoint connectors and clients dial out
//! to, the app and HTTP listeners that turn public connections into tunnel
//! streams, zero-trust egress, and the admin API.
//!
//! Module map (one concept, one place; `docs/ARCHITECTURE.md` walks
//! flows through them):
//! - [`edge`]: the front door, [`Edge::bind`] and [`Edge::run`].
//! - `context`: [`Ctx`](context::Ctx), what every task shares, by group.
//! - `tables`: the routing tables, one snapshot swapped whole.
//! - `tunnel/`: the tunnel endpoint: accept loops, the registration
//!   handshake, connectors' connections, the registry, opening a stream.
//! - `apps/`: TCP and UDP apps: listeners, origins, edge and origin TLS.
//! - `http/`: public HTTP(S) listeners: the lean path, the hyper path and
//!   the forwarding policy both follow.
//! - `zt/`: zero-trust client connections and their flows.
//! - `egress/`: leaving the edge: dialing from an egress IP, UDP, peers.
//! - `authz/`: live grants and their re-checks (revocation).
//! - `telemetry/`: metrics, session log, logpush.
//! - `admin/`: the admin API, one file per resource.
//!
//! Use: [`Edge::bind`] binds every socket and reports the addresses, then
//! [`Edge::run`] serves until the shutdown token is cancelled, drains open
//! flows for the grace period and returns.

mod admin;
mod apps;
mod authz;
mod cluster;
mod context;
mod edge;
mod egress;
mod follow;
mod geoip;
mod http;
mod known;
mod limits;
mod pools;
mod quick;
mod reload;
mod tables;
mod telemetry;
mod tunnel;
mod zt;

pub use edge::{Edge, EdgeStats};
pub use egress::peers::PeerConfig;
pub use pools::AppPools;
pub use reload::EdgeReloader;
pub use telemetry::logpush::LogpushTarget;

use burrow_config::Secret;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Resolved edge settings.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// Short name of this node, e.g. `NRT`.
    pub colo: String,
    /// Tunnel endpoint: TCP (HTTP/2) and UDP (QUIC) on the same port.
    pub listen: SocketAddr,
    /// Admin API address (loopback by default).
    pub admin: SocketAddr,
    /// Where the state lives (SQLite file or PostgreSQL).
    pub store: burrow_store::Location,
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
    /// The built-in DNS responder's address, UDP and TCP (`None`: off).
    pub dns: Option<SocketAddr>,
    /// Public HTTPS listener for routed hostnames (`None`: off); its
    /// certificates come from `cert_dir`.
    pub https: Option<SocketAddr>,
    /// Network session log of client flows (JSON lines), if any.
    pub session_log: Option<PathBuf>,
    /// Where logpush sends the session log records, if anywhere.
    pub logpush: Option<LogpushTarget>,
    /// Peer edges for egress from other colos' dedicated IPs.
    pub peers: PeerConfig,
    /// The cluster secret (`--cluster-secret-file`): nodes sharing a
    /// PostgreSQL store seal the shared CA key and admin token with it.
    pub cluster_secret: Option<Secret>,
    /// Newest tunnel protocol version this node speaks (1 or 2).
    pub wire_version: u16,
    /// Post-quantum key agreement on the tunnel endpoint.
    pub post_quantum: burrow_transport::kx::PostQuantum,
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
    // The source follows in the error chain (`{:#}`).
    #[error("state store {location}")]
    Store {
        /// The store, its password hidden.
        location: String,
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
    /// This node cannot join the cluster (the cluster secret does not
    /// open the shared CA, say).
    #[error("cluster: {0}")]
    Cluster(String),
    /// Other I/O failure.
    #[error("{0}")]
    Io(#[from] std::io::Error),
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
    /// Bound DNS responder (UDP and TCP), if any.
    pub dns_addr: Option<SocketAddr>,
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(crate) fn random_hex(n: usize) -> String {
    use rand::RngCore;
    let mut b = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}
